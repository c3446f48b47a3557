"""td-speedmap parser: every real sample (counts and values checked with XPath, independently
of the parser), the documented decisions, bad input and fuzzing of real samples."""

from __future__ import annotations

import csv
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from lxml import etree

from citypulse.feeds import td_speedmap
from citypulse.feeds.base import FeedError
from citypulse.feeds.registry import feed_for_file, get_feed
from citypulse.model import Batch

from .mutate import check_contract, mutated

FETCHED = datetime(2016, 10, 14, 10, 0, 48, tzinfo=UTC)
LABELS = {"TRAFFIC GOOD": "good", "TRAFFIC AVERAGE": "average", "TRAFFIC BAD": "bad"}
HK = timedelta(hours=8)
TD_NS = "http://data.one.gov.hk/td"


def samples(feeds_dir: Path) -> list[Path]:
    files = sorted((feeds_dir / "td-speedmap").glob("speedmap_*.xml"))
    assert len(files) == 10
    return files


def expected(payload: bytes) -> set[tuple[str, float, str, datetime]]:
    """(entity id, speed, label, UTC time) per record, read with XPath and strptime."""
    tree = etree.fromstring(payload)
    out = set()
    for rec in tree.xpath("/jtis_speedlist/jtis_speedmap"):
        naive = datetime.strptime(rec.xpath("string(CAPTURE_DATE)"), "%Y-%m-%dT%H:%M:%S")
        out.add(
            (
                "td-link:" + rec.xpath("string(LINK_ID)"),
                float(rec.xpath("number(TRAFFIC_SPEED)")),
                LABELS[rec.xpath("string(ROAD_SATURATION_LEVEL)")],
                (naive - HK).replace(tzinfo=UTC),
            )
        )
    return out


def got(batch: Batch) -> set[tuple[str, float | None, str | None, datetime]]:
    return {(o.entity_id, o.value, o.label, o.ts) for o in batch.observation_list()}


def metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    dy = (lat2 - lat1) * 111_320
    dx = (lon2 - lon1) * 111_320 * math.cos(math.radians(lat1))
    return math.hypot(dx, dy)


def make_xml(records: list[dict[str, str]], ns: str | None = None, decl: bool = True) -> bytes:
    """A payload in the real layout (declaration, 4-space indentation) from field dicts."""
    head = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' if decl else ""
    xmlns = f' xmlns="{ns}"' if ns else ""
    parts = [f"{head}<jtis_speedlist{xmlns}>\n"]
    for rec in records:
        parts.append("    <jtis_speedmap>\n")
        parts.extend(f"        <{k}>{v}</{k}>\n" for k, v in rec.items())
        parts.append("    </jtis_speedmap>\n")
    parts.append("</jtis_speedlist>\n")
    return "".join(parts).encode()


def rec(link: str = "3006-30069", speed: str = "27", level: str = "TRAFFIC AVERAGE",
        date: str = "2016-10-14T17:56:35", region: str = "K",
        road_type: str = "URBAN ROAD") -> dict[str, str]:  # fmt: skip
    return {
        "LINK_ID": link,
        "REGION": region,
        "ROAD_TYPE": road_type,
        "ROAD_SATURATION_LEVEL": level,
        "TRAFFIC_SPEED": speed,
        "CAPTURE_DATE": date,
    }


# --------------------------------------------------------------------------- real samples


def test_spec_is_registered() -> None:
    spec = get_feed("td-speedmap")
    assert spec is td_speedmap.SPEC
    assert spec.url == "https://resource.data.one.gov.hk/td/speedmap.xml"
    assert spec.interval_s == 120
    assert spec.topics == ("traffic",)
    assert feed_for_file(Path("somewhere/speedmap_20161014-180048.xml")) is spec


