"""TD Traffic Speed Map (legacy ``speedmap.xml``): average speed and saturation of ~600 links.

Format (FORMATS.md §1): root ``jtis_speedlist`` (no namespace in the 2016 captures; TD's XSD
declares ``http://data.one.gov.hk/td``; both accepted) holding ``jtis_speedmap`` records of
LINK_ID, REGION, ROAD_TYPE, ROAD_SATURATION_LEVEL, TRAFFIC_SPEED (integer km/h), CAPTURE_DATE.

Decisions (each one tested):
- CAPTURE_DATE is read per record: it differs by region inside one file. It carries no offset
  and is Hong Kong local time (UTC+8) by definition of this feed; an explicit offset (``Z``,
  ``+08:00``, ``+0800``), should TD ever send one, is honoured.
- Saturation level -> observation label: ``TRAFFIC GOOD`` -> ``good``, ``TRAFFIC AVERAGE`` ->
  ``average``, ``TRAFFIC BAD`` -> ``bad`` (case and spacing ignored, the ``TRAFFIC`` prefix
  optional). Any other level keeps the speed without a label and is noted; a missing level
  keeps the speed without a label.
- A record whose speed is not a plain non-negative decimal, or lies outside 0..150 km/h
  (``SPEED_MAX_KMH``), is skipped and counted: one impossible record does not cost the other
  600. So is a record without a usable link id or CAPTURE_DATE.
- A link id missing from the packaged link table keeps its observation; its entity has no
  coordinates and the batch notes it.
- The same (link, CAPTURE_DATE) twice in one payload: the first is kept, the rest counted.
- Structural problems (empty payload, HTML error page, malformed or truncated XML, any DTD or
  entity declaration, wrong root element, no records at all) raise ``FeedError``.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from xml.sax.saxutils import quoteattr

import pyarrow as pa
from lxml import etree

from citypulse.feeds.base import FeedError, FeedSpec, parse_hk_time, parse_xml
from citypulse.feeds.reference import link_name, speedmap_links
from citypulse.model import OBSERVATION_SCHEMA, Batch, Entity

FEED_ID = "td-speedmap"
METRIC = "speed_kmh"
SPEED_MAX_KMH = 150.0
"""Highest average speed believed: HK's top limit is 110 km/h; above 150 is a fault."""

SATURATION_LABELS = {"GOOD": "good", "AVERAGE": "average", "BAD": "bad"}
"""TD's ROAD_SATURATION_LEVEL (minus its ``TRAFFIC`` prefix) -> observation label."""

