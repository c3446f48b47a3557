"""Alert rules fire and clear on crafted sequences (AQHI, rainstorm and typhoon warnings through
the real warnsum parser, link speed below X for Y minutes, flood levels, detections), with one
open alert per rule and entity, and survive a restart."""

from __future__ import annotations

import email.utils
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from lxml import etree

from citypulse.alerts.engine import ALERT_KIND, AlertEngine
from citypulse.alerts.rules import RuleSet, parse_rules
from citypulse.feeds.registry import get_feed
from citypulse.model import Event
from citypulse.store.duckdb import DuckDBStore

from .conftest import RecordingBus
from .support import T0, Clock, flood_sensor, link, obs_batch, station

H = timedelta(hours=1)
M = timedelta(minutes=1)


def alerts(store: DuckDBStore, rule: str | None = None) -> list[Event]:
    found = store.events(T0 - timedelta(days=3650), T0 + timedelta(days=3650), kind=ALERT_KIND)
    return [a for a in found if rule is None or a.properties["rule_id"] == rule]


# --- AQHI -------------------------------------------------------------------------------------


def test_aqhi_fires_once_and_clears(engine: AlertEngine, store: DuckDBStore,
                                    bus: RecordingBus) -> None:
    st, other = station("central"), station("eastern")
    assert engine.process_batch(
        obs_batch([(st.id, "aqhi", T0, 5), (other.id, "aqhi", T0, 3)], entities=[st, other])
    ) == []
    fired = engine.process_batch(obs_batch([(st.id, "aqhi", T0 + H, 7)]))
    assert [c.action for c in fired] == ["fired"]
    # The next poll repeats known hours and rises further: still one open alert.
    again = obs_batch([(st.id, "aqhi", T0, 5), (st.id, "aqhi", T0 + H, 7),
                       (st.id, "aqhi", T0 + 2 * H, 9), (other.id, "aqhi", T0 + 2 * H, 4)])
    assert engine.process_batch(again) == []
    assert len(engine.open_alerts()) == 1
    cleared = engine.process_batch(obs_batch([(st.id, "aqhi", T0 + 3 * H, 6)]))
    assert [c.action for c in cleared] == ["cleared"]

    (alert,) = alerts(store, "aqhi-high")
    assert alert.kind == "alert" and alert.severity == "high"
    assert alert.starts_at == T0 + H and alert.ends_at == T0 + 3 * H
    assert alert.entity_ids == (st.id,) and alert.districts == ("Central and Western",)
    assert alert.properties["value"] == 7 and alert.properties["threshold"] == 7
    assert alert.properties["cleared_value"] == 6
    assert "Central station" in (alert.title_en or "") and "central站" in (alert.title_zh or "")
    assert bus.actions() == [("fired", "aqhi-high"), ("cleared", "aqhi-high")]

    # Above the threshold again later: a new alert.
    engine.process_batch(obs_batch([(st.id, "aqhi", T0 + 4 * H, 8)]))
    assert len(alerts(store, "aqhi-high")) == 2 and len(engine.open_alerts()) == 1


def test_aqhi_values_in_one_batch_are_taken_in_time_order(engine: AlertEngine,
                                                          store: DuckDBStore) -> None:
    st = station()
    # Out of order in the payload: 10:00=8, 08:00=3, 09:00=7, 11:00=2.
    rows = [(st.id, "aqhi", T0 + 2 * H, 8), (st.id, "aqhi", T0, 3),
            (st.id, "aqhi", T0 + H, 7), (st.id, "aqhi", T0 + 3 * H, 2)]
    engine.process_batch(obs_batch(rows, entities=[st]))
    (alert,) = alerts(store)
    assert (alert.starts_at, alert.ends_at) == (T0 + H, T0 + 3 * H)


def test_scope_by_entity_kind(engine: AlertEngine, store: DuckDBStore) -> None:
    not_a_station = station("x")
    not_a_station = type(not_a_station)(not_a_station.id, "weather-station")
    engine.process_batch(obs_batch([(not_a_station.id, "aqhi", T0, 10)],
                                   entities=[not_a_station]))
    assert alerts(store) == []


