"""HKO current weather report (Open Data API ``dataType=rhrread``), JSON, hourly at ~HH:02.

Language: we poll ``lang=en`` (the portal's default language, and what FORMATS lists as the
live URL); the Chinese URL is in ``SPEC.extra["url_tc"]``. Place names are resolved through the
packaged ``hko_places.csv`` table, which knows both spellings, so either language yields the same
bilingual entities and the same observations. Message texts (warnings, cyclone bulletins, tips)
land in ``body_en`` or ``body_zh`` depending on the language polled; event titles are bilingual.
Polling both languages is harmless for observations; for events the last poll wins.

Output:
- ``hko-station:{id}`` (kind ``weather-station``): ``temperature_c`` (each station, ts =
  ``temperature.recordTime``), ``humidity_pct`` (Observatory), ``uv_index`` (King's Park, ts =
  ``updateTime`` floored to the hour, label = HKO's intensity word), ``weather_icon``
  (Observatory, ts = ``iconUpdateTime``, label = all icon codes).
- ``hko-district:{id}`` (kind ``rainfall-district``): ``rainfall_mm`` = the district's maximum
  over the hour ending ``rainfall.endTime``; label ``"min-max"`` when HKO gives a range.
  Gauges under maintenance (``main`` = ``"TRUE"``) report a meaningless 0: skipped, counted.
- ``hko-region:{id}`` (kind ``lightning-region``): ``lightning`` 1/0 for the hour.
- Events (kind ``weather-message``, severity ``info``), one per non-empty message field per
  report: ``warningMessage``, ``tcmessage``, ``specialWxTips``, ``rainstormReminder``; id
  ``hko-rhrread:{field}:{updateTime}``, valid for the hour after ``updateTime``.

Type switches handled: message fields are ``""`` or a list of strings (a bare string is read as
one line); ``uvindex`` is ``""`` at night or an object; ``rainfall.data[].min`` may be absent;
station count varies (26/27) so nothing is indexed by position. Unknown places still produce an
entity (slug id, no position). Unknown keys are ignored. The four free-text summary fields
(``mintempFrom00To09`` ...) are not parsed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from citypulse.feeds._hk_common import (
    HOUR,
    Rows,
    clean_name,
    floor_hour,
    has_cjk,
    hk_iso,
    hko_place,
    in_range,
    slug,
    stamp,
    to_float,
)
from citypulse.feeds.base import FeedError, FeedSpec, parse_json
from citypulse.model import Batch, Entity, Event

FEED_ID = "hko-rhrread"
URL_EN = "https://data.weather.gov.hk/weatherAPI/opendata/weather.php?dataType=rhrread&lang=en"
URL_TC = "https://data.weather.gov.hk/weatherAPI/opendata/weather.php?dataType=rhrread&lang=tc"

TEMP_RANGE = (-30.0, 50.0)
RH_RANGE = (0.0, 100.0)
RAIN_RANGE = (0.0, 1000.0)  # mm in one hour; the HK record is ~145 mm
UV_RANGE = (0.0, 30.0)
MAX_RECORDS = 200
"""Per section: HKO lists ~27 stations and 18 districts; more is garbage or an attack."""

MESSAGE_FIELDS: dict[str, tuple[str, str]] = {
    "warningMessage": ("Weather warnings in force", "現正生效的天氣警告"),
    "tcmessage": ("Tropical cyclone information", "熱帶氣旋消息"),
    "specialWxTips": ("Special weather tips", "特別天氣提示"),
    "rainstormReminder": ("Rainstorm reminder", "暴雨提示"),
}

_KINDS = {
    "station": ("hko-station", "weather-station"),
    "district": ("hko-district", "rainfall-district"),
    "region": ("hko-region", "lightning-region"),
}


def place_entity(kind: str, name: str, lang: str) -> Entity:
    """The entity for an HKO place name in either language (``kind``: station, district,
    region); unknown names get a slug id and no position."""
    prefix, ekind = _KINDS[kind]
    place = hko_place(kind, name)
    if place is not None:
        return Entity(
            id=f"{prefix}:{place.id}",
            kind=ekind,
            name_en=place.name_en,
            name_zh=place.name_zh,
            lat=place.lat,
            lon=place.lon,
            district=place.district,
            properties={"source": "hko"},
        )
    zh = lang == "zh" or has_cjk(name)
    return Entity(
        id=f"{prefix}:{slug(name)}",
        kind=ekind,
        name_en=None if zh else name,
        name_zh=name if zh else None,
        properties={"source": "hko", "unlisted": True},
    )


def detect_lang(doc: dict[str, Any]) -> str:
    """``zh`` when the payload's place names are Chinese, else ``en``."""
    for section in ("temperature", "rainfall", "humidity"):
        block = doc.get(section)
        data = block.get("data") if isinstance(block, dict) else None
        if isinstance(data, list):
            for rec in data:
                if isinstance(rec, dict) and isinstance(rec.get("place"), str):
                    return "zh" if has_cjk(rec["place"]) else "en"
    return "en"


