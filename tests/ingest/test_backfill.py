"""Backfill from the DATA.GOV.HK historical archive, against a real HTTP server on 127.0.0.1
answering recorded responses in the documented shape: list-file-versions JSON built from the
real TD speedmap captures, get-file as a 302 to the capture bytes (read from the shared data
folder, never copied). Checks: the store gets every version, a second run writes nothing, a
failed or interrupted run resumes and completes, the rate limit (counted, never timed),
max-versions, archive_url vs url, garbage list answers, and the CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from lxml import etree
from typer.testing import CliRunner

from citypulse.cli import app
from citypulse.feeds.base import FeedSpec
from citypulse.feeds.registry import get_feed
from citypulse.ingest.archive import RawArchive, parse_archive_path
from citypulse.ingest.backfill import (
    BackfillError,
    BackfillReport,
    BackfillState,
    RateLimiter,
    backfill,
    default_state_path,
    parse_stamp,
    parse_version_list,
)
from citypulse.ingest.fetch import Fetcher
from citypulse.ingest.pipeline import IngestOutcome, Pipeline, Source
from citypulse.store.base import TimeSeriesStore
from citypulse.store.bus import InProcessBus

from .helpers import LocalServer, Reply, make_spec, payload

API = "/v1/historical-archive"
SPEEDMAP_ARCHIVED = "http://resource.data.one.gov.hk/td/speedmap.xml"
DAY = date(2016, 10, 14)


# --- the recorded archive ------------------------------------------------------------------


def stamp_of(path: Path) -> str:
    """``speedmap_20161014-180048.xml`` -> the archive's ``20161014-1800``."""
    m = re.search(r"_(\d{8})-(\d{4})\d{2}\.xml$", path.name)
    assert m, path
    return f"{m[1]}-{m[2]}"


class RecordedArchive:
    """The two archive calls on a real local server. ``files`` maps a version to a function
    returning its bytes (read when requested). ``fail`` versions answer 503; ``list_reply``
    replaces the list answer (garbage tests)."""

    def __init__(
        self, server: LocalServer, resource_url: str, files: dict[str, Callable[[], bytes]]
    ) -> None:
        self.server = server
        self.resource_url = resource_url
        self.files = files
        self.fail: set[str] = set()
        self.list_reply: Reply | None = None
        server.query_routes[f"{API}/list-file-versions"] = self.list_route
        server.query_routes[f"{API}/get-file"] = self.get_route
        for stamp, body in files.items():
            server.routes[self.snapshot_path(stamp)] = self._snapshot(body)

    @property
    def base(self) -> str:
        return self.server.url(API)

    @staticmethod
    def snapshot_path(stamp: str) -> str:
        return f"/snapshots/{stamp}/file"

    @staticmethod
    def _snapshot(body: Callable[[], bytes]) -> Callable[[dict[str, str]], Reply]:
        return lambda headers: Reply(200, body(), {"Content-Type": "application/xml"})

    def list_route(self, headers: dict[str, str], query: dict[str, str]) -> Reply:
        if self.list_reply is not None:
            return self.list_reply
        start, end = query.get("start", ""), query.get("end", "")
        if not re.fullmatch(r"\d{8}", start) or not re.fullmatch(r"\d{8}", end):
            return Reply(400, orjson.dumps({"error": ["invalid start parameter"]}))
        stamps = (
            sorted(s for s in self.files if start <= s[:8] <= end)
            if query.get("url") == self.resource_url
            else []
        )
        doc = {
            "version-count": len(stamps),
            "timestamps": stamps,
            "data-dictionary-dates": [],
            "schema-dates": [],
            "data-files": [],
        }
        return Reply(200, orjson.dumps(doc), {"Content-Type": "application/json"})

    def get_route(self, headers: dict[str, str], query: dict[str, str]) -> Reply:
        stamp = query.get("time", "")
        if query.get("url") != self.resource_url or stamp not in self.files:
            return Reply(404, b'{"error": "file not found"}')
        if stamp in self.fail:
            return Reply(503, b"Service Unavailable")
        return Reply(302, b"", {"Location": self.snapshot_path(stamp)})

    def hits(self, call: str) -> int:
        return self.server.hits[f"{API}/{call}"]

    def file_hits(self, stamp: str) -> int:
        return sum(
            1
            for t in self.server.targets
            if t.startswith(f"{API}/get-file?") and t.endswith(f"time={stamp}")
        )


