"""Scheduler (one task per feed, failures recorded, never blocking each other) and the demo
source (simulators -> pipeline, with a quick history backfill)."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from citypulse.feeds.base import HKT
from citypulse.ingest.fetch import Fetcher
from citypulse.ingest.pipeline import Pipeline
from citypulse.ingest.scheduler import DemoSource, Scheduler
from citypulse.store.base import FeedHealth, TimeSeriesStore

from .helpers import LocalServer, Reply, make_spec, payload

# Waits are bounded by generous caps only to keep a broken build from hanging; nothing asserts
# on elapsed time.
CAP_S = 60.0


async def wait_for(cond: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CAP_S
    while True:
        value = cond()
        if not isinstance(value, bool):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            pytest.fail(f"gave up waiting for: {what}")
        await asyncio.sleep(0.02)


def health_of(store: TimeSeriesStore, feed_id: str) -> FeedHealth | None:
    return next((h for h in store.feed_health() if h.feed_id == feed_id), None)


def counting_route(server: LocalServer, path: str) -> None:
    """Each hit serves new data (a new minute), so every poll stores rows."""

    def route(headers: dict[str, str]) -> Reply:
        n = server.hits[path]
        t = (datetime(2024, 1, 1, 12, 0) + timedelta(minutes=n)).isoformat()
        return Reply(200, payload(t, a=float(n)))

    server.routes[path] = route


async def test_failing_slow_feed_never_delays_the_other(
    http_server: LocalServer, pipeline: Pipeline, store: TimeSeriesStore
) -> None:
    gate = threading.Event()

    def stuck_then_503(headers: dict[str, str]) -> Reply:
        gate.wait(CAP_S)  # the first request hangs until the test lets it go
        return Reply(503, b"down")

    http_server.routes["/bad"] = stuck_then_503
    counting_route(http_server, "/good")
    good = make_spec("test-good", url=http_server.url("/good"), interval_s=3600)
    bad = make_spec("test-bad", url=http_server.url("/bad"), interval_s=3600)
    fetcher = Fetcher(timeout_s=CAP_S, attempts=1)
    scheduler = Scheduler(
        [good, bad],
        fetcher,
        pipeline,
        intervals={"test-good": 0.05, "test-bad": 0.05},
        first_poll_max_s=0.0,
        rng=random.Random(1),
    )
    try:
        await scheduler.start()
        assert scheduler.running
        await wait_for(lambda: http_server.hits["/bad"] >= 1, "bad feed polled")
        await wait_for(lambda: scheduler.states["test-good"].polls >= 5, "good polled 5x")
        # While the bad feed's first poll is still hanging, the good one kept its cadence.
        assert scheduler.states["test-bad"].polls == 0
        assert http_server.hits["/bad"] == 1

        gate.set()
        await wait_for(
            lambda: (h := health_of(store, "test-bad")) is not None and h.consecutive_failures >= 3,
            "bad feed failed 3x",
        )
        good_polls = scheduler.states["test-good"].polls
        await wait_for(
            lambda: scheduler.states["test-good"].polls >= good_polls + 3, "good keeps going"
        )
    finally:
        await scheduler.stop()
        await fetcher.aclose()
    assert not scheduler.running

    bad_health = health_of(store, "test-bad")
    assert bad_health is not None
    assert bad_health.last_error == "http-503" and bad_health.last_success is None
    assert scheduler.states["test-bad"].consecutive_failures >= 3
    assert scheduler.states["test-bad"].last_error == "http-503"

    good_health = health_of(store, "test-good")
    assert good_health is not None
    assert good_health.consecutive_failures == 0 and good_health.last_success is not None
    assert scheduler.states["test-good"].last_status == "stored"
    assert store.count_observations() >= 8  # one new row per good poll


async def test_unreachable_feed_marked_down_with_real_error(
    closed_port: int, pipeline: Pipeline, store: TimeSeriesStore
) -> None:
    spec = make_spec("test-down", url=f"http://127.0.0.1:{closed_port}/")
    async with Fetcher(timeout_s=5, attempts=1) as fetcher:
        scheduler = Scheduler([spec], fetcher, pipeline)
        first = await scheduler.run_once("test-down")
        second = await scheduler.run_once("test-down")
    assert first.status == second.status == "error"
    assert first.error is not None and first.error.startswith("connect-error")
    assert str(first).startswith("error: connect-error")
    h = health_of(store, "test-down")
    assert h is not None and h.consecutive_failures == 2
    assert h.last_error is not None and h.last_error.startswith("connect-error")
    assert h.last_success is None
    assert store.count_observations() == 0  # nothing invented


async def test_not_modified_is_healthy(
    http_server: LocalServer, pipeline: Pipeline, store: TimeSeriesStore
) -> None:
    def route(headers: dict[str, str]) -> Reply:
        if headers.get("if-none-match") == '"e1"':
            return Reply(304)
        return Reply(200, payload(), {"ETag": '"e1"'})

    http_server.routes["/feed"] = route
    spec = make_spec(url=http_server.url("/feed"))
    async with Fetcher(timeout_s=5, attempts=1) as fetcher:
        scheduler = Scheduler([spec], fetcher, pipeline)
        stored = await scheduler.run_once(spec.id)
        unchanged = await scheduler.run_once(spec.id)
    assert stored.status == "stored"
    assert str(stored).startswith("stored 2 rows, 2 entities, 0 events, data 2024-01-01 04:00")
    assert "payload" not in repr(stored.fetch)  # the CLI prints results; no raw bytes
    assert str(unchanged).startswith("not modified (HTTP 304)")
    assert unchanged.status == "not-modified" and unchanged.outcome is None
    h = health_of(store, spec.id)
    assert h is not None and h.consecutive_failures == 0 and h.last_rows == 0
    assert scheduler.states[spec.id].polls == 2


async def test_store_error_forgets_validators(
    http_server: LocalServer, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    http_server.routes["/feed"] = lambda h: Reply(200, payload(), {"ETag": '"e1"'})
    spec = make_spec(url=http_server.url("/feed"))

    def broken_append(batch: object) -> object:
        raise RuntimeError("disk full")

    monkeypatch.setattr(pipeline.store, "append", broken_append)
    async with Fetcher(timeout_s=5, attempts=1) as fetcher:
        scheduler = Scheduler([spec], fetcher, pipeline)
        result = await scheduler.run_once(spec.id)
        assert result.status == "error"
        assert fetcher.validators(spec.id) == (None, None)  # next poll refetches the body


async def test_loop_survives_a_crash_in_ingest(
    http_server: LocalServer, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting_route(http_server, "/feed")
    spec = make_spec(url=http_server.url("/feed"))
    calls = 0

    def crashing_process(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        raise RuntimeError("bug outside the parser")

    monkeypatch.setattr(pipeline, "process", crashing_process)
    async with Fetcher(timeout_s=5, attempts=1) as fetcher:
        scheduler = Scheduler(
            [spec], fetcher, pipeline, intervals={spec.id: 0.01}, first_poll_max_s=0
        )
        await scheduler.start()
        try:
            await wait_for(lambda: calls >= 3, "three polls despite crashes")
        finally:
            await scheduler.stop()


# --- demo source ---------------------------------------------------------------------------


class FakeSimulator:
    """Emits the test JSON format: one reading per entity at ``at``."""

    feed_id = "test-json"
    interval_s = 120

    def __init__(self, entities: int = 3) -> None:
        self.entities = entities
        self.calls: list[datetime] = []

    def emit(self, at: datetime, rng: random.Random) -> bytes:
        self.calls.append(at)
        local = at.astimezone(HKT).replace(tzinfo=None).isoformat()
        return payload(local, **{f"e{i}": rng.uniform(0, 100) for i in range(self.entities)})


NOW = datetime(2024, 3, 1, 10, 0, 30, tzinfo=UTC)


def demo(pipeline: Pipeline, sim: FakeSimulator, **kwargs: object) -> DemoSource:
    opts: dict[str, object] = {"feeds": {"test-json": make_spec()}, "seed": 7, "start": NOW}
    opts.update(kwargs)
    return DemoSource([sim], pipeline, 0.01, 1.0, **opts)  # type: ignore[arg-type]


def test_demo_backfill_fills_history_on_the_feed_grid(
    pipeline: Pipeline, store: TimeSeriesStore
) -> None:
    sim = FakeSimulator()
    source = demo(pipeline, sim, backfill_hours=0.2)
    assert source.backfill(until=NOW) == 6  # 12 minutes of 2-minute payloads
    assert sim.calls[0] == datetime(2024, 3, 1, 9, 50, tzinfo=UTC)
    assert sim.calls[-1] == datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    assert all(t.second == 0 and t.minute % 2 == 0 for t in sim.calls)
    assert store.count_observations() == 6 * 3
    (h,) = [h for h in store.feed_health() if h.feed_id == "test-json"]
    assert h.last_data_ts == datetime(2024, 3, 1, 10, 0, tzinfo=UTC)

    # Live ticks continue from where the backfill stopped, one payload per simulated step.
    assert source.tick(NOW + timedelta(minutes=5)) == 2  # 10:02, 10:04
    assert source.tick(NOW + timedelta(minutes=5)) == 0
    assert sim.calls[-2:] == [
        datetime(2024, 3, 1, 10, 2, tzinfo=UTC),
        datetime(2024, 3, 1, 10, 4, tzinfo=UTC),
    ]


def test_demo_backfill_coarsens_step_when_too_many_payloads(pipeline: Pipeline) -> None:
    sim = FakeSimulator()
    source = demo(pipeline, sim, backfill_hours=1.0, backfill_max_payloads=6)
    n = source.backfill(until=NOW)
    assert n <= 6
    steps = {(b - a).total_seconds() for a, b in zip(sim.calls, sim.calls[1:], strict=False)}
    assert steps == {600.0}  # 30 two-minute steps -> 6 ten-minute steps


def test_demo_far_behind_skips_to_present(pipeline: Pipeline) -> None:
    sim = FakeSimulator()
    source = demo(pipeline, sim, backfill_hours=0.0, max_payloads_per_tick=3)
    source.tick(NOW)
    sim.calls.clear()
    assert source.tick(NOW + timedelta(hours=10)) == 4  # 3 due + 1 at the present
    assert sim.calls[-1] == datetime(2024, 3, 1, 20, 0, tzinfo=UTC)


def test_demo_simulator_crash_recorded(pipeline: Pipeline, store: TimeSeriesStore) -> None:
    class Broken(FakeSimulator):
        def emit(self, at: datetime, rng: random.Random) -> bytes:
            raise ValueError("simulator bug")

    source = demo(pipeline, Broken(), backfill_hours=0.0)
    source.tick(NOW)
    (h,) = [h for h in store.feed_health() if h.feed_id == "test-json"]
    assert h.last_error == "simulator-crash" and h.consecutive_failures == 1


def test_demo_ignores_simulators_without_feed(pipeline: Pipeline) -> None:
    class Orphan(FakeSimulator):
        feed_id = "no-such-feed"

    source = demo(pipeline, Orphan())
    assert source.simulators == {}


async def test_demo_start_backfills_then_ticks(pipeline: Pipeline, store: TimeSeriesStore) -> None:
    sim = FakeSimulator()
    # 600x speed: a simulated 2-minute step every 0.2 s of real time.
    source = DemoSource(
        [sim],
        pipeline,
        0.02,
        600.0,
        feeds={"test-json": make_spec()},
        backfill_hours=0.2,
        seed=3,
    )
    await source.start()
    try:
        await asyncio.wait_for(source.backfill_done.wait(), CAP_S)
        backfilled = source.backfilled
        # 12 min of 2-min history: the present payload comes from prime(), the rest backfilled.
        assert backfilled >= 5 and source.emitted >= backfilled + 1
        await wait_for(lambda: source.emitted >= backfilled + 2, "live demo payloads")
    finally:
        await source.stop()
    assert store.count_observations() == source.emitted * 3


def test_both_sources_satisfy_the_source_protocol(pipeline: Pipeline) -> None:
    from citypulse.ingest.scheduler import IngestSource

    sources: list[IngestSource] = [
        Scheduler([], Fetcher(), pipeline),
        DemoSource([], pipeline, feeds={}),
    ]
    assert len(sources) == 2
