"""td-irn-speed parser: both real samples (counts and values checked with XPath and the csv
module, independently of the parser), placeholders, the documented decisions, bad input and
fuzzing of real samples."""

from __future__ import annotations

import csv
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from lxml import etree

from citypulse.feeds import td_irn_speed
from citypulse.feeds.base import FeedError
from citypulse.feeds.registry import feed_for_file, get_feed

from .mutate import check_contract, mutated

FETCHED = datetime(2024, 4, 6, 13, 30, tzinfo=UTC)
SAMPLES = {
    "irnAvgSpeed-all_20240406-2127.xml": (4376, 55, datetime(2024, 4, 6, 13, 27, tzinfo=UTC)),
    "irnAvgSpeed-all_20240619-1227.xml": (4392, 57, datetime(2024, 6, 19, 4, 27, tzinfo=UTC)),
}


def make_xml(
    segments: list[tuple[str, str, str]],
    date: str = "2024-04-06",
    time: str = "21:27:00",
    ns: str | None = None,
) -> bytes:
    """A payload in the real one-line layout."""
    xmlns = f' xmlns="{ns}"' if ns else ""
    body = "".join(
        f"<segment><segment_id>{i}</segment_id><speed>{s}</speed><valid>{v}</valid></segment>"
        for i, s, v in segments
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><segment_speed_list'
        f'{xmlns} xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<date>{date}</date><time>{time}</time><irn_version>20221210</irn_version>"
        f"<segments>{body}</segments></segment_speed_list>"
    ).encode()


@pytest.fixture(scope="module")
def routes(feeds_dir: Path) -> dict[str, str]:
    with (feeds_dir / "td-irn-speed/speed_segments_info_2023-09.csv").open(encoding="utf-8") as fh:
        reader = csv.reader(fh)
        assert next(reader) == ["irn_id", "ucase(route)"]
        return {r[0]: r[1] for r in reader}


# --------------------------------------------------------------------------- real samples


def test_spec_is_registered() -> None:
    spec = get_feed("td-irn-speed")
    assert spec is td_irn_speed.SPEC
    assert spec.url == "https://resource.data.one.gov.hk/td/traffic-detectors/irnAvgSpeed-all.xml"
    assert spec.interval_s == 120
    assert spec.topics == ("traffic",)
    assert feed_for_file(Path("x/irnAvgSpeed-all_20240406-2127.xml")) is spec


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_matches_xpath(feeds_dir: Path, routes: dict[str, str], name: str) -> None:
    n_segments, n_invalid, ts = SAMPLES[name]
    payload = (feeds_dir / "td-irn-speed" / name).read_bytes()
    tree = etree.fromstring(payload)
    batch = td_irn_speed.parse(payload, FETCHED)

    assert int(tree.xpath("count(/segment_speed_list/segments/segment)")) == n_segments
    valid = tree.xpath("/segment_speed_list/segments/segment[valid='Y']")
    invalid = tree.xpath("/segment_speed_list/segments/segment[valid='N']")
    assert len(invalid) == n_invalid and len(valid) + len(invalid) == n_segments
    want = {(f"td-segment:{s.findtext('segment_id')}", float(s.findtext("speed"))) for s in valid}
    obs = batch.observation_list()
    assert {(o.entity_id, o.value) for o in obs} == want
    assert batch.n_observations == len(valid)
    assert {o.ts for o in obs} == {ts}
    assert {o.metric for o in obs} == {"speed_kmh"} and {o.label for o in obs} == {None}
    # valid=N placeholders: counted, noted, never stored.
    assert batch.skipped == n_invalid
    assert f"skipped {n_invalid} record(s): valid=N placeholder speed" in batch.notes
    placeholder_ids = {f"td-segment:{s.findtext('segment_id')}" for s in invalid}
    assert not placeholder_ids & {o.entity_id for o in obs}
    # Entities: every segment; route names from TD's table where it knows the segment.
    ids = tree.xpath("/segment_speed_list/segments/segment/segment_id/text()")
    assert {e.id for e in batch.entities} == {f"td-segment:{i}" for i in ids}
    unknown = [i for i in ids if i not in routes]
    assert any(n.startswith(f"{len(unknown)} segment id(s) not in") for n in batch.notes)
    for e in batch.entities:
        seg = e.id.removeprefix("td-segment:")
        assert e.kind == "road-segment" and e.lat is None and e.lon is None
        assert e.properties.get("route") == routes.get(seg)


