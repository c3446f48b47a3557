"""td-journey-time parser: the real 2018 journeytime.xml (default namespace; values checked with
namespaced XPath), v2 markers (JOURNEY_TYPE 2, -1), bad input and fuzzing."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from lxml import etree

from citypulse.feeds import td_journey_time
from citypulse.feeds.base import FeedError
from citypulse.feeds.registry import feed_for_file, get_feed

from .mutate import check_contract, mutated

SAMPLE = "td-journey-time/journeytime_20181015-1654.xml"
NS = {"td": "http://data.one.gov.hk/td"}
FETCHED = datetime(2018, 10, 15, 9, 0, tzinfo=UTC)

Row = tuple[str, str, str, str, str, str]  # location, destination, capture, type, data, colour


def make_xml(rows: list[Row], namespace: bool = True, extra: str = "") -> bytes:
    """A payload in the documented JTI shape (CRLF, 4-space indent, like the real file)."""
    xmlns = ' xmlns="http://data.one.gov.hk/td"' if namespace else ""
    out = [f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n<jtis_journey_list{xmlns}>']
    for loc, dest, cap, jtype, data, colour in rows:
        out.append(
            "\r\n    <jtis_journey_time>"
            f"\r\n        <LOCATION_ID>{loc}</LOCATION_ID>"
            f"\r\n        <DESTINATION_ID>{dest}</DESTINATION_ID>"
            f"\r\n        <CAPTURE_DATE>{cap}</CAPTURE_DATE>"
            f"\r\n        <JOURNEY_TYPE>{jtype}</JOURNEY_TYPE>"
            f"\r\n        <JOURNEY_DATA>{data}</JOURNEY_DATA>"
            f"\r\n        <COLOUR_ID>{colour}</COLOUR_ID>"
            f"\r\n        <JOURNEY_DESC/>{extra}"
            "\r\n    </jtis_journey_time>"
        )
    out.append("\r\n</jtis_journey_list>\r\n")
    return "".join(out).encode()


@pytest.fixture(scope="module")
def sample(feeds_dir: Path) -> bytes:
    return (feeds_dir / SAMPLE).read_bytes()


def test_spec() -> None:
    spec = get_feed("td-journey-time")
    assert spec.url == "https://resource.data.one.gov.hk/td/jss/Journeytimev2.xml"
    assert spec.interval_s == 120
    assert feed_for_file(Path("y/journeytime_20181015-1654.xml")) is spec


def test_real_sample_counts_and_values(sample: bytes) -> None:
    tree = etree.fromstring(sample)
    rows = tree.xpath("//td:jtis_journey_time", namespaces=NS)
    assert len(rows) == 35
    b = td_journey_time.parse(sample, FETCHED)
    assert b.n_observations == len(rows) and b.skipped == 0
    assert len(b.entities) == len(rows)
    got = {(o.entity_id, o.ts): (o.value, o.label) for o in b.observation_list()}
    colours = {"1": "red", "2": "amber", "3": "green"}
    for row in rows:
        def f(name: str, row: etree._Element = row) -> str:
            return row.findtext(f"td:{name}", namespaces=NS)

        eid = f"td-jti:{f('LOCATION_ID')}-{f('DESTINATION_ID')}"
        ts = datetime.fromisoformat(f("CAPTURE_DATE") + "+08:00").astimezone(UTC)
        assert got[(eid, ts)] == (float(f("JOURNEY_DATA")), colours[f("COLOUR_ID")])
    # Two capture times in one file (HK/Kowloon signs and SJ signs).
    assert {o.ts for o in b.observation_list()} == {
        datetime(2018, 10, 15, 8, 54, 35, tzinfo=UTC),
        datetime(2018, 10, 15, 8, 54, 20, tzinfo=UTC),
    }
    assert Counter(o.label for o in b.observation_list()) == Counter(
        colours[c] for c in tree.xpath("//td:COLOUR_ID/text()", namespaces=NS)
    )
    h11 = next(e for e in b.entities if e.id == "td-jti:H11-CH")
    assert h11.kind == "journey-time-indicator"
    assert h11.name_en == "H11 to Cross-Harbour Tunnel" and h11.name_zh == "H11 往 紅磡海底隧道"
    assert got[("td-jti:H11-CH", datetime(2018, 10, 15, 8, 54, 35, tzinfo=UTC))] == (23.0, "amber")


def test_without_namespace_parses_the_same(sample: bytes) -> None:
    bare = sample.replace(b' xmlns="http://data.one.gov.hk/td"', b"")
    a = td_journey_time.parse(sample, FETCHED)
    b = td_journey_time.parse(bare, FETCHED)
    assert a.observation_list() == b.observation_list()


def test_v2_markers() -> None:
    cap = "2025-01-02T08:00:00"
    payload = make_xml(
        [
            ("N01", "TSCA", cap, "1", "12", "3"),
            ("N02", "LRT", cap, "2", "1", "1"),  # message: congestion
            ("N03", "SMT", cap, "2", "3", "-1"),  # message: tunnel closed, no colour
            ("N04", "TCT", cap, "1", "-1", "-1"),  # not available
            ("N05", "XYZ", cap, "1", "9", "-1"),  # minutes without colour, unknown destination
            ("N06", "CH", cap, "7", "9", "3"),  # unknown journey type
        ]
    )
    b = td_journey_time.parse(payload, FETCHED)
    ts = datetime(2025, 1, 2, 0, 0, tzinfo=UTC)
    got = {(o.entity_id, o.metric): (o.value, o.label, o.ts) for o in b.observation_list()}
    assert got == {
        ("td-jti:N01-TSCA", "journey_time_min"): (12.0, "green", ts),
        ("td-jti:N02-LRT", "journey_time_message"): (1.0, "congestion", ts),
        ("td-jti:N03-SMT", "journey_time_message"): (3.0, "tunnel-closed", ts),
        ("td-jti:N05-XYZ", "journey_time_min"): (9.0, None, ts),
    }
    assert b.skipped == 2
    assert any("-1" in n for n in b.notes)
    unknown = next(e for e in b.entities if e.id == "td-jti:N05-XYZ")
    assert unknown.name_en == "N05 to XYZ"


def test_bad_input(sample: bytes) -> None:
    for payload, reason in [
        (b"", "empty-payload"),
        (b"   \r\n", "empty-payload"),
        (sample[:5000], "malformed-xml"),
        (b"<html><head><title>404</title></head></html>", "html-error-page"),
        (b"<jtis_speedlist/>", "unexpected-root"),
        (make_xml([]), "no-records"),
        (
            b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<jtis_journey_list>&x;</jtis_journey_list>",
            "xml-entity-declaration",
        ),
    ]:
        with pytest.raises(FeedError) as e:
            td_journey_time.parse(payload, FETCHED)
        assert e.value.reason == reason, payload[:60]


def test_bom_missing_fields_ranges_duplicates_unknown_fields() -> None:
    cap = "2025-01-02T08:00:00"
    payload = make_xml(
        [
            ("H1", "CH", cap, "1", "20", "1"),
            ("H1", "CH", cap, "1", "21", "1"),  # duplicate row: first kept
            ("", "CH", cap, "1", "20", "1"),  # no sign id
            ("H2", "EH", "yesterday", "1", "20", "1"),  # bad time
            ("H3", "WH", cap, "1", "9999", "1"),  # out of range minutes
            ("H4", "WH", cap, "1", "abc", "1"),  # not a number
            ("H5", "WH", "0001-01-01T00:00:00", "1", "5", "1"),  # impossible time
        ],
        extra="<NEW_FIELD>x</NEW_FIELD>",
    )
    b = td_journey_time.parse(b"\xef\xbb\xbf" + payload, FETCHED)
    assert [(o.entity_id, o.value) for o in b.observation_list()] == [("td-jti:H1-CH", 20.0)]
    assert b.skipped == 6


def test_fuzz_mutated_real_sample(sample: bytes) -> None:
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=mutated(sample))
    def run(data: bytes) -> None:
        check_contract(td_journey_time.parse, data)

    run()
