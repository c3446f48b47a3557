"""The catalogue pages (/datasets, /datasets/{name}) in English and Traditional Chinese:
search box, facets, pagination, resources, a preview of stored observations, and DCAT links."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from lxml import html

from citypulse.catalogue import observations as obs
from citypulse.catalogue.feeds import FeedProfile
from citypulse.catalogue.harvest import merge_languages
from citypulse.catalogue.service import Catalogue
from citypulse.config import Settings
from citypulse.feeds.registry import all_feeds
from citypulse.model import OBSERVATION_SCHEMA
from citypulse.web.app import create_app

FIXTURES = Path(__file__).parents[1] / "catalogue" / "fixtures" / "datagovhk"


def recorded(prefix: str, action: str, ident: str | None = None) -> Any:
    path = FIXTURES / prefix / (f"{action}/{ident}.json" if ident else f"{action}.json")
    return json.loads(path.read_text(encoding="utf-8"))["result"]


NAMES = recorded("en-data", "package_list")


class RecentStore:
    """Answers ``observations`` with a few rows just before now."""

    def observations(self, start: datetime, end: datetime, *,
                     kinds: Sequence[str] | None = None,
                     entity_ids: Sequence[str] | None = None,
                     metrics: Sequence[str] | None = None,
                     limit: int | None = None) -> pa.Table:
        now = datetime.now(UTC)
        rows = [{"entity_id": f"road:{i}", "metric": "speed_kmh",
                 "ts": now - timedelta(minutes=i), "value": 50.0 + i, "label": None}
                for i in range(30)]
        return pa.Table.from_pylist(rows[: limit or 30], schema=OBSERVATION_SCHEMA)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("pages")
    cat = Catalogue(tmp / "catalogue.sqlite", sync_feeds=True)
    cat.db.upsert_packages(
        [merge_languages({"en": recorded("en-data", "package_show", n),
                          "zh_Hant": recorded("tc-data", "package_show", n)}) for n in NAMES],
        source="recorded")
    app = create_app(Settings(data_dir=tmp), store=RecentStore())  # type: ignore[arg-type]
    app.state.catalogue = cat
    with TestClient(app) as c:
        yield c
    cat.close()


def doc(client: TestClient, url: str, status: int = 200) -> Any:
    r = client.get(url)
    assert r.status_code == status, r.text[:500]
    return html.fromstring(r.text)


def total() -> int:
    return len(NAMES) + len(all_feeds())


def test_search_page_english(client: TestClient) -> None:
    page = doc(client, "/datasets")
    assert page.get("lang") == "en"
    assert page.xpath("//form[@role='search']//input[@name='q']")
    heading = page.xpath("string(//h2[@id='results-heading'])")
    assert heading == f"Datasets found: {total()}"
    assert len(page.xpath("//li[@class='dataset-item']")) == min(20, total())
    facet_titles = page.xpath("//aside//h2/text()")
    assert {"Organizations", "Categories", "Formats", "Tags", "Licences"} <= set(facet_titles)
    # No inline scripts, our own stylesheet.
    assert not [s for s in page.xpath("//script") if not s.get("src")]
    assert page.xpath("//link[@href='/static/css/catalogue.css']")


def test_search_facet_links_filter(client: TestClient) -> None:
    page = doc(client, "/datasets?q=traffic")
    link = page.xpath("//section[@aria-labelledby='facet-organization']//a")[0]
    count = int(link.xpath("string(.//span[@class='facet-count'])"))
    params = dict(parse_qsl(urlsplit(link.get("href")).query))
    assert params["q"] == "traffic" and params["organization"]
    filtered = doc(client, link.get("href"))
    assert filtered.xpath("string(//h2[@id='results-heading'])") == f"Datasets found: {count}"
    active = filtered.xpath("//aside//a[@aria-current='true']")
    assert active and "organization" not in active[0].get("href")  # clicking again removes


def test_search_page_chinese(client: TestClient) -> None:
    page = doc(client, "/zh-hant/datasets?q=天氣")
    assert page.get("lang") == "zh-Hant"
    assert page.xpath("string(//h1)") == "數據集"
    titles = page.xpath("//li[@class='dataset-item']/h3/a/text()")
    zh = recorded("tc-data", "package_show", "hk-hko-rss-current-weather-report")["title"]
    assert zh in titles
    hrefs = page.xpath("//li[@class='dataset-item']/h3/a/@href")
    assert all(h.startswith("/zh-hant/datasets/") for h in hrefs)
    assert "機構" in page.xpath("//aside//h2/text()")


def test_pagination(client: TestClient) -> None:
    first = doc(client, "/datasets?sort=name")
    names = [a.get("href").rsplit("/", 1)[-1]
             for a in first.xpath("//li[@class='dataset-item']/h3/a")]
    nxt = first.xpath("//a[@rel='next']/@href")
    assert nxt and "page=2" in nxt[0]
    second = doc(client, nxt[0])
    names += [a.get("href").rsplit("/", 1)[-1]
              for a in second.xpath("//li[@class='dataset-item']/h3/a")]
    assert names == sorted([*NAMES, *all_feeds()])
    assert second.xpath("//a[@rel='prev']")


def test_bad_query_is_shown_not_crashed(client: TestClient) -> None:
    page = doc(client, "/datasets?q=%28unclosed")
    assert page.xpath("//p[@role='alert']")


def test_dataset_page(client: TestClient) -> None:
    name = "hk-td-sm_1-traffic-speed-map"
    src = recorded("en-data", "package_show", name)
    page = doc(client, f"/datasets/{name}")
    assert page.xpath("string(//h1)") == src["title"]
    rows = page.xpath("//table[@class='resources']/tbody/tr")
    assert len(rows) == len(src["resources"])
    assert page.xpath("//table[@class='resources']//a/@href") == [
        r["url"] for r in src["resources"]]
    assert page.xpath(f"//a[@href='/datasets/{name}.ttl']")
    zh_page = doc(client, f"/zh-hant/datasets/{name}")
    assert zh_page.xpath("string(//h1)") == recorded("tc-data", "package_show", name)["title"]


def test_feed_dataset_page_previews_observations(client: TestClient,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(obs, "feed_profile",
                        lambda feed_id: FeedProfile((("road-link", "speed_kmh"),)))
    feed = next(iter(all_feeds()))
    page = doc(client, f"/datasets/{feed}")
    header = page.xpath("//table[@class='preview']/thead//th/text()")
    assert header == ["entity_id", "metric", "ts", "value", "label"]
    assert len(page.xpath("//table[@class='preview']/tbody/tr")) == 20
    links = page.xpath("//table[@class='resources']//a/@href")
    assert any(re.search(rf"/api/v1/feeds/{feed}/observations\.csv$", h) for h in links)


def test_not_found_and_rdf(client: TestClient) -> None:
    page = doc(client, "/datasets/no-such-dataset", status=404)
    assert page.xpath("string(//h1)") == "Dataset not found"
    r = client.get("/datasets/hk-td-sm_1-traffic-speed-map.jsonld")
    assert r.status_code == 200 and r.headers["content-type"] == "application/ld+json"
    r = client.get("/datasets.ttl")
    assert r.status_code == 200 and "dcat:Catalog" in r.text
    assert client.get("/datasets/nope.ttl").status_code == 404
    assert client.get("/datasets.xml").status_code == 404
