"""Fixtures for the web tests: a store filled from the real speed map captures, the app around
it, and a real uvicorn server on a free local port for SSE and browser tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from citypulse.config import Settings
from citypulse.feeds.registry import get_feed
from citypulse.store.bus import InProcessBus
from citypulse.store.duckdb import DuckDBStore
from citypulse.web.app import create_app

FETCHED_AT = datetime(2016, 10, 14, 11, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def speedmap_files(feeds_dir: Path) -> list[Path]:
    files = sorted((feeds_dir / "td-speedmap").glob("speedmap_*.xml"))
    if not files:
        pytest.skip("no td-speedmap captures in the shared data")
    return files


def fill(store: DuckDBStore, files: list[Path]) -> None:
    spec = get_feed("td-speedmap")
    for path in files:
        store.append(spec.parse(path.read_bytes(), FETCHED_AT))


def make_app(store: DuckDBStore, data_dir: Path, *, demo: bool = False) -> FastAPI:
    settings = Settings(demo=demo, data_dir=data_dir)
    return create_app(settings, store, InProcessBus())


@pytest.fixture(scope="module")
def loaded_store(
    speedmap_files: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DuckDBStore]:
    store = DuckDBStore(str(tmp_path_factory.mktemp("web") / "citypulse.duckdb"))
    fill(store, speedmap_files)
    yield store
    store.close()


@pytest.fixture(scope="module")
def client(
    loaded_store: DuckDBStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    with TestClient(make_app(loaded_store, tmp_path_factory.mktemp("data"))) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    app: FastAPI
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def bus(self) -> InProcessBus:
        bus: InProcessBus = self.app.state.bus
        return bus

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def start_server(app: FastAPI) -> LiveServer:
    """The real app under uvicorn in a background thread on a free 127.0.0.1 port."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    return LiveServer(app, f"http://127.0.0.1:{port}", server, thread)


def wait_for(predicate: object, timeout: float = 15.0, step: float = 0.05) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` (a bound on waiting, not a timing check)."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
