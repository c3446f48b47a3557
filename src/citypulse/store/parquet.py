"""History export: observations as Hive-partitioned Parquet that DuckDB, Spark or pandas read
directly (``citypulse export parquet``).

Layout: ``OUT/feed=<feed id>/date=<YYYY-MM-DD>/part-0.parquet`` (UTC days, the store's daily
partitions), zstd-compressed, rows sorted by (entity_id, metric, ts) so a reader filtering on
an entity skips most row groups; columns ``entity_id, metric, ts (timestamp[us, UTC]), value,
label``, with ``feed`` and ``date`` coming from the path. Re-exporting a day replaces its files
atomically (write to a temporary name, then rename), so readers never see half a file.

Observations carry no feed column: a row's feed is the feed whose batches contain its
(entity kind, metric) pair, from the catalogue's feed profiles (first feed id in order when
two feeds produce the same pair, e.g. two HKO feeds both giving ``temperature_c``); a pair no
feed claims goes under the entity id's namespace (``td-link`` for ``td-link:3001``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from citypulse.model import OBSERVATION_SCHEMA

__all__ = ["ExportReport", "ObservationSource", "export_parquet", "feed_of_pairs", "open_source"]

_DAY = timedelta(days=1)


class ObservationSource(Protocol):
    """What the export reads: the UTC days with data, one day of raw rows, entity kinds."""

    def days(self) -> list[date]: ...

    def day(self, day: date) -> pa.Table: ...

    def kinds(self) -> dict[str, str]: ...

    def close(self) -> None: ...


@dataclass
class ExportReport:
    days: int = 0
    rows: int = 0
    files: list[Path] = field(default_factory=list)

    def __str__(self) -> str:
        return f"exported {self.rows} observations in {len(self.files)} files over {self.days} days"


class DuckDBSource:
    """A DuckDB store file, opened read-only (the serving process must be stopped: DuckDB
    allows one process per file)."""

    def __init__(self, path: str) -> None:
        import duckdb

        try:
            self.con = duckdb.connect(path, read_only=True)
        except duckdb.Error as exc:
            raise RuntimeError(
                f"cannot open DuckDB file {path} read-only ({exc}); stop the citypulse "
                "process that owns it first (DuckDB allows one process per file)"
            ) from exc
        self.con.execute("SET TimeZone = 'UTC'")

    def days(self) -> list[date]:
        rows = self.con.execute(
            "SELECT DISTINCT CAST(ts AT TIME ZONE 'UTC' AS DATE) AS d FROM observations ORDER BY d"
        ).fetchall()
        return [r[0] for r in rows]

    def day(self, day: date) -> pa.Table:
        start = _day_start(day)
        table: pa.Table = self.con.sql(
            "SELECT entity_id, metric, ts, value, label FROM observations "
            "WHERE ts >= $start AND ts < $end",
            params={"start": start, "end": start + _DAY},
        ).to_arrow_table()
        return table.cast(OBSERVATION_SCHEMA)

    def kinds(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self.con.execute("SELECT id, kind FROM entities").fetchall()}

    def close(self) -> None:
        self.con.close()


class PostgresSource:
    def __init__(self, url: str) -> None:
        from citypulse.store.postgres import PostgresStore

        self.store = PostgresStore(url)

    def days(self) -> list[date]:
        return self.store.days()

    def day(self, day: date) -> pa.Table:
        start = _day_start(day)
        return self.store.observations(start, start + _DAY)

    def kinds(self) -> dict[str, str]:
        return {e.id: e.kind for e in self.store.entities()}

    def close(self) -> None:
        self.store.close()


def open_source(url: str) -> ObservationSource:
    """A store URL (DuckDB file path or ``postgresql://``) as an export source."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresSource(url)
    if not Path(url).expanduser().is_file():
        raise RuntimeError(f"no DuckDB store file at {url}")
    return DuckDBSource(str(Path(url).expanduser()))


def feed_of_pairs() -> dict[tuple[str, str], str]:
    """(entity kind, metric) -> feed id, from the catalogue's feed profiles."""
    from citypulse.catalogue.feeds import feed_profile
    from citypulse.feeds.registry import all_feeds

    mapping: dict[tuple[str, str], str] = {}
    for feed_id in sorted(all_feeds()):
        for pair in feed_profile(feed_id).pairs:
            mapping.setdefault(pair, feed_id)
    return mapping


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _with_feed(
    table: pa.Table, kinds: dict[str, str], feeds: dict[tuple[str, str], str]
) -> pa.Table:
    """``table`` plus a ``feed`` column, computed once per distinct (entity, metric)."""
    pairs = table.group_by(["entity_id", "metric"], use_threads=False).aggregate([])
    ids = pairs.column("entity_id").to_pylist()
    metrics = pairs.column("metric").to_pylist()
    names = []
    for entity_id, metric in zip(ids, metrics, strict=True):
        kind = kinds.get(entity_id) or entity_id.split(":", 1)[0]
        names.append(feeds.get((kind, metric)) or entity_id.split(":", 1)[0])
    lookup = pa.table(
        {
            "entity_id": pa.array(ids, pa.string()),
            "metric": pa.array(metrics, pa.string()),
            "feed": pa.array(names, pa.string()),
        }
    )
    return table.join(lookup, keys=["entity_id", "metric"], join_type="left outer")


def _safe(name: str) -> str:
    """A path-safe partition value (feed ids are already [a-z0-9-])."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "unknown"


def _write_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, compression="zstd", row_group_size=128 * 1024)
    os.replace(tmp, path)


def days_between(days: list[date], start: date | None, end: date | None) -> Iterator[date]:
    for d in days:
        if (start is None or d >= start) and (end is None or d <= end):
            yield d


def export_parquet(
    source: ObservationSource,
    out: Path,
    start: date | None = None,
    end: date | None = None,
    *,
    progress: Callable[[date, int], Any] | None = None,
) -> ExportReport:
    """Write every UTC day in [start, end] (inclusive; None: open) that has observations."""
    report = ExportReport()
    kinds = source.kinds()
    feeds = feed_of_pairs()
    for day in days_between(source.days(), start, end):
        table = source.day(day)
        if table.num_rows == 0:
            continue
        labelled = _with_feed(table, kinds, feeds)
        for feed in sorted(pc.unique(labelled.column("feed")).to_pylist()):
            part = labelled.filter(pc.equal(labelled.column("feed"), feed))
            part = part.select(OBSERVATION_SCHEMA.names).sort_by(
                [("entity_id", "ascending"), ("metric", "ascending"), ("ts", "ascending")]
            )
            path = out / f"feed={_safe(feed)}" / f"date={day.isoformat()}" / "part-0.parquet"
            _write_atomic(part.cast(OBSERVATION_SCHEMA), path)
            report.files.append(path)
        report.days += 1
        report.rows += table.num_rows
        if progress is not None:
            progress(day, table.num_rows)
    return report
