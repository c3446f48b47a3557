"""hko-nday-rss parser: the real 2018 bulletin (CRLF; day blocks re-read here with a separate
line-based reader), year rollover, bad input and fuzzing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from citypulse.feeds import hko_nday_rss
from citypulse.feeds.base import FeedError
from citypulse.feeds.registry import feed_for_file, get_feed

from .mutate import check_contract, mutated, numbers_in

SAMPLE = "hko-nday-rss/SeveralDaysWeatherForecast_20180205-1630HKT.xml"
FETCHED = datetime(2018, 2, 5, 8, 45, tzinfo=UTC)
HKT = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def sample(feeds_dir: Path) -> bytes:
    return (feeds_dir / SAMPLE).read_bytes()


def day_blocks(raw: bytes) -> list[dict[str, float | str]]:
    """The day blocks read line by line from the CDATA (tabs and CRLF stripped)."""
    desc = etree.fromstring(raw).findtext("channel/item/description")
    lines = [ln.strip().replace("<br/>", "").replace("<p/>", "") for ln in desc.splitlines()]
    lines = [ln for ln in lines if ln]
    out: list[dict[str, float | str]] = []
    for i, ln in enumerate(lines):
        if ln == "Date/Month:":
            dd, mm = lines[i + 1].split()[0].split("/")
            out.append({
                "date": f"2018{mm}{dd}",
                "weather": lines[i + 5],
                "tmin": float(lines[i + 7].split()[0]),
                "tmax": float(lines[i + 8].split()[0]),
                "rhmin": float(lines[i + 10].split()[0]),
                "rhmax": float(lines[i + 11].split()[0]),
            })
    return out


def test_spec() -> None:
    spec = get_feed("hko-nday-rss")
    assert spec.url == "https://rss.weather.gov.hk/rss/SeveralDaysWeatherForecast.xml"
    assert spec.enabled_by_default is False
    assert feed_for_file(Path("SeveralDaysWeatherForecast_20180205-1630HKT.xml")) is spec


def test_real_sample(sample: bytes) -> None:
    assert sample.count(b"\r\n") > 100  # CRLF kept
    days = day_blocks(sample)
    assert len(days) == 9
    b = hko_nday_rss.parse(sample, FETCHED)
    assert b.skipped == 0, b.notes
    assert b.n_observations == 4 * len(days) + 1 + 2
    obs = {(o.metric, o.ts): o for o in b.observation_list()}
    for d in days:
        ts = datetime.strptime(str(d["date"]), "%Y%m%d").replace(tzinfo=HKT).astimezone(UTC)
        assert obs[("forecast_min_temp_c", ts)].value == d["tmin"]
        assert obs[("forecast_max_temp_c", ts)].value == d["tmax"]
        assert obs[("forecast_max_temp_c", ts)].label == d["weather"]
        assert obs[("forecast_min_rh_pct", ts)].value == d["rhmin"]
        assert obs[("forecast_max_rh_pct", ts)].value == d["rhmax"]
    sea = obs[("sea_temperature_c", datetime(2018, 2, 5, 6, tzinfo=UTC))]
    assert sea.value == 15 and sea.entity_id == "hko-station:north_point"
    assert obs[("soil_temperature_0_5m_c", datetime(2018, 2, 4, 23, tzinfo=UTC))].value == 17.0
    assert obs[("soil_temperature_1_0m_c", datetime(2018, 2, 4, 23, tzinfo=UTC))].value == 20.3
    fc = b.entities[0]
    assert fc.id == "hko-forecast:hk"
    assert fc.properties["update_time"] == "2018-02-05T08:30:00+00:00"
    assert fc.properties["general_situation_en"].startswith("The winter monsoon")
    assert [d["date"] for d in fc.properties["days"]] == [d["date"] for d in days]
    assert fc.properties["days"][0]["wind"] == "Northeast force 4."


def rss(description: str, title: str = "Bulletin updated at 16:30 HKT 30/Dec/2018") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8" ?><rss version="2.0"><channel><item>'
        f"<title>{title}</title><pubDate>Sun, 30 Dec 2018 08:30:00 GMT</pubDate>"
        f"<description><![CDATA[{description}]]></description></item></channel></rss>"
    ).encode()


DAY = ("Date/Month: {d} (Monday)<br/>Wind: North force 4.<br/>Weather: Fine.<br/>"
       "Temp range: {lo} - {hi} C<br/>R.H. range: 40 - 60 per Cent<br/><p/>")


def test_year_rollover_and_bad_blocks() -> None:
    body = (
        "General Situation:<br/>Cold.<p/>"
        + DAY.format(d="31/12", lo=10, hi=15)
        + DAY.format(d="01/01", lo=9, hi=14)
        + DAY.format(d="31/02", lo=9, hi=14)  # no such day
        + DAY.format(d="02/01", lo=9, hi=99)  # out of range
        + "Date/Month: 03/01 (Thursday)<br/>Wind: calm<br/>"  # nothing else
    )
    b = hko_nday_rss.parse(rss(body), FETCHED)
    dates = sorted({o.ts for o in b.observation_list()})
    assert dates == [datetime(2018, 12, 30, 16, tzinfo=UTC), datetime(2018, 12, 31, 16, tzinfo=UTC),
                     datetime(2019, 1, 1, 16, tzinfo=UTC)]
    assert b.skipped == 1 + 1 + 2, b.notes


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty-payload"),
        (b"<HTML><BODY>error</BODY></HTML>", "html-error-page"),
        (b"<rss><channel><item>", "malformed-xml"),
        (b"<channel/>", "unexpected-root"),
        (b"<rss><channel></channel></rss>", "missing-field"),
        (rss(""), "missing-field"),
        (rss("General Situation: nothing else"), "no-data"),
        (rss(DAY.format(d="01/01", lo=1, hi=2), title="x").replace(
            b"<pubDate>Sun, 30 Dec 2018 08:30:00 GMT</pubDate>", b""), "missing-field"),
        (b'<!DOCTYPE rss [<!ENTITY a "b">]><rss>&a;</rss>', "xml-entity-declaration"),
    ],
)
def test_bad_payloads(payload: bytes, reason: str) -> None:
    with pytest.raises(FeedError) as err:
        hko_nday_rss.parse(payload, FETCHED)
    assert err.value.reason == reason


def test_bom_and_duplicate_days(sample: bytes) -> None:
    assert hko_nday_rss.parse(b"\xef\xbb\xbf" + sample, FETCHED).n_observations == 39
    body = DAY.format(d="31/12", lo=10, hi=15) * 2
    b = hko_nday_rss.parse(rss(body), FETCHED)
    assert b.n_observations == 4 and b.skipped == 4  # the repeated day's rows
    assert len(b.entities[0].properties["days"]) == 2  # both blocks listed as published


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_fuzz_mutated_real_sample(sample: bytes, data: st.DataObject) -> None:
    payload = data.draw(mutated(sample))
    # "8 - 13" read as a range: a mutation that glues the dash to a number ("8 -13") is still
    # read as 13, the same digits.
    check_contract(
        hko_nday_rss.parse, payload, also_allowed={abs(v) for v in numbers_in(payload)}
    )
