"""Anomaly detection: injected incidents are found, normal peaks are not; coinciding traffic
news is linked; the runner writes events and closes them when traffic recovers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from citypulse.analytics.anomalies import (
    KIND,
    Anomaly,
    detect,
    link_news,
    score_grid,
    to_event,
)
from citypulse.analytics.baseline import fit_baseline
from citypulse.analytics.congestion import congestion_index
from citypulse.analytics.engine import TrafficAnalytics
from citypulse.analytics.history import HK_OFFSET_S, grid_from_frame, link_info
from citypulse.analytics.runner import AnalyticsRunner, run_once
from citypulse.analytics.simulated import SimulatedHistory, pick_links, simulate_history, to_batch
from citypulse.model import Batch, Event
from citypulse.simulate.profile import Incident
from citypulse.store.bus import InProcessBus
from citypulse.store.duckdb import DuckDBStore

END = datetime(2024, 5, 31, 14, 0, tzinfo=UTC)  # Friday 22:00 HKT
FRI = datetime(2024, 5, 31, tzinfo=UTC) - timedelta(seconds=HK_OFFSET_S)  # Fri 00:00 HKT


def hkt(hour: float) -> datetime:
    return FRI + timedelta(hours=hour)


@pytest.fixture(scope="module")
def quiet_history() -> tuple[SimulatedHistory, list[Incident]]:
    """Two weeks + Friday, no random incidents; one incident at 11:00 HKT on Friday (off
    peak) and one in the morning peak on a link with spare capacity."""
    links = pick_links(12)
    incidents = [
        Incident(links[2].link_id, hkt(11), hkt(12), factor=0.3),
        Incident(links[7].link_id, hkt(8), hkt(8.75), factor=0.3),
    ]
    return simulate_history(days=15, links=12, seed=21, end=END, incidents=incidents), incidents


def test_finds_injected_incidents_and_not_daily_peaks(
    quiet_history: tuple[SimulatedHistory, list[Incident]],
) -> None:
    history, incidents = quiet_history
    grid = grid_from_frame(history.frame, history.start, history.end)
    day = grid.window(END - timedelta(hours=22), END)  # Friday 00:00-22:00 HKT
    train = grid.window(grid.start, day.start)
    found = detect(score_grid(day, fit_baseline(train)))
    hit = {a.entity_id for a in found}
    assert hit == {f"td-link:{i.road_id}" for i in incidents}
    for inc in incidents:
        a = next(x for x in found if x.entity_id == f"td-link:{inc.road_id}")
        assert abs(a.start - inc.start) <= timedelta(minutes=10)
        assert a.end is not None and abs(a.end - inc.end) <= timedelta(minutes=10)
        assert a.drop_pct > 40 and a.score >= 7 and a.severity in ("high", "moderate")
    # The peaks were real: at 08:30 and 18:30 HKT some links lose over half their speed.
    ff = fit_baseline(train).free_flow
    for hour in (8.5, 18.5):
        j = int((hkt(hour) - day.start) / day.step)
        assert np.nanmax(congestion_index(day.values[:, j], ff)) > 0.5


def test_traffic_news_linked_by_place_and_time() -> None:
    t = datetime(2024, 6, 3, 2, 0, tzinfo=UTC)
    a = Anomaly("td-link:1-2", "road-link", t, t + timedelta(minutes=40), t, 15.0, 12.0,
                20.0, 60.0, 66.7, 8, district="Wan Chai", lat=22.278, lon=114.175)

    def news(eid: str, start: datetime, end: datetime | None, district: str,
             lat: float | None = None, lon: float | None = None) -> Event:
        props = {} if lat is None else {"lat": lat, "lon": lon}
        return Event(eid, "traffic-news", "moderate", start, end, title_en=eid,
                     districts=(district,), properties=props)

    items = [
        news("same-district", t - timedelta(minutes=10), None, "Wan Chai District"),
        news("near", t + timedelta(minutes=5), None, "Eastern", 22.283, 114.180),  # ~0.8 km
        news("far-away", t, None, "Wan Chai", 22.40, 114.00),  # same district name, 22 km
        news("too-early", t - timedelta(hours=3), t - timedelta(hours=2), "Wan Chai"),
        news("elsewhere", t, None, "Tuen Mun"),
    ]
    linked = link_news([a], items, t + timedelta(hours=1))[0]
    assert linked.news_event_ids == ("near", "same-district")
    ev = to_event(linked)
    assert ev.kind == KIND and ev.id == "traffic-anomaly:td-link:1-2:20240603T0200Z"
    assert ev.properties["news_event_id"] == "near"
    assert ev.properties["observed_kmh"] == 20.0 and ev.properties["baseline_kmh"] == 60.0
    assert ev.severity == "high" and ev.entity_ids == ("td-link:1-2",)
    assert "near" in (ev.body_en or "")


def test_engine_and_runner_write_events_linked_to_news(
    quiet_history: tuple[SimulatedHistory, list[Incident]], tmp_path: Path
) -> None:
    history, incidents = quiet_history
    inc = incidents[0]
    link = next(e for e in history.entities if e.id == f"td-link:{inc.road_id}")
    district = link_info(link).district
    assert district
    store = DuckDBStore(str(tmp_path / "s.duckdb"))
    store.append(to_batch(history))
    news = Event(
        "td-traffic-news:IN-24-1", "traffic-news", "moderate", inc.start + timedelta(minutes=4),
        None, title_en="Traffic Accident", districts=(district.upper(),), source="td-traffic-news",
    )
    store.append(Batch.build("td-traffic-news", b"news", END, events=[news]))
    engine = TrafficAnalytics(store)
    found = engine.anomalies(24)
    mine = next(a for a in found if a.entity_id == link.id)
    assert mine.news_event_ids == (news.id,)
    summary = run_once(engine, lookback=timedelta(hours=24))
    assert summary.congestion_rows > 12 and summary.forecast_rows == 12 * 3
    stored = store.events(END - timedelta(days=1), END, kind=KIND)
    ids = {e.entity_ids[0] for e in stored}
    assert ids == {f"td-link:{i.road_id}" for i in incidents}
    ev = next(e for e in stored if e.entity_ids == (link.id,))
    assert ev.properties["news_event_id"] == news.id and ev.ends_at is not None
    assert store.count_observations("congestion_index") == summary.congestion_rows
    store.close()


def test_open_anomaly_is_closed_when_traffic_recovers(tmp_path: Path) -> None:
    links = pick_links(6)
    cut = END - timedelta(hours=1)
    inc = Incident(links[1].link_id, cut - timedelta(minutes=40), cut + timedelta(minutes=10), 0.25)
    history = simulate_history(days=9, links=6, seed=4, end=END, incidents=[inc])
    store = DuckDBStore(str(tmp_path / "s.duckdb"))
    cut_us = pa.scalar(cut, history.frame.schema.field("ts").type)
    first = SimulatedHistory(
        history.frame.filter(pc.less(history.frame["ts"], cut_us)),
        history.entities, history.incidents, history.start, cut,
    )
    store.append(to_batch(first))
    engine = TrafficAnalytics(store, baseline_ttl_s=0)
    run_once(engine)
    open_events = [e for e in store.events(cut - timedelta(hours=2), cut, kind=KIND)]
    assert len(open_events) == 1 and open_events[0].ends_at is None
    store.append(to_batch(history))  # the rest of the day: the link recovers
    run_once(engine)
    closed = store.events(cut - timedelta(hours=2), END, kind=KIND)
    assert len(closed) == 1 and closed[0].id == open_events[0].id
    assert closed[0].ends_at is not None
    assert abs(closed[0].ends_at - inc.end) <= timedelta(minutes=10)
    store.close()


async def test_runner_runs_periodically_and_publishes(tmp_path: Path) -> None:
    history = simulate_history(days=2, links=4, seed=2, end=END, incidents=[])
    store = DuckDBStore(str(tmp_path / "s.duckdb"))
    store.append(to_batch(history))
    bus = InProcessBus()
    runner = AnalyticsRunner(store, bus, interval_s=3600)
    async with bus.subscribe(frozenset({"analytics"})) as sub:
        await runner.start()
        msg = await asyncio.wait_for(sub.queue.get(), timeout=60)
        await runner.stop()
    assert msg.topic == "analytics" and msg.data["feed_id"] == "analytics"
    assert runner.last is not None and runner.last.congestion_rows > 0
    assert store.count_observations("congestion_index") > 0
    store.close()


def test_detector_slowdown_found_and_linked_to_news(tmp_path: Path) -> None:
    """Lanes pooled per detector: a drop at one detector (both lanes, 40 minutes) on the last
    day is an anomaly of that detector, linked to news in its district."""
    import math

    from citypulse.feeds.td_detectors import reference
    from citypulse.model import Entity, ObservationBuilder
    from citypulse.simulate.profile import traffic_level

    refs = [reference()["AID01101"], reference()["AID01102"]]
    hit = refs[0]
    start = END - timedelta(days=9)
    drop = (END - timedelta(hours=3), END - timedelta(hours=2, minutes=20))
    obs = ObservationBuilder()
    entities: list[Entity] = []
    rng = np.random.default_rng(0)
    for ref in refs:
        parent = f"td-detector:{ref.id}"
        entities.append(Entity(parent, "traffic-detector", ref.road_en, ref.road_tc,
                               ref.lat, ref.lon, ref.district, {"detector_id": ref.id}))
        for lane in ("fast-lane", "slow-lane"):
            eid = f"{parent}:{lane}"
            entities.append(Entity(eid, "traffic-detector-lane", None, None, ref.lat, ref.lon,
                                   ref.district, {"detector": parent, "lane": lane}))
            for k in range(int((END - start) / timedelta(minutes=1))):
                at = start + timedelta(minutes=k)
                speed = 80 * (1 - 0.6 * math.pow(traffic_level(at), 2)) * (1 + rng.normal(0, 0.05))
                if ref is hit and drop[0] <= at < drop[1]:
                    speed *= 0.3
                obs.add(eid, "speed_kmh", at, round(speed))
    store = DuckDBStore(str(tmp_path / "det.duckdb"))
    store.append(Batch.build("td-detectors", b"lanes", END, entities=entities, observations=obs))
    news = Event("td-traffic-news:X", "traffic-news", "moderate", drop[0], None,
                 title_en="Vehicle Breakdown", districts=(hit.district,))
    store.append(Batch.build("td-traffic-news", b"n", END, events=[news]))
    try:
        found = TrafficAnalytics(store).anomalies(6)
        assert [a.entity_id for a in found] == [f"td-detector:{hit.id}"]
        a = found[0]
        assert a.entity_kind == "traffic-detector" and a.district == hit.district
        assert abs(a.start - drop[0]) <= timedelta(minutes=5) and a.end is not None
        assert a.news_event_ids == (news.id,) and a.drop_pct > 50
    finally:
        store.close()
