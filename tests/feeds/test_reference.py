"""Packaged TD reference tables: generated from TD's official files by scripts/build_reference.py,
coordinates agree with TD's own lat/lon, the package ships them, display names."""

from __future__ import annotations

import csv
import importlib.util
import math
from importlib.resources import files
from pathlib import Path
from types import ModuleType

import pytest
from pyproj import Transformer

from citypulse.feeds import reference

REPO = Path(__file__).resolve().parents[2]
LINKS_CSV = "td-speedmap/tsm_link_and_node_info_v2.csv"
SEGMENTS_CSV = "td-irn-speed/speed_segments_info_2023-09.csv"


def metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    dy = (lat2 - lat1) * 111_320
    dx = (lon2 - lon1) * 111_320 * math.cos(math.radians(lat1))
    return math.hypot(dx, dy)


def official_links(feeds_dir: Path) -> list[dict[str, str]]:
    with (feeds_dir / LINKS_CSV).open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "build_reference", REPO / "scripts/build_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pyproj_grid_conversion_agrees_with_td_latlon(feeds_dir: Path) -> None:
    """HK1980 Grid -> WGS84 with pyproj lands within a few metres of TD's own lat/lon."""
    to_wgs84 = Transformer.from_crs("EPSG:2326", "EPSG:4326", always_xy=True)
    worst = 0.0
    for row in official_links(feeds_dir):
        for end in ("Start Node", "End Node"):
            lon, lat = to_wgs84.transform(
                float(row[f"{end} Eastings"]), float(row[f"{end} Northings"])
            )
            d = metres(lat, lon, float(row[f"{end} Latitude"]), float(row[f"{end} Longitude"]))
            worst = max(worst, d)
    assert worst < 3.0


def test_packaged_links_match_the_official_table(feeds_dir: Path) -> None:
    rows = official_links(feeds_dir)
    links = reference.speedmap_links()
    assert len(links) == len(rows) == 617
    assert list(links) == [r["Link ID"] for r in rows]
    for row in rows:
        link = links[row["Link ID"]]
        assert (link.region, link.road_type) == (row["Region"], row["Road Type"])
        lat, lon = float(row["Start Node Latitude"]), float(row["Start Node Longitude"])
        assert metres(link.start_lat, link.start_lon, lat, lon) < 3.0
        lat, lon = float(row["End Node Latitude"]), float(row["End Node Longitude"])
        assert metres(link.end_lat, link.end_lon, lat, lon) < 3.0
    first = links["722-50059"]
    assert (first.start_lat, first.start_lon) == (22.285995, 114.155242)
    assert first.mid_lat == round((first.start_lat + first.end_lat) / 2, 6)


def test_packaged_segments_match_the_official_table(feeds_dir: Path) -> None:
    with (feeds_dir / SEGMENTS_CSV).open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    segments = reference.irn_segments()
    assert len(segments) == len(rows) == 4255
    assert segments == {r[0]: r[1] for r in rows}
    assert segments["375"] == "1"
    assert "HIRAM'S HIGHWAY" in set(segments.values())


def test_packaged_files_are_up_to_date(
    feeds_dir: Path, tmp_path: Path, build_script: ModuleType
) -> None:
    """Re-running the generator on the official files reproduces the packaged tables."""
    counts = build_script.build(feeds_dir, tmp_path)
    assert counts == {"td_speedmap_links.csv": 617, "td_irn_segments.csv": 4255}
    data = files("citypulse.feeds").joinpath("data")
    for name in counts:
        assert (tmp_path / name).read_bytes() == data.joinpath(name).read_bytes(), name


def test_tables_ship_in_the_package() -> None:
    data = files("citypulse.feeds").joinpath("data")
    for name in (reference.LINKS_FILE, reference.SEGMENTS_FILE):
        resource = data.joinpath(name)
        assert resource.is_file()
        assert resource.read_text(encoding="utf-8").count("\n") > 600
    assert reference.speedmap_links() is reference.speedmap_links()  # cached


def test_notice_credits_the_sources() -> None:
    notice = (REPO / "NOTICE").read_text(encoding="utf-8")
    assert "Transport Department" in notice and "DATA.GOV.HK" in notice
    assert "td_speedmap_links.csv" in notice and "td_irn_segments.csv" in notice
    assert "terms-and-conditions" in notice


@pytest.mark.parametrize(
    ("route", "names"),
    [
        ("9", ("Route 9", "9號幹線")),
        ("HIRAM'S HIGHWAY", ("Hiram's Highway", None)),
        ("CASTLE PEAK ROAD - TAM MI", ("Castle Peak Road - Tam Mi", None)),
        (
            "HONG KONG-ZHUHAI-MACAO BRIDGE HONG KONG LINK ROAD",
            ("Hong Kong-Zhuhai-Macao Bridge Hong Kong Link Road", None),
        ),
    ],
)
def test_route_names(route: str, names: tuple[str, str | None]) -> None:
    assert reference.route_name(route) == names


def test_link_names() -> None:
    assert reference.link_name("722-50059", "HK", "MAJOR ROUTE") == (
        "Hong Kong Island major route 722 → 50059",
        "香港島主要道路 722 → 50059",
    )
    assert reference.link_name("1-2", None, None) == ("1 → 2", "1 → 2")
