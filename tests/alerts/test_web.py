"""``/alerts`` in both languages with its filters, the alerts API, and the banner assets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from lxml import html

from citypulse.alerts.engine import AlertEngine
from citypulse.alerts.rules import RuleSet
from citypulse.config import Settings
from citypulse.store.bus import InProcessBus
from citypulse.store.duckdb import DuckDBStore
from citypulse.web.app import create_app

from .support import Clock, flood_sensor, obs_batch, station

NOW = datetime.now(UTC).replace(second=0, microsecond=0)


@pytest.fixture
def client(store: DuckDBStore, rules: RuleSet, tmp_path: Path) -> Iterator[TestClient]:
    engine = AlertEngine(store, None, rules, clock=Clock(NOW))
    st, gauge = station("central"), flood_sensor("mui-wo-flood-01", level=100)
    t = NOW - timedelta(hours=3)
    # A cleared AQHI alert (high) and an open flood alert (high), plus an open moderate one.
    engine.process_batch(obs_batch([(st.id, "aqhi", t, 8), (gauge.id, "water_level_cm", t, 130)],
                                   entities=[st, gauge]))
    engine.process_batch(obs_batch([(st.id, "aqhi", t + timedelta(hours=1), 4)]))
    slow = type(st)("td-link:1-2", "road-link", "Link 1-2", "路段 1-2")
    engine.process_batch(obs_batch([(slow.id, "speed_kmh", t, 5),
                                    (slow.id, "speed_kmh", t + timedelta(minutes=12), 6)],
                                   entities=[slow]))
    app = create_app(Settings(data_dir=tmp_path), store, InProcessBus())
    app.state.alert_engine = engine
    with TestClient(app) as c:
        yield c


def test_api_lists_and_filters(client: TestClient) -> None:
    everything = client.get("/api/v1/alerts").json()
    assert {a["properties"]["rule_id"] for a in everything} == {
        "aqhi-high", "flood-level", "road-link-slow"}
    assert all(a["kind"] == "alert" for a in everything)
    opened = client.get("/api/v1/alerts", params={"state": "open"}).json()
    assert {a["properties"]["rule_id"] for a in opened} == {"flood-level", "road-link-slow"}
    assert all(a["ends_at"] is None for a in opened)
    closed = client.get("/api/v1/alerts", params={"state": "closed"}).json()
    assert [a["properties"]["rule_id"] for a in closed] == ["aqhi-high"]
    high = client.get("/api/v1/alerts", params={"severity": "high", "state": "open"}).json()
    assert [a["properties"]["rule_id"] for a in high] == ["flood-level"]
    by_rule = client.get("/api/v1/alerts", params={"rule": "road-link-slow"}).json()
    assert len(by_rule) == 1 and by_rule[0]["properties"]["value"] == 6
    assert client.get("/api/v1/alerts", params={"state": "nope"}).status_code == 422
    assert client.get("/api/v1/alerts", params={"end": "2025-01-01T00:00:00"}).status_code == 400


def test_rules_engine_and_deliveries_api(client: TestClient) -> None:
    rules = client.get("/api/v1/alerts/rules").json()
    assert [r["id"] for r in rules["rules"]][:2] == ["aqhi-high", "rainstorm-warning"]
    assert rules["webhooks"] == []
    engine = client.get("/api/v1/alerts/engine").json()
    assert engine["running"] is True and engine["open"] == 2
    assert client.get("/api/v1/alerts/deliveries").json() == []
    assert "/api/v1/alerts" in client.get("/openapi.json").json()["paths"]


def test_page_in_english_with_filters(client: TestClient) -> None:
    page = client.get("/alerts")
    assert page.status_code == 200
    doc = html.fromstring(page.text)
    rows = doc.xpath("//table[@id='alerts-table']/tbody/tr")
    assert len(rows) == 3
    assert sorted(r.get("data-state") for r in rows) == ["cleared", "open", "open"]
    assert doc.xpath("string(//strong[@id='open-count'])") == "2"
    # The live banner shows the open high alert, server-rendered.
    banner = doc.xpath("//section[@id='alert-banner']")[0]
    assert banner.get("hidden") is None and "mui-wo-flood-01 gauge" in banner.text_content()
    assert doc.xpath("//script[@src='/alerts/alerts.js']")
    opened = html.fromstring(client.get("/alerts", params={"state": "open",
                                                           "severity": "high"}).text)
    assert len(opened.xpath("//table[@id='alerts-table']/tbody/tr")) == 1
    none = html.fromstring(client.get("/alerts", params={"rule": "tropical-cyclone-8"}).text)
    assert none.xpath("//p[@class='empty']")
    # Junk filters fall back to defaults instead of failing.
    junk = {"severity": "x", "days": 5, "rule": "y"}
    assert client.get("/alerts", params=junk).status_code == 200


def test_page_in_traditional_chinese(client: TestClient) -> None:
    page = client.get("/zh-hant/alerts")
    assert page.status_code == 200
    doc = html.fromstring(page.text)
    assert doc.get("lang") == "zh-Hant"
    assert doc.xpath("string(//h1)") == "警報"
    assert "生效中" in page.text and "嚴重程度" in page.text
    assert "水浸感測器水位高於警戒水平" in page.text  # rule titles in Chinese
    assert "中西區" in page.text  # district names, not ids
    assert doc.xpath("//form[@class='alert-filters']/@action") == ["/zh-hant/alerts"]


def test_assets(client: TestClient) -> None:
    js = client.get("/alerts/alerts.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert 'subscribe(["alerts"]' in js.text
    css = client.get("/alerts/alerts.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert client.get("/alerts/other.js").status_code == 404
    assert client.get("/alerts/..%2Fbase.html").status_code == 404


def test_without_engine_the_page_uses_the_store(store: DuckDBStore, tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path), store, InProcessBus())
    with TestClient(app) as c:
        assert c.get("/alerts").status_code == 200
        assert c.get("/api/v1/alerts/engine").json() == {"running": False}
        assert len(c.get("/api/v1/alerts/rules").json()["rules"]) == 6
        (tmp_path / "alerts.yaml").write_text("rules: [")
        app.state.alert_rules = None
        assert c.get("/api/v1/alerts/rules").status_code == 503
        assert "invalid" in c.get("/alerts").text
