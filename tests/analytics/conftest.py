"""Fixtures for the analytics tests: simulated speed-map history (the simulator's own model,
a subset of links, a few weeks at 2-minute steps) and stores filled with it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from citypulse.analytics.simulated import SimulatedHistory, simulate_history, to_batch
from citypulse.store.duckdb import DuckDBStore

END = datetime(2024, 6, 3, tzinfo=UTC)  # Monday 08:00 HKT


@pytest.fixture(scope="session")
def backtest_history() -> SimulatedHistory:
    """Three weeks, 20 links, random incidents: two weeks to train, one to test."""
    return simulate_history(days=21, links=20, seed=11, end=END)


@pytest.fixture(scope="module")
def sim_store(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DuckDBStore, SimulatedHistory]]:
    """A store holding 15 days of 16 links (enough for baselines and the model)."""
    history = simulate_history(days=15, links=16, seed=5, end=END)
    store = DuckDBStore(str(tmp_path_factory.mktemp("analytics") / "citypulse.duckdb"))
    store.append(to_batch(history))
    yield store, history
    store.close()


def short_store(path: Path, hours: float = 24.0) -> tuple[DuckDBStore, SimulatedHistory]:
    history = simulate_history(days=hours / 24, links=4, seed=3, end=END)
    store = DuckDBStore(str(path))
    store.append(to_batch(history))
    return store, history
