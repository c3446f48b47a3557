"""Named queries for tiles the generic query types cannot express: derived figures (region
summaries, daily counts from cumulative totals), joins across kinds (detector lanes -> detectors,
alerts -> sensors) and nearest-neighbour lookups. A YAML tile uses one with
``query: {type: custom, name: <function name>}``.

Each function takes the query context and the tile, reads the store (``latest`` table or a
bounded window) and returns :class:`TileData`; none of them is language-specific (views pick the
English or Chinese field).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from citypulse.feeds.base import HKT
from citypulse.feeds.reference import REGION_NAMES
from citypulse.model import Entity, Event
from citypulse.web.dashboards import Tile
from citypulse.web.dashboards.districts import BY_ID, REGIONS
from citypulse.web.dashboards.engine import (
    QueryContext,
    active_events,
    entity_district,
    hk_day_start,
    row_for,
)
from citypulse.web.dashboards.results import Area, Figure, Row, SeriesData, TileData, Value

CustomQuery = Callable[[QueryContext, Tile], TileData]
CUSTOM_QUERIES: dict[str, CustomQuery] = {}


def custom(fn: CustomQuery) -> CustomQuery:
    CUSTOM_QUERIES[fn.__name__] = fn
    return fn


def _newest(stamps: Iterable[datetime | None]) -> datetime | None:
    found = [s for s in stamps if s is not None]
    return max(found) if found else None


# --- traffic ------------------------------------------------------------------------------------

SPEED_REGION = {"HK": "hk_island", "K": "kowloon", "TM": "new_territories",
                "ST": "new_territories"}
"""Speed map regions -> the three regions of the district table (TM and ST are the corridors
towards Tuen Mun and Sha Tin, both in the New Territories)."""
SATURATION = ("good", "average", "bad")


@custom
def traffic_links(ctx: QueryContext, tile: Tile) -> TileData:
    """Every road link with geometry and its latest speed and saturation (the speed map)."""
    from citypulse.web.routes.api import traffic_links as links_geojson

    collection = links_geojson(ctx.store)
    rows: list[Row] = []
    counts = dict.fromkeys(SATURATION, 0)
    speeds: list[float] = []
    for f in collection["features"]:
        p = f["properties"]
        if p["saturation"] in counts:
            counts[p["saturation"]] += 1
        if p["speed_kmh"] is not None:
            speeds.append(p["speed_kmh"])
        row = Row(p["id"], p["name_en"], p["name_zh"])
        row.props["region"] = p.get("region") or ""
        row.values["speed_kmh"] = Value(p["speed_kmh"], p["saturation"], p["ts"])
        rows.append(row)
    rows.sort(key=lambda r: (r.props["region"], r.id))
    return TileData(
        updated=collection["updated"],
        rows=rows,
        extra={
            "counts": counts,
            "n_with_data": len(speeds),
            "mean_speed": round(sum(speeds) / len(speeds)) if speeds else None,
            "regions": {code: {"en": en, "zh": zh} for code, (en, zh) in REGION_NAMES.items()},
            "has_data": bool(rows),
        },
    )


@custom
def traffic_regions(ctx: QueryContext, tile: Tile) -> TileData:
    """Links reporting, mean speed and saturation counts for Hong Kong Island, Kowloon and the
    New Territories."""
    links = {e.id: e for e in ctx.entities("road-link", district=False)}
    stats: dict[str, dict[str, Any]] = {
        r: {"speeds": [], "levels": dict.fromkeys(SATURATION, 0)} for r in REGIONS
    }
    updated: datetime | None = None
    for v in ctx.store.latest("speed_kmh", kind="road-link"):
        e = links.get(v.entity_id)
        if e is None:
            continue
        region = SPEED_REGION.get(str((e.properties or {}).get("region") or ""))
        if region is None:
            continue
        if v.value is not None:
            stats[region]["speeds"].append(v.value)
        if v.label in SATURATION:
            stats[region]["levels"][v.label] += 1
        updated = v.ts if updated is None or v.ts > updated else updated
    rows: list[Row] = []
    for region, (en, zh) in REGIONS.items():
        s = stats[region]
        n = len(s["speeds"])
        if n == 0:
            continue
        row = Row(region, en, zh)
        row.values["links"] = Value(float(n))
        row.values["mean_speed"] = Value(sum(s["speeds"]) / n)
        for level in SATURATION:
            row.values[level] = Value(float(s["levels"][level]))
        row.values["congested_pct"] = Value(100.0 * s["levels"]["bad"] / n)
        rows.append(row)
    return TileData(updated=updated, rows=rows)


def _detector_rows(ctx: QueryContext) -> tuple[list[Row], datetime | None]:
    detectors = {e.id: e for e in ctx.entities("traffic-detector", district=True)}
    lanes = {e.id: str((e.properties or {}).get("detector") or "")
             for e in ctx.entities("traffic-detector-lane", district=True)}
    acc: dict[str, dict[str, list[float]]] = {}
    updated: datetime | None = None
    for metric in ("speed_kmh", "volume_veh", "occupancy_pct"):
        for v in ctx.store.latest(metric, kind="traffic-detector-lane"):
            det = lanes.get(v.entity_id)
            if not det or det not in detectors or v.value is None:
                continue
            acc.setdefault(det, {}).setdefault(metric, []).append(v.value)
            updated = v.ts if updated is None or v.ts > updated else updated
    rows: list[Row] = []
    for det_id, metrics in acc.items():
        e = detectors[det_id]
        row = row_for(e)
        if metrics.get("speed_kmh"):
            row.values["speed_kmh"] = Value(statistics.fmean(metrics["speed_kmh"]))
        if metrics.get("volume_veh"):
            # Volumes are per 30-second period: x2 for vehicles per minute.
            row.values["volume_per_min"] = Value(2 * sum(metrics["volume_veh"]))
        if metrics.get("occupancy_pct"):
            row.values["occupancy_pct"] = Value(statistics.fmean(metrics["occupancy_pct"]))
        row.props["lanes"] = len(metrics.get("volume_veh") or metrics.get("occupancy_pct") or [])
        rows.append(row)
    rows.sort(key=lambda r: (r.district or "~", r.name_en or r.id))
    return rows, updated


@custom
def detectors(ctx: QueryContext, tile: Tile) -> TileData:
    """Each detector's latest reading (mean lane speed, vehicles per minute, occupancy)."""
    rows, updated = _detector_rows(ctx)
    return TileData(updated=updated, rows=rows)


