"""DuckDB-only behaviour: file locking, schema, table contents at SQL level."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import threading
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from citypulse.model import Event
from citypulse.store import open_store
from citypulse.store.base import PayloadRecord
from citypulse.store.duckdb import (
    SCHEMA_VERSION,
    DuckDBStore,
    StoreLockedError,
    _classify,
    _classify_unique_keys,
)

from .test_store import LINKS, MINUTE, T0, Row, make_batch, minutes

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


# -- the writer's caches (see _FileState): they follow committed state only -----------------


def _stored(store: DuckDBStore) -> tuple[dict[tuple[str, str], int], list[Any]]:
    """``latest`` (epoch us per key) and every observation, read with SQL."""
    latest = {
        (e, m): ts for e, m, ts in store._read("SELECT entity_id, metric, epoch_us(ts) FROM latest")
    }
    rows = store._read(
        "SELECT entity_id, metric, epoch_us(ts), value, label FROM observations ORDER BY ALL"
    )
    return latest, rows


def _assert_mirror_is_table(store: DuckDBStore) -> None:
    mirror = store._state.latest
    assert mirror is not None
    assert mirror == _stored(store)[0]


def test_latest_mirror_matches_a_plain_model(tmp_path: Path) -> None:
    """Random small batches (fresh, stale, repeated rows, new keys, two metrics): after every
    append the mirror equals ``latest``, and the store equals a plain-Python model."""
    rng = random.Random(7)
    model: dict[tuple[str, str, datetime], tuple[float, str | None]] = {}
    with DuckDBStore(str(tmp_path / "m.duckdb")) as store:
        for i in range(40):
            rows: list[Row] = []
            for _ in range(rng.randrange(1, 25)):
                minute = rng.randrange(0, 60)
                rows.append(
                    (
                        f"e{rng.randrange(6)}",
                        rng.choice(["speed_kmh", "volume"]),
                        T0 + minute * MINUTE,
                        float(rng.randrange(1000)),
                        rng.choice([None, "good"]),
                    )
                )
            if rows and rng.random() < 0.3:
                rows.append((*rows[0][:3], -1.0, "repeat"))  # first occurrence wins
            written = store.append(make_batch(f"b{i}".encode(), rows)).observations_written
            new = 0
            for e, m, ts, value, label in rows:
                if (e, m, ts) not in model:
                    model[(e, m, ts)] = (value, label)
                    new += 1
            assert written == new
            _assert_mirror_is_table(store)
        latest, stored = _stored(store)
        us = {k: int(k[2].timestamp() * 1_000_000) for k in model}
        assert stored == sorted((e, m, us[(e, m, ts)], *model[(e, m, ts)]) for e, m, ts in model)
        newest: dict[tuple[str, str], int] = {}
        for (e, m, _), stamp in us.items():
            newest[(e, m)] = max(newest.get((e, m), stamp), stamp)
        assert latest == newest
        for value in store.latest("speed_kmh") + store.latest("volume"):
            key = (value.entity_id, value.metric, value.ts)
            assert (value.value, value.label) == model[key]


def test_failed_append_leaves_the_caches_as_committed(tmp_path: Path) -> None:
    with DuckDBStore(str(tmp_path / "f.duckdb")) as store:
        store.append(make_batch(b"1", minutes("td-link:1", 0, 5), entities=LINKS[:1]))
        before = dict(store._state.latest or {})
        moved = replace(LINKS[0], lat=22.5)
        bad_event = Event("ev-bad", "traffic", None, T0)  # type: ignore[arg-type]
        with pytest.raises(duckdb.Error):
            store.append(
                make_batch(
                    b"2",
                    minutes("td-link:1", 5, 10) + minutes("td-link:2", 0, 3),
                    entities=[moved],
                    events=[bad_event],
                )
            )
        assert store._state.latest == before
        _assert_mirror_is_table(store)
        assert store._state.entities["td-link:1"][0] is LINKS[0]
        # The same rows, now without the bad event, are all written and move latest.
        result = store.append(
            make_batch(
                b"3", minutes("td-link:1", 5, 10) + minutes("td-link:2", 0, 3), entities=[moved]
            )
        )
        assert (result.observations_written, result.entities_upserted) == (8, 1)
        _assert_mirror_is_table(store)
        assert store.entity("td-link:1") == moved
        assert [(v.entity_id, v.ts) for v in store.latest("speed_kmh")] == [
            ("td-link:1", T0 + 9 * MINUTE),
            ("td-link:2", T0 + 2 * MINUTE),
        ]


def test_latest_mirror_is_reloaded_after_reopen_and_bulk_batches(tmp_path: Path) -> None:
    path = str(tmp_path / "r.duckdb")
    with DuckDBStore(path) as store:
        store.append(make_batch(b"1", minutes("td-link:1", 0, 10)))
        assert store._state.latest is not None
    with DuckDBStore(path) as store:
        assert store._state.latest is None  # the file may have changed while closed
        # Stale (0..9, stored), and fresh rows in one batch.
        assert store.append(make_batch(b"2", minutes("td-link:1", 5, 15))).observations_written == 5
        _assert_mirror_is_table(store)
        # A batch too big to plan goes through SQL and drops the mirror on commit ...
        big = [r for i in range(30) for r in minutes(f"e{i}", 0, 700)]
        assert store.append(make_batch(b"big", big)).observations_written == 21_000
        assert store._state.latest is None
        # ... which the next small batch reloads.
        assert store.append(make_batch(b"3", minutes("e0", 690, 701))).observations_written == 1
        _assert_mirror_is_table(store)
        assert store.count_observations() == 15 + 21_000 + 1
    Path(path).unlink()
    with DuckDBStore(path) as store:
        assert store.append(make_batch(b"1", minutes("td-link:1", 0, 3))).observations_written == 3
        _assert_mirror_is_table(store)


def test_a_mirror_behind_the_table_is_caught(tmp_path: Path) -> None:
    """Never expected, but if the mirror ever lagged ``latest`` it would take stored rows
    for new ones: the write of ``latest`` notices, and the batch is stored with plain SQL."""
    with DuckDBStore(str(tmp_path / "s.duckdb")) as store:
        store.append(make_batch(b"1", minutes("td-link:1", 0, 10)))
        mirror = store._state.latest
        assert mirror is not None
        mirror[("td-link:1", "speed_kmh")] -= 5 * 60_000_000  # five minutes behind
        again = store.append(make_batch(b"2", minutes("td-link:1", 4, 10, value=99.0)))
        assert again.observations_written == 0
        assert store.count_observations() == 10
        [one] = store.latest("speed_kmh")
        assert (one.ts, one.value) == (T0 + 9 * MINUTE, 9.0)
        store.append(make_batch(b"3", minutes("td-link:1", 10, 11)))
        _assert_mirror_is_table(store)


def test_entities_passed_again_as_the_same_objects_are_not_serialised(tmp_path: Path) -> None:
    with DuckDBStore(str(tmp_path / "i.duckdb")) as store:
        assert store.upsert_entities(LINKS) == 2
        assert store._state.entities[LINKS[0].id][0] is LINKS[0]
        equal = replace(LINKS[0])  # another object, same row: not written, remembered
        assert equal is not LINKS[0]
        assert store.upsert_entities([equal]) == 0
        assert store._state.entities[LINKS[0].id][0] is equal
        assert store.upsert_entities([LINKS[0], LINKS[1]]) == 0
        renamed = replace(LINKS[1], name_en="Link two")
        assert store.upsert_entities([renamed]) == 1
        assert store.entity(renamed.id) == renamed


def test_a_payload_recorded_before_is_stored_with_its_record_kept(tmp_path: Path) -> None:
    """Appending bytes recorded earlier as quarantined takes the slow path of the payload
    claim: one record, now stored, with the archive path kept."""
    with DuckDBStore(str(tmp_path / "p.duckdb")) as store:
        batch = make_batch(b"q", minutes("td-link:1", 0, 3), feed_id="td-speedmap")
        store.record_payload(
            PayloadRecord(
                batch.payload_sha256, "td-speedmap", T0, "quarantined", "old", "/a/q.xml", 0
            )
        )
        assert store.append(batch).observations_written == 3
        [record] = store.payloads()
        assert (record.status, record.reason, record.rows, record.archive_path) == (
            "stored",
            None,
            3,
            "/a/q.xml",
        )
        assert store.append(batch).duplicate
        _assert_mirror_is_table(store)


def test_the_two_row_classifiers_agree() -> None:
    """The comprehension classifier (one row per key) matches the general loop."""
    rng = random.Random(11)
    for _ in range(200):
        keys = [(f"e{i}", rng.choice(["a", "b"])) for i in rng.sample(range(50), 20)]
        keys = list(dict.fromkeys(keys))
        stamps = [rng.randrange(10) for _ in keys]
        known = {k: rng.randrange(10) for k in keys if rng.random() < 0.7}
        assert _classify_unique_keys(keys, stamps, known) == _classify(keys, stamps, known)


def test_row_roles_with_repeats() -> None:
    keys = [("a", "m"), ("a", "m"), ("a", "m"), ("a", "m"), ("b", "m"), ("c", "m")]
    stamps = [5, 7, 5, 3, 1, 2]
    known = {("a", "m"): 4, ("b", "m"): 1}
    ins, top = _classify(keys, stamps, known)
    # a@5 fresh, a@7 fresh (newest: updates latest), a@5 again dropped, a@3 stale;
    # b@1 equal to its latest: stale; c is a new key.
    assert ins == [1, 1, 0, 2, 2, 1]
    assert top == [0, 1, 0, 0, 0, 2]
