#!/usr/bin/env python3
"""Generate the compact reference tables citypulse ships, from TD's official reference files.

The product must not depend on the captured samples folder at run time, and TD's link table
carries grid coordinates we would otherwise convert on every start, so this script converts
once and writes small CSVs under ``src/citypulse/feeds/data`` (credited in ``NOTICE``):

- ``td_speedmap_links.csv``: link_id, region, road_type, start/end WGS84 lat/lon (6 dp, ~0.1 m)
  from ``td-speedmap/tsm_link_and_node_info_v2.csv``. WGS84 is computed from the HK1980 Grid
  eastings/northings with pyproj (EPSG:2326 -> EPSG:4326), not copied from the CSV's own
  lat/lon columns: TD's original spreadsheet has grid coordinates only, so the grid is the
  authoritative source (tests check both agree within a few metres).
- ``td_irn_segments.csv``: segment_id, route from ``td-irn-speed/speed_segments_info_2023-09.csv``.

Usage: ``python scripts/build_reference.py [--feeds-dir DIR] [--out-dir DIR]``
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

from pyproj import Transformer

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FEEDS = (
    Path(os.environ.get("CITYPULSE_SHARED_DATA", REPO.parent / "shared" / "data")) / "feeds"
)
DEFAULT_OUT = REPO / "src" / "citypulse" / "feeds" / "data"

LINKS_SOURCE = Path("td-speedmap") / "tsm_link_and_node_info_v2.csv"
SEGMENTS_SOURCE = Path("td-irn-speed") / "speed_segments_info_2023-09.csv"
LINKS_FILE = "td_speedmap_links.csv"
SEGMENTS_FILE = "td_irn_segments.csv"

LINK_COLUMNS = ["link_id", "region", "road_type", "start_lat", "start_lon", "end_lat", "end_lon"]
SEGMENT_COLUMNS = ["segment_id", "route"]


def grid_to_wgs84() -> Transformer:
    """HK1980 Grid (EPSG:2326) -> WGS84 (EPSG:4326), x=easting/lon first."""
    return Transformer.from_crs("EPSG:2326", "EPSG:4326", always_xy=True)


def build_links(source: Path) -> list[dict[str, str]]:
    transformer = grid_to_wgs84()
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    with source.open(encoding="utf-8-sig", newline="") as fh:
        for rec in csv.DictReader(fh):
            link_id = rec["Link ID"].strip()
            if not link_id or link_id in seen:
                continue
            seen.add(link_id)
            out = {
                "link_id": link_id,
                "region": rec["Region"].strip(),
                "road_type": rec["Road Type"].strip(),
            }
            for end, prefix in (("start", "Start Node"), ("end", "End Node")):
                lon, lat = transformer.transform(
                    float(rec[f"{prefix} Eastings"]), float(rec[f"{prefix} Northings"])
                )
                out[f"{end}_lat"] = f"{lat:.6f}"
                out[f"{end}_lon"] = f"{lon:.6f}"
            rows.append(out)
    return rows


def build_segments(source: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    with source.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        if [h.strip().lower() for h in header] != ["irn_id", "ucase(route)"]:
            raise SystemExit(f"{source}: unexpected header {header!r}")
        for rec in reader:
            if len(rec) < 2 or not rec[0].strip() or rec[0].strip() in seen:
                continue
            seen.add(rec[0].strip())
            rows.append({"segment_id": rec[0].strip(), "route": rec[1].strip()})
    return rows


def write_csv(rows: list[dict[str, str]], columns: list[str], dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def build(feeds_dir: Path, out_dir: Path) -> dict[str, int]:
    links = build_links(feeds_dir / LINKS_SOURCE)
    segments = build_segments(feeds_dir / SEGMENTS_SOURCE)
    write_csv(links, LINK_COLUMNS, out_dir / LINKS_FILE)
    write_csv(segments, SEGMENT_COLUMNS, out_dir / SEGMENTS_FILE)
    return {LINKS_FILE: len(links), SEGMENTS_FILE: len(segments)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--feeds-dir", type=Path, default=DEFAULT_FEEDS)
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    counts = build(args.feeds_dir, args.out_dir)
    for name, n in counts.items():
        print(f"wrote {args.out_dir / name}: {n} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
