"""Ingest fixtures: a DuckDB store on a temp file, an archive, a bus, a pipeline and a real
HTTP server on 127.0.0.1 whose routes each test scripts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from citypulse.ingest.archive import RawArchive
from citypulse.ingest.pipeline import Pipeline
from citypulse.store.base import TimeSeriesStore
from citypulse.store.bus import InProcessBus

from .helpers import LocalServer

# --- store, archive, pipeline --------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TimeSeriesStore]:
    from citypulse.store.duckdb import DuckDBStore

    s = DuckDBStore(str(tmp_path / "test.duckdb"))
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def archive(tmp_path: Path) -> RawArchive:
    return RawArchive(tmp_path / "archive")


@pytest.fixture
def bus() -> InProcessBus:
    return InProcessBus()


@pytest.fixture
def pipeline(store: TimeSeriesStore, archive: RawArchive, bus: InProcessBus) -> Pipeline:
    return Pipeline(store, archive, bus)


@pytest.fixture
def http_server() -> Iterator[LocalServer]:
    server = LocalServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port
