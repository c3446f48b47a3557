"""Methods beyond the shared store suite give the same answers on DuckDB and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from tests.store.test_store import LINKS, MINUTE, STATION, T0, Row, make_batch

from citypulse.store.duckdb import DuckDBStore
from citypulse.store.postgres import PostgresStore


def rows() -> list[Row]:
    out: list[Row] = []
    for i in range(90):
        out.append(("td-link:1", "speed_kmh", T0 + i * MINUTE, 30.0 + i % 11, None))
        out.append(("td-link:2", "speed_kmh", T0 + i * MINUTE, None if i % 9 == 0 else i, "x"))
        out.append(("hko-station:HKO", "speed_kmh", T0 + i * MINUTE, 1.0, None))
    return out


def frame(table: pa.Table) -> list[tuple[Any, ...]]:
    return sorted(zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True))


def test_observations_frame_matches(tmp_path: Path, pg_store_url: str) -> None:
    batch = make_batch(b"parity", rows(), entities=[*LINKS, STATION])
    with DuckDBStore(str(tmp_path / "s.duckdb")) as duck, PostgresStore(pg_store_url) as pg:
        duck.append(batch)
        pg.append(batch)
        for kind in ("td-link", None):
            for bucket in (None, timedelta(minutes=15)):
                a = duck.observations_frame("speed_kmh", kind, T0, T0 + timedelta(hours=2),
                                            bucket=bucket)
                b = pg.observations_frame("speed_kmh", kind, T0, T0 + timedelta(hours=2),
                                          bucket=bucket)
                assert a.schema.equals(b.schema), (a.schema, b.schema)
                assert frame(a) == frame(b)
        empty = pg.observations_frame("nothing", None, T0, T0 + MINUTE)
        assert empty.num_rows == 0 and empty.column_names == ["entity_id", "ts", "value", "n"]


def test_rollup_reads_match_raw_reads(tmp_path: Path, pg_store_url: str) -> None:
    """Hour-aligned aggregates and series come from PostgreSQL's hourly rollups; DuckDB scans
    raw rows. Both must agree, across several batches and re-deliveries."""
    with DuckDBStore(str(tmp_path / "s.duckdb")) as duck, PostgresStore(pg_store_url) as pg:
        for i, part in enumerate((rows()[:100], rows()[80:200], rows()[150:], rows()[:50])):
            b = make_batch(f"part-{i}".encode(), part, entities=[*LINKS, STATION])
            duck.append(b)
            pg.append(b)
        start, end = T0 - timedelta(hours=1), T0 + timedelta(hours=3)
        for bucket in (timedelta(hours=1), timedelta(hours=2), timedelta(days=1)):
            a = duck.aggregate("td-link", "speed_kmh", start, end, bucket)
            b2 = pg.aggregate("td-link", "speed_kmh", start, end, bucket)
            assert [(p.ts, p.n, p.entities, p.min, p.max) for p in a] == [
                (p.ts, p.n, p.entities, p.min, p.max) for p in b2
            ]
            assert [round(p.avg or 0, 9) for p in a] == [round(p.avg or 0, 9) for p in b2]
            sa = duck.series("td-link:2", "speed_kmh", start, end, bucket)
            sb = pg.series("td-link:2", "speed_kmh", start, end, bucket)
            assert [(p.ts, p.n, p.min, p.max) for p in sa] == [
                (p.ts, p.n, p.min, p.max) for p in sb
            ]
        assert duck.count_observations() == pg.count_observations() == len(rows())
