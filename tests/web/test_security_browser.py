"""The security headers in a real browser (headless Chromium through Playwright).

1. With the Content-Security-Policy enforced, the main pages (home, traffic, status, datasets,
   Swagger UI under /docs, ...) load with no CSP violation: ``securitypolicyviolation`` events
   and console errors are collected and must be empty. A violation means a page relies on
   inline script/style or a foreign origin.
2. With the CSP bypassed, the same site filled with hostile strings (see
   ``test_security_escaping.py``) must not run any of them: no dialog opens, also after hovering
   the map (Leaflet tooltips are set as HTML). This proves the escaping on its own, not only the
   policy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from tests.web.conftest import LiveServer, start_server
from tests.web.test_security_escaping import fill, hostile_portal

from citypulse.config import Settings
from citypulse.store.duckdb import DuckDBStore
from citypulse.web.app import create_app

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
CORE_PAGES = ["/", "/dashboards/traffic", "/status", "/datasets", "/docs"]
PAGES = [
    *CORE_PAGES, "/alerts", "/dashboards", "/dashboards/environment", "/dashboards/mobility",
    "/districts/central-and-western", "/initiatives", "/zh-hant/dashboards/traffic",
]
# Known DOM XSS, stopped by the CSP (see test_hostile_strings_are_stopped_by_the_csp): Leaflet
# sets a string tooltip as HTML, and these scripts pass entity names to it as strings.
# Fix: bindTooltip(() => document.createTextNode(text)) (Leaflet appends a node as is).
KNOWN_DOM_XSS = {
    "/dashboards/traffic": "static/js/traffic.js: line.bindTooltip(() => tooltipText(id))",
    "/zh-hant/dashboards/traffic": "static/js/traffic.js: line.bindTooltip(() => tooltipText(id))",
    "/districts/central-and-western": "static/js/dashboard.js drawPoints: m.bindTooltip(p.title)",
    "/dashboards/mobility": "static/js/dashboard.js drawPoints: m.bindTooltip(p.title)",
    "/dashboards/environment": "static/js/dashboard.js drawPoints: m.bindTooltip(p.title)",
}
COLLECT = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push([e.violatedDirective, e.blockedURI, e.sourceFile, e.lineNumber].join(' '));
});
"""
READY = {
    "/dashboards/traffic": "#traffic-map path.leaflet-interactive",
    "/zh-hant/dashboards/traffic": "#traffic-map path.leaflet-interactive",
    "/docs": ".swagger-ui .opblock",
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def _serve(tmp_path_factory: pytest.TempPathFactory, hostile: bool) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("browser-sec")
    store = DuckDBStore(str(data_dir / "citypulse.duckdb"))
    fill(store, data_dir, hostile=hostile)
    app = create_app(Settings(data_dir=data_dir), store)
    if hostile:
        hostile_portal(app, data_dir)
    live = start_server(app)
    try:
        yield live
    finally:
        live.stop()
        store.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Simulated data with ordinary names."""
    yield from _serve(tmp_path_factory, hostile=False)


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from _serve(tmp_path_factory, hostile=True)


def visit(browser: Any, base: str, path: str, *, bypass_csp: bool) -> dict[str, list[str]]:
    context = browser.new_context(bypass_csp=bypass_csp, viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        host = urlsplit(base).netloc
        found: dict[str, list[str]] = {"csp": [], "errors": [], "dialogs": [], "outside": []}

        def guard(route: Any) -> None:
            parts = urlsplit(route.request.url)
            if parts.scheme in ("data", "blob") or parts.netloc == host:
                route.continue_()
            else:
                found["outside"].append(route.request.url)
                route.abort()

        page.route("**/*", guard)
        page.add_init_script(COLLECT)
        page.on("console", lambda m: found["errors"].append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: found["errors"].append(str(exc)))

        def on_dialog(dialog: Any) -> None:
            found["dialogs"].append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.goto(base + path, wait_until="load")
        if path in READY:
            page.wait_for_selector(READY[path], state="attached", timeout=30_000)
        # Late fetches (tile fragments, live updates) may still be running; an open SSE stream
        # can keep the network busy for good, hence the bound.
        with contextlib.suppress(Exception):
            page.wait_for_load_state("networkidle", timeout=5_000)
        # Map tooltips are built on hover from entity names: hover a few map shapes.
        shapes = page.locator(".leaflet-interactive")
        for i in range(min(3, shapes.count())):
            try:
                shapes.nth(i).hover(force=True, timeout=2_000)
            except Exception:  # hidden behind another shape: fine, try the next
                continue
            page.wait_for_timeout(100)
        found["csp"] = list(page.evaluate("window.__csp || []"))
        return found
    finally:
        context.close()


def check_csp(browser: Any, base: str, pages: list[str]) -> None:
    problems = {}
    for path in pages:
        found = visit(browser, base, path, bypass_csp=False)
        csp_console = [e for e in found["errors"] if "Content Security Policy" in e]
        if found["csp"] or csp_console or found["outside"]:
            problems[path] = {"violations": found["csp"], "console": csp_console,
                              "outside": found["outside"]}
    assert not problems, f"CSP violations: {problems}"


def test_core_pages_work_under_the_csp(browser: Any, server: LiveServer) -> None:
    check_csp(browser, server.url, CORE_PAGES)


@pytest.mark.slow
def test_all_pages_work_under_the_csp(browser: Any, server: LiveServer) -> None:
    check_csp(browser, server.url, PAGES)


@pytest.mark.slow
@pytest.mark.parametrize(
    "path",
    [
        pytest.param(p, marks=pytest.mark.xfail(reason=f"DOM XSS: {KNOWN_DOM_XSS[p]}"))
        if p in KNOWN_DOM_XSS
        else p
        for p in PAGES
    ],
)
def test_hostile_strings_do_not_run_even_without_csp(
    browser: Any, hostile_server: LiveServer, path: str
) -> None:
    found = visit(browser, hostile_server.url, path, bypass_csp=True)
    assert not found["dialogs"], f"hostile strings executed on {path}: {found['dialogs']}"


@pytest.mark.slow
def test_hostile_strings_are_stopped_by_the_csp(browser: Any, hostile_server: LiveServer) -> None:
    """Defence in depth: with the policy on, nothing hostile runs either."""
    ran = {}
    for path in PAGES:
        found = visit(browser, hostile_server.url, path, bypass_csp=False)
        if found["dialogs"]:
            ran[path] = found["dialogs"]
    assert not ran, f"hostile strings executed under the CSP: {ran}"
