"""Storage engines behind one protocol (see ``base``)."""

from __future__ import annotations

from citypulse.store.base import TimeSeriesStore


def open_store(url: str) -> TimeSeriesStore:
    """Open a store by URL: ``postgresql://...`` or a DuckDB file path (``:memory:`` works)."""
    if url.startswith(("postgresql://", "postgres://")):
        from citypulse.store.postgres import PostgresStore  # type: ignore[import-not-found,unused-ignore]

        store: TimeSeriesStore = PostgresStore(url)
        return store
    from citypulse.store.duckdb import DuckDBStore

    return DuckDBStore(url)
