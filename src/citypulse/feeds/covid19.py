"""Department of Health COVID-19 "latest situation of reported cases" CSV (historical, daily).

One row per day since 08/01/2020 (``DD/MM/YYYY``), CRLF, UTF-8. Two column editions: 2020 (10
columns) and 2022 (+ positives by nucleic-acid test and by rapid antigen test); columns are
matched by header name, so either edition (or a reordered one) works and unknown columns are
ignored. From 2022 many cells are blank and ``As of time`` is empty: blanks produce nothing
(noted, not skipped). The meaning of some counts changed over time; we store what was published.

Output: entity ``hk`` (kind ``territory``), ts = that date 00:00 HKT, metrics (all cumulative
except the two ``hospitalised_*`` snapshots): ``confirmed_cases_total``,
``ruled_out_cases_total``, ``hospitalised_for_investigation``,
``reporting_criteria_cases_total``, ``deaths_total``, ``discharged_total``,
``probable_cases_total``, ``hospitalised_critical``, ``pcr_positive_total``,
``rat_positive_total``.

The source stopped updating in 2023; the feed is off by default and fed by replay/backfill.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from functools import lru_cache

from citypulse.feeds._hk_common import Rows, decode_text, hk_date, territory_entity
from citypulse.feeds.base import FeedError, FeedSpec, check_size, looks_like_html
from citypulse.model import Batch

FEED_ID = "covid19-situation"
URL = "https://www.chp.gov.hk/files/misc/latest_situation_of_reported_cases_covid_19_eng.csv"
MAX_COUNT = 100_000_000

COLUMNS: dict[str, str] = {
    "number of confirmed cases": "confirmed_cases_total",
    "number of ruled out cases": "ruled_out_cases_total",
    "number of cases still hospitalised for investigation": "hospitalised_for_investigation",
    "number of cases fulfilling the reporting criteria": "reporting_criteria_cases_total",
    "number of death cases": "deaths_total",
    "number of discharge cases": "discharged_total",
    "number of probable cases": "probable_cases_total",
    "number of hospitalised cases in critical condition": "hospitalised_critical",
    "number of cases tested positive for sars-cov-2 virus by nucleic acid tests":
        "pcr_positive_total",
    "number of cases tested positive for sars-cov-2 virus by rapid antigen tests":
        "rat_positive_total",
}
DATE_COLUMN = "as of date"
KNOWN_UNUSED = {"as of time"}

_DMY = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
_COUNT = re.compile(r"\d{1,3}(?:,\d{3})+|\d+")


def norm_header(text: str) -> str:
    return " ".join(text.replace("\ufeff", "").split()).casefold()


def read_csv(payload: bytes) -> list[list[str]]:
    """Rows of an untrusted CSV payload (BOM tolerated); FeedError when it is not CSV."""
    check_size(payload)
    if looks_like_html(payload):
        raise FeedError("html-error-page", "got an HTML page where CSV was expected")
    text = decode_text(payload)
    if "\x00" in text:
        raise FeedError("malformed-csv", "NUL byte in CSV")
    try:
        return list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise FeedError("malformed-csv", str(exc)) from exc


@lru_cache(maxsize=8192)
def dmy(text: str) -> datetime | None:
    """``DD/MM/YYYY`` -> that day 00:00 HKT (UTC); None when not a real date. Cached: a
    case-level file repeats a few hundred dates over tens of thousands of rows."""
    m = _DMY.fullmatch(text.strip())
    if m is None:
        return None
    try:
        return hk_date(int(m[1]), int(m[2]), int(m[3]))
    except FeedError:
        return None


def count(text: str) -> int | None:
    """A published count (``1234`` or ``1,234``); None when not a non-negative integer."""
    t = text.strip()
    if not _COUNT.fullmatch(t):
        return None
    n = int(t.replace(",", ""))
    return n if n <= MAX_COUNT else None


def parse(payload: bytes, fetched_at: datetime) -> Batch:
    table = read_csv(payload)
    if not table:
        raise FeedError("empty-payload", "no CSV rows")
    header = [norm_header(h) for h in table[0]]
    if DATE_COLUMN not in header:
        raise FeedError("unexpected-header", f"no 'As of date' column in {table[0][:3]!r}")
    date_at = header.index(DATE_COLUMN)
    metrics = [(i, COLUMNS[h]) for i, h in enumerate(header) if h in COLUMNS]
    if not metrics:
        raise FeedError("unexpected-header", "no known count columns")
    rows = Rows()
    hk = territory_entity()
    rows.entity(hk)
    days: set[datetime] = set()
    for rec in table[1:]:
        if not any(cell.strip() for cell in rec):
            continue  # blank line
        ts = dmy(rec[date_at]) if date_at < len(rec) else None
        if ts is None:
            rows.skip("row: bad 'As of date'")
            continue
        if ts in days:
            rows.skip("row: duplicate date")
            continue
        days.add(ts)
        for i, metric in metrics:
            cell = rec[i] if i < len(rec) else ""
            if not cell.strip():
                rows.absent("blank cell")
                continue
            value = count(cell)
            if value is None:
                rows.skip("cell: not a count")
                continue
            rows.add(hk.id, metric, ts, float(value))
    unknown = [
        h for i, h in enumerate(header)
        if h not in COLUMNS and h not in KNOWN_UNUSED and i != date_at
    ]
    extra = [f"days={len(days)}", f"columns={len(header)}"]
    if unknown:
        extra.append("ignored columns: " + "; ".join(u[:60] for u in unknown[:5]))
    return Batch.build(
        FEED_ID,
        payload,
        fetched_at,
        entities=list(rows.entities.values()),
        observations=rows.builder,
        skipped=rows.skipped,
        notes=rows.notes(extra),
    )


SPEC = FeedSpec(
    id=FEED_ID,
    title_en="COVID-19: latest situation of reported cases",
    title_zh="2019冠狀病毒病：呈報個案最新情況",
    url=URL,
    interval_s=86_400,
    parse=parse,
    topics=("health", "covid-19"),
    media_type="text/csv",
    licence="DATA.GOV.HK Terms and Conditions of Use",
    attribution="Source: Department of Health, the Government of the Hong Kong SAR",
    file_patterns=("latest_situation_of_reported_cases_covid_19_eng*.csv",),
    enabled_by_default=False,
)
