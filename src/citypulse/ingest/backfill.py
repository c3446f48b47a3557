"""History backfill from the DATA.GOV.HK historical archive, through the same pipeline as live.

The archive keeps every version of a resource URL it has crawled. Two calls of its API
(``https://data.gov.hk/en/help/api-spec``; shapes also in ../shared/data/feeds/FORMATS.md §11
and seen in public clients of the API, e.g. speedmap and AQHI downloaders that read
``timestamps`` and ``version-count``):

- ``GET <api>/list-file-versions?url=<URL-encoded resource URL>&start=YYYYMMDD&end=YYYYMMDD``
  -> JSON ``{"version-count": n, "timestamps": ["YYYYMMDD-HHMM", ...],
  "data-dictionary-dates": [...], "schema-dates": [...], ...}``; HTTP 400 for bad dates.
- ``GET <api>/get-file?url=<URL-encoded resource URL>&time=YYYYMMDD-HHMM`` -> the bytes of that
  version (the real service answers with a 302 to the snapshot; the fetcher follows it).

Timestamps are Hong Kong time (the portal's APIs are all GMT+8) and become the payload's
``fetched_at``. The ``url`` must match the archived form exactly (speedmap is archived under
``http://``, polled over ``https://``), hence ``FeedSpec.archive_url``.

Resumable and idempotent: each version's outcome is written to a small SQLite file
(``<data_dir>/backfill/state.sqlite3``) as soon as it is known, so an interrupted run continues
where it stopped and a repeated run fetches nothing; the pipeline's payload dedupe makes
re-processing harmless anyway. A version that failed (HTTP error, store error) is not marked
done and is tried again next run. Only a failed or unreadable version list stops a run.

Polite: every call to the archive API waits its turn in a :class:`RateLimiter` (default 2/s);
the fetcher's own retries of a failed call back off by a second or more, slower than that.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from citypulse.feeds.base import HKT, FeedSpec
from citypulse.ingest.fetch import Fetcher
from citypulse.ingest.pipeline import IngestOutcome, Pipeline
from citypulse.model import now_utc

log = logging.getLogger(__name__)

DEFAULT_ARCHIVE_API = "https://api.data.gov.hk/v1/historical-archive"
DEFAULT_RATE = 2.0
"""Requests per second to the archive API: polite for a free public service."""
STATE_FILE = "state.sqlite3"

_STAMP = re.compile(r"^\d{8}-\d{4}$")
_DONE = ("stored", "duplicate", "quarantined")
"""Outcomes that asking again cannot change (a quarantined version is the same bytes again)."""
_MAX_FAILED_LISTED = 50


class BackfillError(Exception):
    """The run cannot go on: the archive's version list could not be had or understood."""


def parse_stamp(stamp: str) -> datetime:
    """An archive timestamp ``YYYYMMDD-HHMM`` (Hong Kong time) as an aware UTC datetime."""
    if not _STAMP.match(stamp):
        raise ValueError(f"not an archive timestamp (YYYYMMDD-HHMM): {stamp!r}")
    return datetime.strptime(stamp, "%Y%m%d-%H%M").replace(tzinfo=HKT).astimezone(UTC)


@dataclass(frozen=True, slots=True, order=True)
class ArchiveVersion:
    """One archived version: the archive's own name for it and its time in UTC."""

    at: datetime
    stamp: str


@dataclass(frozen=True, slots=True)
class VersionList:
    versions: list[ArchiveVersion]
    bad: list[str]
    """Entries that are not ``YYYYMMDD-HHMM`` strings (reported, never fetched)."""
    declared: int | None
    """The archive's ``version-count``, when it sends one."""


def _snippet(payload: bytes) -> str:
    text = payload[:80].decode("utf-8", "replace").strip().replace("\n", " ")
    return text + ("..." if len(payload) > 80 else "")


