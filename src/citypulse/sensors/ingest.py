"""Sensor message intake shared by HTTP and MQTT: authenticate, validate, refuse with a reason,
then hand a canonical batch to the ingest pipeline (archive -> dedupe -> store -> publish).

Refusal reasons are short and stable (clients and dashboards key on them):

=================  ====  =============================================================
reason             HTTP  meaning
=================  ====  =============================================================
missing-key        401   no ``X-API-Key`` header (HTTP) / ``api_key`` field (MQTT)
bad-key            401   the key belongs to no device
revoked-key        403   the device's key was revoked
device-mismatch    403   the message (or MQTT topic) names another device than the key's
too-large          413   body over the size cap
bad-json           400   not JSON
bad-schema         422   JSON, but not the documented schema (details in ``detail``)
unknown-metric     422   a reading's metric is not a sensor metric
out-of-range       422   a reading's value is outside its metric's plausible range
future-timestamp   422   a time more than ``max_future`` after reception
duplicate          409   every reading/detection of the message is already stored
store-error        503   the store failed; retry later
overloaded         503   (MQTT) the intake queue is full
=================  ====  =============================================================

A message is atomic: one bad item refuses the whole message, so a device never has to guess
what was kept. A message that repeats *some* stored readings is accepted; the store keeps the
first value of each (entity, metric, time) and the answer counts the repeats.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from citypulse.feeds import smart_village
from citypulse.ingest.pipeline import Pipeline
from citypulse.model import now_utc, utc
from citypulse.sensors.keys import AuthError, Device, KeyStore
from citypulse.sensors.schema import (
    SCHEMA_ID,
    SENSOR_METRICS,
    SensorMessage,
)

MAX_BODY_BYTES = 256 * 1024
MAX_FUTURE = timedelta(minutes=5)
RECENT_KEYS = 100_000
UNKNOWN_DEVICE = "(unknown)"

STATUS_CODES: dict[str, int] = {
    "missing-key": 401,
    "bad-key": 401,
    "revoked-key": 403,
    "device-mismatch": 403,
    "too-large": 413,
    "bad-json": 400,
    "bad-schema": 422,
    "unknown-metric": 422,
    "out-of-range": 422,
    "future-timestamp": 422,
    "duplicate": 409,
    "store-error": 503,
    "overloaded": 503,
}
REASONS = tuple(STATUS_CODES)


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """The answer to one message. ``reason`` is None when accepted."""

    reason: str | None
    detail: str = ""
    device_id: str | None = None
    readings: int = 0
    detections: int = 0
    duplicates: int = 0
    transport: str = "http"

    @property
    def accepted(self) -> bool:
        return self.reason is None

    @property
    def status_code(self) -> int:
        return 202 if self.reason is None else STATUS_CODES.get(self.reason, 400)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": "accepted" if self.accepted else "refused",
            "device_id": self.device_id,
        }
        if self.accepted:
            out.update(
                readings=self.readings, detections=self.detections, duplicates=self.duplicates
            )
        else:
            out.update(reason=self.reason, detail=self.detail)
        return out


class _Refused(Exception):
    def __init__(self, reason: str, detail: str, device_id: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.device_id = device_id


class IntakeStats:
    """Counters of accepted and refused messages, by device and by reason (thread-safe).

    Refusals of unauthenticated senders are counted under ``(unknown)`` whatever device they
    claim, so a flood of made-up device ids cannot grow the table."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.accepted: Counter[str] = Counter()
        self.readings: Counter[str] = Counter()
        self.detections: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.refused_by_device: dict[str, Counter[str]] = {}
        self.by_transport: Counter[str] = Counter()
        self.last_seen: dict[str, datetime] = {}

    def count(self, result: SubmitResult, at: datetime) -> None:
        device = result.device_id or UNKNOWN_DEVICE
        with self._lock:
            outcome = "accepted" if result.accepted else "refused"
            self.by_transport[f"{result.transport}:{outcome}"] += 1
            if result.accepted:
                self.accepted[device] += 1
                self.readings[device] += result.readings
                self.detections[device] += result.detections
                self.last_seen[device] = at
            else:
                reason = result.reason or "refused"
                self.refused[reason] += 1
                self.refused_by_device.setdefault(device, Counter())[reason] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            devices = sorted(set(self.accepted) | set(self.refused_by_device))
            return {
                "accepted": sum(self.accepted.values()),
                "refused": sum(self.refused.values()),
                "refused_by_reason": dict(sorted(self.refused.items())),
                "by_transport": dict(sorted(self.by_transport.items())),
                "devices": {
                    d: {
                        "accepted": self.accepted.get(d, 0),
                        "readings": self.readings.get(d, 0),
                        "detections": self.detections.get(d, 0),
                        "refused": dict(sorted(self.refused_by_device.get(d, Counter()).items())),
                        "last_seen": self.last_seen[d].isoformat() if d in self.last_seen else None,
                    }
                    for d in devices
                },
            }


