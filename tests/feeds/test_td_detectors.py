"""td-detectors parser: the real rawSpeedVol-all sample (values checked with XPath, independently
of the parser), the packaged reference table, the midnight rules, bad input and fuzzing."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from lxml import etree

from citypulse.feeds import td_detectors
from citypulse.feeds.base import FeedError
from citypulse.feeds.registry import feed_for_file, get_feed

from .mutate import check_contract, mutated

FETCHED = datetime(2024, 4, 6, 13, 30, tzinfo=UTC)
SAMPLE = "td-detectors/rawSpeedVol-all_20240406-2127.xml"
TABLE_2024 = "td-detectors/traffic_speed_volume_occ_info_2024.csv"

Lane = tuple[str, str, str, str, str, str]  # lane_id, speed, occupancy, volume, s.d., valid


def make_xml(
    day: str,
    periods: list[tuple[str, str, list[tuple[str, str, list[Lane]]]]],
    extra_lane_xml: str = "",
) -> bytes:
    """A payload in the real rawSpeedVol shape, built from the documented structure."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?><raw_speed_volume_list '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<date>{day}</date><periods>"
    ]
    for p_from, p_to, dets in periods:
        parts.append(f"<period><period_from>{p_from}</period_from><period_to>{p_to}</period_to>")
        parts.append("<detectors>")
        for det_id, direction, lanes in dets:
            parts.append(
                f"<detector><detector_id>{det_id}</detector_id>"
                f"<direction>{direction}</direction><lanes>"
            )
            for lane_id, speed, occ, vol, sd, valid in lanes:
                parts.append(
                    f"<lane><lane_id>{lane_id}</lane_id><speed>{speed}</speed>"
                    f"<occupancy>{occ}</occupancy><volume>{vol}</volume><s.d.>{sd}</s.d.>"
                    f"<valid>{valid}</valid>{extra_lane_xml}</lane>"
                )
            parts.append("</lanes></detector>")
        parts.append("</detectors></period>")
    parts.append("</periods></raw_speed_volume_list>")
    return "".join(parts).encode()


def lane_el(tree: etree._Element, period: int, det: str, lane: str) -> etree._Element:
    path = f"//period[{period}]//detector[detector_id='{det}']/lanes/lane[lane_id='{lane}']"
    return tree.xpath(path)[0]


def rows(batch: td_detectors.Batch) -> dict[tuple[str, str, datetime], tuple[float, str | None]]:
    return {(o.entity_id, o.metric, o.ts): (o.value, o.label) for o in batch.observation_list()}


@pytest.fixture(scope="module")
def sample(feeds_dir: Path) -> bytes:
    return (feeds_dir / SAMPLE).read_bytes()


@pytest.fixture(scope="module")
def tree(sample: bytes) -> etree._Element:
    return etree.fromstring(sample)


@pytest.fixture(scope="module")
def batch(sample: bytes) -> td_detectors.Batch:
    return td_detectors.parse(sample, FETCHED)


# --------------------------------------------------------------------------- real sample


def test_spec_is_registered() -> None:
    spec = get_feed("td-detectors")
    assert spec is td_detectors.SPEC
    assert spec.url == "https://resource.data.one.gov.hk/td/traffic-detectors/rawSpeedVol-all.xml"
    assert spec.interval_s == 60
    assert feed_for_file(Path("x/rawSpeedVol-all_20240406-2127.xml")) is spec


def test_counts_match_the_file(tree: etree._Element, batch: td_detectors.Batch) -> None:
    lanes = tree.xpath("//lane")
    assert len(tree.xpath("//period")) == 2
    metrics = Counter(batch.observations.column("metric").to_pylist())

    def ints(path: str) -> list[int]:
        return [int(x) for x in tree.xpath(path)]

    volumes = ints("//lane/volume/text()")
    occs = ints("//lane/occupancy/text()")
    assert metrics["volume_veh"] == sum(0 <= v <= 200 for v in volumes) == len(lanes)
    assert metrics["occupancy_pct"] == sum(0 <= o <= 100 for o in occs)
    moving = [
        int(lane.findtext("speed"))
        for lane in lanes
        if int(lane.findtext("volume")) > 0
    ]
    assert metrics["speed_kmh"] == sum(0 < s <= 250 for s in moving)
    placeholders = len(tree.xpath('//lane[volume="0"]'))
    assert placeholders == 522
    assert batch.skipped >= placeholders
    assert any("522 placeholder" in n for n in batch.notes)