def test_every_sample_matches_xpath(feeds_dir: Path) -> None:
    for path in samples(feeds_dir):
        payload = path.read_bytes()
        batch = td_speedmap.parse(payload, FETCHED)
        tree = etree.fromstring(payload)
        n = int(tree.xpath("count(/jtis_speedlist/jtis_speedmap)"))
        assert n == 607, path.name
        assert batch.n_observations == n
        assert got(batch) == expected(payload), path.name
        assert batch.skipped == 0 and batch.notes == []
        ids = set(tree.xpath("/jtis_speedlist/jtis_speedmap/LINK_ID/text()"))
        assert {e.id for e in batch.entities} == {f"td-link:{i}" for i in ids}
        assert all(e.kind == "road-link" and e.lat is not None for e in batch.entities)
        assert batch.feed_id == "td-speedmap"


def test_spot_values_and_per_record_times(feeds_dir: Path) -> None:
    payload = (feeds_dir / "td-speedmap/speedmap_20161014-180048.xml").read_bytes()
    batch = td_speedmap.parse(payload, FETCHED)
    obs = {o.entity_id: o for o in batch.observation_list()}
    first = obs["td-link:3006-30069"]
    assert (first.value, first.label) == (27.0, "average")
    assert first.ts == datetime(2016, 10, 14, 9, 56, 35, tzinfo=UTC)  # 17:56:35 HKT
    # Region TM was captured at :16 s in the same file.
    tm = obs["td-link:993026-992242"]
    assert tm.ts == datetime(2016, 10, 14, 9, 56, 16, tzinfo=UTC)
    assert tm.value == 72.0 and tm.label == "good"
    tree = etree.fromstring(payload)
    times = set(tree.xpath("//CAPTURE_DATE/text()"))
    assert len({o.ts for o in obs.values()}) == len(times) == 4


def test_entity_geometry_matches_official_table(feeds_dir: Path) -> None:
    payload = (feeds_dir / "td-speedmap/speedmap_20161014-180048.xml").read_bytes()
    batch = td_speedmap.parse(payload, FETCHED)
    with (feeds_dir / "td-speedmap/tsm_link_and_node_info_v2.csv").open(encoding="utf-8") as fh:
        table = {r["Link ID"]: r for r in csv.DictReader(fh)}
    for e in batch.entities:
        row = table[e.id.removeprefix("td-link:")]
        p = e.properties
        s_lat, s_lon = float(row["Start Node Latitude"]), float(row["Start Node Longitude"])
        e_lat, e_lon = float(row["End Node Latitude"]), float(row["End Node Longitude"])
        assert metres(p["start_lat"], p["start_lon"], s_lat, s_lon) < 5
        assert metres(p["end_lat"], p["end_lon"], e_lat, e_lon) < 5
        assert e.lat is not None and e.lon is not None
        assert metres(e.lat, e.lon, (s_lat + e_lat) / 2, (s_lon + e_lon) / 2) < 5
        assert (p["region"], p["road_type"]) == (row["Region"], row["Road Type"])
    e = next(e for e in batch.entities if e.id == "td-link:3006-30069")
    assert e.name_en == "Kowloon urban road 3006 → 30069"
    assert e.name_zh == "九龍市區道路 3006 → 30069"


def test_identical_captures_give_equal_batches(feeds_dir: Path) -> None:
    a_bytes = (feeds_dir / "td-speedmap/speedmap_20161014-180648.xml").read_bytes()
    b_bytes = (feeds_dir / "td-speedmap/speedmap_20161014-180849.xml").read_bytes()
    assert a_bytes == b_bytes
    a = td_speedmap.parse(a_bytes, FETCHED)
    b = td_speedmap.parse(b_bytes, FETCHED + timedelta(minutes=2))
    assert a.observations.equals(b.observations)
    assert a.entities == b.entities
    assert a.payload_sha256 == b.payload_sha256
    assert (a.skipped, a.notes) == (b.skipped, b.notes)


