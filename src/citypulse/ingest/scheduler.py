"""Polling loops: one asyncio task per feed (live), and the demo source (simulators).

One task per feed means one feed's timeout, retries or slow parse never delays another: the
network wait is async and the blocking parse + store runs in a worker thread. Polls start
with random jitter and keep it (+/- a fraction of the interval) so a restart does not hit every
publisher in the same second, and the next poll is timed from the start of the previous one so
a feed stays on its cadence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from citypulse.feeds.base import FeedSpec
from citypulse.ingest.fetch import Fetcher, FetchResult
from citypulse.ingest.pipeline import IngestOutcome, Pipeline
from citypulse.model import now_utc
from citypulse.simulate.base import FeedSimulator

log = logging.getLogger(__name__)

T = TypeVar("T")


class IngestSource(Protocol):
    """What ``citypulse serve`` starts and stops: a :class:`Scheduler` or a :class:`DemoSource`."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class _ThreadWork:
    """Runs blocking calls in worker threads and lets ``stop`` wait for the ones in flight:
    a thread cannot be cancelled, and the store must not be closed under a running append."""

    def __init__(self) -> None:
        self._inflight: set[asyncio.Future[Any]] = set()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        fut: asyncio.Future[T] = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        self._inflight.add(fut)
        fut.add_done_callback(self._inflight.discard)
        return await asyncio.shield(fut)

    async def drain(self) -> None:
        if self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)


@dataclass(slots=True)
class FeedState:
    """In-memory view of one feed's polling (the durable health lives in the store)."""

    feed_id: str
    interval_s: float
    polls: int = 0
    consecutive_failures: int = 0
    last_status: str | None = None
    last_error: str | None = None
    last_poll_at: datetime | None = None
    last_rows: int = 0


@dataclass(frozen=True, slots=True)
class PollResult:
    feed_id: str
    fetch: FetchResult
    outcome: IngestOutcome | None

    @property
    def status(self) -> str:
        """``stored``/``duplicate``/``quarantined``/``error`` from ingest, else the fetch's
        ``not-modified`` or ``error``."""
        return self.outcome.status if self.outcome is not None else self.fetch.status

    @property
    def error(self) -> str | None:
        if self.outcome is not None:
            return self.outcome.reason
        return self.fetch.error

    def __str__(self) -> str:
        """One line for people (``citypulse ingest --once``)."""
        took = f"{self.fetch.elapsed_s:.2f} s, {self.fetch.attempts} attempt(s)"
        if self.outcome is not None:
            o = self.outcome
            if o.status == "stored":
                span = (
                    f", data {o.data_start:%Y-%m-%d %H:%M}..{o.data_end:%H:%M} UTC"
                    if (o.data_start and o.data_end)
                    else ""
                )
                return (
                    f"stored {o.rows} rows, {o.entities} entities, {o.events} events{span} ({took})"
                )
            if o.status == "duplicate":
                return f"duplicate: payload already ingested ({took})"
            return f"{o.status}: {o.reason} ({took})"
        if self.fetch.status == "not-modified":
            return f"not modified (HTTP 304) ({took})"
        return f"error: {self.fetch.error} ({took})"


