"""One payload, from bytes to stored rows: archive -> dedupe -> parse -> store -> publish -> health.

Every source (live poll, simulator, recorded file, historical backfill) goes through the same
``Pipeline.process`` so they behave identically. ``process`` never raises for bad input or a
parser bug: a payload that cannot be parsed is quarantined with its reason and the raw bytes stay
in the archive, so the polling loop can never be killed by one feed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import pyarrow.compute as pc

from citypulse.feeds.base import FeedError, FeedSpec
from citypulse.ingest.archive import RawArchive
from citypulse.model import Batch, now_utc, sha256, utc
from citypulse.store.base import PayloadRecord, TimeSeriesStore
from citypulse.store.bus import Bus

log = logging.getLogger(__name__)

Source = Literal["poll", "replay", "backfill", "simulator", "push"]
Status = Literal["stored", "duplicate", "quarantined", "error"]

PARSER_CRASH = "parser-crash"
_QUARANTINE_MEMORY = 1000
_QUARANTINE_LOOKBACK = 50

_EXTENSIONS = {
    "application/xml": "xml",
    "text/xml": "xml",
    "application/rss+xml": "xml",
    "application/atom+xml": "xml",
    "application/json": "json",
    "application/geo+json": "json",
    "text/csv": "csv",
    "text/plain": "txt",
    "text/html": "html",
}


def extension_for(media_type: str) -> str:
    """Archive file extension for a feed's media type (``bin`` when unknown)."""
    base = media_type.split(";", 1)[0].strip().lower()
    if base in _EXTENSIONS:
        return _EXTENSIONS[base]
    if base.endswith(("+xml", "/xml")):
        return "xml"
    if base.endswith(("+json", "/json")):
        return "json"
    return "bin"


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """What happened to one payload. ``reason`` is the stable FeedError reason when
    quarantined (or ``store-error: ...`` when the store failed)."""

    feed_id: str
    status: Status
    reason: str | None
    rows: int
    sha256: str
    source: str
    archive_path: str | None = None
    entities: int = 0
    events: int = 0
    data_start: datetime | None = None
    data_end: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("stored", "duplicate")


def data_range(batch: Batch) -> tuple[datetime | None, datetime | None]:
    """Earliest and latest observation time (or event start when there are no observations)."""
    table = batch.observations
    if table.num_rows:
        mm = pc.min_max(table["ts"]).as_py()
        return mm["min"], mm["max"]
    starts = [e.starts_at for e in batch.events]
    if starts:
        return min(starts), max(starts)
    return None, None


def observed_entities(batch: Batch) -> int:
    """Distinct entities with observations in the batch (else the entities it upserts)."""
    if batch.observations.num_rows:
        return int(pc.count_distinct(batch.observations["entity_id"]).as_py())
    return len(batch.entities)


StoredHook = Callable[[FeedSpec, Batch, IngestOutcome], None]
"""Called with every batch just stored (never for duplicates or quarantined payloads): the bus
carries only summaries, so consumers that need the rows themselves (the alert engine) hook in
here. Runs in the ingest worker thread; a hook that raises is logged and ignored."""


