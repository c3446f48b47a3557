"""The JSON a Smart Village / IoT sensor sends, documented as pydantic models.

One schema serves every path (HTTP ``POST /api/v1/sensors/readings``, MQTT, the simulator and
recorded files), so a message means the same thing whichever way it arrives.

A **message** (one device)::

    {
      "device_id": "tai-o-flood-01",            # optional over HTTP (the API key names it)
      "ts": "2024-06-01T10:05:00+08:00",        # default time of the items below
      "readings": [
        {"metric": "water_level_cm", "value": 87.5},
        {"metric": "battery_pct", "value": 91, "ts": "2024-06-01T10:04:30+08:00"}
      ],
      "detections": [
        {"detection": "wild-animal", "confidence": 0.87, "species": "wild boar"}
      ]
    }

Timestamps are ISO 8601 **with an offset** (a naive time is refused: it is the classic
device-clock bug). ``metric`` must be one of :data:`SENSOR_METRICS` and lie in its range;
``detection`` one of :data:`DETECTIONS`. Over MQTT the device's key travels in ``api_key``.

A **batch** wraps several messages: ``{"schema": "citypulse.sensors/1", "messages": [...]}``.
Messages in a batch may carry a ``device`` block (village, type, position); it is honoured only
from trusted in-process sources (simulator, replay). Over HTTP/MQTT the device registry
(``citypulse sensors add-device``) is authoritative.

A **SensorThings-like** shape (OGC SensorThings API ``Observation``) is accepted too: one
``{"phenomenonTime", "result", "Datastream": {"@iot.id": "<device_id>/<metric>"}}`` or a
collection ``{"value": [...]}``. A numeric ``result`` is a reading; an object result with a
``detection`` key is a detection (``Datastream`` ``<device_id>/detection``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_ID = "citypulse.sensors/1"

DEVICE_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,39}$"
METRIC_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)

MAX_READINGS = 500
MAX_DETECTIONS = 100
MAX_MESSAGES = 1000


@dataclass(frozen=True, slots=True)
class SensorMetric:
    """A metric a sensor may report, with its plausible range (outside it: refused)."""

    name: str
    unit: str
    low: float
    high: float
    title_en: str
    title_zh: str


SENSOR_METRICS: MappingProxyType[str, SensorMetric] = MappingProxyType(
    {
        m.name: m
        for m in (
            SensorMetric("water_level_cm", "cm", -500, 5000, "Water level", "水位"),
            SensorMetric("battery_pct", "%", 0, 100, "Battery", "電量"),
            SensorMetric("rainfall_mm", "mm", 0, 500, "Rainfall", "雨量"),
            SensorMetric("temperature_c", "°C", -20, 60, "Temperature", "氣溫"),
            SensorMetric("humidity_pct", "%", 0, 100, "Relative humidity", "相對濕度"),
            SensorMetric("soil_moisture_pct", "%", 0, 100, "Soil moisture", "土壤濕度"),
            SensorMetric("pm2_5_ugm3", "µg/m³", 0, 2000, "PM2.5", "微細懸浮粒子"),
            SensorMetric("noise_db", "dB(A)", 0, 200, "Noise", "噪音"),
            SensorMetric("signal_rssi_dbm", "dBm", -150, 0, "Signal strength", "訊號強度"),
            SensorMetric("fill_level_pct", "%", 0, 100, "Bin fill level", "垃圾桶容量"),
        )
    }
)
"""Metrics accepted from devices. Adding one here makes it valid for ingest and alert rules."""


@dataclass(frozen=True, slots=True)
class DetectionKind:
    name: str
    title_en: str
    title_zh: str
    severity: str


DETECTIONS: MappingProxyType[str, DetectionKind] = MappingProxyType(
    {
        d.name: d
        for d in (
            DetectionKind("illegal-dumping", "Illegal dumping", "非法傾倒", "moderate"),
            DetectionKind("wild-animal", "Wild animal", "野生動物", "low"),
            DetectionKind("fire", "Fire", "火警", "high"),
            DetectionKind("smoke", "Smoke", "煙霧", "moderate"),
            DetectionKind("person", "Person", "人員", "info"),
            DetectionKind("vehicle", "Vehicle", "車輛", "info"),
            DetectionKind("flooding", "Flooding", "水浸", "high"),
        )
    }
)
"""Detection kinds accepted from cameras and other detectors, with the event severity."""

SENSOR_TYPES = ("flood", "dumping", "wildlife", "weather", "air", "noise", "bin", "other")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("value must be a finite number")
    return value


class Reading(_Model):
    """One measured value."""

    metric: Annotated[str, Field(pattern=METRIC_PATTERN, examples=["water_level_cm"])]
    value: float = Field(description="In the metric's unit (the suffix of its name)")
    ts: AwareDatetime | None = Field(None, description="Measurement time; default: message ts")
    label: Annotated[str, Field(max_length=64)] | None = Field(
        None, description="Optional categorical state, e.g. 'rising'"
    )

    _check_value = field_validator("value")(_finite)


class Detection(_Model):
    """Something a camera or detector saw, at one instant."""

    detection: Annotated[str, Field(pattern=SLUG_PATTERN, examples=["illegal-dumping"])]
    confidence: float = Field(ge=0.0, le=1.0, description="Detector confidence, 0..1")
    ts: AwareDatetime | None = None
    species: Annotated[str, Field(max_length=80)] | None = Field(
        None, description="For wild-animal detections, e.g. 'wild boar'"
    )
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] | None = Field(
        None, description="Device-side id; resending the same id is a duplicate"
    )

    @field_validator("detection")
    @classmethod
    def _known_detection(cls, value: str) -> str:
        if value not in DETECTIONS:
            raise ValueError(f"unknown detection {value!r}; known: {', '.join(DETECTIONS)}")
        return value


class DeviceInfo(_Model):
    """What a device is and where (trusted sources only; HTTP/MQTT use the registry)."""

    sensor_type: Annotated[str, Field(pattern=SLUG_PATTERN)] = "other"
    village: Annotated[str, Field(max_length=80)] | None = None
    village_zh: Annotated[str, Field(max_length=80)] | None = None
    name_en: Annotated[str, Field(max_length=120)] | None = None
    name_zh: Annotated[str, Field(max_length=120)] | None = None
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    district: Annotated[str, Field(max_length=80)] | None = None
    properties: dict[str, str | float | int | bool] = Field(default_factory=dict)


class SensorMessage(_Model):
    """One device's readings and detections."""

    device_id: Annotated[str, Field(pattern=DEVICE_ID_PATTERN)] | None = Field(
        None, examples=["tai-o-flood-01"]
    )
    ts: AwareDatetime | None = Field(None, description="Default time of readings/detections")
    readings: list[Reading] = Field(default_factory=list, max_length=MAX_READINGS)
    detections: list[Detection] = Field(default_factory=list, max_length=MAX_DETECTIONS)
    api_key: Annotated[str, Field(max_length=200)] | None = Field(
        None, description="MQTT only: the device's key (HTTP uses the X-API-Key header)"
    )
    device: DeviceInfo | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> SensorMessage:
        if not self.readings and not self.detections:
            raise ValueError("a message needs at least one reading or detection")
        return self


