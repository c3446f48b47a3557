"""The portal in a real browser: sign in -> edit an initiative -> the history shows the change ->
the Atom feed has it; axe-core finds no accessibility violations on the main pages (English and
Chinese); keyboard users reach the content through the skip link. Nothing may leave 127.0.0.1.
Screenshots go to test-artifacts/portal-*.png."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from lxml import etree
from tests.blueprint.support import PASSWORD, make_app
from tests.web.conftest import LiveServer, start_server

from citypulse.store import open_store

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("portal-e2e")
    store = open_store(str(folder / "citypulse.duckdb"))  # empty: live tiles say "no data yet"
    server = start_server(make_app(folder, store))
    yield server
    server.stop()
    store.close()


def guarded_page(browser: Any, base: str) -> tuple[Any, Any, list[str]]:
    """A fresh context + page whose requests outside the test server are aborted and listed."""
    # bypass_csp: only so axe-core (test tooling) can be injected; the app's CSP itself is
    # checked in a real browser by tests/web/test_security_browser.py.
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, locale="en-GB", bypass_csp=True
    )
    page = context.new_page()
    escaped: list[str] = []
    origin = urlsplit(base).netloc

    def handle(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).netloc == origin or url.startswith(("data:", "about:")):
            route.continue_()
        else:
            escaped.append(url)
            route.abort()

    page.route("**/*", handle)
    return context, page, escaped


def axe_violations(page: Any) -> list[dict[str, Any]]:
    if not AXE.exists():
        pytest.skip(f"axe-core not installed at {AXE} (cd tests/web/axe && npm ci)")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"][:5]]}
        for v in result
    ]


def test_login_edit_history_atom(browser: Any, site: LiveServer, artifacts_dir: Path) -> None:
    context, page, escaped = guarded_page(browser, site.url)
    page.goto(site.url + "/initiatives/mobility-05")
    page.get_by_role("link", name="Digital office sign in").click()
    page.wait_for_url("**/login?next=/initiatives/mobility-05")
    page.get_by_label("Username").fill("eddie")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(site.url + "/initiatives/mobility-05")
    assert "Signed in as" in page.inner_text(".portal-userbar")

    page.get_by_role("link", name="Edit", exact=True).click()
    page.wait_for_url("**/initiatives/mobility-05/edit")
    page.get_by_label("Progress status").select_option("completed")
    page.get_by_label("Status as of").fill("2025-06")
    note = "Fund fully committed; check STF annual report 2025"
    page.get_by_label("Change note").fill(note)
    page.screenshot(path=str(artifacts_dir / "portal-edit.png"), full_page=True)
    page.get_by_role("button", name="Save change").click()
    page.wait_for_url("**/initiatives/mobility-05?saved=1#history")
    history = page.inner_text("#history")
    assert note in history and "by eddie" in history and "Completed" in history
    assert page.inner_text(".status-line").startswith("Completed")
    page.screenshot(path=str(artifacts_dir / "portal-history.png"), full_page=True)

    feed = etree.fromstring(page.request.get(site.url + "/initiatives/updates.atom").body())
    entry = feed.find(f"{ATOM}entry")
    assert entry is not None
    assert entry.findtext(f"{ATOM}title") == "Smart Traffic Fund: updated by eddie"
    assert note in (entry.findtext(f"{ATOM}summary") or "")
    assert entry.find(f"{ATOM}link").get("href").endswith("/initiatives/mobility-05#history")

    # the edit form, signed in, is accessible too
    page.goto(site.url + "/initiatives/mobility-05/edit")
    assert axe_violations(page) == []
    assert escaped == []
    context.close()


PAGES = [
    ("home", "/"),
    ("list", "/initiatives?q=traffic&sort=title"),
    ("initiative", "/initiatives/mobility-06"),
    ("login", "/login"),
    ("progress", "/progress"),
    ("area", "/areas/smart-village"),
    ("home-zh", "/zh-hant/"),
    ("list-zh", "/zh-hant/initiatives"),
    ("initiative-zh", "/zh-hant/initiatives/mobility-02"),
    ("login-zh", "/zh-hant/login"),
    ("not-found", "/initiatives/nope-01"),
]


@pytest.mark.parametrize(("name", "path"), PAGES, ids=[p[0] for p in PAGES])
def test_axe_no_violations(
    browser: Any, site: LiveServer, artifacts_dir: Path, name: str, path: str
) -> None:
    context, page, escaped = guarded_page(browser, site.url)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(site.url + path)
    page.screenshot(path=str(artifacts_dir / f"portal-{name}.png"), full_page=True)
    violations = axe_violations(page)
    assert violations == [], json.dumps(violations, indent=1)
    assert escaped == []
    # the only console error allowed is the 404 status of the not-found page itself
    assert [e for e in errors if "404" not in e] == []
    context.close()


def test_keyboard_skip_link_and_filters(browser: Any, site: LiveServer) -> None:
    context, page, _ = guarded_page(browser, site.url)
    page.goto(site.url + "/initiatives")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # the search form works from the keyboard alone
    page.focus("#f-q")
    page.keyboard.type("智方便")
    page.keyboard.press("Enter")
    page.wait_for_url("**/initiatives?q=*")
    assert page.locator("table tbody tr").first.inner_text().startswith("iAM Smart")
    page.select_option("#f-area", "covid-19")
    page.focus("#f-q")
    page.fill("#f-q", "")
    page.keyboard.press("Enter")
    page.wait_for_url("**/initiatives?area=covid-19")
    assert page.locator("table tbody tr").count() == 12
    context.close()
