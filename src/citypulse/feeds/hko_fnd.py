"""HKO 9-day weather forecast (Open Data API ``dataType=fnd``), JSON, ~2x a day + special issues.

The forecast is one territory-wide series, entity ``hko-forecast:hk`` (kind
``weather-forecast``). Per forecast day (ts = that date 00:00 HKT):
``forecast_max_temp_c`` / ``forecast_min_temp_c`` (label = the day's weather text),
``forecast_max_rh_pct`` / ``forecast_min_rh_pct``, ``forecast_icon`` and ``forecast_psr`` (HKO's
probability of significant rain as an ordinal 1 low .. 5 high, label = the English class). A
later issue writes the same (entity, metric, date) keys: the series is "the forecast for that
day", the issue time is in the entity's properties with the general situation and each day's
wind/weather text. Also ``sea_temperature_c`` at North Point and
``soil_temperature_{0_5,1_0}m_c`` at the Observatory, at their record times.

Works for ``lang=en`` and ``lang=tc`` (SPEC polls English; PSR words are mapped for both).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from citypulse.feeds._hk_common import Rows, clean_name, hk_date, hk_iso, in_range, to_float
from citypulse.feeds.base import FeedError, FeedSpec, parse_json
from citypulse.feeds.hko_rhrread import place_entity
from citypulse.model import Batch, Entity

FEED_ID = "hko-fnd"
URL_EN = "https://data.weather.gov.hk/weatherAPI/opendata/weather.php?dataType=fnd&lang=en"
URL_TC = "https://data.weather.gov.hk/weatherAPI/opendata/weather.php?dataType=fnd&lang=tc"
FORECAST_ENTITY = "hko-forecast:hk"

TEMP_RANGE = (-20.0, 50.0)
RH_RANGE = (0.0, 100.0)

PSR_LEVELS: dict[str, tuple[int, str]] = {
    "low": (1, "Low"),
    "medium low": (2, "Medium Low"),
    "medium": (3, "Medium"),
    "medium high": (4, "Medium High"),
    "high": (5, "High"),
    "低": (1, "Low"),
    "中低": (2, "Medium Low"),
    "中": (3, "Medium"),
    "中高": (4, "Medium High"),
    "高": (5, "High"),
}
"""PSR class -> (ordinal, English label); en, tc and sc words."""

_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")


def psr_level(text: Any) -> tuple[int, str] | None:
    if not isinstance(text, str):
        return None
    return PSR_LEVELS.get(" ".join(text.replace("-", " ").split()).casefold())


def _measure(block: Any, unit: str) -> float | None:
    if not isinstance(block, dict) or block.get("unit", unit) != unit:
        return None
    return to_float(block.get("value"))


def forecast_entity(properties: dict[str, Any]) -> Entity:
    return Entity(
        id=FORECAST_ENTITY,
        kind="weather-forecast",
        name_en="Hong Kong 9-day weather forecast",
        name_zh="香港九天天氣預報",
        lat=22.3019,
        lon=114.1742,
        properties=properties,
    )


def _text(value: Any, limit: int = 2000) -> str | None:
    if not isinstance(value, str):
        return None
    return " ".join(value.split())[:limit] or None


def _day(rows: Rows, rec: Any, days: list[dict[str, Any]]) -> None:
    if not isinstance(rec, dict):
        rows.skip("weatherForecast: not an object")
        return
    raw = rec.get("forecastDate")
    m = _DATE.fullmatch(raw.strip()) if isinstance(raw, str) else None
    if m is None:
        rows.skip("weatherForecast: bad forecastDate")
        return
    try:
        ts = hk_date(int(m[3]), int(m[2]), int(m[1]))
    except FeedError:
        rows.skip("weatherForecast: bad forecastDate")
        return
    weather = _text(rec.get("forecastWeather"))
    psr = psr_level(rec.get("PSR"))
    days.append(
        {
            "date": m[0],
            "week": _text(rec.get("week"), 20),
            "wind": _text(rec.get("forecastWind")),
            "weather": weather,
            "psr": psr[1] if psr else None,
        }
    )
    label = weather[:200] if weather else None
    for key, metric, unit, bounds in (
        ("forecastMaxtemp", "forecast_max_temp_c", "C", TEMP_RANGE),
        ("forecastMintemp", "forecast_min_temp_c", "C", TEMP_RANGE),
        ("forecastMaxrh", "forecast_max_rh_pct", "percent", RH_RANGE),
        ("forecastMinrh", "forecast_min_rh_pct", "percent", RH_RANGE),
    ):
        if key not in rec:
            rows.absent(f"weatherForecast: {key}")
            continue
        value = _measure(rec.get(key), unit)
        if value is None or not in_range(value, *bounds):
            rows.skip(f"weatherForecast: bad {key}")
            continue
        rows.add(FORECAST_ENTITY, metric, ts, value, label if metric.endswith("temp_c") else None)
    icon = to_float(rec.get("ForecastIcon"))
    if icon is not None and icon == int(icon) and 0 < icon < 1000:
        rows.add(FORECAST_ENTITY, "forecast_icon", ts, icon, label)
    elif "ForecastIcon" in rec:
        rows.skip("weatherForecast: bad ForecastIcon")
    if psr is not None:
        rows.add(FORECAST_ENTITY, "forecast_psr", ts, float(psr[0]), psr[1])
    elif "PSR" in rec:
        rows.skip("weatherForecast: unknown PSR")


def _point(rows: Rows, rec: Any, lang: str, metric: str, what: str) -> None:
    if not isinstance(rec, dict):
        rows.skip(f"{what}: not an object")
        return
    name = clean_name(rec.get("place"))
    value = _measure(rec, "C")
    try:
        ts = hk_iso(rec.get("recordTime"))
    except FeedError:
        rows.skip(f"{what}: bad recordTime")
        return
    if name is None or value is None or not in_range(value, -5.0, 50.0):
        rows.skip(f"{what}: bad record")
        return
    ent = place_entity("station", name, lang)
    rows.entity(ent)
    rows.add(ent.id, metric, ts, value)


def _soil(rows: Rows, soil: Any, lang: str) -> None:
    if soil is None or soil == "":
        return
    if not isinstance(soil, list):
        rows.skip("soilTemp: unexpected shape")
        return
    for rec in soil:
        depth_block = rec.get("depth") if isinstance(rec, dict) else None
        depth = _measure(depth_block, "metre")
        if depth is None or not in_range(depth, 0.01, 10.0):
            rows.skip("soilTemp: bad depth")
            continue
        metric = f"soil_temperature_{depth:.1f}m_c".replace(".", "_", 1)
        _point(rows, rec, lang, metric, "soilTemp")


def parse(payload: bytes, fetched_at: datetime) -> Batch:
    doc = parse_json(payload)
    if not isinstance(doc, dict):
        raise FeedError("unexpected-shape", "fnd payload is not a JSON object")
    forecast = doc.get("weatherForecast")
    if not isinstance(forecast, list):
        raise FeedError("missing-field", "weatherForecast list missing")
    update = hk_iso(doc.get("updateTime"))
    situation = _text(doc.get("generalSituation"), 5000)
    lang = "zh" if situation and any("\u4e00" <= ch <= "\u9fff" for ch in situation) else "en"
    rows = Rows()
    days: list[dict[str, Any]] = []
    for rec in forecast[:31]:
        _day(rows, rec, days)
    if len(forecast) > 31:
        rows.skip("weatherForecast: more than 31 days", len(forecast) - 31)
    sea = doc.get("seaTemp")
    if sea not in (None, ""):
        _point(rows, sea, lang, "sea_temperature_c", "seaTemp")
    _soil(rows, doc.get("soilTemp"), lang)
    props: dict[str, Any] = {
        "source": "hko",
        "update_time": update.isoformat(),
        "lang": lang,
        f"general_situation_{lang}": situation,
        "days": days,
    }
    entities = [forecast_entity(props), *rows.entities.values()]
    return Batch.build(
        FEED_ID,
        payload,
        fetched_at,
        entities=entities,
        observations=rows.builder,
        skipped=rows.skipped,
        notes=rows.notes([f"lang={lang}", f"updateTime={update.isoformat()}"]),
    )


SPEC = FeedSpec(
    id=FEED_ID,
    title_en="HKO 9-day weather forecast",
    title_zh="天文台九天天氣預報",
    url=URL_EN,
    interval_s=1800,
    parse=parse,
    topics=("weather", "forecast"),
    media_type="application/json",
    licence="HKO Open Data: DATA.GOV.HK Terms and Conditions of Use",
    attribution="Source: Hong Kong Observatory, the Government of the Hong Kong SAR",
    file_patterns=("fnd*.json",),
    extra={"url_tc": URL_TC, "updates": "~16:30 and 11:30 HKT, plus special issues"},
)
