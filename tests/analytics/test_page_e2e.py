"""The analytics page in headless Chromium: the chart draws, choosing a link swaps the forecast
in place, no console or CSP errors, no serious axe violations. Nothing leaves 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from tests.web.conftest import LiveServer, make_app, start_server

from citypulse.analytics.simulated import SimulatedHistory
from citypulse.store.duckdb import DuckDBStore

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
AXE = Path(__file__).parents[1] / "web" / "axe" / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="module")
def server(
    sim_store: tuple[DuckDBStore, SimulatedHistory], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    s = start_server(make_app(sim_store[0], tmp_path_factory.mktemp("web")))
    yield s
    s.stop()


@pytest.mark.parametrize("prefix", ["", "/zh-hant"])
def test_analytics_page_in_a_browser(
    server: LiveServer,
    sim_store: tuple[DuckDBStore, SimulatedHistory],
    prefix: str,
    artifacts_dir: Path,
) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        outside: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))

        def guard(route: Any) -> None:
            if urlsplit(route.request.url).hostname != "127.0.0.1":
                outside.append(route.request.url)
                route.abort()
            else:
                route.continue_()

        page.route("**/*", guard)
        page.goto(f"{server.url}{prefix}/dashboards/traffic/analytics")
        page.wait_for_selector("#an-pattern-chart .uplot")
        page.evaluate("window.__sameDocument = true")
        before = page.inner_text("#an-forecast-body")
        other = sim_store[1].entities[5].id
        page.select_option("#an-link", other)
        page.wait_for_function(
            "(id) => new URL(location.href).searchParams.get('link') === id", arg=other
        )
        page.wait_for_selector("#an-forecast-table tbody tr >> nth=2")
        assert page.evaluate("window.__sameDocument") is True  # swapped in place
        assert page.inner_text("#an-forecast-body") != before
        page.screenshot(
            path=str(artifacts_dir / f"analytics{prefix.replace('/', '-')}.png"), full_page=True
        )
        if AXE.exists():
            # Evaluated over the DevTools protocol: the page's CSP refuses injected <script>s.
            page.evaluate(AXE.read_text(encoding="utf-8") + "\n;true")
            report = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
            serious = [v for v in report["violations"] if v["impact"] in ("serious", "critical")]
            (artifacts_dir / f"analytics-axe{prefix.replace('/', '-')}.json").write_text(
                json.dumps(report["violations"], indent=1)
            )
            assert serious == [], [(v["id"], v["help"], len(v["nodes"])) for v in serious]
        browser.close()
    assert outside == []
    assert [e for e in errors if "favicon" not in e] == []
