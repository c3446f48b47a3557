"""Wi-Fi.HK free hotspot locations (OGCIO), fixed and non-fixed files.

Both files are a JSON array (UTF-8 with BOM) of flat records with language-suffixed keys:
``OrganisationCode``, ``LocationID``, ``LocationNameEN/TC/SC``, ``NumberOfHotspots`` (a digit
string), ``SSID``, ``SupportHotline``, ...; the non-fixed file (buses, trains, ferries) adds
``VehicleTypeNameEN/TC/SC``, the fixed file (venues) ``VenueTypeEN/TC``, ``AddressEN/TC``,
``AreaEN/TC``, ``DistrictEN/TC``, ``Latitude``, ``Longitude``.

Each record is one venue or fleet, not one access point: entity
``wifi:{OrganisationCode}:{LocationID}`` (kind ``wifi-hotspot``) plus an observation
``hotspots`` = ``NumberOfHotspots`` at fetch time (the file carries no timestamp). The fixed file
has tens of thousands of records, so the loop stays lean: no per-record validation library,
only non-empty properties.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from citypulse.feeds.base import FeedError, FeedSpec, parse_json
from citypulse.model import Batch, Entity, ObservationBuilder, utc

FEED_ID = "wifi-hk"
URL = "https://www.ogcio.gov.hk/en/our_work/community/common_wifi_branding/fixed-wi-fi-hk-locations.json"
URL_NON_FIXED = (
    "https://www.ogcio.gov.hk/en/our_work/community/common_wifi_branding/"
    "non-fixed-wi-fi-hk-locations.json"
)

LAT_RANGE = (22.13, 22.58)
LON_RANGE = (113.82, 114.45)
MAX_HOTSPOTS = 100_000
MAX_TEXT = 300
_DIGITS = re.compile(r"\s*[0-9]{1,9}\s*")

# (source key, property name) copied when non-empty.
_PROPS = (
    ("SSID", "ssid"),
    ("VenueTypeEN", "venue_type_en"),
    ("VenueTypeTC", "venue_type_zh"),
    ("VehicleTypeNameEN", "vehicle_type_en"),
    ("VehicleTypeNameTC", "vehicle_type_zh"),
    ("AddressEN", "address_en"),
    ("AddressTC", "address_zh"),
    ("AreaEN", "area_en"),
    ("AreaTC", "area_zh"),
    ("DistrictTC", "district_zh"),
    ("SupportHotline", "support_hotline"),
)


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value[:MAX_TEXT] if value else None


def _coord(value: Any) -> float | None:
    cls = value.__class__
    if cls is float or cls is int:
        return float(value)
    if cls is str and value:
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _hotspots(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 <= value <= MAX_HOTSPOTS else None
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        n = int(value)
        return n if n <= MAX_HOTSPOTS else None
    return None


def parse(payload: bytes, fetched_at: datetime) -> Batch:
    doc = parse_json(payload, SPEC.max_bytes)
    if not isinstance(doc, list):
        raise FeedError("unexpected-shape", "expected a JSON array of locations")
    ts = utc(fetched_at)
    obs = ObservationBuilder()
    add = obs.add
    entities: dict[str, Entity] = {}
    skipped = bad_id = duplicates = bad_count = no_coord = 0
    lat_lo, lat_hi = LAT_RANGE
    lon_lo, lon_hi = LON_RANGE
    get = dict.get

    # Hot loop over up to tens of thousands of records: plain dict access and str methods only
    # (a regex or helper call per field doubled the parse time of a 30 000-record file).
    for rec in doc:
        if rec.__class__ is not dict:
            skipped += 1
            bad_id += 1
            continue
        org, loc = rec.get("OrganisationCode"), rec.get("LocationID")
        if org.__class__ is not str or loc.__class__ is not str:
            skipped += 1
            bad_id += 1
            continue
        org, loc = org.strip(), loc.strip()
        if not org or not loc or ":" in org or ":" in loc or len(org) + len(loc) > 120:
            skipped += 1
            bad_id += 1
            continue
        eid = f"wifi:{org}:{loc}"
        if eid in entities:
            skipped += 1
            duplicates += 1
            continue
        # One comprehension instead of a loop with a branch per field: half the time.
        props: dict[str, Any] = {
            dst: text[:MAX_TEXT]
            for src, dst in _PROPS
            if (value := get(rec, src)).__class__ is str and (text := value.strip())
        }
        props["organisation"] = org
        lat, lon = _coord(rec.get("Latitude")), _coord(rec.get("Longitude"))
        if lat is None or lon is None:
            lat = lon = None
            mobile = "VehicleTypeNameEN" in rec
            props["mobile"] = mobile
            if not mobile:
                no_coord += 1
        elif not (lat_lo <= lat <= lat_hi and lon_lo <= lon <= lon_hi):
            lat = lon = None
            no_coord += 1
        entities[eid] = Entity(
            eid,
            "wifi-hotspot",
            _text(rec.get("LocationNameEN")),
            _text(rec.get("LocationNameTC")),
            lat,
            lon,
            _text(rec.get("DistrictEN")),
            props,
        )
        raw = rec.get("NumberOfHotspots")
        n = (
            int(raw)
            if raw.__class__ is str and len(raw) < 10 and raw.isascii() and raw.isdigit()
            else None
        )
        if n is None:
            n = _hotspots(raw)
        if n is None or n > MAX_HOTSPOTS:
            skipped += 1
            bad_count += 1
        else:
            add(eid, "hotspots", ts, float(n))

    notes: list[str] = []
    if bad_id:
        notes.append(f"{bad_id} records without OrganisationCode/LocationID skipped")
    if duplicates:
        notes.append(f"{duplicates} duplicate locations skipped (first kept)")
    if bad_count:
        notes.append(f"{bad_count} records without a usable NumberOfHotspots (entity kept)")
    if no_coord:
        notes.append(f"{no_coord} fixed locations without usable coordinates (kept, not placed)")
    return Batch.build(
        FEED_ID,
        payload,
        fetched_at,
        entities=list(entities.values()),
        observations=obs,
        skipped=skipped,
        notes=notes,
    )


SPEC = FeedSpec(
    id=FEED_ID,
    title_en="Wi-Fi.HK free hotspot locations (OGCIO)",
    title_zh="Wi-Fi.HK 免費熱點位置（數字政策辦公室）",
    url=URL,
    interval_s=86_400,
    parse=parse,
    topics=("connectivity", "connectivity.wifi"),
    media_type="application/json",
    licence="DATA.GOV.HK Terms and Conditions of Use",
    attribution="Wi-Fi.HK, Digital Policy Office (formerly OGCIO), HKSAR Government",
    file_patterns=("fixed-wi-fi-hk-locations*.json", "non-fixed-wi-fi-hk-locations*.json"),
    archive_url=URL,
    max_bytes=64 * 1024 * 1024,
    extra={"urls": (URL, URL_NON_FIXED)},
)
