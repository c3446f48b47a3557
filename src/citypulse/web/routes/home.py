"""Portal pages about the Blueprint as a whole: the home page, one page per smart area or chapter,
and the progress overview (server-rendered SVG bars with a data table beside them)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from citypulse.blueprint.figures import headline_tiles
from citypulse.blueprint.live import live_tiles
from citypulse.blueprint.loader import shipped_blueprint
from citypulse.blueprint.progress import BAR_ORDER
from citypulse.blueprint.registry import AREAS, area_info
from citypulse.blueprint.service import HKT
from citypulse.blueprint.web import error_page, get_portal, page
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


def _hkt(ts: datetime | None) -> str:
    if ts is None:
        return ""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(HKT).strftime("%Y-%m-%d %H:%M")


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    portal = get_portal(request)
    store = getattr(request.app.state, "store", None)
    live = await run_in_threadpool(live_tiles, store)
    areas = [(info, portal.progress(info.id)) for info in AREAS]
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
            "areas": areas,
            "overall": portal.progress(),
            "updates": portal.updates(8),
            "meta": portal.data.meta,
            "coverage_note": portal.data.coverage_note,
        },
    )


@router.get("/areas/{area_id}", response_class=HTMLResponse)
async def area_page(request: Request, area_id: str) -> Response:
    info = area_info(area_id)
    lang = request_lang(request)
    if info is None:
        return error_page(
            request, 404, "Page not found",
            gettext(lang, "There is no smart area or chapter with this id."),
        )  # fmt: skip
    portal = get_portal(request)
    yaml_area = next(a for a in portal.data.areas if a.id == area_id)
    items = [i for i in portal.initiatives() if i.area == area_id]
    return page(
        request,
        "portal/area.html",
        {
            "area": info,
            "yaml_area": yaml_area,
            "items": items,
            "progress": portal.progress(area_id),
            "completeness": portal.data.completeness(area_id),
            "updates": portal.updates(6, area_id=area_id),
            "bar_order": BAR_ORDER,
        },
    )


@router.get("/progress", response_class=HTMLResponse)
async def progress_page(request: Request) -> Response:
    portal = get_portal(request)
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
