"""Simulated TD Special Traffic News (v2 ``trafficnews.xml``): incidents that open, get updated
and close, at real detector locations (road, landmark, direction and district from the packaged
detector table), more often at busy hours.

Incidents are derived from the clock alone (one candidate per 15-minute slot, seeded by the slot
number), so consecutive polls - and separate processes - agree on which incidents exist and when
each one closes; ``rng`` is not needed for that and is left unused.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from xml.sax.saxutils import escape

from citypulse.feeds.base import HKT
from citypulse.feeds.td_detectors import DetectorRef, reference
from citypulse.simulate.td_detectors import DISTRICT_ZH, stable, traffic_level

SLOT = timedelta(minutes=15)
LOOKBACK = timedelta(minutes=180)
UPDATE_EVERY = timedelta(minutes=30)
CLOSED_SHOWN = timedelta(minutes=20)

FIELDS = (
    "INCIDENT_NUMBER", "INCIDENT_HEADING_EN", "INCIDENT_HEADING_CN", "INCIDENT_DETAIL_EN",
    "INCIDENT_DETAIL_CN", "LOCATION_EN", "LOCATION_CN", "DISTRICT_EN", "DISTRICT_CN",
    "DIRECTION_EN", "DIRECTION_CN", "ANNOUNCEMENT_DATE", "INCIDENT_STATUS_EN",
    "INCIDENT_STATUS_CN", "NEAR_LANDMARK_EN", "NEAR_LANDMARK_CN", "BETWEEN_LANDMARK_EN",
    "BETWEEN_LANDMARK_CN", "ID", "CONTENT_EN", "CONTENT_CN", "LATITUDE", "LONGITUDE",
)

# heading EN/CN, detail EN/CN, cause EN/CN
KINDS = (
    ("Road Incident", "道路事故", "Traffic Accident", "交通意外",
     "a traffic accident", "發生交通意外"),
    ("Road Incident", "道路事故", "Vehicle Breakdown", "車輛故障",
     "a vehicle breakdown", "有車輛故障"),
    ("Road Works", "道路工程", "Emergency Road Works", "緊急道路工程",
     "emergency road works", "進行緊急道路工程"),
)
STATUS_CN = {"NEW": "最新情況", "UPDATED": "更新", "CLOSED": "完結"}


@dataclass(frozen=True, slots=True)
class Incident:
    number: str
    seq: int
    start: datetime
    end: datetime
    where: DetectorRef
    kind: int
    lanes: int
    with_coords: bool


@cache
def _places() -> tuple[DetectorRef, ...]:
    return tuple(sorted(reference().values(), key=lambda r: r.id))


def incidents_around(at: datetime) -> list[Incident]:
    """Every simulated incident that started within ``LOOKBACK`` before ``at`` (UTC)."""
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    last = int((at - epoch) / SLOT)
    first = int((at - LOOKBACK - epoch) / SLOT)
    out = []
    for k in range(first, last + 1):
        slot_start = epoch + k * SLOT
        r = random.Random(stable(f"td-traffic-news:{k}"))
        chance = 0.08 + 0.3 * traffic_level(slot_start)
        if r.random() >= chance:
            continue
        start = slot_start + timedelta(minutes=r.randrange(15))
        duration = timedelta(minutes=r.randint(20, 150))
        local = start.astimezone(HKT)
        out.append(
            Incident(
                number=f"IN-{local:%y}-{k % 100_000:05d}",
                seq=k,
                start=start,
                end=start + duration,
                where=r.choice(_places()),
                kind=r.randrange(len(KINDS)),
                lanes=r.randint(1, 2),
                with_coords=r.random() < 0.5,
            )
        )
    return out


_DIR_EN = re.compile(r"\s*-\s*(\w+bound)\b.*$")
_DIR_ZH = re.compile(r"\s*-\s*(\S+?行).*$")


def _split_en(road: str) -> tuple[str, str, str]:
    """``Tuen Mun Road near Sham Tseng - Westbound (3)`` -> road, landmark, direction."""
    m = _DIR_EN.search(road)
    direction = m.group(1) if m else ""
    head = road[: m.start()] if m else road
    name, _, landmark = head.partition(" near ")
    return name.strip(), landmark.strip(), direction


def _split_zh(road: str) -> tuple[str, str, str]:
    m = _DIR_ZH.search(road)
    direction = m.group(1) if m else ""
    head = road[: m.start()] if m else road
    name, _, landmark = head.partition("近")
    return name.strip(), landmark.strip(), direction


def _message(inc: Incident, at: datetime) -> dict[str, str] | None:
    if at < inc.start or at >= inc.end + CLOSED_SHOWN:
        return None
    if at >= inc.end:
        status, announced, update_no = "CLOSED", inc.end, 99
    else:
        update_no = int((at - inc.start) / UPDATE_EVERY)
        status = "NEW" if update_no == 0 else "UPDATED"
        announced = inc.start + update_no * UPDATE_EVERY
    road_en, lm_en, dir_en = _split_en(inc.where.road_en)
    road_zh, lm_zh, dir_zh = _split_zh(inc.where.road_tc)
    head_en, head_zh, det_en, det_zh, cause_en, cause_zh = KINDS[inc.kind]
    where_en = f"{road_en} {dir_en}".strip() + (f" near {lm_en}" if lm_en else "")
    where_zh = f"{road_zh}{dir_zh}" + (f"近{lm_zh}" if lm_zh else "")
    lanes_en = "1 lane is" if inc.lanes == 1 else f"{inc.lanes} lanes are"
    if status == "CLOSED":
        content_en = f"All lanes of {where_en} have been re-opened. Traffic is returning to normal."
        content_zh = f"{where_zh}的所有行車線已經重開，交通逐漸回復正常。"
    else:
        content_en = (
            f"Due to {cause_en} on {where_en}, {lanes_en} closed. "
            "Motorists should expect delays and are advised to use alternative routes."
        )
        content_zh = (
            f"由於{where_zh}{cause_zh}，{inc.lanes}條行車線現已封閉。"
            "駕駛人士應預計有延誤，並請改用其他道路。"
        )
    district = inc.where.district
    return {
        "INCIDENT_NUMBER": inc.number,
        "INCIDENT_HEADING_EN": head_en,
        "INCIDENT_HEADING_CN": head_zh,
        "INCIDENT_DETAIL_EN": det_en,
        "INCIDENT_DETAIL_CN": det_zh,
        "LOCATION_EN": road_en,
        "LOCATION_CN": road_zh,
        "DISTRICT_EN": district,
        "DISTRICT_CN": DISTRICT_ZH.get(district, ""),
        "DIRECTION_EN": dir_en,
        "DIRECTION_CN": dir_zh,
        "ANNOUNCEMENT_DATE": f"{announced.astimezone(HKT):%Y-%m-%dT%H:%M:%S}",
        "INCIDENT_STATUS_EN": status,
        "INCIDENT_STATUS_CN": STATUS_CN[status],
        "NEAR_LANDMARK_EN": lm_en,
        "NEAR_LANDMARK_CN": lm_zh,
        "BETWEEN_LANDMARK_EN": "",
        "BETWEEN_LANDMARK_CN": "",
        "ID": str((inc.seq % 100_000) * 100 + update_no),
        "CONTENT_EN": content_en,
        "CONTENT_CN": content_zh,
        "LATITUDE": f"{inc.where.lat:.6f}" if inc.with_coords else "",
        "LONGITUDE": f"{inc.where.lon:.6f}" if inc.with_coords else "",
    }


class TrafficNewsSimulator:
    feed_id = "td-traffic-news"
    interval_s = 60

    def emit(self, at: datetime, rng: random.Random) -> bytes:
        at = at.astimezone(UTC)
        parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<list>']
        for inc in incidents_around(at):
            msg = _message(inc, at)
            if msg is None:
                continue
            parts.append("<message>")
            for name in FIELDS:
                value = msg[name]
                parts.append(f"<{name}>{escape(value)}</{name}>" if value else f"<{name}/>")
            parts.append("</message>")
        parts.append("</list>\n")
        return "".join(parts).encode()


SIMULATOR = TrafficNewsSimulator()
