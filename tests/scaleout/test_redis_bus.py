"""RedisBus: the in-process bus's interface across processes, and its behaviour while Redis
is down (publishing never blocks or raises; subscribers keep their streams; updates resume)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest

from citypulse.store.bus import InProcessBus, Message, Subscription
from citypulse.store.redis_bus import BusConnectionError, RedisBus, open_bus

from .conftest import RedisServer


async def next_message(sub: Subscription, timeout: float = 10.0) -> Message:
    return await asyncio.wait_for(sub.queue.get(), timeout)


async def drain(sub: Subscription, seconds: float) -> list[Message]:
    got: list[Message] = []
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        try:
            got.append(await asyncio.wait_for(sub.queue.get(), left))
        except TimeoutError:
            break
    return got


def test_open_bus_picks_the_implementation(redis_server_url: str) -> None:
    assert type(open_bus("")) is InProcessBus
    assert type(open_bus("memory")) is InProcessBus
    bus = open_bus(redis_server_url)
    assert isinstance(bus, RedisBus)
    bus.ping()
    bus.close()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:6379", "unknown bus"),
        ("redis://:s3cret@127.0.0.1:notaport/0", "invalid Redis URL"),
    ],
)
def test_bad_bus_urls(url: str, says: str) -> None:
    with pytest.raises(BusConnectionError, match=says) as info:
        open_bus(url)
    assert "s3cret" not in str(info.value)


def test_unreachable_redis_is_a_clear_start_up_error() -> None:
    bus = RedisBus("redis://:s3cret@127.0.0.1:1/0", connect_timeout=0.5)
    with pytest.raises(BusConnectionError, match=r"cannot reach Redis at redis://:\*\*\*@") as info:
        bus.ping()
    assert "s3cret" not in str(info.value)
    bus.close()


async def test_message_from_another_bus_reaches_subscribers(redis_server_url: str) -> None:
    """Two buses stand for two processes: ingest publishes from a worker thread, the web
    worker's SSE subscribers get it, filtered by topic."""
    ingest, web = RedisBus(redis_server_url), RedisBus(redis_server_url)
    try:
        async with web.subscribe(frozenset({"traffic"})) as traffic, web.subscribe() as every:
            assert web.connected
            thread = threading.Thread(
                target=lambda: (
                    ingest.publish("weather.now", {"t": 1}),
                    ingest.publish("traffic.speed", {"rows": 600, "feed_id": "td-speedmap"}),
                )
            )
            thread.start()
            thread.join()
            got = await next_message(traffic)
            assert got == Message("traffic.speed", {"rows": 600, "feed_id": "td-speedmap"})
            seen = {(await next_message(every)).topic for _ in range(2)}
            assert seen == {"weather.now", "traffic.speed"}
            assert await drain(traffic, 0.3) == []  # the weather message was filtered out
        assert ingest.flush()
        assert (ingest.sent, ingest.dropped) == (2, 0)
        assert web.subscriber_count == 0
    finally:
        await web.aclose()
        await ingest.aclose()


async def test_message_from_another_process(redis_server_url: str) -> None:
    web = RedisBus(redis_server_url)
    script = textwrap.dedent(
        f"""
        from citypulse.store.redis_bus import RedisBus
        bus = RedisBus({redis_server_url!r})
        for i in range(3):
            bus.publish("traffic.speed", {{"i": i}})
        bus.close()
        print(bus.sent)
        """
    )
    try:
        async with web.subscribe(frozenset({"traffic"})) as sub:
            out = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-c", script], capture_output=True, timeout=60
            )
            assert out.returncode == 0, out.stderr.decode()
            assert out.stdout.decode().strip() == "3"
            assert [(await next_message(sub)).data["i"] for _ in range(3)] == [0, 1, 2]
    finally:
        await web.aclose()


async def test_redis_down_then_back(own_redis: RedisServer) -> None:
    ingest = RedisBus(own_redis.url, connect_timeout=0.5)
    web = RedisBus(own_redis.url, connect_timeout=0.5, ready_timeout=1.0)
    try:
        async with web.subscribe() as sub:
            ingest.publish("traffic.speed", {"n": 1})
            assert (await next_message(sub)).data == {"n": 1}

            own_redis.stop()
            started = time.monotonic()
            for i in range(2000):  # far more than the queue holds: never blocks, never raises
                ingest.publish("traffic.speed", {"n": 100 + i})
            assert time.monotonic() - started < 2.0
            assert ingest.flush(30)
            assert ingest.dropped >= 1000  # queue overflow and failed sends, counted
            # A new subscriber while Redis is down still gets its stream at once.
            async with web.subscribe() as late:
                assert late.queue.empty()

            own_redis.start()
            received: list[dict[str, Any]] = []
            deadline = time.monotonic() + 30
            while not received and time.monotonic() < deadline:
                ingest.publish("traffic.speed", {"n": 2})
                received = [m.data for m in await drain(sub, 0.5)]
            assert {"n": 2} in received
            assert web.listener_failures >= 1
    finally:
        await web.aclose()
        await ingest.aclose()


def test_publish_after_close_is_counted_not_raised(redis_server_url: str) -> None:
    bus = RedisBus(redis_server_url)
    bus.close()
    bus.publish("x", {"a": 1})
    assert bus.dropped == 1
