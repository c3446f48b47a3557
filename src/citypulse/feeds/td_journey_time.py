"""TD Journey Time Indicators (``Journeytimev2.xml``; v1 ``journeytime.xml`` has the same shape).

Each row is one sign (``LOCATION_ID``) and one destination (``DESTINATION_ID``): the entity is
``td-jti:{LOCATION_ID}-{DESTINATION_ID}`` (kind ``journey-time-indicator``). The root carries the
default namespace ``http://data.one.gov.hk/td`` in the captures; elements are matched by local
name so both forms parse.

- ``JOURNEY_TYPE`` 1: ``JOURNEY_DATA`` is minutes -> ``journey_time_min`` with the sign's colour
  (``COLOUR_ID`` 1 red, 2 amber, 3 green) as label.
- ``JOURNEY_TYPE`` 2: ``JOURNEY_DATA`` is a message code (1 congestion, 3 tunnel closed,
  4 blank) -> ``journey_time_message`` with the code as value and its name as label; no minutes
  are invented for it.
- ``-1`` in ``JOURNEY_DATA`` = not available (skipped, counted); ``-1`` in ``COLOUR_ID`` = no
  colour (label left empty).
- ``CAPTURE_DATE`` is per row (Kowloon/HK and SJ signs differ within one file).
"""

from __future__ import annotations

import re
from datetime import datetime

from citypulse.feeds.base import FeedError, FeedSpec, parse_hk_time, parse_xml
from citypulse.model import Batch, Entity, ObservationBuilder

FEED_ID = "td-journey-time"
URL = "https://resource.data.one.gov.hk/td/jss/Journeytimev2.xml"

COLOURS = {1: "red", 2: "amber", 3: "green"}
MESSAGES = {1: "congestion", 3: "tunnel-closed", 4: "blank"}
MAX_MINUTES = 300

# Destination codes TD documents for the v1/v2 signs (FORMATS.md §3). Codes not listed keep
# their code as name rather than a guessed one.
DESTINATIONS: dict[str, tuple[str, str]] = {
    "CH": ("Cross-Harbour Tunnel", "紅磡海底隧道"),
    "EH": ("Eastern Harbour Crossing", "東區海底隧道"),
    "WH": ("Western Harbour Crossing", "西區海底隧道"),
    "LRT": ("Lion Rock Tunnel", "獅子山隧道"),
    "SMT": ("Shing Mun Tunnels", "城門隧道"),
    "TCT": ("Tate's Cairn Tunnel", "大老山隧道"),
    "TSCA": ("Tsing Sha Control Area", "青沙管制區"),
    "ABT": ("Aberdeen Tunnel", "香港仔隧道"),
}

_ID = re.compile(r"[A-Za-z0-9_]{1,16}")
_FIELDS = (
    "LOCATION_ID",
    "DESTINATION_ID",
    "CAPTURE_DATE",
    "JOURNEY_TYPE",
    "JOURNEY_DATA",
    "COLOUR_ID",
)


_INT = re.compile(r"-?[0-9]{1,9}")


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    return int(text) if _INT.fullmatch(text) else None


def _hk_time(text: str) -> datetime | None:
    """HK local timestamp -> UTC; None when unreadable or outside 2000..2100."""
    year = _int(text[:4])
    if year is None or not 2000 <= year <= 2100:
        return None
    try:
        return parse_hk_time(text)
    except (FeedError, OverflowError):
        return None


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def parse(payload: bytes, fetched_at: datetime) -> Batch:
    root = parse_xml(payload, SPEC.max_bytes)
    if _local(root.tag) != "jtis_journey_list":
        raise FeedError("unexpected-root", f"root element is {root.tag!r}")
    rows = [el for el in root if _local(el.tag) == "jtis_journey_time"]
    if not rows:
        raise FeedError("no-records", "no <jtis_journey_time> in the file")

    obs = ObservationBuilder()
    entities: dict[str, Entity] = {}
    seen: set[tuple[str, str, datetime]] = set()
    times: dict[str, datetime] = {}
    skipped = 0
    not_available = 0
    bad = 0
    duplicates = 0
    for row in rows:
        f: dict[str, str] = {}
        for child in row:
            name = _local(child.tag)
            if name in _FIELDS and name not in f:
                f[name] = (child.text or "").strip()
        loc, dest = f.get("LOCATION_ID", ""), f.get("DESTINATION_ID", "")
        if not _ID.fullmatch(loc) or not _ID.fullmatch(dest):
            skipped += 1
            bad += 1
            continue
        captured = f.get("CAPTURE_DATE", "")
        ts = times.get(captured)
        if ts is None:
            ts = _hk_time(captured)
            if ts is None:
                skipped += 1
                bad += 1
                continue
            times[captured] = ts
        eid = f"td-jti:{loc}-{dest}"
        if eid not in entities:
            entities[eid] = _entity(eid, loc, dest)
        jtype = _int(f.get("JOURNEY_TYPE"))
        data = _int(f.get("JOURNEY_DATA"))
        colour = _int(f.get("COLOUR_ID"))
        if data == -1:
            skipped += 1
            not_available += 1
            continue
        if jtype == 1 and data is not None and 0 <= data <= MAX_MINUTES:
            metric, value, label = "journey_time_min", data, COLOURS.get(colour or 0)
        elif jtype == 2 and data is not None and 0 <= data <= 99:
            metric, value, label = "journey_time_message", data, MESSAGES.get(data, f"code-{data}")
        else:
            skipped += 1
            bad += 1
            continue
        key = (eid, metric, ts)
        if key in seen:
            skipped += 1
            duplicates += 1
            continue
        seen.add(key)
        obs.add(eid, metric, ts, float(value), label)

    notes: list[str] = []
    if not_available:
        notes.append(f"{not_available} rows marked -1 (not available) skipped")
    if bad:
        notes.append(f"{bad} rows with missing or out-of-range fields skipped")
    if duplicates:
        notes.append(f"{duplicates} duplicate rows skipped (first kept)")
    return Batch.build(
        FEED_ID,
        payload,
        fetched_at,
        entities=list(entities.values()),
        observations=obs,
        skipped=skipped,
        notes=notes,
    )


def _entity(eid: str, loc: str, dest: str) -> Entity:
    dest_en, dest_zh = DESTINATIONS.get(dest, (dest, dest))
    props: dict[str, object] = {"location_id": loc, "destination_id": dest}
    if dest in DESTINATIONS:
        props["destination_en"], props["destination_zh"] = dest_en, dest_zh
    return Entity(
        id=eid,
        kind="journey-time-indicator",
        name_en=f"{loc} to {dest_en}",
        name_zh=f"{loc} 往 {dest_zh}",
        properties=props,
    )


SPEC = FeedSpec(
    id=FEED_ID,
    title_en="Journey Time Indicators (TD)",
    title_zh="行車時間顯示系統（運輸署）",
    url=URL,
    interval_s=120,
    parse=parse,
    topics=("traffic", "traffic.journey-time"),
    media_type="application/xml",
    licence="DATA.GOV.HK Terms and Conditions of Use",
    attribution="Transport Department, HKSAR Government (via DATA.GOV.HK)",
    file_patterns=("journeytime*.xml", "Journeytimev2*.xml"),
    archive_url=URL,
    max_bytes=4 * 1024 * 1024,
)
