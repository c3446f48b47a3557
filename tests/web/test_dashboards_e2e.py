"""Every dashboard in headless Chromium, from replayed real samples and from the simulator: tiles
render (maps on the offline base map, charts), nothing leaves 127.0.0.1, no console error, 0
axe-core violations; a live update changes a tile without a reload; the weather-warning banner
appears when a warning is ingested and goes when it is cancelled; the Wi-Fi map clusters; a map
click finds the nearest car parks. Screenshots go to test-artifacts/ (look at them)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from tests.web.conftest import LiveServer, make_app, start_server
from tests.web.dashboards_fixtures import build_real, build_sim, open_copy, sim_time

from citypulse.feeds.registry import get_feed
from citypulse.ingest.archive import RawArchive
from citypulse.ingest.pipeline import Pipeline
from citypulse.store.duckdb import DuckDBStore

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
AXE = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
SIM_PAGES = {
    "traffic": "/dashboards/traffic", "environment": "/dashboards/environment",
    "mobility": "/dashboards/mobility", "connectivity": "/dashboards/connectivity",
    "covid-19": "/dashboards/covid-19", "smart-village": "/dashboards/smart-village",
    "district": "/districts/islands", "districts": "/districts", "index": "/dashboards",
}
REAL_PAGES = {
    # The dashboards whose feeds have captures (the others show "no data" honestly).
    "traffic": "/dashboards/traffic", "environment": "/dashboards/environment",
    "covid-19": "/dashboards/covid-19",
}
READY = """() => {
  const pending = document.querySelectorAll('.tile[data-deferred], .tile.is-pending').length;
  const maps = [...document.querySelectorAll('.tile-map')].every((m) => m.dataset.ready);
  const traffic = document.getElementById('traffic-map');
  const links = !traffic || traffic.querySelector('path.leaflet-interactive') !== null
    || !traffic.dataset.geojson;
  return pending === 0 && maps && links;
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def serve(store: DuckDBStore, folder: Path) -> LiveServer:
    return start_server(make_app(store, folder))


@pytest.fixture(scope="module")
def sim_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, DuckDBStore]]:
    folder = tmp_path_factory.mktemp("dash-e2e-sim")
    store = open_copy(build_sim(tmp_path_factory.getbasetemp() / "dash-built"), folder)
    server = serve(store, folder)
    try:
        yield server, store
    finally:
        server.stop()
        store.close()


@pytest.fixture(scope="module")
def real_site(
    feeds_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, DuckDBStore]]:
    folder = tmp_path_factory.mktemp("dash-e2e-real")
    store = open_copy(build_real(feeds_dir, tmp_path_factory.getbasetemp() / "dash-built"),
                      folder)
    server = serve(store, folder)
    try:
        yield server, store
    finally:
        server.stop()
        store.close()


class Session:
    """One browser context and page with the guards every test wants."""

    def __init__(self, browser: Any, base: str, **context: Any) -> None:
        self.context = browser.new_context(**({"viewport": {"width": 1366, "height": 900}}
                                              | context))
        if AXE.exists():
            # An init script runs outside the page's Content-Security-Policy (a <script> tag
            # injected later would be refused, as any inline script is).
            self.context.add_init_script(path=str(AXE))
        self.page = self.context.new_page()
        self.outside: list[str] = []
        self.errors: list[str] = []
        host = urlsplit(base).netloc

        def handle(route: Any) -> None:
            parts = urlsplit(route.request.url)
            if parts.scheme in ("data", "blob") or parts.netloc == host:
                route.continue_()
            else:
                self.outside.append(route.request.url)
                route.abort()

        self.page.route("**/*", handle)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console",
                     lambda m: self.errors.append(m.text) if m.type == "error" else None)

    def open(self, url: str) -> Any:
        self.page.goto(url)
        self.page.wait_for_function(READY, timeout=60_000)
        return self.page

    def axe(self, name: str, artifacts: Path) -> list[Any]:
        if not AXE.exists():
            return []
        report = self.page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        violations = report["violations"]
        (artifacts / f"dash-{name}-axe.json").write_text(json.dumps(violations, indent=1))
        return [(v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]][:3])
                for v in violations]

    def close(self) -> None:
        self.context.close()


@pytest.fixture()
def sessions() -> Iterator[list[Session]]:
    """Contexts are closed before the servers stop (open SSE streams hold a graceful stop)."""
    opened: list[Session] = []
    yield opened
    for s in opened:
        s.close()


