"""td-traffic-news parser (Special Traffic News v2, ``trafficnews.xml``).

No real capture exists (FORMATS.md §4), so fixtures are built here from the documented format:
root ``<list>`` of ``<message>`` with the v2 element names, empty optional elements, a bare
``&`` as seen in archived files, and an incident that is updated and then closed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from citypulse.feeds import td_traffic_news
from citypulse.feeds.base import FeedError
from citypulse.feeds.registry import feed_for_file, get_feed

from .mutate import check_contract, mutated

FETCHED = datetime(2025, 5, 3, 2, 0, tzinfo=UTC)

FIELDS = (
    "INCIDENT_NUMBER",
    "INCIDENT_HEADING_EN",
    "INCIDENT_HEADING_CN",
    "INCIDENT_DETAIL_EN",
    "INCIDENT_DETAIL_CN",
    "LOCATION_EN",
    "LOCATION_CN",
    "DISTRICT_EN",
    "DISTRICT_CN",
    "DIRECTION_EN",
    "DIRECTION_CN",
    "ANNOUNCEMENT_DATE",
    "INCIDENT_STATUS_EN",
    "INCIDENT_STATUS_CN",
    "NEAR_LANDMARK_EN",
    "NEAR_LANDMARK_CN",
    "BETWEEN_LANDMARK_EN",
    "BETWEEN_LANDMARK_CN",
    "ID",
    "CONTENT_EN",
    "CONTENT_CN",
    "LATITUDE",
    "LONGITUDE",
)


def message(**values: str) -> str:
    """One <message>, every documented element present; unset ones empty (``<X/>``), as the
    feed writes optional elements. Values are inserted raw: callers control escaping."""
    parts = ["<message>"]
    for name in FIELDS:
        value = values.get(name, "")
        parts.append(f"<{name}>{value}</{name}>" if value else f"<{name}/>")
    parts.append("</message>")
    return "".join(parts)


def document(*messages: str) -> bytes:
    head = '<?xml version="1.0" encoding="UTF-8"?>\n<list>'
    return (head + "".join(messages) + "</list>").encode()


ACCIDENT_NEW = message(
    INCIDENT_NUMBER="IN-25-04136",
    INCIDENT_HEADING_EN="Road Incident",
    INCIDENT_HEADING_CN="道路事故",
    INCIDENT_DETAIL_EN="Traffic Accident",
    INCIDENT_DETAIL_CN="交通意外",
    LOCATION_EN="Tuen Mun Road",
    LOCATION_CN="屯門公路",
    DISTRICT_EN="Tsuen Wan",
    DISTRICT_CN="荃灣",
    DIRECTION_EN="Kowloon Bound",
    DIRECTION_CN="往九龍方向",
    ANNOUNCEMENT_DATE="2025-05-03T09:12:00",
    INCIDENT_STATUS_EN="NEW",
    INCIDENT_STATUS_CN="最新情況",
    NEAR_LANDMARK_EN="Sham Tseng",
    NEAR_LANDMARK_CN="深井",
    ID="101",
    CONTENT_EN="Due to a traffic accident, the fast lane is closed.",
    CONTENT_CN="由於發生交通意外，快線現已封閉。",
    LATITUDE="22.3672",
    LONGITUDE="114.0505",
)
ACCIDENT_CLOSED = message(
    INCIDENT_NUMBER="IN-25-04136",
    INCIDENT_HEADING_EN="Road Incident",
    INCIDENT_HEADING_CN="道路事故",
    LOCATION_EN="Tuen Mun Road",
    LOCATION_CN="屯門公路",
    DISTRICT_EN="Tsuen Wan",
    ANNOUNCEMENT_DATE="2025-05-03T09:55:00",
    INCIDENT_STATUS_EN="CLOSED",
    INCIDENT_STATUS_CN="完結",
    ID="117",
    CONTENT_EN="All lanes have been re-opened.",
    CONTENT_CN="所有行車線已重開。",
)
# A bare '&' exactly like the archived files: not well-formed XML.
EXHIBITION = message(
    INCIDENT_NUMBER="IN-25-04140",
    INCIDENT_HEADING_EN="Special Traffic Arrangement",
    INCIDENT_HEADING_CN="特別交通安排",
    LOCATION_EN="Kowloonbay International Trade & Exhibition Centre",
    LOCATION_CN="九龍灣國際展貿中心",
    DISTRICT_EN="Kwun Tong",
    DISTRICT_CN="觀塘",
    ANNOUNCEMENT_DATE="2025-05-03T10:00:00",
    INCIDENT_STATUS_EN="UPDATED",
    INCIDENT_STATUS_CN="更新",
    ID="118",
    CONTENT_EN="Road closures near Trade & Exhibition Centre &amp; Sheung Yuet Road &nbsp;",
)


def test_spec() -> None:
    spec = get_feed("td-traffic-news")
    assert spec.url == "https://www.td.gov.hk/en/special_news/trafficnews.xml"
    assert feed_for_file(Path("z/trafficnews_20250503-1000.xml")) is spec


def test_incident_opened_then_closed() -> None:
    b = td_traffic_news.parse(document(ACCIDENT_NEW), FETCHED)
    (ev,) = b.events
    assert ev.id == "td-traffic-news:IN-25-04136"
    assert ev.kind == "traffic-news" and ev.severity == "moderate"
    assert ev.starts_at == datetime(2025, 5, 3, 1, 12, tzinfo=UTC) and ev.ends_at is None
    assert ev.title_en == "Road Incident – Tuen Mun Road"
    assert ev.title_zh == "道路事故 – 屯門公路"
    assert ev.body_en == "Due to a traffic accident, the fast lane is closed."
    assert ev.body_zh == "由於發生交通意外，快線現已封閉。"
    assert ev.districts == ("Tsuen Wan",)
    assert ev.properties["lat"] == 22.3672 and ev.properties["lon"] == 114.0505
    assert ev.properties["status"] == "NEW" and ev.properties["message_id"] == "101"
    assert ev.properties["direction_en"] == "Kowloon Bound"
    assert b.n_observations == 0 and b.entities == []

    closed = td_traffic_news.parse(document(ACCIDENT_CLOSED), FETCHED).events[0]
    assert closed.id == ev.id  # same event: the store upserts it
    assert closed.ends_at == datetime(2025, 5, 3, 1, 55, tzinfo=UTC)
    assert closed.severity == "info" and closed.properties["status"] == "CLOSED"
    assert "lat" not in closed.properties  # LATITUDE/LONGITUDE empty


def test_updates_of_one_incident_in_one_file_are_merged() -> None:
    b = td_traffic_news.parse(document(ACCIDENT_CLOSED, ACCIDENT_NEW), FETCHED)
    (ev,) = b.events
    assert ev.starts_at == datetime(2025, 5, 3, 1, 12, tzinfo=UTC)
    assert ev.ends_at == datetime(2025, 5, 3, 1, 55, tzinfo=UTC)
    assert ev.body_en == "All lanes have been re-opened."
    assert ev.properties["updates"] == 2


def test_bare_ampersand_recovered_entities_not_expanded() -> None:
    b = td_traffic_news.parse(document(ACCIDENT_NEW, EXHIBITION), FETCHED)
    assert len(b.events) == 2
    ev = next(e for e in b.events if e.id.endswith("IN-25-04140"))
    assert ev.properties["location_en"] == "Kowloonbay International Trade & Exhibition Centre"
    assert ev.body_en == "Road closures near Trade & Exhibition Centre & Sheung Yuet Road &nbsp;"
    assert ev.properties["status"] == "UPDATED"
    assert any("unescaped '&'" in n for n in b.notes)


def test_status_from_chinese_when_english_empty() -> None:
    msg = message(
        INCIDENT_NUMBER="IN-25-1", ANNOUNCEMENT_DATE="2025-05-03T10:00:00",
        INCIDENT_STATUS_CN="完結",
    )
    (ev,) = td_traffic_news.parse(document(msg), FETCHED).events
    assert ev.ends_at is not None and ev.title_en is None and ev.districts == ()


def test_no_messages_is_an_empty_batch() -> None:
    b = td_traffic_news.parse(b"<?xml version='1.0'?><list/>", FETCHED)
    assert b.events == [] and b.skipped == 0


def test_skips_messages_without_id_or_time() -> None:
    b = td_traffic_news.parse(
        document(
            message(ANNOUNCEMENT_DATE="2025-05-03T10:00:00"),  # no incident number nor ID
            message(ID="55", ANNOUNCEMENT_DATE="2025-05-03T10:00:00"),  # ID only: kept
            message(INCIDENT_NUMBER="IN-1", ANNOUNCEMENT_DATE=""),  # no time
            message(INCIDENT_NUMBER="IN-2", ANNOUNCEMENT_DATE="2025-13-45T99:00:00"),
            message(INCIDENT_NUMBER="IN-3", ANNOUNCEMENT_DATE="0001-01-01T00:00:00"),
            message(
                INCIDENT_NUMBER="IN-4", ANNOUNCEMENT_DATE="2025-05-03T10:00:00",
                LATITUDE="91", LONGITUDE="abc",
            ),
            "<unknown_element>ignored</unknown_element>",
        ),
        FETCHED,
    )
    assert sorted(e.id for e in b.events) == ["td-traffic-news:IN-4", "td-traffic-news:id-55"]
    assert "lat" not in next(e for e in b.events if e.id.endswith("IN-4")).properties
    assert b.skipped == 4


def test_bad_input() -> None:
    for payload, reason in [
        (b"", "empty-payload"),
        (b"<!DOCTYPE html>\n<html><body>Service Unavailable</body></html>", "html-error-page"),
        (document(ACCIDENT_NEW)[:300], "malformed-xml"),
        (b"<list><message></list>", "malformed-xml"),
        (b"<rss><channel/></rss>", "unexpected-root"),
        (
            b'<?xml version="1.0"?><!DOCTYPE list [<!ENTITY e "boom">]><list>&e;</list>',
            "xml-entity-declaration",
        ),
    ]:
        with pytest.raises(FeedError) as e:
            td_traffic_news.parse(payload, FETCHED)
        assert e.value.reason == reason, payload[:60]


def test_undefined_entity_is_left_literal() -> None:
    msg = message(INCIDENT_NUMBER="IN-9", ANNOUNCEMENT_DATE="2025-05-03T10:00:00",
                  CONTENT_EN="A &bogus; B")
    (ev,) = td_traffic_news.parse(document(msg), FETCHED).events
    assert ev.body_en == "A &bogus; B"


def test_bom_and_namespace_tolerated() -> None:
    payload = b"\xef\xbb\xbf" + document(ACCIDENT_NEW).replace(
        b"<list>", b'<list xmlns="http://data.one.gov.hk/td">'
    )
    assert len(td_traffic_news.parse(payload, FETCHED).events) == 1


def test_fuzz_mutated_fixture() -> None:
    sample = document(ACCIDENT_NEW, ACCIDENT_CLOSED, EXHIBITION)

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=mutated(sample))
    def run(data: bytes) -> None:
        batch = check_contract(td_traffic_news.parse, data)
        if batch is not None:
            for ev in batch.events:
                assert ev.ends_at is None or ev.ends_at >= ev.starts_at

    run()
