"""Test-only helpers for ingest: a tiny JSON feed format and a real local HTTP server."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import orjson

from citypulse.feeds.base import FeedError, FeedSpec, parse_hk_time, parse_json
from citypulse.model import Batch, Entity, ObservationBuilder

# --- a test-only feed format ---------------------------------------------------------------
# {"time": "2024-01-01T12:00:00", "readings": {"a": 1.5, "b": 2}}  (time is HK local)


def parse_test_json(payload: bytes, fetched_at: datetime, feed_id: str = "test-json") -> Batch:
    doc = parse_json(payload)
    if not isinstance(doc, dict) or "time" not in doc or "readings" not in doc:
        raise FeedError("missing-field", "time and readings are required")
    ts = parse_hk_time(str(doc["time"]))
    readings = doc["readings"]
    if not isinstance(readings, dict):
        raise FeedError("bad-readings", "readings must be an object")
    obs = ObservationBuilder()
    entities = []
    for key, value in readings.items():
        eid = f"test:{key}"
        entities.append(Entity(eid, "test-sensor", name_en=key))
        obs.add(eid, "value_x", ts, float(value))
    return Batch.build(feed_id, payload, fetched_at, entities=entities, observations=obs)


def make_spec(
    feed_id: str = "test-json",
    *,
    url: str = "http://127.0.0.1:9/",
    interval_s: int = 60,
    parse: Callable[[bytes, datetime], Batch] | None = None,
    topics: tuple[str, ...] = ("test",),
    file_patterns: tuple[str, ...] = ("*.json",),
) -> FeedSpec:
    def default_parse(payload: bytes, fetched_at: datetime) -> Batch:
        return parse_test_json(payload, fetched_at, feed_id)

    return FeedSpec(
        id=feed_id,
        title_en="Test feed",
        title_zh="測試",
        url=url,
        interval_s=interval_s,
        parse=parse or default_parse,
        topics=topics,
        media_type="application/json",
        file_patterns=file_patterns,
    )


def payload(time: str = "2024-01-01T12:00:00", **readings: float) -> bytes:
    return orjson.dumps({"time": time, "readings": readings or {"a": 1.0, "b": 2.0}})


# --- a real HTTP server --------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Block this long before answering (released early when the server stops).
    delay_s: float = 0.0
    # Send no Content-Length: the client only learns the size by reading to the end.
    content_length: bool = True


Route = Callable[[dict[str, str]], Reply]
# Gets the request headers and the decoded query string (for APIs addressed by parameters).
QueryRoute = Callable[[dict[str, str], dict[str, str]], Reply]


class LocalServer:
    """A threading ``http.server`` on a free port of 127.0.0.1, routes set per test."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.query_routes: dict[str, QueryRoute] = {}
        # Full request targets (path?query), in arrival order.
        self.targets: list[str] = []
        self.hits: Counter[str] = Counter()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                headers = {k.lower(): v for k, v in self.headers.items()}
                with server._lock:
                    server.hits[path] += 1
                    server.requests.append((path, headers))
                    server.targets.append(self.path)
                route = server.routes.get(path)
                query_route = server.query_routes.get(path)
                if route is not None:
                    reply = route(headers)
                elif query_route is not None:
                    query = dict(parse_qsl(self.path.partition("?")[2], keep_blank_values=True))
                    reply = query_route(headers, query)
                else:
                    reply = Reply(404, b"not found")
                if reply.delay_s:
                    server.release.wait(reply.delay_s)
                try:
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    if reply.content_length:
                        self.send_header("Content-Length", str(len(reply.body)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    if reply.body and reply.status != 304:
                        self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