_TIME_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?"
)
_ID_RE = re.compile(r"\S{1,64}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


# --- helpers shared with the other TD speed feed (td_irn_speed) -----------------------------


def load_root(payload: bytes, root_name: str) -> etree._Element:
    """Safe-parse ``payload`` and check its root's local name is ``root_name``.

    A DTD is refused wherever it sits (``parse_xml`` screens the first 4 KiB; entities are
    never expanded, but TD feeds carry no DTD, so one means the payload is not TD's).
    """
    try:
        root = parse_xml(payload)
    except FeedError:
        raise
    except Exception as exc:  # lxml raises a few non-syntax errors on odd encodings
        raise FeedError("malformed-xml", f"{type(exc).__name__}: {exc}") from exc
    if root.getroottree().docinfo.internalDTD is not None:
        raise FeedError("xml-entity-declaration", "DOCTYPE refused")
    name = local_tag(root.tag)
    if name != root_name:
        raise FeedError("wrong-root", f"expected <{root_name}>, got <{name[:40]}>")
    return root


def local_tag(tag: object) -> str:
    """Local name of an element tag; "" for comments and processing instructions."""
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def records(parent: etree._Element, record_name: str, names: tuple[str, ...]) -> list[list[str]]:
    """Rows of the ``record_name`` children of ``parent``: per record, the whitespace-normalised
    text of its first child named each of ``names`` ("" when absent).

    Names are matched in the parent's namespace, whichever it is (the 2016 speed maps have
    none; TD's schema and other TD feeds use a default namespace). One compiled XSLT writes
    the rows as tab-separated lines in C: creating an lxml proxy per element, as a Python walk
    must, cost more than all the rest of the parse (~4,400 records x 3 fields in the segment
    feed). ``normalize-space`` leaves no tab or newline in a value, so the split is aligned.
    """
    tag = parent.tag
    ns = tag[1 : tag.index("}")] if isinstance(tag, str) and tag.startswith("{") else ""
    try:
        out = str(_to_lines(ns, record_name, names)(parent))
    except etree.LxmlError as exc:  # not seen on any input so far; keep the parser contract
        raise FeedError("malformed-xml", f"cannot read records: {exc}") from exc
    return [line.split("\t") for line in out.split("\n")[:-1]]


_THREAD = threading.local()


def _to_lines(ns: str, record_name: str, names: tuple[str, ...]) -> etree.XSLT:
    """The compiled stylesheet, cached per thread (ingest may parse in worker threads and
    lxml does not promise that one XSLT object may run in several threads at once)."""
    cache: dict[tuple[str, str, tuple[str, ...]], etree.XSLT] | None
    cache = getattr(_THREAD, "xslt", None)
    if cache is None:
        cache = _THREAD.xslt = {}
    key = (ns, record_name, names)
    xslt = cache.get(key)
    if xslt is None:
        if len(cache) >= 64:  # namespaces come from input: keep the cache bounded
            cache.clear()
        xslt = cache[key] = _compile(ns, record_name, names)
    return xslt


def _compile(ns: str, record_name: str, names: tuple[str, ...]) -> etree.XSLT:
    p = "t:" if ns else ""
    cells = "<xsl:text>&#9;</xsl:text>".join(
        f'<xsl:value-of select="normalize-space({p}{n})"/>' for n in names
    )
    sheet = (
        '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"'
        + (f" xmlns:t={quoteattr(ns)}" if ns else "")
        + '><xsl:output method="text" encoding="UTF-8"/>'
        f'<xsl:template match="/"><xsl:for-each select="/*/{p}{record_name}">'
        f"{cells}<xsl:text>&#10;</xsl:text></xsl:for-each></xsl:template></xsl:stylesheet>"
    )
    return etree.XSLT(etree.XML(sheet), access_control=etree.XSLTAccessControl.DENY_ALL)


def parse_speed(text: str) -> tuple[float | None, str]:
    """(speed, "") for a plain non-negative decimal within 0..SPEED_MAX_KMH, else
    (None, skip reason). Signs, exponents, ``nan``/``inf`` and non-ASCII digits are refused."""
    if not text or len(text) > 12 or not text.isascii() or not text.replace(".", "", 1).isdigit():
        return None, "non-numeric speed"
    value = float(text)
    if not 0.0 <= value <= SPEED_MAX_KMH:
        return None, "out-of-range speed"
    return value, ""


def parse_time(text: str) -> tuple[datetime, int] | None:
    """(UTC time, microseconds since the epoch) of a TD timestamp (naive = HK local), or None
    when unreadable."""
    if not text or not _TIME_RE.fullmatch(text):
        return None
    try:
        ts = parse_hk_time(text)
        return ts, (ts - _EPOCH) // _US
    except (FeedError, OverflowError, ValueError):
        return None


def valid_id(text: str) -> bool:
    """Ids are opaque to us, but must be short and free of whitespace to be keys."""
    return _ID_RE.fullmatch(text) is not None


def speed_table(
    entity_ids: Sequence[str],
    ts_us: Sequence[int] | int,
    values: Sequence[float],
    labels: Sequence[str | None] | None = None,
) -> pa.Table:
    """Observation table built from columns: cheaper than per-row datetimes for ~4,400 rows
    (pyarrow converts aware datetimes one by one). ``ts_us`` may be one time for all rows."""
    n = len(entity_ids)
    ts_type = OBSERVATION_SCHEMA.field("ts").type
    ts = (
        pa.repeat(pa.scalar(ts_us, ts_type), n)
        if isinstance(ts_us, int)
        else pa.array(ts_us, pa.int64()).cast(ts_type)
    )
    return pa.Table.from_arrays(
        [
            pa.array(entity_ids, pa.string()),
            pa.repeat(pa.scalar(METRIC, pa.string()), n),
            ts,
            pa.array(values, pa.float64()),
            pa.nulls(n, pa.string()) if labels is None else pa.array(labels, pa.string()),
        ],
        schema=OBSERVATION_SCHEMA,
    )


def skip_notes(skips: Counter[str]) -> list[str]:
    return [f"skipped {n} record(s): {reason}" for reason, n in sorted(skips.items())]


def unknown_note(kind: str, ids: Iterable[str], kept: str) -> list[str]:
    ids = sorted(ids)
    if not ids:
        return []
    shown = ", ".join(ids[:10]) + (", ..." if len(ids) > 10 else "")
    return [f"{len(ids)} {kind} not in the packaged reference table, kept {kept}: {shown}"]


# --- the parser ------------------------------------------------------------------------------


def saturation_label(text: str) -> tuple[str | None, bool]:
    """(label, recognised). A missing level is (None, True): nothing to complain about."""
    if not text:
        return None, True
    words = text.upper().split()
    if words and words[0] == "TRAFFIC":
        words = words[1:]
    label = SATURATION_LABELS.get(" ".join(words))
    return label, label is not None


@lru_cache(maxsize=8192)
def _entity(link_id: str, region: str, road_type: str) -> tuple[Entity, bool] | None:
    """The entity of a link and whether the reference table knows it; None for an unusable id.

    Cached and shared between batches (the same ~600 links arrive every two minutes):
    entities are frozen, and consumers must treat ``properties`` as read-only too.
    Region and road type come from the record (the live truth), else from the table.
    """
    if not valid_id(link_id):
        return None
    ref = speedmap_links().get(link_id)
    reg = region or (ref.region if ref else None)
    road = road_type or (ref.road_type if ref else None)
    name_en, name_zh = link_name(link_id, reg, road)
    props: dict[str, object] = {"region": reg, "road_type": road}
    entity_id = f"td-link:{link_id}"
    if ref is None:
        return Entity(entity_id, "road-link", name_en, name_zh, properties=props), False
    props.update(
        start_lat=ref.start_lat, start_lon=ref.start_lon, end_lat=ref.end_lat, end_lon=ref.end_lon
    )
    entity = Entity(entity_id, "road-link", name_en, name_zh, ref.mid_lat, ref.mid_lon, None, props)
    return entity, True


_FIELDS = (
    "LINK_ID",
    "REGION",
    "ROAD_TYPE",
    "ROAD_SATURATION_LEVEL",
    "TRAFFIC_SPEED",
    "CAPTURE_DATE",
)


def parse(payload: bytes, fetched_at: datetime) -> Batch:
    """Speed map XML -> one ``speed_kmh`` observation per link (label = saturation level)."""
    root = load_root(payload, "jtis_speedlist")
    rows = records(root, "jtis_speedmap", _FIELDS)
    if not rows:
        raise FeedError("no-records", "no <jtis_speedmap> records")

    times: dict[str, tuple[datetime, int] | None] = {}
    levels: dict[str, tuple[str | None, bool]] = {}
    speeds: dict[str, tuple[float | None, str]] = {}
    entities: dict[str, Entity] = {}
    seen: set[tuple[str, int]] = set()
    skips: Counter[str] = Counter()
    unknown: set[str] = set()
    unknown_levels: Counter[str] = Counter()
    ids: list[str] = []
    stamps: list[int] = []
    values: list[float] = []
    labels: list[str | None] = []

    for link_id, region, road_type, level, speed_text, date_text in rows:
        found = _entity(link_id, region, road_type)
        if found is None:
            skips["missing or invalid LINK_ID"] += 1
            continue
        entity, known = found
        entity_id = entity.id
        if entity_id not in entities:
            entities[entity_id] = entity
            if not known:
                unknown.add(link_id)
        parsed = speeds.get(speed_text)
        if parsed is None:
            parsed = speeds[speed_text] = parse_speed(speed_text)
        speed, why = parsed
        if speed is None:
            skips[why] += 1
            continue
        if date_text not in times:
            times[date_text] = parse_time(date_text)
        when = times[date_text]
        if when is None:
            skips["missing or unreadable CAPTURE_DATE"] += 1
            continue
        key = (entity_id, when[1])
        if key in seen:
            skips["duplicate link and CAPTURE_DATE"] += 1
            continue
        seen.add(key)
        sat = levels.get(level)
        if sat is None:
            sat = levels[level] = saturation_label(level)
        if not sat[1]:
            unknown_levels[level] += 1
        ids.append(entity_id)
        stamps.append(when[1])
        values.append(speed)
        labels.append(sat[0])

    notes = skip_notes(skips) + unknown_note("link id(s)", unknown, "without coordinates")
    notes += [
        f"{n} record(s) with unknown saturation level {lvl[:40]!r} kept without label"
        for lvl, n in sorted(unknown_levels.items())
    ]
    batch = Batch.build(
        FEED_ID,
        payload,
        fetched_at,
        entities=list(entities.values()),
        skipped=sum(skips.values()),
        notes=notes,
    )
    batch.observations = speed_table(ids, stamps, values, labels)
    return batch


SPEC = FeedSpec(
    id=FEED_ID,
    title_en="Traffic Speed Map (TD)",
    title_zh="交通速度圖（運輸署）",
    url="https://resource.data.one.gov.hk/td/speedmap.xml",
    interval_s=120,
    parse=parse,
    topics=("traffic",),
    attribution="Transport Department, the Government of the Hong Kong SAR (DATA.GOV.HK)",
    file_patterns=("speedmap*.xml", "*-speedmap.xml"),
    archive_url="http://resource.data.one.gov.hk/td/speedmap.xml",
    extra={"dataset": "hk-td-sm_1-traffic-speed-map"},
)
