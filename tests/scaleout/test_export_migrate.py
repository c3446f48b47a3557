"""History export to Hive-partitioned Parquet (read back by DuckDB and by Arrow datasets, not
by the code that wrote it) and the DuckDB -> PostgreSQL migration."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as ds
import pytest
from tests.store.test_store import Row, make_batch
from typer.testing import CliRunner

from citypulse.cli import app
from citypulse.model import Entity, Event
from citypulse.store.base import PayloadRecord, TimeSeriesStore
from citypulse.store.duckdb import DuckDBStore
from citypulse.store.postgres import PostgresStore

DAY0 = datetime(2024, 3, 1, tzinfo=UTC)
ENTITIES = [
    Entity("td-link:1", "road-link", "Link 1", "路段一", 22.3, 114.17, "wan_chai", {"lanes": 2}),
    Entity("td-link:2", "road-link", "Link 2", None, 22.31, 114.18),
    Entity("hko-station:HKO", "weather-station", "Observatory", "天文台", 22.30, 114.17),
    Entity("gadget:9", "gadget", "Unclaimed"),
]


def rows_for_day(day: int) -> list[Row]:
    """Three days of a small city: 2 links every 10 min, a station hourly, a gadget once."""
    start = DAY0 + timedelta(days=day)
    rows: list[Row] = []
    for i in range(144):
        ts = start + timedelta(minutes=10 * i)
        rows.append(("td-link:1", "speed_kmh", ts, 40.0 + i % 7, "GOOD" if i % 3 else None))
        rows.append(("td-link:2", "speed_kmh", ts, None if i % 50 == 0 else 60.0 - i % 5, ""))
    for h in range(24):
        hour = start + timedelta(hours=h)
        rows.append(("hko-station:HKO", "temperature_c", hour, 20.0 + h / 4, None))
    rows.append(("gadget:9", "foo", start + timedelta(hours=5), 1.5, "x,\"y\"\n"))
    return rows


def fill(store: TimeSeriesStore) -> list[Row]:
    everything: list[Row] = []
    for day in range(3):
        rows = rows_for_day(day)
        everything += rows
        store.append(
            make_batch(
                f"day-{day}".encode(),
                rows,
                entities=ENTITIES,
                fetched_at=DAY0 + timedelta(days=day, hours=23),
                events=[Event(f"ev-{day}", "traffic", "info", DAY0 + timedelta(days=day),
                              title_en="Works", entity_ids=("td-link:1",))],
            )
        )
    store.record_fetch("td-speedmap", at=DAY0, ok=True, rows=10, data_ts=DAY0)
    store.record_payload(PayloadRecord("bad", "td-speedmap", DAY0, "quarantined", "xml", None, 0))
    return everything


def expected_feed(entity_id: str) -> str:
    return {"td-link": "td-speedmap", "hko-station": "hko-rhrread"}.get(
        entity_id.split(":")[0], "gadget"
    )


def key(entity_id: str, metric: str, ts: datetime, value: Any, label: Any) -> tuple[Any, ...]:
    return (entity_id, metric, ts.astimezone(UTC), value, label)


def check_export(out: Path, rows: list[Row], days: set[date]) -> None:
    want = [r for r in rows if r[2].date() in days]
    # Engine 1: DuckDB reads the Hive layout (feed, date from the paths).
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    got = con.execute(
        f"SELECT feed, CAST(date AS VARCHAR), entity_id, metric, ts, value, label "
        f"FROM read_parquet('{out}/**/*.parquet', hive_partitioning = true)"
    ).fetchall()
    assert Counter((g[0], g[1]) for g in got) == Counter(
        (expected_feed(r[0]), r[2].date().isoformat()) for r in want
    )
    assert sorted(key(*g[2:]) for g in got) == sorted(key(*r) for r in want)
    # Engine 2: Arrow datasets with Hive partitioning, filtering on a partition.
    dataset = ds.dataset(out, format="parquet", partitioning="hive")
    speed = dataset.to_table(filter=ds.field("feed") == "td-speedmap")
    assert speed.num_rows == sum(1 for r in want if r[0].startswith("td-link"))
    # Files are sorted by entity, metric, time.
    for path in out.glob("feed=*/date=*/part-0.parquet"):
        table = ds.dataset(path, format="parquet").to_table()
        keys = list(zip(*(table.column(c).to_pylist() for c in ("entity_id", "metric", "ts")),
                        strict=True))
        assert keys == sorted(keys)


def test_export_parquet_from_duckdb(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    with DuckDBStore(str(path)) as store:
        rows = fill(store)
    out = tmp_path / "history"
    result = CliRunner().invoke(
        app, ["export", "parquet", "--out", str(out), "--store", str(path),
              "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert f"exported {len(rows)} observations" in result.output
    check_export(out, rows, {(DAY0 + timedelta(days=d)).date() for d in range(3)})
    assert sorted(p.parent.name for p in out.glob("feed=td-speedmap/*/part-0.parquet")) == [
        "date=2024-03-01", "date=2024-03-02", "date=2024-03-03"
    ]
    # A day range re-exports just those days (and replaces them in place).
    again = tmp_path / "one-day"
    result = CliRunner().invoke(
        app, ["export", "parquet", "--out", str(again), "--store", str(path),
              "--from", "2024-03-02", "--to", "2024-03-02", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    check_export(again, rows, {date(2024, 3, 2)})


def test_export_parquet_from_postgres(tmp_path: Path, pg_store_url: str) -> None:
    with PostgresStore(pg_store_url) as store:
        rows = fill(store)
    out = tmp_path / "history"
    result = CliRunner().invoke(
        app, ["export", "parquet", "--out", str(out), "--store", pg_store_url,
              "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    check_export(out, rows, {(DAY0 + timedelta(days=d)).date() for d in range(3)})


def test_export_from_a_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["export", "parquet", "--out", str(tmp_path / "o"), "--store",
              str(tmp_path / "nope.duckdb"), "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "no DuckDB store file" in result.output


def snapshot(store: TimeSeriesStore) -> Any:
    t0, t1 = DAY0 - timedelta(days=1), DAY0 + timedelta(days=4)
    return (
        store.count_observations(),
        store.entities(),
        store.events(t0, t1),
        store.payloads(),
        store.feed_health(),
        store.latest("speed_kmh"),
        store.latest("temperature_c"),
        store.series("td-link:2", "speed_kmh", t0, t1, timedelta(minutes=30)),
        store.aggregate("road-link", "speed_kmh", t0, t1, timedelta(hours=6)),
    )


def test_migrate_duckdb_to_postgres(tmp_path: Path, pg_store_url: str) -> None:
    path = tmp_path / "store.duckdb"
    with DuckDBStore(str(path)) as store:
        fill(store)
        before = snapshot(store)
    runner = CliRunner()
    result = runner.invoke(app, ["migrate", "--from", str(path), "--to", pg_store_url])
    assert result.exit_code == 0, result.output
    assert "complete" in result.output
    with PostgresStore(pg_store_url) as pg:
        after = snapshot(pg)
        assert pg.append(make_batch(b"day-1", rows_for_day(1))).duplicate  # payloads came too
    assert after[:5] == before[:5]
    assert after[5:7] == before[5:7]
    for got, want in zip(after[7:], before[7:], strict=True):
        assert [(p.ts, p.n, p.min, p.max) for p in got] == [(p.ts, p.n, p.min, p.max) for p in want]
        assert [p.avg for p in got] == pytest.approx([p.avg for p in want])
    # Running it again copies nothing and changes nothing.
    result = runner.invoke(app, ["migrate", "--from", str(path), "--to", pg_store_url])
    assert result.exit_code == 0, result.output
    with PostgresStore(pg_store_url) as pg:
        assert snapshot(pg)[:7] == after[:7]


def test_migrate_refuses_bad_arguments(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["migrate", "--from", str(tmp_path / "x.duckdb"),
                                 "--to", "/tmp/other.duckdb"])
    assert result.exit_code == 2 and "postgresql://" in result.output
    result = runner.invoke(app, ["migrate", "--from", str(tmp_path / "x.duckdb"),
                                 "--to", "postgresql://u:pw@127.0.0.1:1/x"])
    assert result.exit_code == 2 and "no DuckDB store file" in result.output
