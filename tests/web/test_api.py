"""/api/v1 on a store filled from the real speed map captures: shapes (validated against the
documented response models), values against the files, and clear errors for bad parameters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter
from tests.web import truth
from tests.web.conftest import make_app

from citypulse.store.base import PayloadRecord
from citypulse.store.duckdb import DuckDBStore
from citypulse.web.routes.api import (
    AggregateOut,
    EntityOut,
    EventOut,
    FeedStatusOut,
    LatestOut,
    LinkCollection,
    SeriesOut,
    feed_status,
    feed_statuses,
    format_bucket,
    parse_bucket,
)

LINK = "3006-30069"
WINDOW = {"start": "2016-10-14T17:00:00+08:00", "end": "2016-10-14T20:00:00+08:00"}


def ok(client: TestClient, url: str, params: dict[str, Any] | None = None) -> Any:
    r = client.get(url, params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(("application/json", "application/geo+json"))
    return r.json()


def error(client: TestClient, url: str, params: dict[str, Any], status: int = 400) -> str:
    r = client.get(url, params=params)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    return detail if isinstance(detail, str) else str(detail)


def test_entities_are_the_links_of_the_files(
    client: TestClient, speedmap_files: list[Path]
) -> None:
    body = ok(client, "/api/v1/entities", {"kind": "road-link"})
    entities = TypeAdapter(list[EntityOut]).validate_python(body)
    expected = truth.latest(speedmap_files)
    assert {e.id for e in entities} == {f"td-link:{k}" for k in expected}
    assert all(e.kind == "road-link" for e in entities)
    page = ok(client, "/api/v1/entities", {"kind": "road-link", "limit": 5, "offset": 5})
    assert [e["id"] for e in page] == [e.id for e in entities[5:10]]
    assert ok(client, "/api/v1/entities", {"kind": "no-such-kind"}) == []


def test_one_entity_and_unknown_entity(client: TestClient, feeds_dir: Path) -> None:
    body = ok(client, f"/api/v1/entities/td-link:{LINK}")
    entity = EntityOut.model_validate(body)
    _lon0, lat0, lon1, _lat1 = truth.reference(feeds_dir)[LINK]
    assert entity.properties["start_lat"] == pytest.approx(lat0, abs=1e-6)
    assert entity.properties["end_lon"] == pytest.approx(lon1, abs=1e-6)
    assert entity.name_en and entity.name_zh
    assert "unknown entity" in error(client, "/api/v1/entities/td-link:nope", {}, 404)


def test_latest_matches_the_newest_record_per_link(
    client: TestClient, speedmap_files: list[Path]
) -> None:
    body = ok(client, "/api/v1/latest", {"metric": "speed_kmh", "kind": "road-link"})
    values = TypeAdapter(list[LatestOut]).validate_python(body)
    expected = truth.latest(speedmap_files)
    assert len(values) == len(expected)
    for v in values:
        rec = expected[v.entity_id.removeprefix("td-link:")]
        assert (v.value, v.label, v.ts) == (rec.speed, rec.level, rec.ts)
    some = ok(
        client,
        "/api/v1/latest",
        {"metric": "speed_kmh", "entity_id": [f"td-link:{LINK}", "td-link:3010-888301"]},
    )
    assert sorted(v["entity_id"] for v in some) == ["td-link:3006-30069", "td-link:3010-888301"]
    assert ok(client, "/api/v1/latest", {"metric": "no_such_metric"}) == []
    assert "metric" in error(client, "/api/v1/latest", {}, 422)


def test_series_has_one_point_per_capture(client: TestClient, speedmap_files: list[Path]) -> None:
    body = ok(
        client,
        "/api/v1/series",
        {"entity_id": f"td-link:{LINK}", "metric": "speed_kmh", "bucket": "1m", **WINDOW},
    )
    series = SeriesOut.model_validate(body)
    recs = {r.ts: r.speed for f in speedmap_files for r in truth.records(f) if r.link == LINK}
    assert [p.ts for p in series.points] == [
        t.replace(second=0) for t in sorted(recs)
    ]
    assert [p.avg for p in series.points] == [recs[t] for t in sorted(recs)]
    assert all(p.n == 1 for p in series.points)
    assert series.bucket == "1m" and series.bucket_s == 60
    assert series.start == datetime(2016, 10, 14, 9, tzinfo=UTC)


def test_series_default_bucket_is_automatic(client: TestClient) -> None:
    body = ok(client, "/api/v1/series", {"entity_id": f"td-link:{LINK}", "metric": "speed_kmh",
                                         **WINDOW})
    assert body["bucket"] == "1m"  # 3 h / 1 min = 180 points <= 720
    day = ok(client, "/api/v1/series", {"entity_id": f"td-link:{LINK}", "metric": "speed_kmh",
                                        "start": "2016-10-01T00:00:00Z",
                                        "end": "2016-10-15T00:00:00Z"})
    assert day["bucket"] == "1h"  # 14 days: 336 hourly points


@pytest.mark.parametrize(
    ("params", "status", "needle"),
    [
        ({"bucket": "7q"}, 400, "not a duration"),
        ({"bucket": "30s"}, 400, "1m..1d"),
        ({"bucket": "2d"}, 400, "1m..1d"),
        ({"bucket": "1m", "start": "2016-10-01T00:00:00Z", "end": "2016-10-31T00:00:00Z"},
         400, "use a larger bucket"),
        ({"start": "2014-01-01T00:00:00Z", "end": "2016-01-01T00:00:00Z"}, 400, "limit"),
        ({"start": "2016-10-14T19:00:00+08:00", "end": "2016-10-14T18:00:00+08:00"},
         400, "start must be before end"),
        ({"start": "2016-10-14T18:00:00", "end": "2016-10-14T19:00:00+08:00"},
         400, "timezone offset"),
        ({"start": "yesterday"}, 422, "datetime"),
        ({"entity_id": "td-link:nope"}, 404, "unknown entity"),
        ({"metric": None}, 422, "metric"),
    ],
)
def test_series_rejects_bad_parameters(
    client: TestClient, params: dict[str, Any], status: int, needle: str
) -> None:
    query = {"entity_id": f"td-link:{LINK}", "metric": "speed_kmh", **params}
    query = {k: v for k, v in query.items() if v is not None}
    assert needle in error(client, "/api/v1/series", query, status)


def test_bucket_parsing_round_trips() -> None:
    for text in ("1m", "5m", "15m", "90m", "1h", "6h", "1d"):
        assert format_bucket(parse_bucket(text)) == {"90m": "90m"}.get(text, text)
    assert parse_bucket("120m") == timedelta(hours=2)
    assert format_bucket(timedelta(minutes=120)) == "2h"


def test_aggregate_counts_entities(client: TestClient, speedmap_files: list[Path]) -> None:
    body = ok(client, "/api/v1/aggregate",
              {"kind": "road-link", "metric": "speed_kmh", "bucket": "1h", **WINDOW})
    agg = AggregateOut.model_validate(body)
    stored = {(r.link, r.ts): r.speed for f in speedmap_files for r in truth.records(f)}
    by_hour: dict[datetime, list[tuple[str, float]]] = {}
    for (link, ts), speed in stored.items():
        by_hour.setdefault(ts.replace(minute=0, second=0), []).append((link, speed))
    assert [p.ts for p in agg.points] == sorted(by_hour)
    for point in agg.points:
        rows = by_hour[point.ts]
        assert point.n == len(rows)
        assert point.entities == len({link for link, _ in rows})
        assert (point.min, point.max) == (min(v for _, v in rows), max(v for _, v in rows))
    assert "1m..1d" in error(client, "/api/v1/aggregate",
                             {"kind": "road-link", "metric": "speed_kmh", "bucket": "1s"})


def test_events_window_and_validation(client: TestClient) -> None:
    assert TypeAdapter(list[EventOut]).validate_python(ok(client, "/api/v1/events")) == []
    assert ok(client, "/api/v1/events", {"active": "true", "kind": "traffic-news"}) == []
    assert "before" in error(client, "/api/v1/events",
                             {"start": "2016-10-15T00:00:00Z", "end": "2016-10-14T00:00:00Z"})
    assert "timezone" in error(client, "/api/v1/events", {"end": "2016-10-14T00:00:00"})


def test_links_geojson_has_every_link_with_coordinates(
    client: TestClient, speedmap_files: list[Path], feeds_dir: Path
) -> None:
    r = client.get("/api/v1/traffic/links.geojson")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    fc = LinkCollection.model_validate(r.json())
    expected = truth.latest(speedmap_files)
    ref = truth.reference(feeds_dir)
    with_coords = {k for k in expected if k in ref}
    assert len(fc.features) == len(with_coords) == 607
    assert fc.updated == max(r.ts for r in expected.values())
    for feature in fc.features:
        link = feature.id.removeprefix("td-link:")
        lon0, lat0, lon1, lat1 = ref[link]
        (x0, y0), (x1, y1) = feature.geometry.coordinates
        assert (x0, y0, x1, y1) == pytest.approx((lon0, lat0, lon1, lat1), abs=1e-6)
        assert feature.properties.speed_kmh == expected[link].speed
        assert feature.properties.saturation == expected[link].level
        assert feature.properties.ts == expected[link].ts
    regions = {f.properties.region for f in fc.features}
    assert regions == {"HK", "K", "ST", "TM"}


def test_feeds_lists_the_registry_with_health(
    tmp_path: Path, speedmap_files: list[Path]
) -> None:
    store = DuckDBStore(":memory:")
    try:
        with TestClient(make_app(store, tmp_path)) as c:
            body = ok(c, "/api/v1/feeds")
            feeds = {f.id: f for f in TypeAdapter(list[FeedStatusOut]).validate_python(body)}
            assert feeds["td-speedmap"].status == "never"
            assert feeds["td-speedmap"].interval_s == 120
            assert feeds["td-speedmap"].url.startswith("https://")
            now = datetime.now(UTC)
            store.record_fetch("td-speedmap", at=now, ok=True, rows=607,
                               data_ts=now - timedelta(minutes=3))
            speedmap = next(f for f in ok(c, "/api/v1/feeds") if f["id"] == "td-speedmap")
            assert speedmap["status"] == "up"
            assert speedmap["last_rows"] == 607
            assert 170 < speedmap["data_lag_s"] < 600
            store.record_fetch("td-speedmap", at=now, ok=False, error="timeout")
            store.record_fetch("td-speedmap", at=now, ok=False, error="http-503")
            speedmap = next(f for f in ok(c, "/api/v1/feeds") if f["id"] == "td-speedmap")
            assert speedmap["status"] == "down"
            assert speedmap["consecutive_failures"] == 2
            assert speedmap["last_error"] == "http-503"
            # A health row for a feed that is no longer registered is still reported.
            store.record_fetch("retired-feed", at=now, ok=True, rows=1)
            retired = next(f for f in ok(c, "/api/v1/feeds") if f["id"] == "retired-feed")
            assert retired["registered"] is False
    finally:
        store.close()


def test_feed_status_goes_stale_without_success() -> None:
    store = DuckDBStore(":memory:")
    try:
        long_ago = datetime.now(UTC) - timedelta(hours=2)
        store.record_fetch("td-speedmap", at=long_ago, ok=True, rows=1)
        statuses = {s.id: s for s in feed_statuses(store)}
        assert statuses["td-speedmap"].status == "stale"
        assert feed_status(None, None, datetime.now(UTC)) == "never"
        store.record_payload(PayloadRecord("ab" * 32, "td-speedmap", long_ago, "quarantined",
                                           "malformed-xml", None, 0))
        assert store.payloads(status="quarantined")[0].reason == "malformed-xml"
    finally:
        store.close()


def test_openapi_documents_the_api(client: TestClient) -> None:
    spec = ok(client, "/openapi.json")
    paths = spec["paths"]
    for path in ("/api/v1/entities", "/api/v1/entities/{entity_id}", "/api/v1/latest",
                 "/api/v1/series", "/api/v1/aggregate", "/api/v1/events", "/api/v1/feeds",
                 "/api/v1/traffic/links.geojson", "/api/v1/stream"):
        assert path in paths, path
    schema = paths["/api/v1/series"]["get"]["responses"]["200"]["content"]["application/json"]
    assert schema["schema"]["$ref"].endswith("/SeriesOut")
    assert {"SeriesOut", "FeedStatusOut", "LinkCollection", "EntityOut"} <= set(
        spec["components"]["schemas"]
    )
    assert "/dashboards/traffic" not in paths and "/docs" not in paths


def test_stream_rejects_bad_topics(client: TestClient) -> None:
    assert "invalid topic" in error(client, "/api/v1/stream", {"topics": "traffic,Bad Topic!"})
