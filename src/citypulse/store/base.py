"""The store protocol: the one interface between ingest/analytics/web and any storage engine.

DuckDB (embedded, default) and PostgreSQL (scale-out) implement it; the same test suite runs on
both. Every method is synchronous: engines are blocking libraries, and the web layer calls them
through a thread pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

import pyarrow as pa

from citypulse.model import Batch, Entity, Event


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append did. ``duplicate`` is True when this exact payload was stored before,
    in which case nothing was written."""

    feed_id: str
    payload_sha256: str
    observations_written: int
    entities_upserted: int
    events_written: int
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class LatestValue:
    entity_id: str
    metric: str
    ts: datetime
    value: float | None
    label: str | None


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One time bucket of one entity's metric (``n`` raw observations in the bucket)."""

    ts: datetime
    avg: float | None
    min: float | None
    max: float | None
    n: int


@dataclass(frozen=True, slots=True)
class AggregatePoint:
    """One time bucket aggregated over all entities of a kind."""

    ts: datetime
    avg: float | None
    min: float | None
    max: float | None
    n: int
    entities: int


@dataclass(frozen=True, slots=True)
class FeedHealth:
    feed_id: str
    last_attempt: datetime | None
    last_success: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    last_rows: int
    total_rows: int
    last_data_ts: datetime | None


@dataclass(frozen=True, slots=True)
class PayloadRecord:
    """A payload seen by ingest. ``status`` is ``stored``, ``duplicate`` or ``quarantined``."""

    sha256: str
    feed_id: str
    fetched_at: datetime
    status: str
    reason: str | None
    archive_path: str | None
    rows: int


@runtime_checkable
class TimeSeriesStore(Protocol):
    def append(self, batch: Batch) -> AppendResult:
        """Store a batch atomically and idempotently: the same payload twice changes nothing,
        and an observation (entity_id, metric, ts) already stored is never duplicated.
        Upserts the batch's entities, updates ``latest``, records the payload as stored."""
        ...

    def upsert_entities(self, entities: Sequence[Entity]) -> int: ...

    def entities(self, kind: str | None = None) -> list[Entity]: ...

    def entity(self, entity_id: str) -> Entity | None: ...

    def latest(
        self,
        metric: str,
        *,
        kind: str | None = None,
        entity_ids: Sequence[str] | None = None,
    ) -> list[LatestValue]:
        """Latest value per entity for a metric, read from the ``latest`` table, never a scan
        of history."""
        ...

    def series(
        self,
        entity_id: str,
        metric: str,
        start: datetime,
        end: datetime,
        bucket: timedelta,
    ) -> list[SeriesPoint]:
        """Time-bucketed series, buckets aligned to the epoch, [start, end), empty buckets
        omitted."""
        ...

    def aggregate(
        self,
        kind: str,
        metric: str,
        start: datetime,
        end: datetime,
        bucket: timedelta,
    ) -> list[AggregatePoint]: ...

    def observations_frame(
        self,
        metric: str,
        kind: str | None,
        start: datetime,
        end: datetime,
        *,
        bucket: timedelta | None = None,
    ) -> pa.Table:
        """Every entity's observations of ``metric`` in [start, end) as one Arrow table, for
        bulk analytics (one query instead of one ``series`` call per entity). Columns:
        ``entity_id`` (string), ``ts`` (timestamp us UTC), ``value`` (float64, never null),
        ``n`` (int64); ``kind`` (None: any) limits it to entities of that kind. With
        ``bucket``: one row per entity and epoch-aligned bucket, ``value`` the bucket mean,
        ``ts`` its start and ``n`` the observations averaged; without: raw rows, ``n`` = 1.
        Rows come in no particular order."""
        ...

    def observations(
        self,
        start: datetime,
        end: datetime,
        *,
        kinds: Sequence[str] | None = None,
        entity_ids: Sequence[str] | None = None,
        metrics: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> pa.Table:
        """Raw observations with ts in [start, end), optionally limited to entities of
        ``kinds``, to ``entity_ids`` and to ``metrics``, ordered by (ts, entity_id, metric), as
        an Arrow table in OBSERVATION_SCHEMA (bulk downloads, Parquet export, migration)."""
        ...

    def events(
        self,
        start: datetime,
        end: datetime,
        *,
        kind: str | None = None,
        active_only: bool = False,
    ) -> list[Event]:
        """Events overlapping [start, end) (an open event overlaps everything after its start).
        ``active_only``: events with no end or an end after ``end``."""
        ...

    def record_payload(self, record: PayloadRecord) -> None:
        """Remember a payload that was not stored (quarantined), for /status and re-tries."""
        ...

    def payloads(
        self, *, feed_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[PayloadRecord]: ...

    def seen_payload(self, sha256: str) -> bool: ...

    def record_fetch(
        self,
        feed_id: str,
        *,
        at: datetime,
        ok: bool,
        rows: int = 0,
        error: str | None = None,
        data_ts: datetime | None = None,
    ) -> None:
        """Update per-feed health after one attempt."""
        ...

    def feed_health(self) -> list[FeedHealth]: ...

    def count_observations(self, metric: str | None = None) -> int: ...

    def close(self) -> None: ...
