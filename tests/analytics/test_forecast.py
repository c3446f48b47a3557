"""Forecasts: the backtest on simulated history (the model must beat both baselines at every
horizon), and no invented numbers for links with too little history."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from citypulse.analytics.backtest import (
    METHODS,
    BacktestReport,
    historical_average,
    run_backtest,
)
from citypulse.analytics.engine import TrafficAnalytics
from citypulse.analytics.forecast import HORIZONS_MIN, forecast_latest, forecast_metric
from citypulse.analytics.history import grid_from_frame, load_grid
from citypulse.analytics.simulated import SimulatedHistory
from citypulse.store.duckdb import DuckDBStore

from .conftest import short_store

SimStore = tuple[DuckDBStore, SimulatedHistory]


@pytest.fixture(scope="module")
def report(backtest_history: SimulatedHistory) -> BacktestReport:
    h = backtest_history
    grid = grid_from_frame(h.frame, h.start, h.end)
    types = {e.id: str(e.properties["road_type"]) for e in h.entities}
    return run_backtest(grid, source="simulated", test_days=7, road_types=types)


@pytest.mark.parametrize("minutes", HORIZONS_MIN)
def test_model_beats_both_baselines_at_each_horizon(report: BacktestReport, minutes: int) -> None:
    model = report.score("model", minutes)
    last = report.score("last_value", minutes)
    hist = report.score("historical_average", minutes)
    print(f"\n{minutes} min: model {model.mae}, last value {last.mae}, hist avg {hist.mae}")
    assert model.n == last.n == hist.n > 20 * 288 * 6  # same pairs, most of a week x 20 links
    assert model.mae is not None and last.mae is not None and hist.mae is not None
    assert model.mae < last.mae
    assert model.mae < hist.mae
    assert report.model_beats_baselines()[minutes]


def test_report_has_every_method_and_metric(report: BacktestReport) -> None:
    assert {(s.method, s.horizon_min) for s in report.scores} == {
        (m, h) for m in METHODS for h in HORIZONS_MIN
    }
    for s in report.scores:
        assert s.rmse is not None and s.mape is not None and s.rmse >= (s.mae or 0)
    d = report.as_dict()
    assert d["model_beats_baselines"] == {"15": True, "30": True, "60": True}
    assert "MAE" in report.table()


def test_historical_average_is_the_slot_mean(backtest_history: SimulatedHistory) -> None:
    h = backtest_history
    grid = grid_from_frame(h.frame, h.start, h.end)
    ha = historical_average(grid)
    # Slot 0 (Monday 00:00-00:15 HKT): the mean of every 5-minute bin in it, over all weeks.
    local = grid.times_s() + 8 * 3600
    monday = (local // 86400 + 3) % 7 == 0  # 1970-01-01 was a Thursday
    in_slot = monday & (local % 86400 < 900)
    assert in_slot.sum() == 3 * 3  # three Mondays x three 5-minute bins
    assert ha[0, 0] == pytest.approx(np.nanmean(grid.values[0, in_slot]))


def test_short_history_backtest_scores_last_value_only(sim_store: SimStore) -> None:
    _store, h = sim_store
    grid = grid_from_frame(h.frame, h.end - timedelta(hours=3), h.end)
    r = run_backtest(grid, source="3 hours")
    for minutes in HORIZONS_MIN:
        assert r.score("last_value", minutes).n > 0
        assert r.score("model", minutes).mae is None
        assert r.score("model", minutes).reason == "insufficient-history"
        assert r.score("historical_average", minutes).reason == "insufficient-history"
    assert r.model_beats_baselines() == {15: None, 30: None, 60: None}


@pytest.fixture(scope="module")
def engine(sim_store: SimStore) -> TrafficAnalytics:
    return TrafficAnalytics(sim_store[0])


def test_forecasts_for_links_with_history(engine: TrafficAnalytics, sim_store: SimStore) -> None:
    _store, h = sim_store
    fc = engine.forecast(h.entities[0].id)
    assert fc.reason is None and [p[0] for p in fc.points] == [15, 30, 60]
    assert fc.issued_at is not None and fc.last_observed_kmh is not None
    for minutes, target, speed in fc.points:
        # the 5-minute bin ending `minutes` after the origin's data
        assert target == fc.issued_at + timedelta(minutes=minutes) - timedelta(minutes=5)
        assert 1 <= speed <= 130
    assert forecast_metric(15) == "speed_forecast_kmh_15m"
    every = engine.forecasts()
    assert len(every) == len(h.entities) and all(f.points for f in every)


def test_link_without_recent_reading_gets_no_numbers(
    engine: TrafficAnalytics, sim_store: SimStore
) -> None:
    store, h = sim_store
    fitted = engine.fitted()
    assert fitted is not None and fitted.model is not None
    end = h.end
    grid = load_grid(store, "speed_kmh", "road-link", end - timedelta(hours=2), end)
    grid.values[1, -4:] = np.nan  # 20 minutes without a reading on the second link
    out = forecast_latest(fitted.model, grid, fitted.baseline, origin=grid.n_bins - 1)
    assert out[1].reason == "no-recent-data" and out[1].points == ()
    assert out[0].reason is None and len(out[0].points) == 3


def test_too_little_history_says_so(tmp_path: Path) -> None:
    store, h = short_store(tmp_path / "short.duckdb", hours=30)
    try:
        fc = TrafficAnalytics(store).forecast(h.entities[0].id)
        assert fc.reason == "insufficient-history" and fc.points == ()
        assert fc.detail and "history" in fc.detail
        assert fc.last_observed_kmh is not None  # what we do know is still reported
    finally:
        store.close()
