"""Traffic simulators (td-speedmap, td-irn-speed) and the shared profile: payloads parse with the
real parsers, keep the real layout, cover the packaged ids, follow the daily profile, replay
deterministically and honour incidents."""

from __future__ import annotations

import random
import re
import statistics
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from citypulse.feeds import td_irn_speed, td_speedmap
from citypulse.feeds.base import HKT
from citypulse.feeds.reference import irn_segments, speedmap_links
from citypulse.model import Batch
from citypulse.simulate import profile
from citypulse.simulate.base import FeedSimulator
from citypulse.simulate.registry import all_simulators
from citypulse.simulate.td_irn_speed import IrnSpeedSimulator
from citypulse.simulate.td_speedmap import SpeedmapSimulator

# Tuesday 2024-04-09, Hong Kong time.
TUE_0300 = datetime(2024, 4, 9, 3, 0, 50, tzinfo=HKT)
TUE_0830 = datetime(2024, 4, 9, 8, 30, 50, tzinfo=HKT)
TUE_1815 = datetime(2024, 4, 9, 18, 15, 50, tzinfo=HKT)
SAT_0830 = datetime(2024, 4, 13, 8, 30, 50, tzinfo=HKT)

SIMS: dict[str, tuple[FeedSimulator, Callable[[bytes, datetime], Batch]]] = {
    "td-speedmap": (SpeedmapSimulator(), td_speedmap.parse),
    "td-irn-speed": (IrnSpeedSimulator(), td_irn_speed.parse),
}


def run(feed: str, at: datetime, seed: int = 7) -> tuple[bytes, Batch]:
    sim, parse = SIMS[feed]
    payload = sim.emit(at, random.Random(seed))
    return payload, parse(payload, at)


def mean_speed(batch: Batch) -> float:
    return statistics.fmean(v for v in batch.observations.column("value").to_pylist())


def shape(xml: bytes) -> bytes:
    """The markup with every text value blanked: what "same layout" means."""
    return re.sub(rb">[^<]+<", b">_<", xml)


def test_simulators_are_registered() -> None:
    sims = all_simulators()
    for feed in SIMS:
        assert sims[feed].feed_id == feed
        assert sims[feed].interval_s == 120


@pytest.mark.parametrize("at", [TUE_0300, TUE_0830, TUE_1815, SAT_0830])
def test_speedmap_payload_parses_with_the_real_parser(at: datetime) -> None:
    payload, batch = run("td-speedmap", at)
    links = speedmap_links()
    assert batch.n_observations == len(links) and batch.skipped == 0 and batch.notes == []
    assert {e.id for e in batch.entities} == {f"td-link:{i}" for i in links}
    values = batch.observations.column("value").to_pylist()
    assert all(1 <= v <= 110 and v == int(v) for v in values)
    tree = etree.fromstring(payload)
    # The saturation level agrees with the speed bands TD uses.
    for rec in tree.iter("jtis_speedmap"):
        speed, level = int(rec.findtext("TRAFFIC_SPEED")), rec.findtext("ROAD_SATURATION_LEVEL")
        good = 50 if rec.findtext("ROAD_TYPE") == "MAJOR ROUTE" else 30
        assert (level == "TRAFFIC GOOD") == (speed >= good)


@pytest.mark.parametrize("at", [TUE_0300, TUE_0830, TUE_1815, SAT_0830])
def test_irn_payload_parses_with_the_real_parser(at: datetime) -> None:
    payload, batch = run("td-irn-speed", at)
    tree = etree.fromstring(payload)
    n_invalid = int(tree.xpath("count(//segment[valid='N'])"))
    assert 0 < n_invalid < 0.03 * len(irn_segments())
    assert batch.n_observations == len(irn_segments()) - n_invalid
    assert batch.skipped == n_invalid
    assert not any("not in the packaged" in n for n in batch.notes)
    values = batch.observations.column("value").to_pylist()
    assert all(0 < v <= 120 for v in values)
    # Placeholders are bare speed limits, measurements have one decimal.
    for s in tree.iter("segment"):
        text = s.findtext("speed")
        if s.findtext("valid") == "N":
            assert text in {"50", "70", "80", "100", "110"}
        else:
            assert re.fullmatch(r"\d+\.\d", text)


