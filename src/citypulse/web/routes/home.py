"""Portal pages about the Blueprint as a whole: the home page, one page per smart area or chapter,
and the progress overview (server-rendered SVG bars with a data table beside them)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from citypulse.blueprint.figures import headline_tiles
from citypulse.blueprint.live import LiveTile, live_tiles
from citypulse.blueprint.loader import shipped_blueprint
from citypulse.blueprint.progress import BAR_ORDER
from citypulse.blueprint.registry import AREAS, area_info
from citypulse.blueprint.service import HKT
from citypulse.blueprint.web import cached_page, error_page, get_portal, page
from citypulse.web.i18n import gettext
from citypulse.web.templating import request_lang

# Validate the shipped YAML when the app is built: a broken entry stops start-up with a message
# naming it (BlueprintDataError), instead of a portal that fails page by page.
shipped_blueprint()

router = APIRouter(include_in_schema=False)

VISION_EN = (
    "Embrace innovation and technology to build a world-famed Smart Hong Kong characterised by "
    "a strong economy and high quality of living"
)
VISION_SOURCE = "https://www.smartcity.gov.hk/vision-and-mission.html"


LIVE_TTL_S = 5.0


def _fresh_live(state: Any) -> list[LiveTile] | None:
    cached: tuple[float, list[LiveTile]] | None = getattr(state, "portal_live", None)
    if cached and time.monotonic() - cached[0] < LIVE_TTL_S:
        return cached[1]
    return None


async def _live(request: Request) -> list[LiveTile]:
    """Live tiles, recomputed at most every LIVE_TTL_S by one request at a time: feeds update
    every minute or more, and 200 visitors should not mean 600 store queries."""
    state = request.app.state
    lock: asyncio.Lock | None = getattr(state, "portal_live_lock", None)
    if lock is None:
        lock = state.portal_live_lock = asyncio.Lock()
    fresh = _fresh_live(state)
    if fresh is not None:
        return fresh
    async with lock:
        fresh = _fresh_live(state)
        if fresh is not None:
            return fresh
        tiles: list[LiveTile] = await run_in_threadpool(live_tiles, getattr(state, "store", None))
        state.portal_live = (time.monotonic(), tiles)
        return tiles


def _today() -> date:
    return datetime.now(HKT).date()


def _hkt(ts: datetime | None) -> str:
    if ts is None:
        return ""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(HKT).strftime("%Y-%m-%d %H:%M")


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    portal = get_portal(request)
    live = await _live(request)

    async def build() -> Response:
        return page(
            request,
            "portal/home.html",
            {
                "vision": VISION_EN,
                "vision_source": VISION_SOURCE,
                "tiles": headline_tiles(portal.data.figures),
                "figures": portal.data.figures,
                "live": live,
                "hkt": _hkt,
                "areas": [(info, portal.progress(info.id)) for info in AREAS],
                "overall": portal.progress(),
                "updates": portal.updates(8),
                "meta": portal.data.meta,
                "coverage_note": portal.data.coverage_note,
            },
        )

    return await cached_page(request, (repr(live), _today()), build)


@router.get("/areas/{area_id}", response_class=HTMLResponse)
async def area_page(request: Request, area_id: str) -> Response:
    info = area_info(area_id)
    lang = request_lang(request)
    if info is None:
        return error_page(
            request,
            404,
            "Page not found",
            gettext(lang, "There is no smart area or chapter with this id."),
        )
    portal = get_portal(request)

    async def build() -> Response:
        return page(
            request,
            "portal/area.html",
            {
                "area": info,
                "yaml_area": next(a for a in portal.data.areas if a.id == area_id),
                "items": [i for i in portal.initiatives() if i.area == area_id],
                "progress": portal.progress(area_id),
                "completeness": portal.data.completeness(area_id),
                "updates": portal.updates(6, area_id=area_id),
                "bar_order": BAR_ORDER,
            },
        )

    return await cached_page(request, _today(), build)


@router.get("/progress", response_class=HTMLResponse)
async def progress_page(request: Request) -> Response:
    portal = get_portal(request)

    async def build() -> Response:
        return page(
            request,
            "portal/progress.html",
            {
                "overall": portal.progress(),
                "rows": [(info, portal.progress(info.id)) for info in AREAS],
                "bar_order": BAR_ORDER,
                "coverage_note": portal.data.coverage_note,
                "meta": portal.data.meta,
            },
        )

    return await cached_page(request, None, build)
