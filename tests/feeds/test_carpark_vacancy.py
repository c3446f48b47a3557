"""carpark-vacancy parser (DATA.GOV.HK ``carpark-info-vacancy?data=vacancy``).

No capture is stored (FORMATS.md §8: too big to copy), so the fixture is built here from the
documented response: string park ids (operator numerals and TD-style ids), vehicle-type keys
only where present, vacancy types A/B/C, ``-1`` for no data, EV counts above the general count,
a ``lastupdate`` days old and ``category`` only on government car parks.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from citypulse.feeds import carpark_vacancy
from citypulse.feeds.base import FeedError
from citypulse.feeds.registry import feed_for_file, get_feed

from .mutate import check_contract, mutated

FETCHED = datetime(2024, 5, 1, 2, 5, tzinfo=UTC)  # 10:05 HKT

RESPONSE: dict[str, Any] = {
    "results": [
        {
            "park_Id": "27",
            "privateCar": [
                {
                    "vacancy_type": "A",
                    "vacancy": 262,
                    "vacancyEV": 255,
                    "vacancyDIS": 2,
                    "lastupdate": "2024-05-01 10:02:11",
                }
            ],
            "motorCycle": [
                {"vacancy_type": "A", "vacancy": -1, "lastupdate": "2024-05-01 10:02:11"}
            ],
        },
        {
            "park_Id": "tdc1p5",
            "privateCar": [
                {
                    "vacancy_type": "A",
                    "vacancy": 0,
                    "vacancyDIS": -1,
                    "lastupdate": "2024-05-01 10:01:00",
                    "category": "HOURLY",
                }
            ],
            "LGV": [
                {
                    "vacancy_type": "B",
                    "vacancy": 1,
                    "lastupdate": "2024-05-01 10:01:00",
                    "category": "HOURLY",
                }
            ],
            "coach": [
                {"vacancy_type": "C", "vacancy": 0, "lastupdate": "2024-05-01 10:01:00",
                 "category": "HOURLY"}
            ],
        },
        {
            "park_Id": "tdstt30",
            "HGV": [{"vacancy_type": "A", "vacancy": 4, "lastupdate": "2024-04-26 18:30:00"}],
            "privateCar": [
                {"vacancy_type": "A", "vacancy": 12, "lastupdate": "2024-05-01 10:03:00",
                 "category": "HOURLY"},
                {"vacancy_type": "A", "vacancy": 3, "lastupdate": "2024-05-01 10:03:00",
                 "category": "MONTHLY"},
            ],
        },
    ]
}


def payload(doc: Any = RESPONSE) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


def obs(doc: Any = RESPONSE) -> dict[tuple[str, str], tuple[float | None, str | None, datetime]]:
    b = carpark_vacancy.parse(payload(doc), FETCHED)
    return {(o.entity_id, o.metric): (o.value, o.label, o.ts) for o in b.observation_list()}


def hk(text: str) -> datetime:
    return datetime.fromisoformat(text + "+08:00").astimezone(UTC)


def test_spec() -> None:
    spec = get_feed("carpark-vacancy")
    assert spec.url.startswith("https://api.data.gov.hk/v1/carpark-info-vacancy?data=vacancy")
    assert spec.media_type == "application/json"
    assert feed_for_file(Path("a/carpark-vacancy_20240501-1005.json")) is spec


def test_fixture_values() -> None:
    got = obs()
    t27 = hk("2024-05-01 10:02:11")
    t5 = hk("2024-05-01 10:01:00")
    assert got[("carpark:27", "vacancy_private_car")] == (262.0, "count", t27)
    assert got[("carpark:27", "vacancy_ev_private_car")] == (255.0, "count", t27)
    assert got[("carpark:27", "vacancy_dis_private_car")] == (2.0, "count", t27)
    assert ("carpark:27", "vacancy_motorcycle") not in got  # -1 = no data
    assert got[("carpark:tdc1p5", "vacancy_private_car")] == (0.0, "count", t5)
    assert ("carpark:tdc1p5", "vacancy_dis_private_car") not in got
    assert got[("carpark:tdc1p5", "vacancy_lgv")] == (1.0, "flag", t5)
    assert got[("carpark:tdc1p5", "vacancy_coach")] == (0.0, "closed", t5)
    # Stale operator: the observation keeps its own (old) time.
    assert got[("carpark:tdstt30", "vacancy_hgv")] == (4.0, "count", hk("2024-04-26 18:30:00"))
    # Hourly and monthly counts of one vehicle type do not collide.
    assert got[("carpark:tdstt30", "vacancy_private_car")][0] == 12.0
    assert got[("carpark:tdstt30", "vacancy_private_car_monthly")][0] == 3.0


def test_counts_checked_against_the_json() -> None:
    doc = RESPONSE
    expected = 0
    minus_one = 0
    for park in doc["results"]:
        for key, entries in park.items():
            if key == "park_Id":
                continue
            for entry in entries:
                for field in ("vacancy", "vacancyEV", "vacancyDIS", "vacancyUNL"):
                    if field in entry:
                        if entry[field] == -1:
                            minus_one += 1
                        else:
                            expected += 1
    b = carpark_vacancy.parse(payload(), FETCHED)
    assert b.n_observations == expected
    assert b.skipped == minus_one == 2
    assert b.entities == []  # names/coordinates come from carpark-info
    assert any("more than a day" in n for n in b.notes)


def test_bad_input() -> None:
    for raw, reason in [
        (b"", "empty-payload"),
        (b"<html><body>Bad gateway</body></html>", "html-error-page"),
        (payload()[:100], "malformed-json"),
        (b"[]", "unexpected-shape"),
        (b'{"result": []}', "unexpected-shape"),
        (b'{"results": {}}', "unexpected-shape"),
    ]:
        with pytest.raises(FeedError) as e:
            carpark_vacancy.parse(raw, FETCHED)
        assert e.value.reason == reason, raw[:40]


def test_bom_empty_results_and_entity_text() -> None:
    b = carpark_vacancy.parse(b"\xef\xbb\xbf" + payload(), FETCHED)
    assert b.n_observations == carpark_vacancy.parse(payload(), FETCHED).n_observations
    assert carpark_vacancy.parse(b'{"results": []}', FETCHED).n_observations == 0
    # A JSON payload has no entities to expand: "&x;" is just text in an id and is refused.
    b = carpark_vacancy.parse(b'{"results": [{"park_Id": "&x;", "privateCar": []}]}', FETCHED)
    assert b.n_observations == 0 and b.skipped == 1


def test_missing_out_of_range_unknown_duplicates() -> None:
    t = "2024-05-01 10:00:00"
    doc = {
        "results": [
            {"park_Id": "1", "privateCar": [{"vacancy_type": "A", "vacancy": 5}]},  # no time
            {"park_Id": "2", "privateCar": [{"vacancy": 7, "lastupdate": "yesterday"}]},
            {"park_Id": "3", "privateCar": [{"vacancy": -7, "lastupdate": t}]},
            {"park_Id": "4", "privateCar": [{"vacancy": True, "lastupdate": t}]},
            {"park_Id": "5", "privateCar": [{"vacancy": "9", "lastupdate": t}],
             "bicycle": [{"vacancy": 3, "lastupdate": t}],
             "newField": "x"},
            {"park_Id": "5", "privateCar": [{"vacancy": 1, "lastupdate": t}]},
            {"park_Id": "6", "privateCar": [{"vacancy": 2, "lastupdate": t},
                                            {"vacancy": 3, "lastupdate": t}]},
            {"park_Id": "7", "privateCar": [{"vacancy": 2, "lastupdate": "2031-01-01 00:00:00"}]},
            {"park_Id": "8", "privateCar": {"vacancy": 2}},
            {"privateCar": [{"vacancy": 2, "lastupdate": t}]},
            {"park_Id": 9, "privateCar": [{"vacancy": 4.0, "lastupdate": t}]},
            "not an object",
        ]
    }
    got = obs(doc)
    assert set(got) == {
        ("carpark:5", "vacancy_private_car"),
        ("carpark:6", "vacancy_private_car"),
        ("carpark:9", "vacancy_private_car"),
    }
    assert got[("carpark:5", "vacancy_private_car")][0] == 9.0
    assert got[("carpark:6", "vacancy_private_car")][0] == 2.0
    b = carpark_vacancy.parse(payload(doc), FETCHED)
    assert b.skipped == 10
    assert any("bicycle" in n and "newField" in n for n in b.notes)


def test_fuzz_mutated_fixture() -> None:
    sample = orjson.dumps(RESPONSE, option=orjson.OPT_INDENT_2)

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=mutated(sample))
    def run(data: bytes) -> None:
        check_contract(carpark_vacancy.parse, data, FETCHED)

    run()