def test_speedmap_layout_matches_the_real_file(feeds_dir: Path) -> None:
    real = (feeds_dir / "td-speedmap/speedmap_20161014-180048.xml").read_bytes()
    payload, _ = run("td-speedmap", TUE_0830)
    record = re.compile(rb"    <jtis_speedmap>\n.*?</jtis_speedmap>\n", re.S)
    assert payload.split(b"\n", 2)[:2] == real.split(b"\n", 2)[:2]
    assert payload.endswith(b"    </jtis_speedmap>\n</jtis_speedlist>\n")
    assert real.endswith(b"    </jtis_speedmap>\n</jtis_speedlist>\n")
    real_shape = shape(record.search(real).group())  # type: ignore[union-attr]
    assert {shape(m.group()) for m in record.finditer(payload)} == {real_shape}


def test_irn_layout_matches_the_real_file(feeds_dir: Path) -> None:
    real = (feeds_dir / "td-irn-speed/irnAvgSpeed-all_20240406-2127.xml").read_bytes()
    payload, _ = run("td-irn-speed", TUE_0830)
    head = re.compile(rb"^.*?<segments>", re.S)
    seg = re.compile(rb"<segment>.*?</segment>")
    assert shape(head.search(payload).group()) == shape(head.search(real).group())  # type: ignore[union-attr]
    assert {shape(m.group()) for m in seg.finditer(payload)} == {
        shape(seg.search(real).group())  # type: ignore[union-attr]
    }
    assert payload.endswith(b"</segment></segments></segment_speed_list>")
    assert real.endswith(b"</segment></segments></segment_speed_list>")


def test_timestamps_are_hong_kong_local_like_the_feed() -> None:
    at = datetime(2024, 4, 9, 0, 35, 10, tzinfo=UTC)  # 08:35:10 HKT
    payload, batch = run("td-speedmap", at)
    dates = set(etree.fromstring(payload).xpath("//CAPTURE_DATE/text()"))
    # Per-region capture seconds of the latest 2-minute cycle, no offset.
    assert dates == {f"2024-04-09T08:34:{s}" for s in ("16", "22", "34", "35")}
    assert max(o.ts for o in batch.observation_list()) <= at
    payload, batch = run("td-irn-speed", at)
    root = etree.fromstring(payload)
    assert (root.findtext("date"), root.findtext("time")) == ("2024-04-09", "08:35:00")
    assert {o.ts for o in batch.observation_list()} == {datetime(2024, 4, 9, 0, 35, tzinfo=UTC)}
    # Just before a region's capture second, the previous cycle is served.
    payload, _ = run("td-speedmap", datetime(2024, 4, 9, 8, 34, 20, tzinfo=HKT))
    assert "2024-04-09T08:32:35" in set(etree.fromstring(payload).xpath("//CAPTURE_DATE/text()"))


@pytest.mark.parametrize("feed", sorted(SIMS))
def test_peak_hours_are_slower_than_3am(feed: str) -> None:
    night = mean_speed(run(feed, TUE_0300)[1])
    for peak in (TUE_0830, TUE_1815):
        assert mean_speed(run(feed, peak)[1]) < 0.85 * night
    # Weekend mornings are flatter than weekday mornings.
    assert mean_speed(run(feed, SAT_0830)[1]) > mean_speed(run(feed, TUE_0830)[1])


def test_regions_differ_at_the_morning_peak() -> None:
    _, batch = run("td-speedmap", TUE_0830)
    by_region: dict[str, list[float]] = {}
    links = speedmap_links()
    for o in batch.observation_list():
        region = links[o.entity_id.removeprefix("td-link:")].region
        by_region.setdefault(region, []).append(o.value or 0.0)
    levels = {r: profile.traffic_level(TUE_0830, r) for r in by_region}
    assert levels["K"] > levels["TM"] and levels["HK"] > levels["ST"]
    assert len({round(statistics.fmean(v)) for v in by_region.values()}) > 1


@pytest.mark.parametrize("feed", sorted(SIMS))
def test_seeded_runs_are_deterministic(feed: str) -> None:
    assert run(feed, TUE_0830, seed=42)[0] == run(feed, TUE_0830, seed=42)[0]
    assert run(feed, TUE_0830, seed=42)[0] != run(feed, TUE_0830, seed=43)[0]