@custom
def detectors_by_district(ctx: QueryContext, tile: Tile) -> TileData:
    """Detector readings summarised per district (mean speed, vehicles per minute)."""
    rows, updated = _detector_rows(ctx)
    groups: dict[str, list[Row]] = {}
    for r in rows:
        if r.district:
            groups.setdefault(r.district, []).append(r)
    areas: list[Area] = []
    for did in BY_ID:
        members = groups.get(did)
        if not members:
            continue
        speeds = [r.values["speed_kmh"].value for r in members if "speed_kmh" in r.values]
        volumes = [r.values["volume_per_min"].value for r in members
                   if "volume_per_min" in r.values]
        area = Area(did, {"detectors": Value(float(len(members)))})
        if speeds:
            area.values["speed_kmh"] = Value(statistics.fmean(s for s in speeds if s is not None))
        if volumes:
            area.values["volume_per_min"] = Value(sum(v for v in volumes if v is not None))
        areas.append(area)
    return TileData(updated=updated, areas=areas)


@custom
def traffic_news(ctx: QueryContext, tile: Tile) -> TileData:
    """Open traffic incidents plus those closed within the window, newest first, with their
    position (when TD gives one) as map rows."""
    window = tile.query.window
    found = ctx.store.events(ctx.now - window, ctx.now, kind="traffic-news")
    if ctx.params.district and tile.query.district_filter:
        from citypulse.web.dashboards.engine import event_in_district

        found = [e for e in found if event_in_district(e, ctx.params.district)]
    found.sort(key=lambda e: (e.ends_at is None, e.starts_at), reverse=True)
    rows: list[Row] = []
    for e in found:
        lat, lon = (e.properties or {}).get("lat"), (e.properties or {}).get("lon")
        if isinstance(lat, int | float) and isinstance(lon, int | float):
            row = Row(e.id, e.title_en, e.title_zh, None, float(lat), float(lon))
            row.values["state"] = Value(None, "moderate" if e.ends_at is None else "info",
                                        e.starts_at)
            rows.append(row)
    updated = _newest(e.starts_at for e in found)
    return TileData(updated=updated, events=found[: tile.query.limit], rows=rows,
                    extra={"has_data": bool(found),
                           "open": sum(1 for e in found if e.ends_at is None)})


# --- weather and air ----------------------------------------------------------------------------

OBSERVATORY = "hko-station:hong_kong_observatory"
KINGS_PARK = "hko-station:kings_park"

