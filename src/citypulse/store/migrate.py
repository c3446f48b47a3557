"""Move an embedded DuckDB installation to PostgreSQL (``citypulse migrate``).

Copies every table of the fixed schema (entities, events, payloads, feed health, then
observations one UTC day at a time through the PostgreSQL store's bulk path, which also fills
``latest`` and the hourly rollups). Idempotent: rows whose key is already in PostgreSQL are
left alone, so an interrupted migration is simply run again. The DuckDB file is opened
read-only; stop the ``citypulse serve`` that owns it first (DuckDB allows one process per
file). Ends by comparing row counts of both stores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from citypulse.store.parquet import DuckDBSource
from citypulse.store.postgres import PostgresStore

__all__ = ["MigrateReport", "migrate_duckdb_to_postgres"]

_TABLES: dict[str, tuple[str, ...]] = {
    "entities": ("id", "kind", "name_en", "name_zh", "lat", "lon", "district", "properties"),
    "events": (
        "id", "kind", "severity", "starts_at", "ends_at", "title_en", "title_zh", "body_en",
        "body_zh", "entity_ids", "districts", "source", "properties", "updated_at",
    ),
    "payloads": ("sha256", "feed_id", "fetched_at", "status", "reason", "archive_path", "rows"),
    "feed_health": (
        "feed_id", "last_attempt", "last_success", "last_error", "last_error_at",
        "consecutive_failures", "last_rows", "total_rows", "last_data_ts",
    ),
}
_JSON_COLUMNS = {"properties"}


@dataclass
class MigrateReport:
    copied: dict[str, int] = field(default_factory=dict)
    source_counts: dict[str, int] = field(default_factory=dict)
    target_counts: dict[str, int] = field(default_factory=dict)
    days: int = 0

    @property
    def complete(self) -> bool:
        """Every source row is in the target (the target may hold more)."""
        return all(self.target_counts.get(t, 0) >= n for t, n in self.source_counts.items())

    def __str__(self) -> str:
        lines = [f"{'table':14} {'copied':>12} {'duckdb':>12} {'postgres':>12}"]
        for table, n in self.source_counts.items():
            lines.append(
                f"{table:14} {self.copied.get(table, 0):>12} {n:>12} "
                f"{self.target_counts.get(table, 0):>12}"
            )
        lines.append("complete" if self.complete else "INCOMPLETE: target has fewer rows")
        return "\n".join(lines)


def _value(column: str, value: Any) -> Any:
    if column in _JSON_COLUMNS and isinstance(value, str):
        return orjson.loads(value)
    return value


def migrate_duckdb_to_postgres(
    duckdb_path: str | Path,
    postgres_url: str,
    *,
    progress: Callable[[str, date | None, int], Any] | None = None,
) -> MigrateReport:
    path = Path(duckdb_path).expanduser()
    if not path.is_file():
        raise RuntimeError(f"no DuckDB store file at {path}")
    source = DuckDBSource(str(path))
    target = PostgresStore(postgres_url)
    report = MigrateReport()
    try:
        con = source.con
        for table, columns in _TABLES.items():
            quoted = ", ".join(f'"{c}"' for c in columns)
            rows = [
                [_value(c, v) for c, v in zip(columns, row, strict=True)]
                for row in con.execute(f"SELECT {quoted} FROM {table}").fetchall()
            ]
            report.copied[table] = target.import_rows(table, columns, rows)
            if progress is not None:
                progress(table, None, report.copied[table])
        written = 0
        for day in source.days():
            n = target.load_observations(source.day(day))
            written += n
            report.days += 1
            if progress is not None:
                progress("observations", day, n)
        report.copied["observations"] = written
        for table in _TABLES:
            report.source_counts[table] = int(
                con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
            )
            report.target_counts[table] = target.table_count(table)
        report.source_counts["observations"] = int(
            con.execute("SELECT count(*) FROM observations").fetchone()[0]  # type: ignore[index]
        )
        report.target_counts["observations"] = target.count_observations()
    finally:
        source.close()
        target.close()
    return report