def test_speedmap_incident_depresses_one_link_for_a_while() -> None:
    link = "722-50059"
    start = TUE_0830 - timedelta(minutes=10)
    inc = profile.Incident(link, start, start + timedelta(minutes=30), factor=0.2)
    with_inc = SpeedmapSimulator(incidents=(inc,))
    plain = SpeedmapSimulator()

    def speeds(sim: SpeedmapSimulator, at: datetime) -> dict[str, float | None]:
        batch = td_speedmap.parse(sim.emit(at, random.Random(3)), at)
        return {o.entity_id: o.value for o in batch.observation_list()}

    during, normal = speeds(with_inc, TUE_0830), speeds(plain, TUE_0830)
    key = f"td-link:{link}"
    assert (during[key] or 0) < 0.4 * (normal[key] or 0)
    assert {k: v for k, v in during.items() if k != key} == {
        k: v for k, v in normal.items() if k != key
    }
    later = TUE_0830 + timedelta(hours=1)
    assert with_inc.emit(later, random.Random(3)) == plain.emit(later, random.Random(3))


def test_irn_incident_depresses_one_segment() -> None:
    base = td_irn_speed.parse(IrnSpeedSimulator().emit(TUE_0830, random.Random(5)), TUE_0830)
    b = {o.entity_id: o.value for o in base.observation_list()}
    key = next(iter(b))  # a measured (not placeholder) segment
    start = TUE_0830 - timedelta(minutes=5)
    inc = profile.Incident(key.removeprefix("td-segment:"), start, start + timedelta(hours=1))
    hit = td_irn_speed.parse(
        IrnSpeedSimulator(incidents=(inc,)).emit(TUE_0830, random.Random(5)), TUE_0830
    )
    a = {o.entity_id: o.value for o in hit.observation_list()}
    assert (a[key] or 0) < 0.5 * (b[key] or 0)
    assert {k: v for k, v in a.items() if k != key} == {k: v for k, v in b.items() if k != key}


def test_naive_time_is_refused() -> None:
    for sim, _ in SIMS.values():
        with pytest.raises(ValueError):
            sim.emit(datetime(2024, 4, 9, 8, 30), random.Random(1))


# --------------------------------------------------------------------------- profile


def test_traffic_level_shape() -> None:
    week = [TUE_0300 + timedelta(minutes=15 * i) for i in range(4 * 24 * 7)]
    for region in (None, "HK", "K", "TM", "ST"):
        levels = [profile.traffic_level(t, region) for t in week]
        assert all(0.0 <= v <= 1.0 for v in levels)
    assert profile.traffic_level(TUE_0830) > 3 * profile.traffic_level(TUE_0300)
    assert profile.traffic_level(TUE_1815) > 3 * profile.traffic_level(TUE_0300)
    sat = [profile.traffic_level(SAT_0830.replace(hour=h)) for h in range(7, 22)]
    tue = [profile.traffic_level(TUE_0830.replace(hour=h)) for h in range(7, 22)]
    assert max(sat) - min(sat) < max(tue) - min(tue)  # flatter
    # Same instant, any zone: the profile reads Hong Kong time.
    assert profile.traffic_level(TUE_0830.astimezone(UTC)) == profile.traffic_level(TUE_0830)


def test_per_road_traits_are_stable() -> None:
    assert profile.stable("3006-30069") == zlib.crc32(b"3006-30069")
    major = profile.free_flow_kmh("3006-30069", "MAJOR ROUTE")
    urban = profile.free_flow_kmh("3006-30069", "URBAN ROAD")
    assert major == profile.free_flow_kmh("3006-30069", "MAJOR ROUTE")
    assert 68 < major < 88 and 38 < urban < 50
    assert profile.free_flow_kmh("1", None) >= profile.DEFAULT_FREE_FLOW_KMH * 0.88
    rng = random.Random(0)
    speeds = [profile.congested_speed(60.0, lvl / 10, "a", rng, noise=0) for lvl in range(11)]
    assert speeds == sorted(speeds, reverse=True) and speeds[0] == 60.0


def test_incident_validation_and_factor() -> None:
    t = TUE_0830
    inc = profile.Incident("a", t, t + timedelta(minutes=10), factor=0.5)
    assert profile.incident_factor([inc, inc], "a", t) == 0.25
    assert profile.incident_factor([inc], "a", t + timedelta(minutes=10)) == 1.0
    assert profile.incident_factor([inc], "b", t) == 1.0
    with pytest.raises(ValueError):
        profile.Incident("a", datetime(2024, 1, 1), datetime(2024, 1, 2))
    with pytest.raises(ValueError):
        profile.Incident("a", t, t, factor=0.0)
