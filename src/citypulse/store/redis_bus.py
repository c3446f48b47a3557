"""Live-update bus across processes: Redis pub/sub behind the in-process bus's interface.

In the scale-out deployment ingest runs in its own process and SSE clients are spread over N
web workers, so a message must cross processes. :class:`RedisBus` keeps the
:class:`~citypulse.store.bus.InProcessBus` interface (and is one, for the subscribers of its
own process):

* ``publish`` (called from ingest worker threads) never blocks and never raises: it puts the
  encoded message on a bounded queue that one background thread sends to Redis with
  ``PUBLISH`` (pipelined). While Redis is down the thread retries with back-off; messages that
  do not fit the queue, or whose send failed, are dropped and counted (``dropped``): live
  updates are summaries of data already stored, and the next one supersedes them.
* Each event loop that has subscribers runs one listener task with one pub/sub connection
  (``PSUBSCRIBE citypulse:*``) that hands every message to the local subscribers, so a web
  worker holds one Redis connection however many SSE clients it serves. The listener
  reconnects with back-off; pages and SSE connections keep working while Redis is down, and
  live updates resume when it returns.

Messages travel as ``citypulse:<topic>`` channels carrying the JSON of the message data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import orjson
import redis
import redis.asyncio as aioredis

from citypulse.store.bus import InProcessBus, Message, Subscription

__all__ = ["BusConnectionError", "RedisBus", "open_bus"]

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "citypulse:"
_SCHEMES = ("redis", "rediss", "unix")


class BusConnectionError(RuntimeError):
    """The bus URL is malformed or Redis cannot be reached at start-up."""


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return parts._replace(netloc=f"{user}:***@{hostport}").geturl()


class _Listener:
    """One pub/sub connection per event loop, feeding the bus's local subscribers."""

    def __init__(self, bus: RedisBus, loop: asyncio.AbstractEventLoop) -> None:
        self.bus = bus
        self.loop = loop
        self.users = 0
        self.ready = asyncio.Event()  # subscribed, or the first attempt failed
        self.connected = False
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.task is None or self.task.done():
            self.ready.clear()
            self.task = self.loop.create_task(self._run(), name="citypulse-redis-listener")

    async def stop(self) -> None:
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.connected = False

    async def _run(self) -> None:
        delay = 0.1
        while True:
            client = aioredis.Redis.from_url(
                self.bus.url,
                socket_connect_timeout=self.bus.connect_timeout,
                health_check_interval=15,
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(CHANNEL_PREFIX + "*")
                # The first message after PSUBSCRIBE is its confirmation: wait for it, so a
                # subscriber that saw ``ready`` receives everything published afterwards.
                while True:
                    confirm = await pubsub.get_message(
                        ignore_subscribe_messages=False, timeout=self.bus.connect_timeout
                    )
                    if confirm is None or confirm.get("type") == "psubscribe":
                        break
                self.connected = True
                self.ready.set()
                if self.bus.listener_failures:
                    log.info("Redis bus listener connected to %s", self.bus.display_url)
                delay = 0.1
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is None or message.get("type") != "pmessage":
                        continue
                    self._deliver(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected = False
                self.bus.listener_failures += 1
                self.ready.set()  # do not hold subscribers up while Redis is down
                log.warning(
                    "Redis bus listener lost %s (%s); retrying in %.1f s",
                    self.bus.display_url,
                    exc,
                    delay,
                )
            finally:
                self.connected = False
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _deliver(self, message: dict[str, Any]) -> None:
        channel = message.get("channel", b"")
        if isinstance(channel, bytes):
            channel = channel.decode("utf-8", "replace")
        topic = str(channel)[len(CHANNEL_PREFIX) :]
        try:
            data = orjson.loads(message.get("data", b"{}"))
        except orjson.JSONDecodeError:
            self.bus.bad_messages += 1
            return
        if not isinstance(data, dict) or not topic:
            self.bus.bad_messages += 1
            return
        self.bus.received += 1
        self.bus.deliver(topic, data)


class RedisBus(InProcessBus):
    """:class:`InProcessBus` whose ``publish`` goes through Redis to every process."""

    def __init__(
        self,
        url: str,
        *,
        queue_max: int = 1000,
        connect_timeout: float = 2.0,
        ready_timeout: float = 2.0,
    ) -> None:
        super().__init__()
        self.url = url
        self.display_url = redact(url)
        try:
            scheme = urlsplit(url).scheme
            redis.Redis.from_url(url).close()  # parses only; connects lazily
        except ValueError as exc:
            raise BusConnectionError(f"invalid Redis URL {self.display_url}: {exc}") from exc
        if scheme not in _SCHEMES:
            raise BusConnectionError(
                f"invalid Redis URL {self.display_url}: scheme must be one of "
                f"{', '.join(s + '://' for s in _SCHEMES)}"
            )
        self.connect_timeout = connect_timeout
        self.ready_timeout = ready_timeout
        self._out: queue.Queue[tuple[str, bytes] | None] = queue.Queue(maxsize=queue_max)
        self._pump: threading.Thread | None = None
        self._pump_lock = threading.Lock()
        self._closed = False
        self._listeners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Listener] = (
            weakref.WeakKeyDictionary()
        )
        # Counters for /status and tests.
        self.sent = 0
        self.dropped = 0
        self.send_failures = 0
        self.received = 0
        self.bad_messages = 0
        self.listener_failures = 0

    # -- start-up check --------------------------------------------------------------------

    def ping(self) -> None:
        """Raise :class:`BusConnectionError` unless Redis answers (used at start-up, so a
        wrong URL is reported at once; later outages are ridden out)."""
        client = redis.Redis.from_url(
            self.url, socket_connect_timeout=self.connect_timeout, socket_timeout=5
        )
        try:
            client.ping()
        except redis.RedisError as exc:
            raise BusConnectionError(
                f"cannot reach Redis at {self.display_url}: {exc}"
            ) from exc
        finally:
            client.close()

    # -- publishing ------------------------------------------------------------------------

    def publish(self, topic: str, data: dict[str, Any]) -> None:
        """Queue ``data`` for every process's subscribers of ``topic``; never blocks."""
        self.published += 1
        if self._closed:
            self.dropped += 1
            return
        try:
            body = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            log.exception("bus message on %s is not JSON-serialisable", topic)
            self.dropped += 1
            return
        try:
            self._out.put_nowait((CHANNEL_PREFIX + topic, body))
        except queue.Full:
            self.dropped += 1
            return
        if self._pump is None:
            self._start_pump()

    def _start_pump(self) -> None:
        with self._pump_lock:
            if self._pump is None and not self._closed:
                self._pump = threading.Thread(
                    target=self._send_loop, name="citypulse-redis-publisher", daemon=True
                )
                self._pump.start()

    def _send_loop(self) -> None:
        client: redis.Redis | None = None
        delay = 0.1
        stop = False
        while not stop:
            batch: list[tuple[str, bytes]] = []
            item = self._out.get()
            while item is not None:
                batch.append(item)
                if len(batch) >= 500:
                    break
                try:
                    item = self._out.get_nowait()
                except queue.Empty:
                    break
            if item is None:
                stop = True
                self._out.task_done()
            if batch:
                client, delay = self._send(client, batch, delay, stop)
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def _send(
        self, client: redis.Redis | None, batch: list[tuple[str, bytes]], delay: float, stop: bool
    ) -> tuple[redis.Redis | None, float]:
        """PUBLISH a batch in one round trip; on failure drop it and back off."""
        try:
            if client is None:
                client = redis.Redis.from_url(
                    self.url, socket_connect_timeout=self.connect_timeout, socket_timeout=5
                )
            pipe = client.pipeline(transaction=False)
            for channel, body in batch:
                pipe.publish(channel, body)
            pipe.execute()
            self.sent += len(batch)
            if delay > 0.1:
                log.info("Redis bus publishing to %s again", self.display_url)
            return client, 0.1
        except redis.RedisError as exc:
            self.send_failures += 1
            self.dropped += len(batch)
            log.warning(
                "Redis bus cannot publish to %s (%s): %d message(s) dropped",
                self.display_url,
                exc,
                len(batch),
            )
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
            if not stop:  # back off; what queues meanwhile is sent when Redis returns
                threading.Event().wait(delay)
            return None, min(delay * 2, 5.0)
        finally:
            for _ in batch:
                self._out.task_done()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued message was sent or dropped (tests, shutdown)."""
        waiter = threading.Event()
        for _ in range(max(1, int(timeout / 0.01))):
            if self._out.unfinished_tasks == 0:
                return True
            waiter.wait(0.01)
        return self._out.unfinished_tasks == 0

    # -- subscribing -----------------------------------------------------------------------

    def deliver(self, topic: str, data: dict[str, Any]) -> None:
        """Hand a message that came through Redis to this process's subscribers (on the
        listener's loop, which is theirs)."""
        message = Message(topic, data)
        with self._lock:
            subs = [s for s in self._subs if s.wants(topic)]
        for sub in subs:
            sub.offer(message)

    @property
    def connected(self) -> bool:
        """Whether the listener of the running loop holds its Redis subscription."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return any(listener.connected for listener in self._listeners.values())
        listener = self._listeners.get(loop)
        return listener is not None and listener.connected

    @asynccontextmanager
    async def subscribe(
        self, topics: frozenset[str] | None = None, maxsize: int = 100
    ) -> AsyncIterator[Subscription]:
        loop = asyncio.get_running_loop()
        listener = self._listeners.get(loop)
        if listener is None:
            listener = self._listeners[loop] = _Listener(self, loop)
        listener.users += 1
        listener.start()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(listener.ready.wait(), self.ready_timeout)
            async with InProcessBus.subscribe(self, topics, maxsize) as sub:
                yield sub
        finally:
            listener.users -= 1
            if listener.users == 0:
                await listener.stop()

    # -- shutdown --------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop this loop's listener and the publisher (sends what is queued first)."""
        loop = asyncio.get_running_loop()
        listener = self._listeners.pop(loop, None)
        if listener is not None:
            await listener.stop()
        await asyncio.to_thread(self.close)

    def close(self, timeout: float = 5.0) -> None:
        with self._pump_lock:
            if self._closed:
                return
            self._closed = True
            pump = self._pump
        if pump is not None:
            with contextlib.suppress(queue.Full):
                self._out.put(None, timeout=timeout)
            pump.join(timeout)


def open_bus(url: str | None) -> InProcessBus:
    """The bus for a URL: empty or ``memory`` -> in-process; ``redis://...`` -> Redis."""
    if not url or url == "memory":
        return InProcessBus()
    if url.startswith(tuple(s + "://" for s in _SCHEMES)):
        return RedisBus(url)
    raise BusConnectionError(
        f"unknown bus {redact(url)!r}: use redis://host:port/db (or leave it empty for the "
        "in-process bus of a single process)"
    )
