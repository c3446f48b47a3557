"""HKO weather warning summary (Open Data API ``dataType=warnsum``), JSON, changes on issue.

The payload is an object keyed by warning family (``WRAIN``, ``WTCSGNL``, ``WTS`` ...), each
``{name, code, type?, actionCode, issueTime, expireTime?, updateTime}``; ``{}`` when nothing is in
force. Each entry becomes one Event (kind ``weather-warning``) with a stable id
``hko-warnsum:{family}:{code}:{issueTime as YYYYMMDDHHMM HKT}``, so the hourly re-polls of the
same warning upsert one event, while an escalation (amber -> red rainstorm, No. 3 -> No. 8) is a
new event. Titles are bilingual from our code table whatever language was polled; the
severity comes from the code (info < low < moderate < high < severe; red rainstorm and No. 8
are ``high``, black rainstorm, No. 9, No. 10 and tsunami ``severe``).

``expireTime`` (if given) is the event's scheduled end. ``actionCode`` ``CANCEL`` gives an event
that ends at its update/issue time.

Disappearance: warnsum lists only what is in force, so a warning that vanished from the payload
cannot be closed by this pure parser alone. Every batch carries the note
``in-force: FAMILY=CODE,...`` (or ``in-force: none``), and :func:`close_absent` turns the
store's still-open warnsum events plus the new batch into closed copies (``ends_at`` = the
batch's ``fetched_at``) for the ingest to upsert. :func:`in_force` reads the note back.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from citypulse.feeds._hk_common import (
    FAMILY_NAMES,
    WARNING_CODES,
    Rows,
    clean_name,
    has_cjk,
    hk_iso,
    stamp,
)
from citypulse.feeds.base import FeedError, FeedSpec, parse_json
from citypulse.model import Batch, Event

FEED_ID = "hko-warnsum"
URL_EN = "https://data.weather.gov.hk/weatherAPI/opendata/weather.php?dataType=warnsum&lang=en"
URL_TC = "https://data.weather.gov.hk/weatherAPI/opendata/weather.php?dataType=warnsum&lang=tc"
EVENT_KIND = "weather-warning"
IN_FORCE_NOTE = "in-force: "

ACTIONS = {"ISSUE", "REISSUE", "EXTEND", "UPDATE", "CANCEL"}
_TOKEN = re.compile(r"[A-Z0-9]{1,16}")


def event_id(family: str, code: str, issued: datetime) -> str:
    return f"{FEED_ID}:{family}:{code}:{stamp(issued)}"


def _entry(rows: Rows, family: str, rec: Any, lang: str) -> Event | None:
    if not isinstance(rec, dict):
        rows.skip("warning: not an object")
        return None
    code = rec.get("code", family)
    if not isinstance(code, str) or not _TOKEN.fullmatch(code.strip()):
        rows.skip("warning: bad code")
        return None
    code = code.strip()
    action = rec.get("actionCode", "ISSUE")
    action = action.strip().upper() if isinstance(action, str) else ""
    if action not in ACTIONS:
        rows.skip("warning: unknown actionCode")
        return None
    try:
        issued = hk_iso(rec.get("issueTime"))
    except FeedError:
        rows.skip("warning: bad issueTime")
        return None
    times: dict[str, datetime] = {}
    for key in ("expireTime", "updateTime"):
        if rec.get(key) in (None, ""):
            continue
        try:
            times[key] = hk_iso(rec.get(key))
        except FeedError:
            rows.skip(f"warning: bad {key} ignored")
    known = WARNING_CODES.get(code)
    name = clean_name(rec.get("name"))
    kind_text = clean_name(rec.get("type"))
    fam_en, fam_zh = FAMILY_NAMES.get(family, (None, None))
    title_en: str | None
    title_zh: str | None
    if known is not None:
        title_en, title_zh, severity = known.name_en, known.name_zh, known.severity
    else:
        payload_title = " ".join(p for p in (kind_text, name) if p) or code
        title_en = payload_title if lang == "en" else fam_en
        title_zh = payload_title if lang == "zh" else fam_zh
        severity = "moderate"
    ends_at: datetime | None = times.get("expireTime")
    if action == "CANCEL":
        ends_at = max([issued, *times.values()])
    if ends_at is not None and ends_at < issued:
        ends_at = issued
    body_parts = [p for p in (name, kind_text) if p]
    body = " - ".join(body_parts) or None
    return Event(
        id=event_id(family, code, issued),
        kind=EVENT_KIND,
        severity=severity,
        starts_at=issued,
        ends_at=ends_at,
        title_en=title_en,
        title_zh=title_zh,
        body_en=body if lang == "en" else None,
        body_zh=body if lang == "zh" else None,
        source=FEED_ID,
        properties={
            "family": family,
            "code": code,
            "action": action,
            "issue_time": issued.isoformat(),
            **{k: v.isoformat() for k, v in times.items()},
        },
    )


def parse(payload: bytes, fetched_at: datetime) -> Batch:
    doc = parse_json(payload)
    if not isinstance(doc, dict):
        raise FeedError("unexpected-shape", "warnsum payload is not a JSON object")
    texts = [v.get("name", "") for v in doc.values() if isinstance(v, dict)]
    lang = "zh" if any(isinstance(t, str) and has_cjk(t) for t in texts) else "en"
    rows = Rows()
    events: list[Event] = []
    in_force: list[str] = []
    for family, rec in list(doc.items())[:64]:
        if not _TOKEN.fullmatch(family):
            rows.skip("warning: bad family key")
            continue
        event = _entry(rows, family, rec, lang)
        if event is None:
            continue
        events.append(event)
        if event.properties["action"] != "CANCEL":
            in_force.append(f"{family}={event.properties['code']}")
    if len(doc) > 64:
        rows.skip("warning: more than 64 families", len(doc) - 64)
    note = IN_FORCE_NOTE + (",".join(sorted(in_force)) or "none")
    return Batch.build(
        FEED_ID,
        payload,
        fetched_at,
        events=events,
        skipped=rows.skipped,
        notes=rows.notes([note, f"lang={lang}"]),
    )


def in_force(batch: Batch) -> dict[str, str] | None:
    """Family -> code in force according to a warnsum batch's note (None if no note)."""
    for note in batch.notes:
        if note.startswith(IN_FORCE_NOTE):
            body = note[len(IN_FORCE_NOTE):]
            if body == "none":
                return {}
            return dict(p.split("=", 1) for p in body.split(",") if "=" in p)
    return None