def test_spot_values(feeds_dir: Path, routes: dict[str, str]) -> None:
    payload = (feeds_dir / "td-irn-speed/irnAvgSpeed-all_20240406-2127.xml").read_bytes()
    batch = td_irn_speed.parse(payload, FETCHED)
    obs = {o.entity_id: o.value for o in batch.observation_list()}
    assert obs["td-segment:104324"] == 50.0
    assert obs["td-segment:104542"] == 66.8
    assert obs["td-segment:63080"] == 67.8
    ents = {e.id: e for e in batch.entities}
    assert routes["104324"] == "1"
    assert (ents["td-segment:104324"].name_en, ents["td-segment:104324"].name_zh) == (
        "Route 1",
        "1號幹線",
    )
    named = next(i for i, r in routes.items() if r == "ABERDEEN TUNNEL")
    e = td_irn_speed.parse(make_xml([(named, "60.0", "Y")]), FETCHED).entities[0]
    assert (e.name_en, e.name_zh) == ("Aberdeen Tunnel", None)


def test_identical_payloads_give_equal_batches(feeds_dir: Path) -> None:
    payload = (feeds_dir / "td-irn-speed/irnAvgSpeed-all_20240619-1227.xml").read_bytes()
    a = td_irn_speed.parse(payload, FETCHED)
    b = td_irn_speed.parse(bytes(payload), datetime(2024, 6, 19, 4, 31, tzinfo=UTC))
    assert a.observations.equals(b.observations)
    assert (a.entities, a.skipped, a.notes, a.payload_sha256) == (
        b.entities,
        b.skipped,
        b.notes,
        b.payload_sha256,
    )


def test_namespaced_payload_parses_the_same(feeds_dir: Path) -> None:
    payload = (feeds_dir / "td-irn-speed/irnAvgSpeed-all_20240406-2127.xml").read_bytes()
    ns = payload.replace(b"<segment_speed_list ", b'<segment_speed_list xmlns="urn:td" ', 1)
    plain = td_irn_speed.parse(payload, FETCHED)
    batch = td_irn_speed.parse(ns, FETCHED)
    assert batch.observations.equals(plain.observations)
    assert batch.entities == plain.entities


def test_parsing_in_threads_gives_the_same_batches(feeds_dir: Path) -> None:
    """Ingest may parse in worker threads: the cached per-thread stylesheets must not mix."""
    payloads = [(feeds_dir / "td-irn-speed" / n).read_bytes() for n in sorted(SAMPLES)]
    payloads.append(
        payloads[0].replace(b"<segment_speed_list ", b'<segment_speed_list xmlns="urn:x" ', 1)
    )
    want = [td_irn_speed.parse(p, FETCHED).observations for p in payloads]
    with ThreadPoolExecutor(max_workers=3) as pool:
        jobs = [pool.submit(td_irn_speed.parse, p, FETCHED) for p in payloads * 2]
        got = [j.result().observations for j in jobs]
    assert all(g.equals(w) for g, w in zip(got, want * 2, strict=True))


# --------------------------------------------------------------------------- decisions


def test_header_time_is_hong_kong_time_unless_zoned() -> None:
    (o,) = td_irn_speed.parse(make_xml([("1", "50.5", "Y")]), FETCHED).observation_list()
    assert o.ts == datetime(2024, 4, 6, 13, 27, tzinfo=UTC)
    payload = make_xml([("1", "50.5", "Y")], time="21:27:00+00:00")
    (o,) = td_irn_speed.parse(payload, FETCHED).observation_list()
    assert o.ts == datetime(2024, 4, 6, 21, 27, tzinfo=UTC)


@pytest.mark.parametrize(
    ("date", "time"),
    [("", "21:27:00"), ("2024-04-06", ""), ("2024-04-31", "21:27:00"), ("x", "y")],
)
def test_bad_header_time_raises(date: str, time: str) -> None:
    with pytest.raises(FeedError) as err:
        td_irn_speed.parse(make_xml([("1", "50.5", "Y")], date=date, time=time), FETCHED)
    assert err.value.reason == "bad-timestamp"


def test_missing_header_time_raises() -> None:
    payload = make_xml([("1", "50.5", "Y")]).replace(b"<time>21:27:00</time>", b"")
    with pytest.raises(FeedError, match="bad-timestamp"):
        td_irn_speed.parse(payload, FETCHED)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (("7", "50", "N"), "valid=N placeholder speed"),
        (("7", "50.5", ""), "missing or unknown valid flag"),
        (("7", "50.5", "maybe"), "missing or unknown valid flag"),
        (("7", "abc", "Y"), "non-numeric speed"),
        (("7", "-3.0", "Y"), "non-numeric speed"),
        (("7", "1e3", "Y"), "non-numeric speed"),
        (("7", "200.0", "Y"), "out-of-range speed"),
        (("", "50.5", "Y"), "missing or invalid segment_id"),
        (("a b", "50.5", "Y"), "missing or invalid segment_id"),
        (("1", "60.0", "Y"), "duplicate segment"),
    ],
)
def test_bad_rows_are_skipped_and_counted(row: tuple[str, str, str], reason: str) -> None:
    batch = td_irn_speed.parse(make_xml([("1", "50.5", "Y"), row]), FETCHED)
    assert [(o.entity_id, o.value) for o in batch.observation_list()] == [("td-segment:1", 50.5)]
    assert batch.skipped == 1
    assert f"skipped 1 record(s): {reason}" in batch.notes


