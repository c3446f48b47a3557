"""``/districts`` and ``/districts/{id}``: everything about one of the 18 districts on one page.

The district page is the ``district`` dashboard definition (``dashboards/district.yaml``) with the
district applied to every tile's query. Ids are the store's (``sha_tin``); other spellings
(``Sha-Tin``, ``沙田``) redirect to the canonical URL, unknown ones get a 404 listing the districts.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from citypulse.web.dashboards import get_dashboard
from citypulse.web.dashboards.districts import BY_ID, DISTRICTS, REGIONS, district_id
from citypulse.web.dashboards.results import TileParams
from citypulse.web.i18n import localized_path
from citypulse.web.routes.dashboards import fragment, not_found, render_dashboard
from citypulse.web.templating import render, request_lang

router = APIRouter(include_in_schema=False)

DISTRICT_DASHBOARD = "district"


@router.get("/districts", response_class=HTMLResponse)
async def districts_index(request: Request) -> HTMLResponse:
    return render(request, "districts/index.html", {"districts": DISTRICTS, "regions": REGIONS})


def _canonical(request: Request, raw: str, suffix: str = "") -> Response | str:
    if raw in BY_ID:
        return raw
    did = district_id(raw.replace("-", " "))
    if did is None:
        return not_found(request, f"/districts/{raw}")
    target = localized_path(f"/districts/{did}{suffix}", request_lang(request))
    if request.url.query:
        target += f"?{request.url.query}"
    return RedirectResponse(target, status_code=301)


@router.get("/districts/{raw_id}", response_class=HTMLResponse)
async def district_page(request: Request, raw_id: str) -> Response:
    did = _canonical(request, raw_id)
    if not isinstance(did, str):
        return did
    dash = get_dashboard(DISTRICT_DASHBOARD)
    if dash is None:
        return not_found(request, f"/districts/{raw_id}")
    d = BY_ID[did]
    return await render_dashboard(
        request, dash, TileParams(district=did), f"/districts/{did}",
        {"district": d, "district_name": d.name_zh if request_lang(request).startswith("zh")
         else d.name_en},
    )


@router.get("/districts/{raw_id}/tiles/{tile_id}", response_class=HTMLResponse)
async def district_tile(request: Request, raw_id: str, tile_id: str) -> Response:
    did = _canonical(request, raw_id, f"/tiles/{tile_id}")
    if not isinstance(did, str):
        return did
    dash = get_dashboard(DISTRICT_DASHBOARD)
    if dash is None:
        return Response("no district dashboard", status_code=404, media_type="text/plain")
    return await fragment(request, dash, tile_id, TileParams(district=did))
