"""What the speed map captures say, read independently of the parser (plain XPath and csv),
for checking API and page output against the files themselves."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from lxml import etree

HKT = timezone(timedelta(hours=8))
LEVELS = {"TRAFFIC GOOD": "good", "TRAFFIC AVERAGE": "average", "TRAFFIC BAD": "bad"}


@dataclass(frozen=True)
class Record:
    link: str
    speed: float
    level: str
    ts: datetime  # UTC


def records(path: Path) -> list[Record]:
    root = etree.parse(str(path)).getroot()
    out = []
    for rec in root.xpath("//*[local-name()='jtis_speedmap']"):
        def text(name: str, rec: etree._Element = rec) -> str:
            return str(rec.xpath(f"string(*[local-name()='{name}'])")).strip()

        local = datetime.fromisoformat(text("CAPTURE_DATE")).replace(tzinfo=HKT)
        out.append(
            Record(
                link=text("LINK_ID"),
                speed=float(text("TRAFFIC_SPEED")),
                level=LEVELS[text("ROAD_SATURATION_LEVEL")],
                ts=local.astimezone(UTC),
            )
        )
    return out


def latest(files: list[Path]) -> dict[str, Record]:
    """Newest record per link over the files."""
    best: dict[str, Record] = {}
    for path in files:
        for r in records(path):
            if r.link not in best or r.ts > best[r.link].ts:
                best[r.link] = r
    return best


def reference(feeds_dir: Path) -> dict[str, tuple[float, float, float, float]]:
    """Link id -> (start lon, start lat, end lon, end lat) from TD's link table."""
    with (feeds_dir / "td-speedmap" / "tsm_link_and_node_info_v2.csv").open(
        encoding="utf-8-sig", newline=""
    ) as fh:
        return {
            row["Link ID"]: (
                float(row["Start Node Longitude"]),
                float(row["Start Node Latitude"]),
                float(row["End Node Longitude"]),
                float(row["End Node Latitude"]),
            )
            for row in csv.DictReader(fh)
        }
