"""The ``smart-village`` feed parser (the push format every sensor path lands in) and its
simulator: counts and values checked against the JSON itself, skips counted, junk refused,
flood levels following the simulated rainstorms."""

from __future__ import annotations

import contextlib
import random
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citypulse.feeds.base import FeedError
from citypulse.feeds.registry import all_feeds, get_feed
from citypulse.feeds.smart_village import SPEC, parse
from citypulse.sensors.schema import SensorMessage
from citypulse.simulate import _hk_weather as wx
from citypulse.simulate.registry import all_simulators
from citypulse.simulate.smart_village import SIMULATOR, VILLAGES, water_level_cm

AT = datetime(2025, 8, 8, 2, 0, tzinfo=UTC)


def doc(*messages: dict[str, object]) -> bytes:
    return orjson.dumps({"schema": "citypulse.sensors/1", "messages": list(messages)})


def test_registered_push_feed() -> None:
    assert all_feeds()["smart-village"] is SPEC and not SPEC.enabled_by_default
    assert SPEC.url == "" and SPEC.topics == ("sensors",)
    assert all_simulators()["smart-village"] is SIMULATOR


def test_parse_counts_and_values() -> None:
    payload = doc(
        {"device_id": "tai-o-flood-01", "ts": "2025-08-08T10:00:00+08:00",
         "device": {"sensor_type": "flood", "village": "Tai O", "village_zh": "大澳",
                    "lat": 22.25, "lon": 113.86, "district": "Islands",
                    "properties": {"alert_level_cm": 140}},
         "readings": [{"metric": "water_level_cm", "value": 88.5},
                      {"metric": "battery_pct", "value": 90, "ts": "2025-08-08T01:59:00Z"},
                      {"metric": "water_level_cm", "value": 99}]},  # same key: first wins
        {"device_id": "tai-o-wildlife-01",
         "device": {"sensor_type": "wildlife", "village": "Tai O"},
         "detections": [{"detection": "wild-animal", "confidence": 0.8, "species": "wild boar",
                         "ts": "2025-08-08T09:58:00+08:00"}]},
    )
    b = parse(payload, AT)
    assert b.feed_id == "smart-village" and b.n_observations == 2 and b.skipped == 1
    rows = {(o.entity_id, o.metric): o for o in b.observation_list()}
    assert rows[("sensor:tai-o-flood-01", "water_level_cm")].value == 88.5
    assert rows[("sensor:tai-o-flood-01", "water_level_cm")].ts == AT
    assert rows[("sensor:tai-o-flood-01", "battery_pct")].ts == AT - timedelta(minutes=1)
    ents = {e.id: e for e in b.entities}
    flood = ents["sensor:tai-o-flood-01"]
    assert flood.kind == "sensor" and (flood.lat, flood.lon, flood.district) == (
        22.25, 113.86, "Islands")
    assert flood.properties == {"sensor_type": "flood", "village": "Tai O", "village_zh": "大澳",
                                "alert_level_cm": 140}
    (ev,) = b.events
    assert ev.kind == "detection" and ev.starts_at == ev.ends_at == AT - timedelta(minutes=2)
    assert ev.id == "smart-village:tai-o-wildlife-01:wild-animal:20250808T015800"
    assert ev.properties == {"detection": "wild-animal", "confidence": 0.8,
                             "device_id": "tai-o-wildlife-01", "sensor_type": "wildlife",
                             "species": "wild boar", "village": "Tai O"}
    assert ev.severity == "low" and ev.entity_ids == ("sensor:tai-o-wildlife-01",)
    assert "wild boar" in (ev.title_en or "") and "大澳" not in (ev.title_zh or "")


def test_records_skipped_and_counted() -> None:
    payload = doc(
        {"device_id": "d1", "readings": [
            {"metric": "battery_pct", "value": 50},
            {"metric": "wind_kmh", "value": 5},  # not a sensor metric
            {"metric": "battery_pct", "value": 150, "ts": "2025-08-08T01:00:00Z"},  # range
            {"metric": "battery_pct", "value": 10, "ts": "2025-08-08T02:06:00Z"},  # future
            {"metric": "battery_pct", "value": 11, "ts": "2025-08-08T02:04:00Z"}]},  # ok
        {"readings": [{"metric": "battery_pct", "value": 1}]},  # no device id
    )
    b = parse(payload, AT)
    assert b.n_observations == 2 and b.skipped == 4
    assert any("future timestamp" in n for n in b.notes)
    assert any("out of range" in n for n in b.notes)
    assert b.entities[0].properties == {"sensor_type": "other"}


