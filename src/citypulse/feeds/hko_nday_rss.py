"""HKO 9-day forecast RSS (``SeveralDaysWeatherForecast.xml``, English), loose text in CDATA.

The JSON ``fnd`` feed carries the same content structured and is preferred live (this one is
off by default); the RSS shape matters for old captures and archive backfill. Output matches
``hko-fnd``: entity ``hko-forecast:hk`` with ``forecast_max_temp_c`` / ``forecast_min_temp_c``
(label = weather text) and ``forecast_max_rh_pct`` / ``forecast_min_rh_pct`` per day (ts = the
day 00:00 HKT), plus ``sea_temperature_c`` and ``soil_temperature_{0_5,1_0}m_c`` at their stated
times; general situation and per-day wind/weather in the entity's properties.

Format: bulletin time in ``title`` (``Bulletin updated at 16:30 HKT 05/Feb/2018``, month as a
word; fallback ``pubDate`` in GMT), then blocks ``Date/Month: DD/MM (Weekday)``, ``Wind:``,
``Weather:``, ``Temp range: A - B C``, ``R.H. range: A - B per Cent`` separated by tabs,
newlines, ``<br/>`` and ``<p/>``. Forecast days carry no year: a day-month earlier than the
bulletin's month-day belongs to the next year (December bulletins forecast January).
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from citypulse.feeds._hk_common import Rows, clean_name, hk_date, in_range, rfc822
from citypulse.feeds.base import HKT, FeedError, FeedSpec, child_text, local_name, parse_xml
from citypulse.feeds.hko_fnd import FORECAST_ENTITY, RH_RANGE, TEMP_RANGE, forecast_entity
from citypulse.feeds.hko_rhrread import place_entity
from citypulse.model import Batch

FEED_ID = "hko-nday-rss"
URL = "https://rss.weather.gov.hk/rss/SeveralDaysWeatherForecast.xml"

_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}
_TITLE = re.compile(r"(\d{1,2}):(\d{2})\s*HKT\s+(\d{1,2})/([A-Za-z]{3,9}|\d{1,2})/(\d{4})")
_TAGS = re.compile(r"<[^>]+>")
_SITUATION = re.compile(r"General Situation:\s*(.*?)\s*(?=Date/Month:|$)", re.I | re.S)
_DAY = re.compile(r"Date/Month:\s*(\d{1,2})/(\d{1,2})\s*(?:\(([A-Za-z]+)\))?", re.I)
_WIND = re.compile(r"Wind:\s*(.*?)\s*(?=Weather:|Temp range:|Date/Month:|$)", re.I | re.S)
_WEATHER = re.compile(
    r"Weather:\s*(.*?)\s*(?=Temp range:|R\.H\. range:|Date/Month:|$)", re.I | re.S
)
_TEMP = re.compile(r"Temp range:\s*(-?\d+(?:\.\d+)?)\s*-\s*(-?\d+(?:\.\d+)?)\s*C\b", re.I)
_RH = re.compile(r"R\.H\. range:\s*(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\s*per\s*cent", re.I)
_SEA = re.compile(
    r"Sea surface\s+temperature at\s+(\d{1,2})\s*([AP])\.M\.\s+(\d{1,2})/(\d{1,2})/(\d{4})\s+"
    r"at\s+(.{1,60}?)\s+was\s+(-?\d+(?:\.\d+)?)\s*degrees",
    re.I | re.S,
)
_SOIL_HEAD = re.compile(
    r"Soil\s+temperatures at\s+(\d{1,2})\s*([AP])\.M\.\s+(\d{1,2})/(\d{1,2})/(\d{4})\s+"
    r"at\s+(.{1,60}?)\s*:",
    re.I | re.S,
)
_SOIL = re.compile(r"(\d+(?:\.\d+)?)\s*M below surface was\s*(-?\d+(?:\.\d+)?)\s*degrees", re.I)


def _flat(text: str) -> str:
    """CDATA -> one line of text: tags become spaces, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(_TAGS.sub(" ", text)).split())


def _bulletin(title: str | None, pub: str | None) -> datetime:
    if title and (m := _TITLE.search(title)):
        month_text = m[4].lower()[:3]
        month = int(m[4]) if m[4].isdigit() else _MONTHS.get(month_text, 0)
        hour, minute = int(m[1]), int(m[2])
        if 1 <= month <= 12 and hour <= 23 and minute <= 59:
            return hk_date(int(m[3]), month, int(m[5])) + timedelta(hours=hour, minutes=minute)
    if pub:
        return rfc822(pub)
    raise FeedError("missing-field", "no bulletin time in title or pubDate")


def _clock(day: int, month: int, year: int, hour: int, ampm: str) -> datetime:
    if not 1 <= hour <= 12:
        raise FeedError("bad-timestamp", f"bad hour {hour}")
    h = hour % 12 + (12 if ampm.upper() == "P" else 0)
    return hk_date(day, month, year) + timedelta(hours=h)