def _records(rows: Rows, doc: dict[str, Any], section: str) -> tuple[list[Any], Any] | None:
    block = doc.get(section)
    if block is None or block == "":
        return None
    if not isinstance(block, dict) or not isinstance(block.get("data"), list):
        rows.skip(f"{section}: unexpected shape")
        return None
    data = block["data"]
    if len(data) > MAX_RECORDS:
        rows.skip(f"{section}: more than {MAX_RECORDS} records", len(data) - MAX_RECORDS)
        data = data[:MAX_RECORDS]
    return data, block


def _section_time(
    rows: Rows, block: dict[str, Any], key: str, section: str, n: int
) -> datetime | None:
    try:
        return hk_iso(block.get(key))
    except FeedError:
        rows.skip(f"{section}: bad or missing {key}", n)
        return None


def _station_values(
    rows: Rows, doc: dict[str, Any], lang: str, section: str, metric: str,
    units: set[str], bounds: tuple[float, float],
) -> None:
    got = _records(rows, doc, section)
    if got is None:
        return
    data, block = got
    ts = _section_time(rows, block, "recordTime", section, len(data))
    if ts is None:
        return
    for rec in data:
        if not isinstance(rec, dict):
            rows.skip(f"{section}: not an object")
            continue
        name = clean_name(rec.get("place"))
        value = to_float(rec.get("value"))
        unit = rec.get("unit")
        if name is None:
            rows.skip(f"{section}: bad place name")
        elif unit is not None and unit not in units:
            rows.skip(f"{section}: unexpected unit")
        elif value is None:
            rows.skip(f"{section}: bad value")
        elif not in_range(value, *bounds):
            rows.skip(f"{section}: out of range")
        else:
            ent = place_entity("station", name, lang)
            rows.entity(ent)
            rows.add(ent.id, metric, ts, value)


def _rainfall(rows: Rows, doc: dict[str, Any], lang: str) -> None:
    got = _records(rows, doc, "rainfall")
    if got is None:
        return
    data, block = got
    ts = _section_time(rows, block, "endTime", "rainfall", len(data))
    if ts is None:
        return
    for rec in data:
        if not isinstance(rec, dict):
            rows.skip("rainfall: not an object")
            continue
        name = clean_name(rec.get("place"))
        high = to_float(rec.get("max"))
        main = rec.get("main")
        if name is None:
            rows.skip("rainfall: bad place name")
        elif isinstance(main, str) and main.strip().upper() == "TRUE":
            rows.skip("rainfall: gauge under maintenance (main=TRUE)")
        elif rec.get("unit", "mm") != "mm":
            rows.skip("rainfall: unexpected unit")
        elif high is None:
            rows.skip("rainfall: bad max")
        elif not in_range(high, *RAIN_RANGE):
            rows.skip("rainfall: out of range")
        else:
            low = to_float(rec.get("min"))
            label = f"{low:g}-{high:g}" if low is not None and 0 <= low <= high else None
            ent = place_entity("district", name, lang)
            rows.entity(ent)
            rows.add(ent.id, "rainfall_mm", ts, high, label)


def _uv(rows: Rows, doc: dict[str, Any], lang: str, update: datetime) -> None:
    uv = doc.get("uvindex")
    if uv is None or uv == "":
        return  # night: HKO sends ""
    if not isinstance(uv, dict) or not isinstance(uv.get("data"), list):
        rows.skip("uvindex: unexpected shape")
        return
    ts = floor_hour(update)
    for rec in uv["data"][:MAX_RECORDS]:
        if not isinstance(rec, dict):
            rows.skip("uvindex: not an object")
            continue
        name = clean_name(rec.get("place"))
        value = to_float(rec.get("value"))
        desc = clean_name(rec.get("desc"))
        if name is None or value is None or not in_range(value, *UV_RANGE):
            rows.skip("uvindex: bad record")
            continue
        ent = place_entity("station", name, lang)
        rows.entity(ent)
        rows.add(ent.id, "uv_index", ts, value, desc)


