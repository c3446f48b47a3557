"""hko-warning-rss parser: the real 2016 summary (one full item, one guid-only item), cancelled
items, bad input and fuzzing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from citypulse.feeds import hko_warning_rss
from citypulse.feeds.base import FeedError
from citypulse.feeds.registry import feed_for_file, get_feed

from .mutate import check_contract, mutated

SAMPLE = "hko-warning-rss/WeatherWarningSummaryv2_20160530-1002HKT.xml"
FETCHED = datetime(2016, 5, 30, 2, 3, tzinfo=UTC)


@pytest.fixture(scope="module")
def sample(feeds_dir: Path) -> bytes:
    return (feeds_dir / SAMPLE).read_bytes()


def rss(items: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><?xml-stylesheet href="style.xsl" type="text/xsl"?>'
        '<rss version="2.0"><channel><title>Weather Warning Summary</title>'
        "<pubDate>Mon, 30 May 2016 10:02:38 +0800</pubDate>" + items + "</channel></rss>"
    ).encode()


def test_spec() -> None:
    spec = get_feed("hko-warning-rss")
    assert spec.url == "https://rss.weather.gov.hk/rss/WeatherWarningSummaryv2.xml"
    assert spec.enabled_by_default is False
    assert feed_for_file(Path("WeatherWarningSummaryv2_20160530-1002HKT.xml")) is spec


def test_real_sample(sample: bytes) -> None:
    root = etree.fromstring(sample)
    items = root.xpath("/rss/channel/item")
    assert len(items) == 2
    b = hko_warning_rss.parse(sample, FETCHED)
    assert len(b.events) == len(items) and b.skipped == 0
    ts, tc1 = b.events
    assert ts.id == "hko-warning-rss:WTS:201605301000"
    assert ts.starts_at == datetime(2016, 5, 30, 2, 0, tzinfo=UTC)
    assert ts.title_en == "Thunderstorm Warning" and ts.title_zh == "雷暴警告"
    assert ts.body_en == "Thunderstorm Warning was issued at 10:00 HKT (30 May 2016)"
    assert ts.severity == "moderate" and ts.ends_at is None
    # The guid-only item: recovered from the guid's text and time.
    guid = items[1].findtext("guid").strip()
    assert items[1].find("title") is None and "Standby Signal, No. 1" in guid
    assert tc1.properties == {"code": "TC1", "family": "WTCSGNL", "action": "issued",
                              "recovered_from_guid": True}
    assert tc1.starts_at == datetime(2016, 5, 30, 2, 1, tzinfo=UTC)
    assert tc1.title_en == "Standby Signal No. 1" and tc1.severity == "low"
    assert "pubDate=2016-05-30T02:02:38+00:00" in b.notes


def test_cancelled_and_unknown_items() -> None:
    b = hko_warning_rss.parse(rss(
        "<item><title><![CDATA[Amber Rainstorm Warning Signal cancelled (13:40 HKT 19/08/2023) ]]>"
        "</title><pubDate>Sat, 19 Aug 2023 13:40:00 +0800</pubDate></item>"
        "<item><title><![CDATA[No. 8 Southeast Gale or Storm Signal issued "
        "(09:40 HKT 16/09/2018) ]]></title></item>"
        "<item><title>Something New issued (09:40 HKT 16/09/2018)</title></item>"
        "<item><description>no title, no guid</description></item>"
        "<item><guid>http://rss.weather.gov.hk/rss/201609161/short stamp</guid></item>"
        "<item><title>Thunderstorm Warning issued (99:99 HKT 40/13/2016)</title></item>"
    ), FETCHED)
    ev = {e.properties["code"]: e for e in b.events}
    assert ev["WRAINA"].ends_at == ev["WRAINA"].starts_at == datetime(2023, 8, 19, 5, 40,
                                                                       tzinfo=UTC)
    assert ev["TC8SE"].severity == "high"
    assert ev["something_new"].severity == "info" and ev["something_new"].title_zh is None
    assert b.skipped == 3, b.notes


def test_no_warnings_in_force() -> None:
    b = hko_warning_rss.parse(rss(""), FETCHED)
    assert b.events == [] and b.skipped == 0


def test_bom(sample: bytes) -> None:
    assert len(hko_warning_rss.parse(b"\xef\xbb\xbf" + sample, FETCHED).events) == 2


def test_duplicate_items(sample: bytes) -> None:
    text = sample.decode()
    start, end = text.index("<item>"), text.index("</item>") + len("</item>")
    doubled = text[:end] + text[start:end] + text[end:]
    b = hko_warning_rss.parse(doubled.encode(), FETCHED)
    assert len(b.events) == 2 and b.skipped == 1


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty-payload"),
        (b"<html><body>Not Found</body></html>", "html-error-page"),
        (b"<rss><channel><item>", "malformed-xml"),
        (b"<feed/>", "unexpected-root"),
        (b"<rss/>", "missing-field"),
        (b'<!DOCTYPE rss [<!ENTITY x "y">]><rss><channel>&x;</channel></rss>',
         "xml-entity-declaration"),
    ],
)
def test_bad_payloads(payload: bytes, reason: str) -> None:
    with pytest.raises(FeedError) as err:
        hko_warning_rss.parse(payload, FETCHED)
    assert err.value.reason == reason


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_fuzz_mutated_real_sample(sample: bytes, data: st.DataObject) -> None:
    b = check_contract(hko_warning_rss.parse, data.draw(mutated(sample)))
    if b is not None:
        assert len({e.id for e in b.events}) == len(b.events)
