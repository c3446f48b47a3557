"""PostgreSQL store under faults: bad URLs, a server killed mid-ingest, concurrent writers,
and the per-feed ingest leases."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import psycopg
import pytest
from tests.store.pg import pg_url, restart_postgres
from tests.store.test_store import LINKS, MINUTE, T0, make_batch, minutes

from citypulse.model import Batch
from citypulse.store import open_store
from citypulse.store.base import AppendResult
from citypulse.store.postgres import PostgresStore, StoreConnectionError, redact


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

        def batch(i: int) -> Batch:
            rows = minutes("td-link:1", i * 5, i * 5 + 5) + minutes("td-link:2", i * 5, i * 5 + 5)
            return make_batch(f"restart-{i}".encode(), rows, fetched_at=T0 + i * MINUTE)

        results: list[AppendResult] = []
        errors: list[BaseException] = []
        started, restarted = threading.Event(), threading.Event()
        after_restart = 30

        def ingest() -> None:
            # Append until well after the restart, whatever the machine's speed.
            try:
                stop_at = None
                i = 0
                while stop_at is None or i < stop_at:
                    results.append(store.append(batch(i)))
                    i += 1
                    if i == 20:
                        started.set()
                    if stop_at is None and restarted.is_set():
                        stop_at = i + after_restart
                    if i > 5000:
                        raise AssertionError("the server restart never finished")
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                started.set()

        worker = threading.Thread(target=ingest)
        worker.start()
        assert started.wait(120)
        restart_postgres("immediate")
        restarted.set()
        worker.join(180)
        assert not worker.is_alive()
        assert not errors, errors
        n_batches = len(results)
        assert store.reconnects >= 1
        acknowledged = sum(r.observations_written for r in results)
        # A batch whose commit landed just before the kill but whose reply was lost comes
        # back as a duplicate on retry: its rows are stored all the same.
        assert acknowledged + 10 * sum(r.duplicate for r in results) == n_batches * 10
        with psycopg.connect(pg_store_url) as conn:
            total, distinct = conn.execute(
                "SELECT count(*), count(DISTINCT (entity_id, metric, ts)) FROM observations"
            ).fetchone() or (0, 0)
        missing = [
            i for i, r in enumerate(results) if not r.duplicate and r.observations_written != 10
        ]
        assert (total, distinct, missing) == (n_batches * 10, n_batches * 10, [])
        assert reader.count_observations() == n_batches * 10
        # Replaying everything (an ingester restarting from its archive) changes nothing.
        again = [store.append(batch(i)) for i in range(n_batches)]
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
        # The server frees them when it has ended that backend: a takeover within seconds.
        deadline = time.monotonic() + 10
        taken: set[str] = set()
        while not taken and time.monotonic() < deadline:
            taken = second.acquire(["td-speedmap"])
            if not taken:
                time.sleep(0.05)
        assert taken == {"td-speedmap"}
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


def test_a_read_only_session_reads(pg_store_url: str) -> None:
    """Web workers may read from a streaming replica: with a current schema the store opens
    without writing, reads work, and a write fails at once with the server's reason."""
    with PostgresStore(pg_store_url) as store:
        store.append(make_batch(b"ro", minutes("td-link:1", 0, 3), entities=LINKS))
    read_only = pg_store_url.replace(
        "options=", "options=-c%20default_transaction_read_only%3Don%20"
    )
    assert read_only != pg_store_url
    with PostgresStore(read_only, reconnect_s=2) as replica:
        assert replica.count_observations() == 3
        assert [v.entity_id for v in replica.latest("speed_kmh")] == ["td-link:1"]
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            replica.append(make_batch(b"ro-2", minutes("td-link:1", 5, 6)))


def test_a_user_without_rights_gets_a_clear_error() -> None:
    base = pg_url()
    with psycopg.connect(base, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'cp_no_rights'").fetchone()
        if not found:
            conn.execute("CREATE ROLE cp_no_rights LOGIN")
    url = base.replace("postgresql://postgres@", "postgresql://cp_no_rights:pw@")
    with pytest.raises(StoreConnectionError, match="cannot set up the citypulse schema") as info:
        PostgresStore(url + "?options=-c%20search_path%3Dpublic")
    assert "permission denied" in str(info.value)
    assert ":***@" in str(info.value) and ":pw@" not in str(info.value)
