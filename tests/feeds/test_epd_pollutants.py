"""epd-pollutants parser. No capture of ``24pc_Eng.xml`` is saved (FORMATS §7): the fixture
follows the documented shape (``-`` = missing, element ``PM2.5``, RFC-822 times) for all 18
stations x 24 hours; plus bad input and fuzzing of the fixture."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime, parsedate_to_datetime
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from citypulse.feeds import epd_pollutants
from citypulse.feeds.base import FeedError
from citypulse.feeds.registry import feed_for_file, get_feed

from .mutate import check_contract, mutated

FETCHED = datetime(2026, 10, 6, 6, 35, tzinfo=UTC)
HKT = timezone(timedelta(hours=8))
STATIONS = [
    "Central/Western", "Southern", "Eastern", "Kwun Tong", "Sham Shui Po", "Kwai Chung",
    "Tsuen Wan", "Tseung Kwan O", "Yuen Long", "Tuen Mun", "Tung Chung", "Tai Po", "Sha Tin",
    "North", "Tap Mun", "Causeway Bay", "Central", "Mong Kok",
]
ELEMENTS = ["NO2", "O3", "SO2", "CO", "PM10", "PM2.5"]
CO_STATIONS = {"Central/Western", "Tung Chung", "Causeway Bay", "Central", "Mong Kok"}


@cache
def fixture_xml(seed: int = 7) -> bytes:
    rng = random.Random(seed)
    first = datetime(2026, 10, 5, 15, tzinfo=HKT)
    items = []
    for name in STATIONS:
        for h in range(24):
            when = format_datetime(first + timedelta(hours=h))
            cells = []
            for el in ELEMENTS:
                if (el == "CO" and name not in CO_STATIONS) or rng.random() < 0.02:
                    value = "-"
                else:
                    value = f"{rng.uniform(1, 150):.1f}"
                cells.append(f"<{el}>{value}</{el}>")
            items.append(
                f"<PollutantConcentration><StationName>{name}</StationName>"
                f"<DateTime>{when}</DateTime>{''.join(cells)}</PollutantConcentration>"
            )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<AQHI24HrPollutantConcentration>'
        "<title>Environmental Protection Department - AQHI</title>"
        "<lastBuildDate>Tue, 06 Oct 2026 14:30:00 +0800</lastBuildDate>"
        + "".join(items)
        + "</AQHI24HrPollutantConcentration>"
    ).encode()


FIXTURE = fixture_xml()


def test_spec() -> None:
    spec = get_feed("epd-pollutants")
    assert spec.url == "https://www.aqhi.gov.hk/epd/ddata/html/out/24pc_Eng.xml"
    assert feed_for_file(Path("24pc_Eng_20261006-1430.xml")) is spec


def test_fixture_counts_and_values() -> None:
    root = etree.fromstring(FIXTURE)
    items = root.xpath("/AQHI24HrPollutantConcentration/PollutantConcentration")
    assert len(items) == 432
    cells = [(i, el, i.findtext(el)) for i in items for el in ELEMENTS]
    present = [c for c in cells if c[2] != "-"]
    b = epd_pollutants.parse(FIXTURE, FETCHED)
    assert b.n_observations == len(present) and b.skipped == 0
    assert f"missing {sum(1 for c in cells if c[2] == '-' and c[1] == 'CO')}: CO" in b.notes
    names = {e.id: e.name_en for e in b.entities}
    metric = dict(zip(ELEMENTS, ["no2_ugm3", "o3_ugm3", "so2_ugm3", "co_ugm3", "pm10_ugm3",
                                 "pm2_5_ugm3"], strict=True))
    got = {(names[o.entity_id], o.metric, o.ts): o.value for o in b.observation_list()}
    for item, el, text in present:
        ts = parsedate_to_datetime(item.findtext("DateTime")).astimezone(UTC)
        assert got[(item.findtext("StationName"), metric[el], ts)] == float(text)
    assert len(b.entities) == 18 and all(e.name_zh for e in b.entities)
    assert not any(o.metric == "co_ugm3" and names[o.entity_id] == "Tap Mun"
                   for o in b.observation_list())


def one(cells: str, name: str = "Tai Po", when: str = "Tue, 06 Oct 2026 14:00:00 +0800") -> bytes:
    return (
        "<AQHI24HrPollutantConcentration><PollutantConcentration>"
        f"<StationName>{name}</StationName><DateTime>{when}</DateTime>{cells}"
        "</PollutantConcentration></AQHI24HrPollutantConcentration>"
    ).encode()


def test_bad_cells() -> None:
    b = epd_pollutants.parse(one(
        "<NO2>-3.0</NO2><O3>abc</O3><SO2>1e9</SO2><CO></CO><PM10>NaN</PM10><PM2.5>12.3</PM2.5>"
        "<Benzene>1.0</Benzene>"
    ), FETCHED)
    assert [(o.metric, o.value) for o in b.observation_list()] == [("pm2_5_ugm3", 12.3)]
    assert b.skipped == 4 and "missing 1: CO" in b.notes
    b = epd_pollutants.parse(one("<NO2>1</NO2>", when="31 Feb 2026 14:00:00 +0800"), FETCHED)
    assert b.n_observations == 0 and b.skipped == 1


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty-payload"),
        (b"<html><head></head></html>", "html-error-page"),
        (b"<AQHI24HrPollutantConcentration>", "malformed-xml"),
        (b"<AQHI24HrReport/>", "unexpected-root"),
        (b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
         b"<AQHI24HrPollutantConcentration>&e;</AQHI24HrPollutantConcentration>",
         "xml-entity-declaration"),
    ],
)
def test_bad_payloads(payload: bytes, reason: str) -> None:
    with pytest.raises(FeedError) as err:
        epd_pollutants.parse(payload, FETCHED)
    assert err.value.reason == reason


def test_bom_duplicates_and_station_flood() -> None:
    assert epd_pollutants.parse(b"\xef\xbb\xbf" + FIXTURE, FETCHED).n_observations == (
        epd_pollutants.parse(FIXTURE, FETCHED).n_observations
    )
    item = one("<NO2>1.0</NO2>")
    body = item.split(b"<PollutantConcentration>")[1].split(b"</AQHI24")[0]
    twice = item.replace(b"</AQHI24", b"<PollutantConcentration>" + body + b"</AQHI24")
    b = epd_pollutants.parse(twice, FETCHED)
    assert b.n_observations == 1 and b.skipped == 1
    flood = b"".join(
        b"<PollutantConcentration><StationName>S%d</StationName>"
        b"<DateTime>Tue, 06 Oct 2026 14:00:00 +0800</DateTime><NO2>1</NO2>"
        b"</PollutantConcentration>" % i for i in range(300)
    )
    b = epd_pollutants.parse(
        b"<AQHI24HrPollutantConcentration>" + flood + b"</AQHI24HrPollutantConcentration>",
        FETCHED,
    )
    assert len(b.entities) == 100 and b.skipped == 200


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_fuzz_mutated_fixture(data: st.DataObject) -> None:
    full = fixture_xml(seed=data.draw(st.integers(0, 3)))
    cut = full.index(b"</PollutantConcentration>", 5000) + len(b"</PollutantConcentration>")
    small = full[:cut] + b"</AQHI24HrPollutantConcentration>"
    check_contract(epd_pollutants.parse, data.draw(mutated(small)))
