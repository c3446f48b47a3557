"""Simulators for td-detectors, td-journey-time, td-traffic-news, carpark-info/vacancy and
wifi-hk: their payloads parse with the real parsers, use real ids where a packaged table has
them, and follow a plausible daily pattern."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, datetime, timedelta

import pytest

from citypulse.feeds.registry import get_feed
from citypulse.feeds.td_detectors import reference
from citypulse.simulate import (
    carpark_info,
    carpark_vacancy,
    td_detectors,
    td_journey_time,
    td_traffic_news,
    wifi_hk,
)
from citypulse.simulate.registry import all_simulators

MODULES = (carpark_info, carpark_vacancy, td_detectors, td_journey_time, td_traffic_news, wifi_hk)
# Monday 3 March 2025, in UTC: 18:00 HKT (evening peak) and 03:00 HKT (night).
PEAK = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
NIGHT = datetime(2025, 3, 2, 19, 0, tzinfo=UTC)


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_output_parses_with_the_real_parser(module: object) -> None:
    sim = module.SIMULATOR  # type: ignore[attr-defined]
    spec = get_feed(sim.feed_id)
    assert sim.interval_s > 0
    assert all_simulators()[sim.feed_id] is sim
    for at in (PEAK, NIGHT):
        payload = sim.emit(at, random.Random(7))
        assert isinstance(payload, bytes) and payload
        batch = spec.parse(payload, at)
        assert batch.feed_id == spec.id
        if sim.feed_id in ("carpark-info", "wifi-hk"):
            assert batch.entities
        if sim.feed_id not in ("carpark-info", "td-traffic-news"):
            assert batch.n_observations > 0
        # Simulated data is clean apart from the real feed's documented quirks.
        assert not any("missing or out-of-range" in n for n in batch.notes), batch.notes
    assert sim.emit(PEAK, random.Random(1)) == sim.emit(PEAK, random.Random(1))


def test_detectors_use_real_ids_and_follow_the_day() -> None:
    spec = get_feed("td-detectors")
    peak = spec.parse(td_detectors.SIMULATOR.emit(PEAK, random.Random(2)), PEAK)
    night = spec.parse(td_detectors.SIMULATOR.emit(NIGHT, random.Random(2)), NIGHT)
    det_ids = {e.id.split(":")[1] for e in peak.entities if e.kind == "traffic-detector"}
    assert det_ids == set(reference())
    assert all(e.lat is not None for e in peak.entities)

    def values(batch: object, metric: str) -> list[float]:
        return [o.value for o in batch.observation_list() if o.metric == metric]  # type: ignore[attr-defined]

    assert mean(values(peak, "volume_veh")) > 3 * mean(values(night, "volume_veh"))
    assert mean(values(peak, "speed_kmh")) < mean(values(night, "speed_kmh"))
    # Quiet lanes at night report the placeholder speed, which the parser drops.
    assert night.skipped > peak.skipped
    # Periods: the minute before `at`, in two 30 s halves.
    assert {o.ts for o in peak.observation_list()} == {
        PEAK - timedelta(minutes=1), PEAK - timedelta(seconds=30)
    }


def test_detector_file_crossing_midnight() -> None:
    at = datetime(2025, 3, 3, 16, 0, 10, tzinfo=UTC)  # 00:00:10 HKT: periods 23:59:00, 23:59:30
    b = get_feed("td-detectors").parse(td_detectors.SIMULATOR.emit(at, random.Random(0)), at)
    assert max(o.ts for o in b.observation_list()) == datetime(2025, 3, 3, 15, 59, 30, tzinfo=UTC)


def test_traffic_level_shape() -> None:
    level = td_detectors.traffic_level
    assert level(PEAK) > 0.8 > 0.1 > level(NIGHT)
    saturday_peak = PEAK + timedelta(days=5)
    assert level(saturday_peak) < level(PEAK)
    assert set(td_detectors.district_centres()) == {r.district for r in reference().values()}


def test_journey_times_longer_at_peak() -> None:
    spec = get_feed("td-journey-time")
    peak = spec.parse(td_journey_time.SIMULATOR.emit(PEAK, random.Random(3)), PEAK)
    night = spec.parse(td_journey_time.SIMULATOR.emit(NIGHT, random.Random(3)), NIGHT)
    assert len(peak.entities) == len(td_journey_time.PAIRS) == 35

    def minutes(batch: object) -> list[float]:
        obs = batch.observation_list()  # type: ignore[attr-defined]
        return [o.value for o in obs if o.metric == "journey_time_min"]

    assert mean(minutes(peak)) > 1.5 * mean(minutes(night))
    assert {o.label for o in night.observation_list()} == {"green"}


def test_traffic_news_incidents_open_and_close() -> None:
    spec = get_feed("td-traffic-news")
    start = datetime(2025, 3, 3, 0, 0, tzinfo=UTC)
    first_seen: dict[str, datetime] = {}
    closed: dict[str, datetime] = {}
    for minutes in range(0, 24 * 60, 10):
        at = start + timedelta(minutes=minutes)
        for ev in spec.parse(td_traffic_news.SIMULATOR.emit(at, random.Random(0)), at).events:
            first_seen.setdefault(ev.id, at)
            if ev.ends_at is not None:
                closed.setdefault(ev.id, at)
                assert ev.ends_at <= at
            assert ev.title_en and ev.title_zh and ev.body_en and ev.body_zh and ev.districts
    assert len(first_seen) >= 5
    both = [i for i in closed if first_seen[i] < closed[i]]
    assert len(both) >= 3  # seen open first, closed later


def test_carparks_info_and_vacancy_agree() -> None:
    at = PEAK
    info = get_feed("carpark-info").parse(carpark_info.SIMULATOR.emit(at, random.Random(0)), at)
    vac = get_feed("carpark-vacancy").parse(
        carpark_vacancy.SIMULATOR.emit(at, random.Random(0)), at
    )
    ids = {e.id for e in info.entities}
    assert len(ids) == len(carpark_info.carparks()) >= 36
    assert {o.entity_id for o in vac.observation_list()} <= ids
    assert all(e.id.startswith("carpark:sim-") and e.lat is not None for e in info.entities)
    assert any("more than a day" in n for n in vac.notes)  # a stale operator, as in the feed
    office = next(cp for cp in carpark_info.carparks() if cp.use == "office")
    weekday_noon = datetime(2025, 3, 3, 4, 0, tzinfo=UTC)
    occupancy = carpark_vacancy.occupancy
    assert occupancy(office, weekday_noon) > occupancy(office, NIGHT)


def test_wifi_file_sizes() -> None:
    at = PEAK
    spec = get_feed("wifi-hk")
    b = spec.parse(wifi_hk.fixed_file(500, at), at)
    assert len(b.entities) == b.n_observations == 500
    assert all(e.lat is not None and e.district for e in b.entities)
    assert wifi_hk.fixed_file(10, at).startswith(b"\xef\xbb\xbf")