def test_aqhi_through_the_real_parser(feeds_dir: Path, engine: AlertEngine,
                                      store: DuckDBStore) -> None:
    path = next(iter(sorted((feeds_dir / "epd-aqhi").glob("*.xml"))), None)
    if path is None:
        pytest.skip("no epd-aqhi capture")
    root = etree.fromstring(path.read_bytes())
    items = root.findall("item")
    name = items[0].findtext("StationName")
    mine = sorted(
        (i for i in items if i.findtext("StationName") == name),
        key=lambda i: email.utils.parsedate_to_datetime(i.findtext("DateTime") or ""),
    )
    assert all(int(i.findtext("aqhi") or "0") < 7 for i in items)  # the capture is a clean day
    for item, value in zip(mine[2:5], ("7", "8", "10+"), strict=True):
        item.find("aqhi").text = value  # type: ignore[union-attr]
    start = email.utils.parsedate_to_datetime(mine[2].findtext("DateTime") or "")
    end = email.utils.parsedate_to_datetime(mine[5].findtext("DateTime") or "")
    payload = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    spec = get_feed("epd-aqhi")
    at = datetime.now(UTC)
    engine.process_batch(spec.parse(payload, at))
    engine.process_batch(spec.parse(payload, at + H))  # the next poll repeats the same hours
    (alert,) = alerts(store)
    assert alert.starts_at == start.astimezone(UTC) and alert.ends_at == end.astimezone(UTC)
    assert alert.properties["value"] == 7


# --- rainstorm and typhoon warnings (real warnsum parser) -------------------------------------

WARNSUM = get_feed("hko-warnsum")


def warnsum(clock: Clock, *entries: tuple[str, str, str, str]) -> Any:
    """A warnsum payload: (family, code, issued HH:MM HKT on 2025-08-08, action)."""
    doc = {
        family: {
            "name": family, "code": code, "actionCode": action,
            "issueTime": f"2025-08-08T{issued}:00+08:00",
            "updateTime": f"2025-08-08T{issued}:00+08:00",
        }
        for family, code, issued, action in entries
    }
    return WARNSUM.parse(orjson.dumps(doc), clock())


def test_rainstorm_amber_red_black_and_end(engine: AlertEngine, store: DuckDBStore,
                                           bus: RecordingBus, clock: Clock) -> None:
    clock.at = datetime(2025, 8, 8, 2, 10, tzinfo=UTC)  # 10:10 HKT
    amber = ("WRAIN", "WRAINA", "10:05", "ISSUE")
    assert [c.action for c in engine.process_batch(warnsum(clock, amber))] == ["fired"]
    clock.advance(minutes=2)
    assert engine.process_batch(warnsum(clock, amber)) == []  # re-poll: no duplicate
    clock.advance(minutes=30)
    red = ("WRAIN", "WRAINR", "10:40", "ISSUE")
    changes = engine.process_batch(warnsum(clock, red))
    assert sorted(c.action for c in changes) == ["cleared", "fired"]
    clock.advance(minutes=60)
    black = ("WRAIN", "WRAINB", "11:40", "ISSUE")
    engine.process_batch(warnsum(clock, black))
    clock.advance(minutes=60)
    ended = engine.process_batch(warnsum(clock))  # {}: nothing in force any more
    assert [c.action for c in ended] == ["cleared"]
    engine.process_batch(warnsum(clock))
    assert engine.open_alerts() == []

    found = {a.properties["value"]: a for a in alerts(store, "rainstorm-warning")}
    assert set(found) == {"WRAINA", "WRAINR", "WRAINB"}
    assert [found[c].severity for c in ("WRAINA", "WRAINR", "WRAINB")] == [
        "moderate", "high", "severe"]
    hkt = timedelta(hours=8)
    assert found["WRAINA"].starts_at == datetime(2025, 8, 8, 10, 5, tzinfo=UTC) - hkt
    assert found["WRAINA"].ends_at == datetime(2025, 8, 8, 2, 42, tzinfo=UTC)  # red's poll
    assert found["WRAINB"].ends_at == datetime(2025, 8, 8, 4, 42, tzinfo=UTC)
    assert "Black Rainstorm" in (found["WRAINB"].title_en or "")
    assert "黑色暴雨" in (found["WRAINB"].title_zh or "")
    assert bus.actions().count(("fired", "rainstorm-warning")) == 3