def test_single_message_and_sensorthings_are_accepted() -> None:
    single = parse(orjson.dumps({"device_id": "x", "readings": [
        {"metric": "rainfall_mm", "value": 3.5, "ts": "2025-08-08T02:00:00Z"}]}), AT)
    assert single.n_observations == 1
    st_doc = {"phenomenonTime": "2025-08-08T02:00:00Z", "result": 12,
              "Datastream": {"@iot.id": "x/noise_db"}}
    assert parse(orjson.dumps(st_doc), AT).observation_list()[0].metric == "noise_db"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty-payload"),
        (b"<html><body>502</body></html>", "html-error-page"),
        (b"{nope", "malformed-json"),
        (b"[1, 2]", "bad-schema"),
        (b'{"schema": "citypulse.sensors/1", "messages": []}', "bad-schema"),
        (b'{"device_id": "x", "readings": [{"metric": "battery_pct"}]}', "bad-schema"),
    ],
)
def test_junk_is_refused(payload: bytes, reason: str) -> None:
    with pytest.raises(FeedError) as err:
        parse(payload, AT)
    assert err.value.reason == reason


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_parser_raises_only_feed_errors(payload: bytes) -> None:
    with contextlib.suppress(FeedError):
        parse(payload, AT)


# --- simulator --------------------------------------------------------------------------------


@pytest.mark.parametrize("at", [datetime(2025, 1, 14, 20, 5, tzinfo=UTC), AT])
def test_simulator_output_parses(at: datetime) -> None:
    payload = SIMULATOR.emit(at, random.Random(1))
    assert payload == SIMULATOR.emit(at, random.Random(2))  # a pure function of the slot
    raw = orjson.loads(payload)
    for m in raw["messages"]:
        SensorMessage.model_validate(m)  # every message is a valid HTTP/MQTT body
    b = get_feed("smart-village").parse(payload, at)
    assert b.skipped == 0 and b.notes == []
    assert b.n_observations == sum(len(m["readings"]) for m in raw["messages"])
    assert len(b.events) == sum(len(m.get("detections", [])) for m in raw["messages"])
    kinds = {e.properties["sensor_type"] for e in b.entities}
    assert kinds == {"flood", "weather", "dumping", "wildlife"}
    assert {e.properties["village"] for e in b.entities} == {v.name_en for v in VILLAGES}
    assert all(e.properties["alert_level_cm"] > 0 for e in b.entities
               if e.properties["sensor_type"] == "flood")


def test_flood_levels_follow_rainstorms() -> None:
    wet, dry = [], []
    t = datetime(2025, 6, 1, tzinfo=UTC)
    while t < datetime(2025, 9, 1, tzinfo=UTC):
        storm = wx.rainstorm(t) is not None
        for v in VILLAGES:
            (wet if storm else dry).append(water_level_cm(v, f"{v.id}-flood-01", t))
        t += timedelta(hours=1)
    assert wet and dry
    assert sum(wet) / len(wet) > sum(dry) / len(dry) + 40
    over_alert = [lv for lv in wet if lv > 140]
    assert over_alert, "rainstorms push some gauges over their alert level"


def test_detections_happen_now_and_then() -> None:
    found: dict[str, int] = {}
    t = datetime(2025, 3, 1, tzinfo=UTC)
    for i in range(288 * 3):
        raw = orjson.loads(SIMULATOR.emit(t + timedelta(minutes=5 * i), random.Random(0)))
        for m in raw["messages"]:
            for d in m.get("detections", []):
                found[d["detection"]] = found.get(d["detection"], 0) + 1
    assert found.get("illegal-dumping", 0) >= 1 and found.get("wild-animal", 0) >= 5
    assert found["wild-animal"] < 288 * 3 * 4 / 5  # rare, not every slot
