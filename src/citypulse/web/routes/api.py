"""The JSON API under ``/api/v1``: entities, latest values, series, aggregates, events, feed
health and the traffic link GeoJSON.

Bodies are encoded with orjson straight from the store's dataclasses (DESIGN: ~19x the
throughput of FastAPI's default encoder); the pydantic models below document the shapes in
OpenAPI and the tests validate every response against them. The store is synchronous, so the
endpoints are plain ``def`` functions that FastAPI runs in its thread pool.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from citypulse.feeds.base import FeedSpec
from citypulse.feeds.registry import all_feeds
from citypulse.model import Entity, now_utc
from citypulse.store.base import FeedHealth, TimeSeriesStore

router = APIRouter(prefix="/api/v1", tags=["data"])

# --- response models (OpenAPI documentation of what the endpoints return) -------------------


class EntityOut(BaseModel):
    id: str = Field(examples=["td-link:3006-30069"])
    kind: str = Field(examples=["road-link"])
    name_en: str | None = None
    name_zh: str | None = None
    lat: float | None = Field(None, description="WGS84 latitude")
    lon: float | None = Field(None, description="WGS84 longitude")
    district: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class LatestOut(BaseModel):
    entity_id: str
    metric: str = Field(examples=["speed_kmh"])
    ts: datetime = Field(description="Observation time, UTC")
    value: float | None
    label: str | None = Field(None, description="Categorical state, e.g. saturation level")


class SeriesPointOut(BaseModel):
    ts: datetime = Field(description="Bucket start, UTC, aligned to the epoch")
    avg: float | None
    min: float | None
    max: float | None
    n: int = Field(description="Raw observations in the bucket")


class SeriesOut(BaseModel):
    entity_id: str
    metric: str
    start: datetime
    end: datetime
    bucket: str = Field(examples=["5m"])
    bucket_s: int
    points: list[SeriesPointOut]


class AggregatePointOut(SeriesPointOut):
    entities: int = Field(description="Distinct entities in the bucket")


class AggregateOut(BaseModel):
    kind: str
    metric: str
    start: datetime
    end: datetime
    bucket: str
    bucket_s: int
    points: list[AggregatePointOut]


class EventOut(BaseModel):
    id: str
    kind: str
    severity: str
    starts_at: datetime
    ends_at: datetime | None = None
    title_en: str | None = None
    title_zh: str | None = None
    body_en: str | None = None
    body_zh: str | None = None
    entity_ids: list[str] = Field(default_factory=list)
    districts: list[str] = Field(default_factory=list)
    source: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


FeedStatusName = Literal["up", "down", "stale", "never"]


class FeedStatusOut(BaseModel):
    id: str
    title_en: str
    title_zh: str
    url: str | None
    interval_s: int | None
    topics: list[str]
    enabled: bool
    registered: bool = Field(description="False for health rows of a feed no longer registered")
    status: FeedStatusName
    last_attempt: datetime | None
    last_success: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    last_rows: int
    total_rows: int
    last_data_ts: datetime | None = Field(description="Newest observation time of the feed")
    data_lag_s: float | None = Field(description="Seconds between now and last_data_ts")


class LinkProperties(BaseModel):
    id: str
    name_en: str | None
    name_zh: str | None
    region: str | None
    road_type: str | None
    speed_kmh: float | None
    saturation: Literal["good", "average", "bad"] | None
    ts: datetime | None


class LineString(BaseModel):
    type: Literal["LineString"] = "LineString"
    coordinates: list[tuple[float, float]] = Field(description="[lon, lat] pairs")


class LinkFeature(BaseModel):
    type: Literal["Feature"] = "Feature"
    id: str
    geometry: LineString
    properties: LinkProperties


class LinkCollection(BaseModel):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    updated: datetime | None = Field(description="Newest observation time over all links")
    features: list[LinkFeature]


# --- helpers --------------------------------------------------------------------------------

JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def json_response(content: Any, media_type: str = "application/json") -> Response:
    """orjson-encoded response; dataclasses and aware datetimes are encoded natively."""
    return Response(orjson.dumps(content, option=JSON_OPTIONS), media_type=media_type)


def get_store(request: Request) -> TimeSeriesStore:
    store: TimeSeriesStore = request.app.state.store
    return store


_BUCKET_RE = re.compile(r"^(\d{1,5})(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_BUCKET_S = 60
MAX_BUCKET_S = 86400
MAX_BUCKETS = 10_000
MAX_RANGE = timedelta(days=400)
DEFAULT_RANGE = timedelta(hours=24)
AUTO_BUCKETS = ("1m", "5m", "15m", "1h", "6h", "1d")
AUTO_TARGET = 720
"""Automatic bucket: the smallest standard size that keeps a series under this many points."""


def parse_bucket(text: str) -> timedelta:
    """``30m`` -> 30 minutes; 1m..1d, else a 400 saying what is accepted."""
    m = _BUCKET_RE.match(text.strip())
    if m is None:
        raise HTTPException(
            400, f"bucket {text!r} is not a duration like 1m, 5m, 15m, 1h, 6h or 1d"
        )
    seconds = int(m[1]) * _UNIT_S[m[2]]
    if not MIN_BUCKET_S <= seconds <= MAX_BUCKET_S:
        raise HTTPException(400, f"bucket {text!r} is outside the accepted range 1m..1d")
    return timedelta(seconds=seconds)


def format_bucket(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _aware(name: str, value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise HTTPException(
            400,
            f"{name} must carry a timezone offset, e.g. 2024-06-19T12:00:00+08:00 or "
            "2024-06-19T04:00:00Z",
        )
    return value.astimezone(UTC)


def time_window(
    start: datetime | None,
    end: datetime | None,
    bucket: str | None,
    *,
    default_range: timedelta = DEFAULT_RANGE,
) -> tuple[datetime, datetime, timedelta]:
    """Validate a [start, end) window and its bucket; defaults: the last 24 h, an automatic
    bucket. Raises 400 with a message that says how to fix the request."""
    end_utc = _aware("end", end) or now_utc()
    start_utc = _aware("start", start) or (end_utc - default_range)
    if start_utc >= end_utc:
        raise HTTPException(400, "start must be before end")
    span = end_utc - start_utc
    if span > MAX_RANGE:
        raise HTTPException(400, f"range is {span.days} days; the limit is {MAX_RANGE.days} days")
    if bucket is None:
        size = parse_bucket(AUTO_BUCKETS[-1])
        for candidate in AUTO_BUCKETS:
            size = parse_bucket(candidate)
            if span / size <= AUTO_TARGET:
                break
    else:
        size = parse_bucket(bucket)
    n = math.ceil(span / size)
    if n > MAX_BUCKETS:
        raise HTTPException(
            400,
            f"{n} buckets of {format_bucket(size)} in this range; the limit is {MAX_BUCKETS}: "
            "use a larger bucket or a shorter range",
        )
    return start_utc, end_utc, size


def feed_status(
    spec: FeedSpec | None, health: FeedHealth | None, now: datetime
) -> FeedStatusName:
    """up: the last attempt succeeded recently; down: the last attempt failed; stale: no
    success for 3 poll intervals (at least 15 min); never: no attempt recorded."""
    if health is None or (health.last_attempt is None and health.last_success is None):
        return "never"
    if health.consecutive_failures > 0:
        return "down"
    if health.last_success is None:
        return "down" if health.last_error else "never"
    interval = spec.interval_s if spec is not None else 300
    stale_after = max(timedelta(seconds=3 * interval), timedelta(minutes=15))
    if now - health.last_success > stale_after:
        return "stale"
    return "up"


def feed_statuses(
    store: TimeSeriesStore,
    enabled: Iterable[str] = (),
    now: datetime | None = None,
) -> list[FeedStatusOut]:
    """Every registered feed merged with its health row (plus health rows of feeds no
    longer registered), in registry order."""
    now = now or now_utc()
    specs = all_feeds()
    health = {h.feed_id: h for h in store.feed_health()}
    wanted = set(enabled)
    out: list[FeedStatusOut] = []
    for feed_id in [*specs, *sorted(set(health) - set(specs))]:
        spec = specs.get(feed_id)
        h = health.get(feed_id)
        lag = (now - h.last_data_ts).total_seconds() if h and h.last_data_ts else None
        out.append(
            FeedStatusOut(
                id=feed_id,
                title_en=spec.title_en if spec else feed_id,
                title_zh=spec.title_zh if spec else feed_id,
                url=spec.url if spec else None,
                interval_s=spec.interval_s if spec else None,
                topics=list(spec.topics) if spec else [],
                enabled=(feed_id in wanted) if wanted else bool(spec and spec.enabled_by_default),
                registered=spec is not None,
                status=feed_status(spec, h, now),
                last_attempt=h.last_attempt if h else None,
                last_success=h.last_success if h else None,
                last_error=h.last_error if h else None,
                last_error_at=h.last_error_at if h else None,
                consecutive_failures=h.consecutive_failures if h else 0,
                last_rows=h.last_rows if h else 0,
                total_rows=h.total_rows if h else 0,
                last_data_ts=h.last_data_ts if h else None,
                data_lag_s=lag,
            )
        )
    return out


# --- traffic links ------------------------------------------------------------------------

LINK_KIND = "road-link"
SPEED_METRIC = "speed_kmh"
SATURATION_LEVELS = ("good", "average", "bad")


def link_coordinates(entity: Entity) -> list[tuple[float, float]] | None:
    """[lon, lat] of a link's start and end node, from the entity's properties."""
    p = entity.properties or {}
    try:
        coords = [
            (float(p["start_lon"]), float(p["start_lat"])),
            (float(p["end_lon"]), float(p["end_lat"])),
        ]
    except (KeyError, TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for pair in coords for v in pair):
        return None
    return coords


def traffic_links(store: TimeSeriesStore) -> dict[str, Any]:
    """Road links with geometry and their latest speed and saturation, as GeoJSON."""
    latest = {v.entity_id: v for v in store.latest(SPEED_METRIC, kind=LINK_KIND)}
    features: list[dict[str, Any]] = []
    updated: datetime | None = None
    for entity in store.entities(LINK_KIND):
        coords = link_coordinates(entity)
        if coords is None:
            continue
        value = latest.get(entity.id)
        label = value.label if value is not None else None
        if value is not None and (updated is None or value.ts > updated):
            updated = value.ts
        features.append(
            {
                "type": "Feature",
                "id": entity.id,
                "geometry": {"type": "LineString", "coordinates": coords},
                "properties": {
                    "id": entity.id,
                    "name_en": entity.name_en,
                    "name_zh": entity.name_zh,
                    "region": (entity.properties or {}).get("region"),
                    "road_type": (entity.properties or {}).get("road_type"),
                    "speed_kmh": value.value if value is not None else None,
                    "saturation": label if label in SATURATION_LEVELS else None,
                    "ts": value.ts if value is not None else None,
                },
            }
        )
    return {"type": "FeatureCollection", "updated": updated, "features": features}


# --- endpoints ------------------------------------------------------------------------------

BucketQ = Annotated[
    str | None,
    Query(description="Bucket size 1m..1d, e.g. 5m, 1h, 1d; default: automatic (<=720 points)"),
]
StartQ = Annotated[
    datetime | None, Query(description="ISO 8601 with offset; default: end minus 24 h")
]
EndQ = Annotated[datetime | None, Query(description="ISO 8601 with offset; default: now")]


@router.get("/entities", response_model=list[EntityOut], summary="Entities (optionally of a kind)")
def list_entities(
    request: Request,
    kind: Annotated[str | None, Query(description="e.g. road-link, weather-station")] = None,
    limit: Annotated[int, Query(ge=1, le=50_000)] = 10_000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    entities = get_store(request).entities(kind)
    return json_response(entities[offset : offset + limit])


@router.get("/entities/{entity_id}", response_model=EntityOut, summary="One entity",
            responses={404: {"description": "Unknown entity"}})
def get_entity(request: Request, entity_id: str) -> Response:
    entity = get_store(request).entity(entity_id)
    if entity is None:
        raise HTTPException(404, f"unknown entity {entity_id!r}")
    return json_response(entity)


@router.get("/latest", response_model=list[LatestOut], summary="Latest value per entity")
def latest(
    request: Request,
    metric: Annotated[str, Query(min_length=1, max_length=64, examples=["speed_kmh"])],
    kind: Annotated[str | None, Query(max_length=64)] = None,
    entity_id: Annotated[list[str] | None, Query(description="Repeat to select several")] = None,
) -> Response:
    values = get_store(request).latest(metric, kind=kind, entity_ids=entity_id or None)
    return json_response(values)


@router.get("/series", response_model=SeriesOut, summary="Time-bucketed series of one entity",
            responses={400: {"description": "Bad window or bucket"},
                       404: {"description": "Unknown entity"}})
def series(
    request: Request,
    entity_id: Annotated[str, Query(min_length=1, max_length=200)],
    metric: Annotated[str, Query(min_length=1, max_length=64)],
    start: StartQ = None,
    end: EndQ = None,
    bucket: BucketQ = None,
) -> Response:
    t0, t1, size = time_window(start, end, bucket)
    store = get_store(request)
    if store.entity(entity_id) is None:
        raise HTTPException(404, f"unknown entity {entity_id!r}")
    points = store.series(entity_id, metric, t0, t1, size)
    return json_response(
        {
            "entity_id": entity_id,
            "metric": metric,
            "start": t0,
            "end": t1,
            "bucket": format_bucket(size),
            "bucket_s": int(size.total_seconds()),
            "points": points,
        }
    )


@router.get("/aggregate", response_model=AggregateOut,
            summary="Time-bucketed aggregate over all entities of a kind",
            responses={400: {"description": "Bad window or bucket"}})
def aggregate(
    request: Request,
    kind: Annotated[str, Query(min_length=1, max_length=64, examples=["road-link"])],
    metric: Annotated[str, Query(min_length=1, max_length=64)],
    start: StartQ = None,
    end: EndQ = None,
    bucket: BucketQ = None,
) -> Response:
    t0, t1, size = time_window(start, end, bucket)
    points = get_store(request).aggregate(kind, metric, t0, t1, size)
    return json_response(
        {
            "kind": kind,
            "metric": metric,
            "start": t0,
            "end": t1,
            "bucket": format_bucket(size),
            "bucket_s": int(size.total_seconds()),
            "points": points,
        }
    )


@router.get("/events", response_model=list[EventOut], summary="Events overlapping a window",
            responses={400: {"description": "Bad window"}})
def events(
    request: Request,
    start: Annotated[
        datetime | None, Query(description="ISO 8601 with offset; default: end minus 7 days")
    ] = None,
    end: EndQ = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    active: Annotated[bool, Query(description="Only events still open at end")] = False,
) -> Response:
    end_utc = _aware("end", end) or now_utc()
    start_utc = _aware("start", start) or end_utc - timedelta(days=7)
    if start_utc >= end_utc:
        raise HTTPException(400, "start must be before end")
    if end_utc - start_utc > MAX_RANGE:
        raise HTTPException(400, f"range is over the limit of {MAX_RANGE.days} days")
    found = get_store(request).events(start_utc, end_utc, kind=kind, active_only=active)
    return json_response(found)


@router.get("/feeds", response_model=list[FeedStatusOut], summary="Feeds and their health")
def feeds(request: Request) -> Response:
    settings = request.app.state.settings
    statuses = feed_statuses(get_store(request), getattr(settings, "feeds", ()) or ())
    return json_response([s.model_dump() for s in statuses])


@router.get(
    "/traffic/links.geojson",
    response_model=LinkCollection,
    summary="Road links with their latest speed and saturation (GeoJSON)",
    responses={200: {"content": {"application/geo+json": {}}}},
)
def links_geojson(request: Request) -> Response:
    return json_response(traffic_links(get_store(request)), media_type="application/geo+json")
