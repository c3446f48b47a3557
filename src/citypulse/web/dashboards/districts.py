"""The 18 District Council districts: stable ids, bilingual names, regions, label positions,
and one normaliser for the many spellings the feeds use.

Feeds disagree on how a district is written: HKO and EPD give ids (``central_western``), TD
and the car park API English names (``Central & Western``), Wi-Fi.HK ``DistrictEN``, traffic news
``DISTRICT_EN`` (sometimes with " District"), and Chinese names appear too. Dashboards group and
filter by :func:`district_id`, so every spelling lands on one of the ids below, which are also
the ``/districts/{id}`` URLs (the store's own HKO/EPD ids, so no second scheme exists).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Final

REGIONS: Final = MappingProxyType(
    {
        "hk_island": ("Hong Kong Island", "香港島"),
        "kowloon": ("Kowloon", "九龍"),
        "new_territories": ("New Territories", "新界"),
    }
)


@dataclass(frozen=True, slots=True)
class District:
    id: str
    name_en: str
    name_zh: str
    region: str
    lat: float  # label position (inside the district polygon)
    lon: float
    aliases: tuple[str, ...] = ()


DISTRICTS: Final[tuple[District, ...]] = (
    District("central_western", "Central and Western", "中西區", "hk_island", 22.2820, 114.1420,
             ("Central & Western", "Central/Western", "Central and Western District",
              "Central & Western District", "C&W")),
    District("wan_chai", "Wan Chai", "灣仔區", "hk_island", 22.2710, 114.1830),
    District("eastern", "Eastern", "東區", "hk_island", 22.2740, 114.2220),
    District("southern", "Southern", "南區", "hk_island", 22.2420, 114.1900),
    District("yau_tsim_mong", "Yau Tsim Mong", "油尖旺區", "kowloon", 22.3110, 114.1700),
    District("sham_shui_po", "Sham Shui Po", "深水埗區", "kowloon", 22.3340, 114.1600),
    District("kowloon_city", "Kowloon City", "九龍城區", "kowloon", 22.3230, 114.1880),
    District("wong_tai_sin", "Wong Tai Sin", "黃大仙區", "kowloon", 22.3420, 114.2010),
    District("kwun_tong", "Kwun Tong", "觀塘區", "kowloon", 22.3130, 114.2270, ("Kwon Tong",)),
    District("kwai_tsing", "Kwai Tsing", "葵青區", "new_territories", 22.3540, 114.1200,
             ("Kwai Chung",)),
    District("tsuen_wan", "Tsuen Wan", "荃灣區", "new_territories", 22.3800, 114.1000),
    District("tuen_mun", "Tuen Mun", "屯門區", "new_territories", 22.3950, 113.9700),
    District("yuen_long", "Yuen Long", "元朗區", "new_territories", 22.4550, 114.0300,
             ("Yeun Long",)),
    District("north", "North", "北區", "new_territories", 22.5050, 114.1500),
    District("tai_po", "Tai Po", "大埔區", "new_territories", 22.4620, 114.2000),
    District("sha_tin", "Sha Tin", "沙田區", "new_territories", 22.3830, 114.2000),
    District("sai_kung", "Sai Kung", "西貢區", "new_territories", 22.3640, 114.3080),
    District("islands", "Islands", "離島區", "new_territories", 22.2600, 113.9300, ("Island",)),
)

BY_ID: Final = MappingProxyType({d.id: d for d in DISTRICTS})

_DROP = re.compile(r"[\s'’.\-_/&,()]+")


def _key(text: str) -> str:
    """Spelling-insensitive key: case, spaces, punctuation, "and" and a trailing "District"
    or 區 do not matter."""
    s = text.strip().casefold()
    s = re.sub(r"\bdistrict\b", "", s)
    s = re.sub(r"\band\b", "", s)
    s = _DROP.sub("", s)
    if len(s) > 1 and s.endswith("區"):
        s = s[:-1]
    return s


@cache
def _table() -> dict[str, str]:
    table: dict[str, str] = {}
    for d in DISTRICTS:
        for name in (d.id, d.name_en, d.name_zh, *d.aliases):
            table[_key(name)] = d.id
    return table


def district_id(text: str | None) -> str | None:
    """The district id for any spelling the feeds use (None for None, "" or unknown)."""
    if not text:
        return None
    if text in BY_ID:
        return text
    return _table().get(_key(text))


def district_name(district: str, lang: str) -> str:
    d = BY_ID.get(district)
    if d is None:
        return district
    return d.name_zh if lang.startswith("zh") else d.name_en


def region_name(region: str, lang: str) -> str:
    en, zh = REGIONS.get(region, (region, region))
    return zh if lang.startswith("zh") else en
