#!/usr/bin/env python3
"""Generate ``src/citypulse/feeds/data/epd_stations.csv``: the 18 EPD air quality monitoring
stations behind the AQHI and pollutant feeds, with Chinese names, district, type and position.

EPD's English XML feeds name stations in English only and carry no coordinates, so the map and
the bilingual pages need this table.

Source: our own hand-compiled table (this script is the source of truth; the CSV is generated)
from EPD's public list of general and roadside stations. Positions are approximate station
sites (within a few hundred metres), good for map markers. ``--check FILE`` verifies that every
station name of a captured ``24aqhi_Eng.xml`` is covered.

Usage: ``python scripts/build_epd_stations.py [--out FILE] [--check FILE]``
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "citypulse" / "feeds" / "data" / "epd_stations.csv"
COLUMNS = ["id", "name_en", "name_zh", "type", "district", "lat", "lon"]

# id, English (as in the feed), Chinese, station type, district id, lat, lon
STATIONS: list[tuple[str, str, str, str, str, float, float]] = [
    ("central_western", "Central/Western", "中西區", "general", "central_western",
     22.2849, 114.1441),
    ("southern", "Southern", "南區", "general", "southern", 22.2475, 114.1600),
    ("eastern", "Eastern", "東區", "general", "eastern", 22.2829, 114.2194),
    ("kwun_tong", "Kwun Tong", "觀塘", "general", "kwun_tong", 22.3096, 114.2312),
    ("sham_shui_po", "Sham Shui Po", "深水埗", "general", "sham_shui_po", 22.3302, 114.1592),
    ("kwai_chung", "Kwai Chung", "葵涌", "general", "kwai_tsing", 22.3571, 114.1296),
    ("tsuen_wan", "Tsuen Wan", "荃灣", "general", "tsuen_wan", 22.3717, 114.1145),
    ("tseung_kwan_o", "Tseung Kwan O", "將軍澳", "general", "sai_kung", 22.3177, 114.2596),
    ("yuen_long", "Yuen Long", "元朗", "general", "yuen_long", 22.4453, 114.0227),
    ("tuen_mun", "Tuen Mun", "屯門", "general", "tuen_mun", 22.3911, 113.9767),
    ("tung_chung", "Tung Chung", "東涌", "general", "islands", 22.2888, 113.9437),
    ("tai_po", "Tai Po", "大埔", "general", "tai_po", 22.4509, 114.1645),
    ("sha_tin", "Sha Tin", "沙田", "general", "sha_tin", 22.3763, 114.1845),
    ("north", "North", "北區", "general", "north", 22.4968, 114.1282),
    ("tap_mun", "Tap Mun", "塔門", "general", "tai_po", 22.4713, 114.3607),
    ("causeway_bay", "Causeway Bay", "銅鑼灣", "roadside", "wan_chai", 22.2801, 114.1850),
    ("central", "Central", "中環", "roadside", "central_western", 22.2819, 114.1581),
    ("mong_kok", "Mong Kok", "旺角", "roadside", "yau_tsim_mong", 22.3227, 114.1684),
]


def write(out: Path) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(COLUMNS)
        for sid, en, zh, typ, district, lat, lon in STATIONS:
            w.writerow([sid, en, zh, typ, district, f"{lat:.4f}", f"{lon:.4f}"])
    return len(STATIONS)


def check(sample: Path) -> list[str]:
    known = {en for _i, en, *_rest in STATIONS}
    names = set(re.findall(r"<StationName>([^<]+)</StationName>", sample.read_text("utf-8")))
    return sorted(n for n in names if n.strip() not in known)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", type=Path, metavar="FILE")
    args = ap.parse_args()
    n = write(args.out)
    print(f"wrote {n} stations to {args.out}")
    if args.check:
        missing = check(args.check)
        for m in missing:
            print("missing:", m, file=sys.stderr)
        return 1 if missing else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
