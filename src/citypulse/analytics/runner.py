"""Periodic traffic analytics inside ``citypulse serve``: every ``interval_s`` (5 minutes by
default) compute congestion, anomalies and forecasts and write them back to the store, so they
have history, appear in ``/api/v1/series`` and ``/api/v1/events`` like any feed, and survive a
restart.

What one run writes, as one ``Batch`` with ``feed_id="analytics"``:

* observations ``congestion_index`` (0..1, see ``congestion.py``) at the newest 5-minute bin for
  every road link with a reading, every speed-map region (entity ``traffic-region:HK`` ...)
  and district (``traffic-district:wan-chai`` ...); those area entities are upserted too;
* observations ``speed_forecast_kmh_15m`` / ``_30m`` / ``_60m`` per link, labelled with the
  *target* bin's start (the 5 minutes the forecast is for), so a forecast series lines up
  with ``speed_kmh`` on a chart and live skill can be measured later;
* events of kind ``traffic-anomaly`` (open ones have no ``ends_at``); an event that was open
  in the store but is no longer detected as open is closed at its last anomalous bin.

A failing run is logged and retried at the next tick: analytics never stop ingest or the web.
The bus gets one ``analytics`` message per run (``{"feed_id": "analytics", ...}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import orjson

from citypulse.analytics import anomalies as anom
from citypulse.analytics import congestion as cong
from citypulse.analytics.engine import TrafficAnalytics
from citypulse.analytics.forecast import forecast_metric
from citypulse.analytics.history import STEP, floor_time
from citypulse.model import Batch, Entity, Event, ObservationBuilder, now_utc
from citypulse.store.base import TimeSeriesStore
from citypulse.store.bus import Bus

log = logging.getLogger(__name__)

FEED_ID = "analytics"
TOPIC = "analytics"
DEFAULT_INTERVAL_S = 300.0
ANOMALY_LOOKBACK = timedelta(hours=2)
FIRST_LOOKBACK = timedelta(hours=24)
"""The first run after start-up also records the anomalies of the last day."""
OPEN_LOOKBACK = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class RunSummary:
    at: datetime | None
    congestion_rows: int
    forecast_rows: int
    anomalies_open: int
    events_written: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "feed_id": FEED_ID,
            "at": self.at.isoformat() if self.at else None,
            "congestion_rows": self.congestion_rows,
            "forecast_rows": self.forecast_rows,
            "anomalies_open": self.anomalies_open,
            "events_written": self.events_written,
            "seconds": round(self.seconds, 3),
        }


def area_entities(snapshot: cong.CongestionSnapshot) -> list[Entity]:
    out = []
    for a in [*snapshot.regions, *snapshot.districts]:
        kind = cong.REGION_KIND if a.level == "region" else cong.DISTRICT_KIND
        out.append(
            Entity(
                a.entity_id, kind, a.name_en, a.name_zh,
                district=a.key if a.level == "district" else None,
                properties={"level": a.level, "key": a.key, "links": a.links_total,
                            "length_km": a.length_km},
            )
        )
    return out


def run_once(
    engine: TrafficAnalytics, bus: Bus | None = None, lookback: timedelta = ANOMALY_LOOKBACK
) -> RunSummary:
    """One analytics pass over the newest data; blocking (call it from a worker thread).
    ``lookback``: how far back anomalies are (re)written."""
    import time

    t0 = time.perf_counter()
    store = engine.store
    at = engine.newest_time()  # road links or detectors
    if at is None:
        return RunSummary(None, 0, 0, 0, 0, time.perf_counter() - t0)
    link_at = engine.data_time()
    obs = ObservationBuilder()
    entities: list[Entity] = []
    snap = engine.congestion(link_at) if link_at is not None else None
    n_cong = 0
    if snap is not None and snap.at is not None:
        bin_at = snap.at
        for link in snap.links:
            if link.index is not None and link.ts == bin_at:
                obs.add(link.entity_id, cong.METRIC, bin_at, link.index)
                n_cong += 1
        for area in [*snap.regions, *snap.districts]:
            if area.index is not None:
                obs.add(area.entity_id, cong.METRIC, bin_at, area.index)
                n_cong += 1
        entities = area_entities(snap)
    n_fc = 0
    for fc in engine.forecasts() if link_at is not None else []:
        for minutes, target, speed in fc.points:
            obs.add(fc.entity_id, forecast_metric(minutes), target, speed)
            n_fc += 1
    events = anomaly_events(engine, store, at, lookback)
    open_now = sum(1 for e in events if e.ends_at is None)
    wall = now_utc()
    payload = orjson.dumps({"run": wall.isoformat(), "at": at.isoformat(), "rows": len(obs)})
    result = store.append(
        Batch.build(FEED_ID, payload, wall, entities=entities, observations=obs, events=events)
    )
    summary = RunSummary(
        at, n_cong, n_fc, open_now, result.events_written, time.perf_counter() - t0
    )
    if bus is not None:
        bus.publish(TOPIC, summary.as_dict())
    return summary


def anomaly_events(
    engine: TrafficAnalytics,
    store: TimeSeriesStore,
    at: datetime,
    lookback: timedelta = ANOMALY_LOOKBACK,
) -> list[Event]:
    """Anomalies of the last ``lookback`` plus updates of events the store still has open."""
    open_stored = [
        e for e in store.events(at - OPEN_LOOKBACK, at + STEP, kind=anom.KIND)
        if e.ends_at is None and e.source == FEED_ID
    ]
    since = min([at - lookback, *(e.starts_at for e in open_stored)])
    found = engine.anomalies(at=at, start=since)
    events = {a.event_id: anom.to_event(a) for a in found}
    for old in open_stored:
        if old.id in events and events[old.id].ends_at is None:
            continue
        if old.id not in events:
            last = (old.properties or {}).get("last_bin")
            try:
                end = datetime.fromisoformat(str(last)) + STEP if last else floor_time(at)
            except ValueError:
                end = floor_time(at)
            events[old.id] = replace(old, ends_at=max(end, old.starts_at))
    return list(events.values())


class AnalyticsRunner:
    """``start()`` / ``stop()`` a background task calling :func:`run_once` every
    ``interval_s`` (the first run right away). ``engine`` is shared with the web app
    (``app.state.analytics``) so pages reuse the fitted models."""

    def __init__(
        self,
        store: TimeSeriesStore,
        bus: Bus | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        engine: TrafficAnalytics | None = None,
    ) -> None:
        self.engine = engine or TrafficAnalytics(store)
        self.bus = bus
        self.interval_s = interval_s
        self.last: RunSummary | None = None
        self.failures = 0
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> RunSummary | None:
        lookback = ANOMALY_LOOKBACK if self.last is not None else FIRST_LOOKBACK
        try:
            self.last = await asyncio.to_thread(run_once, self.engine, None, lookback)
            self.failures = 0
        except Exception:  # never let analytics take serve down; try again next tick
            self.failures += 1
            log.exception("analytics run failed (%d in a row)", self.failures)
            return None
        if self.bus is not None:
            self.bus.publish(TOPIC, self.last.as_dict())
        return self.last

    async def _loop(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self.interval_s)

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="citypulse-analytics")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def analytics_loop(
    store: TimeSeriesStore, bus: Bus | None = None, interval_s: float = DEFAULT_INTERVAL_S
) -> None:
    """Run analytics every ``interval_s`` until cancelled (for callers that own the task)."""
    runner = AnalyticsRunner(store, bus, interval_s)
    await runner._loop()