def check_pages(browser: Any, server: LiveServer, pages: dict[str, str], label: str,
                artifacts: Path, sessions: list[Session]) -> None:
    s = Session(browser, server.url)
    sessions.append(s)
    problems: dict[str, Any] = {}
    for name, path in pages.items():
        page = s.open(server.url + path)
        tiles = page.locator(".tile[data-tile]")
        assert tiles.count() >= (0 if name in ("index", "districts") else 3), name
        states = page.eval_on_selector_all(".tile[data-tile]",
                                           "els => els.map(e => e.dataset.state)")
        assert "error" not in states and "pending" not in states, (name, states)
        for m in page.locator(".tile-map").all():
            assert m.get_attribute("data-ready") == "1"
            assert not (m.get_attribute("class") or "").count("map-error"), name
        # Every map has the offline base layer: 18 district polygons + the outline.
        if page.locator(".tile-map, #traffic-map").count():
            assert page.locator(".leaflet-basemap-pane path").count() >= 19, name
        page.screenshot(path=str(artifacts / f"dash-{label}-{name}.png"), full_page=True)
        found = s.axe(f"{label}-{name}", artifacts)
        if found:
            problems[name] = found
    assert problems == {}, problems
    assert s.outside == [], s.outside
    assert [e for e in s.errors if "favicon" not in e] == [], s.errors


def test_every_dashboard_in_the_browser_from_the_simulator(
    browser: Any, sim_site: tuple[LiveServer, DuckDBStore], sessions: list[Session],
    artifacts_dir: Path,
) -> None:
    check_pages(browser, sim_site[0], SIM_PAGES, "sim", artifacts_dir, sessions)


def test_every_dashboard_in_the_browser_from_real_samples(
    browser: Any, real_site: tuple[LiveServer, DuckDBStore], sessions: list[Session],
    artifacts_dir: Path,
) -> None:
    check_pages(browser, real_site[0], REAL_PAGES, "real", artifacts_dir, sessions)


def test_a_tile_updates_live_without_reload(
    browser: Any, sim_site: tuple[LiveServer, DuckDBStore], sessions: list[Session],
    artifacts_dir: Path, tmp_path: Path,
) -> None:
    from citypulse.simulate.registry import all_simulators

    server, store = sim_site
    s = Session(browser, server.url)
    sessions.append(s)
    page = s.open(server.url + "/dashboards/environment")
    page.wait_for_selector("#dashboard-live[data-state='live']", state="attached")
    before = page.get_attribute("#tile-aqhi", "data-updated")
    page.evaluate("window.__sameDocument = true")
    # The next hour's EPD file, through the real pipeline (which publishes on the bus).
    import random

    at = sim_time() + timedelta(hours=1, minutes=30)
    payload = all_simulators()["epd-aqhi"].emit(at, random.Random(1))
    pipeline = Pipeline(store, RawArchive(tmp_path / "archive"), server.bus)
    outcome = pipeline.process(get_feed("epd-aqhi"), payload, at, "simulator")
    assert outcome.status == "stored", outcome
    page.wait_for_function(
        "b => { const t = document.getElementById('tile-aqhi');"
        " return t && t.dataset.refreshes && t.dataset.updated !== b; }",
        arg=before, timeout=30_000)
    after = page.get_attribute("#tile-aqhi", "data-updated")
    assert after and before and after > before
    shown = page.locator("#tile-aqhi time.tile-updated").inner_text()
    expected = datetime.fromisoformat(after).astimezone(
        __import__("citypulse.feeds.base", fromlist=["HKT"]).HKT).strftime("%Y-%m-%d %H:%M")
    assert shown == expected
    assert page.evaluate("window.__sameDocument") is True
    page.wait_for_function("() => document.querySelector('#tile-aqhi .tile-map').dataset.ready")
    assert page.locator("#tile-aqhi .marker-label").count() == 18
    page.screenshot(path=str(artifacts_dir / "dash-live-after-update.png"), full_page=True)
    assert s.errors == [] and s.outside == []


def warnsum(action: str, issued: datetime, updated: datetime) -> bytes:
    def hk(t: datetime) -> str:
        return t.astimezone(__import__("citypulse.feeds.base", fromlist=["HKT"]).HKT).isoformat()

    return json.dumps({"WRAIN": {
        "name": "Rainstorm Warning Signal", "code": "WRAINR", "type": "Red",
        "actionCode": action, "issueTime": hk(issued), "updateTime": hk(updated),
    }}).encode()


