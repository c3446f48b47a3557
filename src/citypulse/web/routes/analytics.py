"""Traffic analytics over HTTP: ``/api/v1/analytics/...`` (congestion, patterns, anomalies,
forecasts) and the ``/dashboards/traffic/analytics`` page.

Everything is computed by one shared :class:`~citypulse.analytics.engine.TrafficAnalytics`
(``app.state.analytics``; created on first use when ``serve`` did not set one up), so the
weeks of history behind the baselines and the model are read and fitted once, not per request.
The store is synchronous: endpoints are plain ``def`` functions run in FastAPI's thread pool.

The dashboard panel is a partial template (``analytics/_traffic_panel.html``) rendered from
:func:`panel_context`; other pages include it with ``{% include %}`` after merging that
context (everything sits under the ``analytics`` key).
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from citypulse.analytics import anomalies as anom
from citypulse.analytics.congestion import AreaCongestion, CongestionSnapshot, LinkCongestion
from citypulse.analytics.engine import TrafficAnalytics
from citypulse.analytics.forecast import LinkForecast
from citypulse.analytics.history import LINK_KIND
from citypulse.feeds.base import HKT
from citypulse.web.i18n import pick
from citypulse.web.routes.api import EventOut, get_store, json_response
from citypulse.web.templating import render, request_lang

api = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])
pages = APIRouter(include_in_schema=False)

_ENGINE_LOCK = threading.Lock()


def get_engine(request: Request) -> TrafficAnalytics:
    """The app's shared analytics engine (one per store)."""
    state = request.app.state
    engine: TrafficAnalytics | None = getattr(state, "analytics", None)
    if engine is None or engine.store is not get_store(request):
        with _ENGINE_LOCK:
            engine = getattr(state, "analytics", None)
            if engine is None or engine.store is not get_store(request):
                engine = TrafficAnalytics(get_store(request))
                state.analytics = engine
    return engine


# --- response models --------------------------------------------------------------------------


class AreaOut(BaseModel):
    level: Literal["city", "region", "district"]
    key: str = Field(examples=["K", "Wan Chai"])
    entity_id: str = Field(examples=["traffic-region:K", "traffic-district:wan-chai"])
    name_en: str
    name_zh: str
    index: float | None = Field(description="Length-weighted congestion index now, 0..1")
    links: int = Field(description="Links with a reading now")
    links_total: int
    length_km: float
    last_week_index: float | None = Field(description="Same time 7 days earlier")
    change: float | None = Field(description="index - last_week_index")


class LinkCongestionOut(BaseModel):
    entity_id: str = Field(examples=["td-link:3006-30069"])
    name_en: str
    name_zh: str
    near_en: str | None = Field(None, description="Road of the nearest TD detector (<600 m)")
    near_zh: str | None = None
    region: str | None
    district: str | None = Field(description="District of the nearest TD detector")
    road_type: str | None
    length_km: float
    free_flow_kmh: float
    free_flow_source: Literal["night", "history", "prior"] = Field(
        description="night: median 01-05 HKT; history: 90th percentile; prior: road type"
    )
    speed_kmh: float | None
    index: float | None = Field(description="1 - speed / free flow, clipped to 0..1")
    ts: datetime | None
    last_week_speed_kmh: float | None
    last_week_index: float | None
    change: float | None


class CongestionOut(BaseModel):
    at: datetime | None = Field(description="Newest 5-minute bin with data (UTC)")
    last_week_at: datetime | None
    definition: str
    city: AreaOut
    regions: list[AreaOut]
    districts: list[AreaOut]
    worst: list[LinkCongestionOut] = Field(description="Most congested links now")
    worse_than_last_week: list[LinkCongestionOut] = Field(
        description="Links whose index rose most against the same time last week"
    )
    free_flow_sources: dict[str, int]


class LinksCongestionOut(BaseModel):
    at: datetime | None
    links: list[LinkCongestionOut]


class HourlyOut(BaseModel):
    key: str
    name_en: str
    name_zh: str
    weekday: list[float | None] = Field(description="24 hourly means (HKT hours 0..23)")
    weekend: list[float | None]


class DailyPointOut(BaseModel):
    date: str = Field(description="Hong Kong date")
    mean: float | None
    peak_hour: int | None = Field(description="Busiest hour (HKT)")
    peak: float | None


class DailyOut(BaseModel):
    key: str
    name_en: str
    name_zh: str
    days: list[DailyPointOut]


class PatternsOut(BaseModel):
    group: Literal["city", "region", "district"]
    days: int
    hourly: list[HourlyOut]
    daily: list[DailyOut]


class ForecastPointOut(BaseModel):
    horizon_min: int = Field(examples=[15])
    target: datetime = Field(description="Start of the 5-minute bin forecast (UTC)")
    speed_kmh: float


