"""covid19-cases parser: both real case-level CSVs (2020 and 2022 headers), daily counts
recomputed here with the csv module, bad rows, bad input and fuzzing."""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citypulse.feeds import covid19_cases
from citypulse.feeds.base import FeedError
from citypulse.feeds.registry import feed_for_file, get_feed

from .mutate import check_contract, mutated

FETCHED = datetime(2022, 5, 4, 10, tzinfo=UTC)
HKT = timezone(timedelta(hours=8))
HEADER_2022 = (
    "Case no.,Report date,Date of onset,Gender,Age,Name of hospital admitted,"
    "Hospitalised/Discharged/Deceased,HK/Non-HK resident,Classification*,Case status*"
)


@pytest.fixture(scope="module")
def files(feeds_dir: Path) -> list[Path]:
    found = sorted((feeds_dir / "covid19").glob("enhanced_sur_covid_19_eng_*.csv"))
    assert len(found) == 2
    return found


def day(text: str) -> datetime:
    return datetime.strptime(text, "%d/%m/%Y").replace(tzinfo=HKT).astimezone(UTC)


def test_spec() -> None:
    spec = get_feed("covid19-cases")
    assert spec.url.endswith("enhanced_sur_covid_19_eng.csv")
    assert feed_for_file(Path("enhanced_sur_covid_19_eng_2020-12-16.csv")) is spec


def test_every_real_sample(files: list[Path]) -> None:
    headers = set()
    for path in files:
        raw = path.read_bytes()
        rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8"), newline="")))
        klass = "Case classification*" if "Case classification*" in rows[0] else "Classification*"
        status = "Confirmed/probable" if "Confirmed/probable" in rows[0] else "Case status*"
        headers.add((klass, status))
        per_day = Counter(r["Report date"] for r in rows)
        imported = Counter(r["Report date"] for r in rows if r[klass] == "Imported case")
        asym = Counter(r["Report date"] for r in rows
                       if "Asymptomatic" in (r["Date of onset"], r[status]))
        probable = Counter(r["Report date"] for r in rows if r[status] == "Probable")
        b = covid19_cases.parse(raw, FETCHED)
        assert b.skipped == 0, b.notes
        assert b.n_observations == 5 * len(per_day)
        got = {(o.metric, o.ts): o.value for o in b.observation_list()}
        for d, n in per_day.items():
            ts = day(d)
            assert got[("new_cases", ts)] == n
            assert got[("new_cases_imported", ts)] == imported[d]
            assert got[("new_cases_local", ts)] == n - imported[d]
            assert got[("new_cases_asymptomatic", ts)] == asym[d]
            assert got[("new_cases_probable", ts)] == probable[d]
        assert sum(v for (m, _), v in got.items() if m == "new_cases") == len(rows)
        assert f"cases={len(rows)}" in b.notes
    assert headers == {("Case classification*", "Confirmed/probable"),
                       ("Classification*", "Case status*")}


def test_spot_values(files: list[Path]) -> None:
    b = covid19_cases.parse(files[-1].read_bytes(), FETCHED)
    got = {(o.metric, o.ts): o.value for o in b.observation_list()}
    assert got[("new_cases", day("06/02/2022"))] == 348
    assert got[("new_cases", day("30/07/2020"))] == 149
    assert max(o.ts for o in b.observation_list()) == day("06/02/2022")


def test_bad_rows() -> None:
    text = "\r\n".join([
        HEADER_2022,
        "1,23/01/2020,21/01/2020,M,39,,Discharged,Non-HK resident,Imported case,Confirmed",
        "1,23/01/2020,21/01/2020,M,39,,Discharged,Non-HK resident,Imported case,Confirmed",
        "2,23/01/2020,Asymptomatic,F,56,,Discharged,HK resident,Local case,Probable",
        "x,23/01/2020,,,,,,,,",
        "0,23/01/2020,,,,,,,,",
        "3,January,,,,,,,,",
        "4,30/02/2020,,,,,,,,",
        "5,24/01/2020",  # short row: classification/status unknown
        "",
    ]).encode()
    b = covid19_cases.parse(text, FETCHED)
    assert b.skipped == 5, b.notes
    got = {(o.metric, o.ts): o.value for o in b.observation_list()}
    d1, d2 = day("23/01/2020"), day("24/01/2020")
    assert got[("new_cases", d1)] == 2 and got[("new_cases_imported", d1)] == 1
    assert got[("new_cases_local", d1)] == 1 and got[("new_cases_probable", d1)] == 1
    assert got[("new_cases_asymptomatic", d1)] == 1
    assert got[("new_cases", d2)] == 1 and got[("new_cases_local", d2)] == 0


def test_missing_optional_columns() -> None:
    b = covid19_cases.parse(b"Case no.,Report date\r\n1,01/02/2020\r\n2,01/02/2020\r\n", FETCHED)
    assert [(o.metric, o.value) for o in b.observation_list()] == [("new_cases", 2.0)]
    assert any(n.startswith("columns missing") for n in b.notes)
    empty = covid19_cases.parse(HEADER_2022.encode() + b"\r\n", FETCHED)
    assert empty.n_observations == 0 and empty.entities == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty-payload"),
        (b"<html><body>Server error</body></html>", "html-error-page"),
        (b"As of date,Number of death cases\r\n01/01/2020,1", "unexpected-header"),
        (HEADER_2022.encode() + b"\r\n1,\x00", "malformed-csv"),
        (HEADER_2022.encode() + b"\r\n\xc3\x28", "bad-encoding"),
    ],
)
def test_bad_payloads(payload: bytes, reason: str) -> None:
    with pytest.raises(FeedError) as err:
        covid19_cases.parse(payload, FETCHED)
    assert err.value.reason == reason


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_fuzz_mutated_real_sample(files: list[Path], data: st.DataObject) -> None:
    raw = files[data.draw(st.integers(0, len(files) - 1))].read_bytes()
    lines = raw.split(b"\r\n")
    start = data.draw(st.integers(1, len(lines) - 60))
    sample = b"\r\n".join([lines[0], *lines[start:start + 60]])
    payload = data.draw(mutated(sample))
    b = check_contract(covid19_cases.parse, payload, also_allowed=range(0, 200))
    if b is not None:
        # Aggregates: whole counts, never more than the rows of the payload.
        rows = payload.count(b"\n") + 1
        for o in b.observation_list():
            assert o.value is not None and o.value == int(o.value) and 0 <= o.value <= rows
