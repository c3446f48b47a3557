"""The alert engine: evaluates rules incrementally on every stored batch, plus a timer for
time-based conditions, and turns state changes into stored ``alert`` events, bus messages and
webhook deliveries.

Wiring: the ingest pipeline calls :meth:`AlertEngine.on_stored` with each batch it stored
(``Pipeline(on_stored=[engine.on_stored])``), because the bus carries only summaries;
:meth:`start` loads open alerts from the store and runs the timer; :meth:`stop` ends both.

Semantics
- **Metric rules** run in data time. Each (rule, entity) remembers the newest observation time
  it evaluated, so payloads that repeat known hours (EPD's 24-hour files) or replays never
  re-fire. Observations of one batch are evaluated in time order. A condition that holds fires
  at once, or, with ``for_minutes``, once an observation at least that long after the first
  true one still holds. The timer also fires a pending ``for`` condition when wall-clock time
  has passed ``since + for_minutes`` and the entity's last observation is fresh
  (``stale_minutes``), so a feed that goes quiet while congested still alerts; with stale
  data (replays of old files) only observations decide. An open alert clears at the first
  observation for which the condition, against ``clear_value`` when given (hysteresis), is
  false.
- **Event rules** match events by kind, ``properties.code`` and properties. The alert lasts
  while a matching event is active: no end, or an end in the future (instant events such as
  detections last ``clear_after_minutes``). A feed whose batch lists everything in force
  (a note ``in-force: ...``, as HKO's warnsum has) also ends the alerts of its events that are
  absent from the batch: the amber rainstorm alert clears when red replaces it.
- **De-duplication**: one open alert per (rule, entity) or (rule, event key). Alert ids are
  ``alert:{rule}:{key}:{start}``, so re-processing the same data rewrites the same event.
- **Notifications**: each fire/clear is published on the bus topic ``alerts`` as
  ``{"type": "alert", "action": "fired"|"cleared"|"recorded", "alert": {...}}`` and sent to the
  webhooks. Alerts about data older than ``notify_max_age`` (backfills, replays) or events
  already over when first seen are stored and published as ``recorded`` but not sent to
  webhooks: history is kept without paging anyone about last week.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import operator
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from citypulse.alerts.metrics import MetricRegistry, known_metrics
from citypulse.alerts.rules import (
    EventCondition,
    MetricCondition,
    Rule,
    RuleSet,
    load_rules,
    rules_for_data_dir,
)
from citypulse.alerts.webhooks import WebhookDispatcher
from citypulse.model import Batch, Entity, Event, now_utc, utc
from citypulse.store.base import TimeSeriesStore
from citypulse.store.bus import Bus

log = logging.getLogger(__name__)

ALERT_KIND = "alert"
ALERT_FEED = "alerts"
BUS_TOPIC = "alerts"
IN_FORCE_NOTE = "in-force:"
DEFAULT_TICK_S = 30.0
NOTIFY_MAX_AGE = timedelta(hours=3)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FAR = datetime(2200, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_DONE_MEMORY = 20_000

Action = Literal["fired", "cleared", "recorded"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


def to_us(ts: datetime) -> int:
    return (utc(ts) - _EPOCH) // _US


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _stamp(ts: datetime) -> str:
    return utc(ts).strftime("%Y%m%dT%H%M%SZ")


def alert_json(ev: Event) -> dict[str, Any]:
    """An alert event as JSON (the shape of ``/api/v1/events``)."""
    return {
        "id": ev.id,
        "kind": ev.kind,
        "severity": ev.severity,
        "starts_at": ev.starts_at.isoformat(),
        "ends_at": ev.ends_at.isoformat() if ev.ends_at else None,
        "title_en": ev.title_en,
        "title_zh": ev.title_zh,
        "body_en": ev.body_en,
        "body_zh": ev.body_zh,
        "entity_ids": list(ev.entity_ids),
        "districts": list(ev.districts),
        "source": ev.source,
        "properties": ev.properties,
    }


@dataclass(frozen=True, slots=True)
class AlertChange:
    action: Action
    alert: Event


@dataclass(slots=True)
class _Open:
    alert: Event
    rule_id: str
    key: str
    notified: bool
    # event rules: triggering event id -> (effective end or None, feed that sent it)
    sources: dict[str, tuple[datetime | None, str]] = field(default_factory=dict)


@dataclass(slots=True)
class _MetricRule:
    rule: Rule
    cond: MetricCondition
    cmp: Callable[[float, float], bool]
    for_us: int
    stale_us: int
    last_ts: dict[str, int] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)
    last_value: dict[str, float] = field(default_factory=dict)
    scope: dict[str, bool] = field(default_factory=dict)
    open_ids: set[str] = field(default_factory=set)  # entities with an open alert


@dataclass(frozen=True, slots=True)
class _EventRule:
    rule: Rule
    cond: EventCondition


class AlertEngine:
    """Evaluates a :class:`RuleSet` over stored batches (thread-safe: ingest calls it from
    worker threads, the timer from the event loop)."""

    def __init__(
        self,
        store: TimeSeriesStore,
        bus: Bus | None = None,
        rules: RuleSet | None = None,
        *,
        dispatcher: WebhookDispatcher | None = None,
        clock: Callable[[], datetime] = now_utc,
        tick_s: float = DEFAULT_TICK_S,
        notify_max_age: timedelta = NOTIFY_MAX_AGE,
        registry: MetricRegistry | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.rules = rules if rules is not None else load_rules()
        self.dispatcher = dispatcher
        self.clock = clock
        self.tick_s = tick_s
        self.notify_max_age = notify_max_age
        self.registry = registry or known_metrics(self.rules.metrics)
        self._lock = threading.RLock()
        self._open: dict[tuple[str, str], _Open] = {}
        self._done: OrderedDict[tuple[str, str], None] = OrderedDict()  # (rule, event id)
        self._entities: dict[str, Entity | None] = {}
        self._metric_rules: list[_MetricRule] = []
        self._metric_by_id: dict[str, _MetricRule] = {}
        self._by_metric: dict[str, list[_MetricRule]] = {}
        self._event_rules: dict[str, list[_EventRule]] = {}
        self._last_written = _EPOCH
        self._task: asyncio.Task[None] | None = None
        self.loaded = False
        self.observations_evaluated = 0
        self.batches_evaluated = 0
        self.fired = 0
        self.cleared = 0
        self.store_errors = 0
        self.last_tick: datetime | None = None
        self._compile()

    @classmethod
    def from_settings(
        cls, settings: Any, store: TimeSeriesStore, bus: Bus | None = None, **kwargs: Any
    ) -> AlertEngine:
        """Rules from ``<data_dir>/alerts.yaml`` (else the defaults), webhooks from the rules
        file, delivery log in ``<data_dir>/alerts-webhooks.jsonl``."""
        data_dir = Path(settings.data_dir)
        rules = rules_for_data_dir(data_dir)
        dispatcher = None
        if rules.webhooks:
            dispatcher = WebhookDispatcher(
                rules.webhooks, log_path=data_dir / "alerts-webhooks.jsonl"
            )
        return cls(store, bus, rules, dispatcher=dispatcher, **kwargs)

    def _compile(self) -> None:
        metric_names: set[str] = set()
        for rule in self.rules.enabled:
            if rule.metric is not None:
                cond = rule.metric
                mr = _MetricRule(
                    rule,
                    cond,
                    _OPS[cond.op],
                    int(cond.for_minutes * 60_000_000),
                    int(cond.stale_minutes * 60_000_000),
                )
                self._metric_rules.append(mr)
                self._metric_by_id[rule.id] = mr
                self._by_metric.setdefault(cond.metric, []).append(mr)
                metric_names.add(cond.metric)
            elif rule.event is not None:
                self._event_rules.setdefault(rule.event.kind, []).append(
                    _EventRule(rule, rule.event)
                )
        self._metric_set = pa.array(sorted(metric_names), pa.string())

    # -- lifecycle ---------------------------------------------------------------------------

    def load_open(self) -> int:
        """Rebuild the open alerts (and recently closed ones, so their events do not alert
        again) from the store. Alerts of rules that no longer exist are closed."""
        now = utc(self.clock())
        recent = self.store.events(now - timedelta(days=2), _FAR, kind=ALERT_KIND)
        # Open alerts have no end: "active at a far future instant" selects exactly those.
        open_alerts = self.store.events(_EPOCH, _FAR, kind=ALERT_KIND, active_only=True)
        changes: list[AlertChange] = []
        with self._lock:
            for ev in recent:
                rid = str(ev.properties.get("rule_id", ""))
                for eid in ev.properties.get("event_ids", ()) or ():
                    self._remember_done(rid, str(eid))
            for ev in open_alerts:
                rid = str(ev.properties.get("rule_id", ""))
                key = str(ev.properties.get("key", ""))
                rule = self.rules.rule(rid)
                entry = _Open(ev, rid, key, bool(ev.properties.get("notified", True)))
                if rule is None or not rule.enabled:
                    changes.append(self._close(entry, now, reason="rule-removed"))
                    continue
                until_text = ev.properties.get("until")
                until = datetime.fromisoformat(until_text) if isinstance(until_text, str) else None
                for eid in ev.properties.get("event_ids", ()) or ():
                    entry.sources[str(eid)] = (until, str(ev.properties.get("feed_id", "")))
                self._open[(rid, key)] = entry
                if rid in self._metric_by_id:
                    self._metric_by_id[rid].open_ids.add(key)
            self.loaded = True
            self._persist(changes)
        self._announce(changes)
        return len(self._open)

    async def start(self) -> None:
        """Load open alerts, start webhook delivery and the timer."""
        if not self.loaded:
            await asyncio.to_thread(self.load_open)
        if self.dispatcher is not None:
            self.dispatcher.start()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._timer(), name="alert-timer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.dispatcher is not None:
            await asyncio.to_thread(self.dispatcher.stop)

    async def _timer(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await asyncio.to_thread(self.tick)
            except Exception:
                log.exception("alert timer tick failed")

    # -- evaluation --------------------------------------------------------------------------

    def on_stored(self, spec: Any, batch: Batch, outcome: Any = None) -> None:
        """The pipeline hook (``Pipeline.on_stored``)."""
        if batch.feed_id == ALERT_FEED:
            return
        self.process_batch(batch)

    def process_batch(self, batch: Batch) -> list[AlertChange]:
        """Evaluate every rule against one batch; store and announce what changed."""
        with self._lock:
            changes: list[AlertChange] = []
            self._learn_entities(batch.entities)
            self._eval_metrics(batch.observations, changes)
            if self._event_rules and (batch.events or self._open):
                self._eval_events(batch, changes)
            self.batches_evaluated += 1
            self._persist(changes)
        self._announce(changes)
        return changes

    def tick(self, now: datetime | None = None) -> list[AlertChange]:
        """Time-based conditions: ``for`` conditions on quiet feeds, events that ended."""
        at = utc(now or self.clock())
        at_us = to_us(at)
        changes: list[AlertChange] = []
        with self._lock:
            for mr in self._metric_rules:
                if not mr.for_us or not mr.pending:
                    continue
                for eid, since in list(mr.pending.items()):
                    last = mr.last_ts.get(eid, since)
                    if at_us - since >= mr.for_us and at_us - last <= mr.stale_us:
                        del mr.pending[eid]
                        value = mr.last_value.get(eid, math.nan)
                        changes.extend(
                            self._fire_metric(mr, eid, since + mr.for_us, since, value, at)
                        )
            for entry in list(self._open.values()):
                if entry.sources and self._ended(entry, at):
                    changes.append(self._close(entry, self._end_of(entry, at)))
            self.last_tick = at
            self._persist(changes)
        self._announce(changes)
        return changes

    def _learn_entities(self, entities: Sequence[Entity]) -> None:
        for ent in entities:
            known = self._entities.get(ent.id)
            if known is None or known != ent:
                self._entities[ent.id] = ent
                for mr in self._metric_rules:
                    mr.scope.pop(ent.id, None)

    def _entity(self, entity_id: str) -> Entity | None:
        if entity_id in self._entities:
            return self._entities[entity_id]
        try:
            ent = self.store.entity(entity_id)
        except Exception:
            log.exception("entity lookup of %s failed", entity_id)
            ent = None
        self._entities[entity_id] = ent
        return ent

    def _in_scope(self, mr: _MetricRule, entity_id: str) -> bool:
        cached = mr.scope.get(entity_id)
        if cached is not None:
            return cached
        where = mr.rule.where
        ok = not (where.entity_prefix and not entity_id.startswith(where.entity_prefix))
        ok = ok and not (where.entities and entity_id not in where.entities)
        if ok and where.needs_entity:
            ent = self._entity(entity_id)
            ok = (
                ent is not None
                and (where.kind is None or ent.kind == where.kind)
                and all(ent.properties.get(k) == v for k, v in where.properties.items())
            )
        mr.scope[entity_id] = ok
        return ok

    def _threshold(self, mr: _MetricRule, entity_id: str) -> float | None:
        prop = mr.cond.threshold_property
        if prop is not None:
            ent = self._entity(entity_id)
            raw = ent.properties.get(prop) if ent is not None else None
            if isinstance(raw, (int, float)) and not isinstance(raw, bool):
                return float(raw)
            if isinstance(raw, str):
                with contextlib.suppress(ValueError):
                    return float(raw)
        return mr.cond.value

    def _eval_metrics(self, table: pa.Table, changes: list[AlertChange]) -> None:
        if not self._metric_rules or table.num_rows == 0:
            return
        mask = pc.is_in(table.column("metric"), value_set=self._metric_set)
        if not pc.any(mask).as_py():
            return
        sub = table.filter(mask)
        if sub.num_rows > 1:
            sub = sub.take(pc.sort_indices(sub, sort_keys=[("ts", "ascending")]))
        eids = sub.column("entity_id").to_pylist()
        metrics = sub.column("metric").to_pylist()
        stamps = pc.cast(sub.column("ts"), pa.int64()).to_pylist()
        values = sub.column("value").to_pylist()
        self.observations_evaluated += len(eids)
        by_metric = self._by_metric
        for eid, metric, ts, value in zip(eids, metrics, stamps, values, strict=True):
            for mr in by_metric[metric]:
                in_scope = mr.scope.get(eid)
                if in_scope is None:
                    in_scope = self._in_scope(mr, eid)
                if not in_scope:
                    continue
                last = mr.last_ts.get(eid)
                if last is not None and ts <= last:
                    continue
                mr.last_ts[eid] = ts
                if value is None or value != value:  # NaN
                    continue
                # Fast path, most rows: nothing open or pending and the condition is false.
                fixed = mr.cond.value if mr.cond.threshold_property is None else None
                if (
                    fixed is not None
                    and eid not in mr.open_ids
                    and eid not in mr.pending
                    and not mr.cmp(value, fixed)
                ):
                    continue
                self._eval_one(mr, eid, ts, value, changes)

    def _eval_one(
        self, mr: _MetricRule, eid: str, ts: int, value: float, changes: list[AlertChange]
    ) -> None:
        threshold = self._threshold(mr, eid)
        if threshold is None:
            return
        entry = self._open.get((mr.rule.id, eid))
        if entry is not None:
            if not mr.cmp(value, mr.cond.clear_threshold(threshold)):
                changes.append(self._close(entry, from_us(ts), value=value))
            mr.pending.pop(eid, None)
            return
        if not mr.cmp(value, threshold):
            mr.pending.pop(eid, None)
            return
        mr.last_value[eid] = value
        if mr.for_us == 0:
            changes.extend(self._fire_metric(mr, eid, ts, ts, value, None))
            return
        since = mr.pending.setdefault(eid, ts)
        if ts - since >= mr.for_us:
            del mr.pending[eid]
            changes.extend(self._fire_metric(mr, eid, ts, since, value, None))

    def _fire_metric(
        self,
        mr: _MetricRule,
        eid: str,
        at_us: int,
        since_us: int,
        value: float,
        wall: datetime | None,
    ) -> list[AlertChange]:
        rule, cond = mr.rule, mr.cond
        threshold = self._threshold(mr, eid)
        ent = self._entity(eid)
        starts = from_us(at_us)
        name_en = (ent.name_en if ent else None) or eid
        name_zh = (ent.name_zh if ent else None) or name_en
        info = self.registry.info(cond.metric)
        unit = f" {info.unit}" if info and info.unit and info.unit not in ("code", "flag") else ""
        shown = "?" if value != value else f"{value:g}"
        limit = "?" if threshold is None else f"{threshold:g}"
        test = f"{cond.metric} {shown}{unit} {cond.op} {limit}{unit}"
        lasting_en = f" for {cond.for_minutes:g} min" if cond.for_minutes else ""
        lasting_zh = f"，持續 {cond.for_minutes:g} 分鐘" if cond.for_minutes else ""
        notify = self._fresh(starts, wall)
        props: dict[str, Any] = {
            "rule_id": rule.id,
            "value": None if value != value else value,
            "threshold": threshold,
            "metric": cond.metric,
            "op": cond.op,
            "key": eid,
            "entity_id": eid,
            "since": from_us(since_us).isoformat(),
            "notified": notify,
        }
        if cond.for_minutes:
            props["for_minutes"] = cond.for_minutes
        alert = Event(
            id=f"alert:{rule.id}:{eid}:{_stamp(starts)}",
            kind=ALERT_KIND,
            severity=rule.severity if rule.severity != "event" else "moderate",
            starts_at=starts,
            title_en=f"{rule.title_en}: {name_en}",
            title_zh=f"{rule.title_zh}：{name_zh}",
            body_en=test + lasting_en,
            body_zh=test + lasting_zh,
            entity_ids=(eid,),
            districts=(ent.district,) if ent is not None and ent.district else (),
            source=ALERT_FEED,
            properties=props,
        )
        self._open[(rule.id, eid)] = _Open(alert, rule.id, eid, notify)
        mr.open_ids.add(eid)
        self.fired += 1
        return [AlertChange("fired" if notify else "recorded", alert)]

    # -- events ------------------------------------------------------------------------------

    def _eval_events(self, batch: Batch, changes: list[AlertChange]) -> None:
        now = utc(self.clock())
        for ev in batch.events:
            for er in self._event_rules.get(ev.kind, ()):
                if self._matches(er.cond, ev):
                    self._event_seen(er, ev, batch.feed_id, now, changes)
        if any(n.startswith(IN_FORCE_NOTE) for n in batch.notes):
            self._snapshot(batch, now, changes)

    @staticmethod
    def _matches(cond: EventCondition, ev: Event) -> bool:
        if cond.codes and ev.properties.get("code") not in cond.codes:
            return False
        if any(ev.properties.get(k) != v for k, v in cond.properties.items()):
            return False
        if cond.min_confidence is not None:
            conf = ev.properties.get("confidence")
            if not isinstance(conf, (int, float)) or conf < cond.min_confidence:
                return False
        return True

    @staticmethod
    def _effective_end(cond: EventCondition, ev: Event) -> datetime | None:
        if ev.ends_at is None:
            return None
        if ev.ends_at > ev.starts_at:
            return utc(ev.ends_at)
        return utc(ev.starts_at) + timedelta(minutes=cond.clear_after_minutes)

    def _event_seen(
        self, er: _EventRule, ev: Event, feed_id: str, now: datetime, changes: list[AlertChange]
    ) -> None:
        rule, cond = er.rule, er.cond
        key = str(ev.properties.get(cond.key, ev.id)) if cond.key else ev.id
        end = self._effective_end(cond, ev)
        entry = self._open.get((rule.id, key))
        if entry is not None:
            entry.sources[ev.id] = (end, feed_id)
            self._remember_done(rule.id, ev.id)
            if self._ended(entry, now):
                changes.append(self._close(entry, self._end_of(entry, now)))
            return
        if (rule.id, ev.id) in self._done:
            return  # this event already had its alert (e.g. a CANCEL entry polled again)
        self._remember_done(rule.id, ev.id)
        active = end is None or end > now
        notify = active and self._fresh(utc(ev.starts_at), now)
        value = ev.properties.get("code") or ev.properties.get("detection") or ev.kind
        threshold: Any = list(cond.codes) if cond.codes else cond.min_confidence
        props: dict[str, Any] = {
            "rule_id": rule.id,
            "value": value,
            "threshold": threshold,
            "key": key,
            "event_ids": [ev.id],
            "event_kind": ev.kind,
            "feed_id": feed_id,
            "until": end.isoformat() if end is not None else None,
            "notified": notify,
        }
        for extra in ("confidence", "species", "village", "device_id"):
            if extra in ev.properties:
                props[extra] = ev.properties[extra]
        severity = ev.severity if rule.severity == "event" else rule.severity
        alert = Event(
            id=f"alert:{rule.id}:{key}:{_stamp(ev.starts_at)}",
            kind=ALERT_KIND,
            severity=severity,
            starts_at=utc(ev.starts_at),
            # The event's own title says it best ("Red Rainstorm Warning Signal",
            # "Illegal dumping detected at Tai O"); the rule title is the fallback.
            title_en=ev.title_en or rule.title_en,
            title_zh=ev.title_zh or ev.title_en or rule.title_zh,
            body_en=ev.body_en or rule.title_en,
            body_zh=ev.body_zh or rule.title_zh,
            entity_ids=ev.entity_ids,
            districts=ev.districts,
            source=ALERT_FEED,
            properties=props,
        )
        entry = _Open(alert, rule.id, key, notify, {ev.id: (end, feed_id)})
        self.fired += 1
        changes.append(AlertChange("fired" if notify else "recorded", alert))
        if active:
            self._open[(rule.id, key)] = entry
        else:
            changes.append(self._close(entry, self._end_of(entry, now)))

    def _snapshot(self, batch: Batch, now: datetime, changes: list[AlertChange]) -> None:
        """A batch that lists everything in force ends what it no longer lists."""
        present = {
            e.id for e in batch.events if e.ends_at is None or utc(e.ends_at) > batch.fetched_at
        }
        gone_at = utc(batch.fetched_at)
        for entry in list(self._open.values()):
            touched = False
            for eid, (end, feed) in list(entry.sources.items()):
                if feed == batch.feed_id and eid not in present and (end is None or end > gone_at):
                    entry.sources[eid] = (gone_at, feed)
                    touched = True
            if touched and self._ended(entry, now):
                changes.append(self._close(entry, self._end_of(entry, now)))

    @staticmethod
    def _ended(entry: _Open, now: datetime) -> bool:
        return all(end is not None and end <= now for end, _ in entry.sources.values())

    @staticmethod
    def _end_of(entry: _Open, now: datetime) -> datetime:
        ends = [end for end, _ in entry.sources.values() if end is not None]
        return max(ends) if ends else now

    def _remember_done(self, rule_id: str, event_id: str) -> None:
        self._done[(rule_id, event_id)] = None
        while len(self._done) > _DONE_MEMORY:
            self._done.popitem(last=False)

    # -- changes -----------------------------------------------------------------------------

    def _fresh(self, data_ts: datetime, wall: datetime | None) -> bool:
        now = wall or utc(self.clock())
        return data_ts >= now - self.notify_max_age

    def _close(
        self,
        entry: _Open,
        at: datetime,
        *,
        value: float | None = None,
        reason: str | None = None,
    ) -> AlertChange:
        alert = entry.alert
        props = dict(alert.properties)
        if value is not None:
            props["cleared_value"] = value
        if reason is not None:
            props["cleared_reason"] = reason
        if entry.sources:
            props["event_ids"] = sorted(entry.sources)
        closed = dataclasses.replace(alert, ends_at=max(utc(at), alert.starts_at), properties=props)
        self._open.pop((entry.rule_id, entry.key), None)
        mr = self._metric_by_id.get(entry.rule_id)
        if mr is not None:
            mr.open_ids.discard(entry.key)
        self.cleared += 1
        return AlertChange("cleared" if entry.notified else "recorded", closed)

    def _persist(self, changes: list[AlertChange]) -> None:
        """Store the final state of every changed alert (called under the engine lock, so
        writes of one alert are never reordered between threads)."""
        if not changes:
            return
        final: dict[str, Event] = {}
        for ch in changes:
            final[ch.alert.id] = ch.alert
        self._write(list(final.values()))

    def _announce(self, changes: list[AlertChange]) -> None:
        for ch in changes:
            data = alert_json(ch.alert)
            if self.bus is not None:
                try:
                    self.bus.publish(
                        BUS_TOPIC, {"type": "alert", "action": ch.action, "alert": data}
                    )
                except Exception:
                    log.exception("publishing alert %s failed", ch.alert.id)
            if self.dispatcher is not None and ch.action != "recorded":
                self.dispatcher.submit(f"alert.{ch.action}", data)

    def _write(self, alerts: list[Event]) -> None:
        # The store keeps the event written with the newest fetched_at: keep it increasing.
        at = max(now_utc(), self._last_written + _US)
        self._last_written = at
        payload = orjson.dumps(
            {"alerts": [alert_json(a) for a in alerts], "nonce": uuid.uuid4().hex}
        )
        try:
            self.store.append(Batch.build(ALERT_FEED, payload, at, events=alerts))
        except Exception:
            self.store_errors += 1
            log.exception("storing %d alert change(s) failed", len(alerts))

    # -- queries -----------------------------------------------------------------------------

    def open_alerts(self) -> list[Event]:
        with self._lock:
            return sorted((e.alert for e in self._open.values()), key=lambda a: a.starts_at)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            pending = sum(len(mr.pending) for mr in self._metric_rules)
            return {
                "rules": len(self.rules.enabled),
                "open": len(self._open),
                "pending": pending,
                "fired": self.fired,
                "cleared": self.cleared,
                "batches_evaluated": self.batches_evaluated,
                "observations_evaluated": self.observations_evaluated,
                "store_errors": self.store_errors,
                "last_tick": self.last_tick.isoformat() if self.last_tick else None,
                "webhooks": self.dispatcher.stats() if self.dispatcher else None,
            }