class ForecastOut(BaseModel):
    entity_id: str
    status: Literal["ok", "insufficient-history", "no-recent-data"]
    detail: str | None = Field(None, description="Why there is no forecast")
    issued_at: datetime | None = Field(description="End of the origin bin (data time)")
    last_observed_kmh: float | None
    last_observed_at: datetime | None
    points: list[ForecastPointOut] = Field(description="Empty unless status is ok")


DEFINITION = (
    "congestion index = 1 - speed / free-flow speed, clipped to 0..1 (0 free-flowing, 1 "
    "standing); free flow learnt per link (median 01:00-05:00 HKT speed); areas: "
    "length-weighted mean of their links"
)


def area_out(a: AreaCongestion) -> dict[str, Any]:
    return asdict(a)


def snapshot_out(s: CongestionSnapshot | None, top: int) -> dict[str, Any]:
    if s is None:
        empty = AreaCongestion("city", "hk", "hk", "Hong Kong", "香港", None, 0, 0, 0.0, None, None)
        return {
            "at": None, "last_week_at": None, "definition": DEFINITION, "city": asdict(empty),
            "regions": [], "districts": [], "worst": [], "worse_than_last_week": [],
            "free_flow_sources": {},
        }
    return {
        "at": s.at,
        "last_week_at": s.last_week_at,
        "definition": DEFINITION,
        "city": asdict(s.city),
        "regions": [asdict(a) for a in s.regions],
        "districts": [asdict(a) for a in s.districts],
        "worst": [asdict(x) for x in s.worst(top)],
        "worse_than_last_week": [asdict(x) for x in s.worse_than_last_week(top)],
        "free_flow_sources": s.free_flow_sources,
    }


def forecast_out(f: LinkForecast) -> dict[str, Any]:
    return {
        "entity_id": f.entity_id,
        "status": f.reason or "ok",
        "detail": f.detail,
        "issued_at": f.issued_at,
        "last_observed_kmh": f.last_observed_kmh,
        "last_observed_at": f.last_observed_at,
        "points": [
            {"horizon_min": m, "target": t, "speed_kmh": v} for m, t, v in f.points
        ],
    }


# --- endpoints --------------------------------------------------------------------------------

TopQ = Annotated[int, Query(ge=1, le=100, description="How many links in the rankings")]


@api.get("/congestion", response_model=CongestionOut,
            summary="Congestion index now and at the same time last week, by area and link")
def congestion(request: Request, top: TopQ = 10) -> Response:
    return json_response(snapshot_out(get_engine(request).congestion(), top))


@api.get("/congestion/links", response_model=LinksCongestionOut,
            summary="Congestion index of every road link now and last week")
def congestion_links(request: Request) -> Response:
    snap = get_engine(request).congestion()
    links: list[LinkCongestion] = snap.links if snap is not None else []
    return json_response({"at": snap.at if snap else None, "links": [asdict(x) for x in links]})


@api.get("/congestion/patterns", response_model=PatternsOut,
            summary="Hourly (weekday/weekend) and daily congestion patterns")
def congestion_patterns(
    request: Request,
    days: Annotated[int, Query(ge=1, le=28, description="Days of history")] = 7,
    group: Annotated[Literal["city", "region", "district"], Query()] = "city",
) -> Response:
    hourly, daily = get_engine(request).patterns(days, group)
    return json_response(
        {
            "group": group,
            "days": days,
            "hourly": [asdict(h) for h in hourly],
            "daily": [asdict(d) for d in daily],
        }
    )


@api.get("/anomalies", response_model=list[EventOut],
            summary="Traffic anomalies (kind traffic-anomaly), newest first",
            description="Runs of unusually slow traffic on road links and at detectors, scored "
            "against each one's robust time-of-week baseline; properties carry score, "
            "observed_kmh, baseline_kmh, drop_pct and news_event_id when TD traffic news "
            "coincides.")