def test_namespaced_root_parses_the_same(feeds_dir: Path) -> None:
    payload = (feeds_dir / "td-speedmap/speedmap_20161014-180048.xml").read_bytes()
    namespaced = payload.replace(b"<jtis_speedlist>", f'<jtis_speedlist xmlns="{TD_NS}">'.encode())
    prefixed = re.sub(rb"<(/?)(\w+)>", rb"<\1td:\2>", payload).replace(
        b"<td:jtis_speedlist>", f'<td:jtis_speedlist xmlns:td="{TD_NS}">'.encode()
    )
    plain = td_speedmap.parse(payload, FETCHED)
    for variant in (namespaced, prefixed):
        batch = td_speedmap.parse(variant, FETCHED)
        assert batch.observations.equals(plain.observations)
        assert batch.entities == plain.entities


def test_odd_namespace_uri_is_quoted_safely() -> None:
    payload = make_xml([rec()]).replace(
        b"<jtis_speedlist>", b'<jtis_speedlist xmlns="urn:it\'s&amp;b">'
    )
    assert td_speedmap.parse(payload, FETCHED).n_observations == 1


def test_bom_and_no_declaration_are_fine() -> None:
    for payload in (b"\xef\xbb\xbf" + make_xml([rec()]), make_xml([rec()], decl=False)):
        assert td_speedmap.parse(payload, FETCHED).n_observations == 1


# --------------------------------------------------------------------------- decisions


def test_timestamp_without_zone_is_hong_kong_time() -> None:
    (o,) = td_speedmap.parse(
        make_xml([rec(date="2016-10-14T00:30:00")]), FETCHED
    ).observation_list()
    assert o.ts == datetime(2016, 10, 13, 16, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2016-10-14T17:56:35Z", datetime(2016, 10, 14, 17, 56, 35, tzinfo=UTC)),
        ("2016-10-14T17:56:35+00:00", datetime(2016, 10, 14, 17, 56, 35, tzinfo=UTC)),
        ("2016-10-14T17:56:35+08:00", datetime(2016, 10, 14, 9, 56, 35, tzinfo=UTC)),
        ("2016-10-14T17:56:35+0800", datetime(2016, 10, 14, 9, 56, 35, tzinfo=UTC)),
        ("2016-10-14 17:56:35", datetime(2016, 10, 14, 9, 56, 35, tzinfo=UTC)),
    ],
)
def test_timestamp_with_zone_is_honoured(text: str, utc: datetime) -> None:
    (o,) = td_speedmap.parse(make_xml([rec(date=text)]), FETCHED).observation_list()
    assert o.ts == utc


@pytest.mark.parametrize(
    ("level", "label"),
    [
        ("TRAFFIC GOOD", "good"),
        ("TRAFFIC AVERAGE", "average"),
        ("TRAFFIC BAD", "bad"),
        ("traffic  bad", "bad"),
        ("GOOD", "good"),
        ("", None),
    ],
)
def test_saturation_level_mapping(level: str, label: str | None) -> None:
    batch = td_speedmap.parse(make_xml([rec(level=level)]), FETCHED)
    assert batch.observation_list()[0].label == label
    assert batch.notes == []


def test_unknown_saturation_level_keeps_speed_without_label() -> None:
    batch = td_speedmap.parse(make_xml([rec(level="TRAFFIC JAMMED")]), FETCHED)
    (o,) = batch.observation_list()
    assert (o.value, o.label) == (27.0, None)
    assert any("TRAFFIC JAMMED" in n for n in batch.notes)


@pytest.mark.parametrize(
    ("speed", "reason"),
    [
        ("abc", "non-numeric speed"),
        ("", "non-numeric speed"),
        ("-5", "non-numeric speed"),
        ("1e2", "non-numeric speed"),
        ("NaN", "non-numeric speed"),
        ("inf", "non-numeric speed"),
        ("٣٠", "non-numeric speed"),
        ("999", "out-of-range speed"),
        ("150.5", "out-of-range speed"),
    ],
)
def test_impossible_speed_skips_the_record_not_the_payload(speed: str, reason: str) -> None:
    payload = make_xml([rec(speed=speed), rec(link="30069-888301", speed="32")])
    batch = td_speedmap.parse(payload, FETCHED)
    assert [o.entity_id for o in batch.observation_list()] == ["td-link:30069-888301"]
    assert batch.skipped == 1
    assert batch.notes == [f"skipped 1 record(s): {reason}"]


