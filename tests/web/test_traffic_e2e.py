"""The foundation slice end to end in a real browser: recorded speed map payloads -> store ->
/dashboards/traffic in headless Chromium, then a new payload + bus message -> the page updates
without reloading. Nothing may leave 127.0.0.1. Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from tests.web import truth
from tests.web.conftest import FETCHED_AT, LiveServer, fill, make_app, start_server

from citypulse.store.base import PayloadRecord
from citypulse.store.duckdb import DuckDBStore

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
AXE = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
STROKE = {"good": "#16803c", "average": "#b35c00", "bad": "#c4221f"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture()
def site(
    speedmap_files: list[Path], tmp_path: Path
) -> Iterator[tuple[LiveServer, DuckDBStore, list[Path]]]:
    """All captures but the newest in the store; the newest is kept back for the live step."""
    store = DuckDBStore(str(tmp_path / "citypulse.duckdb"))
    fill(store, speedmap_files[:-1])
    now = datetime.now(UTC)
    newest = max(r.ts for r in truth.latest(speedmap_files[:-1]).values())
    store.record_fetch("td-speedmap", at=now, ok=True, rows=607, data_ts=newest)
    store.record_fetch("hko-rhrread", at=now, ok=False, error="timeout")
    store.record_payload(PayloadRecord("0f" * 32, "td-irn-speed", now, "quarantined",
                                       "html-error-page", "td-irn-speed/2024/x.xml", 0))
    server = start_server(make_app(store, tmp_path))
    try:
        yield server, store, speedmap_files
    finally:
        server.stop()
        store.close()


@pytest.fixture()
def contexts(
    browser: Any, site: tuple[LiveServer, DuckDBStore, list[Path]]
) -> Iterator[list[Any]]:
    """Browser contexts of a test, closed before the server stops (open SSE streams would
    otherwise hold the server's graceful shutdown)."""
    opened: list[Any] = []
    yield opened
    for context in opened:
        context.close()


def guard_network(page: Any, base: str) -> list[str]:
    """Abort and remember every request that is not for our own server."""
    outside: list[str] = []
    host = urlsplit(base).netloc

    def handle(route: Any) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob") or parts.netloc == host:
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", handle)
    return outside


def hkt_text(files: list[Path]) -> str:
    newest = max(r.ts for r in truth.latest(files).values())
    return newest.astimezone(truth.HKT).strftime("%Y-%m-%d %H:%M")


def test_traffic_map_updates_live_without_reload(
    browser: Any,
    site: tuple[LiveServer, DuckDBStore, list[Path]],
    contexts: list[Any],
    feeds_dir: Path,
    artifacts_dir: Path,
) -> None:
    server, store, files = site
    before, after = truth.latest(files[:-1]), truth.latest(files)
    ref = truth.reference(feeds_dir)
    n_links = len([k for k in before if k in ref])

    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-GB")
    contexts.append(context)
    if AXE.exists():
        # An init script is not subject to the page's CSP (an injected <script> tag is).
        context.add_init_script(path=str(AXE))
    page = context.new_page()
    outside = guard_network(page, server.url)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    navigations: list[str] = []
    page.on("framenavigated", lambda f: navigations.append(f.url) if f == page.main_frame else None)

    page.goto(f"{server.url}/dashboards/traffic")
    page.wait_for_selector("#traffic-map path.leaflet-interactive", state="attached")
    paths = page.locator("#traffic-map path.leaflet-interactive")
    assert paths.count() == n_links == 607
    assert page.locator("#traffic-table tbody tr[data-id]").count() == n_links
    assert page.locator("#traffic-updated").inner_text() == hkt_text(files[:-1])
    assert page.locator("#traffic-stale").is_visible()  # 2016 data is old
    page.wait_for_selector("#traffic-live[data-state='live']")
    page.wait_for_selector("#traffic-chart .uplot")
    assert server.bus.subscriber_count == 1

    changed = sorted(k for k in after if before[k].level != after[k].level)
    assert changed, "the two newest captures should differ somewhere"
    probe = changed[0]
    probe_path = page.locator(f'#traffic-map path[data-id="td-link:{probe}"]')
    assert probe_path.get_attribute("stroke") == STROKE[before[probe].level]
    counts_before = {lvl: page.locator(f"#stat-{lvl}").inner_text() for lvl in STROKE}
    page.evaluate("window.__sameDocument = true")
    page.screenshot(path=str(artifacts_dir / "traffic-before.png"), full_page=True)

    # Ingest the newest capture and announce it, as the pipeline does.
    from citypulse.feeds.registry import get_feed

    result = store.append(get_feed("td-speedmap").parse(files[-1].read_bytes(), FETCHED_AT))
    assert result.observations_written == 607
    server.bus.publish("traffic", {"feed_id": "td-speedmap", "rows": 607})

    page.wait_for_function(
        "text => document.getElementById('traffic-updated').textContent === text",
        arg=hkt_text(files),
    )
    page.wait_for_function(
        "([sel, colour]) => document.querySelector(sel).getAttribute('stroke') === colour",
        arg=[f'#traffic-map path[data-id="td-link:{probe}"]', STROKE[after[probe].level]],
    )
    row = page.locator(f'#traffic-table tr[data-id="td-link:{probe}"]')
    assert row.locator('[data-col="speed"]').inner_text() == f"{after[probe].speed:.0f}"
    assert f"sat-{after[probe].level}" in (
        row.locator('[data-col="saturation"] span').get_attribute("class") or ""
    )
    expected_counts = {lvl: str(sum(r.level == lvl for r in after.values())) for lvl in STROKE}
    assert {lvl: page.locator(f"#stat-{lvl}").inner_text() for lvl in STROKE} == expected_counts
    assert expected_counts != counts_before
    assert page.evaluate("window.__sameDocument") is True
    assert len(navigations) == 1, navigations
    assert paths.count() == n_links
    page.screenshot(path=str(artifacts_dir / "traffic-after.png"), full_page=True)

    # Picking a link from the map loads its chart.
    other = page.locator(f'#traffic-map path[data-id="td-link:{changed[1]}"]')
    other.dispatch_event("click")
    assert page.locator("#link-select").input_value() == f"td-link:{changed[1]}"
    page.wait_for_selector("#traffic-chart .uplot")

    if AXE.exists():
        report = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        serious = [v for v in report["violations"] if v["impact"] in ("serious", "critical")]
        (artifacts_dir / "traffic-axe.json").write_text(json.dumps(report["violations"], indent=1))
        assert serious == [], [(v["id"], v["help"], len(v["nodes"])) for v in serious]

    context.close()
    assert outside == [], outside
    assert [e for e in errors if not re.search(r"favicon", e)] == []


def test_traffic_page_on_a_phone_in_chinese(
    browser: Any,
    site: tuple[LiveServer, DuckDBStore, list[Path]],
    contexts: list[Any],
    artifacts_dir: Path,
) -> None:
    server, _store, _files = site
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
        has_touch=True, locale="zh-HK",
    )
    contexts.append(context)
    page = context.new_page()
    outside = guard_network(page, server.url)
    page.goto(f"{server.url}/zh-hant/dashboards/traffic")
    page.wait_for_selector("#traffic-map path.leaflet-interactive", state="attached")
    page.wait_for_selector("#traffic-chart .uplot")
    assert page.locator("h1").inner_text() == "交通速度"
    assert page.locator("html").get_attribute("lang") == "zh-Hant"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"page scrolls sideways on a phone ({width}px)"
    page.screenshot(path=str(artifacts_dir / "traffic-phone-zh.png"), full_page=True)
    page.locator(".panel-map").screenshot(path=str(artifacts_dir / "traffic-phone-zh-map.png"))
    page.locator("#traffic-table").locator("xpath=..").screenshot(
        path=str(artifacts_dir / "traffic-phone-zh-table.png")
    )
    page.goto(f"{server.url}/zh-hant/status")
    page.screenshot(path=str(artifacts_dir / "status-phone-zh.png"), full_page=True)
    context.close()
    assert outside == [], outside


def test_status_and_docs_pages(
    browser: Any,
    site: tuple[LiveServer, DuckDBStore, list[Path]],
    contexts: list[Any],
    artifacts_dir: Path,
) -> None:
    server, _store, _files = site
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    contexts.append(context)
    page = context.new_page()
    outside = guard_network(page, server.url)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{server.url}/status")
    page.wait_for_function("typeof window.htmx === 'object'")
    assert page.locator('#feeds-table tr[data-feed="td-speedmap"] .status-up').count() == 1
    assert page.locator('#feeds-table tr[data-feed="hko-rhrread"] .status-down').count() == 1
    assert "html-error-page" in page.locator("#quarantine-table").inner_text()
    assert page.locator("#feeds-table tbody tr").count() >= 1
    page.screenshot(path=str(artifacts_dir / "status.png"), full_page=True)
    page.goto(f"{server.url}/docs")
    page.wait_for_selector(".swagger-ui .opblock")
    page.screenshot(path=str(artifacts_dir / "docs.png"))
    context.close()
    assert outside == [], outside
    assert errors == [], errors
