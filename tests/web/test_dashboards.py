"""Dashboards rendered by the server (no JavaScript): every dashboard from replayed real samples
and from the simulator, values checked against the source files read independently (lxml, json,
csv), clear 400s for bad parameters, feed-down tiles, a slow tile that does not hold up the page,
the weather-warning banner on every page, and the tile cache."""

from __future__ import annotations

import csv
import html
import json
import re
import statistics
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from lxml import etree
from tests.web.conftest import make_app, wait_for
from tests.web.dashboards_fixtures import build_real, build_sim, open_copy

from citypulse.model import Batch, Event
from citypulse.store.duckdb import DuckDBStore
from citypulse.web.dashboards import (
    DefinitionError,
    Query,
    Text,
    Tile,
    View,
    dashboards,
    load_file,
)
from citypulse.web.dashboards.custom import CUSTOM_QUERIES
from citypulse.web.dashboards.results import TileData
from citypulse.web.dashboards.state import dashboard_state

PAGES = [
    "/dashboards/traffic", "/dashboards/environment", "/dashboards/mobility",
    "/dashboards/connectivity", "/dashboards/covid-19", "/dashboards/smart-village",
    "/districts/islands",
]
TILE_STATE = re.compile(r'data-tile="([^"]+)" data-feeds="[^"]*" data-state="([^"]+)"')


def client_for(store: DuckDBStore, folder: Path) -> TestClient:
    app = make_app(store, folder)
    app.state.dashboard_page_budget_s = 60.0  # render every tile in the page (deterministic)
    return TestClient(app)


