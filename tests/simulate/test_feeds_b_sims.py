"""Simulators for hko-rhrread, hko-fnd, hko-warnsum, epd-aqhi and epd-pollutants: their payloads
parse with the real parsers, are deterministic, follow the day, and agree with each other."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from citypulse.feeds import hko_warnsum as warnsum_feed
from citypulse.feeds.registry import get_feed
from citypulse.model import Event
from citypulse.simulate import epd_aqhi, epd_pollutants, hko_fnd, hko_rhrread, hko_warnsum
from citypulse.simulate.registry import all_simulators

MODULES = (hko_rhrread, hko_fnd, hko_warnsum, epd_aqhi, epd_pollutants)
WINTER_NIGHT = datetime(2025, 1, 14, 20, 5, tzinfo=UTC)  # 04:05 HKT
SUMMER_AFTERNOON = datetime(2025, 8, 5, 6, 40, tzinfo=UTC)  # 14:40 HKT
# A simulated tropical cyclone (No. 1 -> 3 -> 8 SW -> 9 -> 3) and a black rainstorm.
STORM_FROM = datetime(2025, 8, 8, 12, 0, tzinfo=UTC)
STORM_TO = datetime(2025, 8, 11, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_output_parses_with_the_real_parser(module: object) -> None:
    sim = module.SIMULATOR  # type: ignore[attr-defined]
    spec = get_feed(sim.feed_id)
    assert all_simulators()[sim.feed_id] is sim and sim.interval_s > 0
    for at in (WINTER_NIGHT, SUMMER_AFTERNOON, STORM_FROM + timedelta(hours=30)):
        payload = sim.emit(at, random.Random(5))
        assert isinstance(payload, bytes) and payload
        batch = spec.parse(payload, at)
        assert batch.feed_id == spec.id
        if sim.feed_id != "hko-warnsum":
            assert batch.n_observations > 0 and batch.entities
        # Only the documented quirk (a gauge under maintenance) is ever skipped.
        assert all("maintenance" in n for n in batch.notes if n.startswith("skipped")), batch.notes
    assert sim.emit(SUMMER_AFTERNOON, random.Random(1)) == sim.emit(
        SUMMER_AFTERNOON, random.Random(1)
    )


def observatory(at: datetime, metric: str) -> float:
    b = get_feed("hko-rhrread").parse(hko_rhrread.SIMULATOR.emit(at, random.Random(0)), at)
    (value,) = [o.value for o in b.observation_list()
                if o.entity_id == "hko-station:hong_kong_observatory" and o.metric == metric]
    assert value is not None
    return value


def test_rhrread_diurnal_and_seasonal() -> None:
    days = [datetime(2025, 4, d, tzinfo=UTC) for d in range(1, 11)]
    afternoon = [observatory(d + timedelta(hours=6, minutes=10), "temperature_c") for d in days]
    dawn = [observatory(d - timedelta(hours=2, minutes=50), "temperature_c") for d in days]
    assert statistics.fmean(afternoon) > statistics.fmean(dawn) + 3
    assert observatory(SUMMER_AFTERNOON, "temperature_c") > observatory(
        WINTER_NIGHT, "temperature_c"
    ) + 8
    spec = get_feed("hko-rhrread")
    night = spec.parse(hko_rhrread.SIMULATOR.emit(WINTER_NIGHT, random.Random(0)), WINTER_NIGHT)
    assert not [o for o in night.observation_list() if o.metric == "uv_index"]
    noon = spec.parse(hko_rhrread.SIMULATOR.emit(SUMMER_AFTERNOON, random.Random(0)),
                      SUMMER_AFTERNOON)
    assert [o.metric for o in noon.observation_list()].count("temperature_c") in (26, 27)


def test_fnd_nine_days_after_the_issue() -> None:
    b = get_feed("hko-fnd").parse(hko_fnd.SIMULATOR.emit(SUMMER_AFTERNOON, random.Random(0)),
                                  SUMMER_AFTERNOON)
    fc = next(e for e in b.entities if e.id == "hko-forecast:hk")
    assert fc.properties["update_time"] == "2025-08-05T03:30:00+00:00"  # 11:30 HKT issue
    assert [d["date"] for d in fc.properties["days"]] == [f"202508{d:02d}" for d in range(6, 15)]
    highs = {o.ts: o.value for o in b.observation_list() if o.metric == "forecast_max_temp_c"}
    lows = {o.ts: o.value for o in b.observation_list() if o.metric == "forecast_min_temp_c"}
    assert all(highs[t] > lows[t] for t in highs)  # type: ignore[operator]


def test_warnsum_signals_start_escalate_and_end() -> None:
    """Replays the storm window every 10 minutes like ingest would: events upserted by id,
    warnings absent from a poll closed with the parser's helper."""
    spec = get_feed("hko-warnsum")
    store: dict[str, Event] = {}
    at = STORM_FROM
    while at <= STORM_TO:
        batch = spec.parse(hko_warnsum.SIMULATOR.emit(at, random.Random(0)), at)
        for ev in batch.events:
            store[ev.id] = ev
        still_open = [e for e in store.values() if e.ends_at is None or e.ends_at > at]
        for ev in warnsum_feed.close_absent(still_open, batch):
            store[ev.id] = ev
        at += timedelta(minutes=10)
    assert spec.parse(hko_warnsum.SIMULATOR.emit(STORM_TO, random.Random(0)), STORM_TO
                      ).events == []
    tc = sorted((e for e in store.values() if e.properties["family"] == "WTCSGNL"),
                key=lambda e: e.starts_at)
    assert [e.properties["code"] for e in tc] == ["TC1", "TC3", "TC8SW", "TC9", "TC3"]
    assert [e.severity for e in tc] == ["low", "moderate", "high", "severe", "moderate"]
    for a, b in pairwise(tc):
        assert a.ends_at is not None and a.ends_at <= b.starts_at + timedelta(minutes=10)
    rain = {e.properties["code"] for e in store.values() if e.properties["family"] == "WRAIN"}
    assert {"WRAINA", "WRAINB"} <= rain
    assert all(e.ends_at is not None and e.ends_at <= STORM_TO for e in store.values())