WEATHER_ICONS: dict[int, tuple[str, str]] = {
    50: ("Sunny", "陽光充沛"), 51: ("Sunny periods", "間有陽光"),
    52: ("Sunny intervals", "短暫陽光"),
    53: ("Sunny periods with a few showers", "間有陽光幾陣驟雨"),
    54: ("Sunny intervals with showers", "短暫陽光有驟雨"), 60: ("Cloudy", "多雲"),
    61: ("Overcast", "密雲"), 62: ("Light rain", "微雨"), 63: ("Rain", "雨"),
    64: ("Heavy rain", "大雨"), 65: ("Thunderstorms", "雷暴"), 70: ("Fine", "天色良好"),
    71: ("Fine", "天色良好"), 72: ("Fine", "天色良好"), 73: ("Fine", "天色良好"),
    74: ("Fine", "天色良好"), 75: ("Fine", "天色良好"), 76: ("Mainly cloudy", "大致多雲"),
    77: ("Mainly fine", "天色大致良好"), 80: ("Windy", "大風"), 81: ("Dry", "乾燥"),
    82: ("Humid", "潮濕"), 83: ("Fog", "霧"), 84: ("Mist", "薄霧"), 85: ("Haze", "煙霞"),
    90: ("Hot", "熱"), 91: ("Warm", "暖"), 92: ("Cool", "涼"), 93: ("Cold", "冷"),
}


def _one_latest(ctx: QueryContext, metric: str, entity: str) -> Value | None:
    for v in ctx.store.latest(metric, entity_ids=[entity]):
        return Value(v.value, v.label, v.ts)
    return None


@custom
def weather_now(ctx: QueryContext, tile: Tile) -> TileData:
    """The Observatory's temperature, humidity and weather, King's Park UV, the highest hourly
    rainfall of any district, and the temperature range over all stations."""
    figures: list[Figure] = []
    temp = _one_latest(ctx, "temperature_c", OBSERVATORY)
    figures.append(Figure("temperature", "Temperature at the Observatory", "天文台氣溫",
                          temp.value if temp else None, "°C", 0, ts=temp.ts if temp else None,
                          band="temperature"))
    hum = _one_latest(ctx, "humidity_pct", OBSERVATORY)
    figures.append(Figure("humidity", "Relative humidity", "相對濕度",
                          hum.value if hum else None, "%", ts=hum.ts if hum else None))
    icon = _one_latest(ctx, "weather_icon", OBSERVATORY)
    if icon and icon.value is not None:
        en, zh = WEATHER_ICONS.get(int(icon.value), (f"HKO icon {int(icon.value)}",
                                                     f"天文台圖示 {int(icon.value)}"))
        figures.append(Figure("weather", "Weather", "天氣", icon.value, text=f"{en}|{zh}",
                              ts=icon.ts))
    uv = _one_latest(ctx, "uv_index", KINGS_PARK)
    if uv is not None:
        figures.append(Figure("uv", "UV index (King's Park)", "紫外線指數（京士柏）", uv.value,
                              decimals=0, ts=uv.ts))
    stations = [v for v in ctx.store.latest("temperature_c", kind="weather-station")
                if v.value is not None]
    if stations:
        newest = max(v.ts for v in stations)
        current = [v.value for v in stations if v.ts == newest and v.value is not None]
        figures.append(Figure("temp_range", "Lowest and highest station", "最低及最高氣溫站",
                              min(current), "°C", text=f"{min(current):.0f}-{max(current):.0f}",
                              ts=newest))
    rain = [v for v in ctx.store.latest("rainfall_mm", kind="rainfall-district")
            if v.value is not None]
    if rain:
        newest = max(v.ts for v in rain)
        now_rain = [v.value for v in rain if v.ts == newest and v.value is not None]
        figures.append(Figure("rain_max", "Highest district rainfall, past hour",
                              "過去一小時最高地區雨量", max(now_rain), "mm", ts=newest,
                              band="rainfall"))
    return TileData(updated=_newest(f.ts for f in figures), figures=figures)


