"""Simulated Department of Health "latest situation of reported cases" CSV (``covid19-situation``).

The real series is historical (08/01/2020 to early 2023) and not published any more, so the
demo needs an invented one to show the COVID-19 dashboard. This module writes the 2022 edition of
the real format (12 columns, ``DD/MM/YYYY``, CRLF, blanks where the real file has blanks:
confirmed cases stop at the end of 2021 and positives by nucleic acid / rapid antigen test take
over) for a fixed past range, with epidemic waves shaped like Hong Kong's but NOT its figures:
every number is simulated. The payload is the same whatever ``at`` is (a fixed seed, not the
caller's generator), so the daily re-emit is a duplicate that ingest skips.
"""

from __future__ import annotations

import math
import random
from datetime import date, datetime, timedelta

FIRST_DAY = date(2020, 1, 8)
LAST_DAY = date(2022, 12, 31)
HEADER = (
    "As of date,As of time,Number of confirmed cases,Number of ruled out cases,"
    "Number of cases still hospitalised for investigation,"
    "Number of cases fulfilling the reporting criteria,Number of death cases,"
    "Number of discharge cases,Number of probable cases,"
    "Number of hospitalised cases in critical condition,"
    "Number of cases tested positive for SARS-CoV-2 virus by nucleic acid tests,"
    "Number of cases tested positive for SARS-CoV-2 virus by rapid antigen tests"
)
RAT_FROM = date(2022, 2, 26)
CONFIRMED_UNTIL = date(2021, 12, 31)
SEED = "citypulse-covid19-simulation"

# (peak day, width in days, peak new cases per day, case fatality): invented waves.
WAVES = (
    (date(2020, 3, 28), 12, 55, 0.01),
    (date(2020, 7, 30), 14, 140, 0.025),
    (date(2020, 12, 2), 20, 100, 0.02),
    (date(2021, 2, 1), 15, 40, 0.02),
    (date(2022, 3, 3), 14, 52_000, 0.004),
    (date(2022, 8, 10), 30, 4_500, 0.0008),
    (date(2022, 11, 20), 28, 5_500, 0.0008),
)


def expected_cases(day: date) -> float:
    total = 0.3
    for peak, width, height, _cfr in WAVES:
        d = (day - peak).days
        total += height * math.exp(-0.5 * (d / width) ** 2)
    return total


def expected_deaths(day: date) -> float:
    total = 0.0
    for peak, width, height, cfr in WAVES:
        # Deaths follow cases by about two weeks.
        d = (day - peak).days - 14
        total += cfr * height * math.exp(-0.5 * (d / (width * 1.2)) ** 2)
    return total


def rows() -> list[str]:
    rng = random.Random(SEED)
    cases = deaths = discharged = pcr = rat = 0
    ruled_out = 0
    out = []
    day = FIRST_DAY
    while day <= LAST_DAY:
        weekday = 0.85 if day.weekday() == 6 else 1.0
        new = max(0, round(rng.gauss(expected_cases(day), expected_cases(day) ** 0.5 * 1.5)
                           * weekday))
        dead = max(0, round(rng.gauss(expected_deaths(day), max(0.5, expected_deaths(day) ** 0.5))))
        if day <= CONFIRMED_UNTIL:
            cases += new
        elif day < RAT_FROM:
            pcr += new
        else:
            split = 0.45 + 0.1 * rng.random()
            pcr += round(new * split)
            rat += new - round(new * split)
        deaths += dead
        discharged = max(discharged, round((cases + pcr) * 0.9) - deaths)
        critical = max(0, round(expected_cases(day - timedelta(days=10)) * 0.01
                                + rng.gauss(0, 1)))
        as_of = day.strftime("%d/%m/%Y")
        if day.year == 2020:
            ruled_out += max(0, round(rng.gauss(300, 80)))
            cells = [as_of, "12:00", str(cases), str(ruled_out), str(rng.randint(5, 60)),
                     str(ruled_out + cases), str(deaths), str(discharged), "1", str(critical),
                     "", ""]
        elif day <= CONFIRMED_UNTIL:
            cells = [as_of, "", str(cases), "", "", "", str(deaths), str(discharged), "1",
                     str(critical), "", ""]
        else:
            cells = [as_of, "", "", "", "", "", str(deaths), str(discharged), "",
                     str(critical), str(pcr), str(rat) if day >= RAT_FROM else ""]
        out.append(",".join(cells))
        day += timedelta(days=1)
    return out


_PAYLOAD: bytes | None = None


def payload() -> bytes:
    global _PAYLOAD
    if _PAYLOAD is None:
        _PAYLOAD = ("\r\n".join([HEADER, *rows()])).encode("utf-8")
    return _PAYLOAD


class Covid19Simulator:
    feed_id = "covid19-situation"
    interval_s = 86_400

    def emit(self, at: datetime, rng: random.Random) -> bytes:
        return payload()


SIMULATOR = Covid19Simulator()