def test_boundary_speeds_are_kept() -> None:
    payload = make_xml([rec(speed="0"), rec(link="30069-888301", speed="150")])
    assert [o.value for o in td_speedmap.parse(payload, FETCHED).observation_list()] == [0, 150]


@pytest.mark.parametrize(
    "date", ["", "yesterday", "2016-13-45T17:56:35", "0001-01-01T00:00:00", "2016-10-14"]
)
def test_unreadable_capture_date_skips_the_record(date: str) -> None:
    payload = make_xml([rec(date=date), rec(link="30069-888301")])
    batch = td_speedmap.parse(payload, FETCHED)
    assert batch.n_observations == 1 and batch.skipped == 1
    assert "CAPTURE_DATE" in batch.notes[0]


def test_missing_elements() -> None:
    no_link = {k: v for k, v in rec().items() if k != "LINK_ID"}
    no_speed = {k: v for k, v in rec(link="30069-888301").items() if k != "TRAFFIC_SPEED"}
    batch = td_speedmap.parse(make_xml([no_link, no_speed, rec(link="3010-888301")]), FETCHED)
    assert [o.entity_id for o in batch.observation_list()] == ["td-link:3010-888301"]
    assert batch.skipped == 2
    # The link without a speed still exists as an entity.
    assert "td-link:30069-888301" in {e.id for e in batch.entities}


def test_unknown_link_is_kept_without_coordinates() -> None:
    batch = td_speedmap.parse(make_xml([rec(link="1-2"), rec()]), FETCHED)
    assert batch.n_observations == 2 and batch.skipped == 0
    e = next(e for e in batch.entities if e.id == "td-link:1-2")
    assert e.lat is None and e.lon is None and e.kind == "road-link"
    assert e.properties == {"region": "K", "road_type": "URBAN ROAD"}
    assert batch.notes == [
        "1 link id(s) not in the packaged reference table, kept without coordinates: 1-2"
    ]


def test_duplicate_records_keep_one() -> None:
    payload = make_xml([rec(), rec(speed="99"), rec(date="2016-10-14T17:58:35")])
    batch = td_speedmap.parse(payload, FETCHED)
    assert [(o.value, o.ts.minute) for o in batch.observation_list()] == [(27.0, 56), (27.0, 58)]
    assert batch.skipped == 1
    assert len(batch.entities) == 1


def test_unknown_elements_and_comments_are_ignored() -> None:
    payload = make_xml([rec() | {"EXTRA": "x"}]).replace(
        b"<jtis_speedmap>", b"<!-- c --><jtis_speedmap><?pi x?>", 1
    )
    assert td_speedmap.parse(payload, FETCHED).n_observations == 1


# --------------------------------------------------------------------------- bad input

BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]>'
    b"<jtis_speedlist><jtis_speedmap><LINK_ID>&lol2;</LINK_ID></jtis_speedmap></jtis_speedlist>"
)
XXE = (
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b"<jtis_speedlist><jtis_speedmap><LINK_ID>&xxe;</LINK_ID></jtis_speedmap></jtis_speedlist>"
)
PAD = b"<!--" + b"x" * 8000 + b"-->"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty-payload"),
        (b"  \n", "empty-payload"),
        (b"<!DOCTYPE html><html><body>503 Service Unavailable</body></html>", "html-error-page"),
        (b"<html><head><title>Error</title></head></html>", "html-error-page"),
        (make_xml([rec()])[:-40], "malformed-xml"),
        (b"<jtis_speedlist><jtis_speedmap>", "malformed-xml"),
        (b"not xml at all", "malformed-xml"),
        (b'<?xml version="1.0" encoding="UTF-9"?><jtis_speedlist/>', "malformed-xml"),
        (b"<segment_speed_list/>", "wrong-root"),
        (b"<jtis_speedmap/>", "wrong-root"),
        (b"<jtis_speedlist/>", "no-records"),
        (b"<jtis_speedlist><other/></jtis_speedlist>", "no-records"),
        (BILLION_LAUGHS, "xml-entity-declaration"),
        (XXE, "xml-entity-declaration"),
        (BILLION_LAUGHS.replace(b"<!DOCTYPE", PAD + b"<!DOCTYPE"), "xml-entity-declaration"),
        (XXE.replace(b"<!DOCTYPE", PAD + b"<!DOCTYPE"), "xml-entity-declaration"),
    ],
)
def test_bad_payloads_raise_feed_error(payload: bytes, reason: str) -> None:
    with pytest.raises(FeedError) as err:
        td_speedmap.parse(payload, FETCHED)
    assert err.value.reason == reason


