"""Car park information, DATA.GOV.HK one-stop API (``carpark-info-vacancy?data=info``).

Entities only: ``carpark:{park_Id}`` (kind ``carpark``) with name, coordinates, district and a
few stable facts (address, nature, type, opening status, spaces per vehicle type) that the
vacancy feed (``carpark-vacancy``) refers to. The response is
``{"results": [{park_Id, name, nature, carpark_Type, address{...}, displayAddress, district,
latitude, longitude, contactNo, website, opening_status, openingHours[], heightLimits[],
facilities[], paymentMethods[], privateCar{space, spaceEV, spaceDIS, ...}, ..., lang}]}``.

Language: the API answers in one language per request (``lang=en_US|zh_TW|zh_CN``, echoed in
each record's ``lang``). English records fill ``name_en``, Chinese ones ``name_zh``; the feed
polls ``lang=en_US`` by default. English districts lose their " District" suffix
("Kwun Tong District" -> "Kwun Tong") to match the other feeds' district names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from citypulse.feeds.base import FeedError, FeedSpec, parse_json
from citypulse.feeds.carpark_vacancy import VEHICLE_TYPES, count, park_entity_id, park_id_of
from citypulse.model import Batch, Entity

FEED_ID = "carpark-info"
URL = "https://api.data.gov.hk/v1/carpark-info-vacancy?data=info&lang=en_US"

LAT_RANGE = (22.13, 22.58)
LON_RANGE = (113.82, 114.45)
MAX_TEXT = 500


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = " ".join(value.split())
    return value[:MAX_TEXT] or None


def _coord(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        out = float(value)
    elif isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return out if out == out else None


def _heights(limits: Any) -> list[float]:
    """Height limits in metres from ``heightLimits`` ([{"height": 2.0, ...}, ...])."""
    if not isinstance(limits, list):
        return []
    out = []
    for item in limits:
        h = _coord(item.get("height")) if isinstance(item, dict) else None
        if h is not None and 0 < h < 20:
            out.append(h)
    return out


def parse(payload: bytes, fetched_at: datetime) -> Batch:
    doc = parse_json(payload, SPEC.max_bytes)
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise FeedError("unexpected-shape", "expected an object with a 'results' list")
    entities: dict[str, Entity] = {}
    skipped = bad = duplicates = no_coord = 0
    for rec in doc["results"]:
        if not isinstance(rec, dict):
            skipped += 1
            bad += 1
            continue
        park_id = park_id_of(rec)
        if park_id is None:
            skipped += 1
            bad += 1
            continue
        eid = park_entity_id(park_id)
        if eid in entities:
            skipped += 1
            duplicates += 1
            continue
        lat, lon = _coord(rec.get("latitude")), _coord(rec.get("longitude"))
        if not (
            lat is not None
            and lon is not None
            and LAT_RANGE[0] <= lat <= LAT_RANGE[1]
            and LON_RANGE[0] <= lon <= LON_RANGE[1]
        ):
            lat = lon = None
            no_coord += 1
        lang = _text(rec.get("lang")) or "en_US"
        chinese = lang.lower().startswith("zh")
        name = _text(rec.get("name")) or park_id
        props: dict[str, Any] = {"park_id": park_id, "lang": lang}
        for src, dst in (
            ("displayAddress", "address_zh" if chinese else "address_en"),
            ("nature", "nature"),
            ("carpark_Type", "carpark_type"),
            ("opening_status", "opening_status"),
            ("contactNo", "contact"),
            ("website", "website"),
        ):
            value = _text(rec.get(src))
            if value:
                props[dst] = value
        spaces: dict[str, int] = {}
        for key, vt in VEHICLE_TYPES.items():
            block = rec.get(key)
            if isinstance(block, dict):
                n = count(block.get("space"))
                if n is not None and n >= 0:
                    spaces[vt] = n
        if spaces:
            props["spaces"] = spaces
        heights = _heights(rec.get("heightLimits"))
        if heights:
            props["height_limit_m"] = min(heights)
        district = _text(rec.get("district"))
        if district and district.endswith(" District"):
            district = district.removesuffix(" District")  # "Kwun Tong District" -> "Kwun Tong"
        entities[eid] = Entity(
            id=eid,
            kind="carpark",
            name_en=None if chinese else name,
            name_zh=name if chinese else None,
            lat=lat,
            lon=lon,
            district=district,
            properties=props,
        )
    notes: list[str] = []
    if bad:
        notes.append(f"{bad} records without a usable park_Id skipped")
    if duplicates:
        notes.append(f"{duplicates} duplicate park_Id records skipped (first kept)")
    if no_coord:
        notes.append(f"{no_coord} car parks without usable coordinates (kept, not placed)")
    return Batch.build(
        FEED_ID,
        payload,
        fetched_at,
        entities=list(entities.values()),
        skipped=skipped,
        notes=notes,
    )


SPEC = FeedSpec(
    id=FEED_ID,
    title_en="Car park information (DATA.GOV.HK)",
    title_zh="停車場資料（資料一線通）",
    url=URL,
    interval_s=86_400,
    parse=parse,
    topics=("mobility", "mobility.parking", "reference"),
    media_type="application/json",
    licence="DATA.GOV.HK Terms and Conditions of Use",
    attribution=(
        "Transport Department and participating car park operators, via DATA.GOV.HK "
        "(Parking Vacancy Data, one-stop version)"
    ),
    file_patterns=("carpark-info*.json", "carpark_info*.json"),
    archive_url=None,
    max_bytes=32 * 1024 * 1024,
)