def anomalies(
    request: Request,
    hours: Annotated[float, Query(gt=0, le=24 * 7, description="Look-back window")] = 24,
    source: Annotated[Literal["all", "links", "detectors"], Query()] = "all",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Response:
    found = get_engine(request).anomalies(hours, detectors=source != "links")
    if source == "links":
        found = [a for a in found if a.entity_kind == LINK_KIND]
    elif source == "detectors":
        found = [a for a in found if a.entity_kind != LINK_KIND]
    return json_response([anom.to_event(a) for a in found[:limit]])


@api.get("/forecast", response_model=ForecastOut,
            summary="Speed forecast of one road link at 15, 30 and 60 minutes",
            description="With too little history (or no reading in the last 15 minutes) the "
            "status says so and points is empty: no numbers are invented.",
            responses={404: {"description": "Unknown entity"},
                       400: {"description": "Not a road link"}})
def forecast(
    request: Request,
    entity_id: Annotated[str, Query(min_length=1, max_length=200,
                                    examples=["td-link:3006-30069"])],
) -> Response:
    entity = get_store(request).entity(entity_id)
    if entity is None:
        raise HTTPException(404, f"unknown entity {entity_id!r}")
    if entity.kind != LINK_KIND:
        raise HTTPException(400, f"{entity_id!r} is a {entity.kind}, not a road link")
    return json_response(forecast_out(get_engine(request).forecast(entity_id)))


@api.get("/forecasts", response_model=list[ForecastOut],
            summary="Speed forecasts of every road link")
def forecasts(request: Request) -> Response:
    return json_response([forecast_out(f) for f in get_engine(request).forecasts()])


# --- dashboard panel --------------------------------------------------------------------------


def _hkt(ts: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return ts.astimezone(HKT).strftime(fmt) if ts is not None else ""


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:.0f}"


def _signed(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:+.0f}"


def panel_context(request: Request, selected: str | None = None) -> dict[str, Any]:
    """Everything ``analytics/_traffic_panel.html`` shows, under the key ``analytics``."""
    lang = request_lang(request)
    engine = get_engine(request)
    snap = engine.congestion()
    infos = engine.link_infos()

    def link_row(x: LinkCongestion) -> dict[str, Any]:
        return {
            "id": x.entity_id,
            "name": pick(lang, x.name_en, x.name_zh),
            "near": pick(lang, x.near_en, x.near_zh) if (x.near_en or x.near_zh) else "",
            "region": x.region or "",
            "district": x.district or "",
            "speed": "–" if x.speed_kmh is None else f"{x.speed_kmh:.0f}",
            "free_flow": f"{x.free_flow_kmh:.0f}",
            "index": _pct(x.index),
            "index_value": x.index or 0.0,
            "last_week": _pct(x.last_week_index),
            "change": _signed(x.change),
            "change_value": x.change or 0.0,
        }

    def area_row(a: AreaCongestion) -> dict[str, Any]:
        return {
            "key": a.key,
            "name": pick(lang, a.name_en, a.name_zh),
            "index": _pct(a.index),
            "index_value": a.index or 0.0,
            "last_week": _pct(a.last_week_index),
            "change": _signed(a.change),
            "change_value": a.change or 0.0,
            "links": a.links,
            "links_total": a.links_total,
        }

    found = engine.anomalies(24)
    anomaly_rows = [
        {
            "id": a.event_id,
            "start": _hkt(a.start, "%m-%d %H:%M"),
            "start_iso": a.start.isoformat(),
            "end": _hkt(a.end, "%H:%M") if a.end else "",
            "open": a.end is None,
            "name": pick(lang, a.name_en or a.entity_id, a.name_zh or a.name_en),
            "district": a.district or "",
            "observed": f"{a.observed_kmh:.0f}",
            "baseline": f"{a.baseline_kmh:.0f}",
            "drop": f"{a.drop_pct:.0f}",
            "score": f"{a.score:.1f}",
            "severity": a.severity,
            "news": pick(lang, a.news_title_en, a.news_title_zh) if a.news_event_ids else "",
            "news_id": a.news_event_ids[0] if a.news_event_ids else "",
            "detector": a.entity_kind != LINK_KIND,
        }
        for a in found[:20]
    ]
    worst = snap.worst(10) if snap else []
    choices = sorted(
        ((e, pick(lang, i.name_en, i.name_zh)) for e, i in infos.items()), key=lambda c: c[1]
    )
    if selected not in infos:
        selected = worst[0].entity_id if worst else (choices[0][0] if choices else None)
    fc = forecast_out(engine.forecast(selected)) if selected else None
    if fc is not None:
        fc["rows"] = [
            {"horizon": p["horizon_min"], "target": _hkt(p["target"], "%H:%M"),
             "speed": f"{p['speed_kmh']:.0f}"}
            for p in fc["points"]
        ]
        fc["last"] = "–" if fc["last_observed_kmh"] is None else f"{fc['last_observed_kmh']:.0f}"
        fc["last_at"] = _hkt(fc["last_observed_at"], "%H:%M")
        fc["detail_shown"] = fc["detail"] if lang == "en" else ""  # details are English
    return {
        "analytics": {
            "at": _hkt(snap.at) if snap else "",
            "at_iso": snap.at.isoformat() if snap and snap.at else "",
            "last_week_at": _hkt(snap.last_week_at) if snap else "",
            "has_data": bool(snap and snap.at),
            "city": area_row(snap.city) if snap else None,
            "regions": [area_row(a) for a in snap.regions] if snap else [],
            "districts": [area_row(a) for a in snap.districts] if snap else [],
            "worst": [link_row(x) for x in worst],
            "anomalies": anomaly_rows,
            "n_anomalies": len(found),
            "choices": choices,
            "selected": selected or "",
            "forecast": fc,
            "free_flow_sources": snap.free_flow_sources if snap else {},
        }
    }


@pages.get("/dashboards/traffic/analytics", response_class=HTMLResponse)
def analytics_page(
    request: Request,
    link: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    return render(request, "analytics/page.html", panel_context(request, link))


router = APIRouter()
router.include_router(api)
router.include_router(pages)
