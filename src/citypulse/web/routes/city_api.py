"""Dashboard data in the JSON API (``/api/v1``): dashboard definitions and tile data, districts,
active weather warnings, Wi-Fi hotspot points for the clustered map and nearest car parks.

Everything here is read through the dashboard cache (:mod:`citypulse.web.dashboards.state`), so
the same answer serves the pages and API clients. Parameters are validated with 400s that say
what is accepted (district ids, ``minLon,minLat,maxLon,maxLat`` boxes, positions in Hong Kong).
"""

from __future__ import annotations

import gzip
import time
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from citypulse.web.dashboards import get_dashboard, public_dashboards
from citypulse.web.dashboards.custom import (
    NEAREST,
    _carpark_rows,
    nearest_rows,
    wifi_points,
)
from citypulse.web.dashboards.districts import BY_ID, DISTRICTS, REGIONS, district_id
from citypulse.web.dashboards.engine import (
    VEHICLES,
    ParamError,
    QueryContext,
    parse_bbox,
    parse_params,
)
from citypulse.web.dashboards.results import TileParams
from citypulse.web.dashboards.state import dashboard_state
from citypulse.web.routes.api import json_response

router = APIRouter(prefix="/api/v1", tags=["dashboards"])

JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
POINTS_TTL_S = 60.0
GZIP_MIN = 1024


class DistrictOut(BaseModel):
    id: str = Field(examples=["sha_tin"])
    name_en: str
    name_zh: str
    region: str = Field(examples=["new_territories"])
    region_en: str
    region_zh: str
    lat: float
    lon: float


class WifiPointsOut(BaseModel):
    """Columns, not objects: 30 000 venues in ~0.9 MB (~0.25 MB gzipped)."""

    count: int
    id: list[str]
    lat: list[float]
    lon: list[float]
    hotspots: list[int]
    updated: datetime | None = None


def _bad(exc: ParamError) -> HTTPException:
    return HTTPException(400, str(exc))


@router.get("/districts", response_model=list[DistrictOut], summary="The 18 districts")
def districts() -> Response:
    return json_response([
        {"id": d.id, "name_en": d.name_en, "name_zh": d.name_zh, "region": d.region,
         "region_en": REGIONS[d.region][0], "region_zh": REGIONS[d.region][1],
         "lat": d.lat, "lon": d.lon}
        for d in DISTRICTS
    ])


@router.get("/dashboards", summary="Dashboard definitions (tiles with their queries and views)")
def list_dashboards() -> Response:
    return json_response([
        {"id": d.id, "url": f"/dashboards/{d.id}", "title_en": d.title.en, "title_zh": d.title.zh,
         "params": list(d.params),
         "tiles": [{"id": t.id, "title_en": t.title.en, "title_zh": t.title.zh,
                    "feeds": list(t.feeds), "query": t.query.model_dump(mode="json"),
                    "view": t.view.type} for t in d.tiles]}
        for d in public_dashboards()
    ])


@router.get("/dashboards/{dashboard_id}/tiles/{tile_id}",
            summary="One tile's current data and state (as the dashboard shows it)",
            responses={400: {"description": "Bad parameter"}, 404: {"description": "Unknown"}})
async def tile_data(
    request: Request,
    dashboard_id: str,
    tile_id: str,
    district: Annotated[str | None, Query(description="District id, e.g. sha_tin")] = None,
    vehicle: Annotated[str | None, Query(description=", ".join(VEHICLES))] = None,
    start: Annotated[str | None, Query(description="Date, e.g. 2022-01-01")] = None,
    end: Annotated[str | None, Query(description="Date, e.g. 2022-03-31")] = None,
    lat: Annotated[str | None, Query()] = None,
    lon: Annotated[str | None, Query()] = None,
) -> Response:
    dash = get_dashboard(dashboard_id)
    tile = dash.tile(tile_id) if dash is not None else None
    if dash is None or tile is None:
        raise HTTPException(404, f"unknown dashboard tile {dashboard_id}/{tile_id}")
    allowed = ("district", *dash.params) if dash.id == "district" else dash.params
    try:
        params = parse_params(request.query_params, allowed)
    except ParamError as exc:
        raise _bad(exc) from None
    result = await dashboard_state(request.app).tile(dash, tile, params, 30.0)
    if result is None:
        raise HTTPException(503, "still computing; retry")
    body = {
        "dashboard": dash.id,
        "tile": tile.id,
        "state": result.status.state,
        "unavailable_since": result.status.since,
        "reason": result.status.reason,
        "computed_at": result.computed_at,
        "data": result.data,
    }
    return json_response(body)


