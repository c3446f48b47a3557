"""TD Special Traffic News, 2nd generation (``trafficnews.xml``) -> traffic-news events.

Root ``<list>`` of ``<message>``: ``INCIDENT_NUMBER``, ``INCIDENT_HEADING_EN/CN``,
``INCIDENT_DETAIL_EN/CN``, ``LOCATION_EN/CN``, ``DISTRICT_EN/CN``, ``DIRECTION_EN/CN``,
``ANNOUNCEMENT_DATE`` (local, no offset), ``INCIDENT_STATUS_EN/CN`` (NEW / UPDATED / CLOSED),
``NEAR_LANDMARK_*``, ``BETWEEN_LANDMARK_*``, ``ID`` (new per update), ``CONTENT_EN/CN``,
``LATITUDE``, ``LONGITUDE``. Empty elements are common.

Severity on citypulse's scale (info, low, moderate, high, severe): an open incident is
``moderate``, a closed one ``info``.

One event per incident (id ``td-traffic-news:{INCIDENT_NUMBER}``), so each update of the same
incident upserts the same event and a CLOSED message sets ``ends_at``. When a file holds several
messages of one incident, the earliest announcement is the start and the latest message gives
the text.

Archived files have held a bare ``&`` ("Trade & Exhibition Centre"), which is not well-formed
XML. Parsing is lenient: if the strict parse fails, every ``&`` that does not begin one of the
five XML entities or a character reference is escaped and the parse retried. Entities are never
expanded (``&nbsp;`` stays literal text; DOCTYPE/ENTITY declarations are refused).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from citypulse.feeds.base import FeedError, FeedSpec, parse_hk_time, parse_xml
from citypulse.model import Batch, Event

FEED_ID = "td-traffic-news"
URL = "https://www.td.gov.hk/en/special_news/trafficnews.xml"

_BARE_AMP = re.compile(rb"&(?!(?:amp|lt|gt|quot|apos|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});)")
_YEAR = re.compile(r"(?:19|20|21)[0-9]{2}-")

STATUS_CN = {"最新情況": "NEW", "更新": "UPDATED", "完結": "CLOSED"}
KNOWN_STATUS = {"NEW", "UPDATED", "CLOSED"}

# HK bounding box: coordinates outside it are dropped, not stored.
LAT_RANGE = (22.13, 22.58)
LON_RANGE = (113.82, 114.45)
MAX_TEXT = 20_000


@dataclass(slots=True)
class _Message:
    fields: dict[str, str]
    announced: datetime
    order: int

    def get(self, name: str) -> str | None:
        return self.fields.get(name) or None


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def escape_bare_ampersands(payload: bytes) -> bytes:
    """Escape ``&`` not starting an XML predefined entity or character reference."""
    return _BARE_AMP.sub(b"&amp;", payload)


def _root(payload: bytes) -> tuple[etree._Element, list[str]]:
    try:
        return parse_xml(payload, SPEC.max_bytes), []
    except FeedError as exc:
        if exc.reason != "malformed-xml" or b"&" not in payload:
            raise
    fixed = escape_bare_ampersands(payload)
    if fixed == payload:
        raise FeedError("malformed-xml", "not well-formed and no bare '&' to repair")
    root = parse_xml(fixed, SPEC.max_bytes)
    return root, ["recovered from unescaped '&' in the XML"]


def _float(text: str | None) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def _text(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip()
    return value[:MAX_TEXT] or None


def parse(payload: bytes, fetched_at: datetime) -> Batch:
    root, notes = _root(payload)
    if _local(root.tag) != "list":
        raise FeedError("unexpected-root", f"root element is {root.tag!r}")

    skipped = 0
    no_time = 0
    no_id = 0
    groups: dict[str, list[_Message]] = {}
    for order, el in enumerate(root):
        if _local(el.tag) != "message":
            continue
        fields: dict[str, str] = {}
        for child in el:
            name = _local(child.tag)
            if name and name not in fields:
                fields[name] = " ".join("".join(child.itertext()).split())
        key = fields.get("INCIDENT_NUMBER") or (f"id-{fields['ID']}" if fields.get("ID") else "")
        if not key or len(key) > 64:
            skipped += 1
            no_id += 1
            continue
        announced_text = fields.get("ANNOUNCEMENT_DATE", "")
        if not _YEAR.match(announced_text):
            skipped += 1
            no_time += 1
            continue
        try:
            announced = parse_hk_time(announced_text)
        except (FeedError, OverflowError):
            skipped += 1
            no_time += 1
            continue
        groups.setdefault(key, []).append(_Message(fields, announced, order))

    events = [_event(key, msgs) for key, msgs in groups.items()]
    if no_id:
        notes.append(f"{no_id} messages without INCIDENT_NUMBER or ID skipped")
    if no_time:
        notes.append(f"{no_time} messages without a readable ANNOUNCEMENT_DATE skipped")
    return Batch.build(FEED_ID, payload, fetched_at, events=events, skipped=skipped, notes=notes)


def _status(msg: _Message) -> str | None:
    en = (msg.get("INCIDENT_STATUS_EN") or "").upper()
    if en in KNOWN_STATUS:
        return en
    return STATUS_CN.get(msg.get("INCIDENT_STATUS_CN") or "") or (en or None)


def _event(key: str, msgs: list[_Message]) -> Event:
    msgs.sort(key=lambda m: (m.announced, m.order))
    first, last = msgs[0], msgs[-1]
    status = _status(last)
    closed = status == "CLOSED"

    heading_en, heading_zh = last.get("INCIDENT_HEADING_EN"), last.get("INCIDENT_HEADING_CN")
    loc_en, loc_zh = last.get("LOCATION_EN"), last.get("LOCATION_CN")
    title_en = " – ".join(p for p in (heading_en, loc_en) if p) or None
    title_zh = " – ".join(p for p in (heading_zh, loc_zh) if p) or None
    body_en = last.get("CONTENT_EN") or last.get("INCIDENT_DETAIL_EN")
    body_zh = last.get("CONTENT_CN") or last.get("INCIDENT_DETAIL_CN")

    district = _text(last.get("DISTRICT_EN"))
    districts = (district,) if district else ()
    props: dict[str, object] = {"status": status} if status else {}
    for src, dst in (
        ("ID", "message_id"),
        ("INCIDENT_DETAIL_EN", "detail_en"),
        ("INCIDENT_DETAIL_CN", "detail_zh"),
        ("LOCATION_EN", "location_en"),
        ("LOCATION_CN", "location_zh"),
        ("DISTRICT_CN", "district_zh"),
        ("DIRECTION_EN", "direction_en"),
        ("DIRECTION_CN", "direction_zh"),
        ("NEAR_LANDMARK_EN", "near_landmark_en"),
        ("NEAR_LANDMARK_CN", "near_landmark_zh"),
        ("BETWEEN_LANDMARK_EN", "between_landmark_en"),
        ("BETWEEN_LANDMARK_CN", "between_landmark_zh"),
    ):
        value = _text(last.get(src))
        if value:
            props[dst] = value
    lat, lon = _float(last.get("LATITUDE")), _float(last.get("LONGITUDE"))
    if (
        lat is not None
        and lon is not None
        and LAT_RANGE[0] <= lat <= LAT_RANGE[1]
        and LON_RANGE[0] <= lon <= LON_RANGE[1]
    ):
        props["lat"], props["lon"] = lat, lon
    props["announced_at"] = last.announced.isoformat()
    props["updates"] = len(msgs)

    return Event(
        id=f"td-traffic-news:{key}",
        kind="traffic-news",
        severity="info" if closed else "moderate",
        starts_at=first.announced,
        ends_at=last.announced if closed else None,
        title_en=_text(title_en),
        title_zh=_text(title_zh),
        body_en=_text(body_en),
        body_zh=_text(body_zh),
        districts=districts,
        source=FEED_ID,
        properties=props,
    )


SPEC = FeedSpec(
    id=FEED_ID,
    title_en="Special Traffic News (TD)",
    title_zh="特別交通消息（運輸署）",
    url=URL,
    interval_s=60,
    parse=parse,
    topics=("traffic", "traffic.news", "events"),
    media_type="application/xml",
    licence="DATA.GOV.HK Terms and Conditions of Use",
    attribution="Transport Department, HKSAR Government (via DATA.GOV.HK)",
    file_patterns=("trafficnews*.xml",),
    archive_url=URL,
    max_bytes=4 * 1024 * 1024,
)
