"""PostgreSQL store under faults: bad URLs, a server killed mid-ingest, concurrent writers,
and the per-feed ingest leases."""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
import pytest

from citypulse.store import open_store
from citypulse.store.base import AppendResult
from citypulse.store.postgres import PostgresStore, StoreConnectionError, redact
from tests.store.pg import pg_url, restart_postgres
from tests.store.test_store import LINKS, MINUTE, T0, make_batch, minutes


def test_redact_hides_the_password() -> None:
    assert redact("postgresql://u:s3cret@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert redact("postgresql://u@db/x") == "postgresql://u@db/x"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://cp:s3cret@127.0.0.1:1/citypulse", "cannot connect to PostgreSQL"),
        ("postgresql://cp:s3cret@127.0.0.1:notaport/citypulse", "\"notaport\""),
        ("postgresql://cp:s3cret@127.0.0.1/db?sslmode=sometimes", "sslmode"),
        ("postgresql://cp:s3cret@127.0.0.1/db?pool_max=0", "pool_max"),
        ("postgresql://cp:s3cret@127.0.0.1/db?pool_max=lots", "invalid PostgreSQL URL"),
    ],
)
def test_bad_urls_fail_at_start_with_a_clear_message(url: str, says: str) -> None:
    with pytest.raises(StoreConnectionError) as info:
        open_store(url)
    message = str(info.value)
    assert says in message
    assert "s3cret" not in message
    if "cannot connect" in message:
        assert "127.0.0.1" in message


def test_unknown_database_on_a_live_server() -> None:
    base = pg_url()
    url = base.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(StoreConnectionError, match='database "no_such_database" does not exist'):
        PostgresStore(url)


def test_server_killed_mid_ingest_loses_nothing_acknowledged(pg_store_url: str) -> None:
    """The writer keeps appending while the server is killed (no checkpoint) and restarted:
    every append returns (it reconnects and retries the whole batch), every acknowledged
    row is there afterwards, and nothing is stored twice."""
    store = PostgresStore(pg_store_url, reconnect_s=60)
    reader = PostgresStore(pg_store_url, reconnect_s=60)
    try:
        store.upsert_entities(LINKS)
        n_batches = 120
        batches = [
            make_batch(
                f"restart-{i}".encode(),
                minutes("td-link:1", i * 5, i * 5 + 5) + minutes("td-link:2", i * 5, i * 5 + 5),
                fetched_at=T0 + i * MINUTE,
            )
            for i in range(n_batches)
        ]
        results: list[AppendResult] = []
        errors: list[BaseException] = []
        halfway = threading.Event()

        def ingest() -> None:
            try:
                for i, batch in enumerate(batches):
                    results.append(store.append(batch))
                    if i == n_batches // 3:
                        halfway.set()
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                halfway.set()

        worker = threading.Thread(target=ingest)
        worker.start()
        assert halfway.wait(120)
        restart_postgres("immediate")
        worker.join(180)
        assert not worker.is_alive()
        assert not errors, errors
        assert len(results) == n_batches
        assert store.reconnects >= 1
        acknowledged = sum(r.observations_written for r in results)
        # A batch whose commit landed just before the kill but whose reply was lost comes
        # back as a duplicate on retry: its rows are stored all the same.
        assert acknowledged + 10 * sum(r.duplicate for r in results) == n_batches * 10
        with psycopg.connect(pg_store_url) as conn:
            total, distinct = conn.execute(
                "SELECT count(*), count(DISTINCT (entity_id, metric, ts)) FROM observations"
            ).fetchone() or (0, 0)
            print("DEBUG", total, distinct, reader.count_observations(), [ (i, r) for i, r in enumerate(results) if r.duplicate or r.observations_written != 10])
            print(conn.execute("select ts, count(*) from observations group by 1 having count(*) <> 2 order by 1").fetchall()[:5])
            print(conn.execute("select min(ts), max(ts) from observations").fetchall())
        assert total == distinct == n_batches * 10
        assert reader.count_observations() == n_batches * 10
        # Replaying everything (an ingester restarting from its archive) changes nothing.
        again = [store.append(b) for b in batches]
        assert all(r.duplicate for r in again)
        assert reader.count_observations() == n_batches * 10
        [latest] = reader.latest("speed_kmh", entity_ids=["td-link:2"])
        assert latest.ts == T0 + (n_batches * 5 - 1) * MINUTE
        # Readers recovered too.
        points = reader.series(
            "td-link:1", "speed_kmh", T0, T0 + timedelta(days=1), timedelta(hours=1)
        )
        assert sum(p.n for p in points) == n_batches * 5
    finally:
        store.close()
        reader.close()


def test_same_payload_from_two_processes_is_stored_once(pg_store_url: str) -> None:
    a = PostgresStore(pg_store_url)
    b = PostgresStore(pg_store_url)
    try:
        batch = make_batch(b"twice", minutes("td-link:1", 0, 300), entities=LINKS)
        barrier = threading.Barrier(2)
        results: list[AppendResult] = []

        def run(store: PostgresStore) -> None:
            barrier.wait()
            results.append(store.append(batch))

        threads = [threading.Thread(target=run, args=(s,)) for s in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(r.duplicate for r in results) == [False, True]
        assert sum(r.observations_written for r in results) == 300
        assert a.count_observations() == 300
    finally:
        a.close()
        b.close()


def test_feed_leases_give_each_feed_one_holder(pg_store_url: str) -> None:
    a = PostgresStore(pg_store_url)
    b = PostgresStore(pg_store_url)
    first, second = a.feed_leases(), b.feed_leases()
    try:
        assert first.acquire(["td-speedmap", "hko-rhrread"]) == {"td-speedmap", "hko-rhrread"}
        assert second.acquire(["td-speedmap", "hko-rhrread", "epd-aqhi"]) == {"epd-aqhi"}
        assert first.acquire(["td-speedmap"]) == set()  # already held: nothing new
        first.release("hko-rhrread")
        assert second.acquire(["hko-rhrread"]) == {"hko-rhrread"}
        first.close()  # the process stops (or dies): its locks go with its connection
        assert second.acquire(["td-speedmap"]) == {"td-speedmap"}
        assert second.held == {"td-speedmap", "hko-rhrread", "epd-aqhi"}
        assert second.check() == set()
    finally:
        first.close()
        second.close()
        a.close()
        b.close()


def test_leases_are_reported_lost_after_a_server_restart(pg_store_url: str) -> None:
    store = PostgresStore(pg_store_url, reconnect_s=60)
    leases = store.feed_leases()
    try:
        assert leases.acquire(["td-speedmap"]) == {"td-speedmap"}
        restart_postgres("fast")
        assert leases.check() == {"td-speedmap"}
        assert leases.held == set()
        assert leases.acquire(["td-speedmap"]) == {"td-speedmap"}
        store.append(make_batch(b"after", minutes("td-link:1", 0, 3)))  # writer reconnects
        assert store.count_observations() == 3
    finally:
        leases.close()
        store.close()
