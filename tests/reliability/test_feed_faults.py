"""Feed faults against the real scheduler, fetcher and pipeline over real HTTP on 127.0.0.1.

One feed per fault, all polled together by one :class:`Scheduler`:

=================  ==================  ====================================================
feed               fault               expected health
=================  ==================  ====================================================
td-journey-time    none (healthy)      up; keeps polling while the others fail
hko-fnd            answers too slowly  down, ``timeout``
epd-aqhi           HTTP 500            down, ``http-500`` (after its retry)
td-irn-speed       body cut short      down, ``network-error: ...`` (connection closed)
epd-pollutants     truncated file      down, quarantined ``malformed-xml``
carpark-vacancy    200 HTML error      down, quarantined ``html-error-page``
hko-rhrread        wrong content type  up: the body decides, not the label (HK publishers
                                       mislabel content types; the parser still validates)
td-speedmap        publisher goes away down, ``connect-error: ...``; up again when it returns,
                                       then backfill from the (fake) historical archive
                                       fills every version missed meanwhile
=================  ==================  ====================================================

"On time" is checked by order, not by clock: while a slow request is held open by the server,
the healthy feed's requests keep arriving (counted server-side).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pyarrow.compute as pc
import pytest
from tests.ingest.helpers import LocalServer, Reply

from citypulse.feeds.base import HKT, FeedSpec
from citypulse.feeds.registry import get_feed
from citypulse.ingest.archive import RawArchive
from citypulse.ingest.backfill import BackfillState, backfill
from citypulse.ingest.fetch import Fetcher, FetchResult
from citypulse.ingest.pipeline import Pipeline
from citypulse.ingest.scheduler import Scheduler
from citypulse.simulate.registry import all_simulators
from citypulse.store.duckdb import DuckDBStore
from citypulse.web.routes.api import feed_statuses

HEALTHY = "td-journey-time"
GONE = "td-speedmap"
FAULTS = {
    "hko-fnd": "slow",
    "epd-aqhi": "http-500",
    "td-irn-speed": "cut",
    "epd-pollutants": "truncated",
    "carpark-vacancy": "html-200",
    "hko-rhrread": "wrong-type",
}
BASE = datetime(2024, 6, 3, 0, 0, tzinfo=UTC)
ARCHIVE = "/archive/v1/historical-archive"
HTML_ERROR = (
    b"<!DOCTYPE html><html><head><title>Service Unavailable</title></head>"
    b"<body><h1>Sorry, the service is temporarily unavailable.</h1></body></html>"
)


class Source:
    """A simulated publisher: version k (payload at BASE + k intervals) is current from the
    k-th tick of a manual clock; every version stays available to the archive."""

    def __init__(self, feed_id: str) -> None:
        self.feed_id = feed_id
        self.sim = all_simulators()[feed_id]
        self.step = timedelta(seconds=max(60, int(self.sim.interval_s)))
        self.version = 0
        self._cache: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def at(self, k: int) -> datetime:
        return BASE + k * self.step

    def payload(self, k: int) -> bytes:
        with self._lock:
            if k not in self._cache:
                self._cache[k] = self.sim.emit(self.at(k), random.Random(f"{self.feed_id}:{k}"))
            return self._cache[k]

    def current(self) -> bytes:
        return self.payload(self.version)

    def stamp(self, k: int) -> str:
        return self.at(k).astimezone(HKT).strftime("%Y%m%d-%H%M")


class Traffic:
    """Server-side log of request arrivals per feed."""

    def __init__(self) -> None:
        self.arrivals: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def arrived(self, feed_id: str) -> None:
        with self._lock:
            self.arrivals.setdefault(feed_id, []).append(time.monotonic())


class RecordingFetcher(Fetcher):
    """Records when each fetch started and ended, per feed (client side)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spans: dict[str, list[tuple[float, float]]] = {}

    async def fetch(self, spec: FeedSpec, url: str | None = None) -> FetchResult:
        start = time.monotonic()
        try:
            return await super().fetch(spec, url)
        finally:
            self.spans.setdefault(spec.id, []).append((start, time.monotonic()))


