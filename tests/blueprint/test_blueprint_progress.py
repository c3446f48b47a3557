"""Progress per area and overall, checked against counts taken straight from the YAML."""

from __future__ import annotations

import itertools
from collections import Counter

from tests.blueprint.support import raw_initiatives

from citypulse.blueprint.loader import shipped_blueprint
from citypulse.blueprint.progress import BAR_ORDER, compute_progress, progress_by_area
from citypulse.blueprint.registry import AREA_IDS

DELIVERED = {"launched", "ongoing", "completed", "ended"}


def test_per_area_matches_yaml() -> None:
    raw = raw_initiatives()
    rows = progress_by_area(shipped_blueprint().initiatives)
    assert [p.area_id for p in rows] == list(AREA_IDS)
    for p in rows:
        mine = [r for r in raw if r["area"] == p.area_id]
        counts = Counter(r["status"] for r in mine)
        assert p.total == len(mine)
        assert p.delivered == sum(counts[s] for s in DELIVERED)
        assert p.underway == counts["in_progress"]
        assert p.planned == counts["planned"]
        assert p.unknown == counts["unknown"]
        assert {k: v for k, v in p.by_status.items() if v} == dict(counts)


def test_overall() -> None:
    raw = raw_initiatives()
    overall = compute_progress(shipped_blueprint().initiatives)
    assert overall.total == len(raw)
    assert overall.delivered == sum(1 for r in raw if r["status"] in DELIVERED)
    assert 0 < overall.delivered_pct < 100
    assert sum(p.total for p in progress_by_area(shipped_blueprint().initiatives)) == len(raw)


def test_segments_fill_the_bar() -> None:
    for p in progress_by_area(shipped_blueprint().initiatives):
        segs = p.segments()
        assert [s.status for s in segs] == [s for s in BAR_ORDER if p.by_status[s]]
        assert abs(sum(s.width_pct for s in segs) - 100) < 0.01
        for a, b in itertools.pairwise(segs):
            assert abs(a.x_pct + a.width_pct - b.x_pct) < 0.01


def test_empty() -> None:
    p = compute_progress([])
    assert p.total == 0 and p.delivered_pct == 0 and p.segments() == []
