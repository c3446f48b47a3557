"""Store fixtures: every test in this folder runs once per backend.

Add an engine by extending ``_open`` and ``BACKENDS`` (e.g. "postgres", skipped unless a
test database URL is configured); the tests themselves only use the protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from citypulse.store.base import TimeSeriesStore

BACKENDS = ["duckdb"]

StoreFactory = Callable[[], TimeSeriesStore]


def _open(backend: str, tmp_path: Path) -> TimeSeriesStore:
    if backend == "duckdb":
        from citypulse.store.duckdb import DuckDBStore

        return DuckDBStore(str(tmp_path / "store.duckdb"))
    raise ValueError(f"unknown store backend {backend!r}")


@pytest.fixture(params=BACKENDS)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens a store on the same location each call (to test re-opening); all are closed at
    teardown."""
    opened: list[TimeSeriesStore] = []

    def factory() -> TimeSeriesStore:
        store = _open(str(request.param), tmp_path)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> TimeSeriesStore:
    return store_factory()