@pytest.fixture(scope="module")
def real(feeds_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    built = build_real(feeds_dir, tmp_path_factory.getbasetemp() / "dash-built")
    folder = tmp_path_factory.mktemp("dash-real")
    store = open_copy(built, folder)
    with client_for(store, folder) as c:
        yield c
    store.close()


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    built = build_sim(tmp_path_factory.getbasetemp() / "dash-built")
    folder = tmp_path_factory.mktemp("dash-sim")
    store = open_copy(built, folder)
    with client_for(store, folder) as c:
        yield c
    store.close()


def states(page: str) -> dict[str, str]:
    return dict(TILE_STATE.findall(page))


def tile_html(page: str, tile_id: str) -> str:
    m = re.search(rf'<section class="tile [^"]*" id="tile-{re.escape(tile_id)}".*?</section>',
                  page, re.S)
    assert m is not None, f"tile {tile_id} not in page"
    return m.group(0)


def text_of(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def assert_self_contained(page: str) -> None:
    """No third-party URL, no inline script, handler or style attribute (strict CSP)."""
    assert not re.search(r'(src|href)="(https?:)?//', page)
    for m in re.finditer(r"<script(?P<attrs>[^>]*)>", page):
        attrs = m.group("attrs")
        assert "src=" in attrs or 'type="application/json"' in attrs, attrs
    assert not re.search(r"<[^>]+\son[a-z]+=", page)
    assert not re.search(r"<[^>]+\sstyle=", page)


# --- definitions --------------------------------------------------------------------------------


def test_definitions_are_valid_and_complete() -> None:
    from citypulse.feeds.registry import all_feeds
    from citypulse.web.templating import TEMPLATES_DIR

    found = dashboards()
    assert {"traffic", "environment", "mobility", "connectivity", "covid-19", "smart-village",
            "district"} <= set(found)
    feeds = set(all_feeds())
    for dash in found.values():
        for t in dash.tiles:
            assert set(t.feeds) <= feeds, (dash.id, t.id, set(t.feeds) - feeds)
            if t.query.type == "custom":
                assert t.query.name in CUSTOM_QUERIES, (dash.id, t.id)
            if t.view.template:
                assert (TEMPLATES_DIR / t.view.template).is_file(), t.view.template
            assert (TEMPLATES_DIR / "dashboards" / "views" / f"{t.view.type}.html").is_file()


def test_a_bad_definition_names_its_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("id: broken\ntitle: {en: B, zh: B}\nlede: {en: x, zh: x}\ntiles:\n"
                   "  - id: t\n    title: {en: T, zh: T}\n    stale_after: 3 hours\n"
                   "    query: {type: latest}\n    view: {type: table}\n")
    with pytest.raises(DefinitionError, match=r"(?s)broken\.yaml.*stale_after"):
        load_file(bad)
    wrong_id = tmp_path / "other.yaml"
    wrong_id.write_text(bad.read_text().replace("3 hours", "3h"))
    with pytest.raises(DefinitionError, match="must match the file name"):
        load_file(wrong_id)


# --- real samples -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_every_dashboard_renders_from_real_samples(real: TestClient, path: str) -> None:
    for prefix in ("", "/zh-hant"):
        r = real.get(prefix + path)
        assert r.status_code == 200, r.text[:500]
        assert_self_contained(r.text)
        found = states(r.text)
        assert found, "no tiles"
        assert "error" not in found.values(), found
        assert "pending" not in found.values(), found
        lang = 'lang="zh-Hant"' if prefix else 'lang="en"'
        assert lang in r.text


def test_aqhi_tile_matches_the_epd_file(real: TestClient, feeds_dir: Path) -> None:
    doc = etree.parse(str(next((feeds_dir / "epd-aqhi").glob("*.xml"))))
    newest: dict[str, tuple[str, str]] = {}
    for item in doc.iter("item"):
        name, when, value = (item.findtext(k) for k in ("StationName", "DateTime", "aqhi"))
        assert name and when and value
        stamp = datetime.strptime(when, "%a, %d %b %Y %H:%M:%S %z")
        if name not in newest or stamp.isoformat() > newest[name][0]:
            newest[name] = (stamp.isoformat(), value)
    tile = tile_html(real.get("/dashboards/environment").text, "aqhi")
    rows = re.findall(r'<tr data-id="epd-station:[^"]+">\s*<th scope="row">([^<]+)</th>.*?'
                      r'data-col="aqhi"><span class="chip ([^"]+)"[^>]*>([^<]+)<', tile, re.S)
    assert len(rows) == len(newest) == 18
    for name, cls, shown in rows:
        value = newest[html.unescape(name)][1]
        assert shown == value, (name, shown, value)
        band = "serious" if value == "10+" else (
            "low" if int(value) <= 3 else "moderate" if int(value) <= 6 else
            "high" if int(value) == 7 else "very_high")
        assert cls == f"b-aqhi-{band}"
    payload = json.loads(html.unescape(re.search(
        r'data-map-json>(.*?)</script>', tile, re.S).group(1)))  # type: ignore[union-attr]
    assert len(payload["points"]) == 18 and all(p["text"] for p in payload["points"])


def test_journey_times_match_the_td_file(real: TestClient, feeds_dir: Path) -> None:
    doc = etree.parse(str(next((feeds_dir / "td-journey-time").glob("*.xml"))))
    ns = {"td": "http://data.one.gov.hk/td"}
    expected = {}
    for row in doc.iterfind("td:jtis_journey_time", ns):
        if row.findtext("td:JOURNEY_TYPE", namespaces=ns) == "1":
            key = (f"td-jti:{row.findtext('td:LOCATION_ID', namespaces=ns)}-"
                   f"{row.findtext('td:DESTINATION_ID', namespaces=ns)}")
            expected[key] = row.findtext("td:JOURNEY_DATA", namespaces=ns)
    tile = tile_html(real.get("/dashboards/traffic").text, "journey-times")
    shown = dict(re.findall(r'<tr data-id="(td-jti:[^"]+)">.*?data-col="journey_time_min">'
                            r'<span class="chip [^"]+"[^>]*>(\d+) min<', tile, re.S))
    assert shown == expected and len(shown) == 35


def test_region_summary_matches_the_newest_speed_map(real: TestClient, feeds_dir: Path) -> None:
    newest = sorted((feeds_dir / "td-speedmap").glob("speedmap_*.xml"))[-1]
    groups: dict[str, list[float]] = {"hk_island": [], "kowloon": [], "new_territories": []}
    region = {"HK": "hk_island", "K": "kowloon", "TM": "new_territories",
              "ST": "new_territories"}
    for rec in etree.parse(str(newest)).iter("jtis_speedmap"):
        groups[region[rec.findtext("REGION") or ""]].append(
            float(rec.findtext("TRAFFIC_SPEED") or "nan"))
    tile = tile_html(real.get("/dashboards/traffic").text, "regions")
    for rid, speeds in groups.items():
        row = re.search(rf'<tr data-id="{rid}">(.*?)</tr>', tile, re.S)
        assert row is not None
        assert f'data-col="links">{len(speeds)}</td>' in row.group(1)
        assert f"{statistics.fmean(speeds):,.0f} km/h" in row.group(1)


def test_weather_now_and_forecast_match_hko_files(real: TestClient, feeds_dir: Path) -> None:
    rhr = sorted((feeds_dir / "hko-rhrread").glob("*.json"))[-1]
    doc = json.loads(rhr.read_text(encoding="utf-8"))
    hko = next(t["value"] for t in doc["temperature"]["data"] if t["place"] == "香港天文台")
    page = real.get("/dashboards/environment").text
    now = text_of(tile_html(page, "weather-now"))
    assert f"{hko} °C Temperature at the Observatory" in now
    assert f"{doc['humidity']['data'][0]['value']}% Relative humidity" in now
    fnd = json.loads(sorted((feeds_dir / "hko-fnd").glob("*.json"))[-1].read_text("utf-8"))
    forecast = tile_html(page, "forecast")
    days = re.findall(r'<time datetime="(\d{4}-\d{2}-\d{2})">', forecast)
    assert days == [f"{d['forecastDate'][:4]}-{d['forecastDate'][4:6]}-{d['forecastDate'][6:]}"
                    for d in fnd["weatherForecast"]]
    first = fnd["weatherForecast"][0]
    assert (f"{first['forecastMintemp']['value']}–{first['forecastMaxtemp']['value']} °C"
            in forecast)


def test_wifi_counts_match_the_ogcio_file(real: TestClient, feeds_dir: Path) -> None:
    records = json.loads(next((feeds_dir / "wifi-hk").glob("*.json")).read_text("utf-8-sig"))
    hotspots = sum(int(r["NumberOfHotspots"]) for r in records)
    summary = text_of(tile_html(real.get("/dashboards/connectivity").text, "wifi-summary"))
    assert f"{len(records)} Venues" in summary
    assert f"{hotspots:,} Hotspots" in summary
    assert f"{len(records)} Buses, trains and ferries" in summary  # the non-fixed file
    points = real.get("/api/v1/wifi/points").json()
    assert points["count"] == 0  # vehicles have no position: nothing to put on the map


def test_covid_figures_match_the_dh_csv(real: TestClient, feeds_dir: Path) -> None:
    path = sorted((feeds_dir / "covid19").glob("latest_situation_*.csv"))[-1]
    rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
    last, before = rows[-1], rows[-2]
    deaths, prev = int(last["Number of death cases"]), int(before["Number of death cases"])
    page = real.get("/dashboards/covid-19").text
    totals = text_of(tile_html(page, "totals"))
    assert f"{deaths:,} Deaths (cumulative)" in totals
    day = datetime.strptime(last["As of date"], "%d/%m/%Y").date().isoformat()
    chart = tile_html(page, "deaths")
    row = re.search(rf'<time datetime="{day}T00:00:00\+08:00">{day}</time></th>'
                    r'<td class="num">([^<]+)</td>', chart)
    assert row is not None and row.group(1) == str(deaths - prev)
    # A shorter range: the figures end where the range ends.
    r = real.get("/dashboards/covid-19?start=2020-03-01&end=2020-12-16")
    assert r.status_code == 200
    early = next(x for x in rows if x["As of date"] == "16/12/2020")
    assert (f"{int(early['Number of confirmed cases']):,} Confirmed cases" in
            text_of(tile_html(r.text, "totals")))
    assert 'value="2020-03-01"' in r.text and 'value="2020-12-16"' in r.text


def test_feeds_without_captures_say_so(real: TestClient) -> None:
    mobility = real.get("/dashboards/mobility").text
    assert states(mobility)["carparks"] == "empty"
    assert "No data in the store yet." in tile_html(mobility, "carparks")
    village = real.get("/dashboards/smart-village").text
    assert set(states(village).values()) == {"empty"}
    env = real.get("/dashboards/environment").text
    # The 2016 warning RSS replays open warnings without an end: not "in force" ten years on.
    assert "No weather warning is in force." in tile_html(env, "warnings")
    assert 'class="warnings-banner"' not in env


# --- simulated city -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_every_dashboard_renders_from_the_simulator(sim: TestClient, path: str) -> None:
    r = sim.get(path)
    assert r.status_code == 200
    assert_self_contained(r.text)
    found = states(r.text)
    assert "error" not in found.values() and "pending" not in found.values(), found
    live = [t for t, s in found.items() if s in ("ok", "stale")]
    assert len(live) >= len(found) - 2, found  # at most 2 legitimately empty (slot, nearest...)


def test_simulated_tiles_carry_data(sim: TestClient) -> None:
    mobility = sim.get("/dashboards/mobility").text
    parks = sim.get("/api/v1/entities", params={"kind": "carpark"}).json()
    assert f"({len(parks)})" in tile_html(mobility, "carparks")
    village = sim.get("/dashboards/smart-village").text
    sensors = sim.get("/api/v1/entities", params={"kind": "sensor"}).json()
    assert sensors and f"{len(sensors)} Sensors" in text_of(tile_html(village, "village-summary"))
    covid = sim.get("/dashboards/covid-19").text
    assert states(covid)["cases"] == "ok" and "2022-12-31" in covid
    conn = sim.get("/dashboards/connectivity").text
    venues = sim.get("/api/v1/wifi/points").json()
    assert venues["count"] > 1000
    assert f"{venues['count']:,} Venues on the map" in text_of(tile_html(conn, "wifi-summary"))


def test_filters_by_district_and_vehicle(sim: TestClient) -> None:
    parks = sim.get("/api/v1/entities", params={"kind": "carpark"}).json()
    in_tai_po = [p for p in parks if p["district"] in ("Tai Po",)]
    r = sim.get("/dashboards/mobility?district=tai_po")
    assert r.status_code == 200
    rows = re.findall(r'<tr data-id="(carpark:[^"]+)">', tile_html(r.text, "carparks"))
    assert sorted(rows) == sorted(p["id"] for p in in_tai_po)
    assert '<option value="tai_po" selected>' in r.text
    lgv = sim.get("/dashboards/mobility?vehicle=lgv").text
    assert '<option value="lgv" selected>' in lgv
    assert states(lgv)["carparks"] in ("ok", "stale")


def test_nearest_car_parks_without_javascript(sim: TestClient) -> None:
    r = sim.get("/dashboards/mobility?lat=22.2819&lon=114.1581")
    near = tile_html(r.text, "nearest")
    items = re.findall(r'<li data-id="(carpark:[^"]+)">', near)
    assert len(items) == 5
    api = sim.get("/api/v1/carparks/nearest", params={"lat": "22.2819", "lon": "114.1581"}).json()
    assert [c["id"] for c in api["carparks"]] == items
    distances = [c["distance_m"] for c in api["carparks"]]
    assert distances == sorted(distances)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/dashboards/mobility?district=atlantis", "unknown district 'atlantis'"),
        ("/dashboards/mobility?vehicle=tank", "unknown vehicle type 'tank'"),
        ("/dashboards/mobility?lat=22.3", "give both lat and lon"),
        ("/dashboards/mobility?lat=40&lon=114.1", "lat must be between"),
        ("/dashboards/mobility?lat=abc&lon=114.1", "lat must be a number"),
        ("/dashboards/covid-19?start=2022-13-01", "start must be a date like"),
        ("/dashboards/covid-19?start=2022-03-01&end=2021-01-01", "start must not be after end"),
        ("/dashboards/connectivity?district=%3Cscript%3E", "unknown district"),
        ("/api/v1/wifi/points?bbox=1,2,3", "bbox must be minLon,minLat,maxLon,maxLat"),
        ("/api/v1/wifi/points?bbox=114.3,22.2,114.1,22.4", "minLon < maxLon"),
        ("/api/v1/wifi/points?bbox=a,b,c,d", "4 numbers"),
        ("/api/v1/wifi/points?district=nowhere", "unknown district"),
        ("/api/v1/carparks/nearest?lat=22.3&lon=0", "lon must be between"),
        ("/api/v1/dashboards/mobility/tiles/carparks?vehicle=boat", "unknown vehicle type"),
        ("/dashboards/covid-19/tiles/cases?end=yesterday", "end must be a date"),
    ],
)
def test_bad_parameters_get_a_clear_400(sim: TestClient, url: str, message: str) -> None:
    r = sim.get(url)
    assert r.status_code == 400, (url, r.status_code)
    assert message in html.unescape(r.text), r.text[:300]
    assert "<script>" not in r.text


