"""The 18 districts: one id for every spelling the feeds use, the shipped offline base map
(boundaries + outline) consistent with the district table, and the district pages."""

from __future__ import annotations

import importlib.util
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from citypulse.web.dashboards.districts import BY_ID, DISTRICTS, REGIONS, district_id

GEO = Path(__file__).resolve().parents[2] / "src" / "citypulse" / "web" / "static" / "geo" / \
    "hk-districts.json"
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_districts.py"


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("Central & Western", "central_western"),  # TD, car parks
        ("Central and Western District", "central_western"),  # HKO
        ("Central/Western", "central_western"),  # EPD station name
        ("中西區", "central_western"),
        ("Kwun Tong District", "kwun_tong"),  # traffic news
        ("Islands District", "islands"),
        ("離島", "islands"),
        ("North", "north"),
        ("北區", "north"),
        ("Yeun Long", "yuen_long"),  # TD's 2022 detector table misspelling
        ("  sha tin ", "sha_tin"),
        ("sha_tin", "sha_tin"),
        ("Kowloon", None),  # a region, not a district
        ("", None),
        (None, None),
        ("<script>", None),
    ],
)
def test_every_spelling_maps_to_one_id(spelling: str | None, expected: str | None) -> None:
    assert district_id(spelling) == expected


def test_the_table_has_18_districts_in_3_regions() -> None:
    assert len(DISTRICTS) == 18 == len(BY_ID)
    assert {d.region for d in DISTRICTS} == set(REGIONS)
    assert sum(d.region == "hk_island" for d in DISTRICTS) == 4
    assert sum(d.region == "kowloon" for d in DISTRICTS) == 5


def inside(lon: float, lat: float, polygon: list[list[list[float]]]) -> bool:
    """Ray casting over a polygon's rings (holes flip it back)."""
    hit = False
    for ring in polygon:
        for (x0, y0), (x1, y1) in itertools.pairwise(ring):
            if (y0 > lat) != (y1 > lat) and lon < (x1 - x0) * (lat - y0) / (y1 - y0) + x0:
                hit = not hit
    return hit


def test_the_shipped_base_map_matches_the_table() -> None:
    geo = json.loads(GEO.read_text(encoding="utf-8"))
    assert geo["type"] == "FeatureCollection" and "Natural Earth" in geo["source"]
    districts = {f["id"]: f for f in geo["features"] if f["properties"]["kind"] == "district"}
    assert set(districts) == set(BY_ID)
    outline = [f for f in geo["features"] if f["properties"]["kind"] == "outline"]
    assert len(outline) == 1 and outline[0]["geometry"]["type"] == "MultiLineString"
    for d in DISTRICTS:
        f = districts[d.id]
        assert f["properties"]["name_zh"] == d.name_zh
        polygons = f["geometry"]["coordinates"]
        label = f["properties"]["label"]
        assert any(inside(label[0], label[1], p) for p in polygons), d.id
        assert any(inside(d.lon, d.lat, p) for p in polygons), d.id
        for p in polygons:
            for ring in p:
                assert ring[0] == ring[-1], f"{d.id}: open ring"
                assert all(113.8 < x < 114.5 and 22.1 < y < 22.6 for x, y in ring)
    # Every outline arc borders exactly one district: it lies on that district's boundary.
    points = {tuple(pt) for f in districts.values() for poly in f["geometry"]["coordinates"]
              for ring in poly for pt in ring}
    for line in outline[0]["geometry"]["coordinates"]:
        assert all(tuple(pt) in points for pt in line)


def load_script() -> Any:
    spec = importlib.util.spec_from_file_location("build_districts", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_build_script_decodes_topology_and_finds_the_outline() -> None:
    """Two squares sharing one edge: the shared arc is a boundary, the others the outline."""
    script = load_script()
    names = [d.name_en for d in DISTRICTS]
    # arcs: 0 shared edge (x=1), 1 left square's outer path, 2 right square's outer path
    topo = {
        "type": "Topology",
        "transform": {"scale": [0.01, 0.01], "translate": [114.0, 22.3]},
        "arcs": [[[1, 0], [0, 1]], [[1, 1], [-1, 0], [0, -1], [1, 0]],
                 [[1, 0], [1, 0], [0, 1], [-1, 0]]],
        "objects": {"hkg": {"type": "GeometryCollection", "geometries": [
            {"type": "Polygon", "properties": {"name": names[0]}, "arcs": [[0, 1]]},
            {"type": "Polygon", "properties": {"name": names[1]}, "arcs": [[~0, 2]]},
            *({"type": "Polygon", "properties": {"name": n}, "arcs": [[0, 1]]}
              for n in names[2:]),
        ]}},
    }
    out = script.build(topo)
    first = out["features"][0]
    assert first["id"] == DISTRICTS[0].id
    ring = first["geometry"]["coordinates"][0][0]
    assert ring[0] == [114.01, 22.3] and ring[1] == [114.01, 22.31] and ring[-1] == ring[0]
    outline = out["features"][-1]["geometry"]["coordinates"]
    assert [114.01, 22.3] in outline[0] or [114.01, 22.3] in outline[-1]
    with pytest.raises(SystemExit, match="unknown district"):
        topo["objects"]["hkg"]["geometries"][0]["properties"]["name"] = "Atlantis"  # type: ignore[index]
        script.build(topo)
