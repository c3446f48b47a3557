"""Grids, time-of-week arithmetic, the store's bulk frame and link metadata."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from citypulse.analytics.history import (
    STEP,
    epoch_s,
    grid_from_frame,
    hour_of_day,
    is_weekend,
    link_info,
    load_grid,
    nearest_district,
    week_bin,
)
from citypulse.feeds.td_detectors import reference
from citypulse.model import Batch, Entity, ObservationBuilder
from citypulse.store.duckdb import DuckDBStore

T0 = datetime(2024, 6, 2, 16, 0, tzinfo=UTC)  # Monday 2024-06-03 00:00 HKT


def frame(rows: list[tuple[str, datetime, float]], n: list[int] | None = None) -> pa.Table:
    cols = {
        "entity_id": pa.array([r[0] for r in rows], pa.string()),
        "ts": pa.array([r[1] for r in rows], pa.timestamp("us", tz="UTC")),
        "value": pa.array([r[2] for r in rows], pa.float64()),
    }
    if n is not None:
        cols["n"] = pa.array(n, pa.int64())
    return pa.table(cols)


def test_week_bins_are_hong_kong_time() -> None:
    step = int(STEP.total_seconds())
    assert int(week_bin(epoch_s(T0), step)) == 0
    assert int(week_bin(epoch_s(T0 - timedelta(minutes=5)), step)) == 7 * 288 - 1  # Sun 23:55
    assert int(week_bin(epoch_s(T0 + timedelta(hours=8, minutes=31)), step)) == 8 * 12 + 6
    t = np.array([epoch_s(T0 + timedelta(days=d, hours=9)) for d in range(7)])
    assert hour_of_day(t).tolist() == [9] * 7
    assert is_weekend(t).tolist() == [False] * 5 + [True] * 2


def test_grid_means_per_bin_and_drops_rows_outside() -> None:
    rows = [
        ("a", T0 + timedelta(minutes=0, seconds=16), 40.0),
        ("a", T0 + timedelta(minutes=2, seconds=16), 50.0),
        ("a", T0 + timedelta(minutes=4, seconds=16), 60.0),
        ("a", T0 + timedelta(minutes=6, seconds=16), 10.0),
        ("b", T0 + timedelta(minutes=12), 30.0),
        ("b", T0 - timedelta(minutes=1), 99.0),  # before the window
        ("b", T0 + timedelta(minutes=15), 99.0),  # at the (exclusive) end
    ]
    g = grid_from_frame(frame(rows), T0, T0 + timedelta(minutes=15))
    assert g.entity_ids == ("a", "b")
    assert g.n_bins == 3
    np.testing.assert_allclose(g.values[0], [50.0, 10.0, np.nan])
    np.testing.assert_allclose(g.values[1], [np.nan, np.nan, 30.0])
    assert g.last_bin_with_data() == 2


def test_grid_weights_bucketed_rows_and_pools_into_parents() -> None:
    rows = [("d:1:fast", T0, 80.0), ("d:1:slow", T0, 50.0), ("d:2:fast", T0, 70.0)]
    g = grid_from_frame(
        frame(rows, n=[3, 1, 2]),
        T0,
        T0 + STEP,
        parent={"d:1:fast": "d:1", "d:1:slow": "d:1", "d:2:fast": "d:2"},
    )
    assert g.entity_ids == ("d:1", "d:2")
    np.testing.assert_allclose(g.values[:, 0], [(80 * 3 + 50) / 4, 70.0])
    sub = g.rows(["d:2", "unknown"])
    assert sub.values[0, 0] == 70.0 and np.isnan(sub.values[1, 0])


def test_store_observations_frame_raw_bucketed_and_by_kind(tmp_path: object) -> None:
    store = DuckDBStore(":memory:")
    obs = ObservationBuilder()
    values = {"l1": [10.0, 20.0, 30.0, 40.0, 50.0], "x1": [1.0, 2.0, 3.0, 4.0, 5.0]}
    for eid, vals in values.items():
        for k, v in enumerate(vals):
            obs.add(eid, "speed_kmh", T0 + timedelta(minutes=2 * k), v)
    obs.add("l1", "speed_kmh", T0 + timedelta(minutes=20), None)  # nulls are left out
    obs.add("l1", "other", T0, 1.0)
    store.append(
        Batch.build(
            "t", b"p", T0, observations=obs,
            entities=[Entity("l1", "road-link"), Entity("x1", "other-kind")],
        )
    )
    raw = store.observations_frame("speed_kmh", None, T0, T0 + timedelta(hours=1))
    assert raw.column_names == ["entity_id", "ts", "value", "n"]
    assert raw.num_rows == 10 and set(raw.column("n").to_pylist()) == {1}
    links = store.observations_frame("speed_kmh", "road-link", T0, T0 + timedelta(hours=1))
    assert sorted(links.column("value").to_pylist()) == values["l1"]
    bucketed = store.observations_frame(
        "speed_kmh", "road-link", T0, T0 + timedelta(hours=1), bucket=STEP
    ).sort_by("ts")
    # Readings at :00 :02 :04 fall in the first 5 minutes, :06 :08 in the second.
    assert bucketed.column("value").to_pylist() == [20.0, 45.0]
    assert bucketed.column("n").to_pylist() == [3, 2]
    assert bucketed.column("ts").to_pylist() == [T0, T0 + STEP]
    g = load_grid(store, "speed_kmh", "road-link", T0, T0 + timedelta(minutes=15))
    np.testing.assert_allclose(g.values[0], [20.0, 45.0, np.nan])
    store.close()


def test_links_take_the_district_of_the_nearest_detector() -> None:
    det = reference()["AID01101"]
    district, km, road_en, _ = nearest_district(det.lat, det.lon)
    assert district == det.district and km < 0.01 and road_en == det.road_en
    info = link_info(
        Entity(
            "td-link:x", "road-link", "X", "X", det.lat, det.lon,
            properties={"region": "HK", "road_type": "URBAN ROAD",
                        "start_lat": det.lat, "start_lon": det.lon,
                        "end_lat": det.lat + 0.009, "end_lon": det.lon},
        )
    )
    assert info.district == det.district
    assert info.near_en == det.road_en
    assert info.length_km == pytest.approx(1.0, abs=0.01)  # 0.009 degrees of latitude
