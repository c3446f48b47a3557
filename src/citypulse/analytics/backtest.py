"""Backtest of the speed forecasts against two baselines on the same origins and targets.

Protocol: the history's last ``test_days`` are the test period; everything before it is the
training period. The baseline (free flow, time-of-week profile) and the model are fitted on
the training period only. Then, for every link and every 5-minute origin in the test period
with a reading, each method forecasts the mean speed 15, 30 and 60 minutes ahead:

* ``model``: :class:`~citypulse.analytics.forecast.SpeedForecaster` (gradient boosting on the
  recent deviation from the profile);
* ``last_value``: the origin bin's speed (persistence);
* ``historical_average``: the mean of the training period's speeds in the same 15-minute slot
  of the week (the textbook "historical average").

Scores are computed on the pairs every method could forecast (so all three see exactly the same
targets): MAE and RMSE in km/h, MAPE in percent.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from citypulse.analytics.baseline import fit_baseline
from citypulse.analytics.forecast import (
    HORIZONS_MIN,
    SpeedForecaster,
    horizon_bins,
    prepare,
)
from citypulse.analytics.history import DAY_S, FloatArray, Grid, week_bin

METHODS = ("model", "last_value", "historical_average")
HA_SLOT_S = 15 * 60
MIN_TRAIN_DAYS = 7.0
"""The time-of-week profile and the historical average need a full week of training data."""


@dataclass(frozen=True, slots=True)
class Score:
    method: str
    horizon_min: int
    n: int
    mae: float | None
    rmse: float | None
    mape: float | None
    reason: str | None = None


@dataclass(slots=True)
class BacktestReport:
    source: str
    links: int
    days: float
    train_days: float
    test_days: float
    step_min: int
    scores: list[Score] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def score(self, method: str, horizon_min: int) -> Score:
        for s in self.scores:
            if s.method == method and s.horizon_min == horizon_min:
                return s
        raise KeyError((method, horizon_min))

    def model_beats_baselines(self) -> dict[int, bool | None]:
        """Per horizon: the model's MAE is below both baselines' (None: not all scored)."""
        out: dict[int, bool | None] = {}
        for h in sorted({s.horizon_min for s in self.scores}):
            m = self.score("model", h).mae
            others = [self.score(b, h).mae for b in METHODS[1:]]
            if m is None or any(o is None for o in others):
                out[h] = None
            else:
                out[h] = all(o is not None and m < o for o in others)
        return out

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model_beats_baselines"] = {str(k): v for k, v in self.model_beats_baselines().items()}
        return d

    def table(self) -> str:
        lines = [
            f"source: {self.source}; {self.links} links, {self.days:g} days "
            f"(train {self.train_days:g}, test {self.test_days:g}), {self.step_min}-minute bins",
            f"{'horizon':>8} {'method':<20} {'n':>8} {'MAE km/h':>9} {'RMSE km/h':>10} "
            f"{'MAPE %':>7}",
        ]
        for s in sorted(self.scores, key=lambda s: (s.horizon_min, METHODS.index(s.method))):
            if s.mae is None:
                lines.append(
                    f"{s.horizon_min:>6}m  {s.method:<20} {s.n:>8}  {s.reason or 'n/a'}"
                )
            else:
                lines.append(
                    f"{s.horizon_min:>6}m  {s.method:<20} {s.n:>8} {s.mae:>9.2f} "
                    f"{s.rmse or 0:>10.2f} {s.mape or 0:>7.1f}"
                )
        for h, ok in self.model_beats_baselines().items():
            verdict = "not scored" if ok is None else "yes" if ok else "no"
            lines.append(f"model MAE below both baselines at {h} min: {verdict}")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _metrics(pred: FloatArray, actual: FloatArray) -> tuple[float, float, float]:
    err = pred - actual
    mae = float(np.mean(np.abs(err)))
    rmse = float(math.sqrt(np.mean(err**2)))
    pos = actual > 0
    mape = float(np.mean(np.abs(err[pos]) / actual[pos]) * 100) if pos.any() else math.nan
    return round(mae, 3), round(rmse, 3), round(mape, 2)


def historical_average(train: Grid, slot_s: int = HA_SLOT_S) -> FloatArray:
    """Mean speed per entity and ``slot_s`` slot of the week over the training grid."""
    n_slots = 7 * DAY_S // slot_s
    slots = week_bin(train.times_s(), slot_s)
    sums = np.zeros((len(train.entity_ids), n_slots))
    counts = np.zeros_like(sums)
    ok = ~np.isnan(train.values)
    np.add.at(sums.T, slots, np.where(ok, train.values, 0.0).T)
    np.add.at(counts.T, slots, ok.T.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(counts > 0, sums / counts, np.nan), dtype=np.float64)


def run_backtest(
    grid: Grid,
    *,
    source: str,
    test_days: float = 7.0,
    road_types: Mapping[str, str | None] | None = None,
    horizons: tuple[int, ...] = HORIZONS_MIN,
    seed: int = 0,
) -> BacktestReport:
    """Backtest on ``grid`` (see module docstring). Short histories still get the last-value
    figures; the two methods that need a training week say why they have none."""
    step_s = grid.step_s
    bins_per_day = DAY_S // step_s
    total_days = grid.n_bins / bins_per_day
    train_days = total_days - test_days
    report = BacktestReport(
        source=source,
        links=len(grid.entity_ids),
        days=round(total_days, 3),
        train_days=round(max(train_days, 0.0), 3),
        test_days=round(min(test_days, total_days), 3),
        step_min=step_s // 60,
    )
    trainable = train_days >= MIN_TRAIN_DAYS
    split = grid.n_bins - round(test_days * bins_per_day) if trainable else 0
    t0 = time.perf_counter()
    model: SpeedForecaster | None = None
    ha: FloatArray | None = None
    if trainable:
        train = Grid(grid.entity_ids, grid.start, grid.step, grid.values[:, :split])
        baseline = fit_baseline(train, road_types)
        report.seconds["baseline_fit"] = round(time.perf_counter() - t0, 3)
        t1 = time.perf_counter()
        model = SpeedForecaster(horizons_min=horizons, seed=seed).fit(train, baseline)
        report.seconds["model_fit"] = round(time.perf_counter() - t1, 3)
        ha = historical_average(train)
        prepared = prepare(grid, baseline)
    else:
        have = total_days * 24
        report.notes.append(
            f"history spans {have:.1f} h; the model and the historical average need at least "
            f"{MIN_TRAIN_DAYS:g} days of training data plus the test period, so only the "
            "last-value baseline is scored (on every origin with a reading)"
        )
    times = grid.times_s()
    values = grid.values
    t2 = time.perf_counter()
    for minutes in horizons:
        h = horizon_bins(minutes, step_s)
        origins = np.arange(split, max(split, grid.n_bins - h), dtype=np.int64)
        actual = values[:, origins + h]
        last = values[:, origins]
        mask = ~np.isnan(actual) & ~np.isnan(last)
        preds: dict[str, FloatArray | None] = {"last_value": last}
        if model is not None and ha is not None:
            preds["model"] = model.predict_prepared(prepared, origins, minutes)
            slot = week_bin(times[origins + h], HA_SLOT_S)
            preds["historical_average"] = ha[:, slot]
            for key in ("model", "historical_average"):
                arr = preds[key]
                assert arr is not None
                mask &= ~np.isnan(arr)
        else:
            preds["model"] = preds["historical_average"] = None
        n = int(mask.sum())
        for method in METHODS:
            arr = preds[method]
            if arr is None:
                report.scores.append(
                    Score(method, minutes, 0, None, None, None, "insufficient-history")
                )
            elif n == 0:
                report.scores.append(Score(method, minutes, 0, None, None, None, "no-pairs"))
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    mae, rmse, mape = _metrics(arr[mask], actual[mask])
                report.scores.append(Score(method, minutes, n, mae, rmse, mape))
    report.seconds["evaluate"] = round(time.perf_counter() - t2, 3)
    return report
