"""Server-rendered pages: the traffic dashboard, /status and /docs, in English and Traditional
Chinese, complete without JavaScript and without any third-party URL."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.web import truth
from tests.web.conftest import make_app

from citypulse.store.base import PayloadRecord
from citypulse.store.duckdb import DuckDBStore
from citypulse.web.i18n import gettext
from citypulse.web.templating import TEMPLATES_DIR

STATIC = Path(__file__).resolve().parents[2] / "src" / "citypulse" / "web" / "static"
MY_TEMPLATES = ("base.html", "docs.html", "status.html", "dashboards/traffic.html")


class Collector(HTMLParser):
    """Collects the asset URLs, table rows and the html lang of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.rows: dict[str, list[str]] = {}
        self.lang = ""
        self.inline_scripts = 0
        self.inline_handlers = 0
        self.style_attrs = 0
        self._script_json = False
        self._table: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang") or ""
        for key in ("src", "href"):
            if a.get(key):
                self.urls.append(str(a[key]))
        if tag == "script" and not a.get("src"):
            if a.get("type") == "application/json":
                self._script_json = True
            else:
                self.inline_scripts += 1
        self.inline_handlers += sum(1 for k in a if k.startswith("on"))
        self.style_attrs += "style" in a
        if tag == "table":
            self._table = a.get("id") or ""
            self.rows[self._table] = []
        if tag == "tr" and self._table is not None and a.get("data-id"):
            self.rows[self._table].append(str(a["data-id"]))
        if tag == "tr" and self._table is not None and a.get("data-feed"):
            self.rows[self._table].append(str(a["data-feed"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None


def parse(html: str) -> Collector:
    c = Collector()
    c.feed(html)
    return c


def assert_self_contained(page: Collector) -> None:
    """No CDN, no inline script or handler (a strict CSP comes later)."""
    external = [u for u in page.urls if re.match(r"^(https?:)?//", u)]
    assert external == [], external
    assert page.inline_scripts == 0
    assert page.inline_handlers == 0
    assert page.style_attrs == 0


@pytest.mark.parametrize("prefix", ["", "/zh-hant"])
def test_traffic_page_renders_every_link(
    client: TestClient, speedmap_files: list[Path], prefix: str
) -> None:
    r = client.get(f"{prefix}/dashboards/traffic")
    assert r.status_code == 200
    page = parse(r.text)
    assert_self_contained(page)
    expected = truth.latest(speedmap_files)
    rows = page.rows["traffic-table"]
    assert sorted(rows) == sorted(f"td-link:{k}" for k in expected)
    newest = max(rec.ts for rec in expected.values()).astimezone(truth.HKT)
    assert newest.strftime("%Y-%m-%d %H:%M") in r.text
    assert 'id="traffic-stale"' in r.text and "is-stale" in r.text  # 2016 data is stale
    for url in ("/static/vendor/leaflet/leaflet.js", "/static/vendor/uplot/uPlot.iife.min.js",
                "/static/js/traffic.js", "/static/css/site.css"):
        assert url in page.urls
    if prefix:
        assert page.lang == "zh-Hant"
        assert "交通速度" in r.text and ("擠塞" in r.text or "暢順" in r.text)
        assert 'href="/zh-hant/status"' in r.text
    else:
        assert page.lang == "en"
        assert "Traffic speeds" in r.text


def test_traffic_row_values_match_the_file(
    client: TestClient, speedmap_files: list[Path]
) -> None:
    html = client.get("/dashboards/traffic").text
    rec = truth.latest(speedmap_files)["3006-30069"]
    row = re.search(r'<tr data-id="td-link:3006-30069">(.*?)</tr>', html, re.S)
    assert row is not None
    assert f'data-col="speed">{rec.speed:.0f}</td>' in row[1]
    assert f"sat-{rec.level}" in row[1]


def test_traffic_page_with_an_empty_store(tmp_path: Path) -> None:
    store = DuckDBStore(":memory:")
    try:
        with TestClient(make_app(store, tmp_path)) as c:
            r = c.get("/dashboards/traffic")
            assert r.status_code == 200
            assert "No road links in the store yet." in r.text
            assert "no data yet" in r.text
            assert c.get("/api/v1/traffic/links.geojson").json()["features"] == []
    finally:
        store.close()


@pytest.mark.parametrize("prefix", ["", "/zh-hant"])
def test_status_page_lists_feeds_and_quarantine(tmp_path: Path, prefix: str) -> None:
    store = DuckDBStore(":memory:")
    try:
        now = datetime.now(UTC)
        store.record_fetch("td-speedmap", at=now, ok=True, rows=607, data_ts=now)
        store.record_fetch("hko-rhrread", at=now, ok=False, error="http-503")
        store.record_payload(PayloadRecord("c0ffee" * 10 + "abcd", "td-speedmap", now,
                                           "quarantined", "malformed-xml", "archive/x.xml", 0))
        with TestClient(make_app(store, tmp_path)) as c:
            r = c.get(f"{prefix}/status")
            assert r.status_code == 200
            page = parse(r.text)
            assert_self_contained(page)
            feeds = c.get("/api/v1/feeds").json()
            assert page.rows["feeds-table"] == [f["id"] for f in feeds]
            status = {f["id"]: f["status"] for f in feeds}
            assert status["td-speedmap"] == "up" and status["hko-rhrread"] == "down"
            assert 'data-feed="hko-rhrread" data-status="down"' in r.text
            assert "http-503" in r.text
            assert "malformed-xml" in r.text and "c0ffeec0ffee" in r.text
            assert "/static/vendor/htmx/htmx.min.js" in page.urls
            if prefix:
                assert "實時模式" in r.text and "已隔離的數據" in r.text
            else:
                assert "Live mode" in r.text and "Quarantined payloads" in r.text
            assert "demo-banner" not in r.text
    finally:
        store.close()


def test_demo_mode_is_visible(tmp_path: Path) -> None:
    store = DuckDBStore(":memory:")
    try:
        with TestClient(make_app(store, tmp_path, demo=True)) as c:
            for path in ("/status", "/dashboards/traffic", "/zh-hant/status"):
                html = c.get(path).text
                assert 'class="demo-banner"' in html, path
            assert "Demo mode:" in c.get("/status").text
            assert "Nothing is quarantined." in c.get("/status").text
    finally:
        store.close()


def test_docs_served_locally(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200
    page = parse(r.text)
    assert_self_contained(page)
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page.urls
    assert 'data-openapi-url="/openapi.json"' in r.text
    assert client.get("/redoc").status_code == 404


def test_static_assets_are_served(client: TestClient) -> None:
    for path in ("/static/css/site.css", "/static/js/traffic.js", "/static/js/live.js",
                 "/static/js/timefmt.js", "/static/js/swagger-init.js", "/static/img/favicon.svg"):
        assert client.get(path).status_code == 200, path


def test_vendor_bundle_is_built() -> None:
    """hatch_build.py copies frontend/vendor.json's files on `pip install -e .`."""
    import json

    manifest = json.loads((STATIC.parents[3] / "frontend" / "vendor.json").read_text())
    missing = [d for d in manifest.values() if not (STATIC / "vendor" / d).is_file()]
    assert not missing, f"run `pip install -e .` to build the vendor bundle; missing {missing}"


def test_every_ui_string_is_translated() -> None:
    """Each _("...") in these templates has a Traditional Chinese translation."""
    pattern = re.compile(r"""_\((["'])(.+?)\1\)""")
    missing = []
    for name in MY_TEMPLATES:
        for _q, msgid in pattern.findall((TEMPLATES_DIR / name).read_text(encoding="utf-8")):
            if gettext("zh-Hant", msgid) == msgid and msgid not in {"API", "SHA-256"}:
                missing.append(f"{name}: {msgid}")
    assert missing == []
