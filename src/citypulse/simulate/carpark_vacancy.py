"""Simulated car park vacancy (DATA.GOV.HK ``carpark-info-vacancy?data=vacancy`` shape) for the
simulated car parks of ``simulate.carpark_info``.

Occupancy follows each car park's use: shopping centres fill in the afternoon and evening,
offices on weekday working hours, residential car parks at night, public ones with road traffic.
Real quirks kept: ``-1`` (no data) now and then, a few operators whose ``lastupdate`` is days
old, ``vacancy_type`` B (available/full flag) for coach bays, ``category`` only on government
car parks.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

import orjson

from citypulse.feeds.base import HKT
from citypulse.simulate.carpark_info import SimCarPark, carparks
from citypulse.simulate.td_detectors import stable, traffic_level


def _bump(h: float, centre: float, width: float) -> float:
    return math.exp(-(((h - centre) / width) ** 2))


def occupancy(cp: SimCarPark, at: datetime) -> float:
    """Share of spaces taken (0..1) for this car park's use at ``at``."""
    local = at.astimezone(HKT)
    h = local.hour + local.minute / 60
    weekday = local.weekday() < 5
    if cp.use == "shopping":
        occ = 0.15 + 0.75 * _bump(h, 16.5, 4.0) * (1.0 if not weekday else 0.8)
    elif cp.use == "office":
        occ = 0.1 + (0.8 * _bump(h, 13.5, 4.5) if weekday else 0.15 * _bump(h, 13, 4))
    elif cp.use == "residential":
        occ = 0.9 - 0.45 * _bump(h, 13, 4.5) * (1.0 if weekday else 0.6)
    else:
        occ = 0.2 + 0.7 * traffic_level(at)
    return max(0.0, min(1.0, occ))


def _vacancy(cp: SimCarPark, key: str, at: datetime, rng: random.Random) -> int:
    capacity = cp.spaces[key]
    occ = occupancy(cp, at) + rng.gauss(0, 0.03)
    return max(0, min(capacity, round(capacity * (1 - occ))))


class CarparkVacancySimulator:
    feed_id = "carpark-vacancy"
    interval_s = 300

    def emit(self, at: datetime, rng: random.Random) -> bytes:
        local = at.astimezone(HKT).replace(microsecond=0)
        results = []
        for cp in carparks():
            if cp.stale:
                # Frozen operator: its last update is two to five days old, always the same.
                last = local.replace(hour=3, minute=0, second=0) - timedelta(
                    days=2 + stable(cp.park_id) % 4
                )
                seen_at = last
            else:
                last = local - timedelta(seconds=rng.randrange(0, 300))
                seen_at = at
            stamp = f"{last:%Y-%m-%d %H:%M:%S}"
            rec: dict[str, object] = {"park_Id": cp.park_id}
            for key in cp.spaces:
                entry: dict[str, object] = {"vacancy_type": "A"}
                value = _vacancy(cp, key, seen_at, rng)
                if key == "coach":
                    entry["vacancy_type"] = "B"
                    value = 1 if value > 0 else 0
                if rng.random() < 0.01:
                    value = -1
                entry["vacancy"] = value
                if key == "privateCar":
                    if cp.ev_spaces:
                        entry["vacancyEV"] = min(cp.ev_spaces, rng.randrange(cp.ev_spaces + 1))
                    entry["vacancyDIS"] = rng.randrange(0, 3)
                entry["lastupdate"] = stamp
                if cp.government:
                    entry["category"] = "HOURLY"
                rec[key] = [entry]
            results.append(rec)
        return orjson.dumps({"results": results})


SIMULATOR = CarparkVacancySimulator()
