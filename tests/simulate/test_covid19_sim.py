"""The COVID-19 demo simulator writes the Department of Health's real CSV format (checked
against a real file's header and by the real parser), for a fixed past range, the same bytes on
every emit (so the daily re-emit is a duplicate), with cumulative counts that never fall."""

from __future__ import annotations

import csv
import random
from datetime import UTC, date, datetime
from pathlib import Path

from citypulse.feeds.registry import get_feed
from citypulse.simulate.covid19 import FIRST_DAY, LAST_DAY, SIMULATOR
from citypulse.simulate.registry import all_simulators


def test_is_registered_for_the_situation_feed() -> None:
    assert all_simulators()["covid19-situation"] is SIMULATOR
    assert SIMULATOR.interval_s == 86_400


def test_same_header_as_the_real_2022_edition(feeds_dir: Path) -> None:
    real = sorted((feeds_dir / "covid19").glob("latest_situation_*2022*.csv"))[-1]
    real_header = real.read_text(encoding="utf-8").splitlines()[0]
    ours = SIMULATOR.emit(datetime.now(UTC), random.Random(1)).decode("utf-8")
    assert ours.splitlines()[0] == real_header
    assert "\r\n" in ours and not ours.endswith("\r\n")  # CRLF, no final newline, like DH


def test_parses_and_stays_cumulative() -> None:
    a = SIMULATOR.emit(datetime(2024, 1, 1, tzinfo=UTC), random.Random(1))
    b = SIMULATOR.emit(datetime(2026, 6, 1, tzinfo=UTC), random.Random(99))
    assert a == b  # fixed past range and seed: a re-emit is a duplicate payload
    rows = list(csv.reader(a.decode().splitlines()))[1:]
    days = [datetime.strptime(r[0], "%d/%m/%Y").date() for r in rows]
    assert days[0] == FIRST_DAY == date(2020, 1, 8) and days[-1] == LAST_DAY
    assert len(days) == (LAST_DAY - FIRST_DAY).days + 1
    batch = get_feed("covid19-situation").parse(a, datetime.now(UTC))
    assert batch.skipped == 0
    series: dict[str, list[float]] = {}
    for o in sorted(batch.observation_list(), key=lambda o: o.ts):
        series.setdefault(o.metric, []).append(o.value or 0.0)
    for metric in ("confirmed_cases_total", "deaths_total", "pcr_positive_total",
                   "rat_positive_total"):
        values = series[metric]
        assert values == sorted(values), metric
    # Like the real file: confirmed cases stop at the end of 2021, test positives take over.
    assert len(series["confirmed_cases_total"]) == (date(2021, 12, 31) - FIRST_DAY).days + 1
    assert series["rat_positive_total"][-1] > 0
