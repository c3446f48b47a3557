"""Storage engines behind one protocol (see ``base``)."""

from __future__ import annotations

import importlib

from citypulse.store.base import TimeSeriesStore


def open_store(url: str) -> TimeSeriesStore:
    """Open a store by URL: ``postgresql://...`` or a DuckDB file path (``:memory:`` works)."""
    if url.startswith(("postgresql://", "postgres://")):
        try:
            module = importlib.import_module("citypulse.store.postgres")
        except ModuleNotFoundError as exc:
            raise ValueError("this citypulse build has no PostgreSQL store yet") from exc
        store: TimeSeriesStore = module.PostgresStore(url)
        return store
    from citypulse.store.duckdb import DuckDBStore

    return DuckDBStore(url)
