"""carpark-info parser (DATA.GOV.HK ``carpark-info-vacancy?data=info``): entities only.

No capture is stored; the fixture follows the documented info response (FORMATS.md §8 and the
API's public description): park_Id, name, nature, carpark_Type, structured address,
displayAddress, district, latitude/longitude numbers, opening_status, openingHours,
heightLimits, facilities, per-vehicle-type blocks with ``space`` counts, dates and ``lang``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from citypulse.feeds import carpark_info
from citypulse.feeds.base import FeedError
from citypulse.feeds.registry import feed_for_file, get_feed

from .mutate import check_contract, mutated

FETCHED = datetime(2024, 5, 1, 2, 5, tzinfo=UTC)


def record(park_id: str, **over: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "park_Id": park_id,
        "name": "Amoy Plaza",
        "nature": "commercial",
        "carpark_Type": "multi-storey",
        "address": {
            "buildingName": "Amoy Plaza",
            "streetName": "Ngau Tau Kok Road",
            "buildingNo": "77",
            "dcDistrict": "Kwun Tong District",
            "region": "KLN",
        },
        "displayAddress": "77 Ngau Tau Kok Road,\nKowloon Bay, KLN",
        "district": "Kwun Tong District",
        "latitude": 22.3247,
        "longitude": 114.2168,
        "contactNo": "2758 1234",
        "opening_status": "OPEN",
        "openingHours": [
            {"weekdays": ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN", "PH"],
             "excludePublicHoliday": False, "periodStart": "00:00", "periodEnd": "00:00"}
        ],
        "heightLimits": [{"height": 1.9, "remark": ""}],
        "facilities": ["evCharger", "disabilities", "unloading"],
        "paymentMethods": ["octopus", "visa"],
        "privateCar": {"hourlyCharges": [], "space": 480, "spaceEV": 12, "spaceDIS": 4},
        "motorCycle": {"space": 30},
        "creationDate": "2017-07-06 10:00:00",
        "modifiedDate": "2024-04-30 09:00:00",
        "publishedDate": "2017-07-06 10:00:00",
        "lang": "en_US",
    }
    rec.update(over)
    return rec


RESPONSE = {
    "results": [
        record("12"),
        record("tdc1p5", name="Rumsey Street Car Park", nature="government",
               district="Central & Western", latitude="22.2851", longitude="114.1537"),
        record("tdstt30", name="Sha Tin Temporary Car Park", latitude=0, longitude=0),
    ]
}


def payload(doc: Any = RESPONSE) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


def test_spec() -> None:
    spec = get_feed("carpark-info")
    assert "data=info" in spec.url
    assert feed_for_file(Path("b/carpark-info_20240501.json")) is spec


def test_entities_from_fixture() -> None:
    b = carpark_info.parse(payload(), FETCHED)
    assert b.n_observations == 0
    assert [e.id for e in b.entities] == [
        f"carpark:{r['park_Id']}" for r in RESPONSE["results"]
    ]
    e = b.entities[0]
    assert e.kind == "carpark" and e.name_en == "Amoy Plaza" and e.name_zh is None
    assert (e.lat, e.lon, e.district) == (22.3247, 114.2168, "Kwun Tong")
    assert e.properties["address_en"] == "77 Ngau Tau Kok Road, Kowloon Bay, KLN"
    assert e.properties["spaces"] == {"private_car": 480, "motorcycle": 30}
    assert e.properties["height_limit_m"] == 1.9
    assert e.properties["opening_status"] == "OPEN"
    gov = b.entities[1]
    assert (gov.lat, gov.lon) == (22.2851, 114.1537)  # numeric strings accepted
    unplaced = b.entities[2]
    assert unplaced.lat is None and unplaced.lon is None  # 0,0 is not in Hong Kong
    assert any("without usable coordinates" in n for n in b.notes)


def test_chinese_response_fills_name_zh() -> None:
    rec = record("12", name="淘大商場", lang="zh_TW", displayAddress="九龍灣牛頭角道77號")
    doc = {"results": [rec]}
    (e,) = carpark_info.parse(payload(doc), FETCHED).entities
    assert e.name_zh == "淘大商場" and e.name_en is None
    assert e.properties["address_zh"] == "九龍灣牛頭角道77號"


def test_bad_input_and_skips() -> None:
    for raw, reason in [
        (b"", "empty-payload"),
        (b"<!doctype html><title>x</title>", "html-error-page"),
        (payload()[:200], "malformed-json"),
        (b'{"results": null}', "unexpected-shape"),
    ]:
        with pytest.raises(FeedError) as e:
            carpark_info.parse(raw, FETCHED)
        assert e.value.reason == reason
    doc = {
        "results": [
            record("12"),
            record("12", name="dup"),
            record(""),
            {"name": "no id"},
            7,
            record("99", name=None, heightLimits="2.0m", privateCar=[1], futureKey={"a": 1}),
        ]
    }
    b = carpark_info.parse(b"\xef\xbb\xbf" + payload(doc), FETCHED)
    assert [e.id for e in b.entities] == ["carpark:12", "carpark:99"]
    assert b.entities[0].name_en == "Amoy Plaza"
    assert b.entities[1].name_en == "99"
    assert b.skipped == 4


def test_fuzz_mutated_fixture() -> None:
    sample = payload()

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=mutated(sample))
    def run(data: bytes) -> None:
        batch = check_contract(carpark_info.parse, data, FETCHED)
        if batch is not None:
            for e in batch.entities:
                assert e.id.startswith("carpark:")
                assert (e.lat is None) == (e.lon is None)

    run()
