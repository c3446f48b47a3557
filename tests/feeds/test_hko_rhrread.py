"""hko-rhrread parser: all 10 real ``lang=tc`` captures (counts and values re-read from the JSON
here), an English payload, every documented type switch, bad input and fuzzing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citypulse.feeds import hko_rhrread
from citypulse.feeds.base import FeedError
from citypulse.feeds.registry import feed_for_file, get_feed
from citypulse.model import Batch

from .mutate import check_contract, mutated

FOLDER = "hko-rhrread"
FETCHED = datetime(2025, 7, 20, 8, 15, tzinfo=UTC)


def samples(feeds_dir: Path) -> list[Path]:
    return sorted((feeds_dir / FOLDER).glob("*.json"))


@pytest.fixture(scope="module")
def files(feeds_dir: Path) -> list[Path]:
    found = samples(feeds_dir)
    assert len(found) == 10
    return found


@pytest.fixture(scope="module")
def typhoon(feeds_dir: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(
        (feeds_dir / FOLDER / "rhrread_tc_20250720_081240Z.json").read_text("utf-8")
    )
    return doc


def dump(doc: Any) -> bytes:
    return orjson.dumps(doc)


def hk(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def by_metric(batch: Batch, metric: str) -> dict[str, Any]:
    """Observations of one metric keyed by the Chinese (or English) name of their entity."""
    names = {e.id: e for e in batch.entities}
    out: dict[str, Any] = {}
    for o in batch.observation_list():
        if o.metric == metric:
            ent = names[o.entity_id]
            out[ent.name_zh or ent.name_en or ent.id] = o
    return out


def test_spec() -> None:
    spec = get_feed("hko-rhrread")
    assert spec.parse is hko_rhrread.parse
    assert spec.url.endswith("dataType=rhrread&lang=en")
    assert spec.extra["url_tc"].endswith("lang=tc")
    assert feed_for_file(Path("x/rhrread_tc_20250627_063255Z.json")) is spec


def test_every_real_sample(files: list[Path]) -> None:
    station_counts = set()
    for path in files:
        raw = path.read_bytes()
        doc = json.loads(raw)
        b = hko_rhrread.parse(raw, FETCHED)
        assert b.feed_id == "hko-rhrread" and b.skipped == 0, (path.name, b.notes)
        temps = doc["temperature"]["data"]
        station_counts.add(len(temps))
        got = by_metric(b, "temperature_c")
        assert len(got) == len(temps)
        for rec in temps:
            o = got[rec["place"]]
            assert o.value == rec["value"]
            assert o.ts == hk(doc["temperature"]["recordTime"])
        hum = by_metric(b, "humidity_pct")
        assert {k: o.value for k, o in hum.items()} == {
            r["place"]: r["value"] for r in doc["humidity"]["data"]
        }
        rain = by_metric(b, "rainfall_mm")
        live = [r for r in doc["rainfall"]["data"] if r["main"] != "TRUE"]
        assert len(rain) == len(live) == 18
        for rec in live:
            o = rain[rec["place"]]
            assert o.value == rec["max"]
            assert o.ts == hk(doc["rainfall"]["endTime"])
            assert o.label == (f"{rec['min']}-{rec['max']}" if "min" in rec else None)
        uv = by_metric(b, "uv_index")
        if doc["uvindex"] == "":
            assert uv == {}
        else:
            (rec,) = doc["uvindex"]["data"]
            assert uv[rec["place"]].value == rec["value"] and uv[rec["place"]].label == rec["desc"]
        lightning = by_metric(b, "lightning")
        assert len(lightning) == len(doc.get("lightning", {}).get("data", []))
        fields = [f for f in hko_rhrread.MESSAGE_FIELDS if doc.get(f)]
        assert sorted(e.properties["field"] for e in b.events) == sorted(fields)
        for ev in b.events:
            lines = doc[ev.properties["field"]]
            lines = [lines] if isinstance(lines, str) else lines
            assert ev.body_zh == "\n".join(lines) and ev.body_en is None
            assert ev.starts_at == hk(doc["updateTime"]) and ev.kind == "weather-message"
        # Every place is in our table: bilingual names and positions on all entities.
        for ent in b.entities:
            assert ent.name_en and ent.name_zh and ent.lat and ent.lon, ent
    assert station_counts == {26, 27}


def test_entities_and_spot_values(typhoon: dict[str, Any]) -> None:
    b = hko_rhrread.parse(dump(typhoon), FETCHED)
    ents = {e.id: e for e in b.entities}
    hko = ents["hko-station:hong_kong_observatory"]
    assert (hko.name_en, hko.name_zh, hko.district) == (
        "Hong Kong Observatory", "香港天文台", "yau_tsim_mong"
    )
    assert ents["hko-district:yuen_long"].kind == "rainfall-district"
    obs = {(o.entity_id, o.metric): o for o in b.observation_list()}
    assert obs[("hko-district:yuen_long", "rainfall_mm")].value == 79
    assert obs[("hko-district:yuen_long", "rainfall_mm")].label == "7-79"
    assert obs[("hko-station:hong_kong_observatory", "humidity_pct")].value == 93
    assert obs[("hko-station:kings_park", "uv_index")].value == 0.8
    assert obs[("hko-station:kings_park", "uv_index")].ts == datetime(2025, 7, 20, 8, tzinfo=UTC)
    assert obs[("hko-station:hong_kong_observatory", "weather_icon")].value == 64
    # 26 stations this time: Tai Mei Tuk is absent, nothing shifted.
    assert "hko-station:tai_mei_tuk" not in ents
    warn = next(e for e in b.events if e.properties["field"] == "warningMessage")
    assert warn.id == "hko-rhrread:warningMessage:202507201611"
    assert warn.properties["lines"] == 4 and "八號熱帶氣旋警告信號" in (warn.body_zh or "")
    assert warn.ends_at is not None and (warn.ends_at - warn.starts_at).total_seconds() == 3600


def test_optional_keys(feeds_dir: Path) -> None:
    doc = json.loads((feeds_dir / FOLDER / "rhrread_tc_20250627_181330Z.json").read_bytes())
    b = hko_rhrread.parse(dump(doc), FETCHED)
    reminder = [e for e in b.events if e.properties["field"] == "rainstormReminder"]
    assert len(reminder) == 1 and reminder[0].body_zh == doc["rainstormReminder"]
    doc = json.loads((feeds_dir / FOLDER / "rhrread_tc_20250702_024207Z.json").read_bytes())
    b = hko_rhrread.parse(dump(doc), FETCHED)
    (tips,) = b.events
    assert tips.properties["field"] == "specialWxTips"
    assert tips.body_zh == doc["specialWxTips"][0]


ENGLISH = {
    "updateTime": "2022-03-14T18:02:00+08:00",
    "temperature": {
        "recordTime": "2022-03-14T18:00:00+08:00",
        "data": [
            {"place": "King's Park", "value": 25, "unit": "C"},
            {"place": "Hong Kong Observatory", "value": 26, "unit": "C"},
            {"place": "Tai Mei Tuk", "value": 26, "unit": "C"},
        ],
    },
    "humidity": {
        "recordTime": "2022-03-14T18:00:00+08:00",
        "data": [{"unit": "percent", "value": 70, "place": "Hong Kong Observatory"}],
    },
    "rainfall": {
        "startTime": "2022-03-14T16:45:00+08:00",
        "endTime": "2022-03-14T17:45:00+08:00",
        "data": [
            {"unit": "mm", "place": "Central &amp; Western District", "max": 3, "min": 1,
             "main": "FALSE"},
            {"unit": "mm", "place": "Yau Tsim Mong", "max": 0, "main": "FALSE"},
            {"unit": "mm", "place": "Islands District", "max": 0, "main": "TRUE"},
        ],
    },
    "uvindex": {"data": [{"place": "King's Park", "value": 0.4, "desc": "low"}],
                "recordDesc": "During the past hour"},
    "lightning": {"data": [{"place": "Lantau", "occur": "true"}],
                  "startTime": "2022-03-14T16:45:00+08:00", "endTime": "2022-03-14T17:45:00+08:00"},
    "warningMessage": ["The Thunderstorm Warning has been issued."],
    "tcmessage": "",
    "icon": [77],
    "iconUpdateTime": "2022-03-14T18:00:00+08:00",
    "someNewKey": {"ignored": True},
}


def test_english_payload_gives_same_entities() -> None:
    b = hko_rhrread.parse(dump(ENGLISH), FETCHED)
    obs = {(o.entity_id, o.metric): o for o in b.observation_list()}
    assert obs[("hko-station:kings_park", "temperature_c")].value == 25
    # The HTML entity quirk of older English payloads.
    assert obs[("hko-district:central_western", "rainfall_mm")].label == "1-3"
    assert obs[("hko-district:yau_tsim_mong", "rainfall_mm")].value == 0
    assert ("hko-district:islands", "rainfall_mm") not in obs  # under maintenance
    assert b.skipped == 1 and any("maintenance" in n for n in b.notes)
    assert obs[("hko-region:lantau", "lightning")].value == 1.0
    (ev,) = b.events
    assert ev.body_en == "The Thunderstorm Warning has been issued." and ev.body_zh is None
    assert ev.title_zh == "現正生效的天氣警告"
    zh = {e.id: e.name_zh for e in b.entities}
    assert zh["hko-district:central_western"] == "中西區"


def variant(base: dict[str, Any], **changes: Any) -> bytes:
    doc = json.loads(json.dumps(base))
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return dump(doc)


def test_type_switches(typhoon: dict[str, Any]) -> None:
    # A bare string where a list is usual: read as one line.
    b = hko_rhrread.parse(variant(typhoon, warningMessage="紅色暴雨警告信號現正生效。"), FETCHED)
    warn = [e for e in b.events if e.properties["field"] == "warningMessage"]
    assert [e.properties["lines"] for e in warn] == [1]
    # "" means none.
    b = hko_rhrread.parse(variant(typhoon, warningMessage="", tcmessage=""), FETCHED)
    assert b.events == []
    # uvindex "" at night -> no UV, no skip; a list -> skipped, counted.
    b = hko_rhrread.parse(variant(typhoon, uvindex=""), FETCHED)
    assert not [o for o in b.observation_list() if o.metric == "uv_index"] and b.skipped == 0
    b = hko_rhrread.parse(variant(typhoon, uvindex=[1, 2]), FETCHED)
    assert b.skipped == 1
    # A message field with numbers inside is an unexpected shape: skipped.
    b = hko_rhrread.parse(variant(typhoon, tcmessage=[1]), FETCHED)
    assert b.skipped == 1 and all(e.properties["field"] != "tcmessage" for e in b.events)


def test_bad_records_are_skipped_and_counted(typhoon: dict[str, Any]) -> None:
    doc = json.loads(json.dumps(typhoon))
    temps = doc["temperature"]["data"]
    temps.append(dict(temps[0]))  # duplicate station
    temps.append({"place": "京士柏x", "value": 99, "unit": "C"})  # out of range
    temps.append({"place": "赤柱", "value": "warm", "unit": "C"})  # not a number
    temps.append({"place": "x" * 5000, "value": 20, "unit": "C"})  # entity attack
    temps.append({"place": "a\x00b", "value": 20, "unit": "C"})
    temps.append({"place": "赤柱", "value": 20, "unit": "F"})
    temps.append("nonsense")
    temps.append({"place": "新氣象站", "value": 21, "unit": "C"})  # unknown: kept
    doc["rainfall"]["data"][0]["main"] = "TRUE"
    doc["rainfall"]["data"][1]["max"] = -4
    doc["humidity"]["data"][0]["value"] = 140
    b = hko_rhrread.parse(dump(doc), FETCHED)
    assert b.skipped == 10, b.notes
    new = next(e for e in b.entities if e.name_zh == "新氣象站")
    assert new.id == "hko-station:新氣象站" and new.lat is None and new.properties["unlisted"]
    assert all(len(e.id) < 100 for e in b.entities)


def test_record_flood_is_capped(typhoon: dict[str, Any]) -> None:
    doc = json.loads(json.dumps(typhoon))
    doc["temperature"]["data"] = [
        {"place": f"Station {i}", "value": 20, "unit": "C"} for i in range(1000)
    ]
    b = hko_rhrread.parse(dump(doc), FETCHED)
    temps = [o for o in b.observation_list() if o.metric == "temperature_c"]
    assert len(temps) == hko_rhrread.MAX_RECORDS and b.skipped == 1000 - hko_rhrread.MAX_RECORDS


def test_section_level_problems(typhoon: dict[str, Any]) -> None:
    doc = json.loads(json.dumps(typhoon))
    doc["temperature"]["recordTime"] = "yesterday"
    b = hko_rhrread.parse(dump(doc), FETCHED)
    assert not [o for o in b.observation_list() if o.metric == "temperature_c"]
    assert b.skipped == len(typhoon["temperature"]["data"])
    b = hko_rhrread.parse(variant(typhoon, humidity="", rainfall=[1]), FETCHED)
    assert b.skipped == 1  # rainfall: unexpected shape; humidity "" is just absent


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty-payload"),
        (b"   \n", "empty-payload"),
        (b"<!DOCTYPE html><html><body>503 Service Unavailable</body></html>", "html-error-page"),
        (b'{"rainfall": {"data": [', "malformed-json"),
        (b"[1, 2, 3]", "unexpected-shape"),
        (b'"just a string"', "unexpected-shape"),
        (b"{}", "missing-field"),
        (b'{"updateTime": "2025-07-20T16:11:00+08:00", "icon": [50]}', "missing-field"),
        (b"\xff\xfe{\x00}", "malformed-json"),
    ],
)
def test_bad_payloads(payload: bytes, reason: str) -> None:
    with pytest.raises(FeedError) as err:
        hko_rhrread.parse(payload, FETCHED)
    assert err.value.reason == reason


@pytest.mark.parametrize(
    "bad", [None, "", "2025-13-40T00:00:00+08:00", 12, "0001-01-01T00:00:00+08:00", "x" * 99]
)
def test_bad_update_time(typhoon: dict[str, Any], bad: Any) -> None:
    with pytest.raises(FeedError) as err:
        hko_rhrread.parse(variant(typhoon, updateTime=bad), FETCHED)
    assert err.value.reason == "bad-timestamp"


def test_bom_and_truncation(files: list[Path]) -> None:
    raw = files[0].read_bytes()
    assert hko_rhrread.parse(b"\xef\xbb\xbf" + raw, FETCHED).n_observations == (
        hko_rhrread.parse(raw, FETCHED).n_observations
    )
    for cut in (1, len(raw) // 3, len(raw) - 1):
        with pytest.raises(FeedError):
            hko_rhrread.parse(raw[:cut], FETCHED)


def test_same_payload_same_batch(files: list[Path]) -> None:
    raw = files[5].read_bytes()
    a, b = hko_rhrread.parse(raw, FETCHED), hko_rhrread.parse(raw, FETCHED)
    assert a.observations.equals(b.observations) and a.payload_sha256 == b.payload_sha256
    assert [e.id for e in a.events] == [e.id for e in b.events]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_fuzz_mutated_real_sample(files: list[Path], data: st.DataObject) -> None:
    sample = files[data.draw(st.integers(0, len(files) - 1))].read_bytes()
    payload = data.draw(mutated(sample))
    check_contract(hko_rhrread.parse, payload, also_allowed={0.0, 1.0})