def test_entities_match_the_file(tree: etree._Element, batch: td_detectors.Batch) -> None:
    det_ids = set(tree.xpath("//detector/detector_id/text()"))
    lane_keys = {
        (lane.getparent().getparent().findtext("detector_id"), lane.findtext("lane_id"))
        for lane in tree.xpath("//lane")
    }
    kinds = Counter(e.kind for e in batch.entities)
    assert kinds["traffic-detector"] == len(det_ids) == 754
    assert kinds["traffic-detector-lane"] == len(lane_keys)
    ids = {e.id for e in batch.entities}
    assert {f"td-detector:{d}" for d in det_ids} <= ids


def test_spot_values(tree: etree._Element, batch: td_detectors.Batch) -> None:
    r = rows(batch)
    first = lane_el(tree, 1, "AID01101", "Fast Lane")
    t0 = datetime(2024, 4, 6, 13, 27, tzinfo=UTC)
    eid = "td-detector:AID01101:fast-lane"
    assert r[(eid, "speed_kmh", t0)] == (float(first.findtext("speed")), None) == (66.0, None)
    assert r[(eid, "volume_veh", t0)][0] == float(first.findtext("volume")) == 3.0
    assert r[(eid, "occupancy_pct", t0)][0] == float(first.findtext("occupancy")) == 1.0
    assert r[(eid, "speed_sd_kmh", t0)][0] == float(first.findtext("s.d.")) == 7.5
    # Second period is 30 s later.
    t1 = datetime(2024, 4, 6, 13, 27, 30, tzinfo=UTC)
    second = lane_el(tree, 2, "AID01101", "Fast Lane")
    assert r[(eid, "volume_veh", t1)][0] == float(second.findtext("volume"))
    assert {o.ts for o in batch.observation_list()} == {t0, t1}


def test_placeholder_speed_not_stored(tree: etree._Element, batch: td_detectors.Batch) -> None:
    # AID01102 slow lane, period 1: volume 0 and speed 70 (the limit), per the file.
    lane = lane_el(tree, 1, "AID01102", "Slow Lane")
    assert lane.findtext("volume") == "0" and lane.findtext("speed") == "70"
    r = rows(batch)
    t0 = datetime(2024, 4, 6, 13, 27, tzinfo=UTC)
    eid = "td-detector:AID01102:slow-lane"
    assert (eid, "speed_kmh", t0) not in r
    assert r[(eid, "volume_veh", t0)][0] == 0.0


def test_unvalidated_rows_are_labelled(tree: etree._Element, batch: td_detectors.Batch) -> None:
    lane = tree.xpath('//period[1]//lane[valid="N" and volume!="0"]')[0]
    det = lane.getparent().getparent().findtext("detector_id")
    eid = f"td-detector:{det}:{td_detectors.lane_slug(lane.findtext('lane_id'))}"
    t0 = datetime(2024, 4, 6, 13, 27, tzinfo=UTC)
    assert rows(batch)[(eid, "volume_veh", t0)] == (float(lane.findtext("volume")), "unvalidated")


def test_direction_trailing_space_trimmed(tree: etree._Element, batch: td_detectors.Batch) -> None:
    det = tree.xpath('//detector[direction="North "]')[0]
    entity = next(e for e in batch.entities if e.id == f"td-detector:{det.findtext('detector_id')}")
    assert entity.properties["direction"] == "North"


def test_detector_location_from_reference(batch: td_detectors.Batch) -> None:
    e = next(e for e in batch.entities if e.id == "td-detector:AID01101")
    assert (e.lat, e.lon, e.district) == (22.248091, 114.152525, "Southern")
    assert e.name_en == "Aberdeen Praya Road near Abba House - Eastbound"
    assert e.name_zh and e.name_zh.endswith("東行")
    lane = next(e for e in batch.entities if e.id == "td-detector:AID01101:fast-lane")
    assert (lane.lat, lane.lon) == (e.lat, e.lon)
    assert lane.properties == {"detector": "td-detector:AID01101", "lane": "Fast Lane"}
    assert lane.name_zh and lane.name_zh.endswith("（快線）")