@custom
def weather_by_district(ctx: QueryContext, tile: Tile) -> TileData:
    """Per district: the mean temperature of its HKO stations and its past-hour rainfall."""
    stations = {e.id: entity_district(e) for e in ctx.entities("weather-station", district=True)}
    temps: dict[str, list[float]] = {}
    temp_ts: dict[str, datetime] = {}
    latest_temps = [v for v in ctx.store.latest("temperature_c", kind="weather-station")
                    if v.value is not None]
    newest = max((v.ts for v in latest_temps), default=None)
    for v in latest_temps:
        d = stations.get(v.entity_id)
        # Only the current report: a station that stopped reporting must not look current.
        if d and v.value is not None and newest is not None and newest - v.ts < timedelta(hours=3):
            temps.setdefault(d, []).append(v.value)
            temp_ts[d] = max(v.ts, temp_ts.get(d, v.ts))
    rain: dict[str, Value] = {}
    districts = {e.id: entity_district(e) for e in ctx.entities("rainfall-district")}
    for v in ctx.store.latest("rainfall_mm", kind="rainfall-district"):
        d = districts.get(v.entity_id)
        if d:
            rain[d] = Value(v.value, v.label, v.ts)
    areas: list[Area] = []
    wanted = [ctx.params.district] if ctx.params.district else list(BY_ID)
    for did in wanted:
        area = Area(did)
        if temps.get(did):
            area.values["temperature_c"] = Value(statistics.fmean(temps[did]), None,
                                                 temp_ts[did])
        if did in rain:
            area.values["rainfall_mm"] = rain[did]
        if area.values:
            areas.append(area)
    updated = _newest([*temp_ts.values(), *(v.ts for v in rain.values())])
    return TileData(updated=updated, areas=areas)


FORECAST_ENTITY = "hko-forecast:hk"
PSR_ZH = {"Low": "低", "Medium Low": "中低", "Medium": "中", "Medium High": "中高", "High": "高"}
WEEKDAY_ZH = ("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日")


@custom
def forecast(ctx: QueryContext, tile: Tile) -> TileData:
    """HKO's 9-day forecast: one row per day (temperature and humidity ranges, weather, wind,
    probability of significant rain), from the forecast entity's values and text."""
    entity = ctx.store.entity(FORECAST_ENTITY)
    if entity is None:
        return TileData()
    props = entity.properties or {}
    days = [d for d in props.get("days") or [] if isinstance(d, dict)]
    if not days:
        return TileData()
    dates = sorted(str(d.get("date")) for d in days if d.get("date"))
    first = datetime.strptime(dates[0], "%Y%m%d").date()
    last = datetime.strptime(dates[-1], "%Y%m%d").date()
    start, end = hk_day_start(first), hk_day_start(last) + timedelta(days=1)
    values: dict[str, dict[str, float | None]] = {}
    for metric in ("forecast_max_temp_c", "forecast_min_temp_c", "forecast_max_rh_pct",
                   "forecast_min_rh_pct", "forecast_psr"):
        # Hourly buckets keep each day's value at its own 00:00 HKT (daily buckets are aligned
        # to UTC midnight and would shift it a day back).
        for p in ctx.store.series(FORECAST_ENTITY, metric, start, end, timedelta(hours=1)):
            values.setdefault(p.ts.astimezone(HKT).date().isoformat(), {})[metric] = p.avg
    rows: list[Row] = []
    for d in days:
        try:
            day = datetime.strptime(str(d.get("date")), "%Y%m%d").date()
        except ValueError:
            continue
        # The weekday from the date (the feed's own "week" is in the language polled).
        row = Row(day.isoformat(), day.strftime("%A"), WEEKDAY_ZH[day.weekday()])
        v = values.get(day.isoformat(), {})
        for metric, val in v.items():
            row.values[metric] = Value(val)
        row.props.update({
            "date": day.isoformat(), "weather_en": d.get("weather"), "wind_en": d.get("wind"),
            "weather_zh": d.get("weather_zh"), "wind_zh": d.get("wind_zh"),
            "psr_en": d.get("psr"), "psr_zh": PSR_ZH.get(str(d.get("psr")), d.get("psr")),
        })
        rows.append(row)
    issued = props.get("update_time")
    updated = None
    if isinstance(issued, str):
        try:
            updated = datetime.fromisoformat(issued)
        except ValueError:
            updated = None
    return TileData(updated=updated, rows=rows,
                    extra={"situation_en": props.get("general_situation_en"),
                           "situation_zh": props.get("general_situation_zh")})


# --- mobility -----------------------------------------------------------------------------------

VEHICLE_NAMES = {
    "private_car": ("Private car", "私家車"), "lgv": ("Light goods vehicle", "輕型貨車"),
    "hgv": ("Heavy goods vehicle", "重型貨車"), "cv": ("Container vehicle", "貨櫃車"),
    "coach": ("Coach", "旅遊巴"), "motorcycle": ("Motorcycle", "電單車"),
}


