"""``POST /api/v1/sensors/readings``: authentication, schema errors, future timestamps,
duplicates and size limits are refused with a stable reason and counted; accepted messages
reach the store, the raw archive and the alert engine like any feed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import orjson
import pytest
import zstandard
from fastapi.testclient import TestClient

from citypulse.alerts.engine import ALERT_KIND
from citypulse.config import Settings
from citypulse.web.app import create_app

from .conftest import NOW, Rig

URL = "/api/v1/sensors/readings"


@pytest.fixture
def client(rig: Rig) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=rig.data_dir), rig.store, rig.bus)
    app.state.sensor_ingest = rig.ingest
    app.state.alert_engine = rig.engine
    with TestClient(app) as c:
        yield c


def level(value: float, ts: str = "2025-08-08T10:00:00+08:00", **extra: Any) -> dict[str, Any]:
    return {"device_id": "tai-o-flood-01", "ts": ts,
            "readings": [{"metric": "water_level_cm", "value": value},
                         {"metric": "battery_pct", "value": 88}], **extra}


def post(client: TestClient, body: Any, key: str | None, raw: bytes | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["X-API-Key"] = key
    return client.post(URL, content=raw if raw is not None else orjson.dumps(body),
                       headers=headers)


def test_accepted_reading_is_stored_archived_and_evaluated(client: TestClient, rig: Rig) -> None:
    r = post(client, level(150), rig.key["flood"])
    assert r.status_code == 202
    assert r.json() == {"status": "accepted", "device_id": "tai-o-flood-01", "readings": 2,
                        "detections": 0, "duplicates": 0}
    (latest,) = rig.store.latest("water_level_cm")
    assert (latest.entity_id, latest.value, latest.ts) == ("sensor:tai-o-flood-01", 150, NOW)
    ent = rig.store.entity("sensor:tai-o-flood-01")
    assert ent is not None and ent.kind == "sensor" and ent.district == "Islands"
    assert ent.properties == {"sensor_type": "flood", "village": "Tai O", "village_zh": "大澳",
                              "alert_level_cm": 140}
    # The registry's alert level (140) decides, and the alert engine saw the batch.
    (alert,) = rig.store.events(NOW - timedelta(days=1), NOW + timedelta(days=1), kind=ALERT_KIND)
    assert alert.properties["rule_id"] == "flood-level" and alert.properties["threshold"] == 140
    # Raw message archived (canonical, without any key).
    files = list((rig.data_dir / "archive" / "smart-village").rglob("*.zst"))
    assert len(files) == 1
    archived = orjson.loads(zstandard.ZstdDecompressor().decompress(files[0].read_bytes()))
    assert archived["messages"][0]["device"]["village"] == "Tai O"
    assert rig.key["flood"] not in files[0].read_bytes().decode("latin-1")


def test_detection_over_http(client: TestClient, rig: Rig) -> None:
    body = {"detections": [{"detection": "illegal-dumping", "confidence": 0.93,
                            "ts": "2025-08-08T09:59:00+08:00"}]}
    r = post(client, body, rig.key["cam"])
    assert r.status_code == 202 and r.json()["detections"] == 1
    events = rig.store.events(NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    kinds = sorted(e.kind for e in events)
    assert kinds == ["alert", "detection"]
    det = next(e for e in events if e.kind == "detection")
    assert det.properties["detection"] == "illegal-dumping" and det.properties["village"] == "Pui O"


@pytest.mark.parametrize(
    ("body", "key", "status", "reason"),
    [
        (level(10), None, 401, "missing-key"),
        (level(10), "cpk_wrong", 401, "bad-key"),
        (level(10, device_id="pui-o-dumping-01"), "flood", 403, "device-mismatch"),
        ({"readings": [{"metric": "water_level_cm", "value": "deep"}]}, "flood", 422,
         "bad-schema"),
        ({"readings": [{"metric": "water_level_cm", "value": 3, "ts": "2025-08-08T10:00:00"}]},
         "flood", 422, "bad-schema"),
        ({"readings": [{"metric": "wind_speed_kmh", "value": 3}]}, "flood", 422,
         "unknown-metric"),
        ({"readings": [{"metric": "battery_pct", "value": 130}]}, "flood", 422, "out-of-range"),
        (level(10, ts="2025-08-08T10:05:01+08:00"), "flood", 422, "future-timestamp"),
        ([level(10)], "flood", 422, "bad-schema"),
    ],
)
def test_refusals(client: TestClient, rig: Rig, body: Any, key: str | None, status: int,
                  reason: str) -> None:
    r = post(client, body, rig.key.get(key or "", key))
    assert r.status_code == status, r.text
    out = r.json()
    assert out["status"] == "refused" and out["reason"] == reason and out["detail"]
    if status == 401:
        assert r.headers["www-authenticate"].startswith("ApiKey")
    stats = client.get("/api/v1/sensors/stats").json()
    assert stats["refused_by_reason"] == {reason: 1}
    assert stats["accepted"] == 0
    assert rig.store.count_observations() == 0


def test_bad_json_and_too_large(client: TestClient, rig: Rig) -> None:
    r = post(client, None, rig.key["flood"], raw=b"{nope")
    assert (r.status_code, r.json()["reason"]) == (400, "bad-json")
    big = b'{"readings": [' + b" " * (300 * 1024) + b"]}"
    r = post(client, None, rig.key["flood"], raw=big)
    assert (r.status_code, r.json()["reason"]) == (413, "too-large")


def test_revoked_key(client: TestClient, rig: Rig) -> None:
    assert post(client, level(10), rig.key["flood"]).status_code == 202
    rig.keys.revoke("tai-o-flood-01")
    r = post(client, level(11, ts="2025-08-08T09:58:00+08:00"), rig.key["flood"])
    assert (r.status_code, r.json()["reason"]) == (403, "revoked-key")


def test_timestamps_near_now_are_fine(client: TestClient, rig: Rig) -> None:
    r = post(client, level(10, ts="2025-08-08T10:04:59+08:00"), rig.key["flood"])
    assert r.status_code == 202
    no_ts = {"readings": [{"metric": "battery_pct", "value": 80}]}  # stamped on arrival
    assert post(client, no_ts, rig.key["flood"]).status_code == 202
    stamped = rig.store.series("sensor:tai-o-flood-01", "battery_pct", NOW, NOW + timedelta(
        seconds=1), timedelta(seconds=1))
    assert [p.avg for p in stamped] == [80]


def test_duplicates(client: TestClient, rig: Rig) -> None:
    first = level(40)
    assert post(client, first, rig.key["flood"]).status_code == 202
    again = post(client, first, rig.key["flood"])
    assert (again.status_code, again.json()["reason"]) == (409, "duplicate")
    # Same readings, other bytes (key order, spacing): still a duplicate, found in the store.
    reordered = {"readings": list(reversed(first["readings"])), "ts": first["ts"]}
    assert post(client, reordered, rig.key["flood"]).json()["reason"] == "duplicate"
    # An older reading the store already has, after the LRU forgot it: still found.
    rig.ingest._recent.clear()
    assert post(client, first, rig.key["flood"]).json()["reason"] == "duplicate"
    # Partly new: accepted, repeats counted; the stored value of a repeated key is kept.
    partly = {"ts": first["ts"], "readings": [{"metric": "water_level_cm", "value": 99},
                                              {"metric": "water_level_cm", "value": 41,
                                               "ts": "2025-08-08T10:01:00+08:00"}]}
    r = post(client, partly, rig.key["flood"])
    assert r.status_code == 202 and r.json()["duplicates"] == 1
    values = {p.ts: p.avg for p in rig.store.series(
        "sensor:tai-o-flood-01", "water_level_cm", NOW - timedelta(hours=1),
        NOW + timedelta(hours=1), timedelta(minutes=1))}
    assert values == {NOW: 40, NOW + timedelta(minutes=1): 41}
    # Detections: the same detection (same device, kind and time) twice is a duplicate.
    det = {"detections": [{"detection": "illegal-dumping", "confidence": 0.8,
                           "ts": "2025-08-08T09:00:00+08:00"}]}
    assert post(client, det, rig.key["cam"]).status_code == 202
    rig.ingest._recent.clear()
    assert post(client, det, rig.key["cam"]).json()["reason"] == "duplicate"


def test_stats_per_device_and_reason(client: TestClient, rig: Rig) -> None:
    post(client, level(10), rig.key["flood"])
    post(client, level(10), rig.key["flood"])  # duplicate
    post(client, level(10, ts="2025-08-08T12:00:00+08:00"), rig.key["flood"])  # future
    post(client, level(10), "cpk_nope")
    post(client, {"detections": [{"detection": "fire", "confidence": 0.9}]}, rig.key["cam"])
    stats = client.get("/api/v1/sensors/stats").json()
    assert stats["accepted"] == 2 and stats["refused"] == 3
    assert stats["refused_by_reason"] == {"bad-key": 1, "duplicate": 1, "future-timestamp": 1}
    flood = stats["devices"]["tai-o-flood-01"]
    assert flood["accepted"] == 1 and flood["readings"] == 2
    assert flood["refused"] == {"duplicate": 1, "future-timestamp": 1}
    assert stats["devices"]["(unknown)"]["refused"] == {"bad-key": 1}
    assert stats["devices"]["pui-o-dumping-01"]["detections"] == 1
    assert stats["by_transport"] == {"http:accepted": 2, "http:refused": 3}
    assert stats["mqtt"] is None


def test_sensorthings_body(client: TestClient, rig: Rig) -> None:
    body = {"value": [
        {"phenomenonTime": "2025-08-08T09:55:00+08:00", "result": 55.5,
         "Datastream": {"@iot.id": "tai-o-flood-01/water_level_cm"}},
        {"phenomenonTime": "2025-08-08T09:55:00+08:00", "result": 77,
         "Datastream": {"@iot.id": "tai-o-flood-01/battery_pct"}},
    ]}
    r = post(client, body, rig.key["flood"])
    assert r.status_code == 202 and r.json()["readings"] == 2
    other = {"phenomenonTime": "2025-08-08T09:55:00+08:00", "result": 1,
             "Datastream": {"@iot.id": "someone-else/battery_pct"}}
    assert post(client, other, rig.key["flood"]).json()["reason"] == "device-mismatch"


def test_schema_and_openapi(client: TestClient) -> None:
    schema = client.get("/api/v1/sensors/schema").json()
    assert "water_level_cm" in schema["metrics"]
    op = client.get("/openapi.json").json()["paths"][URL]["post"]
    assert "readings" in op["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert {"202", "401", "409", "422"} <= set(op["responses"])


def test_lazy_intake_uses_the_app_store(rig: Rig) -> None:
    app = create_app(Settings(data_dir=rig.data_dir), rig.store, rig.bus)
    app.state.alert_engine = rig.engine
    with TestClient(app) as c:
        r = post(c, level(150, ts="2025-08-08T10:03:00+08:00"), rig.key["flood"])
        assert r.status_code == 202
        intake = app.state.sensor_ingest
        assert rig.engine.on_stored in intake.pipeline.on_stored
