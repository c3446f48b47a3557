"""TD Traffic Speeds of Road Network Segments (``irnAvgSpeed-all.xml``), ~4,400 segments.

Format (FORMATS.md §1b): root ``segment_speed_list`` (no namespace; a default namespace is
accepted too) with header ``date`` (``YYYY-MM-DD``), ``time`` (``HH:MM:SS``), ``irn_version``
and ``segments`` -> ``segment`` records of ``segment_id``, ``speed`` (km/h, one decimal) and
``valid`` (``Y``/``N``).

Decisions (each one tested):
- One timestamp for the whole file: ``date`` + ``time``, Hong Kong local time (UTC+8) by
  definition of this feed (no offset is ever sent); an explicit offset on ``time`` is honoured.
  A missing or unreadable header time is a ``FeedError``: no row could be dated.
- ``valid=N`` rows carry the segment's speed limit as a placeholder, not a measurement: they
  are skipped and counted, never stored. Rows with a missing or unknown flag likewise.
- A speed that is not a plain non-negative decimal, or lies outside 0..150 km/h, skips that
  row only; the payload is kept.
- Segments missing from the packaged route table (~3 % are) keep their observations; the
  entity has no route name and the batch notes how many.
- The same segment twice in one payload: the first row is kept, the rest counted.
- Entities have no coordinates: TD publishes segment geometry only in a 17 MB FGDB.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from functools import lru_cache

from lxml import etree

from citypulse.feeds.base import FeedError, FeedSpec
from citypulse.feeds.reference import irn_segments, route_name
from citypulse.feeds.td_speedmap import (
    load_root,
    local_tag,
    parse_speed,
    parse_time,
    records,
    skip_notes,
    speed_table,
    unknown_note,
    valid_id,
)
from citypulse.model import Batch, Entity

FEED_ID = "td-irn-speed"
METRIC = "speed_kmh"
_FIELDS = ("segment_id", "speed", "valid")


def _child_text(el: etree._Element, name: str) -> str | None:
    """Whitespace-normalised text of the first child named ``name``; None when absent."""
    for child in el:
        if local_tag(child.tag) == name:
            return " ".join((child.text or "").split())
    return None


def _child(el: etree._Element, name: str) -> etree._Element | None:
    for child in el:
        if local_tag(child.tag) == name:
            return child
    return None


@lru_cache(maxsize=16384)
def _entity(segment_id: str, irn_version: str | None) -> tuple[Entity, bool] | None:
    """Entity of a segment and whether the route table knows it; None for an unusable id.
    Cached and shared between batches: entities are frozen, and consumers must treat
    ``properties`` as read-only."""
    if not valid_id(segment_id):
        return None
    route = irn_segments().get(segment_id)
    props: dict[str, object] = {}
    if irn_version:
        props["irn_version"] = irn_version
    entity_id = f"td-segment:{segment_id}"
    if route is None:
        return Entity(entity_id, "road-segment", properties=props), False
    props["route"] = route
    name_en, name_zh = route_name(route)
    return Entity(entity_id, "road-segment", name_en, name_zh, properties=props), True


def parse(payload: bytes, fetched_at: datetime) -> Batch:
    """Segment speeds XML -> one ``speed_kmh`` observation per valid segment."""
    root = load_root(payload, "segment_speed_list")
    date, time = _child_text(root, "date") or "", _child_text(root, "time") or ""
    when = parse_time(f"{date}T{time}") if date and time else None
    if when is None:
        raise FeedError("bad-timestamp", f"unreadable header date/time {date[:40]!r} {time[:40]!r}")
    irn_version = (_child_text(root, "irn_version") or "")[:40] or None
    segments = _child(root, "segments")
    rows = records(segments, "segment", _FIELDS) if segments is not None else []
    if not rows:
        raise FeedError("no-records", "no <segment> records")

    speeds: dict[str, tuple[float | None, str]] = {}
    entities: dict[str, Entity] = {}
    skips: Counter[str] = Counter()
    unknown: set[str] = set()
    ids: list[str] = []
    values: list[float] = []

    for segment_id, speed_text, valid in rows:
        found = _entity(segment_id, irn_version)
        if found is None:
            skips["missing or invalid segment_id"] += 1
            continue
        entity, known = found
        entity_id = entity.id
        if entity_id in entities:
            skips["duplicate segment"] += 1
            continue
        entities[entity_id] = entity
        if not known:
            unknown.add(segment_id)
        if valid != "Y":
            flag = valid.upper()
            if flag == "N":
                skips["valid=N placeholder speed"] += 1
                continue
            if flag != "Y":
                skips["missing or unknown valid flag"] += 1
                continue
        parsed = speeds.get(speed_text)
        if parsed is None:
            parsed = speeds[speed_text] = parse_speed(speed_text)
        speed, why = parsed
        if speed is None:
            skips[why] += 1
            continue
        ids.append(entity_id)
        values.append(speed)

    batch = Batch.build(
        FEED_ID,
        payload,
        fetched_at,
        entities=list(entities.values()),
        skipped=sum(skips.values()),
        notes=skip_notes(skips) + unknown_note("segment id(s)", unknown, "without route name"),
    )
    batch.observations = speed_table(ids, when[1], values)
    return batch


SPEC = FeedSpec(
    id=FEED_ID,
    title_en="Traffic speeds of road network segments (TD)",
    title_zh="道路網絡路段行車速度（運輸署）",
    url="https://resource.data.one.gov.hk/td/traffic-detectors/irnAvgSpeed-all.xml",
    interval_s=120,
    parse=parse,
    topics=("traffic",),
    attribution="Transport Department, the Government of the Hong Kong SAR (DATA.GOV.HK)",
    file_patterns=("irnAvgSpeed-all*.xml",),
    archive_url="https://resource.data.one.gov.hk/td/traffic-detectors/irnAvgSpeed-all.xml",
    extra={"dataset": "hk-td-sm_4-traffic-data-strategic-major-roads"},
)
