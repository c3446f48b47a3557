"""Department of Health COVID-19 case-level CSV (``enhanced_sur_covid_19_eng.csv``, historical).

One row per case (case-level reporting stopped at case 97,097 on 06/02/2022). Headers changed:
``Case classification*``/``Confirmed/probable`` (2020) became ``Classification*``/
``Case status*`` (2022); both are matched by name. Free text appears in date and status
columns (``Asymptomatic``, ``Pending``, ``To be provided`` ...) and the classification
vocabulary changed (``Local case`` -> ``Locally acquired case``).

We do not store individual cases: rows are aggregated per report date (ts = that date 00:00
HKT) on entity ``hk`` (kind ``territory``):
- ``new_cases``: rows reported that day;
- ``new_cases_imported`` (classification ``Imported case``) and ``new_cases_local`` (any other
  non-empty classification: CHP counts cases linked with imported cases as local);
- ``new_cases_asymptomatic`` (onset ``Asymptomatic`` or status ``Asymptomatic``);
- ``new_cases_probable`` (status ``Probable``).
Days with no reported case do not appear in the file and produce no rows. Rows with a bad
report date or a repeated / non-numeric case number are skipped and counted.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from citypulse.feeds._hk_common import Rows, territory_entity
from citypulse.feeds.base import FeedError, FeedSpec
from citypulse.feeds.covid19 import dmy, norm_header, read_csv
from citypulse.model import Batch

FEED_ID = "covid19-cases"
URL = "https://www.chp.gov.hk/files/misc/enhanced_sur_covid_19_eng.csv"

CASE_NO = "case no."
REPORT_DATE = "report date"
ONSET = "date of onset"
CLASSIFICATION = ("case classification*", "classification*", "classification")
STATUS = ("confirmed/probable", "case status*", "case status")
MAX_CASE_NO = 100_000_000

METRICS = (
    "new_cases",
    "new_cases_imported",
    "new_cases_local",
    "new_cases_asymptomatic",
    "new_cases_probable",
)


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    return next((header.index(n) for n in names if n in header), None)


def parse(payload: bytes, fetched_at: datetime) -> Batch:
    table = read_csv(payload)
    if not table:
        raise FeedError("empty-payload", "no CSV rows")
    header = [norm_header(h) for h in table[0]]
    if CASE_NO not in header or REPORT_DATE not in header:
        raise FeedError("unexpected-header", f"no 'Case no.'/'Report date' in {table[0][:3]!r}")
    i_case, i_date = header.index(CASE_NO), header.index(REPORT_DATE)
    i_onset = header.index(ONSET) if ONSET in header else None
    i_class = _column(header, CLASSIFICATION)
    i_status = _column(header, STATUS)

    def cell(rec: list[str], i: int | None) -> str:
        return rec[i].strip() if i is not None and i < len(rec) else ""

    rows = Rows()
    counts: dict[datetime, Counter[str]] = {}
    cases: set[int] = set()
    for rec in table[1:]:
        if not any(c.strip() for c in rec):
            continue
        case = cell(rec, i_case)
        if not (case.isascii() and case.isdigit()) or not 0 < int(case) <= MAX_CASE_NO:
            rows.skip("row: bad case number")
            continue
        if int(case) in cases:
            rows.skip("row: duplicate case number")
            continue
        ts = dmy(cell(rec, i_date))
        if ts is None:
            rows.skip("row: bad report date")
            continue
        cases.add(int(case))
        c = counts.get(ts)
        if c is None:
            c = counts[ts] = Counter()
        c["new_cases"] += 1
        klass = cell(rec, i_class).casefold()
        status = cell(rec, i_status).casefold()
        if klass == "imported case":
            c["new_cases_imported"] += 1
        elif klass:
            c["new_cases_local"] += 1
        if cell(rec, i_onset).casefold() == "asymptomatic" or status == "asymptomatic":
            c["new_cases_asymptomatic"] += 1
        if status == "probable":
            c["new_cases_probable"] += 1
    hk = territory_entity()
    metrics = ["new_cases"]
    if i_class is not None:
        metrics += ["new_cases_imported", "new_cases_local"]
    if i_onset is not None or i_status is not None:
        metrics.append("new_cases_asymptomatic")
    if i_status is not None:
        metrics.append("new_cases_probable")
    for ts in sorted(counts):
        for metric in metrics:
            rows.add(hk.id, metric, ts, float(counts[ts][metric]))
    notes = [f"cases={len(cases)}", f"report_days={len(counts)}"]
    if len(metrics) < len(METRICS):
        notes.append("columns missing: only " + ", ".join(metrics))
    return Batch.build(
        FEED_ID,
        payload,
        fetched_at,
        entities=[hk] if counts else [],
        observations=rows.builder,
        skipped=rows.skipped,
        notes=rows.notes(notes),
    )


SPEC = FeedSpec(
    id=FEED_ID,
    title_en="COVID-19: reported cases by day (case-level data)",
    title_zh="2019冠狀病毒病：每日呈報個案（個案資料）",
    url=URL,
    interval_s=86_400,
    parse=parse,
    topics=("health", "covid-19"),
    media_type="text/csv",
    licence="DATA.GOV.HK Terms and Conditions of Use",
    attribution="Source: Department of Health, the Government of the Hong Kong SAR",
    file_patterns=("enhanced_sur_covid_19_eng*.csv",),
    enabled_by_default=False,
)