def _carpark_rows(ctx: QueryContext, district: bool = True) -> tuple[list[Row], datetime | None]:
    vehicle = ctx.params.vehicle or "private_car"
    parks = {e.id: e for e in ctx.entities("carpark", district=district)}
    rows: list[Row] = []
    updated: datetime | None = None
    ev = {v.entity_id: v for v in ctx.store.latest(f"vacancy_ev_{vehicle}", kind="carpark")}
    for v in ctx.store.latest(f"vacancy_{vehicle}", kind="carpark"):
        e = parks.get(v.entity_id)
        if e is None or e.lat is None or e.lon is None:
            continue
        row = row_for(e)
        row.values["vacancy"] = Value(v.value, v.label, v.ts)
        if v.entity_id in ev:
            x = ev[v.entity_id]
            row.values["vacancy_ev"] = Value(x.value, x.label, x.ts)
        props = e.properties or {}
        row.props["address_en"] = props.get("address_en")
        row.props["address_zh"] = props.get("address_zh")
        row.props["opening_status"] = props.get("opening_status")
        rows.append(row)
        updated = v.ts if updated is None or v.ts > updated else updated
    rows.sort(key=lambda r: (r.district or "~", r.name_en or r.name_zh or r.id))
    return rows, updated


@custom
def carparks(ctx: QueryContext, tile: Tile) -> TileData:
    """Car parks with the latest vacancy for the chosen vehicle type (default private car),
    filtered by district."""
    rows, updated = _carpark_rows(ctx)
    if not rows:
        return TileData()
    counted = [r.values["vacancy"].value for r in rows
               if r.values["vacancy"].label == "count" and r.values["vacancy"].value is not None]
    full = sum(1 for r in rows if r.values["vacancy"].value == 0
               and r.values["vacancy"].label != "closed")
    figures = [
        Figure("parks", "Car parks reporting", "提供數據的停車場", float(len(rows))),
        Figure("free", "Free spaces (where counted)", "空位（有點算者）",
               float(sum(v for v in counted if v is not None)) if counted else None),
        Figure("full", "Full", "已滿", float(full)),
    ]
    vehicle = ctx.params.vehicle or "private_car"
    en, zh = VEHICLE_NAMES[vehicle]
    return TileData(updated=updated, rows=rows, figures=figures,
                    extra={"vehicle": vehicle, "vehicle_en": en, "vehicle_zh": zh})


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    r = 6_371_000.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


NEAREST = 5


def nearest_rows(rows: list[Row], lat: float, lon: float, limit: int = NEAREST) -> list[Row]:
    scored = []
    for r in rows:
        if r.lat is None or r.lon is None:
            continue
        scored.append((haversine_m(lat, lon, r.lat, r.lon), r))
    scored.sort(key=lambda t: t[0])
    out = []
    for dist, r in scored[:limit]:
        r.values["distance_m"] = Value(dist)
        out.append(r)
    return out


@custom
def nearest_carparks(ctx: QueryContext, tile: Tile) -> TileData:
    """The five car parks nearest to ``lat``/``lon`` (any district) with their vacancy."""
    lat, lon = ctx.params.lat, ctx.params.lon
    if lat is None or lon is None:
        return TileData(extra={"prompt": True})
    rows, updated = _carpark_rows(ctx, district=False)
    near = nearest_rows(rows, lat, lon)
    return TileData(updated=updated, rows=near,
                    extra={"lat": lat, "lon": lon, "has_data": True, "prompt": False})


# --- connectivity -------------------------------------------------------------------------------


@custom
def wifi_summary(ctx: QueryContext, tile: Tile) -> TileData:
    venues = ctx.entities("wifi-hotspot")
    if not venues:
        return TileData()
    counts = {v.entity_id: v for v in ctx.store.latest("hotspots", kind="wifi-hotspot")}
    wanted = {e.id for e in venues}
    hotspots = sum(v.value or 0 for k, v in counts.items() if k in wanted)
    fixed = sum(1 for e in venues if e.lat is not None and e.lon is not None)
    orgs = {str((e.properties or {}).get("organisation") or "") for e in venues}
    updated = _newest(v.ts for k, v in counts.items() if k in wanted)
    figures = [
        Figure("venues", "Venues", "地點", float(len(venues))),
        Figure("hotspots", "Hotspots", "熱點", float(hotspots)),
        Figure("fixed", "Venues on the map", "有位置的地點", float(fixed)),
        Figure("mobile", "Buses, trains and ferries", "巴士、鐵路及渡輪",
               float(len(venues) - fixed)),
        Figure("organisations", "Participating organisations", "參與機構",
               float(len(orgs - {""}))),
    ]
    return TileData(updated=updated, figures=figures)


