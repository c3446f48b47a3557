"""Simulated car park information (DATA.GOV.HK ``carpark-info-vacancy?data=info`` shape) and the
car park set the vacancy simulator shares.

There is no packaged car park table (the info feed itself is the reference), so the simulated
car parks are placed beside real detector locations of each district and named after that road;
their ids start with ``sim-`` so they can never be mistaken for real ``park_Id`` values.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache

import orjson

from citypulse.feeds.base import HKT
from citypulse.feeds.td_detectors import reference
from citypulse.simulate.td_detectors import stable

USES = ("shopping", "office", "residential", "public")


@dataclass(frozen=True, slots=True)
class SimCarPark:
    park_id: str
    name_en: str
    name_zh: str
    district: str
    lat: float
    lon: float
    use: str  # drives the daily occupancy pattern
    spaces: dict[str, int]  # API vehicle-type key -> spaces
    ev_spaces: int
    government: bool
    stale: bool  # an operator whose updates stopped days ago (a real quirk)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@cache
def carparks() -> tuple[SimCarPark, ...]:
    ref = reference()
    by_district: dict[str, list[str]] = {}
    for det_id in sorted(ref):
        by_district.setdefault(ref[det_id].district, []).append(det_id)
    out: list[SimCarPark] = []
    for district, ids in sorted(by_district.items()):
        r = random.Random(stable(f"carparks:{district}"))
        for n in range(1, 3 + stable(district) % 3):
            det = ref[r.choice(ids)]
            road_en = det.road_en.split(" near ")[0].split(" - ")[0].strip()
            road_zh = det.road_tc.split("近")[0].split(" - ")[0].strip()
            use = USES[r.randrange(len(USES))]
            cars = r.randrange(60, 600, 10)
            spaces = {"privateCar": cars}
            if r.random() < 0.6:
                spaces["motorCycle"] = r.randrange(5, 60)
            if r.random() < 0.3:
                spaces["LGV"] = r.randrange(5, 40)
            if r.random() < 0.1:
                spaces["coach"] = r.randrange(2, 12)
            out.append(
                SimCarPark(
                    park_id=f"sim-{_slug(district)}-{n}",
                    name_en=f"{road_en} Car Park",
                    name_zh=f"{road_zh}停車場",
                    district=district,
                    lat=round(det.lat + r.uniform(-0.002, 0.002), 6),
                    lon=round(det.lon + r.uniform(-0.002, 0.002), 6),
                    use=use,
                    spaces=spaces,
                    ev_spaces=cars // 10 if r.random() < 0.5 else 0,
                    government=use == "public",
                    stale=r.random() < 0.04,
                )
            )
    return tuple(out)


def _record(cp: SimCarPark, created: str) -> dict[str, object]:
    rec: dict[str, object] = {
        "park_Id": cp.park_id,
        "name": cp.name_en,
        "nature": "government" if cp.government else "commercial",
        "carpark_Type": "multi-storey",
        "address": {"streetName": cp.name_en.removesuffix(" Car Park"), "dcDistrict": cp.district},
        "displayAddress": f"{cp.name_en.removesuffix(' Car Park')}, {cp.district}",
        "district": f"{cp.district} District",
        "latitude": cp.lat,
        "longitude": cp.lon,
        "contactNo": "",
        "opening_status": "OPEN",
        "openingHours": [
            {
                "weekdays": ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN", "PH"],
                "excludePublicHoliday": False,
                "periodStart": "00:00",
                "periodEnd": "00:00",
            }
        ],
        "heightLimits": [{"height": 2.0 if cp.use != "shopping" else 1.9, "remark": ""}],
        "facilities": ["disabilities"] + (["evCharger"] if cp.ev_spaces else []),
        "paymentMethods": ["octopus"],
        "creationDate": created,
        "modifiedDate": created,
        "publishedDate": created,
        "lang": "en_US",
    }
    for key, n in cp.spaces.items():
        block: dict[str, object] = {"space": n}
        if key == "privateCar":
            block["spaceEV"] = cp.ev_spaces
            block["spaceDIS"] = max(1, n // 100)
        rec[key] = block
    return rec


class CarparkInfoSimulator:
    feed_id = "carpark-info"
    interval_s = 86_400

    def emit(self, at: datetime, rng: random.Random) -> bytes:
        created = "2017-07-06 10:00:00"
        _ = at.astimezone(HKT)  # the info is static; `at` only has to be aware
        results = [_record(cp, created) for cp in carparks()]
        return orjson.dumps({"results": results})


SIMULATOR = CarparkInfoSimulator()
