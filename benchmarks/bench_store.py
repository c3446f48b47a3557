"""Benchmark of the embedded DuckDB store, side by side with raw DuckDB baselines.

    python benchmarks/bench_store.py [--quick] [--json] [--days N] [--dir PATH]

Simulates the Transport Department speed map (600 road links, one reading a minute):

* bulk ingest: one Batch per day (600 links x 1440 minutes = 864 000 rows) through
  ``DuckDBStore.append`` (de-duplication, ``latest`` upsert, payload record, one transaction),
  against two baselines on the same data: a bare ``INSERT ... SELECT`` from Arrow into an
  unindexed table (the ceiling) and the same into a table with a PRIMARY KEY (the design the
  store avoids);
* real-time append of one 600-row payload (with and without its 600 entity upserts), and of a
  payload seen before (short-circuited by its sha256);
* reads: latest value per entity (from the ``latest`` table, against a scan of history), one
  link's day in 5-minute buckets, all links' day in hourly buckets.

``run(quick)`` returns the figures as a flat dict (used by ``citypulse bench``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from citypulse.model import OBSERVATION_SCHEMA, Batch, Entity, sha256
from citypulse.store.duckdb import DuckDBStore

LINKS = 600
MINUTES_PER_DAY = 1440
T0 = datetime(2024, 1, 1, tzinfo=UTC)
METRIC = "speed_kmh"


def _generator() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    return con


def observations(gen: duckdb.DuckDBPyConnection, first_minute: int, minutes: int) -> pa.Table:
    """Minute-major rows (as consecutive payloads arrive): every link, then the next minute."""
    first = int(first_minute)
    query = f"""SELECT 'td-link:' || (3000 + i % {LINKS}) AS entity_id,
               '{METRIC}' AS metric,
               TIMESTAMPTZ '{T0.isoformat()}'
                   + to_minutes(CAST({first} + i // {LINKS} AS BIGINT)) AS ts,
               CAST(10 + hash(i, {first}) % 900 / 10.0 AS DOUBLE) AS value,
               CASE WHEN hash(i, {first}) % 3 = 0 THEN 'TRAFFIC GOOD' END AS label
        FROM range({LINKS * int(minutes)}) AS r(i)"""
    table: pa.Table = gen.sql(query).to_arrow_table()
    return table.cast(OBSERVATION_SCHEMA)


def entities() -> list[Entity]:
    return [
        Entity(
            f"td-link:{3000 + i}",
            "td-link",
            f"Link {i}",
            f"路段 {i}",
            22.2 + i / 10_000,
            114.1 + i / 10_000,
            "central_western",
            {"region": "HK", "road_type": "MAJOR ROUTE"},
        )
        for i in range(LINKS)
    ]


def batch(table: pa.Table, tag: str, ents: list[Entity] | None = None) -> Batch:
    """A payload's batch built directly from Arrow (the parser's cost is not measured here)."""
    return Batch(
        feed_id="td-speedmap",
        fetched_at=T0,
        payload_sha256=sha256(tag.encode()),
        entities=ents or [],
        observations=table,
    )


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds (CPU counts DuckDB's worker threads too; on a shared
    machine it is the steadier figure)."""
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return round(statistics.median(wall), 3), round(statistics.median(cpu), 3)


def _baseline_rows_per_s(folder: Path, tables: list[pa.Table], primary_key: bool) -> float:
    """Bare Arrow inserts into a plain table (optionally with a PRIMARY KEY), same rows."""
    name = "baseline_pk.duckdb" if primary_key else "baseline.duckdb"
    con = duckdb.connect(str(folder / name))
    key = ", PRIMARY KEY (entity_id, metric, ts)" if primary_key else ""
    con.execute(
        "CREATE TABLE observations (entity_id VARCHAR NOT NULL, metric VARCHAR NOT NULL, "
        f"ts TIMESTAMPTZ NOT NULL, value DOUBLE, label VARCHAR{key})"
    )
    elapsed = 0.0
    rows = 0
    for table in tables:
        con.register("arrow_batch", table)
        start = time.perf_counter()
        con.execute("INSERT INTO observations SELECT * FROM arrow_batch").fetchall()
        elapsed += time.perf_counter() - start
        rows += table.num_rows
        con.unregister("arrow_batch")
    con.close()
    return rows / elapsed


def run(quick: bool = False, days: int | None = None, folder: str | None = None) -> dict[str, Any]:
    days = days if days is not None else (2 if quick else 8)
    repeat = 9 if quick else 31
    results: dict[str, Any] = {"days": days, "links": LINKS}

    def record(name: str, fn: Callable[[], object], n: int = repeat) -> None:
        results[f"{name}_ms"], results[f"{name}_cpu_ms"] = timed(fn, n)

    with tempfile.TemporaryDirectory(prefix="citypulse-bench-", dir=folder) as tmp:
        work = Path(tmp)
        gen = _generator()
        day_tables = [observations(gen, d * MINUTES_PER_DAY, MINUTES_PER_DAY) for d in range(days)]
        ents = entities()

        store = DuckDBStore(str(work / "store.duckdb"))
        try:
            wall = cpu = 0.0
            rows = 0
            for d, table in enumerate(day_tables):
                b = batch(table, f"day-{d}", ents if d == 0 else None)
                start, start_cpu = time.perf_counter(), time.process_time()
                result = store.append(b)
                wall += time.perf_counter() - start
                cpu += time.process_time() - start_cpu
                rows += result.observations_written
            results["bulk_rows"] = rows
            results["bulk_rows_per_s"] = round(rows / wall)
            results["bulk_rows_per_cpu_s"] = round(rows / cpu)

            # Re-ingesting a whole day that is already stored (different sha): nothing new.
            start = time.perf_counter()
            again = store.append(batch(day_tables[-1], "day-again"))
            results["bulk_redelivery_rows_per_s"] = round(
                day_tables[-1].num_rows / (time.perf_counter() - start)
            )
            assert again.observations_written == 0

            # Real-time: the next minutes after the history, one 600-row payload each.
            minute = days * MINUTES_PER_DAY
            live = [observations(gen, minute + i, 1) for i in range(2 * repeat)]
            it = iter(range(2 * repeat))

            def append_live(with_entities: bool) -> None:
                i = next(it)
                store.append(batch(live[i], f"live-{i}", ents if with_entities else None))

            record("append_600", lambda: append_live(False))
            record("append_600_with_unchanged_entities", lambda: append_live(True))
            seen = batch(live[0], "live-0")
            record("append_duplicate_payload", lambda: store.append(seen))

            total = store.count_observations()
            results["stored_rows"] = total
            assert len(store.latest(METRIC)) == LINKS
            record("latest_600", lambda: store.latest(METRIC))
            record("latest_600_by_kind", lambda: store.latest(METRIC, kind="td-link"))
            scan = (
                "SELECT entity_id, arg_max(value, ts), max(ts) FROM observations "
                "WHERE metric = ? GROUP BY entity_id"
            )
            record("latest_by_history_scan", lambda: store._read(scan, [METRIC]), 5)
            day_start = T0 + timedelta(days=days - 1)
            day_end = day_start + timedelta(days=1)
            record(
                "series_1_link_1_day_5min",
                lambda: store.series(
                    "td-link:3123", METRIC, day_start, day_end, timedelta(minutes=5)
                ),
            )
            record(
                "aggregate_600_links_1_day_hourly",
                lambda: store.aggregate("td-link", METRIC, day_start, day_end, timedelta(hours=1)),
                max(3, repeat // 3),
            )
        finally:
            store.close()
        size = (work / "store.duckdb").stat().st_size
        results["file_bytes_per_row"] = round(size / max(1, total), 1)

        base = _baseline_rows_per_s(work, day_tables, primary_key=False)
        base_pk = _baseline_rows_per_s(work, day_tables[:1], primary_key=True)
        results["baseline_arrow_insert_rows_per_s"] = round(base)
        results["baseline_primary_key_insert_rows_per_s"] = round(base_pk)
        results["store_vs_bare_insert_ratio"] = round(results["bulk_rows_per_s"] / base, 2)
        results["store_vs_primary_key_ratio"] = round(results["bulk_rows_per_s"] / base_pk, 2)
        results["latest_table_speedup_vs_scan"] = round(
            results["latest_by_history_scan_cpu_ms"] / max(results["latest_600_cpu_ms"], 1e-3), 1
        )
        results["duckdb"] = duckdb.__version__
        gen.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--days", type=int, default=None, help="days of history to ingest")
    parser.add_argument("--dir", default=None, help="folder for the temporary DuckDB files")
    args = parser.parse_args()
    results = run(args.quick, days=args.days, folder=args.dir)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        width = max(len(k) for k in results)
        for key, value in results.items():
            shown = f"{value:,}" if isinstance(value, int | float) else value
            print(f"{key:<{width}}  {shown}")


if __name__ == "__main__":
    main()