def wifi_points(entities: list[Entity], counts: dict[str, float],
                bbox: tuple[float, float, float, float] | None = None) -> dict[str, Any]:
    """Compact columns for the clustered map: ids, positions (5 decimals) and hotspot counts."""
    ids: list[str] = []
    lat: list[float] = []
    lon: list[float] = []
    n: list[int] = []
    for e in entities:
        if e.lat is None or e.lon is None:
            continue
        if bbox is not None and not (bbox[0] <= e.lon <= bbox[2] and bbox[1] <= e.lat <= bbox[3]):
            continue
        ids.append(e.id)
        lat.append(round(e.lat, 5))
        lon.append(round(e.lon, 5))
        n.append(int(counts.get(e.id, 0)))
    return {"count": len(ids), "id": ids, "lat": lat, "lon": lon, "hotspots": n}


# --- COVID-19 -----------------------------------------------------------------------------------

TERRITORY = "hk"
COVID_CUMULATIVE = ("confirmed_cases_total", "deaths_total", "discharged_total",
                    "pcr_positive_total", "rat_positive_total")
VACCINATION_METRICS = ("vaccine_doses_total", "vaccinations_total", "first_dose_total",
                       "second_dose_total", "third_dose_total", "vaccination_doses_daily")
"""Vaccination figures, if a feed ever provides them (none of the shipped feeds does)."""


def _covid_window(ctx: QueryContext) -> tuple[datetime, datetime] | None:
    """The page's date range, else everything the store holds for the territory."""
    stamps = [v.ts for m in (*COVID_CUMULATIVE, "new_cases", "hospitalised_critical")
              for v in ctx.store.latest(m, entity_ids=[TERRITORY])]
    if not stamps and not (ctx.params.start or ctx.params.end):
        return None
    last = (max(stamps).astimezone(HKT).date() if stamps else ctx.now.astimezone(HKT).date())
    end = ctx.params.end or last
    start = ctx.params.start or date(2020, 1, 1)
    if ctx.params.start and not ctx.params.end and start > last:
        end = start
    return hk_day_start(start), hk_day_start(end) + timedelta(days=1)


def _daily(ctx: QueryContext, metric: str, start: datetime, end: datetime
           ) -> dict[int, float | None]:
    # One day before the window: the first day's new count needs the previous total.
    # Hourly buckets (empty ones are omitted) keep each daily value at its own time: daily
    # buckets are aligned to UTC midnight, which would move 00:00 HKT values a day back.
    points = ctx.store.series(TERRITORY, metric, start - timedelta(days=1), end,
                              timedelta(hours=1))
    return {_day_key(p.ts): p.avg for p in points}


def _day_key(ts: datetime) -> int:
    """Epoch seconds of the HK calendar day holding ``ts`` (the series' x values)."""
    d = ts.astimezone(HKT).date()
    return int(hk_day_start(d).timestamp())


def _diff(totals: dict[int, float | None], xs: list[int]) -> list[float | None]:
    out: list[float | None] = []
    for x in xs:
        cur, prev = totals.get(x), totals.get(x - 86400)
        # Cumulative counts are sometimes revised down; a negative "new" count is a revision,
        # not a day's figure: shown as a gap.
        out.append(cur - prev if cur is not None and prev is not None and cur >= prev else None)
    return out


