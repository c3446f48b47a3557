"""HKO weather warning summary RSS (``WeatherWarningSummaryv2.xml``, English), on change.

One ``item`` per warning in force: ``title`` (CDATA, ``<Warning> issued (HH:MM HKT DD/MM/YYYY)``
with a trailing space), ``description``, ``pubDate`` (RFC-822 ``+0800``) and ``guid``
(``.../rss/YYYYMMDDHHMM/<text with spaces>``). Real quirk: items may hold only a ``guid``
(2016 capture: "Standby Signal, No. 1 issued"), so the warning is recovered from the guid text
and time when title/pubDate are missing.

Each item -> Event kind ``weather-warning``, id ``hko-warning-rss:{code}:{YYYYMMDDHHMM}``,
severity and bilingual title from the shared HKO code table (same scale as ``hko-warnsum``).
"... cancelled" items end at their time. Items naming no known warning keep a slug code and
severity ``info``. The JSON warnsum feed is the better live source, so this feed is off by
default; it matters for history.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from lxml import etree

from citypulse.feeds._hk_common import (
    Rows,
    hk_date,
    rfc822,
    slug,
    stamp,
    warning_code_from_text,
)
from citypulse.feeds.base import FeedError, FeedSpec, child_text, local_name, parse_xml
from citypulse.model import Batch, Event

FEED_ID = "hko-warning-rss"
URL = "https://rss.weather.gov.hk/rss/WeatherWarningSummaryv2.xml"
EVENT_KIND = "weather-warning"

_GUID = re.compile(r"/rss/(\d{12})/(.+)$", re.S)
_TITLE_TIME = re.compile(r"\((\d{1,2}):(\d{2})\s*HKT\s+(\d{1,2})/(\d{1,2})/(\d{4})\)")
_ACTION = re.compile(
    r"\b(issued|re-?issued|cancelled|canceled|extended|updated|in force|lowered|replaced)\b",
    re.I,
)
_TAGS = re.compile(r"<[^>]+>")


def _title_time(text: str) -> datetime | None:
    m = _TITLE_TIME.search(text)
    if m is None:
        return None
    day = hk_date(int(m[3]), int(m[4]), int(m[5]))
    hour, minute = int(m[1]), int(m[2])
    if hour > 23 or minute > 59:
        raise FeedError("bad-timestamp", f"bad time in {text!r}")
    return day + timedelta(hours=hour, minutes=minute)


def _guid_time(text: str) -> datetime:
    y, mo, d = int(text[:4]), int(text[4:6]), int(text[6:8])
    h, mi = int(text[8:10]), int(text[10:12])
    if h > 23 or mi > 59:
        raise FeedError("bad-timestamp", f"bad guid time {text!r}")
    return hk_date(d, mo, y) + timedelta(hours=h, minutes=mi)


def _item(rows: Rows, item: etree._Element) -> Event | None:
    title = child_text(item, "title")
    desc = child_text(item, "description")
    pub = child_text(item, "pubDate")
    guid = child_text(item, "guid")
    gm = _GUID.search(guid) if guid else None
    text = " ".join((title or (gm[2] if gm else "")).split())
    if not text:
        rows.skip("item: no title and no usable guid")
        return None
    text = text[:300]
    when: datetime | None = None
    try:
        when = _title_time(text)
        if when is None and pub:
            when = rfc822(pub)
        if when is None and gm:
            when = _guid_time(gm[1])
    except FeedError:
        when = None
    if when is None:
        rows.skip("item: no usable time")
        return None
    name = _TITLE_TIME.sub("", text).strip()
    am = _ACTION.search(name)
    action = am[1].lower().replace("canceled", "cancelled") if am else "issued"
    if am:
        name = name[: am.start()].strip(" ,")
    known = warning_code_from_text(name)
    code = known.code if known else slug(name)[:32]
    body = " ".join(_TAGS.sub(" ", desc).split())[:2000] if desc else None
    return Event(
        id=f"{FEED_ID}:{code}:{stamp(when)}",
        kind=EVENT_KIND,
        severity=known.severity if known else "info",
        starts_at=when,
        ends_at=when if action == "cancelled" else None,
        title_en=known.name_en if known else name or text,
        title_zh=known.name_zh if known else None,
        body_en=body or text,
        source=FEED_ID,
        properties={
            "code": code,
            "family": known.family if known else None,
            "action": action,
            "recovered_from_guid": title is None,
        },
    )


def parse(payload: bytes, fetched_at: datetime) -> Batch:
    root = parse_xml(payload)
    if local_name(root) != "rss":
        raise FeedError("unexpected-root", f"expected <rss>, got <{local_name(root)[:40]}>")
    channel = next((c for c in root if local_name(c) == "channel"), None)
    if channel is None:
        raise FeedError("missing-field", "no <channel>")
    rows = Rows()
    events: dict[str, Event] = {}
    for item in channel:
        if local_name(item) != "item":
            continue
        event = _item(rows, item)
        if event is None:
            continue
        if event.id in events:
            rows.skip("item: duplicate")
            continue
        events[event.id] = event
    notes = []
    pub = child_text(channel, "pubDate")
    if pub:
        try:
            notes.append(f"pubDate={rfc822(pub).isoformat()}")
        except FeedError:
            rows.skip("channel: bad pubDate")
    return Batch.build(
        FEED_ID,
        payload,
        fetched_at,
        events=list(events.values()),
        skipped=rows.skipped,
        notes=rows.notes(notes),
    )


SPEC = FeedSpec(
    id=FEED_ID,
    title_en="HKO weather warning summary (RSS)",
    title_zh="天文台天氣警告一覽（RSS）",
    url=URL,
    interval_s=300,
    parse=parse,
    topics=("weather", "warnings", "alerts"),
    media_type="application/rss+xml",
    licence="HKO: DATA.GOV.HK Terms and Conditions of Use",
    attribution="Source: Hong Kong Observatory, the Government of the Hong Kong SAR",
    file_patterns=("WeatherWarningSummary*.xml",),
    archive_url=URL,
    enabled_by_default=False,
)