def parse_version_list(payload: bytes, start: date, end: date) -> VersionList:
    """Versions in ``start..end`` (HK dates, inclusive), oldest first, from a
    list-file-versions body. Raises :class:`BackfillError` unless it is the documented JSON
    object with a ``timestamps`` list."""
    body = payload[3:] if payload.startswith(b"\xef\xbb\xbf") else payload
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BackfillError(
            f"list-file-versions did not answer JSON (got {len(payload)} bytes starting "
            f"{_snippet(payload)!r}); is the archive API URL right?"
        ) from exc
    if not isinstance(doc, dict):
        raise BackfillError(
            f"list-file-versions answered a JSON {type(doc).__name__}, not an object "
            "with 'timestamps'"
        )
    stamps = doc.get("timestamps")
    if not isinstance(stamps, list):
        keys = ", ".join(sorted(map(str, doc))[:8]) or "none"
        raise BackfillError(f"list-file-versions answer has no 'timestamps' list (keys: {keys})")
    declared = doc.get("version-count")
    lo, hi = start.strftime("%Y%m%d"), end.strftime("%Y%m%d")
    found: dict[str, ArchiveVersion] = {}
    bad: list[str] = []
    for item in stamps:
        if not isinstance(item, str):
            bad.append(repr(item))
            continue
        try:
            at = parse_stamp(item)
        except ValueError:
            bad.append(item)
            continue
        if lo <= item[:8] <= hi:  # the archive filters too; never trust it to
            found[item] = ArchiveVersion(at, item)
    return VersionList(
        sorted(found.values()),
        bad,
        declared if isinstance(declared, int) and not isinstance(declared, bool) else None,
    )


class RateLimiter:
    """At most ``rate`` request starts per second (``rate <= 0``: no limit), spaced evenly.

    ``clock`` and ``sleep`` are injectable so tests count waits instead of timing them.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None
        self._lock = asyncio.Lock()
        self.acquired = 0
        self.waits = 0
        self.waited_s = 0.0

    async def acquire(self) -> None:
        async with self._lock:
            now = self._clock()
            if self._next is not None and now < self._next:
                delay = self._next - now
                self.waits += 1
                self.waited_s += delay
                await self._sleep(delay)
                now = max(self._clock(), self._next)
            self._next = now + self.interval
            self.acquired += 1


def default_state_path(data_dir: Path) -> Path:
    return data_dir / "backfill" / STATE_FILE


class BackfillState:
    """Which archived versions of a feed's resource are done, in SQLite (one row per version,
    committed as soon as known: an interruption loses at most the version in flight)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            """CREATE TABLE IF NOT EXISTS versions (
                   feed_id TEXT NOT NULL,
                   resource_url TEXT NOT NULL,
                   stamp TEXT NOT NULL,
                   status TEXT NOT NULL,
                   reason TEXT,
                   sha256 TEXT,
                   rows INTEGER NOT NULL DEFAULT 0,
                   tries INTEGER NOT NULL DEFAULT 1,
                   updated_at TEXT NOT NULL,
                   PRIMARY KEY (feed_id, resource_url, stamp)
               )"""
        )
        self._db.commit()

    def done(self, feed_id: str, resource_url: str) -> set[str]:
        marks = ",".join("?" for _ in _DONE)
        cur = self._db.execute(
            f"SELECT stamp FROM versions WHERE feed_id = ? AND resource_url = ? "
            f"AND status IN ({marks})",
            (feed_id, resource_url, *_DONE),
        )
        return {row[0] for row in cur}

    def record(
        self,
        feed_id: str,
        resource_url: str,
        stamp: str,
        status: str,
        *,
        reason: str | None = None,
        sha256: str | None = None,
        rows: int = 0,
    ) -> None:
        self._db.execute(
            """INSERT INTO versions (feed_id, resource_url, stamp, status, reason, sha256, rows,
                                     tries, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)
               ON CONFLICT (feed_id, resource_url, stamp) DO UPDATE SET
                   status = excluded.status, reason = excluded.reason,
                   sha256 = excluded.sha256, rows = excluded.rows,
                   tries = versions.tries + 1, updated_at = excluded.updated_at""",
            (feed_id, resource_url, stamp, status, reason, sha256, rows, now_utc().isoformat()),
        )
        self._db.commit()

    def rows(self, feed_id: str) -> list[dict[str, Any]]:
        """Every recorded version of a feed (for people and tests)."""
        cur = self._db.execute(
            "SELECT resource_url, stamp, status, reason, sha256, rows, tries FROM versions "
            "WHERE feed_id = ? ORDER BY resource_url, stamp",
            (feed_id,),
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> BackfillState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(slots=True)
class BackfillReport:
    feed_id: str
    resource_url: str
    start: date
    end: date
    listed: int = 0
    """Versions in the range according to the archive."""
    already_done: int = 0
    """Done by an earlier run: not fetched again."""
    deferred: int = 0
    """Left for a later run by ``max_versions``."""
    stored: int = 0
    duplicate: int = 0
    quarantined: int = 0
    errors: int = 0
    rows: int = 0
    requests: int = 0
    """Requests made to the archive API (list + get-file), retries not counted."""
    reasons: Counter[str] = field(default_factory=Counter)
    failed: list[tuple[str, str]] = field(default_factory=list)
    """(version, reason) of the first failures, for the message."""
    notes: list[str] = field(default_factory=list)

    @property
    def attempted(self) -> int:
        return self.stored + self.duplicate + self.quarantined + self.errors

    @property
    def complete(self) -> bool:
        """Every listed version is done (nothing failed, nothing deferred)."""
        return self.errors == 0 and self.deferred == 0

    def __str__(self) -> str:
        """A few lines for people (``citypulse backfill``)."""
        lines = [
            f"{self.feed_id}: {self.listed} archived versions of {self.resource_url} "
            f"from {self.start} to {self.end}; {self.already_done} already done, "
            f"{self.attempted} fetched now",
            f"  stored {self.stored} ({self.rows} rows), duplicate {self.duplicate}, "
            f"quarantined {self.quarantined}, errors {self.errors}"
            + (f", deferred {self.deferred} (--max-versions)" if self.deferred else ""),
        ]
        if self.reasons:
            lines.append(
                "  reasons: " + ", ".join(f"{r} x{n}" for r, n in self.reasons.most_common())
            )
        for stamp, reason in self.failed[:10]:
            lines.append(f"  failed {stamp}: {reason}")
        if len(self.failed) > 10:
            lines.append(f"  ... and {self.errors - 10} more failures")
        lines.extend(f"  note: {n}" for n in self.notes)
        if not self.complete:
            lines.append("  not complete: run the same command again to continue")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "feed_id": self.feed_id,
            "resource_url": self.resource_url,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "listed": self.listed,
            "already_done": self.already_done,
            "deferred": self.deferred,
            "stored": self.stored,
            "duplicate": self.duplicate,
            "quarantined": self.quarantined,
            "errors": self.errors,
            "rows": self.rows,
            "requests": self.requests,
            "reasons": dict(self.reasons),
            "failed": [list(f) for f in self.failed],
            "notes": list(self.notes),
            "complete": self.complete,
        }


