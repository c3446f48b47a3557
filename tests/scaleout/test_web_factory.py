"""The web workers' app factory (``serve --workers N``) and pages while Redis is down."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from citypulse.config import Settings
from citypulse.store.bus import InProcessBus
from citypulse.store.duckdb import DuckDBStore
from citypulse.store.redis_bus import RedisBus
from citypulse.web.app import create_app
from citypulse.web.factory import create_app_from_env


def test_factory_reads_store_and_bus_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_store_url: str, redis_server_url: str
) -> None:
    monkeypatch.setenv("CITYPULSE_STORE", pg_store_url)
    monkeypatch.setenv("CITYPULSE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CITYPULSE_BUS", redis_server_url)
    app = create_app_from_env()
    try:
        assert type(app.state.store).__name__ == "PostgresStore"
        assert isinstance(app.state.bus, RedisBus)
        assert app.state.role == "web"
    finally:
        app.state.bus.close()
        app.state.store.close()
    monkeypatch.setenv("CITYPULSE_BUS", "")
    app = create_app_from_env()
    try:
        assert type(app.state.bus) is InProcessBus
    finally:
        app.state.store.close()


def test_factory_refuses_a_bad_bus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYPULSE_STORE", str(tmp_path / "s.duckdb"))
    monkeypatch.setenv("CITYPULSE_BUS", "amqp://nope")
    with pytest.raises(Exception, match="unknown bus"):
        create_app_from_env()
    # The store it opened first was closed again: the file can be opened by this process.
    DuckDBStore(str(tmp_path / "s.duckdb")).close()


async def test_pages_serve_while_redis_is_down(tmp_path: Path) -> None:
    store = DuckDBStore(str(tmp_path / "s.duckdb"))
    bus = RedisBus("redis://127.0.0.1:1/0", connect_timeout=0.2, ready_timeout=0.5)
    app = create_app(Settings(data_dir=tmp_path, store=str(tmp_path / "s.duckdb")), store, bus)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/api/v1/feeds")).status_code == 200
            assert (await client.get("/status")).status_code == 200
        bus.publish("traffic", {"rows": 1})  # never raises, never blocks
        async with bus.subscribe() as sub:  # a stream still opens (and waits for Redis)
            assert sub.queue.empty()
    finally:
        await bus.aclose()
        store.close()