def close_absent(open_events: Iterable[Event], batch: Batch) -> list[Event]:
    """Closed copies of warnsum events that were open before and are no longer in ``batch``.

    ``open_events``: what the store holds as active (``events(kind="weather-warning",
    active_only=True)``); events from other sources are ignored. An event stays open when the
    batch carries the same id (still in force); otherwise it ends at ``batch.fetched_at``.
    """
    as_of = batch.fetched_at
    current = {e.id for e in batch.events if e.properties.get("action") != "CANCEL"}
    closed: list[Event] = []
    for ev in open_events:
        if ev.source != FEED_ID or ev.id in current:
            continue
        if ev.ends_at is not None and ev.ends_at <= as_of:
            continue
        end = max(as_of, ev.starts_at)
        closed.append(
            dataclasses.replace(
                ev, ends_at=end, properties={**ev.properties, "closed": "absent-from-warnsum"}
            )
        )
    return closed


SPEC = FeedSpec(
    id=FEED_ID,
    title_en="HKO weather warning summary",
    title_zh="天文台天氣警告一覽",
    url=URL_EN,
    interval_s=120,
    parse=parse,
    topics=("weather", "warnings", "alerts"),
    media_type="application/json",
    licence="HKO Open Data: DATA.GOV.HK Terms and Conditions of Use",
    attribution="Source: Hong Kong Observatory, the Government of the Hong Kong SAR",
    file_patterns=("warnsum*.json",),
    extra={"url_tc": URL_TC, "close_absent": "citypulse.feeds.hko_warnsum:close_absent"},
)
