"""Live-update bus: ingest publishes a small summary per topic, SSE clients subscribe.

The in-process bus serves the embedded deployment (one process runs web + ingest). Publishing is
thread-safe because ingest appends run in worker threads while subscribers live on the event loop.
A slow subscriber drops its oldest messages instead of slowing ingest.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    data: dict[str, Any] = field(default_factory=dict)


class Subscription:
    def __init__(self, topics: frozenset[str] | None, maxsize: int) -> None:
        self.topics = topics
        self.queue: asyncio.Queue[Message] = asyncio.Queue(maxsize)
        self.loop = asyncio.get_running_loop()
        self.dropped = 0

    def wants(self, topic: str) -> bool:
        return self.topics is None or topic in self.topics or topic.split(".", 1)[0] in self.topics

    def offer(self, message: Message) -> None:
        """Runs on the subscriber's loop."""
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(message)

    async def __aiter__(self) -> AsyncIterator[Message]:
        while True:
            yield await self.queue.get()


class Bus(Protocol):
    def publish(self, topic: str, data: dict[str, Any]) -> None: ...

    def subscribe(
        self, topics: frozenset[str] | None = None, maxsize: int = 100
    ) -> Any:  # an async context manager yielding a Subscription
        ...


class InProcessBus:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()
        self.published = 0

    def publish(self, topic: str, data: dict[str, Any]) -> None:
        message = Message(topic, data)
        self.published += 1
        with self._lock:
            subs = [s for s in self._subs if s.wants(topic)]
        for sub in subs:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is sub.loop:
                sub.offer(message)
            elif not sub.loop.is_closed():
                sub.loop.call_soon_threadsafe(sub.offer, message)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    @asynccontextmanager
    async def subscribe(
        self, topics: frozenset[str] | None = None, maxsize: int = 100
    ) -> AsyncIterator[Subscription]:
        sub = Subscription(topics, maxsize)
        with self._lock:
            self._subs.add(sub)
        try:
            yield sub
        finally:
            with self._lock:
                self._subs.discard(sub)
