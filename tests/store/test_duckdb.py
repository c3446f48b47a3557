"""DuckDB-only behaviour: file locking, schema, table contents at SQL level."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import pytest

from citypulse.store import open_store
from citypulse.store.duckdb import SCHEMA_VERSION, DuckDBStore, StoreLockedError

from .test_store import LINKS, make_batch, minutes

TABLES = ["entities", "observations", "latest", "events", "payloads", "feed_health"]


def dump(path: Path) -> dict[str, list[Any]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in TABLES}
    finally:
        con.close()


def test_fixed_table_names_and_columns(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    DuckDBStore(str(path)).close()
    con = duckdb.connect(str(path), read_only=True)
    try:
        columns: dict[str, list[str]] = {}
        for table, column in con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "ORDER BY table_name, ordinal_position"
        ).fetchall():
            columns.setdefault(table, []).append(column)
        version = con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0]
    finally:
        con.close()
    assert columns["entities"] == [
        "id",
        "kind",
        "name_en",
        "name_zh",
        "lat",
        "lon",
        "district",
        "properties",
    ]
    assert columns["observations"] == ["entity_id", "metric", "ts", "value", "label"]
    assert columns["events"][:13] == [
        "id",
        "kind",
        "severity",
        "starts_at",
        "ends_at",
        "title_en",
        "title_zh",
        "body_en",
        "body_zh",
        "entity_ids",
        "districts",
        "source",
        "properties",
    ]
    assert columns["latest"] == ["entity_id", "metric", "ts", "value", "label"]
    assert set(columns) >= {*TABLES, "schema_version"}
    assert version == SCHEMA_VERSION


def test_same_batch_twice_identical_tables(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    batch = make_batch(
        b"p", minutes("td-link:1", 0, 30) + minutes("td-link:2", 0, 30), entities=LINKS
    )
    with DuckDBStore(str(path)) as store:
        store.append(batch)
    before = dump(path)
    with DuckDBStore(str(path)) as store:
        assert store.append(batch).duplicate
        # Different bytes, same observations: nothing new either.
        assert store.append(make_batch(b"q", minutes("td-link:1", 0, 30))).observations_written == 0
    after = dump(path)
    assert after["observations"] == before["observations"]
    assert after["latest"] == before["latest"]
    assert after["entities"] == before["entities"]
    assert len(after["payloads"]) == 2
    con = duckdb.connect(str(path), read_only=True)
    try:
        dups = con.execute(
            "SELECT count(*) FROM (SELECT entity_id, metric, ts FROM observations "
            "GROUP BY ALL HAVING count(*) > 1)"
        ).fetchall()[0][0]
    finally:
        con.close()
    assert dups == 0


def test_second_process_gets_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "locked.duckdb"
    code = textwrap.dedent(
        f"""
        from citypulse.store.duckdb import DuckDBStore, StoreLockedError
        try:
            DuckDBStore({str(path)!r})
        except StoreLockedError as exc:
            print("LOCKED", exc)
        """
    )
    with DuckDBStore(str(path)):
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("LOCKED")
    assert str(path) in result.stdout
    assert issubclass(StoreLockedError, RuntimeError)


def test_memory_stores_are_independent() -> None:
    a = open_store(":memory:")
    b = open_store(":memory:")
    try:
        assert isinstance(a, DuckDBStore)
        a.append(make_batch(b"m", minutes("td-link:1", 0, 3)))
        assert a.count_observations() == 3
        assert b.count_observations() == 0
    finally:
        a.close()
        b.close()


def test_two_stores_on_one_file_in_one_process_share_it(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.duckdb")
    with DuckDBStore(path) as a, DuckDBStore(path) as b:
        a.append(make_batch(b"1", minutes("td-link:1", 0, 3)))
        assert b.append(make_batch(b"1", minutes("td-link:1", 0, 3))).duplicate
        assert b.count_observations() == 3


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.duckdb"
    DuckDBStore(str(path)).close()
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_version VALUES (?, now())", [SCHEMA_VERSION + 1])
    con.close()
    with pytest.raises(RuntimeError, match="newer"):
        DuckDBStore(str(path))


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = DuckDBStore(str(tmp_path / "c.duckdb"))
    store.close()
    store.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        store.count_observations()
    with pytest.raises(RuntimeError, match="closed"):
        store.append(make_batch(b"x", minutes("td-link:1", 0, 1)))


def test_creates_parent_directory(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "s.duckdb"
    with DuckDBStore(str(path)) as store:
        assert store.schema_version == SCHEMA_VERSION
    assert path.exists()


def test_unchanged_entities_are_not_rewritten(tmp_path: Path) -> None:
    path = str(tmp_path / "e.duckdb")
    with DuckDBStore(path) as store:
        assert store.upsert_entities(LINKS) == 2
        assert store.upsert_entities(LINKS) == 0
        assert store.append(make_batch(b"1", entities=LINKS)).entities_upserted == 0
        moved = replace(LINKS[0], lat=22.5)
        assert store.upsert_entities([moved, LINKS[1]]) == 1
        assert store.entity(moved.id) == moved
        # The cache follows the last write, so going back is written too.
        assert store.upsert_entities([LINKS[0]]) == 1
        assert store.entity(moved.id) == LINKS[0]
    # A file replaced between two opens is not trusted to hold cached rows.
    Path(path).unlink()
    with DuckDBStore(path) as store:
        assert store.upsert_entities(LINKS) == 2
        assert store.entities() == LINKS


def test_cursors_of_finished_threads_are_closed(tmp_path: Path) -> None:
    with DuckDBStore(str(tmp_path / "t.duckdb")) as store:
        for _ in range(10):
            t = threading.Thread(target=store.count_observations)
            t.start()
            t.join()
        store.count_observations()  # this thread's cursor; the finished threads' are closed
        assert len(store._cursors) <= 3  # writer, this thread, the last finished thread
