"""covid19-situation parser: the 3 real "latest situation" CSVs (2020 and 2022 column editions;
every cell re-read with the csv module here), blanks, bad input and fuzzing."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citypulse.feeds import covid19
from citypulse.feeds.base import FeedError
from citypulse.feeds.registry import feed_for_file, get_feed

from .mutate import check_contract, mutated, numbers_in

FETCHED = datetime(2022, 5, 4, 10, tzinfo=UTC)
HKT = timezone(timedelta(hours=8))
HEADER_2020 = (
    "As of date,As of time,Number of confirmed cases,Number of ruled out cases,"
    "Number of cases still hospitalised for investigation,Number of cases fulfilling the "
    "reporting criteria,Number of death cases,Number of discharge cases,Number of probable "
    "cases,Number of hospitalised cases in critical condition"
)


@pytest.fixture(scope="module")
def files(feeds_dir: Path) -> list[Path]:
    found = sorted((feeds_dir / "covid19").glob("latest_situation_*.csv"))
    assert len(found) == 3
    return found


def test_spec() -> None:
    spec = get_feed("covid19-situation")
    assert spec.url.endswith("latest_situation_of_reported_cases_covid_19_eng.csv")
    assert feed_for_file(Path("latest_situation_of_reported_cases_covid_19_eng_2022-05-04.csv")
                         ) is spec


def test_every_real_sample(files: list[Path]) -> None:
    widths = set()
    for path in files:
        raw = path.read_bytes()
        assert b"\r\n" in raw
        table = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
        header, rows = table[0], table[1:]
        widths.add(len(header))
        b = covid19.parse(raw, FETCHED)
        assert b.skipped == 0, b.notes
        filled = [(r, i) for r in rows for i in range(2, len(header)) if r[i].strip()]
        assert b.n_observations == len(filled)
        assert f"missing {sum(1 for r in rows for c in r[2:] if not c.strip())}: blank cell" in (
            b.notes
        )
        got = {(o.metric, o.ts): o.value for o in b.observation_list()}
        metric_of = {i: covid19.COLUMNS[" ".join(h.split()).lower()]
                     for i, h in enumerate(header) if i >= 2}
        for r, i in filled:
            ts = datetime.strptime(r[0], "%d/%m/%Y").replace(tzinfo=HKT).astimezone(UTC)
            assert got[(metric_of[i], ts)] == float(r[i])
        assert {e.id for e in b.entities} == {"hk"} and b.entities[0].kind == "territory"
    assert widths == {10, 12}


def test_spot_values(files: list[Path]) -> None:
    b = covid19.parse(files[-1].read_bytes(), FETCHED)
    last = datetime(2022, 5, 3, 16, tzinfo=UTC)
    got = {o.metric: o.value for o in b.observation_list() if o.ts == last}
    assert got == {"deaths_total": 9328, "discharged_total": 59864, "hospitalised_critical": 7,
                   "pcr_positive_total": 759024, "rat_positive_total": 446372}


def test_bad_rows_and_cells() -> None:
    text = "\r\n".join([
        HEADER_2020 + ",A brand new column",
        "08/01/2020,12:00,0,21,17,38,0,0,0,,x",
        "08/01/2020,12:00,0,21,17,38,0,0,0,,",  # duplicate date
        "31/02/2020,,1,,,,,,,,",  # no such day
        "2020-01-09,,1,,,,,,,,",  # other date format
        "10/01/2020,,-5,abc,1.5,\"1,234\",,,,",  # negative, text, decimal, thousands
        "11/01/2020",  # short row: all blank
        "",
        "12/01/2020,,999999999999,,,,,,,,",  # absurd
    ]).encode()
    b = covid19.parse(text, FETCHED)
    assert b.skipped == 3 + 3 + 1, b.notes
    assert any(n.startswith("ignored columns: a brand new column") for n in b.notes)
    day = datetime(2020, 1, 9, 16, tzinfo=UTC)
    assert [(o.metric, o.value) for o in b.observation_list() if o.ts == day] == [
        ("reporting_criteria_cases_total", 1234.0)
    ]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty-payload"),
        (b"<!DOCTYPE html><html><title>404</title></html>", "html-error-page"),
        (b"Case no.,Report date\r\n1,01/01/2020", "unexpected-header"),
        (b"As of date,Something\r\n01/01/2020,1", "unexpected-header"),
        (b"As of date,Number of death cases\r\n\x00", "malformed-csv"),
        (b"As of date,Number of death cases\r\n01/01/2020,\xff\xfe", "bad-encoding"),
        (b'As of date,Number of death cases\r\n"' + b"x" * 200_000, "malformed-csv"),
    ],
)
def test_bad_payloads(payload: bytes, reason: str) -> None:
    with pytest.raises(FeedError) as err:
        covid19.parse(payload, FETCHED)
    assert err.value.reason == reason


def test_bom_tolerated(files: list[Path]) -> None:
    raw = files[0].read_bytes()
    assert covid19.parse(b"\xef\xbb\xbf" + raw, FETCHED).n_observations == (
        covid19.parse(raw, FETCHED).n_observations
    )


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_fuzz_mutated_real_sample(files: list[Path], data: st.DataObject) -> None:
    raw = files[data.draw(st.integers(0, len(files) - 1))].read_bytes()
    lines = raw.split(b"\r\n")
    start = data.draw(st.integers(1, len(lines) - 40))
    sample = b"\r\n".join([lines[0], *lines[start:start + 40]])
    payload = data.draw(mutated(sample))
    # "1,234" inside quotes is read as 1234.
    check_contract(covid19.parse, payload,
                   also_allowed=numbers_in(payload.replace(b",", b"").replace(b'"', b"")))