def test_warning_banner_comes_and_goes_live(
    browser: Any, sim_site: tuple[LiveServer, DuckDBStore], sessions: list[Session],
    artifacts_dir: Path, tmp_path: Path,
) -> None:
    server, store = sim_site
    pipeline = Pipeline(store, RawArchive(tmp_path / "archive"), server.bus)
    spec = get_feed("hko-warnsum")
    pages = []
    # A dashboard, and a portal page (served from the portal's whole-page cache).
    for path in ("/zh-hant/districts/sha_tin", "/"):
        s = Session(browser, server.url)
        sessions.append(s)
        page = s.open(server.url + path)
        page.wait_for_function("() => document.getElementById('weather-warnings')"
                               " && document.getElementById('weather-warnings').dataset.refreshes")
        assert page.locator(".warnings-banner").count() == 0, path
        page.evaluate("window.__sameDocument = true")
        pages.append((path, s, page))
    issued = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    out = pipeline.process(spec, warnsum("ISSUE", issued, issued), issued + timedelta(minutes=1))
    assert out.status == "stored", out
    for path, _s, page in pages:
        page.wait_for_selector(".warnings-banner li[data-code='WRAINR']", timeout=30_000)
        text = page.locator(".warnings-banner").inner_text()
        assert ("紅色暴雨" if "zh-hant" in path else "Red Rainstorm") in text, text
        assert page.evaluate("window.__sameDocument") is True
    pages[0][2].screenshot(path=str(artifacts_dir / "dash-warning-banner-zh.png"))
    pages[1][2].screenshot(path=str(artifacts_dir / "dash-warning-banner.png"))
    cancelled = issued + timedelta(minutes=3)
    out = pipeline.process(spec, warnsum("CANCEL", issued, cancelled),
                           issued + timedelta(minutes=4))
    assert out.status == "stored", out
    for _path, s, page in pages:
        page.wait_for_function("() => !document.querySelector('.warnings-banner')",
                               timeout=30_000)
        assert page.evaluate("window.__sameDocument") is True
        assert s.errors == [] and s.outside == []


def test_wifi_map_clusters_every_venue(
    browser: Any, sim_site: tuple[LiveServer, DuckDBStore], sessions: list[Session],
) -> None:
    server, _store = sim_site
    s = Session(browser, server.url)
    sessions.append(s)
    page = s.open(server.url + "/dashboards/connectivity")
    clusters = page.locator('[data-map="clusters"]')
    total = int(clusters.get_attribute("data-points") or 0)
    import httpx

    assert total == httpx.get(server.url + "/api/v1/wifi/points").json()["count"] > 1000
    labels = page.locator(".cluster-label")
    assert 0 < labels.count() < 200  # thousands of venues, a readable number of clusters
    shown = sum(int(re.sub(r"\D", "", t) or 0) * (1000 if t.endswith("k") else 1)
                for t in labels.all_inner_texts())
    assert shown <= total
    before = labels.count()
    labels.first.click()
    page.wait_for_function(f"() => document.querySelectorAll('.cluster-label').length !== {before}"
                           " || document.querySelectorAll('.leaflet-interactive').length > 0")
    assert s.errors == [] and s.outside == []


def test_map_click_finds_the_nearest_car_parks(
    browser: Any, sim_site: tuple[LiveServer, DuckDBStore], sessions: list[Session],
    artifacts_dir: Path,
) -> None:
    server, _store = sim_site
    s = Session(browser, server.url)
    sessions.append(s)
    page = s.open(server.url + "/dashboards/mobility")
    assert page.locator("#tile-nearest .nearest-list li").count() == 0
    the_map = page.locator("#tile-carparks .tile-map")
    box = the_map.bounding_box()
    assert box is not None
    # Open sea in the south-west of the view: no marker to intercept the click.
    the_map.click(position={"x": box["width"] * 0.15, "y": box["height"] * 0.85})
    page.wait_for_selector("#tile-nearest .nearest-list li", timeout=30_000)
    assert page.locator("#tile-nearest .nearest-list li").count() == 5
    assert "lat=" in page.url and "lon=" in page.url
    page.screenshot(path=str(artifacts_dir / "dash-mobility-nearest.png"), full_page=True)
    assert s.errors == [] and s.outside == []


def test_a_dashboard_on_a_phone_in_chinese(
    browser: Any, sim_site: tuple[LiveServer, DuckDBStore], sessions: list[Session],
    artifacts_dir: Path,
) -> None:
    server, _store = sim_site
    s = Session(browser, server.url, viewport={"width": 390, "height": 844},
                device_scale_factor=2, is_mobile=True, has_touch=True, locale="zh-HK")
    sessions.append(s)
    for name in ("environment",):
        page = s.open(f"{server.url}/zh-hant/dashboards/{name}")
        assert page.locator("html").get_attribute("lang") == "zh-Hant"
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{name} scrolls sideways on a phone ({width}px)"
        page.screenshot(path=str(artifacts_dir / f"dash-phone-zh-{name}.png"), full_page=True)
    assert s.errors == [] and s.outside == []