class SensorBatch(_Model):
    """Several messages; the format of the ``smart-village`` feed and the simulator."""

    schema_id: Literal["citypulse.sensors/1"] = Field("citypulse.sensors/1", alias="schema")
    messages: list[SensorMessage] = Field(min_length=1, max_length=MAX_MESSAGES)


# --- SensorThings-like shape ---------------------------------------------------------------


class STThing(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    iot_id: str | None = Field(None, alias="@iot.id")
    name: str | None = None


class STObservedProperty(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str


class STDatastream(BaseModel):
    """``@iot.id`` ``"<device_id>/<metric>"``, or ``Thing`` + ``ObservedProperty`` names."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    iot_id: str | None = Field(None, alias="@iot.id")
    name: str | None = None
    Thing: STThing | None = None
    ObservedProperty: STObservedProperty | None = None


class STObservation(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    phenomenonTime: AwareDatetime
    resultTime: AwareDatetime | None = None
    result: float | dict[str, Any]
    Datastream: STDatastream


class STCollection(BaseModel):
    model_config = ConfigDict(extra="allow")
    value: list[STObservation] = Field(min_length=1, max_length=MAX_READINGS)


def is_sensorthings(doc: Any) -> bool:
    if not isinstance(doc, dict):
        return False
    if "Datastream" in doc:
        return True
    value = doc.get("value")
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict) and (
        "Datastream" in value[0]
    )


def _datastream_target(ds: STDatastream) -> tuple[str | None, str]:
    """(device_id or None, metric) named by a datastream."""
    if ds.iot_id and "/" in ds.iot_id:
        device_id, name = ds.iot_id.rsplit("/", 1)
        return device_id, name
    metric = (ds.ObservedProperty.name if ds.ObservedProperty else None) or ds.name
    if not metric:
        raise ValueError("Datastream names no metric (@iot.id 'device/metric' or ObservedProperty)")
    device = (ds.Thing.iot_id or ds.Thing.name) if ds.Thing is not None else None
    return device, metric


def from_sensorthings(doc: Any) -> SensorMessage:
    """Convert a SensorThings Observation (or ``{"value": [...]}``) into one message.

    Raises ``ValueError`` (pydantic's ``ValidationError`` is one) on anything it cannot map.
    All observations must name the same device.
    """
    observations = (
        [STObservation.model_validate(doc)]
        if "Datastream" in doc
        else STCollection.model_validate(doc).value
    )
    devices: set[str] = set()
    readings: list[dict[str, Any]] = []
    detections: list[dict[str, Any]] = []
    for obs in observations:
        device, metric = _datastream_target(obs.Datastream)
        if device:
            devices.add(device)
        ts = obs.phenomenonTime
        if isinstance(obs.result, dict):
            if metric != "detection" and "detection" not in obs.result:
                raise ValueError(f"object result on datastream {metric!r} is not a detection")
            detections.append({**obs.result, "ts": ts})
        else:
            readings.append({"metric": metric, "value": obs.result, "ts": ts})
    if len(devices) > 1:
        raise ValueError(f"observations of several devices in one request: {sorted(devices)}")
    return SensorMessage.model_validate(
        {
            "device_id": next(iter(devices), None),
            "readings": readings,
            "detections": detections,
        }
    )


def valid_device_id(device_id: str) -> bool:
    return bool(_DEVICE_ID.match(device_id))


def message_times(message: SensorMessage, default: datetime) -> list[datetime]:
    """Every timestamp a message implies (item ts, else message ts, else ``default``)."""
    base = message.ts or default
    return [r.ts or base for r in message.readings] + [d.ts or base for d in message.detections]


def json_schema() -> dict[str, Any]:
    """The documented schema (served at ``/api/v1/sensors/schema``)."""
    return {
        "message": SensorMessage.model_json_schema(),
        "batch": SensorBatch.model_json_schema(by_alias=True),
        "metrics": {
            m.name: {"unit": m.unit, "min": m.low, "max": m.high, "title_en": m.title_en,
                     "title_zh": m.title_zh}
            for m in SENSOR_METRICS.values()
        },
        "detections": {
            d.name: {"title_en": d.title_en, "title_zh": d.title_zh, "severity": d.severity}
            for d in DETECTIONS.values()
        },
    }
