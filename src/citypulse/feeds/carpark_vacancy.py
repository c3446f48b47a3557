"""Car park vacancy, DATA.GOV.HK one-stop API (``carpark-info-vacancy?data=vacancy``).

``{"results": [{"park_Id": "27", "privateCar": [{"vacancy_type": "A", "vacancy": 12,
"vacancyEV": 3, "vacancyDIS": 1, "lastupdate": "2024-05-01 10:02:11", "category": "HOURLY"}],
"LGV": [...], ...}]}``. Vehicle-type keys appear only when the car park has that type.

Modelling choice: the vehicle type is part of the *metric* (``vacancy_private_car``,
``vacancy_lgv``, ``vacancy_hgv``, ``vacancy_cv``, ``vacancy_coach``, ``vacancy_motorcycle``;
EV / disabled / unloading spaces as ``vacancy_ev_private_car`` etc.), not a label: several
vehicle types of one car park share one ``lastupdate`` and observations are keyed by
(entity, metric, time), so a label would make them collide.

- ``vacancy`` -1 = no data -> skipped (counted). ``vacancy_type`` becomes the label: ``A`` =
  ``count`` (number of free spaces), ``B`` = ``flag`` (0 full / 1 available), ``C`` =
  ``closed``.
- ``lastupdate`` is the observation time; it can be days old (stale operators) and is kept as
  is, with a note counting entries older than a day.
- A ``category`` other than ``HOURLY`` is appended to the metric so hourly and e.g. monthly
  counts of one vehicle type do not collide.
- Entities (names, coordinates) come from the sister feed ``carpark-info``; this feed only
  emits observations for ``carpark:{park_Id}``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from citypulse.feeds.base import FeedError, FeedSpec, parse_hk_time, parse_json
from citypulse.model import Batch, ObservationBuilder, utc

FEED_ID = "carpark-vacancy"
URL = "https://api.data.gov.hk/v1/carpark-info-vacancy?data=vacancy&lang=en_US"

VEHICLE_TYPES = {
    "privateCar": "private_car",
    "LGV": "lgv",
    "HGV": "hgv",
    "CV": "cv",
    "coach": "coach",
    "motorCycle": "motorcycle",
}
EXTRA_COUNTS = {"vacancyEV": "ev", "vacancyDIS": "dis", "vacancyUNL": "unl"}
VACANCY_LABELS = {"A": "count", "B": "flag", "C": "closed"}
MAX_VACANCY = 20_000
_PARK_ID = re.compile(r"[A-Za-z0-9_\-.]{1,40}")
_CATEGORY = re.compile(r"[A-Za-z]{1,20}")
_TIME = re.compile(r"(?:19|20|21)[0-9]{2}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}(?::[0-9]{2})?")


def park_entity_id(park_id: str) -> str:
    return f"carpark:{park_id}"


def count(value: Any) -> int | None:
    """An integer count from an int, an integral float or a digit string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) <= 10**9 else None
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) <= 10**9 else None
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]{1,9}\s*", value):
        return int(value)
    return None


def park_id_of(rec: dict[str, Any]) -> str | None:
    raw = rec.get("park_Id")
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str):
        return None
    raw = raw.strip()
    return raw if _PARK_ID.fullmatch(raw) else None


def parse(payload: bytes, fetched_at: datetime) -> Batch:
    doc = parse_json(payload, SPEC.max_bytes)
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise FeedError("unexpected-shape", "expected an object with a 'results' list")
    fetched = utc(fetched_at)
    future_limit = fetched + timedelta(days=1)
    stale_limit = fetched - timedelta(days=1)

    obs = ObservationBuilder()
    times: dict[str, datetime | None] = {}
    seen_parks: set[str] = set()
    seen: set[tuple[str, str, datetime]] = set()
    skipped = no_data = bad = duplicates = stale = 0
    unknown_keys: set[str] = set()

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
        if park_id in seen_parks:
            skipped += 1
            duplicates += 1
            continue
        seen_parks.add(park_id)
        eid = park_entity_id(park_id)
        for key, entries in rec.items():
            if key == "park_Id":
                continue
            vt = VEHICLE_TYPES.get(key)
            if vt is None:
                if len(unknown_keys) < 20:
                    unknown_keys.add(key[:40])
                continue
            if not isinstance(entries, list):
                skipped += 1
                bad += 1
                continue
            for entry in entries:
                if not isinstance(entry, dict):
                    skipped += 1
                    bad += 1
                    continue
                stamp = entry.get("lastupdate")
                ts = None
                if isinstance(stamp, str):
                    if stamp in times:
                        ts = times[stamp]
                    else:
                        ts = times[stamp] = _time(stamp)
                if ts is None or ts > future_limit:
                    skipped += 1
                    bad += 1
                    continue
                if ts < stale_limit:
                    stale += 1
                vtype = entry.get("vacancy_type")
                label = VACANCY_LABELS.get(vtype) if isinstance(vtype, str) else None
                category = entry.get("category")
                suffix = ""
                if (
                    isinstance(category, str)
                    and _CATEGORY.fullmatch(category)
                    and category.upper() != "HOURLY"
                ):
                    suffix = f"_{category.lower()}"
                for field, metric in _metrics(vt, suffix):
                    if field not in entry:
                        continue
                    value = count(entry[field])
                    if value == -1:
                        skipped += 1
                        no_data += 1
                        continue
                    if value is None or not 0 <= value <= MAX_VACANCY:
                        skipped += 1
                        bad += 1
                        continue
                    k = (eid, metric, ts)
                    if k in seen:
                        skipped += 1
                        duplicates += 1
                        continue
                    seen.add(k)
                    obs.add(eid, metric, ts, float(value), label)

    notes: list[str] = []
    if no_data:
        notes.append(f"{no_data} counts of -1 (no data) skipped")
    if bad:
        notes.append(f"{bad} entries with missing or out-of-range fields skipped")
    if duplicates:
        notes.append(f"{duplicates} duplicate car parks/entries skipped (first kept)")
    if stale:
        notes.append(f"{stale} entries last updated more than a day before the fetch")
    if unknown_keys:
        notes.append("unknown keys ignored: " + ", ".join(sorted(unknown_keys)))
    return Batch.build(FEED_ID, payload, fetched_at, observations=obs, skipped=skipped, notes=notes)


@cache
def _metrics(vt: str, suffix: str) -> list[tuple[str, str]]:
    """(entry field, metric) pairs for one vehicle type, e.g. ``vacancyEV`` ->
    ``vacancy_ev_private_car``."""
    pairs = [("vacancy", f"vacancy_{vt}{suffix}")]
    pairs += [(f, f"vacancy_{name}_{vt}{suffix}") for f, name in EXTRA_COUNTS.items()]
    return pairs


def _time(text: str) -> datetime | None:
    text = text.strip()
    if not _TIME.fullmatch(text):
        return None
    try:
        return parse_hk_time(text)
    except (FeedError, OverflowError):
        return None


SPEC = FeedSpec(
    id=FEED_ID,
    title_en="Car park vacancy (DATA.GOV.HK)",
    title_zh="停車場空位（資料一線通）",
    url=URL,
    interval_s=300,
    parse=parse,
    topics=("mobility", "mobility.parking"),
    media_type="application/json",
    licence="DATA.GOV.HK Terms and Conditions of Use",
    attribution=(
        "Transport Department and participating car park operators, via DATA.GOV.HK "
        "(Parking Vacancy Data, one-stop version)"
    ),
    file_patterns=("carpark-vacancy*.json", "carpark_vacancy*.json"),
    archive_url=None,
    max_bytes=16 * 1024 * 1024,
)