class FakeTime:
    """A clock that only moves when the limiter sleeps: waits are counted, never slept."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def constant(body: bytes) -> Callable[[], bytes]:
    return lambda: body


def fast_fetcher() -> Fetcher:
    return Fetcher(timeout_s=5.0, attempts=2, backoff_s=0.01, backoff_max_s=0.02)


def speedmap_files(feeds_dir: Path) -> list[Path]:
    files = sorted((feeds_dir / "td-speedmap").glob("speedmap_*.xml"))
    assert len(files) == 10
    return files


def expected_keys(files: list[Path]) -> set[tuple[str, str]]:
    """(link, CAPTURE_DATE) over all files, read with XPath: one stored row each."""
    keys: set[tuple[str, str]] = set()
    for path in files:
        tree = etree.fromstring(path.read_bytes())
        for rec in tree.xpath("/jtis_speedlist/jtis_speedmap"):
            keys.add((rec.xpath("string(LINK_ID)"), rec.xpath("string(CAPTURE_DATE)")))
    return keys


def first_copies(files: list[Path]) -> list[Path]:
    """The files whose bytes were not seen earlier (the captures hold one exact repeat, as the
    archive does): what gets stored; a repeat is a duplicate."""
    seen: set[str] = set()
    out = []
    for path in files:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            out.append(path)
    return out


@pytest.fixture
def speedmap() -> FeedSpec:
    return get_feed("td-speedmap")


@pytest.fixture
def archive_server(http_server: LocalServer, feeds_dir: Path) -> RecordedArchive:
    files = {stamp_of(p): p.read_bytes for p in speedmap_files(feeds_dir)}
    return RecordedArchive(http_server, SPEEDMAP_ARCHIVED, files)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[BackfillState]:
    with BackfillState(default_state_path(tmp_path / "data")) as s:
        yield s


async def run(
    spec: FeedSpec,
    pipeline: Pipeline,
    state: BackfillState,
    archive: RecordedArchive,
    *,
    start: date = DAY,
    end: date = DAY,
    limiter: RateLimiter | None = None,
    **kwargs: Any,
) -> BackfillReport:
    async with fast_fetcher() as fetcher:
        return await backfill(
            spec,
            pipeline,
            start,
            end,
            state=state,
            fetcher=fetcher,
            archive_api=archive.base,
            limiter=limiter or RateLimiter(0),
            **kwargs,
        )


# --- units ---------------------------------------------------------------------------------


def test_parse_stamp_is_hong_kong_time() -> None:
    assert parse_stamp("20161014-1800") == datetime(2016, 10, 14, 10, 0, tzinfo=UTC)
    assert parse_stamp("20240101-0005") == datetime(2023, 12, 31, 16, 5, tzinfo=UTC)
    for bad in ("20161014", "20161014-180048", "2016-10-14T18:00", "20161399-1800", ""):
        with pytest.raises(ValueError):
            parse_stamp(bad)


def test_version_list_filters_sorts_and_reports_bad_entries() -> None:
    body = orjson.dumps(
        {
            "version-count": 6,
            "timestamps": [
                "20161014-1802",
                "20161014-1800",
                "20161014-1800",  # listed twice
                "20161015-0000",  # outside the asked range
                "garbage",
                5,
            ],
        }
    )
    got = parse_version_list(b"\xef\xbb\xbf" + body, DAY, DAY)
    assert [v.stamp for v in got.versions] == ["20161014-1800", "20161014-1802"]
    assert got.versions[0].at == datetime(2016, 10, 14, 10, 0, tzinfo=UTC)
    assert got.bad == ["garbage", "5"]
    assert got.declared == 6


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<!DOCTYPE html><html><body>Service down</body></html>", "did not answer JSON"),
        (b"", "did not answer JSON"),
        (b'["20161014-1800"]', "JSON list, not an object"),
        (b'{"version-count": 1}', "no 'timestamps' list"),
        (b'{"timestamps": "20161014-1800"}', "no 'timestamps' list"),
    ],
)
def test_garbage_version_list_is_a_clear_error(body: bytes, message: str) -> None:
    with pytest.raises(BackfillError, match=message):
        parse_version_list(body, DAY, DAY)


async def test_rate_limiter_spaces_requests_and_counts_waits() -> None:
    t = FakeTime()
    limiter = RateLimiter(2.0, clock=t.clock, sleep=t.sleep)
    for _ in range(5):
        await limiter.acquire()
    assert limiter.acquired == 5
    assert t.sleeps == [0.5] * 4
    t.now += 10  # a quiet spell: the next request goes at once
    await limiter.acquire()
    assert len(t.sleeps) == 4
    unlimited = RateLimiter(0, clock=t.clock, sleep=t.sleep)
    for _ in range(3):
        await unlimited.acquire()
    assert unlimited.waits == 0 and len(t.sleeps) == 4


def test_state_keeps_done_versions_and_retries_errors(tmp_path: Path) -> None:
    path = default_state_path(tmp_path)
    with BackfillState(path) as st:
        st.record("f", "http://x/a", "20161014-1800", "stored", sha256="ab", rows=3)
        st.record("f", "http://x/a", "20161014-1802", "error", reason="http-503")
        st.record("f", "http://x/a", "20161014-1804", "quarantined", reason="malformed-xml")
        st.record("f", "http://x/b", "20161014-1806", "duplicate")
    with BackfillState(path) as st:  # reopened: survives the process
        assert st.done("f", "http://x/a") == {"20161014-1800", "20161014-1804"}
        assert st.done("f", "http://x/b") == {"20161014-1806"}
        assert st.done("g", "http://x/a") == set()
        st.record("f", "http://x/a", "20161014-1802", "stored")
        rows = {r["stamp"]: r for r in st.rows("f")}
    assert rows["20161014-1802"]["tries"] == 2 and rows["20161014-1802"]["status"] == "stored"
    assert path.parent.name == "backfill"


# --- against the recorded archive ----------------------------------------------------------


async def test_backfill_stores_every_version(
    speedmap: FeedSpec,
    pipeline: Pipeline,
    store: TimeSeriesStore,
    archive: RawArchive,
    state: BackfillState,
    archive_server: RecordedArchive,
    bus: InProcessBus,
    feeds_dir: Path,
) -> None:
    files = speedmap_files(feeds_dir)
    firsts = first_copies(files)
    assert len(firsts) == 9  # 180648 and 180849 are the same bytes
    report = await run(speedmap, pipeline, state, archive_server)

    assert report.listed == 10 and report.complete
    assert report.stored == len(firsts) and report.duplicate == len(files) - len(firsts)
    assert report.errors == report.quarantined == report.already_done == 0
    assert report.requests == 11
    keys = expected_keys(files)
    assert store.count_observations("speed_kmh") == len(keys) == report.rows
    # One list call, asking for the exact archived URL and the day, then one get-file each.
    assert archive_server.hits("list-file-versions") == 1
    assert archive_server.hits("get-file") == 10
    list_target = next(t for t in archive_server.server.targets if "list-file-versions" in t)
    assert "url=http%3A%2F%2Fresource.data.one.gov.hk%2Ftd%2Fspeedmap.xml" in list_target
    assert "start=20161014" in list_target and "end=20161014" in list_target
    # fetched_at is each version's archive time (HKT -> UTC): the raw archive is laid out by it.
    archived = sorted(archive.root.rglob("*.zst"))
    times = {info[1] for p in archived if (info := parse_archive_path(p)) is not None}
    assert times == {parse_stamp(stamp_of(p)) for p in firsts}
    statuses = {r["stamp"]: r["status"] for r in state.rows(speedmap.id)}
    assert statuses == {stamp_of(p): "stored" if p in firsts else "duplicate" for p in files}


async def test_second_run_writes_nothing(
    speedmap: FeedSpec,
    pipeline: Pipeline,
    store: TimeSeriesStore,
    state: BackfillState,
    archive_server: RecordedArchive,
    tmp_path: Path,
) -> None:
    first = await run(speedmap, pipeline, state, archive_server)
    count = store.count_observations()
    second = await run(speedmap, pipeline, state, archive_server)
    assert first.stored == 9 and first.duplicate == 1
    assert second.listed == 10 and second.already_done == 10 and second.attempted == 0
    assert second.complete and second.requests == 1
    assert archive_server.hits("get-file") == 10  # nothing fetched again
    assert store.count_observations() == count
    # Even with the state lost, the pipeline's dedupe keeps it harmless.
    with BackfillState(tmp_path / "other" / "state.sqlite3") as fresh:
        third = await run(speedmap, pipeline, fresh, archive_server)
    assert third.duplicate == 10 and third.stored == 0 and third.rows == 0
    assert store.count_observations() == count


async def test_failure_on_third_file_is_counted_and_resumed(
    speedmap: FeedSpec,
    pipeline: Pipeline,
    store: TimeSeriesStore,
    state: BackfillState,
    archive_server: RecordedArchive,
    feeds_dir: Path,
) -> None:
    stamps = sorted(archive_server.files)
    archive_server.fail.add(stamps[2])
    first = await run(speedmap, pipeline, state, archive_server)
    assert first.stored == 8 and first.duplicate == 1  # the repeat is a duplicate
    assert first.errors == 1 and not first.complete
    assert first.failed == [(stamps[2], "http-503")]
    assert first.reasons == {"http-503": 1}
    assert "run the same command again" in str(first)
    assert archive_server.file_hits(stamps[2]) == 2  # the fetcher's own retry

    archive_server.fail.clear()
    second = await run(speedmap, pipeline, state, archive_server)
    assert second.already_done == 9 and second.stored == 1 and second.complete
    assert archive_server.file_hits(stamps[2]) == 3
    assert all(archive_server.file_hits(s) == 1 for s in stamps if s != stamps[2])
    assert store.count_observations("speed_kmh") == len(expected_keys(speedmap_files(feeds_dir)))


class Interrupted(BaseException):
    """Stands for Ctrl-C or a kill: not an Exception, so nothing may swallow it."""


class InterruptingPipeline(Pipeline):
    def __init__(self, inner: Pipeline, at_call: int) -> None:
        super().__init__(inner.store, inner.archive, inner.bus)
        self.at_call = at_call
        self.calls = 0

    def process(
        self,
        spec: FeedSpec,
        payload: bytes,
        fetched_at: datetime,
        source: Source = "poll",
        *,
        record_health: bool = True,
    ) -> IngestOutcome:
        self.calls += 1
        if self.calls == self.at_call:
            raise Interrupted()
        return super().process(spec, payload, fetched_at, source, record_health=record_health)


async def test_interrupted_run_resumes_and_completes(
    speedmap: FeedSpec,
    pipeline: Pipeline,
    store: TimeSeriesStore,
    state: BackfillState,
    archive_server: RecordedArchive,
    feeds_dir: Path,
) -> None:
    with pytest.raises(Interrupted):
        await run(speedmap, InterruptingPipeline(pipeline, 3), state, archive_server)
    stamps = sorted(archive_server.files)
    assert state.done(speedmap.id, SPEEDMAP_ARCHIVED) == set(stamps[:2])

    report = await run(speedmap, pipeline, state, archive_server)
    assert report.already_done == 2 and report.attempted == 8 and report.complete
    assert report.stored == 7 and report.duplicate == 1
    assert state.done(speedmap.id, SPEEDMAP_ARCHIVED) == set(stamps)
    assert archive_server.file_hits(stamps[2]) == 2  # the one in flight, fetched again
    assert archive_server.file_hits(stamps[3]) == 1
    assert store.count_observations("speed_kmh") == len(expected_keys(speedmap_files(feeds_dir)))


async def test_rate_limit_covers_every_request(
    speedmap: FeedSpec, pipeline: Pipeline, state: BackfillState, archive_server: RecordedArchive
) -> None:
    t = FakeTime()
    limiter = RateLimiter(2.0, clock=t.clock, sleep=t.sleep)
    report = await run(speedmap, pipeline, state, archive_server, limiter=limiter)
    api_hits = archive_server.hits("list-file-versions") + archive_server.hits("get-file")
    assert report.attempted == 10 and report.errors == 0
    assert limiter.acquired == api_hits == report.requests == 11
    assert t.sleeps == [0.5] * 10  # 2/s: every request after the first waited its turn
    assert limiter.waited_s == pytest.approx(5.0)


async def test_max_versions_spreads_the_work_over_runs(
    speedmap: FeedSpec, pipeline: Pipeline, state: BackfillState, archive_server: RecordedArchive
) -> None:
    stamps = sorted(archive_server.files)
    one = await run(speedmap, pipeline, state, archive_server, max_versions=4)
    assert one.attempted == 4 and one.deferred == 6 and not one.complete
    assert state.done(speedmap.id, SPEEDMAP_ARCHIVED) == set(stamps[:4])  # oldest first
    two = await run(speedmap, pipeline, state, archive_server, max_versions=4)
    assert two.already_done == 4 and two.attempted == 4 and two.deferred == 2
    three = await run(speedmap, pipeline, state, archive_server, max_versions=4)
    assert three.attempted == 2 and three.deferred == 0 and three.complete
    assert one.stored + two.stored + three.stored == 9
    assert archive_server.hits("get-file") == 10


async def test_date_range_limits_the_versions(
    speedmap: FeedSpec, pipeline: Pipeline, state: BackfillState, archive_server: RecordedArchive
) -> None:
    report = await run(
        speedmap, pipeline, state, archive_server, start=date(2016, 10, 15), end=date(2016, 10, 20)
    )
    assert report.listed == 0 and report.attempted == 0 and report.complete
    assert any("no version" in n for n in report.notes)
    assert archive_server.hits("get-file") == 0
    with pytest.raises(ValueError):
        await run(speedmap, pipeline, state, archive_server, start=DAY, end=date(2016, 10, 1))


async def test_url_used_when_no_archive_url(
    http_server: LocalServer, pipeline: Pipeline, store: TimeSeriesStore, state: BackfillState
) -> None:
    live = "https://example.org/feed.json"
    bodies = {
        "20240101-1200": payload("2024-01-01T12:00:00", a=1.0),
        "20240101-1210": payload("2024-01-01T12:10:00", a=2.0),
    }
    server = RecordedArchive(http_server, live, {k: constant(b) for k, b in bodies.items()})
    spec = make_spec(url=live)
    assert spec.archive_url is None
    report = await run(spec, pipeline, state, server, start=date(2024, 1, 1), end=date(2024, 1, 1))
    assert report.stored == 2 and store.count_observations("value_x") == 2
    # With an archive_url set, that one is asked for instead of the live URL.
    moved = dataclasses.replace(spec, archive_url="http://example.org/feed.json")
    other = await run(moved, pipeline, state, server, start=date(2024, 1, 1), end=date(2024, 1, 1))
    assert other.listed == 0
    assert "url=http%3A%2F%2Fexample.org%2Ffeed.json" in http_server.targets[-1]


async def test_bad_entries_and_quarantine_are_reported_not_fatal(
    http_server: LocalServer, pipeline: Pipeline, state: BackfillState
) -> None:
    live = "https://example.org/feed.json"
    files = {
        "20240101-1200": lambda: payload("2024-01-01T12:00:00", a=1.0),
        "20240101-1210": lambda: b'{"time": "broken',
    }
    server = RecordedArchive(http_server, live, files)
    doc = {"version-count": 4, "timestamps": ["20240101-1200", "20240101-1210", "bad", None]}
    server.list_reply = Reply(200, orjson.dumps(doc))
    spec = make_spec(url=live)
    report = await run(spec, pipeline, state, server, start=date(2024, 1, 1), end=date(2024, 1, 1))
    assert report.stored == 1 and report.quarantined == 1
    assert report.errors == 2 and report.reasons["bad-timestamp"] == 2
    assert report.reasons["malformed-json"] == 1
    # A quarantined version is the same bytes next time: done, not fetched again.
    again = await run(spec, pipeline, state, server, start=date(2024, 1, 1), end=date(2024, 1, 1))
    assert again.already_done == 2 and again.attempted == 2  # only the two bad entries
    assert server.hits("get-file") == 2


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(200, b"<html><body>Maintenance</body></html>"), "did not answer JSON"),
        (Reply(200, b'{"versions": []}'), "no 'timestamps' list"),
        (Reply(400, b'{"error": ["invalid start parameter"]}'), "http-400.*archived form"),
        (Reply(404, b"not found"), "http-404"),
    ],
)
async def test_list_failure_stops_the_run_with_a_clear_error(
    speedmap: FeedSpec,
    pipeline: Pipeline,
    store: TimeSeriesStore,
    state: BackfillState,
    archive_server: RecordedArchive,
    reply: Reply,
    message: str,
) -> None:
    archive_server.list_reply = reply
    with pytest.raises(BackfillError, match=message):
        await run(speedmap, pipeline, state, archive_server)
    assert archive_server.hits("get-file") == 0
    assert store.count_observations() == 0 and state.rows(speedmap.id) == []


# --- the command line ----------------------------------------------------------------------


def test_cli_backfill_and_rerun(archive_server: RecordedArchive, tmp_path: Path) -> None:
    runner = CliRunner()
    args = [
        "backfill",
        "td-speedmap",
        "--from",
        "2016-10-14",
        "--to",
        "2016-10-14",
        "--data-dir",
        str(tmp_path / "data"),
        "--archive-api",
        archive_server.base,
        "--rate",
        "0",
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "0 already done, 10 fetched now" in first.output
    assert "stored 9" in first.output and "duplicate 1" in first.output
    assert "errors 0" in first.output
    assert (tmp_path / "data" / "backfill" / "state.sqlite3").is_file()
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "10 already done, 0 fetched now" in second.output
    assert archive_server.hits("get-file") == 10

    archive_server.list_reply = Reply(200, b"<html>oops</html>")
    bad = runner.invoke(app, args)
    assert bad.exit_code == 2
    assert "backfill td-speedmap: list-file-versions did not answer JSON" in bad.output


def test_cli_rejects_bad_arguments(tmp_path: Path) -> None:
    runner = CliRunner()
    common = ["--data-dir", str(tmp_path), "--archive-api", "http://127.0.0.1:9/x"]
    unknown = runner.invoke(
        app, ["backfill", "no-such-feed", "--from", "2016-10-14", "--to", "2016-10-14", *common]
    )
    assert unknown.exit_code == 2
    reversed_range = runner.invoke(
        app, ["backfill", "td-speedmap", "--from", "2016-10-15", "--to", "2016-10-14", *common]
    )
    assert reversed_range.exit_code == 2 and "after --to" in reversed_range.output
    bad_date = runner.invoke(
        app, ["backfill", "td-speedmap", "--from", "14/10/2016", "--to", "2016-10-14", *common]
    )
    assert bad_date.exit_code == 2