def _rolling(values: list[float | None], days: int = 7) -> list[float | None]:
    out: list[float | None] = []
    for i in range(len(values)):
        window = [v for v in values[max(0, i - days + 1): i + 1] if v is not None]
        out.append(sum(window) / len(window) if len(window) >= days // 2 + 1 else None)
    return out


def _days(start: datetime, end: datetime) -> list[int]:
    xs = []
    t = start
    while t < end:
        xs.append(int(t.timestamp()))
        t += timedelta(days=1)
    return xs


@custom
def covid_cases(ctx: QueryContext, tile: Tile) -> TileData:
    """New cases per day: from the cumulative confirmed count (2020-21), from PCR and rapid
    antigen test positives (2022 edition), and from the case-level file where present, with a
    7-day average of the total."""
    window = _covid_window(ctx)
    if window is None:
        return TileData()
    start, end = window
    xs = _days(start, end)
    confirmed = _diff(_daily(ctx, "confirmed_cases_total", start, end), xs)
    pcr = _diff(_daily(ctx, "pcr_positive_total", start, end), xs)
    rat = _diff(_daily(ctx, "rat_positive_total", start, end), xs)
    reported = _daily(ctx, "new_cases", start, end)
    case_level = [reported.get(x) for x in xs]
    total: list[float | None] = []
    for c, p, r, n in zip(confirmed, pcr, rat, case_level, strict=True):
        if p is not None or r is not None:
            total.append((p or 0) + (r or 0))
        else:
            total.append(c if c is not None else n)
    ys = {"confirmed": confirmed, "pcr": pcr, "rat": rat, "case_level": case_level,
          "total": total, "avg7": _rolling(total)}
    keep = [i for i, x in enumerate(xs) if any(ys[k][i] is not None for k in ys)]
    if not keep:
        return TileData()
    lo, hi = keep[0], keep[-1] + 1
    series = SeriesData(xs[lo:hi], {k: v[lo:hi] for k, v in ys.items()}, 86400)
    updated = datetime.fromtimestamp(series.x[-1], UTC)
    return TileData(updated=updated, series=series)


@custom
def covid_deaths(ctx: QueryContext, tile: Tile) -> TileData:
    window = _covid_window(ctx)
    if window is None:
        return TileData()
    start, end = window
    xs = _days(start, end)
    deaths = _diff(_daily(ctx, "deaths_total", start, end), xs)
    critical = _daily(ctx, "hospitalised_critical", start, end)
    ys: dict[str, list[float | None]] = {
        "deaths": deaths, "avg7": _rolling(deaths), "critical": [critical.get(x) for x in xs]}
    keep = [i for i, x in enumerate(xs) if any(ys[k][i] is not None for k in ys)]
    if not keep:
        return TileData()
    lo, hi = keep[0], keep[-1] + 1
    series = SeriesData(xs[lo:hi], {k: v[lo:hi] for k, v in ys.items()}, 86400)
    return TileData(updated=datetime.fromtimestamp(series.x[-1], UTC), series=series)


@custom
def covid_vaccinations(ctx: QueryContext, tile: Tile) -> TileData:
    """Vaccination figures where a feed provides them; empty (the tile hides) otherwise."""
    present = [m for m in VACCINATION_METRICS if ctx.store.latest(m, entity_ids=[TERRITORY])]
    window = _covid_window(ctx)
    if not present or window is None:
        return TileData()
    start, end = window
    xs = _days(start, end)
    ys = {}
    for m in present:
        got = _daily(ctx, m, start, end)
        ys[m] = [got.get(x) for x in xs]
    return TileData(updated=datetime.fromtimestamp(xs[-1], UTC) if xs else None,
                    series=SeriesData(xs, ys, 86400))


@custom
def covid_totals(ctx: QueryContext, tile: Tile) -> TileData:
    """The latest cumulative figures (within the selected range) and the range itself."""
    window = _covid_window(ctx)
    if window is None:
        return TileData()
    start, end = window
    figures: list[Figure] = []
    names = {
        "confirmed_cases_total": ("Confirmed cases (cumulative)", "確診個案（累計）"),
        "pcr_positive_total": ("Positive by nucleic acid test (cumulative)",
                               "核酸檢測陽性（累計）"),
        "rat_positive_total": ("Positive by rapid antigen test (cumulative)",
                               "快速抗原測試陽性（累計）"),
        "deaths_total": ("Deaths (cumulative)", "死亡（累計）"),
        "discharged_total": ("Discharged (cumulative)", "出院（累計）"),
    }
    for metric, (en, zh) in names.items():
        points = ctx.store.series(TERRITORY, metric, start, end, timedelta(hours=1))
        points = [p for p in points if p.avg is not None]
        if points:
            last = points[-1]
            figures.append(Figure(metric, en, zh, last.avg, ts=last.ts))
    if not figures:
        return TileData()
    return TileData(updated=_newest(f.ts for f in figures), figures=figures,
                    extra={"start": start, "end": end - timedelta(days=1)})


# --- Smart Village ------------------------------------------------------------------------------

SEVERITY_ORDER = ("info", "low", "moderate", "high", "severe")


def _rank(severity: str | None) -> int:
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else -1


def _sensor_alerts(ctx: QueryContext) -> list[Event]:
    return [e for e in active_events(ctx, "alert")
            if any(i.startswith("sensor:") for i in e.entity_ids)]


@custom
def village_sensors(ctx: QueryContext, tile: Tile) -> TileData:
    """Every Smart Village sensor with its type, village, latest flood level and alert state
    (the highest severity among its open alerts, else normal)."""
    sensors = {e.id: e for e in ctx.entities("sensor")}
    if not sensors:
        return TileData()
    alerts = _sensor_alerts(ctx)
    state: dict[str, Event] = {}
    for a in alerts:
        for sid in a.entity_ids:
            if sid in sensors and _rank(a.severity) > _rank(getattr(state.get(sid), "severity",
                                                                    None)):
                state[sid] = a
    levels = {v.entity_id: v for v in ctx.store.latest("water_level_cm", kind="sensor")}
    window_start = ctx.now - timedelta(hours=24)
    detections: dict[str, Event] = {}
    for d in ctx.store.events(window_start, ctx.now, kind="detection"):
        for sid in d.entity_ids:
            if sid in sensors and (sid not in detections
                                   or d.starts_at > detections[sid].starts_at):
                detections[sid] = d
    rows: list[Row] = []
    for sid, e in sensors.items():
        row = row_for(e)
        props = e.properties or {}
        row.props["sensor_type"] = props.get("sensor_type") or ""
        row.props["village"] = props.get("village") or ""
        if sid in levels:
            v = levels[sid]
            row.values["water_level_cm"] = Value(v.value, v.label, v.ts)
        alert = state.get(sid)
        row.values["alert_state"] = Value(None, alert.severity if alert else "normal",
                                          alert.starts_at if alert else None)
        if alert:
            row.props["alert_en"] = alert.title_en
            row.props["alert_zh"] = alert.title_zh
        det = detections.get(sid)
        if det:
            row.props["detection"] = (det.properties or {}).get("detection")
            row.props["detection_at"] = det.starts_at
            conf = (det.properties or {}).get("confidence")
            row.props["confidence"] = conf if isinstance(conf, int | float) else None
        rows.append(row)
    rows.sort(key=lambda r: (-_rank(r.values["alert_state"].label), r.props["village"], r.id))
    updated = _newest([*(r.ts for r in rows), *(a.starts_at for a in alerts),
                       *(d.starts_at for d in detections.values())])
    figures = [
        Figure("sensors", "Sensors", "感應器", float(len(rows))),
        Figure("alerts", "Open alerts", "生效中的警報", float(len(alerts))),
        Figure("detections", "Detections, last 24 h", "過去 24 小時偵測", float(
            len(ctx.store.events(window_start, ctx.now, kind="detection")))),
    ]
    return TileData(updated=updated, rows=rows, figures=figures)


@custom
def village_alerts(ctx: QueryContext, tile: Tile) -> TileData:
    alerts = _sensor_alerts(ctx)
    if ctx.params.district:
        sensors = {e.id for e in ctx.entities("sensor")}
        alerts = [a for a in alerts if any(i in sensors for i in a.entity_ids)]
    alerts.sort(key=lambda e: (_rank(e.severity), e.starts_at), reverse=True)
    return TileData(updated=_newest(a.starts_at for a in alerts), events=alerts,
                    extra={"has_data": bool(alerts)})


@custom
def village_detections(ctx: QueryContext, tile: Tile) -> TileData:
    sensors = {e.id for e in ctx.entities("sensor")}
    found = [d for d in ctx.store.events(ctx.now - tile.query.window, ctx.now, kind="detection")
             if not ctx.params.district or any(i in sensors for i in d.entity_ids)]
    found.sort(key=lambda e: e.starts_at, reverse=True)
    return TileData(updated=_newest(d.starts_at for d in found), events=found[: tile.query.limit],
                    extra={"has_data": bool(found)})


# --- one district -------------------------------------------------------------------------------

PLACE_LAYERS = (
    ("aqhi-station", "aqhi", "aqhi"),
    ("weather-station", "temperature_c", None),
    ("carpark", "vacancy_private_car", "vacancy"),
    ("sensor", "water_level_cm", "flood"),
)


@custom
def district_places(ctx: QueryContext, tile: Tile) -> TileData:
    """Everything with a position in the district: AQHI and weather stations, car parks,
    Smart Village sensors and traffic incidents, one map layer each."""
    rows: list[Row] = []
    updated: datetime | None = None
    for kind, metric, _scheme in PLACE_LAYERS:
        ents = {e.id: e for e in ctx.entities(kind) if e.lat is not None and e.lon is not None}
        if not ents:
            continue
        values = {v.entity_id: v for v in ctx.store.latest(metric, kind=kind)}
        for eid, e in ents.items():
            row = row_for(e)
            row.props["layer"] = kind
            row.values["layer"] = Value(None, kind)
            v = values.get(eid)
            if v is not None:
                row.values[metric] = Value(v.value, v.label, v.ts)
                updated = v.ts if updated is None or v.ts > updated else updated
            rows.append(row)
    news = traffic_news(ctx, tile)
    for r in news.rows:
        r.props["layer"] = "traffic-news"
        r.values["layer"] = Value(None, "traffic-news")
        rows.append(r)
    updated = _newest([updated, news.updated])
    return TileData(updated=updated, rows=rows, extra={"has_data": bool(rows)})


@custom
def analytics_slot(ctx: QueryContext, tile: Tile) -> TileData:
    """Nothing yet: the tile marks where the analytics module's figures will go."""
    return TileData()