class Scheduler:
    """Polls live feeds on their intervals until stopped."""

    def __init__(
        self,
        feeds: Iterable[FeedSpec],
        fetcher: Fetcher,
        pipeline: Pipeline,
        intervals: Mapping[str, float] | None = None,
        *,
        jitter: float = 0.1,
        first_poll_max_s: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        self.feeds = {spec.id: spec for spec in feeds}
        self.fetcher = fetcher
        self.pipeline = pipeline
        self.intervals = dict(intervals or {})
        self.jitter = jitter
        self.first_poll_max_s = first_poll_max_s
        self.rng = rng or random.Random()
        self.states = {fid: FeedState(fid, self.interval_for(fid)) for fid in self.feeds}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._threads = _ThreadWork()

    def interval_for(self, feed_id: str) -> float:
        return float(self.intervals.get(feed_id, self.feeds[feed_id].interval_s))

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._tasks.values())

    async def start(self) -> None:
        """Start one polling task per feed (call from the running event loop)."""
        for feed_id in self.feeds:
            if feed_id not in self._tasks or self._tasks[feed_id].done():
                self._tasks[feed_id] = asyncio.create_task(
                    self._loop(feed_id), name=f"poll:{feed_id}"
                )

    async def stop(self) -> None:
        """Cancel every polling task, then wait for a parse/store already running in a worker
        thread to finish (its result is kept), so the store can be closed right after; closes
        the fetcher's own HTTP client."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._threads.drain()
        self._tasks.clear()
        await self.fetcher.aclose()  # a later start() opens a new client lazily

    async def run_once(self, feed_id: str) -> PollResult:
        """Fetch and ingest one feed now; failures are recorded in health, never raised."""
        spec = self.feeds[feed_id]
        state = self.states[feed_id]
        fetched = await self.fetcher.fetch(spec)
        outcome: IngestOutcome | None = None
        if fetched.status == "ok" and fetched.payload is not None:
            outcome = await self._threads.run(
                self.pipeline.process, spec, fetched.payload, fetched.fetched_at, "poll"
            )
            if outcome.status == "error":
                # Not stored: make the next poll fetch the body again instead of a 304.
                self.fetcher.forget(feed_id)
        elif fetched.status == "not-modified":
            await self._threads.run(self.pipeline.record_unchanged, feed_id)
        else:
            log.warning("%s: fetch failed: %s", feed_id, fetched.error)
            await self._threads.run(
                self.pipeline.record_failure, feed_id, fetched.error or "fetch-error"
            )
        result = PollResult(feed_id, fetched, outcome)
        state.polls += 1
        state.last_poll_at = fetched.fetched_at
        state.last_status = result.status
        state.last_rows = outcome.rows if outcome is not None else 0
        if result.status in ("stored", "duplicate", "not-modified"):
            state.consecutive_failures = 0
            state.last_error = None
        else:
            state.consecutive_failures += 1
            state.last_error = result.error
        return result

    async def _loop(self, feed_id: str) -> None:
        delay = self.rng.uniform(0.0, self.first_poll_max_s)
        while True:
            await asyncio.sleep(delay)
            started = time.monotonic()
            try:
                await self.run_once(feed_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in our own code: log it, keep polling
                log.exception("%s: poll crashed", feed_id)
            interval = max(0.01, self.interval_for(feed_id))
            target = interval * (1.0 + self.rng.uniform(-self.jitter, self.jitter))
            delay = max(0.0, target - (time.monotonic() - started))


def _aligned(at: datetime, step_s: int) -> datetime:
    """``at`` rounded down to a multiple of ``step_s`` since the epoch (feeds publish on a
    grid, e.g. speed map every 2 minutes)."""
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % step_s, UTC)


class DemoSource:
    """Feeds the pipeline from the simulators instead of the network (``serve --demo``).

    A simulated clock runs at ``speed`` x real time from now. Every ``interval_s`` real seconds
    each simulator emits the payloads its live feed would have published since the last tick
    (one per ``sim.interval_s`` of simulated time, on the feed's time grid). On start it first
    backfills ``backfill_hours`` of history so charts are filled immediately; the backfill
    step is widened for a simulator when it would exceed ``backfill_max_payloads``.
    """

    def __init__(
        self,
        simulators: Mapping[str, FeedSimulator] | Iterable[FeedSimulator],
        pipeline: Pipeline,
        interval_s: float = 5.0,
        speed: float = 1.0,
        *,
        feeds: Mapping[str, FeedSpec] | None = None,
        backfill_hours: float = 6.0,
        backfill_max_payloads: int = 60,
        max_payloads_per_tick: int = 30,
        seed: int | None = None,
        start: datetime | None = None,
    ) -> None:
        sims = list(simulators.values()) if isinstance(simulators, Mapping) else list(simulators)
        if feeds is None:
            from citypulse.feeds.registry import all_feeds

            feeds = all_feeds()
        self.specs: dict[str, FeedSpec] = {}
        self.simulators: dict[str, FeedSimulator] = {}
        for sim in sims:
            spec = feeds.get(sim.feed_id)
            if spec is None:
                log.warning("simulator for unknown feed %s ignored", sim.feed_id)
                continue
            self.specs[sim.feed_id] = spec
            self.simulators[sim.feed_id] = sim
        self.pipeline = pipeline
        self.interval_s = interval_s
        self.speed = speed
        self.backfill_hours = backfill_hours
        self.backfill_max_payloads = backfill_max_payloads
        self.max_payloads_per_tick = max_payloads_per_tick
        base_seed = seed if seed is not None else random.randrange(2**32)
        self._rngs = {fid: random.Random(f"{base_seed}:{fid}") for fid in self.simulators}
        self._sim_start = start or now_utc()
        self._real_start = time.monotonic()
        self._next: dict[str, datetime] = {}
        self._primed: dict[str, datetime] = {}
        self._primed_at: datetime | None = None
        self._task: asyncio.Task[None] | None = None
        self._threads = _ThreadWork()
        self._stopping = threading.Event()
        self.emitted = 0
        self.backfilled = 0
        self.backfill_done = asyncio.Event()

    def sim_now(self) -> datetime:
        """Current simulated time."""
        return self._sim_start + timedelta(
            seconds=(time.monotonic() - self._real_start) * self.speed
        )

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="demo-source")

    async def stop(self) -> None:
        """Stop ticking; a backfill or tick in progress ends after its current payload."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._threads.drain()

    def backfill(self, until: datetime | None = None) -> int:
        """Emit and ingest ``backfill_hours`` of simulated history up to ``until`` (blocking).
        Returns the number of payloads processed.

        The simulators' timelines are interleaved in time order so every dashboard fills at
        the same pace; feed health is written once per feed at the end, not per payload.
        """
        # History ends where prime() published the present, so ticks continue without a gap.
        end = until or self._primed_at or self.sim_now()
        start = end - timedelta(hours=self.backfill_hours)
        span_s = (end - start).total_seconds()
        plan: list[tuple[datetime, str]] = []
        for feed_id, sim in self.simulators.items():
            base = max(1, int(sim.interval_s))
            # Coarser history is fine for a demo: keep start-up to a few seconds.
            factor = max(1, math.ceil(span_s / base / max(1, self.backfill_max_payloads)))
            step = timedelta(seconds=base * factor)
            at = _aligned(start, base * factor) + step
            # History stops short of the payload prime() already published for this feed.
            stop = self._primed.get(feed_id)
            while at <= end and (stop is None or at < stop):
                plan.append((at, feed_id))
                at += step
            self._next[feed_id] = _aligned(end, base) + timedelta(seconds=base)
        plan.sort()
        rows: dict[str, int] = {}
        last: dict[str, datetime] = {}
        count = 0
        for at, feed_id in plan:
            if self._stopping.is_set():
                break
            outcome = self._emit(feed_id, at, record_health=False)
            count += 1
            if outcome is not None and outcome.status == "stored":
                rows[feed_id] = rows.get(feed_id, 0) + outcome.rows
                if outcome.data_end is not None:
                    last[feed_id] = max(outcome.data_end, last.get(feed_id, outcome.data_end))
        for feed_id in rows:
            self.pipeline.record_success(feed_id, rows[feed_id], last.get(feed_id))
        self.backfilled += count
        return count

    def tick(self, now: datetime | None = None) -> int:
        """Emit every payload due up to ``now`` (blocking). Returns how many were processed."""
        now = now or self.sim_now()
        count = 0
        for feed_id, sim in self.simulators.items():
            step = timedelta(seconds=max(1, int(sim.interval_s)))
            nxt = self._next.get(feed_id) or _aligned(now, int(step.total_seconds()))
            due = 0
            while nxt <= now and not self._stopping.is_set():
                if due >= self.max_payloads_per_tick:
                    # Far behind (machine asleep, huge speed): skip to the present.
                    nxt = _aligned(now, int(step.total_seconds()))
                    self._emit(feed_id, nxt)
                    count += 1
                    nxt += step
                    break
                self._emit(feed_id, nxt)
                count += 1
                due += 1
                nxt += step
            self._next[feed_id] = nxt
        return count

    def _emit(
        self, feed_id: str, at: datetime, *, record_health: bool = True
    ) -> IngestOutcome | None:
        sim = self.simulators[feed_id]
        try:
            payload = sim.emit(at, self._rngs[feed_id])
        except Exception:
            log.exception("simulator %s crashed at %s", feed_id, at.isoformat())
            self.pipeline.record_failure(feed_id, "simulator-crash")
            return None
        outcome = self.pipeline.process(
            self.specs[feed_id], payload, at, "simulator", record_health=record_health
        )
        self.emitted += 1
        return outcome

    def prime(self, now: datetime | None = None) -> int:
        """Emit the present payload of every feed (with health), so every dashboard and
        /status is current within seconds of start-up, before history is backfilled."""
        now = now or self.sim_now()
        self._primed_at = now
        count = 0
        for feed_id, sim in self.simulators.items():
            if self._stopping.is_set():
                break
            at = _aligned(now, max(1, int(sim.interval_s)))
            self._emit(feed_id, at)
            self._primed[feed_id] = at
            count += 1
        return count

    async def _run(self) -> None:
        try:
            await self._threads.run(self.prime)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("demo prime failed")
        try:
            if self.backfill_hours > 0:
                n = await self._threads.run(self.backfill)
                log.info("demo: backfilled %d payloads", n)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("demo backfill failed")
        finally:
            self.backfill_done.set()
        while True:
            started = time.monotonic()
            try:
                await self._threads.run(self.tick)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("demo tick failed")
            await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))
