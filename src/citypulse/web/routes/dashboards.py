"""``/dashboards`` and ``/dashboards/{id}``: every dashboard from its YAML definition, rendered by
one template; ``/dashboards/{id}/tiles/{tile}`` serves one tile's HTML for live updates and for
tiles that were still computing when the page was sent; ``/fragments/warnings`` is the weather
warning banner shown on every page.

Pages are ``async`` and read tiles from the per-app cache (:mod:`citypulse.web.dashboards.state`):
the store is only queried in worker threads when a tile's feeds have new data, so a page costs
well under a millisecond of the event loop once its tiles are cached.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from citypulse.model import Event
from citypulse.web.dashboards import (
    Dashboard,
    dashboards,
    get_dashboard,
    public_dashboards,
)
from citypulse.web.dashboards.bands import stylesheet
from citypulse.web.dashboards.custom import VEHICLE_NAMES
from citypulse.web.dashboards.districts import BY_ID, DISTRICTS, REGIONS
from citypulse.web.dashboards.engine import VEHICLES, ParamError, parse_params
from citypulse.web.dashboards.render import hkt, iso
from citypulse.web.dashboards.results import TileParams
from citypulse.web.dashboards.state import TileResult, dashboard_state, warnings_marker
from citypulse.web.i18n import gettext, localized_path
from citypulse.web.templating import TEMPLATES_DIR, env, render, request_lang

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

PAGE_BUDGET_S = 1.5
"""How long a page waits for any one tile before sending it as 'loading' (fetched afterwards).
``app.state.dashboard_page_budget_s`` overrides it (tests). Tiles with their own script
(self-updating) are always waited for: their script needs them in the page."""
FRAGMENT_BUDGET_S = 20.0

# Validate the shipped definitions when the app is built: a broken YAML file stops start-up
# with a message naming it, instead of a dashboard that fails on first view.
dashboards()


# --- the warning banner on every page -------------------------------------------------------


def weather_warnings(request: Request) -> list[Event]:
    """Active weather warnings for base.html (cached a few seconds; never fails a page)."""
    try:
        return dashboard_state(request.app).active_warnings()
    except Exception:  # a stub app without a store, a store without events...
        log.debug("weather warnings unavailable", exc_info=True)
        return []


env.globals["weather_warnings"] = weather_warnings
env.globals["hkt_time"] = hkt
env.globals["iso_time"] = iso


@router.get("/fragments/warnings", response_class=HTMLResponse)
async def warnings_fragment(request: Request) -> Response:
    """The banner's inner HTML (empty when nothing is in force), cached per language and
    warning state."""
    marker = warnings_marker(request.app)
    key = (request_lang(request), marker)
    cache: dict[Any, bytes] = getattr(request.app.state, "warnings_fragments", None) or {}
    request.app.state.warnings_fragments = cache
    body = cache.get(key)
    if body is None:
        body = bytes(render(request, "_warnings.html", {"fragment": True}).body)
        if len(cache) > 32:
            cache.clear()
        cache[key] = body
    return HTMLResponse(body, headers={"Cache-Control": "no-cache"})


# --- pages ----------------------------------------------------------------------------------


def bad_request(request: Request, message: str, back: str) -> HTMLResponse:
    return render(request, "dashboards/bad_request.html",
                  {"message": message, "back": back}, status_code=400)


def not_found(request: Request, what: str) -> HTMLResponse:
    return render(request, "dashboards/not_found.html",
                  {"what": what, "dashboards": public_dashboards(), "districts": DISTRICTS},
                  status_code=404)


def placeholder(request: Request, dash: Dashboard, tile_id: str, fragment_url: str) -> Markup:
    tile = dash.tile(tile_id)
    assert tile is not None
    lang = request_lang(request)
    return Markup(env.get_template("dashboards/_pending.html").render(
        tile=tile, lang=lang, fragment_url=fragment_url,
        _=lambda s: gettext(lang, s),
    ))


def tile_html(result: TileResult, lang: str) -> Markup:
    return Markup(result.html.get(lang) or result.html.get("en", ""))


@dataclass(slots=True)
class _Page:
    results: tuple[TileResult | None, ...]
    warnings: tuple[tuple[str, str], ...]
    body: bytes
    gz: bytes


PAGE_CACHE_MAX = 128


def _page_response(request: Request, page: _Page) -> Response:
    headers = {"Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"  # the GZip middleware passes it through
        return HTMLResponse(page.gz, headers=headers)
    return HTMLResponse(page.body, headers=headers)


async def render_dashboard(
    request: Request,
    dash: Dashboard,
    params: TileParams,
    base_path: str,
    extra: dict[str, Any] | None = None,
) -> Response:
    """The page from its tiles' cached results. The whole page (and its gzip) is cached too,
    keyed by the very tile results it was made of and the warnings shown, so it is rebuilt
    exactly when a tile or the warning banner changed."""
    state = dashboard_state(request.app)
    lang = request_lang(request)
    budget = float(getattr(request.app.state, "dashboard_page_budget_s", PAGE_BUDGET_S))
    current = [state.cached(dash, t, params, lang) for t in dash.tiles]
    if all(r is not None for r in current):
        results: tuple[TileResult | None, ...] = tuple(current)
    else:
        results = tuple(await asyncio.gather(
            *(state.tile(dash, t, params,
                         FRAGMENT_BUDGET_S if t.view.self_updating else budget, lang,
                         stale_ok=True)
              for t in dash.tiles)
        ))
    pages: dict[tuple[str, str, str], _Page] = getattr(request.app.state, "dashboard_pages",
                                                       None) or {}
    request.app.state.dashboard_pages = pages
    page_key = (str(request.url.path), str(request.url.query), lang)
    marker = warnings_marker(request.app)
    cached = pages.get(page_key)
    if (cached is not None and cached.warnings == marker
            and all(a is b for a, b in zip(cached.results, results, strict=True))):
        return _page_response(request, cached)
    query = params.query_string()
    tiles: list[dict[str, Any]] = []
    has: set[str] = set()
    for t, result in zip(dash.tiles, results, strict=True):
        fragment = localized_path(f"{base_path}/tiles/{t.id}", lang) + (f"?{query}" if query
                                                                        else "")
        if result is None:
            tiles.append({"id": t.id, "html": placeholder(request, dash, t.id, fragment)})
            has.add(t.view.type)
            continue
        if t.optional and result.data.empty:
            continue
        tiles.append({"id": t.id, "html": tile_html(result, lang)})
        has.add(t.view.type)
    topics = dash.topics()
    config = {
        "id": dash.id,
        "fragment": localized_path(f"{base_path}/tiles/", lang),
        "query": query,
        "tiles": {t.id: {"feeds": list(t.feeds), "topics": list(t.topics),
                         "self": t.view.self_updating} for t in dash.tiles},
        "topics": list(topics),
    }
    ctx: dict[str, Any] = {
        "dash": dash,
        "tiles": tiles,
        "params": params,
        "config": config,
        "live_topics": ",".join(dict.fromkeys([*topics, "warnings"])),
        "needs_map": bool(has & {"map", "choropleth", "clusters", "custom"}),
        "needs_chart": bool(has & {"chart", "custom"}),
        "needs_clusters": "clusters" in has,
        "districts": DISTRICTS,
        "regions": REGIONS,
        "vehicles": VEHICLES,
        "vehicle_names": VEHICLE_NAMES,
        "base_path": base_path,
        "public_dashboards": public_dashboards(),
    }
    ctx.update(extra or {})
    response = render(request, page_template(dash.id), ctx)
    if all(r is not None for r in results):  # pages with a tile still loading are not kept
        body = bytes(response.body)
        if len(pages) >= PAGE_CACHE_MAX:
            pages.pop(next(iter(pages)))
        pages[page_key] = _Page(results, marker, body, gzip.compress(body, compresslevel=6))
        return _page_response(request, pages[page_key])
    return response


def page_template(dashboard_id: str) -> str:
    """``dashboards/{id}.html`` when a dashboard has a page template of its own."""
    name = f"dashboards/{dashboard_id}.html"
    return name if (TEMPLATES_DIR / name).is_file() else "dashboards/dashboard.html"


_BANDS_CSS = stylesheet()


@router.get("/assets/bands.css")
def bands_css() -> Response:
    """The band colour classes (generated from the band definitions, so never out of step)."""
    return Response(_BANDS_CSS, media_type="text/css",
                    headers={"Cache-Control": "public, max-age=3600"})


@router.get("/dashboards", response_class=HTMLResponse)
async def dashboards_index(request: Request) -> HTMLResponse:
    return render(request, "dashboards/index.html",
                  {"dashboards": public_dashboards(), "districts": DISTRICTS,
                   "regions": REGIONS})


@router.get("/dashboards/{dashboard_id}", response_class=HTMLResponse)
async def dashboard_page(request: Request, dashboard_id: str) -> Response:
    dash = get_dashboard(dashboard_id)
    if dash is None or not dash.nav:
        return not_found(request, f"/dashboards/{dashboard_id}")
    try:
        params = parse_params(request.query_params, dash.params)
    except ParamError as exc:
        return bad_request(request, str(exc), f"/dashboards/{dash.id}")
    return await render_dashboard(request, dash, params, f"/dashboards/{dash.id}")


async def fragment(request: Request, dash: Dashboard, tile_id: str, params: TileParams
                   ) -> Response:
    tile = dash.tile(tile_id)
    if tile is None:
        return Response(f"unknown tile {tile_id!r}", status_code=404, media_type="text/plain")
    lang = request_lang(request)
    result = await dashboard_state(request.app).tile(dash, tile, params, FRAGMENT_BUDGET_S, lang)
    if result is None:
        return Response("still computing", status_code=503, media_type="text/plain",
                        headers={"Retry-After": "2"})
    return HTMLResponse(tile_html(result, lang),
                        headers={"Cache-Control": "no-store"})


@router.get("/dashboards/{dashboard_id}/tiles/{tile_id}", response_class=HTMLResponse)
async def dashboard_tile(request: Request, dashboard_id: str, tile_id: str) -> Response:
    dash = get_dashboard(dashboard_id)
    if dash is None or not dash.nav:
        return Response(f"unknown dashboard {dashboard_id!r}", status_code=404,
                        media_type="text/plain")
    try:
        params = parse_params(request.query_params, dash.params)
    except ParamError as exc:
        return Response(str(exc), status_code=400, media_type="text/plain")
    return await fragment(request, dash, tile_id, params)


def district_choices() -> list[tuple[str, str, str]]:
    return [(d.id, d.name_en, d.name_zh) for d in DISTRICTS]


__all__ = ["BY_ID", "render_dashboard", "router"]