def test_unknown_pages_and_district_spellings(sim: TestClient) -> None:
    assert sim.get("/dashboards/nowhere").status_code == 404
    assert sim.get("/dashboards/district").status_code == 404  # only under /districts/{id}
    r = sim.get("/districts/atlantis")
    assert r.status_code == 404 and 'href="/districts/sha_tin"' in r.text
    r = sim.get("/districts/Sha-Tin", follow_redirects=False)
    assert r.status_code == 301 and r.headers["location"] == "/districts/sha_tin"
    r = sim.get("/zh-hant/districts/%E6%B2%99%E7%94%B0", follow_redirects=False)
    assert r.headers["location"] == "/zh-hant/districts/sha_tin"
    assert sim.get("/dashboards/traffic/tiles/nope").status_code == 404


# --- feed down, slow tiles, cache ---------------------------------------------------------------


@pytest.fixture()
def sim_app(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    store = open_copy(build_sim(tmp_path_factory.getbasetemp() / "dash-built"), tmp_path)
    with client_for(store, tmp_path) as c:
        yield c
    store.close()


def test_a_tile_whose_feed_is_down_says_since_when(sim_app: TestClient) -> None:
    store = sim_app.app.state.store  # type: ignore[attr-defined]
    health = {h.feed_id: h for h in store.feed_health()}
    last_ok = health["epd-aqhi"].last_success
    assert last_ok is not None
    store.record_fetch("epd-aqhi", at=datetime.now(UTC), ok=False, error="http-503")
    dashboard_state(sim_app.app).clear()  # type: ignore[arg-type]
    page = sim_app.get("/dashboards/environment").text
    assert states(page)["aqhi"] == "unavailable"
    tile = tile_html(page, "aqhi")
    assert "Unavailable since" in tile and last_ok.isoformat() in tile
    assert "http-503" in tile and "is-last-known" in tile
    assert "not current" in tile
    zh = sim_app.get("/zh-hant/dashboards/environment").text
    assert "自以下時間起無法提供" in tile_html(zh, "aqhi")
    # A feed that never delivered: no numbers at all.
    store.record_fetch("td-traffic-news", at=datetime.now(UTC), ok=False, error="timeout")
    dashboard_state(sim_app.app).clear()  # type: ignore[arg-type]
    api = sim_app.get("/api/v1/dashboards/environment/tiles/aqhi").json()
    assert api["state"] == "unavailable" and api["reason"] == "http-503"


def test_a_slow_tile_does_not_hold_up_the_page(sim_app: TestClient) -> None:
    release = threading.Event()

    def slow(ctx: object, tile: Tile) -> TileData:
        release.wait(30)
        return TileData(extra={"has_data": True})

    fast = dashboards()["environment"].tiles[0]
    slow_tile = Tile(id="slow", title=Text(en="Slow", zh="慢"),
                     query=Query(type="custom", name="test_slow"), view=View(type="slot"))
    test_dash = dashboards()["environment"].model_copy(
        update={"id": "test-slow", "tiles": (fast, slow_tile)})
    CUSTOM_QUERIES["test_slow"] = slow
    dashboards()["test-slow"] = test_dash
    sim_app.app.state.dashboard_page_budget_s = 0.5  # type: ignore[attr-defined]
    try:
        page = sim_app.get("/dashboards/test-slow").text
        assert states(page)[fast.id] in ("ok", "empty", "stale")
        assert 'data-deferred="/dashboards/test-slow/tiles/slow"' in page
        assert "Still loading this tile" in page
        release.set()
        fragment = sim_app.get("/dashboards/test-slow/tiles/slow")
        assert fragment.status_code == 200 and 'id="tile-slow"' in fragment.text
        assert 'data-state="ok"' in fragment.text
    finally:
        release.set()
        del dashboards()["test-slow"]
        del CUSTOM_QUERIES["test_slow"]
        sim_app.app.state.dashboard_page_budget_s = 60.0  # type: ignore[attr-defined]


def test_tiles_are_cached_until_their_feed_publishes(sim_app: TestClient) -> None:
    app = sim_app.app
    sim_app.get("/dashboards/environment")
    state = dashboard_state(app)  # type: ignore[arg-type]
    before = state.computed
    for _ in range(3):
        sim_app.get("/dashboards/environment")
    assert state.computed == before  # served from the cache
    app.state.bus.publish("air-quality", {"feed_id": "epd-aqhi"})  # type: ignore[attr-defined]
    # The page is served at once from the previous results; the AQHI tiles are recomputed
    # behind it (and the next view, or the page's live update, gets them).
    sim_app.get("/dashboards/environment")
    aqhi_tiles = [t for t in dashboards()["environment"].tiles if "epd-aqhi" in t.feeds]
    assert wait_for(lambda: state.computed - before == len(aqhi_tiles))
    sim_app.get("/dashboards/environment")
    assert state.computed - before == len(aqhi_tiles)


# --- weather warnings on every page -------------------------------------------------------------


def warning_batch(start: datetime, end: datetime | None, fetched: datetime) -> Batch:
    return Batch.build(
        "hko-warnsum", f"warning {start} {end} {fetched}".encode(), fetched,
        events=[Event(
            id="hko-warnsum:WRAIN:WRAINR:test", kind="weather-warning", severity="high",
            starts_at=start, ends_at=end, title_en="Red Rainstorm Warning Signal",
            title_zh="紅色暴雨警告信號", source="hko-warnsum",
            properties={"family": "WRAIN", "code": "WRAINR"},
        )],
    )


def test_warning_banner_appears_on_every_page_and_goes(sim_app: TestClient) -> None:
    app = sim_app.app
    store = app.state.store  # type: ignore[attr-defined]
    # (The portal's own pages cache whole HTML; their banner is checked in the browser test.)
    pages = ["/status", "/dashboards", "/dashboards/traffic", "/districts/sha_tin",
             "/zh-hant/dashboards/mobility", "/datasets"]
    for path in pages:
        assert 'class="warnings-banner"' not in sim_app.get(path).text, path
    now = datetime.now(UTC).replace(microsecond=0)
    store.append(warning_batch(now - timedelta(minutes=30), None, now))
    app.state.bus.publish("warnings", {"feed_id": "hko-warnsum"})  # type: ignore[attr-defined]
    for path in pages:
        page = sim_app.get(path).text
        assert 'class="warnings-banner"' in page, path
        assert ("紅色暴雨警告信號" if "zh-hant" in path else "Red Rainstorm Warning Signal") in page
    fragment = sim_app.get("/fragments/warnings").text
    assert 'data-code="WRAINR"' in fragment and "<html" not in fragment
    assert [w["id"] for w in sim_app.get("/api/v1/warnings/active").json()] == [
        "hko-warnsum:WRAIN:WRAINR:test"]
    env = sim_app.get("/dashboards/environment").text
    assert "Red Rainstorm Warning Signal" in tile_html(env, "warnings")
    # Cancelled: a later payload ends it.
    store.append(warning_batch(now - timedelta(minutes=30), now, now + timedelta(seconds=5)))
    app.state.bus.publish("warnings", {"feed_id": "hko-warnsum"})  # type: ignore[attr-defined]
    for path in pages:
        assert 'class="warnings-banner"' not in sim_app.get(path).text, path
    assert sim_app.get("/fragments/warnings").text.strip() == ""


def test_api_lists_dashboards_districts_and_tile_data(sim: TestClient) -> None:
    listed = sim.get("/api/v1/dashboards").json()
    assert [d["id"] for d in listed] == ["traffic", "environment", "mobility", "connectivity",
                                         "covid-19", "smart-village"]
    districts = sim.get("/api/v1/districts").json()
    assert len(districts) == 18 and {d["region"] for d in districts} == {
        "hk_island", "kowloon", "new_territories"}
    tile = sim.get("/api/v1/dashboards/environment/tiles/aqhi").json()
    assert tile["state"] == "ok" and len(tile["data"]["rows"]) == 18
    one = sim.get("/api/v1/dashboards/district/tiles/aqhi", params={"district": "sha_tin"}).json()
    assert {r["district"] for r in one["data"]["rows"]} == {"sha_tin"}
    points = sim.get("/api/v1/wifi/points", params={"bbox": "114.15,22.27,114.20,22.30"}).json()
    every = sim.get("/api/v1/wifi/points").json()
    assert 0 < points["count"] < every["count"]
    assert all(114.15 <= x <= 114.20 for x in points["lon"])
    gz = sim.get("/api/v1/wifi/points", headers={"Accept-Encoding": "gzip"})
    assert gz.headers.get("content-encoding") == "gzip" and gz.json()["count"] == every["count"]


def test_bands_css_and_assets_are_served(sim: TestClient) -> None:
    css = sim.get("/assets/bands.css")
    assert css.status_code == 200 and ".b-aqhi-serious" in css.text
    geo = sim.get("/static/geo/hk-districts.json").json()
    assert len([f for f in geo["features"] if f["properties"]["kind"] == "district"]) == 18
    for path in ("/static/js/dashboard.js", "/static/js/basemap.js", "/static/js/warnings.js",
                 "/static/js/districts.js", "/static/css/dashboards.css",
                 "/static/vendor/supercluster/supercluster.min.js"):
        assert sim.get(path).status_code == 200, path


def test_every_dashboard_ui_string_is_translated() -> None:
    """Each _("...") in the dashboard, district and banner templates has a Chinese text."""
    from citypulse.web.i18n import gettext
    from citypulse.web.templating import TEMPLATES_DIR

    files = [TEMPLATES_DIR / "_warnings.html",
             *sorted((TEMPLATES_DIR / "dashboards").rglob("*.html")),
             *sorted((TEMPLATES_DIR / "districts").rglob("*.html"))]
    pattern = re.compile(r"""_\((["'])(.+?)\1\)""")
    missing = [f"{f.name}: {msgid}" for f in files
               for _q, msgid in pattern.findall(f.read_text(encoding="utf-8"))
               if gettext("zh-Hant", msgid) == msgid]
    assert missing == []
    for msgid in ("closed", "full", "available", "Info", "Moderate", "High", "Severe", "Low",
                  "illegal-dumping", "wild-animal", "flood", "dumping", "wildlife"):
        assert gettext("zh-Hant", msgid) != msgid, msgid
