"""The analytics API and page over HTTP, validated against the documented response models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from citypulse.analytics.simulated import SimulatedHistory
from citypulse.config import Settings
from citypulse.store.bus import InProcessBus
from citypulse.store.duckdb import DuckDBStore
from citypulse.web.app import create_app
from citypulse.web.routes.analytics import (
    CongestionOut,
    ForecastOut,
    LinksCongestionOut,
    PatternsOut,
)
from citypulse.web.routes.api import EventOut

from .conftest import short_store


def make_client(store: DuckDBStore, data_dir: Path) -> TestClient:
    return TestClient(create_app(Settings(data_dir=data_dir), store, InProcessBus()))


@pytest.fixture(scope="module")
def client(
    sim_store: tuple[DuckDBStore, SimulatedHistory], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    with make_client(sim_store[0], tmp_path_factory.mktemp("data")) as c:
        yield c


def test_congestion(client: TestClient, sim_store: tuple[DuckDBStore, SimulatedHistory]) -> None:
    r = client.get("/api/v1/analytics/congestion", params={"top": 5})
    assert r.status_code == 200
    body = CongestionOut.model_validate(r.json())
    assert body.at is not None and body.last_week_at is not None
    assert {a.key for a in body.regions} <= {"HK", "K", "TM", "ST"} and body.regions
    assert body.city.links_total == len(sim_store[1].entities)
    assert len(body.worst) == 5
    indices = [x.index for x in body.worst]
    assert indices == sorted(indices, reverse=True)
    assert all(0 <= (x.index or 0) <= 1 for x in body.worst)
    assert body.free_flow_sources == {"night": len(sim_store[1].entities)}
    links = LinksCongestionOut.model_validate(
        client.get("/api/v1/analytics/congestion/links").json()
    )
    assert len(links.links) == len(sim_store[1].entities)


@pytest.mark.parametrize("group", ["city", "region", "district"])
def test_patterns(client: TestClient, group: str) -> None:
    r = client.get("/api/v1/analytics/congestion/patterns", params={"group": group, "days": 7})
    assert r.status_code == 200
    body = PatternsOut.model_validate(r.json())
    assert body.hourly and all(len(h.weekday) == 24 for h in body.hourly)
    city = body.hourly[0]
    if group == "city":
        assert (city.weekday[8] or 0) > (city.weekday[3] or 0)  # the morning peak shows
        assert len(body.daily[0].days) in (7, 8)


def test_anomalies(client: TestClient) -> None:
    r = client.get("/api/v1/analytics/anomalies", params={"hours": 72})
    assert r.status_code == 200
    events = TypeAdapter(list[EventOut]).validate_python(r.json())
    assert events, "the simulated history has incidents"
    for ev in events:
        assert ev.kind == "traffic-anomaly" and ev.entity_ids[0].startswith("td-link:")
        assert {"score", "observed_kmh", "baseline_kmh"} <= set(ev.properties)
    starts = [e.starts_at for e in events]
    assert starts == sorted(starts, reverse=True)
    assert client.get("/api/v1/analytics/anomalies", params={"source": "detectors"}).json() == []
    assert client.get("/api/v1/analytics/anomalies", params={"hours": 0}).status_code == 422


def test_forecast(client: TestClient, sim_store: tuple[DuckDBStore, SimulatedHistory]) -> None:
    link = sim_store[1].entities[0].id
    r = client.get("/api/v1/analytics/forecast", params={"entity_id": link})
    assert r.status_code == 200
    body = ForecastOut.model_validate(r.json())
    assert body.status == "ok" and [p.horizon_min for p in body.points] == [15, 30, 60]
    assert client.get("/api/v1/analytics/forecast", params={"entity_id": "nope"}).status_code == 404
    assert client.get("/api/v1/analytics/forecast").status_code == 422
    every = TypeAdapter(list[ForecastOut]).validate_python(
        client.get("/api/v1/analytics/forecasts").json()
    )
    assert len(every) == len(sim_store[1].entities)


def test_forecast_with_too_little_history(tmp_path: Path) -> None:
    store, h = short_store(tmp_path / "short.duckdb", hours=20)
    try:
        with make_client(store, tmp_path) as c:
            r = c.get("/api/v1/analytics/forecast", params={"entity_id": h.entities[0].id})
            assert r.status_code == 200
            body = ForecastOut.model_validate(r.json())
            assert body.status == "insufficient-history" and body.points == []
            assert body.detail and "history" in body.detail
            page = c.get("/dashboards/traffic/analytics", params={"link": h.entities[0].id})
            assert 'data-status="insufficient-history"' in page.text
            assert "Not enough history for a forecast." in page.text
    finally:
        store.close()


def test_empty_store(tmp_path: Path) -> None:
    store = DuckDBStore(str(tmp_path / "empty.duckdb"))
    try:
        with make_client(store, tmp_path) as c:
            body = CongestionOut.model_validate(c.get("/api/v1/analytics/congestion").json())
            assert body.at is None and body.regions == []
            assert c.get("/api/v1/analytics/anomalies").json() == []
            assert c.get("/api/v1/analytics/forecasts").json() == []
            page = c.get("/dashboards/traffic/analytics")
            assert page.status_code == 200 and "No road speed data" in page.text
    finally:
        store.close()


@pytest.mark.parametrize("prefix", ["", "/zh-hant"])
def test_page(
    client: TestClient, prefix: str, sim_store: tuple[DuckDBStore, SimulatedHistory]
) -> None:
    r = client.get(f"{prefix}/dashboards/traffic/analytics")
    assert r.status_code == 200
    html = r.text
    for marker in (
        'id="an-regions"', 'id="an-worst"', 'id="an-anomalies"', 'id="an-forecast-table"',
        "/static/js/analytics.js", "/static/css/analytics.css",
    ):
        assert marker in html
    assert "<script>" not in html  # no inline scripts: only a JSON data block and modules
    if prefix:
        assert "擠塞分析" in html and "車速預測" in html
    else:
        assert "Congestion analytics" in html
    other = sim_store[1].entities[3].id
    chosen = client.get(f"{prefix}/dashboards/traffic/analytics", params={"link": other}).text
    assert f'<option value="{other}" selected>' in chosen
    assert client.get("/static/js/analytics.js").status_code == 200


def test_openapi_documents_the_endpoints(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("congestion", "congestion/links", "congestion/patterns", "anomalies",
              "forecast", "forecasts"):
        assert f"/api/v1/analytics/{p}" in paths
    assert "/dashboards/traffic/analytics" not in paths


def test_real_speed_map_captures(feeds_dir: Path, tmp_path: Path) -> None:
    """The ten real 2016 captures (54 minutes): congestion from road-type priors, no anomaly
    (no weekly baseline yet), forecasts refused for lack of history."""
    from datetime import UTC, datetime

    from citypulse.feeds.registry import get_feed

    files = sorted((feeds_dir / "td-speedmap").glob("speedmap_*.xml"))
    store = DuckDBStore(str(tmp_path / "real.duckdb"))
    spec = get_feed("td-speedmap")
    for f in files:
        store.append(spec.parse(f.read_bytes(), datetime(2016, 10, 14, 11, tzinfo=UTC)))
    try:
        with make_client(store, tmp_path) as c:
            body = CongestionOut.model_validate(c.get("/api/v1/analytics/congestion").json())
            assert body.at is not None and body.at.isoformat().startswith("2016-10-14T10:5")
            assert body.free_flow_sources == {"prior": body.city.links_total}
            assert body.city.links > 600 and body.last_week_at is not None
            assert body.city.last_week_index is None  # no capture a week earlier
            assert {a.key for a in body.regions} == {"HK", "K", "TM", "ST"}
            assert c.get("/api/v1/analytics/anomalies").json() == []
            fc = ForecastOut.model_validate(
                c.get("/api/v1/analytics/forecast",
                      params={"entity_id": body.worst[0].entity_id}).json()
            )
            assert fc.status == "insufficient-history" and fc.points == []
            assert c.get("/dashboards/traffic/analytics").status_code == 200
    finally:
        store.close()
