#!/usr/bin/env python3
"""Generate ``src/citypulse/feeds/data/hko_places.csv``: the Hong Kong Observatory place names the
weather feeds use, in English and Traditional Chinese, with district and WGS84 position.

HKO's JSON API (``rhrread``, ``fnd``) names places in the language requested and the RSS
bulletins only in English, so one table keyed by both names lets every HKO parser build the same
bilingual entity whichever language was polled.

Source: our own hand-compiled table (this script is the source of truth; the CSV is generated).
Names are the spellings HKO's feeds use (checked against the captured ``lang=tc`` samples and
against public ``lang=en`` responses); positions are approximate public locations of the
stations (within a few hundred metres) and approximate label points for districts and regions,
good for placing markers, not for surveying. ``--check DIR`` verifies that every place name in
the captured samples under DIR is covered.

Usage: ``python scripts/build_hko_places.py [--out FILE] [--check FEEDS_DIR]``
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "citypulse" / "feeds" / "data" / "hko_places.csv"
COLUMNS = ["kind", "id", "name_en", "name_zh", "district", "lat", "lon", "aliases"]

# kind, id, English, Chinese, district id, lat, lon, other spellings seen (";"-separated)
STATIONS: list[tuple[str, str, str, str, str, float, float, str]] = [
    ("station", "hong_kong_observatory", "Hong Kong Observatory", "香港天文台", "yau_tsim_mong",
     22.3019, 114.1742, "天文台"),
    ("station", "kings_park", "King's Park", "京士柏", "yau_tsim_mong", 22.3119, 114.1728, ""),
    ("station", "wong_chuk_hang", "Wong Chuk Hang", "黃竹坑", "southern", 22.2478, 114.1736, ""),
    ("station", "ta_kwu_ling", "Ta Kwu Ling", "打鼓嶺", "north", 22.5286, 114.1567, ""),
    ("station", "lau_fau_shan", "Lau Fau Shan", "流浮山", "yuen_long", 22.4689, 113.9836, ""),
    ("station", "tai_po", "Tai Po", "大埔", "tai_po", 22.4461, 114.1789, ""),
    ("station", "sha_tin", "Sha Tin", "沙田", "sha_tin", 22.4025, 114.2100, ""),
    ("station", "tuen_mun", "Tuen Mun", "屯門", "tuen_mun", 22.3858, 113.9642, ""),
    ("station", "tseung_kwan_o", "Tseung Kwan O", "將軍澳", "sai_kung", 22.3158, 114.2556, ""),
    ("station", "sai_kung", "Sai Kung", "西貢", "sai_kung", 22.3756, 114.2744, ""),
    ("station", "cheung_chau", "Cheung Chau", "長洲", "islands", 22.2011, 114.0267, ""),
    ("station", "chek_lap_kok", "Chek Lap Kok", "赤鱲角", "islands", 22.3094, 113.9219, ""),
    ("station", "tsing_yi", "Tsing Yi", "青衣", "kwai_tsing", 22.3442, 114.1100, ""),
    ("station", "shek_kong", "Shek Kong", "石崗", "yuen_long", 22.4361, 114.0847, ""),
    ("station", "tsuen_wan_ho_koon", "Tsuen Wan Ho Koon", "荃灣可觀", "tsuen_wan",
     22.3836, 114.1078, ""),
    ("station", "tsuen_wan_shing_mun_valley", "Tsuen Wan Shing Mun Valley", "荃灣城門谷",
     "tsuen_wan", 22.3753, 114.1267, ""),
    ("station", "hong_kong_park", "Hong Kong Park", "香港公園", "central_western",
     22.2783, 114.1622, ""),
    ("station", "shau_kei_wan", "Shau Kei Wan", "筲箕灣", "eastern", 22.2817, 114.2361, ""),
    ("station", "kowloon_city", "Kowloon City", "九龍城", "kowloon_city", 22.3350, 114.1847, ""),
    ("station", "happy_valley", "Happy Valley", "跑馬地", "wan_chai", 22.2703, 114.1836, ""),
    ("station", "wong_tai_sin", "Wong Tai Sin", "黃大仙", "wong_tai_sin", 22.3394, 114.2053, ""),
    ("station", "stanley", "Stanley", "赤柱", "southern", 22.2142, 114.2186, ""),
    ("station", "kwun_tong", "Kwun Tong", "觀塘", "kwun_tong", 22.3186, 114.2247, ""),
    ("station", "sham_shui_po", "Sham Shui Po", "深水埗", "sham_shui_po", 22.3358, 114.1369, ""),
    ("station", "kai_tak_runway_park", "Kai Tak Runway Park", "啟德跑道公園", "kowloon_city",
     22.3047, 114.2169, ""),
    ("station", "yuen_long_park", "Yuen Long Park", "元朗公園", "yuen_long", 22.4411, 114.0183, ""),
    ("station", "tai_mei_tuk", "Tai Mei Tuk", "大美督", "tai_po", 22.4753, 114.2375, ""),
    # Sea surface temperature (9-day forecast) is reported at North Point.
    ("station", "north_point", "North Point", "北角", "eastern", 22.2911, 114.2003, ""),
]

# The 18 District Council districts, as HKO writes them in rainfall tables.
DISTRICTS: list[tuple[str, str, str, str, str, float, float, str]] = [
    ("district", "central_western", "Central & Western District", "中西區", "central_western",
     22.2860, 114.1500, "Central and Western District;Central/Western"),
    ("district", "wan_chai", "Wan Chai", "灣仔", "wan_chai", 22.2760, 114.1830, "灣仔區"),
    ("district", "eastern", "Eastern District", "東區", "eastern", 22.2730, 114.2300, ""),
    ("district", "southern", "Southern District", "南區", "southern", 22.2450, 114.1600, ""),
    ("district", "yau_tsim_mong", "Yau Tsim Mong", "油尖旺", "yau_tsim_mong",
     22.3110, 114.1700, "油尖旺區"),
    ("district", "sham_shui_po", "Sham Shui Po", "深水埗", "sham_shui_po", 22.3300, 114.1600,
     "深水埗區"),
    ("district", "kowloon_city", "Kowloon City", "九龍城", "kowloon_city", 22.3250, 114.1900,
     "九龍城區"),
    ("district", "wong_tai_sin", "Wong Tai Sin", "黃大仙", "wong_tai_sin", 22.3400, 114.2000,
     "黃大仙區"),
    ("district", "kwun_tong", "Kwun Tong", "觀塘", "kwun_tong", 22.3100, 114.2260, "觀塘區"),
    ("district", "kwai_tsing", "Kwai Tsing", "葵青", "kwai_tsing", 22.3550, 114.1100, "葵青區"),
    ("district", "tsuen_wan", "Tsuen Wan", "荃灣", "tsuen_wan", 22.3710, 114.1140, "荃灣區"),
    ("district", "tuen_mun", "Tuen Mun", "屯門", "tuen_mun", 22.3920, 113.9770, "屯門區"),
    ("district", "yuen_long", "Yuen Long", "元朗", "yuen_long", 22.4450, 114.0220, "元朗區"),
    ("district", "north", "North District", "北區", "north", 22.4960, 114.1380, ""),
    ("district", "tai_po", "Tai Po", "大埔", "tai_po", 22.4500, 114.1700, "大埔區"),
    ("district", "sha_tin", "Sha Tin", "沙田", "sha_tin", 22.3830, 114.1900, "沙田區"),
    ("district", "sai_kung", "Sai Kung", "西貢", "sai_kung", 22.3810, 114.2700, "西貢區"),
    ("district", "islands", "Islands District", "離島區", "islands", 22.2610, 113.9460, "離島"),
]

# Lightning is reported for four regions. Only "Lantau" is confirmed in English here; the
# others follow HKO's usual English wording.
REGIONS: list[tuple[str, str, str, str, str, float, float, str]] = [
    ("region", "lantau", "Lantau", "大嶼山", "islands", 22.2600, 113.9500, "Lantau Island"),
    ("region", "new_territories_east", "New Territories East", "新界東", "", 22.4200, 114.2200,
     ""),
    ("region", "new_territories_west", "New Territories West", "新界西", "", 22.4200, 114.0200,
     ""),
    ("region", "hong_kong_island_and_kowloon", "Hong Kong Island and Kowloon", "港島及九龍", "",
     22.3000, 114.1800, "Hong Kong Island & Kowloon"),
]

ROWS = STATIONS + DISTRICTS + REGIONS


def write(out: Path) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(COLUMNS)
        for kind, pid, en, zh, district, lat, lon, aliases in ROWS:
            w.writerow([kind, pid, en, zh, district, f"{lat:.4f}", f"{lon:.4f}", aliases])
    return len(ROWS)


def check(feeds_dir: Path) -> list[str]:
    """Place names in the captured samples that the table does not know."""
    known: dict[str, set[str]] = {"station": set(), "district": set(), "region": set()}
    for kind, _pid, en, zh, _d, _la, _lo, aliases in ROWS:
        known[kind].update({en, zh, *filter(None, aliases.split(";"))})
    missing: list[str] = []
    for path in sorted((feeds_dir / "hko-rhrread").glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        for rec in doc["temperature"]["data"] + doc["humidity"]["data"]:
            if rec["place"] not in known["station"]:
                missing.append(f"{path.name}: station {rec['place']}")
        for rec in doc["rainfall"]["data"]:
            if rec["place"] not in known["district"]:
                missing.append(f"{path.name}: district {rec['place']}")
        for rec in (doc.get("lightning") or {}).get("data", []):
            if rec["place"] not in known["region"]:
                missing.append(f"{path.name}: region {rec['place']}")
    for path in sorted((feeds_dir / "hko-currentweather-rss").glob("*.xml")):
        text = path.read_text(encoding="utf-8")
        for name in re.findall(r'<font size="-1">([^<]+)</font></td><td', text):
            if name.strip() not in known["station"]:
                missing.append(f"{path.name}: station {name}")
        for name in re.findall(r"<tr><td>([^<]+)</td>", text):
            if name.strip() not in known["district"]:
                missing.append(f"{path.name}: district {name}")
    return missing


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", type=Path, metavar="FEEDS_DIR")
    args = ap.parse_args()
    n = write(args.out)
    print(f"wrote {n} places to {args.out}")
    if args.check:
        missing = check(args.check)
        for m in missing:
            print("missing:", m, file=sys.stderr)
        return 1 if missing else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
