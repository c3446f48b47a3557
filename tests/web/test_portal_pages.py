"""Portal pages: home (figures, areas, live tiles), areas, progress, the initiative list with
filters/sort/pagination/400s, initiative pages and 404s, CSV and Atom, in English and Chinese."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lxml import etree, html
from tests.blueprint.support import FakeStore, make_app, raw_initiatives, raw_yaml

from citypulse.store.base import LatestValue

ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with TestClient(make_app(tmp_path_factory.mktemp("portal"))) as c:
        yield c


def rows(page_html: str) -> list[str]:
    """Initiative ids listed in the results table of /initiatives."""
    return re.findall(r'<span class="muted id">([a-z0-9-]+)</span>', page_html)


def searchable(raw: dict[str, Any]) -> str:
    parts = [
        raw["id"],
        raw["title_en"],
        raw["title_zh_hant"] or "",
        raw["summary"],
        raw["owner"],
        raw["notes"] or "",
    ]
    parts += [m["event"] for m in raw["milestones"]]
    parts += [f"{f['name']} {f['unit']}" for f in raw["figures"]]
    return "\n".join(parts).casefold()


def test_home(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    doc = html.fromstring(r.text)
    assert "world-famed Smart Hong Kong" in r.text
    cards = doc.xpath('//ul[@class="area-cards"]/li//h3/a/text()')
    assert [c.strip() for c in cards] == [a["name_en"] for a in raw_yaml()["areas"]]
    tiles = doc.xpath('//ul[contains(@class,"figure-tiles")]/li')
    assert len(tiles) == 8
    assert "4,800" in r.text and "As of 2021-11" in r.text  # DATA.GOV.HK datasets tile
    assert r.text.count("No data yet") == 3  # empty store: graceful live tiles
    assert "Subscribe to updates" in r.text
    assert '<link rel="stylesheet" href="/static/css/portal.css">' in r.text
    assert "<script>" not in r.text and " style=" not in r.text  # CSP-ready: no inline code


def test_home_chinese(client: TestClient) -> None:
    r = client.get("/zh-hant/")
    assert r.status_code == 200
    assert '<html lang="zh-Hant">' in r.text
    for name in (
        "智慧出行",
        "智慧生活",
        "智慧環境",
        "智慧市民",
        "智慧政府",
        "智慧經濟",
        "智慧鄉村",
    ):
        assert name in r.text
    assert "擁抱創科" in r.text and "暫無數據" in r.text
    assert "未有中文譯本" in r.text  # English-only milestones carry the marker


def test_live_tiles(tmp_path: Path) -> None:
    ts = datetime.now(UTC) - timedelta(minutes=5)
    store = FakeStore(
        {
            "temperature_c": [
                LatestValue("hko-station:HKO", "temperature_c", ts, 24.3, None),
                LatestValue("hko-station:SHA", "temperature_c", ts, 22.0, None),
            ],
            "aqhi": [
                LatestValue("epd-station:central", "aqhi", ts, 4.0, "4"),
                LatestValue("epd-station:mong_kok", "aqhi", ts, 11.0, "10+"),
            ],
            "speed_kmh": [
                LatestValue(f"td-link:{n}", "speed_kmh", ts, 30.0 + n, None) for n in range(5)
            ],
        }
    )
    with TestClient(make_app(tmp_path, store)) as c:
        text = c.get("/").text
    assert "24.3" in text and "Hong Kong Observatory" in text
    assert "10+" in text and "Serious" in text and "Highest of 2 stations" in text
    assert "32" in text and "Average speed on 5 road links" in text
    assert "No data yet" not in text
    with TestClient(make_app(tmp_path / "down", FakeStore(fail=True))) as c:
        r = c.get("/")
    assert r.status_code == 200 and r.text.count("No data yet") == 3


@pytest.mark.parametrize("area", [a["id"] for a in raw_yaml()["areas"]])
def test_area_pages(client: TestClient, area: str) -> None:
    r = client.get(f"/areas/{area}")
    assert r.status_code == 200
    expected = [i["id"] for i in raw_initiatives() if i["area"] == area]
    doc = html.fromstring(r.text)
    links = doc.xpath('//ul[@class="initiative-list"]/li/a/@href')
    assert [h.rsplit("/", 1)[1] for h in links] == expected
    assert client.get(f"/zh-hant/areas/{area}").status_code == 200


def test_unknown_area_and_initiative_are_404_pages(client: TestClient) -> None:
    for path in (
        "/areas/sports",
        "/initiatives/mobility-99",
        "/zh-hant/initiatives/nope",
        "/initiatives/mobility-99/edit",
    ):
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("text/html")
        assert "<h1>" in r.text


def test_progress_page(client: TestClient) -> None:
    r = client.get("/progress")
    assert r.status_code == 200
    doc = html.fromstring(r.text)
    totals = doc.xpath("//table//tbody/tr/td[last()-1]/text()")
    raw = raw_initiatives()
    assert [int(t) for t in totals] == [
        sum(1 for i in raw if i["area"] == a["id"]) for a in raw_yaml()["areas"]
    ]
    assert len(doc.xpath('//svg[@class="stacked-bar"][@role="img"][@aria-label]')) == 9


def test_list_default_and_pagination(client: TestClient) -> None:
    raw = [i["id"] for i in raw_initiatives()]
    r = client.get("/initiatives")
    assert r.status_code == 200
    assert rows(r.text) == raw[:20]
    assert "Showing 1–20 of 124" in r.text
    r = client.get("/initiatives?page=7")
    assert rows(r.text) == raw[120:]
    r = client.get("/initiatives?per_page=50&page=3")
    assert rows(r.text) == raw[100:]
    assert 'href="/initiatives?per_page=50&amp;page=2" rel="prev"' in r.text


def test_list_filters_are_shareable_urls(client: TestClient) -> None:
    raw = raw_initiatives()
    r = client.get("/initiatives?area=mobility&status=in_progress&per_page=100")
    assert rows(r.text) == [
        i["id"] for i in raw if i["area"] == "mobility" and i["status"] == "in_progress"
    ]
    # the form keeps the filters selected
    assert '<option value="mobility" selected>' in r.text
    assert '<option value="in_progress" selected>' in r.text
    r = client.get("/initiatives?owner=HKMA&per_page=100")
    assert rows(r.text) == [i["id"] for i in raw if "(HKMA)" in i["owner"]]
    r = client.get("/initiatives?q=智方便")
    assert rows(r.text)[0] == "living-02"
    r = client.get("/initiatives?q=HKeToll")
    assert rows(r.text)[0] == "mobility-06"
    assert set(rows(r.text)) == {i["id"] for i in raw if "hketoll" in searchable(i)}
    r = client.get("/initiatives?year=2016&per_page=100")
    assert "living-04" in rows(r.text)
    r = client.get("/initiatives?q=zzzqqq")
    assert rows(r.text) == [] and "No initiatives match" in r.text


def test_list_sort(client: TestClient) -> None:
    r = client.get("/initiatives?sort=title&per_page=200")
    titles = {i["id"]: i["title_en"].casefold() for i in raw_initiatives()}
    listed = [titles[i] for i in rows(r.text)]
    assert listed == sorted(listed) and len(listed) == 124
    assert 'aria-sort="ascending"' in r.text
    r = client.get("/initiatives?sort=-title&per_page=200")
    assert [titles[i] for i in rows(r.text)] == sorted(listed, reverse=True)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("area=sports", "unknown area"),
        ("status=finished", "unknown status"),
        ("sort=colour", "unknown sort"),
        ("page=abc", "page must be a whole number"),
        ("page=99", "past the last page"),
        ("per_page=0", "per_page must be between"),
        ("year=nineteen", "year must be a whole number"),
    ],
)
def test_malformed_filters_are_400(client: TestClient, query: str, message: str) -> None:
    r = client.get(f"/initiatives?{query}")
    assert r.status_code == 400
    assert message in r.text and "Bad request" in r.text
    if "page=99" not in query:  # the CSV is not paginated, so page 99 is not an error there
        assert client.get(f"/initiatives.csv?{query}").status_code == 400
    api = client.get(f"/api/v1/initiatives?{query}")
    assert api.status_code == 400 and message in api.json()["detail"]


@pytest.mark.parametrize("initiative", [i["id"] for i in raw_initiatives()])
def test_every_initiative_page(client: TestClient, initiative: str) -> None:
    raw = next(i for i in raw_initiatives() if i["id"] == initiative)
    r = client.get(f"/initiatives/{initiative}")
    assert r.status_code == 200
    doc = html.fromstring(r.text)
    assert doc.xpath("string(//h1)").strip() == raw["title_en"]
    assert len(doc.xpath('//ol[@class="timeline"]/li')) == len(raw["milestones"])
    assert len(doc.xpath('//ul[@class="sources"]/li')) == len(raw["sources"])
    zh = client.get(f"/zh-hant/initiatives/{initiative}").text
    if raw["title_zh_hant"]:
        assert f"<h1>{raw['title_zh_hant']}</h1>" in zh
    else:
        assert re.search(
            r'<h1><span lang="en" class="fallback">.*</span> '
            r'<span class="tr-missing">\(未有中文譯本\)</span></h1>',
            zh,
        )


def test_csv_export(client: TestClient) -> None:
    r = client.get("/initiatives.csv?area=living")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    assert r.content.startswith("\ufeff".encode())
    table = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    living = [i for i in raw_initiatives() if i["area"] == "living"]
    assert [row["id"] for row in table] == [i["id"] for i in living]
    first = table[0]
    assert first["title_zh_hant"] == "轉數快" and first["status"] == living[0]["status"]
    everything = client.get("/initiatives.csv?per_page=10").content.decode("utf-8-sig")
    assert len(list(csv.DictReader(io.StringIO(everything)))) == 124  # CSV is not paginated


def test_atom_feed(client: TestClient) -> None:
    r = client.get("/initiatives/updates.atom")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/atom+xml")
    feed = etree.fromstring(r.content)
    assert feed.tag == f"{ATOM}feed"
    entries = feed.findall(f"{ATOM}entry")
    assert 0 < len(entries) <= 50
    for e in entries:
        assert e.findtext(f"{ATOM}id") and e.findtext(f"{ATOM}updated")
        assert e.find(f"{ATOM}link").get("href").startswith("http://testserver/initiatives/")
    zh = etree.fromstring(client.get("/zh-hant/initiatives/updates.atom").content)
    assert zh.findtext(f"{ATOM}title") == "智慧城市藍圖：進度更新"