# --------------------------------------------------------------------------- reference table


def test_reference_table_matches_source(feeds_dir: Path, tree: etree._Element) -> None:
    with (feeds_dir / TABLE_2024).open(encoding="utf-8-sig", newline="") as fh:
        source = {r["AID_ID_Number"].strip(): r for r in csv.DictReader(fh)}
    ref = td_detectors.reference()
    assert len(ref) == len(source) == 786
    for det_id, row in source.items():
        got = ref[det_id]
        assert got.lat == pytest.approx(float(row["Latitude"]), abs=1e-6)
        assert got.lon == pytest.approx(float(row["Longitude"]), abs=1e-6)
        assert got.road_en == row["Road_EN"].strip()
        assert not got.road_en.endswith(" ")
    assert set(tree.xpath("//detector_id/text()")) <= set(ref)
    assert "Central and Western" not in {r.district for r in ref.values()}


def test_lane_names() -> None:
    assert td_detectors.lane_slug("Middle Lane 1") == "middle-lane-1"
    assert td_detectors.lane_name_zh("Middle Lane 2") == "中線2"
    assert td_detectors.lane_name_zh("Bus Lane") == "Bus Lane"


# --------------------------------------------------------------------------- time rules


LANES_OK: list[Lane] = [("Fast Lane", "80", "5", "4", "3.1", "Y")]


def test_period_rolling_over_midnight() -> None:
    payload = make_xml(
        "2024-04-06",
        [("23:59:30", "00:00:00", [("AID01101", "East", LANES_OK)]),
         ("00:00:00", "00:00:30", [("AID01101", "East", LANES_OK)])],
    )
    b = td_detectors.parse(payload, datetime(2024, 4, 6, 16, 1, tzinfo=UTC))
    assert sorted({o.ts for o in b.observation_list()}) == [
        datetime(2024, 4, 6, 15, 59, 30, tzinfo=UTC),
        datetime(2024, 4, 6, 16, 0, tzinfo=UTC),
    ]
    assert any("midnight" in n for n in b.notes)


