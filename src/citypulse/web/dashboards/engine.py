"""Running tile queries against the store, judging each tile's state, and validating page
parameters.

Every query reads the ``latest`` table or a bounded time window (never a full history scan).
Windows are anchored at the newest stored observation of the metric, not at the wall clock, so
"the last 24 hours" of a replayed capture from 2016 is still a chart, and the tile's freshness line
says how old it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from citypulse.feeds.base import HKT
from citypulse.model import Entity, Event
from citypulse.store.base import FeedHealth, TimeSeriesStore
from citypulse.web.dashboards import Query, Tile
from citypulse.web.dashboards.districts import BY_ID, district_id
from citypulse.web.dashboards.results import (
    Area,
    Row,
    SeriesData,
    TileData,
    TileParams,
    TileStatus,
    Value,
)

VEHICLES = ("private_car", "lgv", "hgv", "cv", "coach", "motorcycle")
HK_BOUNDS = (22.1, 22.6, 113.8, 114.5)
"""lat min, lat max, lon min, lon max: a generous box around Hong Kong."""
MAX_EVENT_AGE = timedelta(days=14)
"""An open weather warning older than this is not treated as in force: RSS replays carry no
cancellation, and no HK warning lasts two weeks."""
MAX_DATE_RANGE_DAYS = 366 * 20


class ParamError(ValueError):
    """A bad query parameter; the message says what is accepted (shown with a 400)."""


def _one(values: Mapping[str, str], name: str) -> str | None:
    v = values.get(name)
    if v is None:
        return None
    v = v.strip()
    return v or None


def parse_date(name: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ParamError(f"{name} must be a date like 2022-03-01, not {text!r}") from None


def parse_coord(name: str, text: str, low: float, high: float) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ParamError(f"{name} must be a number, not {text!r}") from None
    if not math.isfinite(v) or not low <= v <= high:
        raise ParamError(f"{name} must be between {low} and {high} (Hong Kong)")
    return v


def parse_params(values: Mapping[str, str], allowed: tuple[str, ...]) -> TileParams:
    """Validate the page parameters a dashboard accepts; unknown names are ignored (tracking
    parameters and the like), bad values raise :class:`ParamError`."""
    out: dict[str, Any] = {}
    if "district" in allowed and (text := _one(values, "district")):
        did = district_id(text)
        if did is None:
            raise ParamError(
                f"unknown district {text!r}; use one of: {', '.join(BY_ID)}"
            )
        out["district"] = did
    if "vehicle" in allowed and (text := _one(values, "vehicle")):
        if text not in VEHICLES:
            raise ParamError(f"unknown vehicle type {text!r}; use one of: {', '.join(VEHICLES)}")
        out["vehicle"] = text
    if "start" in allowed and (text := _one(values, "start")):
        out["start"] = parse_date("start", text)
    if "end" in allowed and (text := _one(values, "end")):
        out["end"] = parse_date("end", text)
    if out.get("start") and out.get("end"):
        if out["start"] > out["end"]:
            raise ParamError("start must not be after end")
        if (out["end"] - out["start"]).days > MAX_DATE_RANGE_DAYS:
            raise ParamError("the date range is too long (20 years at most)")
    if "lat" in allowed or "lon" in allowed:
        lat, lon = _one(values, "lat"), _one(values, "lon")
        if (lat is None) != (lon is None):
            raise ParamError("give both lat and lon, or neither")
        if lat is not None and lon is not None:
            out["lat"] = parse_coord("lat", lat, HK_BOUNDS[0], HK_BOUNDS[1])
            out["lon"] = parse_coord("lon", lon, HK_BOUNDS[2], HK_BOUNDS[3])
    return TileParams(**out)


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """``minLon,minLat,maxLon,maxLat`` (WGS84) -> tuple; 400-worthy errors otherwise."""
    parts = text.split(",")
    if len(parts) != 4:
        raise ParamError("bbox must be minLon,minLat,maxLon,maxLat (4 numbers)")
    try:
        w, s, e, n = (float(p) for p in parts)
    except ValueError:
        raise ParamError("bbox must be minLon,minLat,maxLon,maxLat (4 numbers)") from None
    if not all(math.isfinite(v) for v in (w, s, e, n)):
        raise ParamError("bbox values must be finite numbers")
    if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= 90 and -90 <= n <= 90):
        raise ParamError("bbox is outside WGS84 longitude/latitude ranges")
    if w >= e or s >= n:
        raise ParamError("bbox must have minLon < maxLon and minLat < maxLat")
    return w, s, e, n


# --- query context ------------------------------------------------------------------------------


@dataclass(slots=True)
class QueryContext:
    store: TimeSeriesStore
    now: datetime
    params: TileParams
    entities_of: Callable[[str], list[Entity]]
    health: Mapping[str, FeedHealth] = field(default_factory=dict)

    def entities(self, kind: str, *, district: bool = True) -> list[Entity]:
        found = self.entities_of(kind)
        if district and self.params.district:
            return [e for e in found if entity_district(e) == self.params.district]
        return found


def entity_district(e: Entity) -> str | None:
    return district_id(e.district)


def row_for(e: Entity) -> Row:
    return Row(e.id, e.name_en, e.name_zh, entity_district(e), e.lat, e.lon)


def hk_day_start(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=HKT).astimezone(UTC)


def _ceil(ts: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    n = math.ceil((ts - epoch) / step)
    return epoch + n * step


def window_for(ctx: QueryContext, metric: str, kind: str | None, entity: str | None,
               window: timedelta, bucket: timedelta) -> tuple[datetime, datetime]:
    """[start, end) of ``window`` ending just after the newest stored value of the metric."""
    newest: datetime | None = None
    try:
        if entity:
            values = ctx.store.latest(metric, entity_ids=[entity])
        else:
            values = ctx.store.latest(metric, kind=kind)
        stamps = [v.ts for v in values]
        newest = max(stamps) if stamps else None
    except Exception:  # an engine without this lookup: fall back to the wall clock
        newest = None
    end = _ceil((newest or ctx.now) + timedelta(seconds=1), bucket)
    return end - window, end


def auto_bucket(window: timedelta) -> timedelta:
    for minutes in (1, 5, 15, 60, 360, 1440):
        step = timedelta(minutes=minutes)
        if window / step <= 200:
            return step
    return timedelta(days=1)


# --- built-in queries ---------------------------------------------------------------------------


def q_latest(ctx: QueryContext, q: Query) -> TileData:
    if not q.kind or not q.metrics:
        raise ValueError("a latest query needs kind and metrics")
    ents = ctx.entities(q.kind, district=q.district_filter)
    by_id = {e.id: e for e in ents}
    rows: dict[str, Row] = {}
    updated: datetime | None = None
    for metric in q.metrics:
        for v in ctx.store.latest(metric, kind=q.kind):
            e = by_id.get(v.entity_id)
            if e is None:
                continue
            row = rows.get(e.id)
            if row is None:
                row = rows[e.id] = row_for(e)
            row.values[metric] = Value(v.value, v.label, v.ts)
            if updated is None or v.ts > updated:
                updated = v.ts
    ordered = sorted(rows.values(), key=lambda r: (r.district or "~", r.name_en or r.id))
    return TileData(updated=updated, rows=ordered[: q.limit])


def q_series(ctx: QueryContext, q: Query) -> TileData:
    metrics = q.metrics or ((q.metric,) if q.metric else ())
    if not q.entity or not metrics:
        raise ValueError("a series query needs entity and metric(s)")
    bucket = q.bucket or auto_bucket(q.window)
    start, end = window_for(ctx, metrics[0], None, q.entity, q.window, bucket)
    per_metric = {m: ctx.store.series(q.entity, m, start, end, bucket) for m in metrics}
    xs = sorted({int(p.ts.timestamp()) for pts in per_metric.values() for p in pts})
    index = {x: i for i, x in enumerate(xs)}
    ys: dict[str, list[float | None]] = {}
    for m, pts in per_metric.items():
        col: list[float | None] = [None] * len(xs)
        for p in pts:
            col[index[int(p.ts.timestamp())]] = p.avg
        ys[m] = col
    updated = datetime.fromtimestamp(xs[-1], UTC) if xs else None
    last = _last_ts(ctx, metrics[0], None, q.entity)
    return TileData(updated=last or updated,
                    series=SeriesData(xs, ys, int(bucket.total_seconds())))


def q_aggregate(ctx: QueryContext, q: Query) -> TileData:
    if not q.kind or not q.metric:
        raise ValueError("an aggregate query needs kind and metric")
    bucket = q.bucket or auto_bucket(q.window)
    start, end = window_for(ctx, q.metric, q.kind, None, q.window, bucket)
    points = ctx.store.aggregate(q.kind, q.metric, start, end, bucket)
    xs = [int(p.ts.timestamp()) for p in points]
    series = SeriesData(
        xs,
        {
            "avg": [p.avg for p in points],
            "min": [p.min for p in points],
            "max": [p.max for p in points],
            "entities": [float(p.entities) for p in points],
        },
        int(bucket.total_seconds()),
    )
    return TileData(updated=_last_ts(ctx, q.metric, q.kind, None), series=series)


def _last_ts(ctx: QueryContext, metric: str, kind: str | None, entity: str | None
             ) -> datetime | None:
    values = (ctx.store.latest(metric, entity_ids=[entity]) if entity
              else ctx.store.latest(metric, kind=kind))
    stamps = [v.ts for v in values]
    return max(stamps) if stamps else None


def event_in_district(ev: Event, district: str) -> bool:
    return any(district_id(d) == district for d in ev.districts)


def active_events(ctx: QueryContext, kind: str | None) -> list[Event]:
    """Events open now (no end, or an end in the future) that started within
    :data:`MAX_EVENT_AGE`."""
    found = ctx.store.events(ctx.now - MAX_EVENT_AGE, ctx.now, kind=kind, active_only=True)
    return [e for e in found if e.starts_at >= ctx.now - MAX_EVENT_AGE]


def q_events(ctx: QueryContext, q: Query) -> TileData:
    kind = q.event_kind or q.kind
    if q.active:
        found = active_events(ctx, kind)
    else:
        found = ctx.store.events(ctx.now - q.window, ctx.now, kind=kind)
    if q.district_filter and ctx.params.district:
        found = [e for e in found if event_in_district(e, ctx.params.district)]
    prefix = q.args.get("entity_prefix")
    if prefix:
        found = [e for e in found if any(i.startswith(prefix) for i in e.entity_ids)]
    found.sort(key=lambda e: (e.ends_at is None, e.starts_at), reverse=True)
    updated = max((e.starts_at for e in found), default=None)
    return TileData(updated=updated, events=found[: q.limit], extra={"has_data": bool(found)})


def q_entities(ctx: QueryContext, q: Query) -> TileData:
    """Entities of a kind counted by district (areas) or by a property (rows); with ``metric``,
    the latest values of that metric are summed as well."""
    if not q.kind:
        raise ValueError("an entities query needs kind")
    ents = ctx.entities(q.kind, district=q.district_filter)
    totals: dict[str, float] = {}
    updated: datetime | None = None
    if q.metric:
        for v in ctx.store.latest(q.metric, kind=q.kind):
            if v.value is not None:
                totals[v.entity_id] = v.value
            if updated is None or v.ts > updated:
                updated = v.ts
    groups: dict[str, list[Entity]] = {}
    for e in ents:
        if q.group_by == "property" and q.property:
            props = e.properties or {}
            fallback = q.args.get("fallback")
            key = str(props.get(q.property) or (props.get(fallback) if fallback else "") or "")
        else:
            key = entity_district(e) or ""
        groups.setdefault(key, []).append(e)
    if q.group_by == "property":
        rows = []
        for key, members in groups.items():
            zh_key, zh_fallback = q.args.get("property_zh"), q.args.get("fallback_zh")
            first = members[0].properties or {}
            name_zh = (first.get(zh_key) if zh_key else None) or (
                first.get(zh_fallback) if zh_fallback else None)
            row = Row(id=key or "-", name_en=key or None, name_zh=name_zh)
            row.values["count"] = Value(float(len(members)))
            if q.metric:
                row.values[q.metric] = Value(sum(totals.get(e.id, 0.0) for e in members))
            rows.append(row)
        rows.sort(key=lambda r: -(r.values["count"].value or 0))
        return TileData(updated=updated, rows=rows[: q.limit], extra={"total": len(ents)})
    areas = []
    for did in BY_ID:
        members = groups.get(did, [])
        area = Area(did, {"count": Value(float(len(members)))})
        if q.metric:
            area.values[q.metric] = Value(sum(totals.get(e.id, 0.0) for e in members))
        areas.append(area)
    if ctx.params.district and q.district_filter:
        areas = [a for a in areas if a.district == ctx.params.district]
    return TileData(updated=updated, areas=areas,
                    extra={"total": len(ents), "unknown_district": len(groups.get("", [])),
                           "has_data": bool(ents)})


def run_query(tile: Tile, ctx: QueryContext) -> TileData:
    q = tile.query
    if q.type == "latest":
        return q_latest(ctx, q)
    if q.type == "series":
        return q_series(ctx, q)
    if q.type == "aggregate":
        return q_aggregate(ctx, q)
    if q.type == "events":
        return q_events(ctx, q)
    if q.type == "entities":
        return q_entities(ctx, q)
    from citypulse.web.dashboards.custom import CUSTOM_QUERIES

    fn = CUSTOM_QUERIES.get(q.name or "")
    if fn is None:
        raise ValueError(f"unknown custom query {q.name!r}")
    return fn(ctx, tile)


# --- tile state ---------------------------------------------------------------------------------


def tile_status(tile: Tile, data: TileData, health: Mapping[str, FeedHealth],
                now: datetime) -> TileStatus:
    """ok / stale / unavailable / empty for a computed tile.

    Unavailable: at least one of the tile's feeds has a health record, none of them is up and
    one is failing; ``since`` is when the feeds last delivered (None: never), ``reason`` the
    last error. A tile without feeds (or whose feeds were never polled) is judged on its data
    alone."""
    records = [health[f] for f in tile.feeds if f in health]
    failing = [h for h in records if h.consecutive_failures > 0]
    healthy = [h for h in records if h.consecutive_failures == 0 and h.last_success is not None]
    age = (now - data.updated).total_seconds() if data.updated else None
    checked = max((h.last_success for h in healthy if h.last_success is not None), default=None)
    if failing and not healthy:
        successes = [h.last_success for h in failing if h.last_success is not None]
        since = max(successes) if successes else None
        reason = next((h.last_error for h in failing if h.last_error), None)
        return TileStatus("unavailable", since=since, reason=reason, age_s=age)
    if data.empty:
        return TileStatus("empty", age_s=age, checked=checked)
    if data.updated is not None and now - data.updated > tile.stale_after:
        return TileStatus("stale", age_s=age, checked=checked)
    return TileStatus("ok", age_s=age, checked=checked)
