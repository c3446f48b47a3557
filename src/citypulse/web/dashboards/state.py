"""Per-app dashboard state: the tile cache, its invalidation, and the cached lookups shared by
tiles (entities by kind, feed health, active weather warnings).

Why a cache: 200 visitors opening a dashboard must not mean 200 x 8 store queries; feeds change
at most every 30 s (most every few minutes). A tile result is reused until one of its feeds
publishes new data (the bus's ``publish`` is wrapped to count publications per feed: a bus
subscription would show up as a connected client) or it is :data:`MAX_AGE_S` old, so freshness
and feed-down states are re-judged regularly even without new data.

Why threads and a budget: the store is synchronous, so each tile is computed in a worker
thread, one computation per tile at a time (concurrent requests wait for the same result), and
a page waits at most ``budget`` seconds for a tile; a slower tile is rendered as "loading" and
fetched by the page afterwards, so one slow query never holds up the others.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio
from fastapi import FastAPI

from citypulse.model import Entity, Event, now_utc
from citypulse.store.base import FeedHealth, TimeSeriesStore
from citypulse.web.dashboards import Dashboard, Tile
from citypulse.web.dashboards.engine import QueryContext, active_events, run_query, tile_status
from citypulse.web.dashboards.results import TileData, TileParams, TileStatus

log = logging.getLogger(__name__)

MAX_AGE_S = 30.0
HEALTH_TTL_S = 2.0
ENTITY_TTL_S = 60.0
WARNINGS_TTL_S = 5.0
WARNING_FEEDS = ("hko-warnsum", "hko-warning-rss")
WARNING_KIND = "weather-warning"


@dataclass(slots=True)
class TileResult:
    dashboard: str
    tile: Tile
    params: TileParams
    data: TileData
    status: TileStatus
    computed_at: datetime
    html: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Entry:
    result: TileResult
    born: float
    generation: tuple[int, ...]


class Generations:
    """Publication counters per feed, per topic and in total, bumped from any thread."""

    def __init__(self) -> None:
        self.by_feed: defaultdict[str, int] = defaultdict(int)
        self.by_topic: defaultdict[str, int] = defaultdict(int)
        self.total = 0

    def bump(self, feed_id: str | None, topic: str | None = None) -> None:
        self.total += 1
        if feed_id:
            self.by_feed[feed_id] += 1
        if topic:
            self.by_topic[topic.split(".", 1)[0]] += 1

    def snapshot(self, feeds: tuple[str, ...], topics: tuple[str, ...] = ()
                 ) -> tuple[int, ...]:
        if not feeds and not topics:
            return (self.total,)
        return (*(self.by_feed[f] for f in feeds), *(self.by_topic[t] for t in topics))


Renderer = Callable[[TileResult, str], str]


class DashboardState:
    def __init__(self, store: TimeSeriesStore, renderer: Renderer, languages: tuple[str, ...]
                 ) -> None:
        self.store = store
        self.renderer = renderer
        self.languages = languages
        self.generations = Generations()
        self._entries: dict[tuple[Any, ...], _Entry] = {}
        self._inflight: dict[tuple[Any, ...], asyncio.Future[TileResult]] = {}
        self._lock = threading.Lock()
        self._entities: dict[str, tuple[float, int, list[Entity]]] = {}
        self._health: tuple[float, dict[str, FeedHealth]] | None = None
        self._warnings: tuple[float, tuple[int, ...], list[Event]] | None = None
        self.computed = 0

    # -- shared lookups (called from worker threads) ----------------------------------------

    def entities_of(self, kind: str) -> list[Entity]:
        now = time.monotonic()
        with self._lock:
            cached = self._entities.get(kind)
        if cached is not None and now - cached[0] < ENTITY_TTL_S and cached[2]:
            return cached[2]
        found = self.store.entities(kind)
        with self._lock:
            self._entities[kind] = (now, len(found), found)
        return found

    def health(self) -> dict[str, FeedHealth]:
        now = time.monotonic()
        cached = self._health
        if cached is not None and now - cached[0] < HEALTH_TTL_S:
            return cached[1]
        try:
            found = {h.feed_id: h for h in self.store.feed_health()}
        except Exception:
            log.exception("feed health unavailable")
            found = {}
        self._health = (now, found)
        return found

    def active_warnings(self) -> list[Event]:
        """Weather warnings in force, cached a few seconds and refreshed at once when a
        warning feed publishes."""
        now = time.monotonic()
        gen = self.generations.snapshot(WARNING_FEEDS)
        cached = self._warnings
        if cached is not None and cached[1] == gen and now - cached[0] < WARNINGS_TTL_S:
            return cached[2]
        ctx = QueryContext(self.store, now_utc(), TileParams(), self.entities_of)
        try:
            found = active_events(ctx, WARNING_KIND)
        except Exception:
            log.exception("active warnings unavailable")
            found = cached[2] if cached else []
        found.sort(key=lambda e: (e.severity, e.starts_at), reverse=True)
        self._warnings = (now, gen, found)
        return found

    # -- tiles --------------------------------------------------------------------------------

    def compute(self, dash: Dashboard, tile: Tile, params: TileParams,
                lang: str | None = None) -> TileResult:
        """Run one tile's query and render it in ``lang`` (default: every language); other
        languages are rendered on first use (blocking)."""
        now = now_utc()
        health = self.health()
        ctx = QueryContext(self.store, now, params, self.entities_of, health)
        try:
            data = run_query(tile, ctx)
            status = tile_status(tile, data, health, now)
        except Exception as exc:
            log.exception("tile %s/%s failed", dash.id, tile.id)
            data = TileData()
            status = TileStatus("error", reason=type(exc).__name__)
        result = TileResult(dash.id, tile, params, data, status, now)
        for code in ([lang] if lang else self.languages):
            result.html[code] = self.renderer(result, code)
        self.computed += 1
        return result

    async def html(self, result: TileResult, lang: str) -> str:
        """The tile's HTML in ``lang``, rendered (in a worker thread) on first use."""
        found = result.html.get(lang)
        if found is None:
            found = await anyio.to_thread.run_sync(self.renderer, result, lang)
            result.html[lang] = found
        return found

    def cached(self, dash: Dashboard, tile: Tile, params: TileParams,
               lang: str | None = None) -> TileResult | None:
        """The tile's result if it is valid and rendered in ``lang``, without waiting (the
        fast path of a page whose tiles are all current: no await, no task switch)."""
        entry = self._entries.get((dash.id, tile.id, params.key))
        if (entry is None or entry.generation != self.generations.snapshot(tile.feeds,
                                                                            tile.topics)
                or time.monotonic() - entry.born >= MAX_AGE_S
                or (lang is not None and lang not in entry.result.html)):
            return None
        return entry.result

    async def tile(self, dash: Dashboard, tile: Tile, params: TileParams, budget: float,
                   lang: str | None = None, *, stale_ok: bool = False) -> TileResult | None:
        """The tile's result: cached if still valid, else computed (one computation at a
        time per tile). Returns the previous result (or None) if the computation takes longer
        than ``budget`` seconds; it keeps running and fills the cache for the next request.
        ``stale_ok``: return an outdated result at once and refresh it in the background (page
        loads; the page's live updates then fetch the fresh tile)."""
        key = (dash.id, tile.id, params.key)
        gen = self.generations.snapshot(tile.feeds, tile.topics)
        entry = self._entries.get(key)
        if (entry is not None and entry.generation == gen
                and time.monotonic() - entry.born < MAX_AGE_S):
            if lang is not None and lang not in entry.result.html:
                await self.html(entry.result, lang)
            return entry.result
        if stale_ok and entry is not None:
            budget = 0.0 if lang is None or lang in entry.result.html else budget
        future = self._inflight.get(key)
        if future is None:
            born = time.monotonic()

            async def run() -> TileResult:
                try:
                    result = await anyio.to_thread.run_sync(self.compute, dash, tile, params,
                                                            lang)
                    self._entries[key] = _Entry(result, born, gen)
                    return result
                finally:
                    self._inflight.pop(key, None)

            future = asyncio.ensure_future(run())
            self._inflight[key] = future
        if budget <= 0 and entry is not None:
            return entry.result  # the refresh runs on; this request does not wait for it
        try:
            result = await asyncio.wait_for(asyncio.shield(future), budget)
        except TimeoutError:
            if entry is not None and lang is not None and lang not in entry.result.html:
                await self.html(entry.result, lang)
            return entry.result if entry is not None else None
        if lang is not None and lang not in result.html:
            await self.html(result, lang)
        return result

    def clear(self) -> None:
        self._entries.clear()
        with self._lock:
            self._entities.clear()
        self._health = None
        self._warnings = None


