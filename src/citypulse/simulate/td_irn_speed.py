"""Simulated TD segment speeds: ``irnAvgSpeed-all.xml`` for every segment of the packaged
segment table, in the live one-line layout (same declaration, root attributes, header
``date``/``time`` at an odd minute in Hong Kong local time, ``irn_version``).

Quirks kept: about 1.3 % of segments (a stable set, as a failed detector stays failed) are
``valid=N`` with their speed limit as an integer placeholder, like the real files; measured
speeds carry one decimal.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from xml.sax.saxutils import escape

from citypulse.feeds.base import HKT
from citypulse.feeds.reference import irn_segments
from citypulse.model import utc
from citypulse.simulate.profile import (
    Incident,
    congested_speed,
    incident_factor,
    traffic_level,
    unit,
)

IRN_VERSION = "20221210"
HEADER = (
    '<?xml version="1.0" encoding="utf-8"?><segment_speed_list '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:noNamespaceSchemaLocation="https://static.data.gov.hk/td/'
    'traffic-data-strategic-major-roads/info/SpeedSegments-BR.xsd">'
)
PLACEHOLDER_SHARE = 0.013
SPEED_LIMITS = (50, 70, 80, 100, 110)


@dataclass(frozen=True, slots=True)
class _Segment:
    id: str
    free_flow: float
    limit: int
    placeholder: bool


def _free_flow(segment_id: str, route: str) -> float:
    """Free-flow speed from what the route name says about the road."""
    if route.isdigit():  # strategic routes 1-10: expressways
        base = 82.0
    elif any(w in route for w in ("TUNNEL", "BRIDGE", "HIGHWAY", "CORRIDOR", "BYPASS")):
        base = 70.0
    elif any(w in route for w in ("ROUNDABOUT", "SLIP ROAD", "STREET", "UNNAMED")):
        base = 35.0
    else:
        base = 48.0
    return base * (0.88 + 0.24 * unit(f"free/{segment_id}"))


@cache
def _segments() -> tuple[_Segment, ...]:
    out = []
    for seg_id, route in irn_segments().items():
        free = _free_flow(seg_id, route)
        limit = next((lim for lim in SPEED_LIMITS if lim >= free * 0.95), SPEED_LIMITS[-1])
        out.append(_Segment(seg_id, free, limit, unit(f"invalid/{seg_id}") < PLACEHOLDER_SHARE))
    return tuple(out)


def report_time(at: datetime) -> datetime:
    """HK local time of the newest file at ``at``: files are stamped on odd minutes."""
    local = utc(at).astimezone(HKT).replace(second=0, microsecond=0)
    return local - timedelta(minutes=(local.minute + 1) % 2)


@dataclass(slots=True)
class IrnSpeedSimulator:
    """Emits ``irnAvgSpeed-all.xml``; ``incidents`` hold chosen segments down for a while."""

    feed_id: str = "td-irn-speed"
    interval_s: int = 120
    incidents: tuple[Incident, ...] = ()

    def emit(self, at: datetime, rng: random.Random) -> bytes:
        when = report_time(at)
        level = traffic_level(when)
        parts = [
            HEADER,
            f"<date>{when:%Y-%m-%d}</date><time>{when:%H:%M:%S}</time>",
            f"<irn_version>{IRN_VERSION}</irn_version><segments>",
        ]
        for seg in _segments():
            if seg.placeholder:
                speed, valid = str(seg.limit), "N"
            else:
                factor = incident_factor(self.incidents, seg.id, when)
                value = congested_speed(seg.free_flow, level, seg.id, rng, factor=factor)
                speed, valid = f"{value:.1f}", "Y"
            parts.append(
                f"<segment><segment_id>{escape(seg.id)}</segment_id><speed>{speed}</speed>"
                f"<valid>{valid}</valid></segment>"
            )
        parts.append("</segments></segment_speed_list>")
        return "".join(parts).encode()


SIMULATOR = IrnSpeedSimulator()