def test_cancelled_warning_clears_and_is_not_raised_again(engine: AlertEngine,
                                                          store: DuckDBStore,
                                                          clock: Clock) -> None:
    clock.at = datetime(2025, 8, 8, 3, 0, tzinfo=UTC)
    engine.process_batch(warnsum(clock, ("WRAIN", "WRAINR", "10:50", "ISSUE")))
    clock.advance(minutes=20)
    cancel = ("WRAIN", "WRAINR", "10:50", "CANCEL")
    batch = warnsum(clock, cancel)
    assert [c.action for c in engine.process_batch(batch)] == ["cleared"]
    for _ in range(3):  # warnsum keeps listing the cancelled signal for a while
        clock.advance(minutes=2)
        assert engine.process_batch(warnsum(clock, cancel)) == []
    (alert,) = alerts(store)
    assert alert.ends_at is not None and alert.ends_at <= clock()


def test_typhoon_signal_8_and_above(engine: AlertEngine, store: DuckDBStore,
                                    clock: Clock) -> None:
    clock.at = datetime(2025, 8, 8, 0, 30, tzinfo=UTC)
    assert engine.process_batch(warnsum(clock, ("WTCSGNL", "TC3", "08:20", "ISSUE"))) == []
    clock.advance(hours=1)
    assert [c.action for c in engine.process_batch(
        warnsum(clock, ("WTCSGNL", "TC8NE", "09:20", "ISSUE")))] == ["fired"]
    clock.advance(hours=2)
    escalation = engine.process_batch(warnsum(clock, ("WTCSGNL", "TC9", "11:20", "ISSUE")))
    assert sorted((c.action, c.alert.properties["value"]) for c in escalation) == [
        ("cleared", "TC8NE"), ("fired", "TC9")]
    clock.advance(hours=2)
    engine.process_batch(warnsum(clock, ("WTCSGNL", "TC3", "13:20", "ISSUE")))
    assert engine.open_alerts() == []
    severities = {a.properties["value"]: a.severity for a in alerts(store, "tropical-cyclone-8")}
    assert severities == {"TC8NE": "high", "TC9": "severe"}


# --- link speed below X for Y minutes ---------------------------------------------------------


def test_speed_below_15_for_10_minutes(engine: AlertEngine, store: DuckDBStore) -> None:
    a, seg = link("1-2"), link("3-4", kind="road-segment")
    engine.process_batch(obs_batch([], entities=[a, seg], fetched_at=T0))
    for minutes, speed in ((0, 12), (4, 10), (8, 14)):
        assert engine.process_batch(obs_batch([(a.id, "speed_kmh", T0 + minutes * M, speed),
                                               (seg.id, "speed_kmh", T0 + minutes * M, 5)])) == []
    # A 17 km/h reading breaks the streak; it starts again at 14 min.
    for minutes, speed in ((10, 17), (14, 11), (20, 13)):
        assert engine.process_batch(obs_batch([(a.id, "speed_kmh", T0 + minutes * M, speed)])) == []
    fired = engine.process_batch(obs_batch([(a.id, "speed_kmh", T0 + 24 * M, 9)]))
    assert [c.action for c in fired] == ["fired"]
    assert fired[0].alert.starts_at == T0 + 24 * M
    assert fired[0].alert.properties["since"] == (T0 + 14 * M).isoformat()
    # Hysteresis: clears only at 20 km/h or more.
    assert engine.process_batch(obs_batch([(a.id, "speed_kmh", T0 + 26 * M, 18)])) == []
    cleared = engine.process_batch(obs_batch([(a.id, "speed_kmh", T0 + 28 * M, 25)]))
    assert [c.action for c in cleared] == ["cleared"]
    (alert,) = alerts(store)
    assert alert.entity_ids == (a.id,) and alert.ends_at == T0 + 28 * M  # not the segment