@router.get("/warnings/active", summary="Weather warnings in force")
def active_warnings(request: Request) -> Response:
    return json_response(dashboard_state(request.app).active_warnings())


def _gzip_aware(request: Request, raw: bytes, packed: bytes | None) -> Response:
    headers = {"Cache-Control": "public, max-age=30", "Vary": "Accept-Encoding"}
    if packed is not None and "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(packed, media_type="application/json", headers=headers)
    return Response(raw, media_type="application/json", headers=headers)


@router.get("/wifi/points", response_model=WifiPointsOut,
            summary="Wi-Fi.HK venues with a position (compact columns for clustering)",
            responses={400: {"description": "Bad district or bbox"}})
async def wifi_points_api(
    request: Request,
    district: Annotated[str | None, Query(description="District id, e.g. sha_tin")] = None,
    bbox: Annotated[str | None, Query(description="minLon,minLat,maxLon,maxLat (WGS84)")] = None,
) -> Response:
    did = None
    if district:
        did = district_id(district)
        if did is None:
            raise HTTPException(400, f"unknown district {district!r}; use one of: "
                                     + ", ".join(BY_ID))
    box = None
    if bbox:
        try:
            box = parse_bbox(bbox)
        except ParamError as exc:
            raise _bad(exc) from None
    state = dashboard_state(request.app)
    key = ("wifi-points", did, box)
    gen = state.generations.snapshot(("wifi-hk",))
    cache: dict[Any, tuple[float, tuple[int, ...], bytes, bytes | None]] = getattr(
        request.app.state, "wifi_points_cache", None) or {}
    request.app.state.wifi_points_cache = cache
    hit = cache.get(key)
    if hit is not None and hit[1] == gen and time.monotonic() - hit[0] < POINTS_TTL_S:
        return _gzip_aware(request, hit[2], hit[3])

    def build() -> tuple[bytes, bytes | None]:
        entities = state.entities_of("wifi-hotspot")
        if did is not None:
            entities = [e for e in entities if district_id(e.district) == did]
        counts: dict[str, float] = {}
        updated = None
        for v in state.store.latest("hotspots", kind="wifi-hotspot"):
            if v.value is not None:
                counts[v.entity_id] = v.value
            updated = v.ts if updated is None or v.ts > updated else updated
        body = wifi_points(entities, counts, box)
        body["updated"] = updated
        raw = orjson.dumps(body, option=JSON_OPTIONS)
        packed = gzip.compress(raw, compresslevel=6) if len(raw) >= GZIP_MIN else None
        return raw, packed

    import anyio

    raw, packed = await anyio.to_thread.run_sync(build)
    cache[key] = (time.monotonic(), gen, raw, packed)
    if len(cache) > 64:
        cache.pop(next(iter(cache)))
    return _gzip_aware(request, raw, packed)


@router.get("/carparks/nearest", summary="Car parks nearest to a point, with their vacancy",
            responses={400: {"description": "Bad position or vehicle type"}})
def carparks_nearest(
    request: Request,
    lat: Annotated[str, Query(description="WGS84 latitude in Hong Kong")],
    lon: Annotated[str, Query(description="WGS84 longitude in Hong Kong")],
    vehicle: Annotated[str | None, Query(description=", ".join(VEHICLES))] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = NEAREST,
) -> Response:
    try:
        params = parse_params({"lat": lat, "lon": lon, "vehicle": vehicle or ""},
                              ("lat", "lon", "vehicle"))
    except ParamError as exc:
        raise _bad(exc) from None
    if params.lat is None or params.lon is None:  # empty lat= / lon= parse as "not given"
        raise HTTPException(400, "lat and lon are required")
    state = dashboard_state(request.app)
    from citypulse.model import now_utc

    ctx = QueryContext(state.store, now_utc(), TileParams(vehicle=params.vehicle),
                       state.entities_of)
    rows, _updated = _carpark_rows(ctx, district=False)
    out = []
    for r in nearest_rows(rows, params.lat, params.lon, limit):
        vac = r.values["vacancy"]
        out.append({"id": r.id, "name_en": r.name_en, "name_zh": r.name_zh,
                    "district": r.district, "lat": r.lat, "lon": r.lon,
                    "distance_m": round(r.values["distance_m"].value or 0),
                    "vacancy": vac.value, "vacancy_kind": vac.label, "ts": vac.ts})
    return json_response({"lat": params.lat, "lon": params.lon,
                          "vehicle": params.vehicle or "private_car", "carparks": out})