class ArchiveAPI:
    """URLs of the two archive calls under a configurable base (tests use 127.0.0.1)."""

    def __init__(self, base: str = DEFAULT_ARCHIVE_API) -> None:
        self.base = base.rstrip("/")

    def list_url(self, resource_url: str, start: date, end: date) -> str:
        query = urlencode(
            {"url": resource_url, "start": start.strftime("%Y%m%d"), "end": end.strftime("%Y%m%d")}
        )
        return f"{self.base}/list-file-versions?{query}"

    def file_url(self, resource_url: str, stamp: str) -> str:
        return f"{self.base}/get-file?{urlencode({'url': resource_url, 'time': stamp})}"


def resource_url_of(spec: FeedSpec) -> str:
    """The URL the archive knows the feed by: ``archive_url`` when set, else the live URL."""
    return spec.archive_url or spec.url


def _list_hint(error: str | None) -> str:
    if error and error.startswith("http-4"):
        return (
            " (the archive refused the request: dates must be valid and the resource URL must "
            "match the archived form exactly, e.g. http:// vs https://)"
        )
    return ""


async def list_versions(
    spec: FeedSpec,
    start: date,
    end: date,
    *,
    fetcher: Fetcher,
    api: ArchiveAPI,
    limiter: RateLimiter,
) -> VersionList:
    """The archived versions of the feed's resource in ``start..end``; raises BackfillError."""
    resource = resource_url_of(spec)
    url = api.list_url(resource, start, end)
    await limiter.acquire()
    fetcher.forget(spec.id)  # never a conditional request: each call asks a different thing
    res = await fetcher.fetch(spec, url)
    if not res.ok or res.payload is None:
        raise BackfillError(
            f"cannot list archived versions of {resource} from {start} to {end} "
            f"({url}): {res.error or res.status}{_list_hint(res.error)}"
        )
    return parse_version_list(res.payload, start, end)


def _make_progress(enabled: bool, console: Console | None) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
        disable=not enabled,
    )