class SensorIngest:
    """Authenticate, validate and ingest device messages (thread-safe, blocking)."""

    def __init__(
        self,
        pipeline: Pipeline,
        keys: KeyStore,
        *,
        clock: Callable[[], datetime] = now_utc,
        max_future: timedelta = MAX_FUTURE,
        max_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.pipeline = pipeline
        self.keys = keys
        self.clock = clock
        self.max_future = max_future
        self.max_bytes = max_bytes
        self.stats = IntakeStats()
        self._recent: OrderedDict[tuple[str, str, datetime], None] = OrderedDict()
        # (entity, metric) -> newest stored time; bounded by registered devices x metrics.
        self._newest: dict[tuple[str, str], datetime | None] = {}
        self._recent_lock = threading.Lock()

    def submit(
        self,
        body: bytes,
        *,
        api_key: str | None = None,
        topic_device: str | None = None,
        transport: str = "http",
    ) -> SubmitResult:
        """Process one message body. ``api_key``: the HTTP header (MQTT: None, the key is in the
        payload). ``topic_device``: the device id of the MQTT topic, which must match."""
        received = utc(self.clock())
        try:
            result = self._submit(body, api_key, topic_device, transport, received)
        except _Refused as refused:
            result = SubmitResult(
                refused.reason, refused.detail, refused.device_id, transport=transport
            )
        self.stats.count(result, received)
        return result

    def refuse(self, reason: str, detail: str, *, transport: str = "http") -> SubmitResult:
        """Count and return a refusal decided before :meth:`submit` (e.g. an oversized body
        the HTTP layer stopped reading)."""
        result = SubmitResult(reason, detail, None, transport=transport)
        self.stats.count(result, utc(self.clock()))
        return result

    # -- steps -------------------------------------------------------------------------------

    def _submit(
        self,
        body: bytes,
        api_key: str | None,
        topic_device: str | None,
        transport: str,
        received: datetime,
    ) -> SubmitResult:
        if len(body) > self.max_bytes:
            raise _Refused("too-large", f"{len(body)} bytes > {self.max_bytes}")
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise _Refused("bad-json", str(exc)[:200]) from exc
        if not isinstance(doc, dict):
            raise _Refused("bad-schema", "expected a JSON object")
        key = api_key
        if key is None:
            payload_key = doc.pop("api_key", None)
            key = payload_key if isinstance(payload_key, str) else None
        else:
            doc.pop("api_key", None)  # never archived
        if isinstance(doc.get("messages"), list):
            for m in doc["messages"]:
                if isinstance(m, dict):
                    m.pop("api_key", None)
        try:
            device = self.keys.authenticate(key)
        except AuthError as exc:
            raise _Refused(exc.reason, exc.detail) from exc
        dev_id = device.device_id
        try:
            messages = smart_village.read_messages(doc)
        except (ValidationError, ValueError) as exc:
            raise _Refused("bad-schema", smart_village.validation_detail(exc), dev_id) from exc
        if topic_device is not None and topic_device != dev_id:
            raise _Refused("device-mismatch", f"topic names {topic_device!r}", dev_id)
        for m in messages:
            if m.device_id is not None and m.device_id != dev_id:
                raise _Refused("device-mismatch", f"message names {m.device_id!r}", dev_id)
        items = self._check_items(messages, dev_id, received)
        fresh, repeated = self._split_duplicates(device, items)
        if not fresh:
            raise _Refused("duplicate", f"all {repeated} items are already stored", dev_id)
        payload = self._canonical(device, messages, received)
        outcome = self.pipeline.process(smart_village.SPEC, payload, received, source="push")
        if outcome.status == "duplicate":
            raise _Refused("duplicate", "this message was already received", dev_id)
        if outcome.status == "quarantined":
            raise _Refused("bad-schema", outcome.reason or "quarantined", dev_id)
        if outcome.status == "error":
            raise _Refused("store-error", outcome.reason or "store error", dev_id)
        self._remember(items)
        n_readings = sum(len(m.readings) for m in messages)
        return SubmitResult(
            None,
            device_id=dev_id,
            readings=n_readings,
            detections=sum(len(m.detections) for m in messages),
            duplicates=repeated,
            transport=transport,
        )

    def _check_items(
        self, messages: list[SensorMessage], device_id: str, received: datetime
    ) -> list[tuple[str, str, datetime]]:
        """Validate metrics, ranges and times; return the keys (entity, metric, ts) of the
        readings and (event id, "", ts) of the detections."""
        limit = received + self.max_future
        entity = smart_village.entity_id(device_id)
        keys: list[tuple[str, str, datetime]] = []
        for m in messages:
            base = utc(m.ts) if m.ts else received
            for r in m.readings:
                spec = SENSOR_METRICS.get(r.metric)
                if spec is None:
                    raise _Refused(
                        "unknown-metric",
                        f"{r.metric!r}; sensor metrics: {', '.join(SENSOR_METRICS)}",
                        device_id,
                    )
                if not spec.low <= r.value <= spec.high:
                    raise _Refused(
                        "out-of-range",
                        f"{r.metric} = {r.value:g} outside {spec.low:g}..{spec.high:g}",
                        device_id,
                    )
                ts = utc(r.ts) if r.ts else base
                self._check_time(ts, limit, device_id)
                keys.append((entity, r.metric, ts))
            for d in m.detections:
                ts = utc(d.ts) if d.ts else base
                self._check_time(ts, limit, device_id)
                event_id = smart_village.detection_event_id(device_id, d.detection, ts, d.id)
                keys.append((event_id, "", ts))
        return keys

    def _check_time(self, ts: datetime, limit: datetime, device_id: str) -> None:
        if ts > limit:
            raise _Refused(
                "future-timestamp",
                f"{ts.isoformat()} is more than {self.max_future} after reception",
                device_id,
            )

    def _split_duplicates(
        self, device: Device, items: list[tuple[str, str, datetime]]
    ) -> tuple[int, int]:
        fresh = repeated = 0
        store = self.pipeline.store
        for key in items:
            if self._seen_recently(key) or self._stored(store, key):
                repeated += 1
            else:
                fresh += 1
        return fresh, repeated

    def _stored(self, store: Any, key: tuple[str, str, datetime]) -> bool:
        ident, metric, ts = key
        if metric == "":  # a detection: is the event there?
            events = store.events(ts, ts + timedelta(microseconds=1), kind="detection")
            return any(e.id == ident for e in events)
        newest = self._newest_stored(store, ident, metric)
        if newest is None or ts > newest:
            return False  # newer than anything stored: the common case, no history lookup
        points = store.series(ident, metric, ts, ts + timedelta(microseconds=1),
                              timedelta(seconds=1))
        return bool(points)

    def _newest_stored(self, store: Any, entity_id: str, metric: str) -> datetime | None:
        """Newest stored time of a device's metric: remembered from what this intake stored,
        asked of the store's ``latest`` table once per (device, metric) otherwise."""
        with self._recent_lock:
            if (entity_id, metric) in self._newest:
                return self._newest[(entity_id, metric)]
        values = store.latest(metric, entity_ids=[entity_id])
        newest = values[0].ts if values else None
        with self._recent_lock:
            known = self._newest.get((entity_id, metric))
            if known is None or (newest is not None and newest > known):
                self._newest[(entity_id, metric)] = newest
        return newest

    def _seen_recently(self, key: tuple[str, str, datetime]) -> bool:
        with self._recent_lock:
            return key in self._recent

    def _remember(self, keys: Iterable[tuple[str, str, datetime]]) -> None:
        with self._recent_lock:
            for key in keys:
                self._recent[key] = None
                ident, metric, ts = key
                if metric:
                    known = self._newest.get((ident, metric))
                    if known is None or ts > known:
                        self._newest[(ident, metric)] = ts
            while len(self._recent) > RECENT_KEYS:
                self._recent.popitem(last=False)

    def _canonical(
        self, device: Device, messages: list[SensorMessage], received: datetime
    ) -> bytes:
        """The batch handed to the pipeline and archived: registry metadata, absolute UTC
        times, no key. Deterministic, so a resent message has the same hash."""
        out = []
        for m in messages:
            base = utc(m.ts) if m.ts else received
            out.append(
                {
                    "device_id": device.device_id,
                    "device": device.info().model_dump(mode="json", exclude_none=True),
                    "readings": [
                        {
                            "metric": r.metric,
                            "value": r.value,
                            "ts": utc(r.ts or base).isoformat(),
                            **({"label": r.label} if r.label is not None else {}),
                        }
                        for r in m.readings
                    ],
                    "detections": [
                        {
                            **d.model_dump(mode="json", exclude_none=True),
                            "ts": utc(d.ts or base).isoformat(),
                        }
                        for d in m.detections
                    ],
                }
            )
        return orjson.dumps({"schema": SCHEMA_ID, "messages": out})

