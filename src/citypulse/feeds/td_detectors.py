"""TD traffic detectors: raw speed, volume and occupancy per lane (``rawSpeedVol-all.xml``).

One file holds two consecutive 30-second periods; each period lists ~750 detectors and each
detector its lanes. Modelling choice: the measuring unit is the *lane*, so every lane is its own
entity (``td-detector:AID01101:fast-lane``, kind ``traffic-detector-lane``) beside the detector
(``td-detector:AID01101``, kind ``traffic-detector``, placed from the packaged reference table).
The lane cannot live in ``label`` (observations are keyed by entity, metric and time, so two
lanes would collide) nor in the metric name (``speed_kmh`` must stay one metric across the
city for aggregation); a lane entity keeps both intact. Detector-level figures (total volume,
mean speed) are derived in analytics, not invented here.

Quirks handled (see shared FORMATS.md §2):
- ``volume`` 0 makes ``speed`` a placeholder (the speed limit): no speed is stored, volume 0
  and occupancy are; the skip is counted.
- ``speed`` 0 with vehicles counted is contradictory (seen with occupancy 100): skipped.
  ``s.d.`` (speed standard deviation) is kept as ``speed_sd_kmh`` when vehicles were counted.
- ``occupancy`` -1 = no data (skipped); values outside 0..100 are skipped.
- ``valid=N`` rows look normal; they are kept with label ``unvalidated`` so users can filter.
- ``direction`` sometimes has a trailing space.
- A period earlier than the previous one in the file rolled over midnight (date + 1 day); a
  file whose first period starts just after midnight but is dated the previous day is moved to
  the next day when that matches the fetch time.
- Duplicate detectors in a period and duplicate lanes in a detector: the first one wins.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from importlib import resources

from citypulse.feeds.base import HKT, FeedError, FeedSpec, parse_xml
from citypulse.model import Batch, Entity, ObservationBuilder, utc

FEED_ID = "td-detectors"
URL = "https://resource.data.one.gov.hk/td/traffic-detectors/rawSpeedVol-all.xml"

MAX_SPEED_KMH = 250  # above this a reading is not physical; >130 does occur and is kept
MAX_VOLUME_30S = 200  # vehicles per lane per 30 s; ~25 is already saturated traffic
UNVALIDATED = "unvalidated"

_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class DetectorRef:
    """One row of the packaged detector location table."""

    id: str
    district: str
    road_en: str
    road_tc: str
    lat: float
    lon: float
    direction: str


@cache
def reference() -> dict[str, DetectorRef]:
    """Detector locations from ``feeds/data/td_detectors.csv`` (built by
    ``scripts/build_detector_reference.py`` from TD's published table)."""
    text = resources.files("citypulse.feeds").joinpath("data/td_detectors.csv").read_text("utf-8")
    lines = (line for line in io.StringIO(text) if not line.startswith("#"))
    out: dict[str, DetectorRef] = {}
    for row in csv.DictReader(lines):
        out[row["id"]] = DetectorRef(
            id=row["id"],
            district=row["district"],
            road_en=row["road_en"],
            road_tc=row["road_tc"],
            lat=float(row["lat"]),
            lon=float(row["lon"]),
            direction=row["direction"],
        )
    return out


def lane_slug(lane_id: str) -> str:
    """``Middle Lane 1`` -> ``middle-lane-1``: stable, URL-safe lane part of the entity id."""
    return _SLUG.sub("-", lane_id.lower()).strip("-")


_INT = re.compile(r"-?[0-9]{1,9}")
_DEC = re.compile(r"-?[0-9]{1,9}(?:\.[0-9]{1,9})?")


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    return int(text) if _INT.fullmatch(text) else None


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    text = text.strip()
    if not _DEC.fullmatch(text):
        return None
    return float(text)


_HMS = re.compile(r"\d\d:\d\d:\d\d")


def _period_start(text: str | None) -> time | None:
    text = (text or "").strip()
    if not _HMS.fullmatch(text):
        return None
    try:
        return time.fromisoformat(text)
    except ValueError:
        return None


def _period_timestamps(
    day: date, starts: list[time | None], fetched_at: datetime
) -> tuple[list[datetime | None], list[str]]:
    """UTC start of each period, applying the two midnight rules (see module docstring)."""
    notes: list[str] = []
    out: list[datetime | None] = []
    offset = 0
    prev: time | None = None
    first: tuple[time, datetime] | None = None
    for start in starts:
        if start is None:
            out.append(None)
            continue
        if prev is not None and start < prev:
            offset += 1
            notes.append("period crossed midnight: date advanced by one day")
        prev = start
        ts = datetime.combine(day + timedelta(days=offset), start, tzinfo=HKT).astimezone(UTC)
        out.append(ts)
        if first is None:
            first = (start, ts)
    if first is not None:
        first_start, first_ts = first
        fetched = utc(fetched_at)
        if (
            first_start < time(1, 0)
            and fetched - first_ts > timedelta(hours=18)
            and abs(first_ts + timedelta(days=1) - fetched) < timedelta(hours=6)
        ):
            out = [ts + timedelta(days=1) if ts is not None else None for ts in out]
            notes.append("file dated the day before its 00:xx periods: moved to the next day")
    return out, notes


def parse(payload: bytes, fetched_at: datetime) -> Batch:
    root = parse_xml(payload, SPEC.max_bytes)
    tag = root.tag if isinstance(root.tag, str) else ""
    ns = tag[: tag.index("}") + 1] if tag.startswith("{") else ""
    if tag[len(ns) :] != "raw_speed_volume_list":
        raise FeedError("unexpected-root", f"root element is {tag!r}")
    date_text = root.findtext(f"{ns}date")
    try:
        day = date.fromisoformat((date_text or "").strip())
    except ValueError as exc:
        raise FeedError("bad-timestamp", f"file date {date_text!r}") from exc
    if not 2000 <= day.year <= 2100:
        raise FeedError("bad-timestamp", f"file date {date_text!r} out of range")
    periods = root.findall(f"{ns}periods/{ns}period")
    if not periods:
        raise FeedError("no-records", "no <period> in the file")

    starts = [_period_start(p.findtext(f"{ns}period_from")) for p in periods]
    stamps, notes = _period_timestamps(day, starts, fetched_at)

    ref = reference()
    obs = ObservationBuilder()
    add = obs.add
    detectors: dict[str, Entity] = {}
    lanes: dict[str, Entity] = {}
    skipped = 0
    placeholder = 0
    bad_period = 0
    duplicates = 0
    bad_values = 0
    unknown_detectors: set[str] = set()
    _slugs: dict[str, str] = {}

    t_id, t_dir, t_lane = f"{ns}detector_id", f"{ns}direction", f"{ns}lane_id"
    t_speed, t_occ, t_vol = f"{ns}speed", f"{ns}occupancy", f"{ns}volume"
    t_sd, t_valid = f"{ns}s.d.", f"{ns}valid"
    lanes_path = f"{ns}lanes/{ns}lane"
    for period, ts in zip(periods, stamps, strict=True):
        if ts is None:
            bad_period += 1
            skipped += 1
            continue
        seen: set[str] = set()
        for det in period.iterfind(f"{ns}detectors/{ns}detector"):
            det_id = (det.findtext(t_id) or "").strip()
            if not det_id or len(det_id) > 40:
                skipped += 1
                bad_values += 1
                continue
            if det_id in seen:
                skipped += 1
                duplicates += 1
                continue
            seen.add(det_id)
            parent = f"td-detector:{det_id}"
            if parent not in detectors:
                direction = " ".join((det.findtext(t_dir) or "").split()) or None
                detectors[parent] = _detector_entity(det_id, parent, direction, ref)
                if det_id not in ref:
                    unknown_detectors.add(det_id)
            lane_seen: set[str] = set()
            for lane in det.iterfind(lanes_path):
                # One pass over the lane's children: ~3x faster than six findtext() calls.
                f = {c.tag: c.text for c in lane}
                lane_id = f.get(t_lane) or ""
                slug = _slugs.get(lane_id)
                if slug is None:
                    slug = _slugs[lane_id] = lane_slug(lane_id)
                if not slug or len(slug) > 40:
                    skipped += 1
                    bad_values += 1
                    continue
                if slug in lane_seen:
                    skipped += 1
                    duplicates += 1
                    continue
                lane_seen.add(slug)
                eid = f"{parent}:{slug}"
                if eid not in lanes:
                    name = " ".join(lane_id.split())
                    lanes[eid] = _lane_entity(eid, parent, name, detectors[parent])
                label = UNVALIDATED if (f.get(t_valid) or "").strip() == "N" else None
                volume = _int(f.get(t_vol))
                if volume is None or not 0 <= volume <= MAX_VOLUME_30S:
                    skipped += 1
                    bad_values += 1
                else:
                    add(eid, "volume_veh", ts, float(volume), label)
                occupancy = _int(f.get(t_occ))
                if occupancy is None or not 0 <= occupancy <= 100:
                    skipped += 1
                    bad_values += 1
                else:
                    add(eid, "occupancy_pct", ts, float(occupancy), label)
                if volume is None:
                    skipped += 1  # the speed cannot be told from a placeholder
                    bad_values += 1
                    continue
                if volume == 0:
                    # No vehicle counted: the speed field holds the speed limit, not a reading.
                    placeholder += 1
                    skipped += 1
                    continue
                speed = _int(f.get(t_speed))
                if speed is None or not 0 < speed <= MAX_SPEED_KMH:
                    # 0 km/h with vehicles counted is contradictory (seen with occupancy 100).
                    skipped += 1
                    bad_values += 1
                else:
                    add(eid, "speed_kmh", ts, float(speed), label)
                sd = _float(f.get(t_sd))
                if sd is not None and 0 <= sd <= MAX_SPEED_KMH:
                    add(eid, "speed_sd_kmh", ts, sd, label)

    if placeholder:
        notes.append(f"{placeholder} placeholder speeds (volume 0) not stored")
    if bad_period:
        notes.append(f"{bad_period} periods without a readable period_from skipped")
    if duplicates:
        notes.append(f"{duplicates} duplicate detectors/lanes skipped (first kept)")
    if bad_values:
        notes.append(f"{bad_values} missing or out-of-range values skipped")
    if unknown_detectors:
        notes.append(f"{len(unknown_detectors)} detectors not in the reference table (no location)")
    return Batch.build(
        FEED_ID,
        payload,
        fetched_at,
        entities=[*detectors.values(), *lanes.values()],
        observations=obs,
        skipped=skipped,
        notes=notes,
    )


def _detector_entity(
    det_id: str, eid: str, direction: str | None, ref: dict[str, DetectorRef]
) -> Entity:
    r = ref.get(det_id)
    props: dict[str, object] = {"detector_id": det_id}
    if direction:
        props["direction"] = direction
    if r is None:
        return Entity(id=eid, kind="traffic-detector", name_en=det_id, properties=props)
    if r.direction and r.direction != direction:
        props["direction_table"] = r.direction
    return Entity(
        id=eid,
        kind="traffic-detector",
        name_en=r.road_en or det_id,
        name_zh=r.road_tc or None,
        lat=r.lat,
        lon=r.lon,
        district=r.district or None,
        properties=props,
    )


_LANE_ZH = {"fast": "快線", "middle": "中線", "slow": "慢線"}


def lane_name_zh(lane_id: str) -> str:
    """``Middle Lane 2`` -> ``中線2``; unknown lane words stay in English."""
    words = lane_id.split()
    if len(words) >= 2 and words[0].lower() in _LANE_ZH and words[1].lower() == "lane":
        return _LANE_ZH[words[0].lower()] + "".join(words[2:])
    return lane_id


def _lane_entity(eid: str, parent_id: str, lane_id: str, parent: Entity) -> Entity:
    base_en = parent.name_en or parent_id
    return Entity(
        id=eid,
        kind="traffic-detector-lane",
        name_en=f"{base_en} ({lane_id})",
        name_zh=f"{parent.name_zh}（{lane_name_zh(lane_id)}）" if parent.name_zh else None,
        lat=parent.lat,
        lon=parent.lon,
        district=parent.district,
        properties={"detector": parent_id, "lane": lane_id},
    )


# The parser is defined above SPEC so that parse() can read SPEC.max_bytes at call time.
SPEC = FeedSpec(
    id=FEED_ID,
    title_en="Traffic detectors: speed, volume and occupancy (TD)",
    title_zh="交通探測器：車速、車流量及佔用率（運輸署）",
    url=URL,
    interval_s=60,
    parse=parse,
    topics=("traffic", "traffic.detectors"),
    media_type="application/xml",
    licence="DATA.GOV.HK Terms and Conditions of Use",
    attribution="Transport Department, HKSAR Government (via DATA.GOV.HK)",
    file_patterns=("rawSpeedVol-all*.xml",),
    archive_url=URL,
    max_bytes=8 * 1024 * 1024,
)

__all__ = ["SPEC", "DetectorRef", "lane_name_zh", "lane_slug", "parse", "reference"]