def test_midnight_file_dated_previous_day_follows_fetch_time() -> None:
    periods = [
        ("00:00:00", "00:00:30", [("AID01101", "East", LANES_OK)]),
        ("00:00:30", "00:01:00", [("AID01101", "East", LANES_OK)]),
    ]
    payload = make_xml("2024-04-06", periods)
    fetched = datetime(2024, 4, 6, 16, 2, tzinfo=UTC)  # 00:02 HKT on the 7th
    b = td_detectors.parse(payload, fetched)
    assert min(o.ts for o in b.observation_list()) == datetime(2024, 4, 6, 16, 0, tzinfo=UTC)
    # Replayed long after: the date in the file is kept as written.
    b2 = td_detectors.parse(payload, datetime(2025, 1, 1, tzinfo=UTC))
    assert min(o.ts for o in b2.observation_list()) == datetime(2024, 4, 5, 16, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- bad input


def test_empty_truncated_html(sample: bytes) -> None:
    with pytest.raises(FeedError) as e:
        td_detectors.parse(b"", FETCHED)
    assert e.value.reason == "empty-payload"
    with pytest.raises(FeedError) as e:
        td_detectors.parse(sample[: 64 * 1024], FETCHED)
    assert e.value.reason == "malformed-xml"
    with pytest.raises(FeedError) as e:
        td_detectors.parse(b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", FETCHED)
    assert e.value.reason == "html-error-page"


def test_default_namespace_tolerated(sample: bytes) -> None:
    mini = _mini(sample)
    namespaced = mini.replace(
        b"<raw_speed_volume_list ", b'<raw_speed_volume_list xmlns="http://data.one.gov.hk/td" ', 1
    )
    assert namespaced != mini
    a, b = td_detectors.parse(mini, FETCHED), td_detectors.parse(namespaced, FETCHED)
    assert a.observation_list() == b.observation_list() and a.n_observations > 0


def test_bom_is_tolerated(sample: bytes, batch: td_detectors.Batch) -> None:
    b = td_detectors.parse(b"\xef\xbb\xbf" + sample, FETCHED)
    assert b.n_observations == batch.n_observations


def test_entity_attack_refused() -> None:
    payload = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;">]><raw_speed_volume_list><date>&b;</date>'
        b"</raw_speed_volume_list>"
    )
    with pytest.raises(FeedError) as e:
        td_detectors.parse(payload, FETCHED)
    assert e.value.reason == "xml-entity-declaration"


def test_wrong_root_bad_date_no_periods() -> None:
    with pytest.raises(FeedError) as e:
        td_detectors.parse(b"<segment_speed_list><date>2024-04-06</date></segment_speed_list>",
                           FETCHED)
    assert e.value.reason == "unexpected-root"
    with pytest.raises(FeedError) as e:
        td_detectors.parse(make_xml("06/04/2024", []), FETCHED)
    assert e.value.reason == "bad-timestamp"
    with pytest.raises(FeedError) as e:
        td_detectors.parse(make_xml("2024-04-06", []), FETCHED)
    assert e.value.reason == "no-records"


def test_missing_out_of_range_unknown_and_duplicates() -> None:
    lanes: list[Lane] = [
        ("Fast Lane", "400", "150", "3", "x", "Y"),  # speed and occupancy out of range
        ("Slow Lane", "60", "-1", "", "2.0", "Y"),  # occupancy -1, volume missing
        ("Slow Lane", "61", "5", "2", "1.0", "Y"),  # duplicate lane: skipped
        ("", "60", "5", "2", "1.0", "Y"),  # no lane id
        ("Middle Lane", "0", "100", "26", "0", "Y"),  # 0 km/h with vehicles: not a reading
    ]
    payload = make_xml(
        "2024-04-06",
        [("21:27:00", "21:27:30", [
            ("AID01101", "South East ", lanes),
            ("AID01101", "South East", LANES_OK),  # duplicate detector in the period
            ("", "North", LANES_OK),  # no detector id
            ("ZZZ999", "North", LANES_OK),  # not in the reference table: kept, unplaced
        ])],
        extra_lane_xml="<future_field>1</future_field>",
    )
    b = td_detectors.parse(payload, FETCHED)
    r = rows(b)
    t = datetime(2024, 4, 6, 13, 27, tzinfo=UTC)
    fast = "td-detector:AID01101:fast-lane"
    assert r[(fast, "volume_veh", t)][0] == 3.0
    assert (fast, "speed_kmh", t) not in r and (fast, "occupancy_pct", t) not in r
    assert (fast, "speed_sd_kmh", t) not in r
    slow = "td-detector:AID01101:slow-lane"
    assert not any(k[0] == slow for k in r)
    middle = "td-detector:AID01101:middle-lane"
    assert (middle, "speed_kmh", t) not in r and r[(middle, "occupancy_pct", t)][0] == 100.0
    assert r[("td-detector:ZZZ999:fast-lane", "speed_kmh", t)][0] == 80.0
    unknown = next(e for e in b.entities if e.id == "td-detector:ZZZ999")
    assert unknown.lat is None and unknown.name_en == "ZZZ999"
    # fast: speed 400 + occupancy 150 (a bad s.d. is optional, not counted); slow: volume
    # missing + occupancy -1 + its speed; duplicate lane; no lane id; 0 km/h; duplicate
    # detector; no detector id.
    assert b.skipped == 2 + 3 + 1 + 1 + 1 + 1 + 1
    assert any("duplicate" in n for n in b.notes)
    assert any("not in the reference table" in n for n in b.notes)


# --------------------------------------------------------------------------- fuzzing


def _mini(sample: bytes, keep: int = 3) -> bytes:
    """The real sample cut down to its first ``keep`` detectors per period, so that random
    mutations land on detector/lane content rather than somewhere in 700 KB."""
    root = etree.fromstring(sample)
    for dets in root.iter("detectors"):
        for det in list(dets)[keep:]:
            dets.remove(det)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def test_fuzz_mutated_real_sample(feeds_dir: Path) -> None:
    sample = (feeds_dir / SAMPLE).read_bytes()
    mini = _mini(sample)
    assert td_detectors.parse(mini, FETCHED).n_observations > 0

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=mutated(sample))
    def full(data: bytes) -> None:
        check_contract(td_detectors.parse, data)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=mutated(mini))
    def small(data: bytes) -> None:
        check_contract(td_detectors.parse, data)

    full()
    small()
