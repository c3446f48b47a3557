"""Behaviour every TimeSeriesStore must have (runs once per backend, see conftest.py).

Expected values are computed by hand or by a plain-Python model in the test, never read back
from the store under test.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from citypulse.model import OBSERVATION_SCHEMA, Batch, Entity, Event, ObservationBuilder
from citypulse.store.base import (
    AppendResult,
    FeedHealth,
    PayloadRecord,
    TimeSeriesStore,
)

from .conftest import StoreFactory

T0 = datetime(2024, 3, 1, 0, 0, tzinfo=UTC)
HKT = timezone(timedelta(hours=8))
MINUTE = timedelta(minutes=1)

Row = tuple[str, str, datetime, float | None, str | None]


def make_batch(
    payload: bytes,
    rows: Sequence[Row] = (),
    *,
    feed_id: str = "test-feed",
    fetched_at: datetime = T0,
    entities: Sequence[Entity] = (),
    events: Sequence[Event] = (),
) -> Batch:
    builder = ObservationBuilder()
    for entity_id, metric, ts, value, label in rows:
        builder.add(entity_id, metric, ts, value, label)
    return Batch.build(
        feed_id, payload, fetched_at, entities=entities, observations=builder, events=events
    )


def minutes(entity_id: str, start: int, stop: int, value: float = 0.0) -> list[Row]:
    """Rows at T0 + start..stop-1 minutes, value = value + minute index."""
    return [(entity_id, "speed_kmh", T0 + i * MINUTE, value + i, None) for i in range(start, stop)]


def raw(store: TimeSeriesStore, entity_id: str, metric: str = "speed_kmh") -> list[Any]:
    """Every stored observation of one entity, via 1-microsecond buckets."""
    return [
        (p.ts, p.avg, p.n)
        for p in store.series(
            entity_id,
            metric,
            T0 - timedelta(days=1),
            T0 + timedelta(days=2),
            timedelta(microseconds=1),
        )
    ]


def snapshot(store: TimeSeriesStore, entity_ids: Sequence[str]) -> Any:
    return (
        store.count_observations(),
        [raw(store, e) for e in entity_ids],
        store.latest("speed_kmh"),
        store.entities(),
        store.events(T0 - timedelta(days=1), T0 + timedelta(days=2)),
        store.payloads(),
    )


def assert_utc(ts: datetime | None) -> None:
    assert ts is not None
    assert ts.tzinfo is not None
    assert ts.utcoffset() == timedelta(0)


LINKS = [
    Entity("td-link:1", "td-link", "Link 1", "路段一", 22.3, 114.17, "central_western"),
    Entity("td-link:2", "td-link", "Link 2", "路段二", 22.31, 114.18, "wan_chai"),
]
STATION = Entity("hko-station:HKO", "hko-station", "Observatory", "天文台", 22.30, 114.17)


# -- append: idempotence, overlap, latest ---------------------------------------------------


def test_same_batch_twice_changes_nothing(store: TimeSeriesStore) -> None:
    batch = make_batch(
        b"payload-1",
        minutes("td-link:1", 0, 10) + minutes("td-link:2", 0, 10, 50.0),
        entities=LINKS,
        events=[Event("ev-1", "traffic", "info", T0, title_en="Road works")],
    )
    first = store.append(batch)
    assert first == AppendResult(
        "test-feed",
        batch.payload_sha256,
        observations_written=20,
        entities_upserted=2,
        events_written=1,
        duplicate=False,
    )
    before = snapshot(store, ["td-link:1", "td-link:2"])
    second = store.append(batch)
    assert second.duplicate is True
    assert (second.observations_written, second.entities_upserted, second.events_written) == (
        0,
        0,
        0,
    )
    assert snapshot(store, ["td-link:1", "td-link:2"]) == before
    assert store.count_observations() == 20
    assert [p.status for p in store.payloads()] == ["stored"]


def test_overlapping_batches_store_each_observation_once(store: TimeSeriesStore) -> None:
    a = store.append(make_batch(b"a", minutes("td-link:1", 0, 10)))
    # Different bytes (new sha), minutes 5..14: 5 already stored (other values: first wins).
    b = store.append(make_batch(b"b", minutes("td-link:1", 5, 15, value=1000.0)))
    assert (a.observations_written, b.observations_written) == (10, 5)
    assert not b.duplicate
    assert store.count_observations() == 15
    stored = raw(store, "td-link:1")
    assert [ts for ts, _, _ in stored] == [T0 + i * MINUTE for i in range(15)]
    assert [v for _, v, _ in stored] == [float(i) for i in range(10)] + [
        1000.0 + i for i in range(10, 15)
    ]
    assert all(n == 1 for _, _, n in stored)


def test_duplicates_inside_one_batch_first_wins(store: TimeSeriesStore) -> None:
    rows: list[Row] = [
        ("td-link:1", "speed_kmh", T0, 10.0, "a"),
        ("td-link:1", "speed_kmh", T0 + MINUTE, 11.0, None),
        ("td-link:1", "speed_kmh", T0, 99.0, "b"),
        ("td-link:1", "speed_kmh", T0 + MINUTE, 98.0, None),
    ]
    result = store.append(make_batch(b"dups", rows))
    assert result.observations_written == 2
    assert raw(store, "td-link:1") == [(T0, 10.0, 1), (T0 + MINUTE, 11.0, 1)]
    [latest] = store.latest("speed_kmh")
    assert (latest.ts, latest.value) == (T0 + MINUTE, 11.0)


def test_latest_keeps_newest_even_if_older_batch_arrives_later(store: TimeSeriesStore) -> None:
    store.append(make_batch(b"new", minutes("td-link:1", 10, 12, value=100.0)))
    store.append(make_batch(b"old", minutes("td-link:1", 0, 5) + minutes("td-link:2", 0, 3)))
    latest = {v.entity_id: v for v in store.latest("speed_kmh")}
    assert (latest["td-link:1"].ts, latest["td-link:1"].value) == (T0 + 11 * MINUTE, 111.0)
    assert (latest["td-link:2"].ts, latest["td-link:2"].value) == (T0 + 2 * MINUTE, 2.0)
    # A re-delivered newest ts with another value is not stored, so latest keeps the stored one.
    store.append(make_batch(b"again", [("td-link:1", "speed_kmh", T0 + 11 * MINUTE, -1.0, "x")]))
    [one] = store.latest("speed_kmh", entity_ids=["td-link:1"])
    assert (one.ts, one.value, one.label) == (T0 + 11 * MINUTE, 111.0, None)
    # And a newer one moves it forward.
    store.append(make_batch(b"newer", [("td-link:1", "speed_kmh", T0 + 20 * MINUTE, 5.0, "ok")]))
    [one] = store.latest("speed_kmh", entity_ids=["td-link:1"])
    assert (one.ts, one.value, one.label) == (T0 + 20 * MINUTE, 5.0, "ok")


def test_random_order_of_overlapping_batches_matches_model(store: TimeSeriesStore) -> None:
    rng = random.Random(20240301)
    entity_ids = ["e1", "e2", "e3"]
    batches: list[tuple[bytes, list[Row]]] = []
    for i in range(25):
        start = rng.randrange(0, 50)
        rows: list[Row] = [
            (e, "speed_kmh", T0 + m * MINUTE, float(rng.randrange(100)), None)
            for e in rng.sample(entity_ids, rng.randrange(1, 4))
            for m in range(start, start + rng.randrange(1, 12))
        ]
        batches.append((f"batch-{i}".encode(), rows))
    rng.shuffle(batches)
    expected: dict[tuple[str, datetime], float | None] = {}
    for payload, rows in batches:
        result = store.append(make_batch(payload, rows))
        new = 0
        for e, _, ts, value, _ in rows:
            if (e, ts) not in expected:
                expected[(e, ts)] = value
                new += 1
        assert result.observations_written == new
    assert store.count_observations() == len(expected)
    for e in entity_ids:
        want = sorted((ts, v) for (ee, ts), v in expected.items() if ee == e)
        assert [(ts, v) for ts, v, _ in raw(store, e)] == want
    latest = {v.entity_id: (v.ts, v.value) for v in store.latest("speed_kmh")}
    for e in entity_ids:
        newest = max(ts for (ee, ts) in expected if ee == e)
        assert latest[e] == (newest, expected[(e, newest)])


def test_large_batches(store: TimeSeriesStore) -> None:
    """Batches big enough for the bulk path (60 000 rows), with and without repeated keys."""
    entity_ids = [f"e{i:03}" for i in range(100)]
    first = [r for e in entity_ids for r in minutes(e, 0, 600)]
    assert store.append(make_batch(b"big-1", first)).observations_written == 60_000
    # Minutes 300..899 (300 new per entity) and one repeated key inside the batch.
    second = [r for e in entity_ids for r in minutes(e, 300, 900, value=1000.0)]
    second.append(("e000", "speed_kmh", T0 + 899 * MINUTE, -1.0, None))
    assert store.append(make_batch(b"big-2", second)).observations_written == 30_000
    assert store.count_observations() == 90_000
    stored = raw(store, "e000")
    assert len(stored) == 900
    assert stored[299][1] == 299.0 and stored[300][1] == 300.0 and stored[600][1] == 1600.0
    latest = store.latest("speed_kmh", entity_ids=["e000", "e099"])
    assert [(v.ts, v.value) for v in latest] == [(T0 + 899 * MINUTE, 1899.0)] * 2


def test_failed_append_writes_nothing(store: TimeSeriesStore) -> None:
    bad_event = Event("ev-bad", "traffic", None, T0)  # type: ignore[arg-type]
    batch = make_batch(b"bad", minutes("td-link:1", 0, 3), entities=LINKS, events=[bad_event])
    with pytest.raises(Exception):  # noqa: B017 - engine-specific constraint error
        store.append(batch)
    assert store.count_observations() == 0
    assert store.latest("speed_kmh") == []
    assert store.entities() == []
    assert not store.seen_payload(batch.payload_sha256)
    # The store still works afterwards, and the rolled-back entities are written next time.
    assert store.append(make_batch(b"good", minutes("td-link:1", 0, 3))).observations_written == 3
    assert store.upsert_entities(LINKS) == 2
    assert store.entities() == LINKS


def test_batch_without_observations(store: TimeSeriesStore) -> None:
    result = store.append(make_batch(b"events-only", events=[Event("w1", "warning", "amber", T0)]))
    assert (result.observations_written, result.events_written) == (0, 1)
    assert store.count_observations() == 0
    assert store.seen_payload(result.payload_sha256)


# -- latest ---------------------------------------------------------------------------------


def test_latest_filters(store: TimeSeriesStore) -> None:
    store.append(
        make_batch(
            b"mixed",
            minutes("td-link:1", 0, 2)
            + minutes("td-link:2", 0, 3)
            + [("hko-station:HKO", "speed_kmh", T0, 7.0, None)]
            + [("hko-station:HKO", "temperature_c", T0, 21.5, None)],
            entities=[*LINKS, STATION],
        )
    )
    assert [v.entity_id for v in store.latest("speed_kmh")] == [
        "hko-station:HKO",
        "td-link:1",
        "td-link:2",
    ]
    assert [v.entity_id for v in store.latest("speed_kmh", kind="td-link")] == [
        "td-link:1",
        "td-link:2",
    ]
    assert [v.entity_id for v in store.latest("speed_kmh", entity_ids=["td-link:2", "x"])] == [
        "td-link:2"
    ]
    assert store.latest("speed_kmh", entity_ids=[]) == []
    assert store.latest("speed_kmh", kind="td-link", entity_ids=["hko-station:HKO"]) == []
    [temp] = store.latest("temperature_c")
    assert (temp.entity_id, temp.metric, temp.value) == ("hko-station:HKO", "temperature_c", 21.5)
    assert store.latest("nothing") == []


# -- series and aggregate -------------------------------------------------------------------


def test_series_buckets(store: TimeSeriesStore) -> None:
    values = [10.0, 20.0, 30.0, None, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0]
    rows: list[Row] = [
        ("td-link:1", "speed_kmh", T0 + i * MINUTE, v, None) for i, v in enumerate(values)
    ]
    rows.append(("td-link:1", "speed_kmh", T0 + 30 * MINUTE, 5.0, None))  # lone, after a gap
    rows.append(("td-link:1", "volume_veh", T0, 1234.0, None))  # another metric
    rows.append(("td-link:2", "speed_kmh", T0, 1234.0, None))  # another entity
    store.append(make_batch(b"s", rows))

    points = store.series("td-link:1", "speed_kmh", T0, T0 + timedelta(hours=1), 5 * MINUTE)
    # minutes 0-4: 10,20,30,None,50 ; 5-9: 60..100 ; 30: 5 ; empty buckets omitted
    assert [p.ts for p in points] == [T0, T0 + 5 * MINUTE, T0 + 30 * MINUTE]
    assert [(p.avg, p.min, p.max, p.n) for p in points] == [
        (27.5, 10.0, 50.0, 5),
        (80.0, 60.0, 100.0, 5),
        (5.0, 5.0, 5.0, 1),
    ]
    # [start, end): minute 2 is in, minute 7 is out; buckets stay epoch-aligned.
    points = store.series("td-link:1", "speed_kmh", T0 + 2 * MINUTE, T0 + 7 * MINUTE, 5 * MINUTE)
    assert [(p.ts, p.avg, p.n) for p in points] == [
        (T0, 40.0, 3),
        (T0 + 5 * MINUTE, 65.0, 2),
    ]
    # Bounds given in Hong Kong time mean the same instants.
    hk = store.series(
        "td-link:1",
        "speed_kmh",
        (T0 + 2 * MINUTE).astimezone(HKT),
        (T0 + 7 * MINUTE).astimezone(HKT),
        5 * MINUTE,
    )
    assert hk == points


def test_series_buckets_are_epoch_aligned(store: TimeSeriesStore) -> None:
    # 7-minute buckets: epoch-aligned bucket starts are multiples of 420 s since 1970.
    rows = minutes("td-link:1", 0, 20)
    store.append(make_batch(b"epoch", rows))
    bucket = timedelta(minutes=7)
    points = store.series("td-link:1", "speed_kmh", T0, T0 + timedelta(hours=1), bucket)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    expected: dict[datetime, list[float]] = {}
    for _, _, ts, value, _ in rows:
        start = epoch + ((ts - epoch) // bucket) * bucket
        expected.setdefault(start, []).append(value or 0.0)
    assert [p.ts for p in points] == sorted(expected)
    for p in points:
        vals = expected[p.ts]
        assert (p.min, p.max, p.n) == (min(vals), max(vals), len(vals))
        assert p.avg == pytest.approx(sum(vals) / len(vals))
    # Hourly buckets of a day start on whole UTC hours.
    day = store.series("td-link:1", "speed_kmh", T0, T0 + timedelta(days=1), timedelta(days=1))
    assert [(p.ts, p.n) for p in day] == [(T0, 20)]


def test_series_rejects_bad_arguments(store: TimeSeriesStore) -> None:
    with pytest.raises(ValueError):
        store.series("x", "speed_kmh", T0, T0 + MINUTE, timedelta(0))
    with pytest.raises(ValueError):
        store.series("x", "speed_kmh", datetime(2024, 3, 1), T0 + MINUTE, MINUTE)


def test_aggregate_over_a_kind(store: TimeSeriesStore) -> None:
    rows: list[Row] = [
        ("td-link:1", "speed_kmh", T0, 10.0, None),
        ("td-link:1", "speed_kmh", T0 + MINUTE, 20.0, None),
        ("td-link:2", "speed_kmh", T0 + 2 * MINUTE, 60.0, None),
        ("td-link:2", "speed_kmh", T0 + 16 * MINUTE, 40.0, None),
        ("hko-station:HKO", "speed_kmh", T0, 1000.0, None),  # another kind
        ("td-link:1", "volume_veh", T0, 1000.0, None),  # another metric
    ]
    store.append(make_batch(b"agg", rows, entities=[*LINKS, STATION]))
    points = store.aggregate("td-link", "speed_kmh", T0, T0 + timedelta(hours=1), 15 * MINUTE)
    assert [(p.ts, p.avg, p.min, p.max, p.n, p.entities) for p in points] == [
        (T0, 30.0, 10.0, 60.0, 3, 2),
        (T0 + 15 * MINUTE, 40.0, 40.0, 40.0, 1, 1),
    ]
    assert store.aggregate("nothing", "speed_kmh", T0, T0 + MINUTE, MINUTE) == []


# -- events ---------------------------------------------------------------------------------


def _events() -> list[Event]:
    h = timedelta(hours=1)
    return [
        Event("closed", "traffic", "info", T0, T0 + h, title_en="Closed 0-1h"),
        Event("open", "warning", "amber", T0 + 2 * h, None, title_zh="黃雨"),
        Event(
            "later",
            "traffic",
            "major",
            T0 + 5 * h,
            T0 + 6 * h,
            entity_ids=("td-link:1", "td-link:2"),
            districts=("wan_chai",),
            source="td-news",
            properties={"lane": 2},
        ),
        Event("instant", "detection", "info", T0 + 3 * h, T0 + 3 * h),
    ]


def test_events_overlap(store: TimeSeriesStore) -> None:
    store.append(make_batch(b"ev", events=_events()))
    h = timedelta(hours=1)

    def ids(start: datetime, end: datetime, **kw: Any) -> list[str]:
        return [e.id for e in store.events(start, end, **kw)]

    assert ids(T0 - h, T0 + 10 * h) == ["closed", "open", "instant", "later"]
    assert ids(T0 + h, T0 + 2 * h) == []  # "closed" ends at the window start; "open" starts at end
    assert ids(T0 + 30 * MINUTE, T0 + 2 * h + MINUTE) == ["closed", "open"]
    assert ids(T0 + 100 * h, T0 + 101 * h) == ["open"]  # an open event overlaps the future
    assert ids(T0 + 3 * h, T0 + 4 * h) == ["open", "instant"]
    assert ids(T0 - h, T0 + 10 * h, kind="traffic") == ["closed", "later"]
    # active_only: no end, or ends after the window's end.
    assert ids(T0 - h, T0 + 30 * MINUTE, active_only=True) == ["closed"]
    assert ids(T0 - h, T0 + 10 * h, active_only=True) == ["open"]
    assert ids(T0 + 5 * h, T0 + 5 * h + MINUTE, active_only=True) == ["open", "later"]
    later = store.events(T0 + 5 * h, T0 + 6 * h, kind="traffic")[0]
    assert later == _events()[2]
    assert later.entity_ids == ("td-link:1", "td-link:2")
    assert later.properties == {"lane": 2}


def test_event_update_by_later_payload(store: TimeSeriesStore) -> None:
    start = T0 + timedelta(hours=2)
    opened = Event("rain", "warning", "amber", start, None, title_en="Amber")
    ended = Event("rain", "warning", "red", start, start + timedelta(hours=3), title_en="Red")
    store.append(make_batch(b"p1", events=[opened], fetched_at=T0 + timedelta(hours=2)))
    assert store.events(T0, T0 + timedelta(days=1), active_only=True) == [opened]
    result = store.append(make_batch(b"p2", events=[ended], fetched_at=T0 + timedelta(hours=5)))
    assert result.events_written == 1
    assert store.events(T0, T0 + timedelta(days=1)) == [ended]
    assert store.events(T0, T0 + timedelta(days=1), active_only=True) == []
    # Replaying the older payload (new bytes, same content) does not re-open the event.
    store.append(make_batch(b"p1-replay", events=[opened], fetched_at=T0 + timedelta(hours=2)))
    assert store.events(T0, T0 + timedelta(days=1)) == [ended]


# -- payloads, feed health ------------------------------------------------------------------


def test_quarantine_records(store: TimeSeriesStore) -> None:
    q = PayloadRecord("sha-q", "td-speedmap", T0, "quarantined", "xml_syntax", "/a/q.xml", 0)
    store.record_payload(q)
    assert store.seen_payload("sha-q")
    assert not store.seen_payload("sha-unknown")
    assert store.payloads(status="quarantined") == [q]
    assert store.payloads(feed_id="other") == []
    later = PayloadRecord("sha-l", "hko-rhrread", T0 + MINUTE, "quarantined", "json", None, 0)
    store.record_payload(later)
    assert [p.sha256 for p in store.payloads()] == ["sha-l", "sha-q"]  # newest first
    assert [p.sha256 for p in store.payloads(limit=1)] == ["sha-l"]
    assert [p.sha256 for p in store.payloads(feed_id="td-speedmap")] == ["sha-q"]
    with pytest.raises(ValueError):
        store.record_payload(PayloadRecord("sha-x", "f", T0, "weird", None, None, 0))


def test_stored_payload_is_never_downgraded(store: TimeSeriesStore) -> None:
    batch = make_batch(b"ok", minutes("td-link:1", 0, 4), feed_id="td-speedmap")
    # Quarantined first (e.g. by an older parser), then stored on re-try.
    store.record_payload(
        PayloadRecord(batch.payload_sha256, "td-speedmap", T0, "quarantined", "old", None, 0)
    )
    assert store.append(batch).observations_written == 4
    [stored] = store.payloads()
    assert (stored.status, stored.reason, stored.rows) == ("stored", None, 4)
    # A later "duplicate" record of the same bytes only adds the archive path.
    store.record_payload(
        PayloadRecord(
            batch.payload_sha256, "td-speedmap", T0 + MINUTE, "duplicate", None, "/archive/x.xml", 0
        )
    )
    [after] = store.payloads()
    assert (after.status, after.fetched_at, after.rows, after.archive_path) == (
        "stored",
        T0,
        4,
        "/archive/x.xml",
    )
    assert store.append(batch).duplicate


def test_feed_health(store: TimeSeriesStore) -> None:
    assert store.feed_health() == []
    store.record_fetch("td-speedmap", at=T0, ok=True, rows=600, data_ts=T0 - MINUTE)
    store.record_fetch("td-speedmap", at=T0 + MINUTE, ok=False, error="timeout")
    store.record_fetch("td-speedmap", at=T0 + 2 * MINUTE, ok=False, error="http_503")
    [h] = store.feed_health()
    assert h == FeedHealth(
        feed_id="td-speedmap",
        last_attempt=T0 + 2 * MINUTE,
        last_success=T0,
        last_error="http_503",
        last_error_at=T0 + 2 * MINUTE,
        consecutive_failures=2,
        last_rows=600,
        total_rows=600,
        last_data_ts=T0 - MINUTE,
    )
    store.record_fetch("td-speedmap", at=T0 + 3 * MINUTE, ok=True, rows=500, data_ts=T0)
    store.record_fetch("hko-rhrread", at=(T0 + 3 * MINUTE).astimezone(HKT), ok=False, error="x")
    health = {x.feed_id: x for x in store.feed_health()}
    h = health["td-speedmap"]
    assert (h.consecutive_failures, h.last_rows, h.total_rows) == (0, 500, 1100)
    assert (h.last_success, h.last_data_ts, h.last_error) == (T0 + 3 * MINUTE, T0, "http_503")
    other = health["hko-rhrread"]
    assert (other.consecutive_failures, other.last_success, other.last_attempt) == (
        1,
        None,
        T0 + 3 * MINUTE,
    )
    assert [x.feed_id for x in store.feed_health()] == ["hko-rhrread", "td-speedmap"]


# -- entities -------------------------------------------------------------------------------


def test_entities_upsert(store: TimeSeriesStore) -> None:
    first = Entity(
        "carpark:1",
        "carpark",
        "Car park",
        "停車場",
        22.28,
        114.15,
        "central_western",
        {"capacity": 300, "operator": "A"},
    )
    assert store.upsert_entities([first, STATION]) == 2
    assert store.entity("carpark:1") == first
    assert store.entity("nope") is None
    assert [e.id for e in store.entities()] == ["carpark:1", "hko-station:HKO"]
    assert store.entities(kind="carpark") == [first]
    # A feed that knows less does not erase; properties merge; given fields replace.
    partial = Entity(
        "carpark:1", "carpark", name_en="Car park (new)", properties={"operator": "B", "ev": True}
    )
    store.append(make_batch(b"ent", entities=[partial]))
    assert store.entity("carpark:1") == Entity(
        "carpark:1",
        "carpark",
        "Car park (new)",
        "停車場",
        22.28,
        114.15,
        "central_western",
        {"capacity": 300, "operator": "B", "ev": True},
    )
    # Duplicates in one call: the last one wins.
    store.upsert_entities([Entity("x", "k", "one"), Entity("x", "k", "two")])
    entity = store.entity("x")
    assert entity is not None and entity.name_en == "two"


# -- persistence, time zones, threads -------------------------------------------------------


def test_reopen_keeps_data(store_factory: StoreFactory) -> None:
    store = store_factory()
    store.append(
        make_batch(b"persist", minutes("td-link:1", 0, 5), entities=LINKS, events=_events())
    )
    store.record_fetch("f", at=T0, ok=True, rows=5)
    store.record_payload(PayloadRecord("q", "f", T0, "quarantined", "bad", None, 0))
    before = snapshot(store, ["td-link:1"])
    health = store.feed_health()
    store.close()
    again = store_factory()
    assert snapshot(again, ["td-link:1"]) == before
    assert again.feed_health() == health
    assert again.append(make_batch(b"persist", minutes("td-link:1", 0, 5))).duplicate


def test_all_timestamps_are_utc(store: TimeSeriesStore) -> None:
    hk_rows: list[Row] = [("td-link:1", "speed_kmh", (T0 + MINUTE).astimezone(HKT), 1.0, None)]
    store.append(
        make_batch(
            b"tz",
            hk_rows,
            entities=LINKS,
            fetched_at=T0.astimezone(HKT),
            events=[Event("e", "k", "s", T0.astimezone(HKT), (T0 + MINUTE).astimezone(HKT))],
        )
    )
    store.record_fetch("f", at=T0.astimezone(HKT), ok=False, error="x")
    store.record_fetch("f", at=T0.astimezone(HKT), ok=True, data_ts=T0.astimezone(HKT))
    [latest] = store.latest("speed_kmh")
    assert latest.ts == T0 + MINUTE
    stamps: list[datetime | None] = [latest.ts]
    stamps += [p.ts for p in store.series("td-link:1", "speed_kmh", T0, T0 + 5 * MINUTE, MINUTE)]
    stamps += [p.ts for p in store.aggregate("td-link", "speed_kmh", T0, T0 + 5 * MINUTE, MINUTE)]
    for e in store.events(T0, T0 + MINUTE):
        stamps += [e.starts_at, e.ends_at]
    stamps += [p.fetched_at for p in store.payloads()]
    for h in store.feed_health():
        stamps += [h.last_attempt, h.last_success, h.last_error_at, h.last_data_ts]
    assert len(stamps) == 10
    for ts in stamps:
        assert_utc(ts)
    with pytest.raises(ValueError):
        store.record_fetch("f", at=datetime(2024, 1, 1), ok=True)


def test_readers_and_a_writer_in_threads(store: TimeSeriesStore) -> None:
    """Two threads read while one appends: no errors, and each append is seen whole."""
    store.upsert_entities(LINKS)
    per_batch = 2 * 30
    n_batches = 15
    errors: list[BaseException] = []
    # One list per reader: counts only grow as seen by any one thread (a shared list could
    # interleave two readers' read-then-append steps and look out of order).
    seen_by_reader: list[list[int]] = [[], []]
    done = threading.Event()

    def writer() -> None:
        try:
            for i in range(n_batches):
                rows = minutes("td-link:1", i * 30, (i + 1) * 30) + minutes(
                    "td-link:2", i * 30, (i + 1) * 30
                )
                store.append(make_batch(f"w{i}".encode(), rows))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()

    def reader(seen_counts: list[int]) -> None:
        try:
            while not done.is_set():
                seen_counts.append(store.count_observations())
                store.latest("speed_kmh", kind="td-link")
                store.series("td-link:1", "speed_kmh", T0, T0 + timedelta(days=1), 5 * MINUTE)
                store.aggregate("td-link", "speed_kmh", T0, T0 + timedelta(days=1), 5 * MINUTE)
                store.events(T0, T0 + timedelta(days=1))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(seen,)) for seen in seen_by_reader]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert all(not t.is_alive() for t in threads)
    assert store.count_observations() == per_batch * n_batches
    for seen_counts in seen_by_reader:
        assert all(c % per_batch == 0 for c in seen_counts)  # never half a batch
        assert seen_counts == sorted(seen_counts)
    [l1, l2] = store.latest("speed_kmh")
    assert l1.ts == l2.ts == T0 + (n_batches * 30 - 1) * MINUTE


def test_observations_read_back_raw_rows_with_filters(store: TimeSeriesStore) -> None:
    rows = [
        *minutes("td-link:1", 0, 5, 40.0),
        *minutes("td-link:2", 0, 5, 60.0),
        ("hko-station:HKO", "temperature_c", T0 + 2 * MINUTE, 28.5, None),
    ]
    store.append(make_batch(b"obs", rows, entities=[*LINKS, STATION]))
    end = T0 + timedelta(hours=1)

    everything = store.observations(T0, end)
    assert everything.schema.equals(OBSERVATION_SCHEMA)
    assert everything.num_rows == 11
    ts = everything.column("ts").to_pylist()
    assert ts == sorted(ts)
    assert_utc(ts[0])

    links = store.observations(T0, end, kinds=["td-link"], metrics=["speed_kmh"])
    assert links.num_rows == 10
    one = store.observations(T0 + MINUTE, T0 + 3 * MINUTE, entity_ids=["td-link:2"])
    assert one.column("value").to_pylist() == [61.0, 62.0]  # [start, end): minute 3 excluded
    assert store.observations(T0, end, metrics=["temperature_c"]).column("value").to_pylist() == [
        28.5
    ]
    assert store.observations(T0, end, limit=3).num_rows == 3
    assert store.observations(T0, end, kinds=["nothing"]).num_rows == 0
