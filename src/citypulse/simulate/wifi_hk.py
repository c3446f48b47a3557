"""Simulated Wi-Fi.HK fixed-hotspot file: a JSON array (UTF-8 with BOM, no final newline, flat
EN/TC/SC keys) of venues placed beside real detector locations, with venue types, addresses and
a hotspot count per venue that grows now and then. ``SIMULATOR`` emits a city-sized file
(3 000 venues, like a real extraction); :func:`fixed_file` builds any size (the benchmark uses
30 000)."""

from __future__ import annotations

import random
from datetime import datetime
from functools import cache

import orjson

from citypulse.feeds.base import HKT
from citypulse.feeds.td_detectors import DetectorRef, reference
from citypulse.simulate.td_detectors import DISTRICT_ZH, stable

# (organisation code, SSID, venue types (EN, TC)) for simulated participants.
ORGANISATIONS = (
    ("gov", "freegovwifi", (("Public Libraries", "公共圖書館"), ("Community Halls", "社區會堂"),
                            ("Sports Centres", "體育館"), ("Parks", "公園"))),
    ("mall", "Wi-Fi.HK via Mall", (("Shopping Centres", "購物中心"),)),
    ("transit", "Wi-Fi.HK via Transit", (("Public Transport Interchanges", "公共運輸交匯處"),
                                         ("Ferry Piers", "渡輪碼頭"))),
)
AREA = {
    "Central & Western": ("Hong Kong Island", "香港島"), "Wan Chai": ("Hong Kong Island", "香港島"),
    "Eastern": ("Hong Kong Island", "香港島"), "Southern": ("Hong Kong Island", "香港島"),
    "Yau Tsim Mong": ("Kowloon", "九龍"), "Sham Shui Po": ("Kowloon", "九龍"),
    "Kowloon City": ("Kowloon", "九龍"), "Wong Tai Sin": ("Kowloon", "九龍"),
    "Kwun Tong": ("Kowloon", "九龍"),
}
NT = ("New Territories", "新界")
BOM = b"\xef\xbb\xbf"


def _venue(i: int, day: int) -> dict[str, object]:
    refs = _refs()
    r = random.Random(stable(f"wifi:{i}"))
    det = refs[r.randrange(len(refs))]
    org, ssid, venues = ORGANISATIONS[r.randrange(len(ORGANISATIONS))]
    venue_en, venue_zh = venues[r.randrange(len(venues))]
    road_en = det.road_en.split(" near ")[0].split(" - ")[0].strip()
    road_zh = det.road_tc.split("近")[0].split(" - ")[0].strip()
    area_en, area_zh = AREA.get(det.district, NT)
    base = r.randint(1, 12)
    # Venues gain an access point now and then (a new one every ~200 days on average).
    hotspots = base + (day + stable(f"wifi-grow:{i}") % 200) // 200
    no = r.randint(1, 300)
    return {
        "OrganisationCode": org,
        "LocationID": f"{org.upper()}-{i:05d}",
        "LocationNameEN": f"{road_en} {venue_en.rstrip('s')} {i}",
        "LocationNameTC": f"{road_zh}{venue_zh}{i}",
        "LocationNameSC": f"{road_zh}{venue_zh}{i}",
        "VenueTypeEN": venue_en,
        "VenueTypeTC": venue_zh,
        "VenueTypeSC": venue_zh,
        "AddressEN": f"{no} {road_en}, {det.district}",
        "AddressTC": f"{DISTRICT_ZH.get(det.district, '')}{road_zh}{no}號",
        "AddressSC": f"{DISTRICT_ZH.get(det.district, '')}{road_zh}{no}号",
        "AreaEN": area_en,
        "AreaTC": area_zh,
        "DistrictEN": det.district,
        "DistrictTC": DISTRICT_ZH.get(det.district, ""),
        "Latitude": f"{det.lat + r.uniform(-0.003, 0.003):.6f}",
        "Longitude": f"{det.lon + r.uniform(-0.003, 0.003):.6f}",
        "SSID": ssid,
        "NumberOfHotspots": str(hotspots),
        "DigitalCertificate": None,
        "SupportHotline": "(852) 1823",
        "SupportEmail": None,
        "MoreInformationEN": None,
        "MoreInformationTC": None,
        "MoreInformationSC": None,
        "MoreInformationLinkEN": None,
        "MoreInformationLinkTC": None,
        "MoreInformationLinkSC": None,
        "RemarksEN": None,
        "RemarksTC": None,
        "RemarksSC": None,
    }


@cache
def _refs() -> tuple[DetectorRef, ...]:
    return tuple(sorted(reference().values(), key=lambda r: r.id))


def fixed_file(n: int, at: datetime) -> bytes:
    """The fixed-hotspot file with ``n`` venues as it would look on ``at``'s day."""
    day = at.astimezone(HKT).toordinal()
    return BOM + orjson.dumps([_venue(i, day) for i in range(n)])


class WifiSimulator:
    feed_id = "wifi-hk"
    interval_s = 86_400
    venues = 3_000

    def emit(self, at: datetime, rng: random.Random) -> bytes:
        return fixed_file(self.venues, at)


SIMULATOR = WifiSimulator()
