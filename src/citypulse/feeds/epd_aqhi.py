"""EPD past-24-hour AQHI per station (``24aqhi_Eng.xml``), XML, hourly at ~HH:30.

Root ``<AQHI24HrReport>`` with RSS-like header elements, then flat ``<item>``s of ``type``
(General/Roadside Stations), ``StationName``, ``DateTime`` (RFC-822 ``+0800``) and ``aqhi``
(``1``..``10`` or ``10+``): 18 stations x 24 hours, grouped by station. Rows are keyed by
(station, DateTime), never by position, since an hour can be missing.

Output: entity ``epd-station:{id}`` (kind ``aqhi-station``; Chinese name, district, position and
station type from the packaged ``epd_stations.csv``; unknown stations get a slug id, no
position), observation ``aqhi`` per hour. ``10+`` is stored as value 11 (documented convention,
also what colour scales use); the label is the health-risk band: low (1-3), moderate (4-6),
high (7), very high (8-10), serious (10+). Each poll repeats 23 known hours: the store's
(entity, metric, ts) key makes that idempotent.
"""

from __future__ import annotations

from datetime import datetime

from lxml import etree

from citypulse.feeds._hk_common import Rows, children, clean_name, epd_station, rfc822, slug
from citypulse.feeds.base import FeedError, FeedSpec, child_text, local_name, parse_xml
from citypulse.model import Batch, Entity

FEED_ID = "epd-aqhi"
URL = "https://www.aqhi.gov.hk/epd/ddata/html/out/24aqhi_Eng.xml"
ROOT = "AQHI24HrReport"
AQHI_10_PLUS = 11.0
MISSING = {"", "-", "N/A", "n/a", "NA"}
MAX_STATIONS = 100
"""EPD runs 18 stations; a file naming more than this is garbage or an attack."""

BANDS_ZH = {"low": "低", "moderate": "中", "high": "高", "very high": "甚高", "serious": "嚴重"}


def band(aqhi: float) -> str:
    """EPD health-risk category of an AQHI value (11 = ``10+``)."""
    if aqhi <= 3:
        return "low"
    if aqhi <= 6:
        return "moderate"
    if aqhi <= 7:
        return "high"
    if aqhi <= 10:
        return "very high"
    return "serious"


def read_aqhi(text: str) -> float | None:
    """``1``..``10`` -> that value, ``10+`` -> 11; None for anything else."""
    text = text.strip()
    if text == "10+":
        return AQHI_10_PLUS
    if text.isascii() and text.isdigit() and 1 <= int(text) <= 10:
        return float(int(text))
    return None


def station_entity(name: str, station_type: str | None = None) -> Entity:
    """The entity of an EPD station by its English (or Chinese) name."""
    place = epd_station(name)
    if place is not None:
        return Entity(
            id=f"epd-station:{place.id}",
            kind="aqhi-station",
            name_en=place.name_en,
            name_zh=place.name_zh,
            lat=place.lat,
            lon=place.lon,
            district=place.district,
            properties={"source": "epd", "station_type": place.extra},
        )
    typ = (station_type or "").lower()
    return Entity(
        id=f"epd-station:{slug(name)}",
        kind="aqhi-station",
        name_en=name,
        properties={
            "source": "epd",
            "unlisted": True,
            "station_type": "roadside" if "roadside" in typ else "general" if typ else None,
        },
    )


def items(root: etree._Element, tag: str) -> list[etree._Element]:
    return [el for el in root if local_name(el) == tag]


def station_time(
    rows: Rows, fields: dict[str, str], cache: dict[str, Entity]
) -> tuple[Entity, datetime] | None:
    """Entity and hour of one item (from its ``children`` map); skipped and counted when the
    station name or time is unusable. ``cache`` keeps one entity per station name."""
    name = clean_name(fields.get("StationName"))
    if name is None:
        rows.skip("item: bad or missing StationName")
        return None
    try:
        ts = rfc822(fields.get("DateTime"))
    except FeedError:
        rows.skip("item: bad or missing DateTime")
        return None
    ent = cache.get(name)
    if ent is None:
        if len(cache) >= MAX_STATIONS:
            rows.skip(f"item: more than {MAX_STATIONS} stations")
            return None
        ent = cache[name] = station_entity(name, fields.get("type"))
    return ent, ts


def parse(payload: bytes, fetched_at: datetime) -> Batch:
    root = parse_xml(payload)
    if local_name(root) != ROOT:
        raise FeedError("unexpected-root", f"expected <{ROOT}>, got <{local_name(root)[:40]}>")
    rows = Rows()
    cache: dict[str, Entity] = {}
    for item in items(root, "item"):
        fields = children(item)
        got = station_time(rows, fields, cache)
        if got is None:
            continue
        ent, ts = got
        raw = fields.get("aqhi", "")
        value = read_aqhi(raw)
        if value is None:
            if raw.strip() in MISSING:
                rows.absent("aqhi")
            else:
                rows.skip("aqhi: not 1..10 or 10+")
            continue
        rows.entity(ent)
        rows.add(ent.id, "aqhi", ts, value, band(value))
    notes: list[str] = []
    built = child_text(root, "lastBuildDate")
    if built:
        try:
            notes.append(f"lastBuildDate={rfc822(built).isoformat()}")
        except FeedError:
            rows.skip("header: bad lastBuildDate")
    return Batch.build(
        FEED_ID,
        payload,
        fetched_at,
        entities=list(rows.entities.values()),
        observations=rows.builder,
        skipped=rows.skipped,
        notes=rows.notes(notes),
    )


SPEC = FeedSpec(
    id=FEED_ID,
    title_en="EPD Air Quality Health Index, past 24 hours",
    title_zh="環保署空氣質素健康指數（過去24小時）",
    url=URL,
    interval_s=900,
    parse=parse,
    topics=("air-quality", "environment"),
    media_type="application/xml",
    licence="DATA.GOV.HK Terms and Conditions of Use",
    attribution="Source: Environmental Protection Department, the Government of the Hong Kong SAR",
    file_patterns=("24aqhi_Eng*.xml",),
    archive_url=URL,
    extra={"url_zh": "https://www.aqhi.gov.hk/epd/ddata/html/out/24aqhi_Chi.xml"},
)