def _days(rows: Rows, text: str, bulletin: datetime, days: list[dict[str, Any]]) -> None:
    local = bulletin.astimezone(HKT)
    starts = list(_DAY.finditer(text))
    for i, m in enumerate(starts):
        block = text[m.end(): starts[i + 1].start() if i + 1 < len(starts) else len(text)]
        day, month = int(m[1]), int(m[2])
        year = local.year + (1 if (month, day) < (local.month, local.day) else 0)
        try:
            ts = hk_date(day, month, year)
        except FeedError:
            rows.skip("day: bad date")
            continue
        wind = _WIND.search(block)
        weather = _WEATHER.search(block)
        weather_text = weather[1][:200] if weather else None
        days.append(
            {
                "date": f"{year:04d}{month:02d}{day:02d}",
                "week": m[3],
                "wind": wind[1][:2000] if wind else None,
                "weather": weather_text,
                "psr": None,
            }
        )
        for pattern, lo_metric, hi_metric, bounds in (
            (_TEMP, "forecast_min_temp_c", "forecast_max_temp_c", TEMP_RANGE),
            (_RH, "forecast_min_rh_pct", "forecast_max_rh_pct", RH_RANGE),
        ):
            r = pattern.search(block)
            if r is None:
                rows.skip(f"day: no {lo_metric.split('_')[2]} range")
                continue
            low, high = float(r[1]), float(r[2])
            if not (in_range(low, *bounds) and in_range(high, *bounds)):
                rows.skip("day: out of range")
                continue
            is_temp = lo_metric.endswith("temp_c")
            rows.add(FORECAST_ENTITY, hi_metric, ts, high, weather_text if is_temp else None)
            rows.add(FORECAST_ENTITY, lo_metric, ts, low, weather_text if is_temp else None)


def _sea_soil(rows: Rows, text: str) -> None:
    if (m := _SEA.search(text)) is not None:
        name = clean_name(m[6])
        try:
            ts = _clock(int(m[3]), int(m[4]), int(m[5]), int(m[1]), m[2])
        except FeedError:
            ts = None
        value = float(m[7])
        if name is None or ts is None or not in_range(value, -5.0, 50.0):
            rows.skip("sea temperature: bad record")
        else:
            ent = place_entity("station", name, "en")
            rows.entity(ent)
            rows.add(ent.id, "sea_temperature_c", ts, value)
    if (h := _SOIL_HEAD.search(text)) is not None:
        name = clean_name(h[6])
        try:
            ts = _clock(int(h[3]), int(h[4]), int(h[5]), int(h[1]), h[2])
        except FeedError:
            rows.skip("soil temperature: bad time")
            return
        if name is None:
            rows.skip("soil temperature: bad place")
            return
        ent = place_entity("station", name, "en")
        for s in _SOIL.finditer(text, h.end()):
            depth, value = float(s[1]), float(s[2])
            if not (in_range(depth, 0.01, 10.0) and in_range(value, -5.0, 50.0)):
                rows.skip("soil temperature: out of range")
                continue
            rows.entity(ent)
            metric = f"soil_temperature_{depth:.1f}m_c".replace(".", "_", 1)
            rows.add(ent.id, metric, ts, value)


def parse(payload: bytes, fetched_at: datetime) -> Batch:
    root = parse_xml(payload)
    if local_name(root) != "rss":
        raise FeedError("unexpected-root", f"expected <rss>, got <{local_name(root)[:40]}>")
    item = next(root.iter("{*}item", "item"), None)
    if item is None:
        raise FeedError("missing-field", "no <item>")
    desc = child_text(item, "description")
    if not desc:
        raise FeedError("missing-field", "empty <description>")
    bulletin = _bulletin(child_text(item, "title"), child_text(item, "pubDate"))
    text = _flat(desc)
    rows = Rows()
    days: list[dict[str, Any]] = []
    _days(rows, text, bulletin, days)
    if not days:
        raise FeedError("no-data", "no 'Date/Month:' forecast blocks")
    _sea_soil(rows, text)
    sit = _SITUATION.search(text)
    props: dict[str, Any] = {
        "source": "hko",
        "update_time": bulletin.astimezone(UTC).isoformat(),
        "lang": "en",
        "general_situation_en": sit[1][:5000] if sit else None,
        "days": days,
    }
    return Batch.build(
        FEED_ID,
        payload,
        fetched_at,
        entities=[forecast_entity(props), *rows.entities.values()],
        observations=rows.builder,
        skipped=rows.skipped,
        notes=rows.notes([f"bulletin={bulletin.isoformat()}"]),
    )


SPEC = FeedSpec(
    id=FEED_ID,
    title_en="HKO 9-day weather forecast (RSS)",
    title_zh="天文台九天天氣預報（RSS）",
    url=URL,
    interval_s=1800,
    parse=parse,
    topics=("weather", "forecast"),
    media_type="application/rss+xml",
    licence="HKO: DATA.GOV.HK Terms and Conditions of Use",
    attribution="Source: Hong Kong Observatory, the Government of the Hong Kong SAR",
    file_patterns=("SeveralDaysWeatherForecast*.xml",),
    archive_url=URL,
    enabled_by_default=False,
)
