"""Simulated TD Traffic Speed Map: ``speedmap.xml`` for every link of the packaged link table,
in the live layout (declaration with ``standalone="yes"``, 4-space indentation, LF, six fields
per record) with CAPTURE_DATE in Hong Kong local time and no offset.

Like the real feed, each region has its own capture second within a 2-minute cycle (TM :16,
ST :22, HK :34, K :35 in the 2016 captures), and the saturation level follows TD's bands as
seen in the samples: major routes bad < 25 <= average < 50 <= good km/h, urban roads
bad < 15 <= average < 30 <= good. The 10 table links TD never published are emitted too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from xml.sax.saxutils import escape

from citypulse.feeds.base import HKT
from citypulse.feeds.reference import SpeedmapLink, speedmap_links
from citypulse.model import utc
from citypulse.simulate.profile import (
    Incident,
    congested_speed,
    free_flow_kmh,
    incident_factor,
    traffic_level,
)

CAPTURE_SECOND = {"TM": 16, "ST": 22, "HK": 34, "K": 35}
SATURATION_BANDS = {"MAJOR ROUTE": (25, 50), "URBAN ROAD": (15, 30)}
"""Road type -> (lowest "average" speed, lowest "good" speed), km/h."""

HEADER = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<jtis_speedlist>\n'
FOOTER = "</jtis_speedlist>\n"


def saturation_level(speed: int, road_type: str) -> str:
    average, good = SATURATION_BANDS.get(road_type, (20, 40))
    if speed >= good:
        return "TRAFFIC GOOD"
    return "TRAFFIC AVERAGE" if speed >= average else "TRAFFIC BAD"


def capture_times(at: datetime) -> dict[str, datetime]:
    """Per-region capture time (HK local) of the newest file the feed would serve at ``at``."""
    local = utc(at).astimezone(HKT)
    cycle = local.replace(second=0, microsecond=0) - timedelta(minutes=local.minute % 2)
    if cycle + timedelta(seconds=max(CAPTURE_SECOND.values())) > local:
        cycle -= timedelta(minutes=2)
    return {region: cycle + timedelta(seconds=s) for region, s in CAPTURE_SECOND.items()}


@dataclass(slots=True)
class SpeedmapSimulator:
    """Emits ``speedmap.xml``; ``incidents`` hold chosen links down for a while."""

    feed_id: str = "td-speedmap"
    interval_s: int = 120
    incidents: tuple[Incident, ...] = ()

    def emit(self, at: datetime, rng: random.Random) -> bytes:
        stamps = capture_times(at)
        default = max(stamps.values())
        parts = [HEADER]
        for link in speedmap_links().values():
            when = stamps.get(link.region, default)
            speed = self._speed(link, when, rng)
            parts.append(
                "    <jtis_speedmap>\n"
                f"        <LINK_ID>{escape(link.link_id)}</LINK_ID>\n"
                f"        <REGION>{escape(link.region)}</REGION>\n"
                f"        <ROAD_TYPE>{escape(link.road_type)}</ROAD_TYPE>\n"
                "        <ROAD_SATURATION_LEVEL>"
                f"{saturation_level(speed, link.road_type)}</ROAD_SATURATION_LEVEL>\n"
                f"        <TRAFFIC_SPEED>{speed}</TRAFFIC_SPEED>\n"
                f"        <CAPTURE_DATE>{when:%Y-%m-%dT%H:%M:%S}</CAPTURE_DATE>\n"
                "    </jtis_speedmap>\n"
            )
        parts.append(FOOTER)
        return "".join(parts).encode()

    def _speed(self, link: SpeedmapLink, when: datetime, rng: random.Random) -> int:
        level = traffic_level(when, link.region)
        factor = incident_factor(self.incidents, link.link_id, when)
        free = free_flow_kmh(link.link_id, link.road_type)
        return max(1, round(congested_speed(free, level, link.link_id, rng, factor=factor)))


SIMULATOR = SpeedmapSimulator()
