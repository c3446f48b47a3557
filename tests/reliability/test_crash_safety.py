"""Crash safety of ``citypulse ingest``: SIGKILL at random points, restart, and every payload
acknowledged as stored is in the store exactly once, complete, with ``latest`` in step
(see ``crash.py`` for what "acknowledged" means and what is checked).

The default run does a few kills on DuckDB; ``-m slow`` does many on DuckDB and PostgreSQL
(PostgreSQL needs ``CITYPULSE_TEST_PG_URL``, see ``scripts/services.sh``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from tests.ingest.helpers import LocalServer

from citypulse.store import open_store

from .crash import PayloadStream, run_rounds, verify

QUICK_FEEDS = ["td-speedmap", "td-traffic-news", "hko-rhrread"]
FULL_FEEDS = [*QUICK_FEEDS, "td-irn-speed", "td-detectors", "carpark-vacancy", "td-journey-time"]


@pytest.fixture
def server() -> Iterator[LocalServer]:
    s = LocalServer()
    s.start()
    try:
        yield s
    finally:
        s.stop()


def _store_url(backend: str, tmp_path: Path, stack: ExitStack) -> str:
    if backend == "postgres":
        from tests.store.pg import fresh_database

        return stack.enter_context(fresh_database())
    return str(tmp_path / "data" / "citypulse.duckdb")


def _crash_test(
    backend: str,
    tmp_path: Path,
    server: LocalServer,
    artifacts_dir: Path,
    *,
    rounds: int,
    feeds: list[str],
    seed: int,
) -> dict[str, int]:
    rng = random.Random(seed)
    stream = PayloadStream(feeds, seed=seed)
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    with ExitStack() as stack:
        url = _store_url(backend, tmp_path, stack)
        run = run_rounds(stream, server, tmp_path / "data", url, rounds, rng, log_dir)
        ended = [r for r in run.rounds if r.returncode != -9]
        assert not ended, f"ingest ended on its own {len(ended)} time(s): {ended[0]}"
        assert run.acked, "no payload was ever acknowledged:\n" + "\n".join(run.logs[-2:])
        store = open_store(url)
        try:
            figures = verify(store, stream, run)
        finally:
            store.close()
    figures["seed"] = seed
    out = artifacts_dir / f"crash-{backend}-{rounds}.json"
    out.write_text(json.dumps({"figures": figures, "rounds": [r.__dict__ for r in run.rounds]},
                              indent=1))
    print(backend, figures)
    return figures


def test_crash_quick_duckdb(tmp_path: Path, server: LocalServer, artifacts_dir: Path) -> None:
    figures = _crash_test(
        "duckdb", tmp_path, server, artifacts_dir, rounds=2, feeds=QUICK_FEEDS, seed=11
    )
    assert figures["acked_payloads"] >= 1


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_crash_many_kills(
    backend: str, tmp_path: Path, server: LocalServer, artifacts_dir: Path
) -> None:
    figures = _crash_test(
        backend, tmp_path, server, artifacts_dir, rounds=30, feeds=FULL_FEEDS, seed=2024
    )
    assert figures["kills"] == 30
