"""hko-warnsum parser. No real capture exists (FORMATS §6a): fixtures follow the documented
shape, including ``{}`` when nothing is in force, every family, escalation, cancellation and
the close-absent helper the ingest uses for warnings that disappear."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citypulse.feeds import hko_warnsum
from citypulse.feeds.base import FeedError
from citypulse.feeds.registry import feed_for_file, get_feed
from citypulse.model import Event

from .mutate import check_contract, mutated

FETCHED = datetime(2020, 9, 24, 3, 30, tzinfo=UTC)

# The shape of HKO's documented example (lang=tc), every family at once.
ALL_TC: dict[str, Any] = {
    "WFIRE": {"name": "火災危險警告", "code": "WFIRER", "type": "紅色", "actionCode": "ISSUE",
              "issueTime": "2020-09-24T11:15:00+08:00", "updateTime": "2020-09-24T11:15:00+08:00"},
    "WFROST": {"name": "霜凍警告", "code": "WFROST", "actionCode": "ISSUE",
               "issueTime": "2020-09-24T11:15:00+08:00", "updateTime": "2020-09-24T11:15:00+08:00"},
    "WHOT": {"name": "酷熱天氣警告", "code": "WHOT", "actionCode": "ISSUE",
             "issueTime": "2020-09-24T11:15:00+08:00", "updateTime": "2020-09-24T11:15:00+08:00"},
    "WCOLD": {"name": "寒冷天氣警告", "code": "WCOLD", "actionCode": "ISSUE",
              "issueTime": "2020-09-24T11:15:00+08:00", "updateTime": "2020-09-24T11:15:00+08:00"},
    "WMSGNL": {"name": "強烈季候風信號", "code": "WMSGNL", "actionCode": "ISSUE",
               "issueTime": "2020-09-24T11:15:00+08:00", "updateTime": "2020-09-24T11:15:00+08:00"},
    "WTCPRE8": {"name": "預警八號熱帶氣旋警告信號之特別報告", "code": "WTCPRE8",
                "actionCode": "ISSUE", "issueTime": "2020-09-24T11:15:00+08:00",
                "updateTime": "2020-09-24T11:15:00+08:00"},
    "WRAIN": {"name": "暴雨警告信號", "code": "WRAINR", "type": "紅色", "actionCode": "ISSUE",
              "issueTime": "2020-09-24T11:15:00+08:00", "updateTime": "2020-09-24T11:15:00+08:00"},
    "WFNTSA": {"name": "新界北部水浸特別報告", "code": "WFNTSA", "actionCode": "ISSUE",
               "issueTime": "2020-09-24T11:15:00+08:00", "updateTime": "2020-09-24T11:15:00+08:00"},
    "WL": {"name": "山泥傾瀉警告", "code": "WL", "actionCode": "ISSUE",
           "issueTime": "2020-09-24T11:15:00+08:00", "updateTime": "2020-09-24T11:15:00+08:00"},
    "WTCSGNL": {"name": "熱帶氣旋警告信號", "code": "TC8NE", "actionCode": "ISSUE",
                "type": "八號東北烈風或暴風信號", "issueTime": "2020-09-24T11:15:00+08:00",
                "updateTime": "2020-09-24T11:15:00+08:00"},
    "WTMW": {"name": "海嘯警告", "code": "WTMW", "actionCode": "ISSUE",
             "issueTime": "2020-09-24T11:15:00+08:00", "updateTime": "2020-09-24T11:15:00+08:00"},
    "WTS": {"name": "雷暴警告", "code": "WTS", "actionCode": "EXTEND",
            "issueTime": "2020-09-24T11:40:00+08:00", "expireTime": "2020-09-24T19:30:00+08:00",
            "updateTime": "2020-09-24T05:00:00+08:00"},
}

AMBER = {
    "WRAIN": {"name": "Rainstorm Warning Signal", "code": "WRAINA", "type": "Amber",
              "actionCode": "ISSUE", "issueTime": "2025-06-28T00:30:00+08:00",
              "updateTime": "2025-06-28T00:30:00+08:00"},
    "WTS": {"name": "Thunderstorm Warning", "code": "WTS", "actionCode": "ISSUE",
            "issueTime": "2025-06-27T23:40:00+08:00", "expireTime": "2025-06-28T03:30:00+08:00",
            "updateTime": "2025-06-27T23:40:00+08:00"},
}


def dump(doc: Any) -> bytes:
    return orjson.dumps(doc)


def test_spec() -> None:
    spec = get_feed("hko-warnsum")
    assert spec.parse is hko_warnsum.parse and spec.url.endswith("dataType=warnsum&lang=en")
    assert spec.interval_s <= 300
    assert feed_for_file(Path("warnsum_20250628.json")) is spec


def test_nothing_in_force() -> None:
    b = hko_warnsum.parse(b"{}", FETCHED)
    assert b.events == [] and b.n_observations == 0 and b.skipped == 0
    assert hko_warnsum.in_force(b) == {}
    assert "in-force: none" in b.notes


def test_every_family_tc() -> None:
    b = hko_warnsum.parse(dump(ALL_TC), FETCHED)
    assert len(b.events) == len(ALL_TC) == 12 and b.skipped == 0
    ev = {e.properties["family"]: e for e in b.events}
    assert set(ev) == set(ALL_TC)
    for fam, rec in ALL_TC.items():
        e = ev[fam]
        assert e.properties["code"] == rec["code"] and e.kind == "weather-warning"
        assert e.starts_at == datetime.fromisoformat(rec["issueTime"]).astimezone(UTC)
        assert e.title_en and e.title_zh and e.source == "hko-warnsum"
    assert ev["WRAIN"].severity == "high" and ev["WRAIN"].title_zh == "紅色暴雨警告信號"
    assert ev["WTCSGNL"].severity == "high"
    assert ev["WTCSGNL"].title_en == "No. 8 Northeast Gale or Storm Signal"
    assert ev["WTMW"].severity == "severe" and ev["WHOT"].severity == "low"
    assert ev["WRAIN"].id == "hko-warnsum:WRAIN:WRAINR:202009241115"
    # Scheduled end from expireTime.
    assert ev["WTS"].ends_at == datetime(2020, 9, 24, 11, 30, tzinfo=UTC)
    assert ev["WRAIN"].body_zh == "暴雨警告信號 - 紅色" and ev["WRAIN"].body_en is None
    assert hko_warnsum.in_force(b) == {f: r["code"] for f, r in ALL_TC.items()}


@pytest.mark.parametrize(
    ("code", "severity"),
    [("WRAINA", "moderate"), ("WRAINR", "high"), ("WRAINB", "severe"), ("TC1", "low"),
     ("TC3", "moderate"), ("TC8SW", "high"), ("TC9", "severe"), ("TC10", "severe")],
)
def test_severity_scale(code: str, severity: str) -> None:
    fam = "WRAIN" if code.startswith("WRAIN") else "WTCSGNL"
    doc = {fam: {"name": "x", "code": code, "actionCode": "ISSUE",
                 "issueTime": "2025-07-20T16:10:00+08:00"}}
    (e,) = hko_warnsum.parse(dump(doc), FETCHED).events
    assert e.severity == severity


def test_stable_ids_escalation_and_disappearance() -> None:
    t0 = datetime(2025, 6, 27, 16, 35, tzinfo=UTC)
    first = hko_warnsum.parse(dump(AMBER), t0)
    again = hko_warnsum.parse(dump(AMBER), t0 + timedelta(minutes=2))
    assert [e.id for e in first.events] == [e.id for e in again.events]
    assert hko_warnsum.close_absent(first.events, again) == []

    red = json.loads(json.dumps(AMBER))
    red["WRAIN"].update(code="WRAINR", type="Red", issueTime="2025-06-28T01:10:00+08:00",
                        updateTime="2025-06-28T01:10:00+08:00")
    t1 = t0 + timedelta(minutes=40)
    escalated = hko_warnsum.parse(dump(red), t1)
    closed = hko_warnsum.close_absent(first.events, escalated)
    assert [e.properties["code"] for e in closed] == ["WRAINA"]
    assert closed[0].ends_at == t1 and closed[0].id == first.events[0].id

    # Everything cancelled: the summary goes back to {}.
    t2 = t1 + timedelta(hours=2)
    empty = hko_warnsum.parse(b"{}", t2)
    closed = hko_warnsum.close_absent(escalated.events, empty)
    assert {e.properties["code"] for e in closed} == {"WRAINR", "WTS"}
    assert all(e.ends_at == t2 for e in closed)
    # A thunderstorm warning that already expired on schedule is not closed again.
    late = hko_warnsum.parse(b"{}", datetime(2025, 6, 28, 0, tzinfo=UTC))
    assert [e.properties["code"] for e in hko_warnsum.close_absent(escalated.events, late)] == [
        "WRAINR"
    ]
    # Events from other sources are left alone.
    other = Event(id="x", kind="weather-warning", severity="low", starts_at=t0, source="other")
    assert hko_warnsum.close_absent([other], empty) == []


def test_cancel_ends_the_event() -> None:
    doc = {"WRAIN": {"name": "Rainstorm Warning Signal", "code": "WRAINA",
                     "actionCode": "CANCEL", "issueTime": "2025-06-28T00:30:00+08:00",
                     "updateTime": "2025-06-28T02:00:00+08:00"}}
    b = hko_warnsum.parse(dump(doc), FETCHED)
    (e,) = b.events
    assert e.properties["action"] == "CANCEL"
    assert e.ends_at == datetime(2025, 6, 27, 18, tzinfo=UTC)
    assert e.id == hko_warnsum.parse(dump(AMBER), FETCHED).events[0].id  # same warning
    assert hko_warnsum.in_force(b) == {}


def test_unknown_family_and_bad_entries() -> None:
    doc: dict[str, Any] = {
        "WNEW": {"name": "New Warning", "code": "WNEW1", "actionCode": "ISSUE",
                 "issueTime": "2025-06-28T00:30:00+08:00", "extra": [1, 2]},
        "WRAIN": {"name": "Rainstorm", "code": "WRAINA", "actionCode": "ISSUE"},  # no time
        "WTS": {"name": "Thunderstorm", "code": "WTS", "actionCode": "PANIC",
                "issueTime": "2025-06-28T00:30:00+08:00"},
        "WL": "in force",
        "bad key!": {"code": "WL", "issueTime": "2025-06-28T00:30:00+08:00"},
        "WHOT": {"name": "Hot", "code": "<script>", "actionCode": "ISSUE",
                 "issueTime": "2025-06-28T00:30:00+08:00"},
        "WCOLD": {"name": "Cold", "code": "WCOLD", "actionCode": "ISSUE",
                  "issueTime": "2025-06-28T00:30:00+08:00", "expireTime": "tomorrow"},
    }
    b = hko_warnsum.parse(dump(doc), FETCHED)
    assert sorted(e.properties["code"] for e in b.events) == ["WCOLD", "WNEW1"]
    assert b.skipped == 6, b.notes
    new = next(e for e in b.events if e.properties["code"] == "WNEW1")
    assert new.title_en == "New Warning" and new.severity == "moderate"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty-payload"),
        (b"<!doctype html><p>Maintenance</p>", "html-error-page"),
        (b"[]", "unexpected-shape"),
        (b"null", "unexpected-shape"),
        (b'{"WRAIN": {', "malformed-json"),
    ],
)
def test_bad_payloads(payload: bytes, reason: str) -> None:
    with pytest.raises(FeedError) as err:
        hko_warnsum.parse(payload, FETCHED)
    assert err.value.reason == reason


def test_bom_and_many_families() -> None:
    assert len(hko_warnsum.parse(b"\xef\xbb\xbf" + dump(AMBER), FETCHED).events) == 2
    flood = {f"W{i:04d}": AMBER["WTS"] for i in range(500)}
    b = hko_warnsum.parse(dump(flood), FETCHED)
    assert len(b.events) == 64 and b.skipped == 500 - 64


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_mutated_fixture(data: st.DataObject) -> None:
    sample = dump(data.draw(st.sampled_from([ALL_TC, AMBER])))
    b = check_contract(hko_warnsum.parse, data.draw(mutated(sample)))
    if b is not None:
        assert len({e.id for e in b.events}) == len(b.events)
        for e in b.events:
            assert e.ends_at is None or e.ends_at >= e.starts_at
