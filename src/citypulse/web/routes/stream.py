"""``/api/v1/stream``: live updates as Server-Sent Events.

One event per bus message: ``event:`` is the topic, ``data:`` the message as JSON. A comment line
every ``HEARTBEAT_S`` seconds keeps proxies from closing an idle connection and lets the server
notice a client that went away; the subscription is dropped as soon as the client disconnects.
SSE (not WebSockets) because updates flow one way and EventSource reconnects by itself.

Fan-out cost is per client per message, so the loop does as little as possible per client
(``benchmarks/bench_dashboards.py`` measures 1 000 and 10 000 clients): a message is encoded
once for all its subscribers, the heartbeat is one timer per app that pings every
subscription (not a timeout per wait), and disconnects are noticed by Starlette's own
disconnect listener (no ``is_disconnected()`` poll per message).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from citypulse.store.bus import Message, Subscription

router = APIRouter(prefix="/api/v1", tags=["live"])

HEARTBEAT_S = 15.0
RETRY_MS = 5000
"""Reconnection delay the browser uses after a dropped connection."""

_TOPIC_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MAX_TOPICS = 20


def parse_topics(text: str | None) -> frozenset[str] | None:
    """``traffic,weather`` -> {"traffic", "weather"}; None (or empty) means every topic."""
    if text is None or not text.strip():
        return None
    topics = {t.strip() for t in text.split(",") if t.strip()}
    bad = sorted(t for t in topics if not _TOPIC_RE.match(t))
    if bad:
        raise HTTPException(400, f"invalid topic name(s): {', '.join(bad)}")
    if len(topics) > MAX_TOPICS:
        raise HTTPException(400, f"at most {MAX_TOPICS} topics")
    return frozenset(topics)


def format_event(message: Message) -> bytes:
    data = orjson.dumps(message.data, option=orjson.OPT_NON_STR_KEYS)
    # orjson never emits raw newlines, so one data: line always holds the whole payload.
    return b"event: " + message.topic.encode() + b"\ndata: " + data + b"\n\n"


_ENCODED: dict[int, tuple[Message, bytes]] = {}
"""Recent messages' wire bytes by identity (the message is kept, so its id is not reused)."""


def encoded(message: Message) -> bytes:
    """``format_event`` once per message, however many clients receive it."""
    hit = _ENCODED.get(id(message))
    if hit is not None and hit[0] is message:
        return hit[1]
    wire = format_event(message)
    if len(_ENCODED) >= 64:
        _ENCODED.clear()
    _ENCODED[id(message)] = (message, wire)
    return wire


PING = Message("__ping__")
PING_BYTES = b": ping\n\n"


class Heartbeats:
    """One timer per app and event loop that offers a ping to every open stream."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.subs: set[Subscription] = set()
        self.task: asyncio.Task[None] | None = None

    def add(self, sub: Subscription) -> None:
        self.subs.add(sub)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    def discard(self, sub: Subscription) -> None:
        self.subs.discard(sub)

    async def _run(self) -> None:
        while self.subs:
            await asyncio.sleep(self.interval_s)
            for sub in list(self.subs):
                sub.offer(PING)


def heartbeats(app: Any, interval_s: float) -> Heartbeats:
    beats: Heartbeats | None = getattr(app.state, "sse_heartbeats", None)
    if beats is None or beats.interval_s != interval_s:
        beats = Heartbeats(interval_s)
        app.state.sse_heartbeats = beats
    return beats


async def event_stream(
    request: Request, topics: frozenset[str] | None, heartbeat_s: float
) -> AsyncIterator[bytes]:
    bus = request.app.state.bus
    beats = heartbeats(request.app, heartbeat_s)
    async with bus.subscribe(topics) as sub:
        beats.add(sub)
        try:
            # The first bytes flush the headers, so EventSource fires "open" at once.
            yield f"retry: {RETRY_MS}\n: connected\n\n".encode()
            while True:
                message = await sub.queue.get()
                # A client that left makes the next write fail; Starlette's disconnect
                # listener then ends this generator and the subscription with it.
                yield PING_BYTES if message is PING else encoded(message)
        finally:
            beats.discard(sub)


@router.get(
    "/stream",
    summary="Live updates (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "event: <topic>, data: <JSON summary>; ': ping' comments every 15 s",
        },
        400: {"description": "Invalid topic list"},
    },
)
async def stream(
    request: Request,
    topics: Annotated[
        str | None,
        Query(description="Comma-separated topics, e.g. traffic,weather; default: all"),
    ] = None,
) -> StreamingResponse:
    wanted = parse_topics(topics)
    heartbeat = float(getattr(request.app.state, "sse_heartbeat_s", HEARTBEAT_S))
    return StreamingResponse(
        event_stream(request, wanted, heartbeat),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
