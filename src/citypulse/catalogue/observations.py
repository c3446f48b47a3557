"""Bulk downloads of a feed's stored observations (CSV, Parquet) for a date range.

The store protocol has no raw-observation read yet, so this module defines the method it
needs as ``ObservationReader`` (proposed for ``store/base.py``)::

    def observations(self, start: datetime, end: datetime, *,
                     kinds: Sequence[str] | None = None,
                     entity_ids: Sequence[str] | None = None,
                     metrics: Sequence[str] | None = None,
                     limit: int | None = None) -> pa.Table:
        '''Raw observations with ts in [start, end) of entities of ``kinds`` (and/or
        ``entity_ids``) and ``metrics``, ordered by (ts, entity_id, metric), as an Arrow
        table with OBSERVATION_SCHEMA.'''

A feed is mapped to the entity kinds and metrics it produces by ``feeds.feed_profile``. Until
a store implements the method, a DuckDB store that exposes its connection publicly is read
with one SQL query on the fixed ``observations``/``entities`` tables (DESIGN.md).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from citypulse.catalogue.feeds import feed_profile
from citypulse.feeds.base import HKT
from citypulse.model import OBSERVATION_SCHEMA

MAX_RANGE = timedelta(days=400)
DEFAULT_RANGE = timedelta(hours=24)


class ExportError(Exception):
    """Why an export cannot run; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


@runtime_checkable
class ObservationReader(Protocol):
    def observations(
        self,
        start: datetime,
        end: datetime,
        *,
        kinds: Sequence[str] | None = None,
        entity_ids: Sequence[str] | None = None,
        metrics: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> pa.Table: ...


def parse_bound(name: str, text: str | None, *, end: bool = False) -> datetime | None:
    """``2024-06-19`` (a Hong Kong day: start at its 00:00, end after its 24:00) or an ISO
    datetime with an offset. Naive datetimes are refused: HK vs UTC must be explicit."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    try:
        if len(text) == 10:
            day = datetime.fromisoformat(text).date()
            if end:
                day += timedelta(days=1)
            return datetime.combine(day, time(0), tzinfo=HKT).astimezone(UTC)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ExportError(400, f"{name} {text!r} is not a date (YYYY-MM-DD) or ISO datetime") \
            from exc
    if value.tzinfo is None:
        raise ExportError(
            400, f"{name} must carry a timezone offset, e.g. 2024-06-19T12:00:00+08:00"
        )
    return value.astimezone(UTC)


def window(start: str | None, end: str | None, now: datetime | None = None) -> tuple[
    datetime, datetime
]:
    end_dt = parse_bound("end", end, end=True) or (now or datetime.now(UTC))
    start_dt = parse_bound("start", start) or (end_dt - DEFAULT_RANGE)
    if start_dt >= end_dt:
        raise ExportError(400, "start must be before end")
    if end_dt - start_dt > MAX_RANGE:
        raise ExportError(400, f"the range is limited to {MAX_RANGE.days} days")
    return start_dt, end_dt


def _duckdb_connection(store: Any) -> Any | None:
    try:
        import duckdb
    except ImportError:  # pragma: no cover - duckdb is a dependency
        return None
    for attr in ("con", "conn", "connection"):
        con = getattr(store, attr, None)
        if isinstance(con, duckdb.DuckDBPyConnection):
            return con
    return None


def _duckdb_read(
    con: Any, start: datetime, end: datetime, kinds: Sequence[str], metrics: Sequence[str],
    limit: int | None,
) -> pa.Table:
    kind_marks = ",".join("?" * len(kinds))
    metric_marks = ",".join("?" * len(metrics))
    sql = (
        "SELECT o.entity_id, o.metric, o.ts, o.value, o.label FROM observations o "
        f"JOIN entities e ON e.id = o.entity_id WHERE e.kind IN ({kind_marks}) "
        f"AND o.metric IN ({metric_marks}) AND o.ts >= ? AND o.ts < ? "
        "ORDER BY o.ts, o.entity_id, o.metric"
    )
    args: list[Any] = [*kinds, *metrics, start, end]
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    table = con.cursor().execute(sql, args).fetch_arrow_table()
    return table.cast(OBSERVATION_SCHEMA)


def read_feed_observations(
    store: Any, feed_id: str, start: datetime, end: datetime, *, limit: int | None = None
) -> pa.Table:
    profile = feed_profile(feed_id)
    if not profile.pairs:
        raise ExportError(
            404, f"feed {feed_id!r} has no known entity kinds and metrics to export"
        )
    if isinstance(store, ObservationReader):
        table = store.observations(
            start, end, kinds=profile.kinds, metrics=profile.metrics, limit=limit
        )
        return table
    con = _duckdb_connection(store)
    if con is not None:
        return _duckdb_read(con, start, end, profile.kinds, profile.metrics, limit)
    raise ExportError(501, "this store cannot read raw observations yet")


def csv_chunks(table: pa.Table, chunk_rows: int = 65_536) -> Iterator[bytes]:
    """CSV in chunks (header once), so a large range streams instead of being built whole."""
    first = True
    for batch in table.to_batches(max_chunksize=chunk_rows) or [
        pa.RecordBatch.from_pylist([], schema=table.schema)
    ]:
        buf = io.BytesIO()
        pacsv.write_csv(
            pa.Table.from_batches([batch], schema=table.schema), buf,
            pacsv.WriteOptions(include_header=first),
        )
        first = False
        yield buf.getvalue()


def parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()