def dashboard_state(app: FastAPI) -> DashboardState:
    """The app's dashboard state, created on first use; wraps the bus's ``publish`` so every
    publication bumps its feed's generation before subscribers hear of it."""
    state: DashboardState | None = getattr(app.state, "dashboards", None)
    if state is not None:
        return state
    from citypulse.web.dashboards.render import render_tile
    from citypulse.web.i18n import LANGUAGES

    state = DashboardState(app.state.store, render_tile, tuple(LANGUAGES))
    app.state.dashboards = state
    bus = getattr(app.state, "bus", None)
    if bus is not None and not getattr(bus, "_citypulse_dashboards", False):
        publish = bus.publish
        generations = state.generations

        def publish_and_count(topic: str, data: dict[str, Any]) -> None:
            generations.bump(data.get("feed_id") if isinstance(data, dict) else None, topic)
            publish(topic, data)

        setattr(bus, "publish", publish_and_count)  # noqa: B010 (instance attribute, on purpose)
        setattr(bus, "_citypulse_dashboards", True)  # noqa: B010
    return state


def warnings_marker(app: FastAPI) -> tuple[tuple[str, str], ...]:
    """What the warning banner shows, as a hashable value: pages cached as whole HTML (the
    portal's page cache) add it to their cache key so the banner is never out of date."""
    try:
        active = dashboard_state(app).active_warnings()
    except Exception:
        return ()
    return tuple((e.id, e.ends_at.isoformat() if e.ends_at else "") for e in active)
