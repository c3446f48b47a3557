"""Simulated TD traffic detectors: ``rawSpeedVol-all.xml`` for every detector of the packaged
reference table, with lanes, a weekday double-peak, placeholder speeds when a lane saw no
vehicle and the feed's quirks (a few ``valid=N`` detectors, trailing spaces in ``direction``).

Also home of the small helpers the other traffic simulators share (daily traffic level,
district names and centres) until a shared ``citypulse.simulate.profile`` exists.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from citypulse.feeds.base import HKT
from citypulse.feeds.td_detectors import DetectorRef, reference

# Traditional Chinese names of the 18 districts (as the detector table spells them in English).
DISTRICT_ZH = {
    "Central & Western": "中西區",
    "Wan Chai": "灣仔",
    "Eastern": "東區",
    "Southern": "南區",
    "Yau Tsim Mong": "油尖旺",
    "Sham Shui Po": "深水埗",
    "Kowloon City": "九龍城",
    "Wong Tai Sin": "黃大仙",
    "Kwun Tong": "觀塘",
    "Kwai Tsing": "葵青",
    "Tsuen Wan": "荃灣",
    "Tuen Mun": "屯門",
    "Yuen Long": "元朗",
    "North": "北區",
    "Tai Po": "大埔",
    "Sha Tin": "沙田",
    "Sai Kung": "西貢",
    "Islands": "離島",
}


def stable(text: str) -> int:
    """A per-name number that is the same in every process (``hash()`` is salted)."""
    return zlib.crc32(text.encode())


def traffic_level(at: datetime) -> float:
    """Road demand 0..1 at ``at`` (Hong Kong time): low at night, a morning peak around 08:30
    and a longer evening peak around 18:00 on weekdays, a flatter midday hump at weekends."""
    local = at.astimezone(HKT)
    h = local.hour + local.minute / 60 + local.second / 3600
    day = 1 / (1 + math.exp(-(h - 6.8) * 2)) * 1 / (1 + math.exp((h - 23) * 1.5))
    am = math.exp(-(((h - 8.5) / 1.1) ** 2))
    pm = math.exp(-(((h - 18.2) / 1.6) ** 2))
    if local.weekday() < 5:
        level = 0.06 + 0.42 * day + 0.45 * am + 0.45 * pm
    else:
        level = 0.06 + 0.5 * day + 0.1 * am + 0.15 * pm
    return max(0.0, min(1.0, level))


@cache
def district_centres() -> dict[str, tuple[float, float]]:
    """Mean detector position per district: a real, packaged stand-in for district centres."""
    sums: dict[str, list[float]] = {}
    for r in reference().values():
        s = sums.setdefault(r.district, [0.0, 0.0, 0.0])
        s[0] += r.lat
        s[1] += r.lon
        s[2] += 1
    return {d: (s[0] / s[2], s[1] / s[2]) for d, s in sorted(sums.items())}


@dataclass(frozen=True, slots=True)
class _Detector:
    ref: DetectorRef
    lanes: tuple[str, ...]
    limit: int
    busy: float  # how much of the city's demand reaches this road (0.5..1.3)
    lane_use: tuple[float, ...]  # per-lane share of that demand (0.3..1.3)


_LANE_SETS = {
    2: ("Fast Lane", "Slow Lane"),
    3: ("Fast Lane", "Middle Lane", "Slow Lane"),
    4: ("Fast Lane", "Middle Lane 1", "Middle Lane 2", "Slow Lane"),
}


@cache
def _detectors() -> tuple[_Detector, ...]:
    out = []
    for ref in sorted(reference().values(), key=lambda r: r.id):
        h = stable(ref.id)
        lanes = _LANE_SETS[2 + h % 3]
        limit = (50, 70, 70, 80, 80, 100)[(h >> 4) % 6]
        busy = 0.5 + ((h >> 8) % 80) / 100
        use = tuple(0.3 + stable(f"{ref.id}/{lane}") % 100 / 100 for lane in lanes)
        out.append(_Detector(ref, lanes, limit, busy, use))
    return tuple(out)


def _lane(det: _Detector, lane_no: int, level: float, rng: random.Random) -> str:
    n_lanes = len(det.lanes)
    # Slow lanes carry more vehicles, fast lanes move quicker; some lanes are just quiet.
    share = (0.8 + 0.4 * lane_no / max(1, n_lanes - 1)) * det.lane_use[lane_no]
    demand = level * det.busy
    mean_volume = 11 * demand * share
    volume = max(0, round(rng.gauss(mean_volume, math.sqrt(mean_volume + 0.3))))
    congestion = max(0.0, demand - 0.6) / 0.7
    fast_bonus = 1.08 - 0.12 * lane_no / max(1, n_lanes - 1)
    if volume == 0:
        speed, sd, occupancy = det.limit, 0.0, 0
    else:
        mean_speed = det.limit * fast_bonus * (1 - 0.75 * min(1.0, congestion) ** 1.5)
        speed = max(3, round(rng.gauss(mean_speed, 4)))
        sd = round(abs(rng.gauss(6, 3)), 1) if volume > 1 else 0.0
        # Share of 30 s a ~7.5 m effective vehicle spends over the loop.
        occupancy = min(100, round(volume * 7.5 / (speed / 3.6 * 30) * 100))
    return (
        f"<lane><lane_id>{det.lanes[lane_no]}</lane_id><speed>{speed}</speed>"
        f"<occupancy>{occupancy}</occupancy><volume>{volume}</volume><s.d.>{sd:g}</s.d.>"
        f"<valid>{{valid}}</valid></lane>"
    )


class DetectorSimulator:
    """Emits the one-line XML TD publishes every minute: two 30-second periods."""

    feed_id = "td-detectors"
    interval_s = 60

    def emit(self, at: datetime, rng: random.Random) -> bytes:
        local = at.astimezone(HKT).replace(second=0, microsecond=0) - timedelta(minutes=1)
        starts = [local, local + timedelta(seconds=30)]
        day_key = local.strftime("%Y%m%d")
        parts = [
            '<?xml version="1.0" encoding="utf-8"?><raw_speed_volume_list '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xsi:noNamespaceSchemaLocation="https://static.data.gov.hk/td/'
            'traffic-data-strategic-major-roads/info/SpeedVolOcc-BR.xsd">'
            f"<date>{starts[0]:%Y-%m-%d}</date><periods>"
        ]
        for start in starts:
            end = start + timedelta(seconds=30)
            level = traffic_level(start)
            parts.append(
                f"<period><period_from>{start:%H:%M:%S}</period_from>"
                f"<period_to>{end:%H:%M:%S}</period_to><detectors>"
            )
            for det in _detectors():
                h = stable(det.ref.id)
                valid = "N" if stable(det.ref.id + day_key) % 23 == 0 else "Y"
                direction = det.ref.direction + (" " if h % 97 == 0 else "")
                parts.append(
                    f"<detector><detector_id>{det.ref.id}</detector_id>"
                    f"<direction>{direction}</direction><lanes>"
                )
                for i in range(len(det.lanes)):
                    parts.append(_lane(det, i, level, rng).replace("{valid}", valid))
                parts.append("</lanes></detector>")
            parts.append("</detectors></period>")
        parts.append("</periods></raw_speed_volume_list>")
        return "".join(parts).encode()


SIMULATOR = DetectorSimulator()
