"""Store fixtures: every test in this folder runs once per backend.

Add an engine by extending ``_open`` and ``BACKENDS``; the tests themselves only use the
protocol. "postgres" runs each test in a fresh database on the throwaway server of
``scripts/services.sh`` and skips, with the reason, when ``CITYPULSE_TEST_PG_URL`` is unset
(see ``pg.py``; ``scripts/test.sh`` makes it mandatory).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from citypulse.store.base import TimeSeriesStore

BACKENDS = ["duckdb", "postgres"]

StoreFactory = Callable[[], TimeSeriesStore]


def _open(backend: str, tmp_path: Path, location: dict[str, str]) -> TimeSeriesStore:
    if backend == "duckdb":
        from citypulse.store.duckdb import DuckDBStore

        return DuckDBStore(str(tmp_path / "store.duckdb"))
    if backend == "postgres":
        from citypulse.store.postgres import PostgresStore

        return PostgresStore(location["postgres"], reconnect_s=5)
    raise ValueError(f"unknown store backend {backend!r}")


@pytest.fixture(params=BACKENDS)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens a store on the same location each call (to test re-opening); all are closed at
    teardown."""
    opened: list[TimeSeriesStore] = []
    location: dict[str, str] = {}
    with ExitStack() as stack:
        if request.param == "postgres":
            from .pg import fresh_database

            location["postgres"] = stack.enter_context(fresh_database())

        def factory() -> TimeSeriesStore:
            store = _open(str(request.param), tmp_path, location)
            opened.append(store)
            return store

        yield factory
        for store in opened:
            store.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> TimeSeriesStore:
    return store_factory()
