"""``/api/v1/stream``: live updates as Server-Sent Events.

One event per bus message: ``event:`` is the topic, ``data:`` the message as JSON. A comment line
every ``HEARTBEAT_S`` seconds keeps proxies from closing an idle connection and lets the server
notice a client that went away; the subscription is dropped as soon as the client disconnects.
SSE (not WebSockets) because updates flow one way and EventSource reconnects by itself.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from citypulse.store.bus import Message

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


async def event_stream(
    request: Request, topics: frozenset[str] | None, heartbeat_s: float
) -> AsyncIterator[bytes]:
    bus = request.app.state.bus
    async with bus.subscribe(topics) as sub:
        # The first bytes flush the headers, so EventSource fires "open" at once.
        yield f"retry: {RETRY_MS}\n: connected\n\n".encode()
        while True:
            message: Message | None = None
            with anyio.move_on_after(heartbeat_s):
                message = await sub.queue.get()
            if await request.is_disconnected():
                break
            yield format_event(message) if message is not None else b": ping\n\n"


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