def test_rhrread_agrees_with_warnsum() -> None:
    at = datetime(2025, 8, 10, 4, 5, tzinfo=UTC)  # during the No. 8
    warn = get_feed("hko-warnsum").parse(hko_warnsum.SIMULATOR.emit(at, random.Random(0)), at)
    assert warnsum_feed.in_force(warn)["WTCSGNL"] == "TC8SW"  # type: ignore[index]
    now = get_feed("hko-rhrread").parse(hko_rhrread.SIMULATOR.emit(at, random.Random(0)), at)
    fields = {e.properties["field"]: e for e in now.events}
    assert "No. 8 Southwest Gale or Storm Signal" in (fields["warningMessage"].body_en or "")
    assert "tcmessage" in fields


def test_air_quality_history_is_stable_and_roadside_is_dirtier() -> None:
    spec = get_feed("epd-aqhi")
    first = spec.parse(epd_aqhi.SIMULATOR.emit(SUMMER_AFTERNOON, random.Random(1)),
                       SUMMER_AFTERNOON)
    later = SUMMER_AFTERNOON + timedelta(hours=1)
    second = spec.parse(epd_aqhi.SIMULATOR.emit(later, random.Random(2)), later)
    a = {(o.entity_id, o.ts): o.value for o in first.observation_list()}
    b = {(o.entity_id, o.ts): o.value for o in second.observation_list()}
    shared = a.keys() & b.keys()
    assert len(shared) == 18 * 23 and all(a[k] == b[k] for k in shared)
    assert len(a) == 432 and all(v is not None and 1 <= v <= 11 for v in a.values())

    pc = get_feed("epd-pollutants").parse(
        epd_pollutants.SIMULATOR.emit(SUMMER_AFTERNOON, random.Random(1)), SUMMER_AFTERNOON
    )
    kinds = {e.id: e.properties["station_type"] for e in pc.entities}
    no2: dict[str, list[float]] = {"roadside": [], "general": []}
    for o in pc.observation_list():
        if o.metric == "no2_ugm3" and o.value is not None:
            no2[kinds[o.entity_id]].append(o.value)
    assert statistics.fmean(no2["roadside"]) > 1.5 * statistics.fmean(no2["general"])
    co = {o.entity_id for o in pc.observation_list() if o.metric == "co_ugm3"}
    assert 0 < len(co) < 18  # CO is measured at some stations only