class Pipeline:
    """Archive, dedupe, parse, store, publish and record health for one payload at a time.

    Blocking (parsers and the store are synchronous); the scheduler runs ``process`` in worker
    threads, several at once for different feeds, so the store must be thread-safe.
    """

    def __init__(
        self,
        store: TimeSeriesStore,
        archive: RawArchive,
        bus: Bus | None = None,
        *,
        on_stored: Iterable[StoredHook] = (),
    ):
        self.store = store
        self.archive = archive
        self.bus = bus
        self.on_stored: list[StoredHook] = list(on_stored)
        self._lock = threading.Lock()
        self._quarantined: dict[str, str] = {}  # sha256 -> reason, oldest first

    def process(
        self,
        spec: FeedSpec,
        payload: bytes,
        fetched_at: datetime,
        source: Source = "poll",
        *,
        record_health: bool = True,
    ) -> IngestOutcome:
        """Ingest one payload. ``record_health=False`` skips the per-payload health write on
        success (bulk loads record one summary with ``record_success`` instead); failures are
        always recorded."""
        at = utc(fetched_at)
        digest = sha256(payload)

        archive_path = self._archive(spec, payload, at)

        try:
            if self.store.seen_payload(digest):
                reason = self._quarantine_reason(spec.id, digest)
                if reason is not None:
                    # The feed still serves the bytes we refused: it is still broken.
                    self._record_fetch(spec.id, ok=False, error=reason)
                    return IngestOutcome(
                        spec.id, "quarantined", reason, 0, digest, source, archive_path
                    )
                if record_health:
                    self._record_fetch(spec.id, ok=True)
                return IngestOutcome(spec.id, "duplicate", None, 0, digest, source, archive_path)
        except Exception as exc:
            return self._store_error(spec.id, digest, source, archive_path, exc)

        try:
            batch = spec.parse(payload, at)
        except FeedError as exc:
            return self._quarantine(spec, digest, at, source, archive_path, exc.reason, str(exc))
        except Exception as exc:  # a parser bug: contain it, keep the payload for the fix
            log.exception(
                "parser of %s crashed on payload %s (%s)", spec.id, digest[:16], archive_path
            )
            return self._quarantine(
                spec, digest, at, source, archive_path, PARSER_CRASH, f"{type(exc).__name__}: {exc}"
            )

        if batch.payload_sha256 != digest:
            # Parsers build batches from the same bytes; trust the pipeline's hash for dedupe.
            batch.payload_sha256 = digest
        try:
            result = self.store.append(batch)
        except Exception as exc:
            return self._store_error(spec.id, digest, source, archive_path, exc)

        if result.duplicate:  # stored meanwhile by another path (race); nothing was written
            if record_health:
                self._record_fetch(spec.id, ok=True)
            return IngestOutcome(spec.id, "duplicate", None, 0, digest, source, archive_path)

        start, end = data_range(batch)
        entities = observed_entities(batch)
        rows = result.observations_written
        outcome = IngestOutcome(
            spec.id,
            "stored",
            None,
            rows,
            digest,
            source,
            archive_path,
            entities=entities,
            events=result.events_written,
            data_start=start,
            data_end=end,
        )
        self._publish(spec, outcome, at)
        self._notify_stored(spec, batch, outcome)
        if record_health:
            self._record_fetch(spec.id, ok=True, rows=rows, data_ts=end)
        return outcome

    # -- health helpers for callers that never reach ``process`` ---------------------------

    def record_failure(self, feed_id: str, error: str) -> None:
        """A fetch that produced no payload (timeout, HTTP error...): mark the feed down."""
        self._record_fetch(feed_id, ok=False, error=error)

    def record_success(self, feed_id: str, rows: int, data_ts: datetime | None = None) -> None:
        """One health entry summarising a bulk load (see ``record_health``)."""
        self._record_fetch(feed_id, ok=True, rows=rows, data_ts=data_ts)

    def record_unchanged(self, feed_id: str) -> None:
        """A 304 Not Modified: the feed is up, there is just nothing new."""
        self._record_fetch(feed_id, ok=True)

    # -- internals -------------------------------------------------------------------------

    def _quarantine_reason(self, feed_id: str, digest: str) -> str | None:
        """Why these already-seen bytes were quarantined, or None if they were stored.

        Remembered in memory, else looked up among the feed's recent quarantined payloads
        (after a restart); an old quarantined payload not found there counts as a duplicate.
        """
        with self._lock:
            if digest in self._quarantined:
                return self._quarantined[digest]
        for record in self.store.payloads(
            feed_id=feed_id, status="quarantined", limit=_QUARANTINE_LOOKBACK
        ):
            if record.sha256 == digest:
                self._remember_quarantine(digest, record.reason or "quarantined")
                return record.reason or "quarantined"
        return None

    def _remember_quarantine(self, digest: str, reason: str) -> None:
        with self._lock:
            self._quarantined[digest] = reason
            while len(self._quarantined) > _QUARANTINE_MEMORY:
                self._quarantined.pop(next(iter(self._quarantined)))

    def _archive(self, spec: FeedSpec, payload: bytes, at: datetime) -> str | None:
        try:
            item = self.archive.put(spec.id, payload, at, extension_for(spec.media_type))
        except Exception:
            # Losing the raw copy is bad but losing the data too would be worse: go on.
            log.exception("could not archive a payload of %s", spec.id)
            return None
        return str(item.path)

    def _quarantine(
        self,
        spec: FeedSpec,
        digest: str,
        at: datetime,
        source: str,
        archive_path: str | None,
        reason: str,
        detail: str,
    ) -> IngestOutcome:
        log.warning("quarantined %s payload %s: %s", spec.id, digest[:16], detail)
        try:
            self.store.record_payload(
                PayloadRecord(
                    sha256=digest,
                    feed_id=spec.id,
                    fetched_at=at,
                    status="quarantined",
                    reason=reason,
                    archive_path=archive_path,
                    rows=0,
                )
            )
        except Exception as exc:
            return self._store_error(spec.id, digest, source, archive_path, exc)
        self._remember_quarantine(digest, reason)
        self._record_fetch(spec.id, ok=False, error=reason)
        return IngestOutcome(spec.id, "quarantined", reason, 0, digest, source, archive_path)

    def _store_error(
        self, feed_id: str, digest: str, source: str, archive_path: str | None, exc: Exception
    ) -> IngestOutcome:
        log.exception("store failed for a payload of %s", feed_id, exc_info=exc)
        reason = f"store-error: {type(exc).__name__}"
        self._record_fetch(feed_id, ok=False, error=reason)
        return IngestOutcome(feed_id, "error", reason, 0, digest, source, archive_path)

    def _publish(self, spec: FeedSpec, outcome: IngestOutcome, at: datetime) -> None:
        if self.bus is None:
            return
        summary: dict[str, Any] = {
            "feed_id": spec.id,
            "rows": outcome.rows,
            "entities": outcome.entities,
            "events": outcome.events,
            "start": outcome.data_start.isoformat() if outcome.data_start else None,
            "end": outcome.data_end.isoformat() if outcome.data_end else None,
            "fetched_at": at.isoformat(),
            "source": outcome.source,
        }
        for topic in spec.topics or (f"feed.{spec.id}",):
            try:
                self.bus.publish(topic, summary)
            except Exception:
                log.exception("publishing %s on %s failed", spec.id, topic)

    def _notify_stored(self, spec: FeedSpec, batch: Batch, outcome: IngestOutcome) -> None:
        for hook in self.on_stored:
            try:
                hook(spec, batch, outcome)
            except Exception:
                log.exception("on_stored hook %r failed for %s", hook, spec.id)

    def _record_fetch(
        self,
        feed_id: str,
        *,
        ok: bool,
        rows: int = 0,
        error: str | None = None,
        data_ts: datetime | None = None,
    ) -> None:
        # ``at`` is the wall clock of the attempt, even for replayed or simulated payloads:
        # health answers "when did we last hear from this feed", not "how old is its data".
        try:
            self.store.record_fetch(
                feed_id, at=now_utc(), ok=ok, rows=rows, error=error, data_ts=data_ts
            )
        except Exception:
            log.exception("could not record fetch health of %s", feed_id)
