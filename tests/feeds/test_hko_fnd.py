"""hko-fnd parser: the 3 real 9-day forecasts (values re-read from the JSON here), English PSR
words, bad input and fuzzing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citypulse.feeds import hko_fnd
from citypulse.feeds.base import FeedError
from citypulse.feeds.registry import feed_for_file, get_feed

from .mutate import check_contract, mutated

FOLDER = "hko-fnd"
FETCHED = datetime(2025, 9, 23, 19, 8, tzinfo=UTC)
HKT = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def files(feeds_dir: Path) -> list[Path]:
    found = sorted((feeds_dir / FOLDER).glob("*.json"))
    assert len(found) == 3
    return found


def day_ts(yyyymmdd: str) -> datetime:
    return datetime.strptime(yyyymmdd, "%Y%m%d").replace(tzinfo=HKT).astimezone(UTC)


def test_spec() -> None:
    spec = get_feed("hko-fnd")
    assert spec.parse is hko_fnd.parse and spec.url.endswith("dataType=fnd&lang=en")
    assert feed_for_file(Path("fnd_tc_20250717_085433Z.json")) is spec


def test_every_real_sample(files: list[Path]) -> None:
    psr_rank = {"低": 1, "中低": 2, "中": 3, "中高": 4, "高": 5}
    for path in files:
        raw = path.read_bytes()
        doc = json.loads(raw)
        b = hko_fnd.parse(raw, FETCHED)
        assert b.skipped == 0, b.notes
        days = doc["weatherForecast"]
        assert len(days) == 9
        obs = {(o.entity_id, o.metric, o.ts): o for o in b.observation_list()}
        # 6 metrics per day + sea temperature + one per soil depth.
        assert b.n_observations == 6 * len(days) + 1 + len(doc["soilTemp"])
        for d in days:
            ts = day_ts(d["forecastDate"])
            hi = obs[("hko-forecast:hk", "forecast_max_temp_c", ts)]
            assert hi.value == d["forecastMaxtemp"]["value"] and hi.label == d["forecastWeather"]
            lo = obs[("hko-forecast:hk", "forecast_min_temp_c", ts)]
            assert lo.value == d["forecastMintemp"]["value"]
            assert obs[("hko-forecast:hk", "forecast_max_rh_pct", ts)].value == (
                d["forecastMaxrh"]["value"]
            )
            assert obs[("hko-forecast:hk", "forecast_min_rh_pct", ts)].value == (
                d["forecastMinrh"]["value"]
            )
            assert obs[("hko-forecast:hk", "forecast_icon", ts)].value == d["ForecastIcon"]
            assert obs[("hko-forecast:hk", "forecast_psr", ts)].value == psr_rank[d["PSR"]]
        sea = doc["seaTemp"]
        o = obs[("hko-station:north_point", "sea_temperature_c",
                 datetime.fromisoformat(sea["recordTime"]).astimezone(UTC))]
        assert o.value == sea["value"]
        for soil in doc["soilTemp"]:
            metric = f"soil_temperature_{float(soil['depth']['value']):.1f}m_c".replace(".", "_")
            key = ("hko-station:hong_kong_observatory", metric,
                   datetime.fromisoformat(soil["recordTime"]).astimezone(UTC))
            assert obs[key].value == soil["value"]
        fc = next(e for e in b.entities if e.id == "hko-forecast:hk")
        assert fc.properties["general_situation_zh"] == " ".join(doc["generalSituation"].split())
        assert [d["date"] for d in fc.properties["days"]] == [d["forecastDate"] for d in days]
        assert fc.properties["update_time"] == (
            datetime.fromisoformat(doc["updateTime"]).astimezone(UTC).isoformat()
        )


def base_doc() -> dict[str, Any]:
    return {
        "generalSituation": "A dry northeast monsoon will affect the coast of Guangdong.",
        "weatherForecast": [
            {
                "forecastDate": "20260102",
                "week": "Friday",
                "forecastWind": "North force 4.",
                "forecastWeather": "Fine and dry.",
                "forecastMaxtemp": {"value": 18, "unit": "C"},
                "forecastMintemp": {"value": 12, "unit": "C"},
                "forecastMaxrh": {"value": 70, "unit": "percent"},
                "forecastMinrh": {"value": 40, "unit": "percent"},
                "ForecastIcon": 50,
                "PSR": "Medium Low",
            }
        ],
        "updateTime": "2026-01-01T16:30:00+08:00",
        "seaTemp": {"place": "North Point", "value": 20, "unit": "C",
                    "recordTime": "2026-01-01T14:00:00+08:00"},
        "soilTemp": [],
    }


def test_english_psr_and_names() -> None:
    b = hko_fnd.parse(orjson.dumps(base_doc()), FETCHED)
    obs = {o.metric: o for o in b.observation_list()}
    assert obs["forecast_psr"].value == 2 and obs["forecast_psr"].label == "Medium Low"
    assert obs["sea_temperature_c"].entity_id == "hko-station:north_point"
    assert b.entities[0].properties["general_situation_en"].startswith("A dry")
    assert obs["forecast_max_temp_c"].ts == datetime(2026, 1, 1, 16, tzinfo=UTC)


def test_bad_days_are_skipped() -> None:
    doc = base_doc()
    day = doc["weatherForecast"][0]
    doc["weatherForecast"] += [
        {**day, "forecastDate": "20260230"},  # no such day
        {**day, "forecastDate": "2026-01-03"},  # wrong format
        "nonsense",
        {**day, "forecastDate": "20260104", "forecastMaxtemp": {"value": 99, "unit": "C"},
         "PSR": "Maybe", "ForecastIcon": "x"},
        {**day, "forecastDate": "20260105", "forecastMintemp": {"value": 12, "unit": "F"}},
        {**day},  # duplicate of the first day
    ]
    b = hko_fnd.parse(orjson.dumps(doc), FETCHED)
    # 3 bad days + (max temp, PSR, icon) + min temp in F + 6 duplicate rows
    assert b.skipped == 3 + 3 + 1 + 6, b.notes
    dates = {o.ts for o in b.observation_list() if o.entity_id == "hko-forecast:hk"}
    assert len(dates) == 3


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty-payload"),
        (b"<html><head><title>Error</title></head></html>", "html-error-page"),
        (b"[]", "unexpected-shape"),
        (b'{"generalSituation": "x"}', "missing-field"),
        (b'{"weatherForecast": {}}', "missing-field"),
        (b'{"weatherForecast": [], "updateTime": "soon"}', "bad-timestamp"),
        (b'{"weatherForecast": [', "malformed-json"),
    ],
)
def test_bad_payloads(payload: bytes, reason: str) -> None:
    with pytest.raises(FeedError) as err:
        hko_fnd.parse(payload, FETCHED)
    assert err.value.reason == reason


def test_unknown_fields_and_bom() -> None:
    doc = base_doc()
    doc["newThing"] = [1, 2, 3]
    doc["weatherForecast"][0]["extra"] = {"a": 1}
    b = hko_fnd.parse(b"\xef\xbb\xbf" + orjson.dumps(doc), FETCHED)
    assert b.skipped == 0 and b.n_observations == 7


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_fuzz_mutated_real_sample(files: list[Path], data: st.DataObject) -> None:
    sample = files[data.draw(st.integers(0, len(files) - 1))].read_bytes()
    payload = data.draw(mutated(sample))
    check_contract(hko_fnd.parse, payload, also_allowed={1.0, 2.0, 3.0, 4.0, 5.0})
