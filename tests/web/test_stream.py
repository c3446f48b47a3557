"""/api/v1/stream over a real uvicorn server: events arrive as they are published, heartbeats
keep idle connections alive, and a client that leaves drops its bus subscription."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.web.conftest import LiveServer, make_app, start_server, wait_for

from citypulse.store.bus import Message
from citypulse.store.duckdb import DuckDBStore
from citypulse.web.routes.stream import format_event, parse_topics


@pytest.fixture()
def live(tmp_path: Path) -> Iterator[LiveServer]:
    store = DuckDBStore(":memory:")
    app = make_app(store, tmp_path)
    app.state.sse_heartbeat_s = 0.2
    server = start_server(app)
    try:
        yield server
    finally:
        server.stop()
        store.close()


def read_until(lines: Iterator[str], wanted: str) -> list[str]:
    seen = []
    for line in lines:
        seen.append(line)
        if line.startswith(wanted):
            return seen
    raise AssertionError(f"stream ended before {wanted!r}: {seen}")


def test_events_heartbeats_and_disconnect(live: LiveServer) -> None:
    with httpx.Client(timeout=20) as http, http.stream(
        "GET", f"{live.url}/api/v1/stream", params={"topics": "traffic"}
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        lines = r.iter_lines()
        assert read_until(lines, "retry:")[-1] == "retry: 5000"
        assert wait_for(lambda: live.bus.subscriber_count == 1)
        read_until(lines, ": ping")
        live.bus.publish("weather", {"feed_id": "hko-rhrread"})  # not subscribed
        live.bus.publish("traffic", {"feed_id": "td-speedmap", "rows": 607, "名": "中文"})
        got = read_until(lines, "data:")
        assert got[-2:] == [
            "event: traffic",
            'data: {"feed_id":"td-speedmap","rows":607,"名":"中文"}',
        ]
    assert wait_for(lambda: live.bus.subscriber_count == 0), "subscription leaked"


def test_topic_parsing() -> None:
    assert parse_topics(None) is None
    assert parse_topics(" ") is None
    assert parse_topics("traffic, weather,traffic") == frozenset({"traffic", "weather"})
    with pytest.raises(Exception, match="invalid topic"):
        parse_topics("traffic,../x")


def test_event_format_is_one_line_of_json() -> None:
    wire = format_event(Message("traffic", {"text": "a\nb"}))
    assert wire == b'event: traffic\ndata: {"text":"a\\nb"}\n\n'
