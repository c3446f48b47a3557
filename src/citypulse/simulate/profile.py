"""Shared daily traffic profile for the simulators: how busy Hong Kong's roads are at a given
time, how fast a road runs when free and when busy, and incidents that hold a road down.

Everything is deterministic: per-road traits come from a stable hash of the road's id (never
``hash()``, which is salted per process) and the only randomness is the ``random.Random`` the
caller passes, so a seeded run replays byte for byte.

Shape (Hong Kong time, no DST): on weekdays a morning peak around 08:30 and a longer evening
peak around 18:15 over a daytime plateau, near-empty roads at 03:00; weekends are flatter
with a midday/afternoon hump. Regions differ: the Tuen Mun and Sha Tin corridors carry the
inbound morning commute, Kowloon and Hong Kong Island are busiest overall.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from citypulse.feeds.base import HKT

FREE_FLOW_KMH = {"MAJOR ROUTE": 78.0, "URBAN ROAD": 44.0}
"""Typical free-flow speed per speed-map road type (major routes are signed 70-110 km/h,
urban roads 50 km/h, less junction delay)."""

DEFAULT_FREE_FLOW_KMH = 55.0


@dataclass(frozen=True, slots=True)
class RegionProfile:
    """How strongly a region feels the city's demand, and how its two peaks weigh."""

    busy: float
    am: float
    pm: float


REGIONS = {
    "HK": RegionProfile(busy=1.10, am=0.85, pm=1.00),
    "K": RegionProfile(busy=1.15, am=0.90, pm=1.00),
    "TM": RegionProfile(busy=0.85, am=1.00, pm=0.75),
    "ST": RegionProfile(busy=0.90, am=1.00, pm=0.80),
}
DEFAULT_REGION = RegionProfile(busy=1.0, am=0.9, pm=0.9)


def stable(text: str) -> int:
    """A per-name number that is the same in every process (``hash()`` is salted)."""
    return zlib.crc32(text.encode())


def unit(text: str) -> float:
    """A stable pseudo-random number in [0, 1) for ``text``."""
    return stable(text) / 2**32


def is_rest_day(at: datetime) -> bool:
    """Saturday or Sunday in Hong Kong. Public holidays are not modelled (they would need
    the 1823 holiday calendar, which the simulator does not ship)."""
    return at.astimezone(HKT).weekday() >= 5


def traffic_level(at: datetime, region: str | None = None) -> float:
    """Road demand 0..1 at ``at`` (aware datetime; read in Hong Kong time) for ``region``
    (speed-map code ``HK``/``K``/``TM``/``ST``; None = city-wide)."""
    local = at.astimezone(HKT)
    h = local.hour + local.minute / 60 + local.second / 3600
    prof = REGIONS.get(region or "", DEFAULT_REGION)
    # Daytime plateau: rises from ~06:30, falls after ~23:00.
    day = 1 / (1 + math.exp(-(h - 6.8) * 2)) / (1 + math.exp((h - 23.0) * 1.5))
    am = math.exp(-(((h - 8.5) / 1.1) ** 2))
    pm = math.exp(-(((h - 18.25) / 1.6) ** 2))
    if is_rest_day(at):
        midday = math.exp(-(((h - 15.0) / 3.5) ** 2))
        level = 0.05 + 0.35 * day + 0.25 * midday
    else:
        level = 0.05 + 0.38 * day + 0.5 * prof.am * am + 0.5 * prof.pm * pm
    return max(0.0, min(1.0, level * prof.busy))


def free_flow_kmh(road_id: str, road_type: str | None) -> float:
    """Free-flow speed of one road: the type's typical speed, +-12 % per road (stable)."""
    base = FREE_FLOW_KMH.get(road_type or "", DEFAULT_FREE_FLOW_KMH)
    return base * (0.88 + 0.24 * unit(f"free/{road_id}"))


def sensitivity(road_id: str) -> float:
    """How much a road slows for a given demand (0.4..1.4, skewed low): most roads have spare
    capacity, a few bottlenecks jam at every peak (as in TD's maps)."""
    return 0.4 + 1.0 * unit(f"sens/{road_id}") ** 2


def congested_speed(
    free_flow: float,
    level: float,
    road_id: str,
    rng: random.Random,
    *,
    factor: float = 1.0,
    noise: float = 0.07,
) -> float:
    """Speed (km/h, > 0) at demand ``level``: speed falls slowly until the road fills, then
    sharply (a smooth stand-in for the speed-flow curve), times an incident ``factor``, with
    multiplicative noise from ``rng``."""
    load = min(1.2, level * sensitivity(road_id))
    slowdown = 0.85 * math.pow(load, 2.2)
    speed = free_flow * max(0.05, 1.0 - slowdown) * factor
    speed *= max(0.5, 1.0 + rng.gauss(0.0, noise))
    return max(1.0, min(speed, free_flow * 1.15))


@dataclass(frozen=True, slots=True)
class Incident:
    """A road held down for a while (breakdown, collision, works): within [start, end) its
    speed is multiplied by ``factor`` (0.2 = a crawl). ``road_id`` is the feed's own id
    (speed-map LINK_ID or IRN segment id)."""

    road_id: str
    start: datetime
    end: datetime
    factor: float = 0.25

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("incident times must be timezone-aware")
        if not 0.0 < self.factor <= 1.0:
            raise ValueError("incident factor must be in (0, 1]")

    def active(self, at: datetime) -> bool:
        return self.start <= at < self.end


def incident_factor(incidents: Iterable[Incident], road_id: str, at: datetime) -> float:
    """Product of the factors of the incidents active on ``road_id`` at ``at`` (1.0 = none)."""
    factor = 1.0
    for inc in incidents:
        if inc.road_id == road_id and inc.active(at):
            factor *= inc.factor
    return factor
