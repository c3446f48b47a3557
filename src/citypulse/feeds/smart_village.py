"""Smart Village / generic IoT sensors (push, not polled): the ``citypulse.sensors/1`` JSON.

Devices push to ``POST /api/v1/sensors/readings`` or MQTT ``citypulse/sensors/{device_id}/...``
(see :mod:`citypulse.sensors`); after authentication those paths hand this parser a canonical
batch, so sensor data goes through the same archive -> dedupe -> store -> publish pipeline as the
polled feeds. The simulator (``simulate/smart_village.py``) and recorded files use it directly.

Input: a batch ``{"schema": "citypulse.sensors/1", "messages": [...]}``, a single message or a
SensorThings-like observation (documented in :mod:`citypulse.sensors.schema`).

Output:
- entity ``sensor:{device_id}`` (kind ``sensor``) with properties ``sensor_type`` (``flood``,
  ``dumping``, ``wildlife``...), ``village`` (+ ``village_zh``) and any device properties
  (e.g. ``alert_level_cm``), from the message's ``device`` block;
- one observation per reading (``water_level_cm``, ``battery_pct``, ... see ``SENSOR_METRICS``);
- one Event per detection: kind ``detection``, an instant (``ends_at == starts_at``), severity
  from the detection kind, properties ``{"detection", "confidence", "species"?, "device_id",
  "village"}``, id ``smart-village:{device_id}:{detection}:{UTC time}`` or
  ``smart-village:{device_id}:{id}`` when the device gives one.

Per-record problems (unknown metric, value out of range, a time more than five minutes after
``fetched_at``, a message without ``device_id``) skip that record and are counted; a payload
that is not the schema at all raises ``FeedError("bad-schema")``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from citypulse.feeds._hk_common import Rows
from citypulse.feeds.base import FeedError, FeedSpec, parse_json
from citypulse.model import Batch, Entity, Event, utc
from citypulse.sensors.schema import (
    DETECTIONS,
    SENSOR_METRICS,
    SensorBatch,
    SensorMessage,
    from_sensorthings,
    is_sensorthings,
)

FEED_ID = "smart-village"
ENTITY_KIND = "sensor"
EVENT_KIND = "detection"
MAX_FUTURE = timedelta(minutes=5)
MAX_BYTES = 4 * 1024 * 1024
METRICS = tuple(SENSOR_METRICS)


def entity_id(device_id: str) -> str:
    return f"sensor:{device_id}"


def validation_detail(exc: ValidationError | ValueError) -> str:
    """A short, single-line account of what failed validation (first three problems)."""
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors()[:3]:
            where = ".".join(str(p) for p in err.get("loc", ())) or "(root)"
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        more = exc.error_count() - len(parts)
        return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
    return str(exc)[:300]


def read_messages(doc: Any) -> list[SensorMessage]:
    """The messages of any accepted shape; raises ``ValueError``/``ValidationError``."""
    if isinstance(doc, dict) and "messages" in doc:
        return list(SensorBatch.model_validate(doc).messages)
    if is_sensorthings(doc):
        return [from_sensorthings(doc)]
    if isinstance(doc, dict):
        return [SensorMessage.model_validate(doc)]
    raise ValueError("expected a JSON object")


def device_entity(device_id: str, message: SensorMessage) -> Entity:
    info = message.device
    props: dict[str, Any] = {"sensor_type": info.sensor_type if info else "other"}
    if info is not None:
        if info.village:
            props["village"] = info.village
        if info.village_zh:
            props["village_zh"] = info.village_zh
        props.update(info.properties)
    return Entity(
        id=entity_id(device_id),
        kind=ENTITY_KIND,
        name_en=(info.name_en if info else None) or device_id,
        name_zh=info.name_zh if info else None,
        lat=info.lat if info else None,
        lon=info.lon if info else None,
        district=info.district if info else None,
        properties=props,
    )


def detection_event_id(device_id: str, detection: str, ts: datetime, given: str | None) -> str:
    if given:
        return f"{FEED_ID}:{device_id}:{given}"
    return f"{FEED_ID}:{device_id}:{detection}:{utc(ts).strftime('%Y%m%dT%H%M%S')}"


def parse(payload: bytes, fetched_at: datetime) -> Batch:
    doc = parse_json(payload, MAX_BYTES)
    try:
        messages = read_messages(doc)
    except (ValidationError, ValueError) as exc:
        raise FeedError("bad-schema", validation_detail(exc)) from exc
    at = utc(fetched_at)
    latest_allowed = at + MAX_FUTURE
    rows = Rows()
    events: dict[str, Event] = {}
    for message in messages:
        if message.device_id is None:
            rows.skip("message without device_id", len(message.readings) + len(message.detections))
            continue
        device_id = message.device_id
        entity = device_entity(device_id, message)
        rows.entity(entity)
        base = message.ts or at
        for reading in message.readings:
            spec = SENSOR_METRICS.get(reading.metric)
            ts = utc(reading.ts or base)
            if spec is None:
                rows.skip(f"unknown metric {reading.metric}"[:80])
            elif not spec.low <= reading.value <= spec.high:
                rows.skip(f"{reading.metric} out of range")
            elif ts > latest_allowed:
                rows.skip("future timestamp")
            else:
                rows.add(entity.id, reading.metric, ts, reading.value, reading.label)
        for det in message.detections:
            ts = utc(det.ts or base)
            if ts > latest_allowed:
                rows.skip("future timestamp")
                continue
            kind = DETECTIONS[det.detection]
            village = entity.properties.get("village")
            village_zh = entity.properties.get("village_zh") or village
            props: dict[str, Any] = {
                "detection": det.detection,
                "confidence": det.confidence,
                "device_id": device_id,
                "sensor_type": entity.properties.get("sensor_type"),
            }
            if det.species:
                props["species"] = det.species
            if village:
                props["village"] = village
            where_en = f" at {village}" if village else ""
            where_zh = f"（{village_zh}）" if village_zh else ""
            what_en = kind.title_en + (f" ({det.species})" if det.species else "")
            ev = Event(
                id=detection_event_id(device_id, det.detection, ts, det.id),
                kind=EVENT_KIND,
                severity=kind.severity,
                starts_at=ts,
                ends_at=ts,
                title_en=f"{what_en} detected{where_en}",
                title_zh=f"偵測到{kind.title_zh}{where_zh}",
                body_en=f"{entity.name_en}: confidence {det.confidence:.0%}",
                body_zh=f"{entity.name_zh or entity.name_en}：信心 {det.confidence:.0%}",
                entity_ids=(entity.id,),
                districts=(entity.district,) if entity.district else (),
                source=FEED_ID,
                properties=props,
            )
            events.setdefault(ev.id, ev)
    return Batch.build(
        FEED_ID,
        payload,
        at,
        entities=list(rows.entities.values()),
        observations=rows.builder,
        events=list(events.values()),
        skipped=rows.skipped,
        notes=rows.notes(),
    )


SPEC = FeedSpec(
    id=FEED_ID,
    title_en="Smart Village sensors",
    title_zh="智慧鄉村感測器",
    url="",  # push: devices send to /api/v1/sensors/readings or MQTT; nothing to poll
    interval_s=300,
    parse=parse,
    topics=("sensors",),
    media_type="application/json",
    licence="citypulse sensor network data",
    attribution="Source: citypulse Smart Village sensor network (device operators)",
    file_patterns=("smart-village*.json", "smart_village*.json"),
    enabled_by_default=False,
    max_bytes=MAX_BYTES,
    extra={
        "push": True,
        "entity_kinds": (ENTITY_KIND,),
        "metrics": METRICS,
        "event_kinds": (EVENT_KIND,),
    },
)
