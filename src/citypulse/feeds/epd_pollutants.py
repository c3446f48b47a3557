"""EPD past-24-hour pollutant concentrations per station (``24pc_Eng.xml``), XML, hourly.

Sister of ``24aqhi_Eng.xml``: root ``<AQHI24HrPollutantConcentration>``, same header, then
``<PollutantConcentration>`` items with ``StationName``, ``DateTime`` (RFC-822 ``+0800``) and
``NO2``, ``O3``, ``SO2``, ``CO``, ``PM10``, ``PM2.5`` in µg/m³ (one decimal). ``-`` means not
measured at that station or missing: no observation (noted, not counted as skipped; never 0).
The element name ``PM2.5`` contains a dot, which XML allows.

Output: the same ``epd-station:{id}`` entities as ``epd-aqhi`` and metrics ``no2_ugm3``,
``o3_ugm3``, ``so2_ugm3``, ``co_ugm3``, ``pm10_ugm3``, ``pm2_5_ugm3``. Negative or absurd
values (> 50 000 µg/m³) are skipped and counted.
"""

from __future__ import annotations

from datetime import datetime

from citypulse.feeds._hk_common import Rows, children, in_range, rfc822, to_float
from citypulse.feeds.base import FeedError, FeedSpec, child_text, local_name, parse_xml
from citypulse.feeds.epd_aqhi import MISSING, items, station_time
from citypulse.model import Batch, Entity

FEED_ID = "epd-pollutants"
URL = "https://www.aqhi.gov.hk/epd/ddata/html/out/24pc_Eng.xml"
ROOT = "AQHI24HrPollutantConcentration"
ITEM = "PollutantConcentration"

POLLUTANTS: dict[str, str] = {
    "NO2": "no2_ugm3",
    "O3": "o3_ugm3",
    "SO2": "so2_ugm3",
    "CO": "co_ugm3",
    "PM10": "pm10_ugm3",
    "PM2.5": "pm2_5_ugm3",
}
VALUE_RANGE = (0.0, 50_000.0)


def parse(payload: bytes, fetched_at: datetime) -> Batch:
    root = parse_xml(payload)
    if local_name(root) != ROOT:
        raise FeedError("unexpected-root", f"expected <{ROOT}>, got <{local_name(root)[:40]}>")
    rows = Rows()
    cache: dict[str, Entity] = {}
    for item in items(root, ITEM):
        fields = children(item)
        got = station_time(rows, fields, cache)
        if got is None:
            continue
        ent, ts = got
        rows.entity(ent)
        for element, metric in POLLUTANTS.items():
            raw = fields.get(element)
            if raw is None or raw in MISSING:
                rows.absent(element)
                continue
            value = to_float(raw)
            if value is None:
                rows.skip(f"{element}: not a number")
            elif not in_range(value, *VALUE_RANGE):
                rows.skip(f"{element}: out of range")
            else:
                rows.add(ent.id, metric, ts, value)
    notes: list[str] = []
    built = child_text(root, "lastBuildDate")
    if built:
        try:
            notes.append(f"lastBuildDate={rfc822(built).isoformat()}")
        except FeedError:
            rows.skip("header: bad lastBuildDate")
    return Batch.build(
        FEED_ID,
        payload,
        fetched_at,
        entities=list(rows.entities.values()),
        observations=rows.builder,
        skipped=rows.skipped,
        notes=rows.notes(notes),
    )


SPEC = FeedSpec(
    id=FEED_ID,
    title_en="EPD pollutant concentrations, past 24 hours",
    title_zh="環保署污染物濃度（過去24小時）",
    url=URL,
    interval_s=900,
    parse=parse,
    topics=("air-quality", "environment"),
    media_type="application/xml",
    licence="DATA.GOV.HK Terms and Conditions of Use",
    attribution="Source: Environmental Protection Department, the Government of the Hong Kong SAR",
    file_patterns=("24pc_Eng*.xml",),
    archive_url=URL,
)