def test_lower_case_flag_is_accepted() -> None:
    batch = td_irn_speed.parse(make_xml([("1", "50.5", "y"), ("2", "50", "n")]), FETCHED)
    assert batch.n_observations == 1 and batch.skipped == 1


def test_unknown_segment_is_kept_without_route() -> None:
    batch = td_irn_speed.parse(make_xml([("99999999", "40.0", "Y")]), FETCHED)
    (e,) = batch.entities
    assert e.id == "td-segment:99999999" and e.name_en is None
    assert e.properties == {"irn_version": "20221210"}
    assert batch.n_observations == 1
    assert batch.notes == [
        "1 segment id(s) not in the packaged reference table, kept without route name: 99999999"
    ]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty-payload"),
        (b"<html><body>Service Unavailable</body></html>", "html-error-page"),
        (make_xml([("1", "50.5", "Y")])[:-30], "malformed-xml"),
        (make_xml([("1", "50.5", "Y")])[: 64 * 4], "malformed-xml"),
        (b"<jtis_speedlist/>", "wrong-root"),
        (make_xml([]), "no-records"),
        (make_xml([("1", "50.5", "Y")]).replace(b"segments>", b"other>"), "no-records"),
        (
            b'<!DOCTYPE x [<!ENTITY a "b">]><segment_speed_list><date>&a;</date>'
            b"</segment_speed_list>",
            "xml-entity-declaration",
        ),
        (
            b"<!--" + b"x" * 9000 + b'--><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            b"<segment_speed_list><date>&e;</date></segment_speed_list>",
            "xml-entity-declaration",
        ),
    ],
)
def test_bad_payloads_raise_feed_error(payload: bytes, reason: str) -> None:
    with pytest.raises(FeedError) as err:
        td_irn_speed.parse(payload, FETCHED)
    assert err.value.reason == reason


def test_archive_truncation_at_64k_raises(feeds_dir: Path) -> None:
    """The archive holds rare files cut at 64 KiB (FORMATS.md §1b)."""
    payload = (feeds_dir / "td-irn-speed/irnAvgSpeed-all_20240406-2127.xml").read_bytes()
    with pytest.raises(FeedError, match="malformed-xml"):
        td_irn_speed.parse(payload[:65536], FETCHED)


# --------------------------------------------------------------------------- fuzzing

_SEGMENT = re.compile(rb"<segment>.*?</segment>")
_FIELD = re.compile(rb"<(segment_id|speed|valid|date|time)>[^<]*</\1>")


@st.composite
def delete_elements(draw: st.DrawFn, data: bytes) -> bytes:
    pattern = draw(st.sampled_from([_SEGMENT, _FIELD]))
    spans = [m.span() for m in pattern.finditer(data)]
    if not spans:
        return data
    picks = draw(st.lists(st.integers(0, len(spans) - 1), min_size=1, max_size=5, unique=True))
    out, last = [], 0
    for i in sorted(picks):
        out.append(data[last : spans[i][0]])
        last = spans[i][1]
    out.append(data[last:])
    return b"".join(out)


def valid_pairs(payload: bytes) -> set[tuple[str, float]]:
    """(entity id, speed) of every segment flagged valid, as lxml reads the payload."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(payload, parser)

    def text(el: etree._Element, name: str) -> str:
        child = el.find(f"{{*}}{name}")
        return "" if child is None else " ".join("".join(child.itertext()).split())

    pairs = set()
    for segments in root.iterfind("{*}segments"):
        for s in segments.iterfind("{*}segment"):
            if text(s, "valid").upper() != "Y":
                continue
            try:
                pairs.add((f"td-segment:{text(s, 'segment_id')}", float(text(s, "speed"))))
            except ValueError:
                continue
    return pairs


_CACHE: dict[str, bytes] = {}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_samples_only_raise_feed_error(feeds_dir: Path, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(SAMPLES)))
    if name not in _CACHE:
        _CACHE[name] = (feeds_dir / "td-irn-speed" / name).read_bytes()
    sample = _CACHE[name]
    payload = data.draw(delete_elements(sample) | mutated(sample))
    if data.draw(st.booleans()):
        payload = data.draw(mutated(payload, max_mutations=2))
    batch = check_contract(td_irn_speed.parse, payload, FETCHED)
    event("parsed" if batch is not None else "FeedError")
    if batch is None or batch.n_observations == 0:
        return
    pairs = valid_pairs(payload)
    for o in batch.observation_list():
        assert o.value is not None and 0 <= o.value <= 150
        assert (o.entity_id, o.value) in pairs, (o.entity_id, o.value)
