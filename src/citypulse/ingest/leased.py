"""Exactly one ingester per feed when several ``citypulse ingest`` processes share a store.

Each feed (or the whole simulator, in demo mode) is a *unit* with a lease key. A unit runs in
this process only while it holds the lease: with PostgreSQL a session advisory lock
(:class:`~citypulse.store.postgres.FeedLeases`), so two ingest processes never poll the same
feed, and a standby process takes a feed over within ``check_s`` seconds of its holder dying.
After a lost database connection every lease is gone: the units stop, and are started again
only if their lease is re-acquired (another process may have taken it first). Without leases
(the embedded DuckDB store has one process anyway) every unit simply runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from citypulse.ingest.scheduler import IngestSource

log = logging.getLogger(__name__)


class Leases(Protocol):
    held: set[str]

    def acquire(self, keys: Iterable[str]) -> set[str]: ...

    def check(self) -> set[str]: ...

    def release(self, key: str) -> None: ...

    def close(self) -> None: ...


class LeasedIngest:
    """Starts and stops ingest units as their leases come and go (an ``IngestSource``)."""

    def __init__(
        self,
        units: Mapping[str, Callable[[], IngestSource]],
        leases: Leases | None,
        *,
        check_s: float = 5.0,
    ) -> None:
        self.units = dict(units)
        self.leases = leases
        self.check_s = check_s
        self.running: dict[str, IngestSource] = {}
        self._task: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()  # set whenever the running set changes (tests, logs)

    @property
    def owned(self) -> set[str]:
        return set(self.running)

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="leased-ingest")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for key in list(self.running):
            await self._stop_unit(key)
        if self.leases is not None:
            await asyncio.to_thread(self.leases.close)

    async def _run(self) -> None:
        if self.leases is None:
            for key in self.units:
                await self._start_unit(key)
            return
        leases = self.leases
        while True:
            try:
                for key in sorted(await asyncio.to_thread(leases.check)):
                    log.warning("lease of %s lost (database connection); stopping it", key)
                    await self._stop_unit(key)
                wanted = [k for k in self.units if k not in leases.held]
                for key in sorted(await asyncio.to_thread(leases.acquire, wanted)):
                    log.info("lease of %s acquired: ingesting it in this process", key)
                    await self._start_unit(key)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep the lease loop alive whatever happens
                log.exception("lease check failed")
            await asyncio.sleep(self.check_s)

    async def _start_unit(self, key: str) -> None:
        if key in self.running:
            return
        source = self.units[key]()
        await source.start()
        self.running[key] = source
        self.changed.set()

    async def _stop_unit(self, key: str) -> None:
        source = self.running.pop(key, None)
        if source is not None:
            try:
                await source.stop()
            except Exception:
                log.exception("stopping ingest of %s failed", key)
            self.changed.set()
