"""LeasedIngest: a unit runs only while its lease is held (fake leases, no server)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from citypulse.ingest.leased import LeasedIngest
from citypulse.ingest.scheduler import IngestSource


class FakeSource:
    def __init__(self, key: str, log: list[str]) -> None:
        self.key, self.log = key, log

    async def start(self) -> None:
        self.log.append(f"start {self.key}")

    async def stop(self) -> None:
        self.log.append(f"stop {self.key}")


class FakeLeases:
    """Leases another process may hold (``taken``); ``drop`` simulates a lost connection."""

    def __init__(self) -> None:
        self.held: set[str] = set()
        self.taken: set[str] = set()
        self.lost = False
        self.closed = False

    def acquire(self, keys: Iterable[str]) -> set[str]:
        got = {k for k in keys if k not in self.taken and k not in self.held}
        self.held |= got
        return got

    def check(self) -> set[str]:
        if not self.lost:
            return set()
        self.lost = False
        gone, self.held = self.held, set()
        return gone

    def release(self, key: str) -> None:
        self.held.discard(key)

    def close(self) -> None:
        self.closed = True


async def settle(runner: LeasedIngest, want: set[str]) -> None:
    for _ in range(200):
        if runner.owned == want:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"owned {runner.owned}, wanted {want}")


def units(log: list[str], *keys: str) -> dict[str, object]:
    def make(key: str) -> object:
        def factory() -> IngestSource:
            return FakeSource(key, log)

        return factory

    return {k: make(k) for k in keys}


async def test_units_follow_their_leases() -> None:
    log: list[str] = []
    leases = FakeLeases()
    leases.taken = {"b"}  # another ingester polls b
    runner = LeasedIngest(units(log, "a", "b"), leases, check_s=0.01)  # type: ignore[arg-type]
    await runner.start()
    await settle(runner, {"a"})
    leases.taken = set()  # the other ingester died: b is taken over
    await settle(runner, {"a", "b"})
    leases.lost = True  # database restarted: every lease gone...
    leases.taken = {"a"}  # ...and the other process got a first
    await settle(runner, {"b"})
    await runner.stop()
    assert log == ["start a", "start b", "stop a", "stop b", "start b", "stop b"]
    assert leases.closed


async def test_without_leases_everything_runs() -> None:
    log: list[str] = []
    runner = LeasedIngest(units(log, "a", "b"), None)  # type: ignore[arg-type]
    await runner.start()
    await settle(runner, {"a", "b"})
    await runner.stop()
    assert sorted(log) == ["start a", "start b", "stop a", "stop b"]
