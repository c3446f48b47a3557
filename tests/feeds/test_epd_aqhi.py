"""epd-aqhi parser: the real 24-hour file (432 items re-read with XPath here), "10+", bands,
missing hours, unknown stations, bad input and fuzzing."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from citypulse.feeds import epd_aqhi
from citypulse.feeds.base import FeedError
from citypulse.feeds.registry import feed_for_file, get_feed

from .mutate import check_contract, mutated

SAMPLE = "epd-aqhi/24aqhi_Eng_20261006-1430.xml"
FETCHED = datetime(2026, 10, 6, 6, 35, tzinfo=UTC)


@pytest.fixture(scope="module")
def sample(feeds_dir: Path) -> bytes:
    return (feeds_dir / SAMPLE).read_bytes()


def report(items: list[tuple[str, str, str, str]]) -> bytes:
    body = "".join(
        f"<item><type>{t}</type><StationName>{n}</StationName><DateTime>{d}</DateTime>"
        f"<aqhi>{a}</aqhi></item>"
        for t, n, d, a in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<AQHI24HrReport><title>EPD</title>'
        f"<lastBuildDate>Tue, 06 Oct 2026 14:30:00 +0800</lastBuildDate>{body}</AQHI24HrReport>"
    ).encode()


T = "Tue, 06 Oct 2026 14:00:00 +0800"


def test_spec() -> None:
    spec = get_feed("epd-aqhi")
    assert spec.url == "https://www.aqhi.gov.hk/epd/ddata/html/out/24aqhi_Eng.xml"
    assert feed_for_file(Path("24aqhi_Eng_20261006-1430.xml")) is spec


def test_real_sample(sample: bytes) -> None:
    root = etree.fromstring(sample)
    items = root.xpath("/AQHI24HrReport/item")
    assert len(items) == 432
    b = epd_aqhi.parse(sample, FETCHED)
    assert b.n_observations == len(items) and b.skipped == 0
    assert len(b.entities) == len({i.findtext("StationName") for i in items}) == 18
    names = {e.id: e.name_en for e in b.entities}
    got = {(names[o.entity_id], o.ts): o for o in b.observation_list()}
    for it in items:
        ts = parsedate_to_datetime(it.findtext("DateTime")).astimezone(UTC)
        o = got[(it.findtext("StationName"), ts)]
        assert o.value == float(it.findtext("aqhi"))
        assert o.label == epd_aqhi.band(float(it.findtext("aqhi")))
    assert Counter(o.label for o in b.observation_list()) == Counter(
        {"low": 354, "moderate": 78}
    )
    ents = {e.id: e for e in b.entities}
    cw = ents["epd-station:central_western"]
    assert (cw.name_en, cw.name_zh, cw.district, cw.kind) == (
        "Central/Western", "中西區", "central_western", "aqhi-station"
    )
    assert ents["epd-station:mong_kok"].properties["station_type"] == "roadside"
    roadside = {i.findtext("StationName") for i in items if i.findtext("type").startswith("Road")}
    assert {e.name_en for e in b.entities if e.properties["station_type"] == "roadside"} == roadside
    assert all(e.lat and e.lon and e.name_zh for e in b.entities)
    assert "lastBuildDate=2026-10-06T06:30:00+00:00" in b.notes


@pytest.mark.parametrize(
    ("text", "value", "band"),
    [("1", 1, "low"), ("3", 3, "low"), ("4", 4, "moderate"), ("6", 6, "moderate"),
     ("7", 7, "high"), ("8", 8, "very high"), ("10", 10, "very high"), ("10+", 11, "serious")],
)
def test_values_and_bands(text: str, value: float, band: str) -> None:
    (o,) = epd_aqhi.parse(report([("General Stations", "Tap Mun", T, text)]), FETCHED
                          ).observation_list()
    assert (o.value, o.label) == (value, band)


def test_bad_rows_missing_hours_and_unknown_station() -> None:
    b = epd_aqhi.parse(report([
        ("General Stations", "Tap Mun", T, "0"),  # out of range
        ("General Stations", "Tap Mun", T, "11"),
        ("General Stations", "Tap Mun", T, "high"),
        ("General Stations", "Tap Mun", T, "-"),  # missing: noted, not skipped
        ("General Stations", "Tap Mun", "yesterday", "3"),
        ("General Stations", "", T, "3"),
        ("General Stations", "x" * 500, T, "3"),
        ("General Stations", "Sha Tin", T, "3"),
        ("General Stations", "Sha Tin", T, "4"),  # duplicate hour
        ("Roadside Stations", "New Road", T, "5"),  # not in our table: kept
    ]), FETCHED)
    assert b.skipped == 7, b.notes
    assert "missing 1: aqhi" in b.notes
    new = next(e for e in b.entities if e.id == "epd-station:new_road")
    assert new.lat is None and new.properties["station_type"] == "roadside"
    assert [o.value for o in b.observation_list()] == [3.0, 5.0]


def test_empty_report_and_namespace() -> None:
    b = epd_aqhi.parse(report([]), FETCHED)
    assert b.n_observations == 0 and b.entities == []
    ns = report([("General Stations", "Tai Po", T, "2")]).replace(
        b"<AQHI24HrReport>", b'<AQHI24HrReport xmlns="http://www.aqhi.gov.hk">'
    )
    assert epd_aqhi.parse(ns, FETCHED).n_observations == 1


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty-payload"),
        (b"<!DOCTYPE html><html><body>Error</body></html>", "html-error-page"),
        (b"<AQHI24HrReport><item>", "malformed-xml"),
        (b"<AQHI24HrPollutantConcentration/>", "unexpected-root"),
        (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY b "c">]><AQHI24HrReport>&b;'
         b"</AQHI24HrReport>", "xml-entity-declaration"),
        (b"\xff\xfe<\x00A\x00", "malformed-xml"),
    ],
)
def test_bad_payloads(payload: bytes, reason: str) -> None:
    with pytest.raises(FeedError) as err:
        epd_aqhi.parse(payload, FETCHED)
    assert err.value.reason == reason


def test_bom_and_truncated(sample: bytes) -> None:
    assert epd_aqhi.parse(b"\xef\xbb\xbf" + sample, FETCHED).n_observations == 432
    with pytest.raises(FeedError):
        epd_aqhi.parse(sample[: len(sample) // 2], FETCHED)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_fuzz_mutated_real_sample(sample: bytes, data: st.DataObject) -> None:
    check_contract(epd_aqhi.parse, data.draw(mutated(sample)), also_allowed={11.0})
