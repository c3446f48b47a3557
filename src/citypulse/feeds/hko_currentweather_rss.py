"""HKO current weather RSS (``CurrentWeather.xml``, English), hourly bulletin with HTML in CDATA.

Older and wordier than the JSON ``rhrread`` report, but it is in the DATA.GOV.HK historical
archive (hourly since 2021), so it is what a backfill can replay. Off by default for live use.

Read from the item: bulletin time from ``title`` (``Bulletin updated at HH:MM HKT DD/MM/YYYY``),
falling back to ``pubDate`` (GMT) then the guid stamp; from the HTML: the observation hour
("At 8 p.m.", "At midnight", "At noon"), Observatory air temperature and relative humidity,
the King's Park UV index, the station temperature table (``29 degrees ;``), and - only when it
rained - the district rainfall table (``0 to 7&nbsp;mm;`` or ``3&nbsp;mm``) for the period named
in ``Between 10:45 and 11:45 p.m., ...`` (periods can span midnight: the end time is placed on
or before the bulletin time).

Output uses the same entities and metrics as ``hko-rhrread`` (``temperature_c``,
``humidity_pct``, ``uv_index``, ``rainfall_mm`` = the range's upper bound, label ``"min-max"``).
Districts without rain are omitted by HKO and produce nothing here (no invented zeros). The
warning list (``<SPAN id='warning_message'>``) and other advisory sentences become
``weather-message`` events like the JSON feed's.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

from citypulse.feeds._hk_common import (
    HOUR,
    Rows,
    clean_name,
    hk_date,
    in_range,
    rfc822,
    stamp,
)
from citypulse.feeds.base import HKT, FeedError, FeedSpec, child_text, local_name, parse_xml
from citypulse.feeds.hko_rhrread import MESSAGE_FIELDS, RAIN_RANGE, RH_RANGE, TEMP_RANGE, UV_RANGE
from citypulse.feeds.hko_rhrread import place_entity as _place
from citypulse.model import Batch, Event

FEED_ID = "hko-currentweather-rss"
URL = "https://rss.weather.gov.hk/rss/CurrentWeather.xml"

_TITLE = re.compile(r"(\d{1,2}):(\d{2})\s*HKT\s+(\d{1,2})/(\d{1,2})/(\d{4})")
_GUID = re.compile(r"CurrentWeather/(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})")
_AT = re.compile(r"\bAt\s+(midnight|noon|(\d{1,2})(?::(\d{2}))?\s*([ap])\.\s*m\.)", re.I)
_AIR = re.compile(r"Air temperature\s*:\s*(-?\d+(?:\.\d+)?)\s*degrees", re.I)
_RH = re.compile(r"Relative Humidity\s*:\s*(\d+(?:\.\d+)?)\s*per\s*cent", re.I)
_UV = re.compile(r"UV Index recorded at\s+([^:<]{1,60}?)\s*:\s*(\d+(?:\.\d+)?)", re.I)
_UV_DESC = re.compile(r"Intensity of UV radiation\s*:\s*([A-Za-z ]{1,30})", re.I)
_ROW = re.compile(
    r"<tr>\s*<td[^>]*>\s*(?:<font[^>]*>)?\s*([^<]{1,100}?)\s*(?:</font>)?\s*</td>\s*"
    r"<td[^>]*>\s*(?:<font[^>]*>)?\s*([^<]{1,100}?)\s*(?:</font>)?\s*</td>\s*</tr>",
    re.I,
)
_DEG = re.compile(r"(-?\d+(?:\.\d+)?)\s*degrees?\s*[;.]?$", re.I)
_MM = re.compile(r"(\d+(?:\.\d+)?)(?:\s*to\s*(\d+(?:\.\d+)?))?\s*mm\s*[;.]?$", re.I)
_BETWEEN = re.compile(
    r"Between\s+\d{1,2}:\d{2}(?:\s*[ap]\.\s*m\.)?\s+and\s+(\d{1,2}):(\d{2})\s*([ap])\.\s*m\.",
    re.I,
)
_SPAN = re.compile(r"<span[^>]*id=['\"]warning_message['\"][^>]*>(.*?)</span>", re.I | re.S)
_BR = re.compile(r"<br\s*/?>|<p\s*/?>|</p>", re.I)
_TAGS = re.compile(r"<[^>]+>")
_OTHER = re.compile(r"The air temperatures at other places", re.I)


def _text(fragment: str) -> str:
    return " ".join(html.unescape(_TAGS.sub(" ", fragment)).split())


def _hour12(hour: int, minute: int, ampm: str) -> tuple[int, int]:
    if not (1 <= hour <= 12 and 0 <= minute <= 59):
        raise FeedError("bad-timestamp", f"bad clock time {hour}:{minute:02d}")
    hour = hour % 12 + (12 if ampm.lower() == "p" else 0)
    return hour, minute


def _on_or_before(bulletin: datetime, hour: int, minute: int) -> datetime:
    """The latest HKT hour:minute not after the bulletin time (15 min slack): "At midnight"
    in a 00:02 bulletin is today, "11:45 p.m." in it is yesterday."""
    local = bulletin.astimezone(HKT)
    ts = datetime(local.year, local.month, local.day, hour, minute, tzinfo=HKT).astimezone(UTC)
    if ts > bulletin + timedelta(minutes=15):
        ts -= timedelta(days=1)
    return ts


def _bulletin_time(item_title: str | None, pub: str | None, guid: str | None) -> datetime:
    if item_title and (m := _TITLE.search(item_title)):
        hour, minute = int(m[1]), int(m[2])
        if hour <= 23 and minute <= 59:
            return hk_date(int(m[3]), int(m[4]), int(m[5])) + timedelta(hours=hour, minutes=minute)
    if pub:
        try:
            return rfc822(pub)
        except FeedError:
            pass
    if guid and (g := _GUID.search(guid)):
        hour, minute = int(g[4]), int(g[5])
        if hour <= 23 and minute <= 59:
            return hk_date(int(g[3]), int(g[2]), int(g[1])) + timedelta(hours=hour, minutes=minute)
    raise FeedError("missing-field", "no bulletin time in title, pubDate or guid")


def _obs_time(body: str, bulletin: datetime) -> datetime:
    m = _AT.search(body)
    if m is None:
        raise FeedError("missing-field", "no observation hour ('At ...') in the bulletin")
    word = m[1].lower()
    if word == "midnight":
        hour, minute = 0, 0
    elif word == "noon":
        hour, minute = 12, 0
    else:
        hour, minute = _hour12(int(m[2]), int(m[3] or 0), m[4])
    return _on_or_before(bulletin, hour, minute)


def _messages(body: str, bulletin: datetime) -> list[Event]:
    events: list[Event] = []
    span = _SPAN.search(body)
    warnings: list[str] = []
    if span:
        warnings = [
            t for t in (_text(p) for p in _BR.split(span[1]))
            if t and not t.lower().startswith("please be reminded")
        ]
    head_end = _OTHER.search(body)
    head = body[: head_end.start()] if head_end else body
    head = _SPAN.sub(" ", head)
    tips = []
    for part in _BR.split(head):
        t = _text(part)
        if len(t) < 25 or re.search(
            r"^(At |Air temperature|Relative Humidity|During the past hour|the mean UV|"
            r"Intensity of UV)", t, re.I,
        ) or "at the Hong Kong Observatory" in t:
            continue
        tips.append(t)
    for field, lines in (("warningMessage", warnings), ("specialWxTips", tips)):
        if not lines:
            continue
        title_en, title_zh = MESSAGE_FIELDS[field]
        events.append(
            Event(
                id=f"{FEED_ID}:{field}:{stamp(bulletin)}",
                kind="weather-message",
                severity="info",
                starts_at=bulletin,
                ends_at=bulletin + HOUR,
                title_en=title_en,
                title_zh=title_zh,
                body_en="\n".join(lines)[:10_000],
                source=FEED_ID,
                properties={"field": field, "lang": "en", "lines": len(lines)},
            )
        )
    return events


def _tables(rows: Rows, body: str, obs: datetime, bulletin: datetime) -> None:
    rain_at = _BETWEEN.search(body)
    rain_ts: datetime | None = None
    rain_from = len(body)
    if rain_at is not None:
        rain_from = rain_at.start()
        try:
            hour, minute = _hour12(int(rain_at[1]), int(rain_at[2]), rain_at[3])
            rain_ts = _on_or_before(bulletin, hour, minute)
        except FeedError:
            rows.skip("rainfall: bad period")
    for m in _ROW.finditer(body):
        name = clean_name(html.unescape(m[1]))
        value_text = " ".join(html.unescape(m[2]).replace("\xa0", " ").split())
        if name is None:
            rows.skip("table: bad place name")
            continue
        if (d := _DEG.match(value_text)) is not None:
            value = float(d[1])
            if not in_range(value, *TEMP_RANGE):
                rows.skip("temperature: out of range")
                continue
            ent = _place("station", name, "en")
            rows.entity(ent)
            rows.add(ent.id, "temperature_c", obs, value)
        elif (r := _MM.match(value_text)) is not None:
            if rain_ts is None or m.start() < rain_from:
                rows.skip("rainfall: no period sentence")
                continue
            low, high = float(r[1]), float(r[2]) if r[2] is not None else float(r[1])
            if not in_range(high, *RAIN_RANGE) or low > high:
                rows.skip("rainfall: out of range")
                continue
            ent = _place("district", name, "en")
            rows.entity(ent)
            label = f"{low:g}-{high:g}" if r[2] is not None else None
            rows.add(ent.id, "rainfall_mm", rain_ts, high, label)
        else:
            rows.skip("table: unreadable value")


def parse(payload: bytes, fetched_at: datetime) -> Batch:
    root = parse_xml(payload)
    if local_name(root) != "rss":
        raise FeedError("unexpected-root", f"expected <rss>, got <{local_name(root)[:40]}>")
    item = next(root.iter("{*}item", "item"), None)
    if item is None:
        raise FeedError("missing-field", "no <item>")
    body = child_text(item, "description")
    if not body:
        raise FeedError("missing-field", "empty <description>")
    bulletin = _bulletin_time(
        child_text(item, "title"), child_text(item, "pubDate"), child_text(item, "guid")
    )
    obs = _obs_time(body, bulletin)
    rows = Rows()
    _tables(rows, body, obs, bulletin)
    hko = _place("station", "Hong Kong Observatory", "en")
    if (m := _AIR.search(body)) is not None:
        value = float(m[1])
        if in_range(value, *TEMP_RANGE):
            rows.entity(hko)
            if (hko.id, "temperature_c", obs) not in rows.seen:
                rows.add(hko.id, "temperature_c", obs, value)
        else:
            rows.skip("temperature: out of range")
    if (m := _RH.search(body)) is not None:
        value = float(m[1])
        if in_range(value, *RH_RANGE):
            rows.entity(hko)
            rows.add(hko.id, "humidity_pct", obs, value)
        else:
            rows.skip("humidity: out of range")
    if (m := _UV.search(body)) is not None:
        name, value = clean_name(m[1]), float(m[2])
        desc = _UV_DESC.search(body)
        if name is not None and in_range(value, *UV_RANGE):
            ent = _place("station", name, "en")
            rows.entity(ent)
            rows.add(ent.id, "uv_index", obs, value, desc[1].strip().lower() if desc else None)
        else:
            rows.skip("uv: bad record")
    if not len(rows.builder):
        raise FeedError("no-data", "no temperature, humidity or rainfall in the bulletin")
    return Batch.build(
        FEED_ID,
        payload,
        fetched_at,
        entities=list(rows.entities.values()),
        observations=rows.builder,
        events=_messages(body, bulletin),
        skipped=rows.skipped,
        notes=rows.notes([f"bulletin={bulletin.isoformat()}", f"observed={obs.isoformat()}"]),
    )


SPEC = FeedSpec(
    id=FEED_ID,
    title_en="HKO current weather (RSS)",
    title_zh="天文台本港天氣（RSS）",
    url=URL,
    interval_s=600,
    parse=parse,
    topics=("weather", "environment"),
    media_type="application/rss+xml",
    licence="HKO: DATA.GOV.HK Terms and Conditions of Use",
    attribution="Source: Hong Kong Observatory, the Government of the Hong Kong SAR",
    file_patterns=("CurrentWeather*.xml",),
    archive_url=URL,
    enabled_by_default=False,
)