def _lightning(rows: Rows, doc: dict[str, Any], lang: str) -> None:
    got = _records(rows, doc, "lightning")
    if got is None:
        return
    data, block = got
    ts = _section_time(rows, block, "endTime", "lightning", len(data))
    if ts is None:
        return
    for rec in data:
        name = clean_name(rec.get("place")) if isinstance(rec, dict) else None
        occur = rec.get("occur") if isinstance(rec, dict) else None
        word = occur.strip().lower() if isinstance(occur, str) else ""
        flag = {"true": 1.0, "false": 0.0}.get(word)
        if name is None or flag is None:
            rows.skip("lightning: bad record")
            continue
        ent = place_entity("region", name, lang)
        rows.entity(ent)
        rows.add(ent.id, "lightning", ts, flag, word)


def _icon(rows: Rows, doc: dict[str, Any], lang: str) -> None:
    icons = doc.get("icon")
    if icons is None:
        return
    codes = [to_float(i) for i in icons] if isinstance(icons, list) else []
    valid = [int(c) for c in codes if c is not None and c == int(c) and 0 < c < 1000]
    if not valid or len(valid) != len(codes):
        rows.skip("icon: bad value")
        return
    try:
        ts = hk_iso(doc.get("iconUpdateTime"))
    except FeedError:
        rows.skip("icon: bad iconUpdateTime")
        return
    ent = place_entity("station", "Hong Kong Observatory", lang)
    rows.entity(ent)
    rows.add(ent.id, "weather_icon", ts, float(valid[0]), ",".join(map(str, valid[:10])))


def message_lines(value: Any) -> list[str] | None:
    """Lines of a message field: ``""``/absent -> [], list of strings or one string -> lines;
    None when the shape is unexpected."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    return None


def _messages(rows: Rows, doc: dict[str, Any], lang: str, update: datetime) -> list[Event]:
    events: list[Event] = []
    for field, (title_en, title_zh) in MESSAGE_FIELDS.items():
        lines = message_lines(doc.get(field))
        if lines is None:
            rows.skip(f"{field}: unexpected shape")
            continue
        if not lines:
            continue
        body = "\n".join(lines)[:10_000]
        events.append(
            Event(
                id=f"{FEED_ID}:{field}:{stamp(update)}",
                kind="weather-message",
                severity="info",
                starts_at=update,
                ends_at=update + HOUR,
                title_en=title_en,
                title_zh=title_zh,
                body_en=None if lang == "zh" else body,
                body_zh=body if lang == "zh" else None,
                source=FEED_ID,
                properties={"field": field, "lang": lang, "lines": len(lines)},
            )
        )
    return events


def parse(payload: bytes, fetched_at: datetime) -> Batch:
    doc = parse_json(payload)
    if not isinstance(doc, dict):
        raise FeedError("unexpected-shape", "rhrread payload is not a JSON object")
    if not any(isinstance(doc.get(k), dict) for k in ("temperature", "rainfall", "humidity")):
        raise FeedError("missing-field", "no temperature, rainfall or humidity block")
    update = hk_iso(doc.get("updateTime"))
    lang = detect_lang(doc)
    rows = Rows()
    _station_values(rows, doc, lang, "temperature", "temperature_c", {"C"}, TEMP_RANGE)
    _station_values(rows, doc, lang, "humidity", "humidity_pct", {"percent"}, RH_RANGE)
    _rainfall(rows, doc, lang)
    _uv(rows, doc, lang, update)
    _lightning(rows, doc, lang)
    _icon(rows, doc, lang)
    events = _messages(rows, doc, lang, update)
    return Batch.build(
        FEED_ID,
        payload,
        fetched_at,
        entities=list(rows.entities.values()),
        observations=rows.builder,
        events=events,
        skipped=rows.skipped,
        notes=rows.notes([f"lang={lang}", f"updateTime={update.isoformat()}"]),
    )


SPEC = FeedSpec(
    id=FEED_ID,
    title_en="HKO current weather report",
    title_zh="天文台本港地區天氣報告",
    url=URL_EN,
    interval_s=600,
    parse=parse,
    topics=("weather", "environment"),
    media_type="application/json",
    licence="HKO Open Data: DATA.GOV.HK Terms and Conditions of Use",
    attribution="Source: Hong Kong Observatory, the Government of the Hong Kong SAR",
    file_patterns=("rhrread*.json",),
    extra={"url_tc": URL_TC, "updates": "hourly at ~HH:02, re-issues when warnings change"},
)