async def backfill(
    spec: FeedSpec,
    pipeline: Pipeline,
    start: date,
    end: date,
    *,
    state: BackfillState,
    fetcher: Fetcher | None = None,
    archive_api: str = DEFAULT_ARCHIVE_API,
    rate: float = DEFAULT_RATE,
    limiter: RateLimiter | None = None,
    max_versions: int | None = None,
    progress: bool = False,
    console: Console | None = None,
) -> BackfillReport:
    """Fetch every archived version of ``spec`` between two HK dates (inclusive) not done yet,
    oldest first, and push each through ``pipeline`` (source ``backfill``, ``fetched_at`` = the
    version's time). Per-version failures are counted and reported; only a failed version list
    raises :class:`BackfillError`. ``limiter`` overrides ``rate``."""
    if start > end:
        raise ValueError(f"start {start} is after end {end}")
    if max_versions is not None and max_versions < 0:
        raise ValueError("max_versions must be >= 0")
    own_fetcher = fetcher is None
    fetch = fetcher if fetcher is not None else Fetcher()
    gate = limiter if limiter is not None else RateLimiter(rate)
    api = ArchiveAPI(archive_api)
    resource = resource_url_of(spec)
    report = BackfillReport(spec.id, resource, start, end)
    try:
        listed = await list_versions(spec, start, end, fetcher=fetch, api=api, limiter=gate)
        report.requests += 1
        report.listed = len(listed.versions)
        for entry in listed.bad:
            _fail(report, entry, "bad-timestamp")
        if listed.bad:
            report.notes.append(f"{len(listed.bad)} list entries were not YYYYMMDD-HHMM")
        if not listed.versions:
            report.notes.append(
                f"the archive lists no version of {resource} in this range (it must be the "
                "exact archived URL; history may also simply not go back that far)"
            )
        done = state.done(spec.id, resource)
        pending = [v for v in listed.versions if v.stamp not in done]
        report.already_done = len(listed.versions) - len(pending)
        if max_versions is not None and len(pending) > max_versions:
            report.deferred = len(pending) - max_versions
            pending = pending[:max_versions]

        with _make_progress(progress, console) as bar:
            task = bar.add_task(f"backfill {spec.id}", total=len(pending), status="")
            for version in pending:
                await _one(spec, pipeline, state, fetch, api, gate, version, report)
                bar.update(
                    task,
                    advance=1,
                    status=f"{version.stamp} stored {report.stored} dup {report.duplicate} "
                    f"err {report.errors + report.quarantined}",
                )
    finally:
        if own_fetcher:
            await fetch.aclose()
    return report


def _fail(report: BackfillReport, stamp: str, reason: str) -> None:
    report.errors += 1
    report.reasons[reason] += 1
    if len(report.failed) < _MAX_FAILED_LISTED:
        report.failed.append((stamp, reason))


async def _one(
    spec: FeedSpec,
    pipeline: Pipeline,
    state: BackfillState,
    fetcher: Fetcher,
    api: ArchiveAPI,
    limiter: RateLimiter,
    version: ArchiveVersion,
    report: BackfillReport,
) -> None:
    """Fetch and ingest one version and record its outcome; never raises an Exception."""
    resource = report.resource_url
    await limiter.acquire()
    report.requests += 1
    fetcher.forget(spec.id)
    res = await fetcher.fetch(spec, api.file_url(resource, version.stamp))
    if not res.ok or res.payload is None:
        reason = res.error or f"fetch-{res.status}"
        log.warning("backfill %s %s: %s", spec.id, version.stamp, reason)
        _fail(report, version.stamp, reason)
        state.record(spec.id, resource, version.stamp, "error", reason=reason)
        return
    outcome: IngestOutcome | None = None
    try:
        # Health stays about the live feed: the archive answering says nothing about it.
        outcome = await asyncio.to_thread(
            pipeline.process, spec, res.payload, version.at, "backfill", record_health=False
        )
    except Exception as exc:  # pipeline.process is not supposed to raise; contain it anyway
        log.exception("backfill %s %s: pipeline failed", spec.id, version.stamp)
        reason = f"unexpected: {type(exc).__name__}"
        _fail(report, version.stamp, reason)
        state.record(spec.id, resource, version.stamp, "error", reason=reason)
        return
    if outcome.status == "error":
        _fail(report, version.stamp, outcome.reason or "error")
    elif outcome.status == "quarantined":
        report.quarantined += 1
        report.reasons[outcome.reason or "quarantined"] += 1
    elif outcome.status == "duplicate":
        report.duplicate += 1
    else:
        report.stored += 1
        report.rows += outcome.rows
    state.record(
        spec.id,
        resource,
        version.stamp,
        outcome.status,
        reason=outcome.reason,
        sha256=outcome.sha256,
        rows=outcome.rows,
    )


def run_backfill(
    spec: FeedSpec,
    pipeline: Pipeline,
    start: date,
    end: date,
    *,
    data_dir: Path,
    fetcher: Fetcher | None = None,
    **kwargs: Any,
) -> BackfillReport:
    """Blocking wrapper for the CLI: state under ``data_dir/backfill``; closes ``fetcher``."""

    async def main(state: BackfillState) -> BackfillReport:
        try:
            return await backfill(
                spec, pipeline, start, end, state=state, fetcher=fetcher, **kwargs
            )
        finally:
            if fetcher is not None:
                await fetcher.aclose()

    with BackfillState(default_state_path(data_dir)) as state:
        return asyncio.run(main(state))
