"""Congestion index math on crafted grids, checked against hand-computed figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from citypulse.analytics.baseline import PRIOR_FREE_FLOW_KMH, fit_baseline, free_flow_speeds
from citypulse.analytics.congestion import (
    congestion_index,
    district_entity_id,
    patterns,
    snapshot,
)
from citypulse.analytics.history import STEP, Grid, LinkInfo

T0 = datetime(2024, 6, 2, 16, 0, tzinfo=UTC)  # Monday 00:00 HKT
BINS_DAY = 288


def info(eid: str, region: str, district: str, km: float) -> LinkInfo:
    return LinkInfo(eid, eid, eid, region, "URBAN ROAD", district, 22.3, 114.1, km)


INFOS = {
    "a": info("a", "K", "Kowloon City", 2.0),
    "b": info("b", "K", "Yau Tsim Mong", 1.0),
    "c": info("c", "HK", "Central & Western", 1.0),
}


def test_index_is_lost_share_of_free_flow_clipped() -> None:
    ci = congestion_index(np.array([80.0, 40.0, 0.0, 90.0, np.nan]), np.full(5, 80.0))
    np.testing.assert_allclose(ci, [0.0, 0.5, 1.0, 0.0, np.nan])


def test_free_flow_from_night_then_percentile_then_prior() -> None:
    n = BINS_DAY  # one day from Monday 00:00 HKT
    values = np.full((3, n), np.nan)
    hours = np.arange(n) // 12
    values[0] = np.where((hours >= 1) & (hours < 5), 70.0, 35.0)  # 48 night bins at 70
    values[0, 12:16] = 90.0  # a few fast night readings do not move the median
    values[1, 120:140] = np.linspace(20, 58, 20)  # daytime only: 90th percentile
    values[2, 100:105] = 30.0  # too little history: the road-type prior
    g = Grid(("a", "b", "c"), T0, STEP, values)
    ff, src = free_flow_speeds(g, {"c": "URBAN ROAD"})
    assert src == ("night", "history", "prior")
    assert ff[0] == 70.0
    assert ff[1] == pytest.approx(np.percentile(np.linspace(20, 58, 20), 90))
    assert ff[2] == PRIOR_FREE_FLOW_KMH["URBAN ROAD"]


def test_snapshot_links_and_length_weighted_areas() -> None:
    ff = np.array([80.0, 50.0, 40.0])
    recent = np.full((3, 3), np.nan)
    recent[0, 2] = 40.0  # a: 0.5
    recent[1, 1] = 40.0  # b: 0.2 (its newest bin is one older: still "now")
    recent[2, :] = [30.0, 20.0, 10.0]  # c: newest 10 -> 0.75
    last_week = np.array([[60.0, 60.0], [45.0, 55.0], [20.0, np.nan]])  # a .25, b .0, c .5
    snap = snapshot(
        Grid(("a", "b", "c"), T0, STEP, recent),
        Grid(("a", "b", "c"), T0 - timedelta(days=7), STEP, last_week),
        ff, ("night", "night", "prior"), INFOS,
    )
    by_id = {x.entity_id: x for x in snap.links}
    assert by_id["a"].index == 0.5 and by_id["b"].index == 0.2 and by_id["c"].index == 0.75
    assert by_id["a"].last_week_index == 0.25 and by_id["b"].last_week_index == 0.0
    assert by_id["c"].change == 0.25 and by_id["b"].ts == T0 + STEP
    assert snap.at == T0 + 2 * STEP and snap.last_week_at == snap.at - timedelta(days=7)
    regions = {a.key: a for a in snap.regions}
    assert regions["K"].index == pytest.approx((2 * 0.5 + 1 * 0.2) / 3, abs=1e-3)
    assert regions["K"].last_week_index == pytest.approx((2 * 0.25 + 0) / 3, abs=1e-3)
    assert regions["HK"].index == 0.75 and regions["HK"].entity_id == "traffic-region:HK"
    assert snap.city.index == pytest.approx((2 * 0.5 + 0.2 + 0.75) / 4, abs=1e-3)
    districts = {a.key: a for a in snap.districts}
    assert districts["Central & Western"].entity_id == "traffic-district:central_western"
    assert district_entity_id("Yau Tsim Mong") == "traffic-district:yau_tsim_mong"
    assert [x.entity_id for x in snap.worst(2)] == ["c", "a"]
    # a and c both rose by 0.25 (ties by id), b by 0.2
    assert [x.entity_id for x in snap.worse_than_last_week(5)] == ["a", "c", "b"]
    assert snap.free_flow_sources == {"night": 2, "prior": 1}


def test_patterns_by_hour_and_day() -> None:
    days = 7
    n = days * BINS_DAY
    hours = (np.arange(n) % BINS_DAY) // 12
    weekday = (np.arange(n) // BINS_DAY) < 5
    speed = np.where(weekday & (hours == 8), 20.0, 50.0)  # CI 0.6 at 08:00 on weekdays
    values = np.vstack([speed, speed, speed])
    g = Grid(("a", "b", "c"), T0, STEP, values)
    hourly, daily = patterns(g, np.full(3, 50.0), INFOS, "region")
    assert [h.key for h in hourly] == ["HK", "K"]
    k = hourly[1]
    assert k.weekday[8] == 0.6 and k.weekday[9] == 0.0 and k.weekend[8] == 0.0
    assert len(daily[1].days) == 7
    monday = daily[1].days[0]
    assert monday.date == "2024-06-03" and monday.peak_hour == 8 and monday.peak == 0.6
    assert monday.mean == pytest.approx(0.6 / 24, abs=1e-3)
    assert daily[1].days[5].peak == 0.0  # Saturday


def test_baseline_profile_is_the_weekly_median() -> None:
    """Two weeks of a link slowed to 30 at Monday 08:00 HKT in one week only: the profile
    keeps the usual speed there (a median of 10 pooled samples)."""
    n = 14 * BINS_DAY
    values = np.full((1, n), 60.0)
    values[0, 8 * 12 : 8 * 12 + 3] = 30.0  # first Monday 08:00-08:15
    base = fit_baseline(Grid(("a",), T0, STEP, values))
    assert base.profile[0, 8 * 12] == 60.0
    assert base.weeks[0] == 2 and base.free_flow[0] == 60.0