def fault_route(
    feed_id: str, fault: str, source: Source, traffic: Traffic, release: threading.Event
) -> Callable[[dict[str, str]], Reply]:
    media = get_feed(feed_id).media_type

    def answer(_headers: dict[str, str]) -> Reply:
        traffic.arrived(feed_id)
        body = source.current()
        if fault in ("none", "wrong-type"):
            source.version += 1  # a new version each poll; faulty feeds repeat theirs
        if fault == "slow":
            # Held until after the client gave up (its deadline is 1 s) or the test ends.
            release.wait(3)
            return Reply(200, body, {"Content-Type": media})
        if fault == "http-500":
            return Reply(500, b"Internal Server Error", {"Content-Type": "text/plain"})
        if fault == "cut":
            # Declares the full length, sends half, closes: the client sees a short read.
            return Reply(
                200,
                body[: len(body) // 2],
                {"Content-Type": media, "Content-Length": str(len(body))},
                content_length=False,
            )
        if fault == "truncated":
            return Reply(200, body[: len(body) * 2 // 3], {"Content-Type": media})
        if fault == "html-200":
            return Reply(200, HTML_ERROR, {"Content-Type": "text/html; charset=utf-8"})
        if fault == "wrong-type":
            return Reply(200, body, {"Content-Type": "text/html"})
        return Reply(200, body, {"Content-Type": media})

    return answer


def reopen(old: LocalServer) -> LocalServer:
    """A new server on the port of a stopped one (the publisher coming back)."""
    new = LocalServer()
    handler = new.httpd.RequestHandlerClass
    new.httpd.server_close()
    new.httpd = ThreadingHTTPServer(("127.0.0.1", old.port), handler)
    new.httpd.daemon_threads = True
    new.port = old.port
    new.thread = threading.Thread(
        target=new.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    new.routes.update(old.routes)
    new.query_routes.update(old.query_routes)
    return new


def archive_routes(server: LocalServer, source: Source) -> None:
    """The two calls of the DATA.GOV.HK historical archive API, for ``source``'s versions."""

    def list_versions(_h: dict[str, str], query: dict[str, str]) -> Reply:
        stamps = [source.stamp(k) for k in range(source.version + 1)]
        stamps = [s for s in stamps if query["start"] <= s[:8] <= query["end"]]
        doc = {"version-count": len(stamps), "timestamps": stamps}
        return Reply(200, orjson.dumps(doc), {"Content-Type": "application/json"})

    def get_file(_h: dict[str, str], query: dict[str, str]) -> Reply:
        for k in range(source.version + 1):
            if source.stamp(k) == query["time"]:
                return Reply(200, source.payload(k), {"Content-Type": "application/xml"})
        return Reply(404, b"no such version")

    server.query_routes[f"{ARCHIVE}/list-file-versions"] = list_versions
    server.query_routes[f"{ARCHIVE}/get-file"] = get_file


async def until(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Wait (bounded) for a condition; the bound only stops a hung test, it is no check."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for: {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
def servers() -> Iterator[dict[str, LocalServer]]:
    main, publisher = LocalServer(), LocalServer()
    main.start()
    publisher.start()
    made = {"main": main, "publisher": publisher}
    try:
        yield made
    finally:
        for s in made.values():
            s.release.set()
            with contextlib.suppress(Exception):  # already stopped by the test
                s.stop()


def test_faults_are_isolated_shown_in_health_and_backfilled(
    servers: dict[str, LocalServer], tmp_path: Path
) -> None:
    main = servers["main"]
    traffic = Traffic()
    release = threading.Event()
    sources = {f: Source(f) for f in [HEALTHY, GONE, *FAULTS]}
    specs: list[FeedSpec] = []
    for feed_id, source in sources.items():
        server = servers["publisher"] if feed_id == GONE else main
        fault = FAULTS.get(feed_id, "none")
        server.routes[f"/{feed_id}"] = fault_route(feed_id, fault, source, traffic, release)
        specs.append(dataclasses.replace(get_feed(feed_id), url=server.url(f"/{feed_id}")))
    archive_routes(main, sources[GONE])

    store = DuckDBStore(str(tmp_path / "store.duckdb"))
    pipeline = Pipeline(store, RawArchive(tmp_path / "archive"))
    fetcher = RecordingFetcher(timeout_s=0.5, deadline_s=1.0, attempts=2, backoff_s=0.02)
    intervals = {s.id: (0.2 if s.id == HEALTHY else 0.5) for s in specs}
    scheduler = Scheduler(specs, fetcher, pipeline, intervals, first_poll_max_s=0.05, jitter=0.0)

    async def scenario() -> dict[str, object]:
        await scheduler.start()
        try:
            # Phase 1: every fault seen at least twice, the healthy feed polling throughout.
            await until(
                lambda: all(scheduler.states[f].polls >= 2 for f in FAULTS),
                "two polls of every faulty feed",
            )
            await until(lambda: scheduler.states[GONE].last_status == "stored", "speedmap")
            # Phase 2: the speedmap publisher goes away; its versions keep coming meanwhile.
            gone_at = sources[GONE].version
            servers["publisher"].stop()
            polls_before = scheduler.states[GONE].polls
            await until(lambda: scheduler.states[GONE].polls >= polls_before + 3, "gone polls")
            down_error = scheduler.states[GONE].last_error
            sources[GONE].version += 5  # published while we could not reach it
            missed = list(range(gone_at, sources[GONE].version))
            # Phase 3: it returns on the same address.
            servers["publisher"] = reopen(servers["publisher"])
            servers["publisher"].start()
            await until(lambda: scheduler.states[GONE].last_status == "stored", "return")
        finally:
            release.set()
            await scheduler.stop()
        return {"down_error": down_error, "missed": missed}

    outcome = asyncio.run(scenario())

    # -- isolation: the healthy feed was polled while slow requests hung ---------------------
    healthy = traffic.arrivals[HEALTHY]
    slow = fetcher.spans["hko-fnd"]
    for start, end in slow[:2]:
        during = [t for t in healthy if start < t < end]
        assert len(during) >= 2, f"healthy feed starved during a slow fetch ({during})"
    assert scheduler.states[HEALTHY].consecutive_failures == 0

    # -- health shows each fault -----------------------------------------------------------
    health = {h.feed_id: h for h in store.feed_health()}
    status = {s.id: s for s in feed_statuses(store)}
    expect = {
        "hko-fnd": "timeout",
        "epd-aqhi": "http-500",
        "td-irn-speed": "network-error",
        "epd-pollutants": "malformed-xml",
        "carpark-vacancy": "html-error-page",
    }
    for feed_id, error in expect.items():
        h = health[feed_id]
        assert h.last_error is not None and h.last_error.startswith(error), (feed_id, h)
        assert h.consecutive_failures >= 2, (feed_id, h)
        assert h.last_success is None, (feed_id, h)
        assert status[feed_id].status == "down", (feed_id, status[feed_id])
    for feed_id in (HEALTHY, "hko-rhrread"):
        assert health[feed_id].last_error is None, health[feed_id]
        assert status[feed_id].status == "up", status[feed_id]
    quarantined = {p.feed_id: p.reason for p in store.payloads(status="quarantined")}
    assert quarantined["epd-pollutants"] == "malformed-xml"
    assert quarantined["carpark-vacancy"] == "html-error-page"
    # The publisher that went away: down with the connect error, then up again.
    assert str(outcome["down_error"]).startswith("connect-error"), outcome
    assert status[GONE].status == "up"
    assert health[GONE].last_error is not None
    assert health[GONE].last_error.startswith("connect-error")

    # -- backfill closes the gap -------------------------------------------------------------
    source = sources[GONE]
    missed = outcome["missed"]
    assert isinstance(missed, list) and missed
    spec = next(s for s in specs if s.id == GONE)

    def stored_times() -> set[datetime]:
        obs = store.observations(BASE - timedelta(days=1), BASE + timedelta(days=30),
                                 metrics=["speed_kmh"])
        return set(pc.unique(obs["ts"]).to_pylist())

    def version_times(k: int) -> set[datetime]:
        batch = spec.parse(source.payload(k), source.at(k))
        return set(pc.unique(batch.observations["ts"]).to_pylist())

    gap = [k for k in missed if not version_times(k) <= stored_times()]
    assert gap, "the outage left no gap: nothing for backfill to prove"
    days = sorted({date.fromisoformat(f"{s[:4]}-{s[4:6]}-{s[6:8]}")
                   for s in (source.stamp(k) for k in range(source.version + 1))})

    async def run_backfill() -> object:
        with BackfillState(tmp_path / "backfill.sqlite3") as state:
            async with Fetcher(timeout_s=5, attempts=2, backoff_s=0.02) as f:
                return await backfill(spec, pipeline, days[0], days[-1], state=state,
                                      fetcher=f, archive_api=main.url(ARCHIVE), rate=0)

    report = asyncio.run(run_backfill())
    assert getattr(report, "errors", 1) == 0, report
    after = stored_times()
    still = [k for k in range(source.version + 1) if not version_times(k) <= after]
    assert not still, f"versions still missing after backfill: {still}"
    store.close()
    print(
        f"faults: healthy polls {len(healthy)}, slow fetches {len(slow)}, "
        f"gap {len(gap)} versions closed by backfill ({report})"
    )