def test_truncated_real_sample_raises(feeds_dir: Path) -> None:
    payload = (feeds_dir / "td-speedmap/speedmap_20161014-180048.xml").read_bytes()
    for cut in (10, 1000, len(payload) // 2, len(payload) - 5):
        with pytest.raises(FeedError, match="malformed-xml"):
            td_speedmap.parse(payload[:cut], FETCHED)


# --------------------------------------------------------------------------- fuzzing

_RECORD = re.compile(rb"<jtis_speedmap>.*?</jtis_speedmap>\s*", re.S)
_FIELD = re.compile(rb"<([A-Z_]+)>[^<]*</\1>\s*")


@st.composite
def delete_elements(draw: st.DrawFn, data: bytes) -> bytes:
    """Delete whole records or single fields (the structural damage byte flips rarely make)."""
    pattern = draw(st.sampled_from([_RECORD, _FIELD]))
    spans = [m.span() for m in pattern.finditer(data)]
    if not spans:
        return data
    picks = draw(st.lists(st.integers(0, len(spans) - 1), min_size=1, max_size=5, unique=True))
    out, last = [], 0
    for i in sorted(picks):
        start, end = spans[i]
        out.append(data[last:start])
        last = end
    out.append(data[last:])
    return b"".join(out)


def input_pairs(payload: bytes) -> set[tuple[str, float]]:
    """(entity id, speed) of every record as lxml reads the (mutated) payload."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(payload, parser)
    pairs = set()
    for r in root.xpath("/*/*[local-name()='jtis_speedmap']"):
        link = r.xpath("normalize-space(*[local-name()='LINK_ID'][1])")
        speed = r.xpath("normalize-space(*[local-name()='TRAFFIC_SPEED'][1])")
        try:
            pairs.add((f"td-link:{link}", float(speed)))
        except ValueError:
            continue
    return pairs


_SAMPLE_CACHE: dict[str, bytes] = {}


def _sample(feeds_dir: Path, name: str) -> bytes:
    if name not in _SAMPLE_CACHE:
        _SAMPLE_CACHE[name] = (feeds_dir / "td-speedmap" / name).read_bytes()
    return _SAMPLE_CACHE[name]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_samples_only_raise_feed_error(feeds_dir: Path, data: st.DataObject) -> None:
    name = data.draw(
        st.sampled_from(["speedmap_20161014-180048.xml", "speedmap_20161014-185252.xml"])
    )
    sample = _sample(feeds_dir, name)
    payload = data.draw(delete_elements(sample) | mutated(sample))
    if data.draw(st.booleans()):
        payload = data.draw(mutated(payload, max_mutations=2))
    batch = check_contract(td_speedmap.parse, payload, FETCHED)
    event("parsed" if batch is not None else "FeedError")
    if batch is None or batch.n_observations == 0:
        return
    pairs = input_pairs(payload)
    for o in batch.observation_list():
        assert o.value is not None
        assert (o.entity_id, o.value) in pairs, (o.entity_id, o.value)
        assert 0 <= o.value <= td_speedmap.SPEED_MAX_KMH
