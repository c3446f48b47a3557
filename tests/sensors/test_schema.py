"""The documented sensor JSON: what is valid, what is refused, and the SensorThings shape."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from citypulse.sensors.schema import (
    DETECTIONS,
    SENSOR_METRICS,
    SensorBatch,
    SensorMessage,
    from_sensorthings,
    is_sensorthings,
    json_schema,
    message_times,
)

TS = "2025-08-08T10:05:00+08:00"


def test_a_full_message() -> None:
    m = SensorMessage.model_validate({
        "device_id": "tai-o-flood-01", "ts": TS,
        "readings": [{"metric": "water_level_cm", "value": 87.5},
                     {"metric": "battery_pct", "value": 91, "ts": "2025-08-08T02:04:30Z"}],
        "detections": [{"detection": "wild-animal", "confidence": 0.87, "species": "wild boar"}],
    })
    assert m.readings[1].value == 91.0
    default = datetime(2025, 1, 1, tzinfo=UTC)
    times = message_times(m, default)
    assert times[0] == datetime(2025, 8, 8, 2, 5, tzinfo=UTC)
    assert times[1] == datetime(2025, 8, 8, 2, 4, 30, tzinfo=UTC)
    no_ts = SensorMessage.model_validate({"readings": [{"metric": "battery_pct", "value": 1}]})
    assert message_times(no_ts, default) == [default]


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"readings": []}, "at least one reading or detection"),
        ({"readings": [{"metric": "battery_pct", "value": 1, "ts": "2025-08-08T10:05:00"}]},
         "timezone"),
        ({"readings": [{"metric": "Battery", "value": 1}]}, "pattern"),
        ({"readings": [{"metric": "battery_pct", "value": "NaN"}]}, "finite"),
        ({"readings": [{"metric": "battery_pct", "value": "high"}]}, "valid number"),
        ({"readings": [{"metric": "battery_pct", "value": 1, "unit": "%"}]}, "Extra inputs"),
        ({"detections": [{"detection": "ufo", "confidence": 0.5}]}, "unknown detection"),
        ({"detections": [{"detection": "fire", "confidence": 1.5}]}, "less than or equal"),
        ({"device_id": "Tai O!", "readings": [{"metric": "battery_pct", "value": 1}]},
         "pattern"),
        ({"readings": [{"metric": "battery_pct", "value": 1}] * 501}, "at most 500"),
    ],
)
def test_refused_messages(doc: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError) as err:
        SensorMessage.model_validate(doc)
    assert needle in str(err.value)


def test_batch_shape() -> None:
    doc = {"schema": "citypulse.sensors/1",
           "messages": [{"device_id": "a", "readings": [{"metric": "battery_pct", "value": 5}]}]}
    assert SensorBatch.model_validate(doc).messages[0].device_id == "a"
    with pytest.raises(ValidationError):
        SensorBatch.model_validate({**doc, "schema": "other/2"})
    with pytest.raises(ValidationError):
        SensorBatch.model_validate({**doc, "messages": []})


def test_sensorthings_single_and_collection() -> None:
    one = {"phenomenonTime": TS, "result": 42.5,
           "Datastream": {"@iot.id": "mui-wo-flood-01/water_level_cm"}}
    assert is_sensorthings(one)
    m = from_sensorthings(one)
    assert m.device_id == "mui-wo-flood-01" and m.readings[0].metric == "water_level_cm"
    assert m.readings[0].ts == datetime(2025, 8, 8, 2, 5, tzinfo=UTC)
    many = {"value": [
        {"phenomenonTime": TS, "result": 80,
         "Datastream": {"Thing": {"@iot.id": "cam-1"},
                        "ObservedProperty": {"name": "battery_pct"}}},
        {"phenomenonTime": TS, "result": {"detection": "illegal-dumping", "confidence": 0.7},
         "Datastream": {"@iot.id": "cam-1/detection"}},
    ]}
    assert is_sensorthings(many)
    m = from_sensorthings(many)
    assert m.device_id == "cam-1" and len(m.readings) == 1 and len(m.detections) == 1
    mixed = {"value": [many["value"][0], {**one}]}
    with pytest.raises(ValueError, match="several devices"):
        from_sensorthings(mixed)
    with pytest.raises(ValueError, match="names no metric"):
        from_sensorthings({"phenomenonTime": TS, "result": 1, "Datastream": {}})
    assert not is_sensorthings({"readings": []}) and not is_sensorthings([1])


def test_schema_document() -> None:
    doc = json_schema()
    assert set(doc["metrics"]) == set(SENSOR_METRICS)
    assert set(doc["detections"]) == set(DETECTIONS)
    assert "readings" in doc["message"]["properties"]
    assert "schema" in doc["batch"]["properties"]


@given(st.recursive(
    st.none() | st.booleans() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=10,
))
def test_arbitrary_json_never_crashes_validation(doc: Any) -> None:
    with contextlib.suppress(ValidationError):
        SensorMessage.model_validate(doc)