def test_speed_timer_fires_when_the_feed_goes_quiet(engine: AlertEngine, store: DuckDBStore,
                                                    clock: Clock) -> None:
    a = link("5-6")
    clock.at = T0
    engine.process_batch(obs_batch([(a.id, "speed_kmh", T0, 8)], entities=[a]))
    engine.process_batch(obs_batch([(a.id, "speed_kmh", T0 + 6 * M, 7)]))
    assert engine.tick(T0 + 9 * M) == []  # not 10 minutes yet
    fired = engine.tick(T0 + 11 * M)
    assert [c.action for c in fired] == ["fired"]
    assert fired[0].alert.starts_at == T0 + 10 * M
    assert engine.tick(T0 + 12 * M) == []
    # Stale data (a replay of old files) never fires from the timer.
    b = link("7-8")
    engine.process_batch(obs_batch([(b.id, "speed_kmh", T0 - 30 * 24 * H, 3)], entities=[b]))
    assert engine.tick(T0 + 13 * M) == []


def test_speed_over_real_speedmap_captures(feeds_dir: Path, engine: AlertEngine,
                                           store: DuckDBStore, rules: RuleSet) -> None:
    files = sorted((feeds_dir / "td-speedmap").glob("speedmap_*.xml"))
    if len(files) < 3:
        pytest.skip("not enough td-speedmap captures")
    spec = get_feed("td-speedmap")
    for path in files:
        engine.process_batch(spec.parse(path.read_bytes(), datetime.now(UTC)))

    # Independently from the XML: per link, time-ordered speeds; fire once below 15 for
    # >= 10 minutes, clear at >= 20.
    series: dict[str, dict[datetime, int]] = defaultdict(dict)
    for path in files:
        for rec in etree.fromstring(path.read_bytes()).iter("{*}jtis_speedmap"):
            fields = {etree.QName(c).localname: (c.text or "").strip() for c in rec}
            ts = datetime.fromisoformat(fields["CAPTURE_DATE"]).replace(
                tzinfo=UTC) - timedelta(hours=8)
            series[fields["LINK_ID"]].setdefault(ts, int(fields["TRAFFIC_SPEED"]))
    expected = set()
    for lid, points in series.items():
        since = opened = None
        for ts in sorted(points):
            speed = points[ts]
            if opened is not None:
                if speed >= 20:
                    expected.add((f"td-link:{lid}", opened, ts))
                    opened = None
                continue
            if speed < 15:
                since = since or ts
                if ts - since >= timedelta(minutes=10):
                    opened, since = ts, None
            else:
                since = None
        if opened is not None:
            expected.add((f"td-link:{lid}", opened, None))
    got = {(a.entity_ids[0], a.starts_at, a.ends_at) for a in alerts(store, "road-link-slow")}
    assert expected, "the captures hold slow links"
    assert got == expected


# --- flood sensors and detections -------------------------------------------------------------


def test_flood_level_uses_the_device_threshold(engine: AlertEngine, store: DuckDBStore) -> None:
    low, default = flood_sensor("a", level=120), flood_sensor("b")
    other = type(low)("sensor:c", "sensor", properties={"sensor_type": "weather"})
    rows = [(low.id, "water_level_cm", T0, 125), (default.id, "water_level_cm", T0, 125),
            (other.id, "water_level_cm", T0, 500)]
    fired = engine.process_batch(obs_batch(rows, entities=[low, default, other]))
    assert [c.alert.entity_ids for c in fired] == [(low.id,)]
    assert fired[0].alert.properties["threshold"] == 120
    engine.process_batch(obs_batch([(default.id, "water_level_cm", T0 + M, 151)]))
    # Clears 10 cm under the alert level, not at it.
    assert engine.process_batch(obs_batch([(low.id, "water_level_cm", T0 + 2 * M, 115)])) == []
    cleared = engine.process_batch(obs_batch([(low.id, "water_level_cm", T0 + 3 * M, 109)]))
    assert [(c.action, c.alert.entity_ids) for c in cleared] == [("cleared", (low.id,))]
    assert {a.entity_ids[0] for a in alerts(store, "flood-level")} == {low.id, default.id}


def test_flood_entity_known_only_from_the_store(engine: AlertEngine, store: DuckDBStore) -> None:
    sensor = flood_sensor("d", level=100)
    store.upsert_entities([sensor])
    fired = engine.process_batch(obs_batch([(sensor.id, "water_level_cm", T0, 101)]))
    assert len(fired) == 1


def detection(device: str, at: datetime, what: str = "illegal-dumping",
              confidence: float = 0.9) -> Event:
    return Event(
        id=f"smart-village:{device}:{what}:{at:%Y%m%dT%H%M%S}", kind="detection",
        severity="moderate", starts_at=at, ends_at=at, title_en=f"{what} detected",
        title_zh="偵測", entity_ids=(f"sensor:{device}",), source="smart-village",
        properties={"detection": what, "confidence": confidence, "device_id": device},
    )


