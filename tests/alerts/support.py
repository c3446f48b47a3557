"""Helpers for the alert tests: crafted batches, a settable clock, a real local webhook receiver
and a message collector for the bus."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from citypulse.model import Batch, Entity, Event, ObservationBuilder

T0 = datetime(2025, 8, 8, 2, 0, tzinfo=UTC)
_seq = iter(range(1_000_000))


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, at: datetime = T0) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **kw: float) -> datetime:
        self.at += timedelta(**kw)
        return self.at


def obs_batch(
    rows: Iterable[tuple[str, str, datetime, float | None]],
    *,
    entities: Iterable[Entity] = (),
    feed_id: str = "test-feed",
    events: Iterable[Event] = (),
    notes: Iterable[str] = (),
    fetched_at: datetime | None = None,
) -> Batch:
    builder = ObservationBuilder()
    rows = list(rows)
    for eid, metric, ts, value in rows:
        builder.add(eid, metric, ts, value)
    at = fetched_at or (max(r[2] for r in rows) if rows else T0)
    payload = f"{feed_id}:{next(_seq)}".encode()
    return Batch.build(
        feed_id, payload, at, entities=list(entities), observations=builder,
        events=list(events), notes=list(notes),
    )


def station(sid: str = "central") -> Entity:
    return Entity(f"epd-station:{sid}", "aqhi-station", f"{sid.title()} station", f"{sid}站",
                  district="Central and Western")


def link(lid: str, kind: str = "road-link") -> Entity:
    return Entity(f"td-link:{lid}", kind, f"Link {lid}", f"路段 {lid}")


def flood_sensor(device: str, level: float | None = None) -> Entity:
    props: dict[str, Any] = {"sensor_type": "flood", "village": "Tai O"}
    if level is not None:
        props["alert_level_cm"] = level
    return Entity(f"sensor:{device}", "sensor", f"{device} gauge", None, 22.25, 113.86,
                  "Islands", props)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class WebhookReceiver:
    """A real HTTP server on 127.0.0.1. ``statuses`` answers the first requests in order
    (then 200); ``hold`` makes every request wait until it is set (a hanging endpoint)."""

    statuses: list[int] = field(default_factory=list)
    hold: threading.Event | None = None
    received: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    started: int = 0

    def __post_init__(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with receiver.arrived:
                    receiver.started += 1
                    receiver.arrived.notify_all()
                if receiver.hold is not None:
                    receiver.hold.wait(30)
                with receiver.arrived:
                    receiver.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.arrived.notify_all()
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the client gave up (timeout, shutdown): nothing to answer
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, n: int, timeout: float = 20.0) -> list[Received]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= n, timeout)
            return list(self.received)

    def wait_started(self, n: int, timeout: float = 20.0) -> bool:
        """Wait until ``n`` requests reached the handler (answered or still held)."""
        with self.arrived:
            return self.arrived.wait_for(lambda: self.started >= n, timeout)

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()


def wait_until(predicate: Any, timeout: float = 20.0) -> bool:
    """Poll ``predicate`` until true (readiness, never a timing assertion)."""
    done = threading.Event()
    deadline = datetime.now(UTC) + timedelta(seconds=timeout)
    while datetime.now(UTC) < deadline:
        if predicate():
            return True
        done.wait(0.02)
    return bool(predicate())
