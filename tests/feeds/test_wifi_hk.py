"""wifi-hk parser: the real non-fixed sample (BOM; counts and values checked with json), the
fixed-hotspot shape built here from the documented fields, bad input, a 30 000-record file and
fuzzing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from citypulse.feeds import wifi_hk
from citypulse.feeds.base import FeedError
from citypulse.feeds.registry import feed_for_file, get_feed

from .mutate import check_contract, mutated

SAMPLE = "wifi-hk/non-fixed-wi-fi-hk-locations_2023-06-07.json"
FETCHED = datetime(2023, 6, 7, 8, 20, tzinfo=UTC)
BOM = b"\xef\xbb\xbf"


def fixed_record(i: int, **over: Any) -> dict[str, Any]:
    """One venue of the fixed-hotspot file, flat keys with EN/TC/SC suffixes like the
    non-fixed sample, plus the venue fields (VenueType, Address, Area, District, Lat/Long)."""
    rec: dict[str, Any] = {
        "OrganisationCode": "gov",
        "LocationID": f"GOV-{i:05d}",
        "LocationNameEN": f"Public Library {i}",
        "LocationNameTC": f"公共圖書館{i}",
        "LocationNameSC": f"公共图书馆{i}",
        "VenueTypeEN": "Public Libraries",
        "VenueTypeTC": "公共圖書館",
        "VenueTypeSC": "公共图书馆",
        "AddressEN": f"{i} Nathan Road, Kowloon",
        "AddressTC": f"九龍彌敦道{i}號",
        "AddressSC": f"九龙弥敦道{i}号",
        "AreaEN": "Kowloon",
        "AreaTC": "九龍",
        "DistrictEN": "Yau Tsim Mong",
        "DistrictTC": "油尖旺",
        "Latitude": f"{22.30 + (i % 100) * 0.001:.6f}",
        "Longitude": 114.17 + (i % 50) * 0.001,
        "SSID": "freegovwifi",
        "NumberOfHotspots": str(1 + i % 7),
        "DigitalCertificate": None,
        "SupportHotline": "(852) 2582 4523",
        "SupportEmail": None,
        "MoreInformationEN": None,
        "MoreInformationTC": None,
        "MoreInformationSC": None,
        "MoreInformationLinkEN": None,
        "MoreInformationLinkTC": None,
        "MoreInformationLinkSC": None,
        "RemarksEN": None,
        "RemarksTC": None,
        "RemarksSC": None,
    }
    rec.update(over)
    return rec


def fixed_file(n: int) -> bytes:
    return BOM + json.dumps([fixed_record(i) for i in range(n)], ensure_ascii=False).encode()


@pytest.fixture(scope="module")
def sample(feeds_dir: Path) -> bytes:
    return (feeds_dir / SAMPLE).read_bytes()


def test_spec() -> None:
    spec = get_feed("wifi-hk")
    assert spec.url.endswith("/fixed-wi-fi-hk-locations.json")
    assert any(u.endswith("/non-fixed-wi-fi-hk-locations.json") for u in spec.extra["urls"])
    assert feed_for_file(Path("c/non-fixed-wi-fi-hk-locations_2023-06-07.json")) is spec
    assert feed_for_file(Path("c/fixed-wi-fi-hk-locations_2024-01-01.json")) is spec


def test_real_non_fixed_sample(sample: bytes) -> None:
    assert sample.startswith(BOM)
    records = json.loads(sample.decode("utf-8-sig"))
    b = wifi_hk.parse(sample, FETCHED)
    assert len(b.entities) == len(records) == 6
    assert b.n_observations == len(records) and b.skipped == 0
    got = {o.entity_id: o.value for o in b.observation_list()}
    for rec in records:
        eid = f"wifi:{rec['OrganisationCode']}:{rec['LocationID']}"
        assert got[eid] == float(int(rec["NumberOfHotspots"]))
    kmb = next(e for e in b.entities if e.id == "wifi:kmb:KMB-NF-001")
    assert kmb.kind == "wifi-hotspot" and kmb.name_en == "KMB Bus" and kmb.lat is None
    assert kmb.properties["mobile"] is True and kmb.properties["ssid"] == "KMB Free"
    assert {o.ts for o in b.observation_list()} == {FETCHED}
    assert sum(got.values()) == sum(int(r["NumberOfHotspots"]) for r in records)


def test_fixed_shape() -> None:
    b = wifi_hk.parse(fixed_file(3), FETCHED)
    e = b.entities[1]
    assert e.id == "wifi:gov:GOV-00001"
    assert (e.lat, e.lon) == (22.301, 114.171)
    assert e.district == "Yau Tsim Mong" and e.name_zh == "公共圖書館1"
    assert e.properties["venue_type_en"] == "Public Libraries"
    assert e.properties["address_zh"] == "九龍彌敦道1號"
    assert "mobile" not in e.properties
    assert [o.value for o in b.observation_list()] == [1.0, 2.0, 3.0]


def test_thirty_thousand_records() -> None:
    raw = fixed_file(30_000)
    b = wifi_hk.parse(raw, FETCHED)
    assert len(b.entities) == b.n_observations == 30_000
    assert b.skipped == 0


def test_bad_input_and_skips() -> None:
    for raw, reason in [
        (b"", "empty-payload"),
        (BOM, "malformed-json"),
        (b"<html><body>Forbidden</body></html>", "html-error-page"),
        (fixed_file(2)[:150], "malformed-json"),
        (b'{"locations": []}', "unexpected-shape"),
        (b"\xff\xfe[\x00]\x00", "malformed-json"),
    ]:
        with pytest.raises(FeedError) as e:
            wifi_hk.parse(raw, FETCHED)
        assert e.value.reason == reason, raw[:40]
    assert wifi_hk.parse(b"[]", FETCHED).entities == []
    records = [
        fixed_record(0),
        fixed_record(0, LocationNameEN="duplicate"),
        fixed_record(1, NumberOfHotspots="-3"),  # entity kept, no observation
        fixed_record(2, NumberOfHotspots="many"),
        fixed_record(3, Latitude="91.5", Longitude="x"),  # kept, not placed
        fixed_record(4, OrganisationCode=None),
        fixed_record(5, LocationID="  "),
        fixed_record(6, NewField={"x": 1}, NumberOfHotspots=4),
        fixed_record(7, LocationID="a:b"),  # ':' would make ids ambiguous
        "not a record",
    ]
    b = wifi_hk.parse(json.dumps(records).encode(), FETCHED)
    ids = [e.id for e in b.entities]
    assert ids == [f"wifi:gov:GOV-0000{i}" for i in (0, 1, 2, 3, 6)]
    assert ids.count("wifi:gov:GOV-00000") == 1 and b.entities[0].name_en == "Public Library 0"
    assert {o.entity_id: o.value for o in b.observation_list()} == {
        "wifi:gov:GOV-00000": 1.0,
        "wifi:gov:GOV-00003": 4.0,
        "wifi:gov:GOV-00006": 4.0,
    }
    assert b.entities[3].lat is None
    assert b.skipped == 1 + 2 + 3 + 1


def test_fuzz_mutated_real_sample(sample: bytes) -> None:
    mixed = BOM + json.dumps(
        [*json.loads(sample.decode("utf-8-sig")), fixed_record(0), fixed_record(1)],
        ensure_ascii=False,
    ).encode()

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=mutated(sample) | mutated(mixed))
    def run(data: bytes) -> None:
        batch = check_contract(wifi_hk.parse, data, FETCHED)
        if batch is not None:
            assert len({e.id for e in batch.entities}) == len(batch.entities)

    run()