def test_dumping_detection_opens_an_alert_that_expires(engine: AlertEngine, store: DuckDBStore,
                                                       clock: Clock) -> None:
    clock.at = T0
    events = [detection("cam1", T0), detection("cam2", T0, confidence=0.4),
              detection("cam3", T0, what="wild-animal")]
    fired = engine.process_batch(obs_batch([], events=events, feed_id="smart-village",
                                           fetched_at=T0))
    assert [(c.action, c.alert.entity_ids) for c in fired] == [("fired", ("sensor:cam1",))]
    assert engine.process_batch(obs_batch([], events=events[:1], fetched_at=T0 + M)) == []
    assert engine.tick(T0 + 59 * M) == []
    cleared = engine.tick(T0 + 61 * M)
    assert [c.action for c in cleared] == ["cleared"]
    (alert,) = alerts(store)
    assert alert.ends_at == T0 + 60 * M and alert.properties["confidence"] == 0.9


def test_old_events_are_recorded_not_notified(engine: AlertEngine, store: DuckDBStore,
                                              bus: RecordingBus, clock: Clock) -> None:
    clock.at = T0 + timedelta(days=10)
    changes = engine.process_batch(obs_batch([], events=[detection("cam9", T0)], fetched_at=T0))
    assert [c.action for c in changes] == ["recorded", "recorded"]
    (alert,) = alerts(store)
    assert alert.ends_at == T0 + 60 * M and alert.properties["notified"] is False


# --- restart and de-duplication across processes ----------------------------------------------


def test_restart_keeps_one_open_alert(store: DuckDBStore, rules: RuleSet, clock: Clock) -> None:
    st = station()
    first = AlertEngine(store, None, rules, clock=clock)
    first.load_open()
    first.process_batch(obs_batch([(st.id, "aqhi", T0, 8)], entities=[st]))
    clock.at = datetime(2025, 8, 8, 2, 10, tzinfo=UTC)
    first.process_batch(warnsum(clock, ("WRAIN", "WRAINA", "10:05", "ISSUE")))

    second = AlertEngine(store, None, rules, clock=clock)
    assert second.load_open() == 2
    assert second.process_batch(obs_batch([(st.id, "aqhi", T0 + H, 9)], entities=[st])) == []
    assert second.process_batch(warnsum(clock, ("WRAIN", "WRAINA", "10:05", "ISSUE"))) == []
    cleared = second.process_batch(obs_batch([(st.id, "aqhi", T0 + 2 * H, 3)]))
    assert [c.action for c in cleared] == ["cleared"]
    clock.advance(minutes=30)
    assert [c.action for c in second.process_batch(warnsum(clock))] == ["cleared"]
    assert len(alerts(store)) == 2 and all(a.ends_at for a in alerts(store))


def test_alerts_of_removed_rules_are_closed_at_load(store: DuckDBStore, rules: RuleSet,
                                                    clock: Clock) -> None:
    st = station()
    AlertEngine(store, None, rules, clock=clock).process_batch(
        obs_batch([(st.id, "aqhi", T0, 8)], entities=[st]))
    only_flood = parse_rules(
        "rules:\n - {id: f, title_en: F, title_zh: F, "
        "metric: {metric: water_level_cm, op: '>', value: 1}}"
    )
    engine = AlertEngine(store, None, only_flood, clock=clock)
    assert engine.load_open() == 0
    (alert,) = alerts(store)
    assert alert.ends_at is not None and alert.properties["cleared_reason"] == "rule-removed"


def test_store_failure_does_not_break_evaluation(rules: RuleSet, clock: Clock,
                                                 store: DuckDBStore) -> None:
    class Broken:
        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        def append(self, batch: Any) -> Any:
            raise OSError("disk full")

    engine = AlertEngine(Broken(), None, rules, clock=clock)  # type: ignore[arg-type]
    st = station()
    assert len(engine.process_batch(obs_batch([(st.id, "aqhi", T0, 8)], entities=[st]))) == 1
    assert engine.stats()["store_errors"] == 1 and engine.stats()["open"] == 1
