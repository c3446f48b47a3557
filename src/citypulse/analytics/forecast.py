"""Short-term speed forecasts for every road link, 15, 30 and 60 minutes ahead.

Model: per horizon, one scikit-learn ``HistGradientBoostingRegressor`` trained across all links
(a link alone has too few incidents to learn from). It predicts the link's *deviation from its
time-of-week profile* at the target time, in units of its free-flow speed, from

* the recent deviations (last bin, the two before, means over 30 and 60 minutes),
* the current speed and the profile now and at the target time (so it knows the peak is coming
  or ending), and
* the time of day and weekend flag at the target.

The forecast is ``profile(target) + predicted deviation``: with nothing unusual going on it
falls back to the profile (beating "last value" on ramps and noise), and after an incident it
keeps the observed shortfall for as long as incidents in the history tended to last (beating
the historical average). ``backtest.py`` measures it against both baselines.

Timing convention: the grid's bin ``j`` (5 minutes) is the origin; its data are complete at the
bin's end, and the forecast for horizon ``H`` is the mean speed of bin ``j + H / step``, i.e.
the 5 minutes ending ``H`` after the origin's data. A forecast is labelled with its target
bin's start time (as the store labels buckets).

A link needs ``MIN_HISTORY_BINS`` of history, at least one reading in the last
``RECENT_BINS`` bins and a profile value at the target time; otherwise it gets no numbers and
a reason (``insufficient-history``, ``no-recent-data``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor  # type: ignore[import-untyped]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from citypulse.analytics.baseline import Baseline
from citypulse.analytics.history import FloatArray, Grid, IntArray, hour_of_day, is_weekend

HORIZONS_MIN = (15, 30, 60)
RECENT_BINS = 3
"""A forecast needs a reading in the last 3 bins (15 minutes) to know the present."""
MIN_HISTORY_BINS = int(0.8 * 7 * 288)
"""80 % of a week of 5-minute bins (~5.6 days with readings): the forecast stands on the
link's time-of-week profile, which needs most of a week to exist at all."""
MAX_TRAIN_ROWS = 40_000
"""Training rows per horizon, sampled from all links x bins: 40k fit in ~1-2 s; 60k-120k gave the
same backtest MAE to within 1-2 %."""
THREADS = 1
"""OpenMP threads for scikit-learn: one. On the shared 2-core host a second OpenMP thread made
fitting ~9x slower (spinning workers competing with the web server and ingest), never faster."""
FEATURES = (
    "dev_0", "dev_1", "dev_2", "dev_mean_30", "dev_mean_60", "rel_now",
    "profile_target", "profile_change", "hour_sin", "hour_cos", "weekend", "free_flow_100",
)


def horizon_bins(minutes: int, step_s: int) -> int:
    return max(1, round(minutes * 60 / step_s))


def _trailing_mean(a: FloatArray, window: int) -> FloatArray:
    """Mean of the last ``window`` bins up to each bin (inclusive), ignoring NaN."""
    ok = ~np.isnan(a)
    vals = np.where(ok, a, 0.0)
    c = np.cumsum(vals, axis=1)
    n = np.cumsum(ok, axis=1)
    c = np.concatenate([np.zeros((a.shape[0], 1)), c], axis=1)
    n = np.concatenate([np.zeros((a.shape[0], 1)), n], axis=1)
    idx = np.arange(a.shape[1])
    lo = np.clip(idx + 1 - window, 0, None)
    s = c[:, idx + 1] - c[:, lo]
    k = n[:, idx + 1] - n[:, lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(k > 0, s / np.maximum(k, 1), np.nan), dtype=np.float64)


def _shift(a: FloatArray, k: int) -> FloatArray:
    """``out[:, j] = a[:, j - k]`` (NaN where out of range); negative ``k`` looks ahead."""
    out = np.full_like(a, np.nan)
    if k >= 0:
        out[:, k:] = a[:, : a.shape[1] - k] if k else a
    else:
        out[:, :k] = a[:, -k:]
    return out


@dataclass(frozen=True, slots=True)
class Prepared:
    """Grid + baseline turned into the per-bin arrays features are cut from."""

    grid: Grid
    baseline: Baseline
    rel: FloatArray  # speed / free flow
    prof: FloatArray  # profile / free flow at each bin
    dev: FloatArray  # rel - prof
    dev30: FloatArray
    dev60: FloatArray
    times_s: IntArray


def prepare(grid: Grid, baseline: Baseline, extra_bins: int = 0) -> Prepared:
    """``extra_bins``: profile columns past the grid's end (targets of the newest origin)."""
    base = baseline.aligned(grid)
    ff = base.free_flow[:, None]
    times = np.asarray(
        grid.times_s()[0] + grid.step_s * np.arange(grid.n_bins + extra_bins), np.int64
    ) if grid.n_bins else np.zeros(0, np.int64)
    prof = base.profile_at(slice(None), times) / ff
    rel = grid.values / ff
    if extra_bins:
        rel = np.concatenate([rel, np.full((rel.shape[0], extra_bins), np.nan)], axis=1)
    dev = rel - prof
    step_min = grid.step_s / 60
    return Prepared(
        grid, base, rel, prof, dev,
        _trailing_mean(dev, max(1, round(30 / step_min))),
        _trailing_mean(dev, max(1, round(60 / step_min))),
        times,
    )


def pair_features(p: Prepared, ent: IntArray, org: IntArray, h: int) -> FloatArray:
    """Feature rows (``FEATURES``) for the (entity row, origin bin) pairs ``ent[k], org[k]``
    and horizon ``h`` bins."""
    ent = np.asarray(ent, np.int64)
    j = np.asarray(org, np.int64)
    t_target = p.times_s[j + h]
    hours = (hour_of_day(t_target) + ((t_target // 60) % 60) / 60.0) * (2 * math.pi / 24)
    j1, j2 = np.clip(j - 1, 0, None), np.clip(j - 2, 0, None)
    cols = [
        p.dev[ent, j],
        np.where(j >= 1, p.dev[ent, j1], np.nan),
        np.where(j >= 2, p.dev[ent, j2], np.nan),
        p.dev30[ent, j],
        p.dev60[ent, j],
        p.rel[ent, j],
        p.prof[ent, j + h],
        p.prof[ent, j + h] - p.prof[ent, j],
        np.sin(hours),
        np.cos(hours),
        is_weekend(t_target).astype(np.float64),
        p.baseline.free_flow[ent] / 100.0,
    ]
    return np.stack([np.asarray(c, np.float64) for c in cols], axis=1)


def feature_block(p: Prepared, origins: IntArray, h: int) -> FloatArray:
    """Features for every (entity, origin) pair, entity-major (row ``i * len(origins) + k``)."""
    n, m = p.rel.shape[0], len(origins)
    ent = np.repeat(np.arange(n, dtype=np.int64), m)
    org = np.tile(np.asarray(origins, np.int64), n)
    return pair_features(p, ent, org, h)


@dataclass(slots=True)
class SpeedForecaster:
    """One gradient-boosted model per horizon; ``fit`` on history, ``predict`` at any origin."""

    horizons_min: tuple[int, ...] = HORIZONS_MIN
    max_train_rows: int = MAX_TRAIN_ROWS
    seed: int = 0
    models: dict[int, Any] = field(default_factory=dict)
    step_s: int = 300
    trained_rows: dict[int, int] = field(default_factory=dict)

    def fit(self, grid: Grid, baseline: Baseline) -> SpeedForecaster:
        self.step_s = grid.step_s
        p = prepare(grid, baseline)
        rng = np.random.default_rng(self.seed)
        for minutes in self.horizons_min:
            h = horizon_bins(minutes, grid.step_s)
            origins = np.arange(0, max(0, grid.n_bins - h), dtype=np.int64)
            if origins.size == 0:
                continue
            # Sample usable (link, origin) pairs first, then build features for those only:
            # all pairs of 600 links x 4 weeks would be ~100 M feature values per horizon.
            ok = (
                ~np.isnan(p.dev[:, origins + h])
                & ~np.isnan(p.dev30[:, origins])
                & ~np.isnan(p.prof[:, origins + h])
            )
            idx = np.flatnonzero(ok)
            if idx.size < 100:
                continue
            if idx.size > self.max_train_rows:
                idx = np.sort(rng.choice(idx, self.max_train_rows, replace=False))
            ent, org = idx // origins.size, origins[idx % origins.size]
            x = pair_features(p, ent, org, h)
            y = p.dev[ent, org + h]
            model = HistGradientBoostingRegressor(
                max_iter=150,
                learning_rate=0.1,
                max_leaf_nodes=31,
                min_samples_leaf=40,
                l2_regularization=1.0,
                random_state=self.seed,
            )
            with warnings.catch_warnings(), threadpool_limits(THREADS):
                warnings.simplefilter("ignore")
                model.fit(x, y)
            self.models[minutes] = model
            self.trained_rows[minutes] = int(y.size)
        return self

    @property
    def fitted(self) -> bool:
        return bool(self.models)

    def predict_prepared(self, p: Prepared, origins: IntArray, minutes: int) -> FloatArray:
        """Forecast speeds (km/h) [entities x origins] for one horizon; NaN where the inputs
        are missing (no recent reading or no profile at the target)."""
        h = horizon_bins(minutes, p.grid.step_s)
        model = self.models.get(minutes)
        out = np.full((p.rel.shape[0], len(origins)), np.nan)
        if model is None or len(origins) == 0:
            return out
        x = feature_block(p, np.asarray(origins, np.int64), h)
        ok = ~np.isnan(x[:, 3]) & ~np.isnan(x[:, 6])
        pred = np.full(x.shape[0], np.nan)
        if ok.any():
            with threadpool_limits(THREADS):
                pred[ok] = model.predict(x[ok])
        prof = p.prof[:, np.asarray(origins) + h].reshape(-1)
        ff = np.repeat(p.baseline.free_flow, len(origins))
        speed = np.clip((prof + pred) * ff, 1.0, None)
        out = speed.reshape(p.rel.shape[0], len(origins))
        return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class LinkForecast:
    """The forecast of one link; ``reason`` says why there are no numbers."""

    entity_id: str
    issued_at: datetime | None
    points: tuple[tuple[int, datetime, float], ...]  # (horizon min, target bin start, km/h)
    last_observed_kmh: float | None
    last_observed_at: datetime | None
    reason: str | None = None
    detail: str | None = None


def forecast_latest(
    model: SpeedForecaster,
    grid: Grid,
    baseline: Baseline,
    entity_ids: Sequence[str] | None = None,
    origin: int | None = None,
) -> list[LinkForecast]:
    """Forecast rows of ``grid`` from bin ``origin`` (default: the newest bin with data for any
    row), refusing links with too little history or no reading in the last 15 minutes."""
    ids = list(entity_ids) if entity_ids is not None else list(grid.entity_ids)
    sub = grid.rows(ids) if tuple(ids) != grid.entity_ids else grid
    if origin is None:
        origin = sub.last_bin_with_data()
    if origin is None or origin < 0 or origin >= sub.n_bins:
        return [
            LinkForecast(e, None, (), None, None, "no-recent-data", "no readings in the window")
            for e in ids
        ]
    extra = max(horizon_bins(m, sub.step_s) for m in model.horizons_min)
    # The origin is the last real column: targets fall in the extra (profile-only) columns.
    trimmed = Grid(sub.entity_ids, sub.start, sub.step, sub.values[:, : origin + 1])
    p = prepare(trimmed, baseline, extra_bins=extra)
    preds = {
        m: model.predict_prepared(p, np.array([origin], np.int64), m)[:, 0]
        for m in model.horizons_min
    }
    base = p.baseline
    issued = trimmed.bin_time(origin) + trimmed.step
    need_h = MIN_HISTORY_BINS * trimmed.step_s / 3600
    out: list[LinkForecast] = []
    for i, e in enumerate(ids):
        row = trimmed.values[i]
        seen = np.flatnonzero(~np.isnan(row))
        last_j = int(seen[-1]) if seen.size else None
        last_v = round(float(row[last_j]), 1) if last_j is not None else None
        last_t = trimmed.bin_time(last_j) if last_j is not None else None
        have_h = int(base.history_bins[i]) * trimmed.step_s / 3600
        if base.history_bins[i] < MIN_HISTORY_BINS or not model.fitted:
            out.append(LinkForecast(
                e, issued, (), last_v, last_t, "insufficient-history",
                f"{have_h:.1f} h of history with readings; a forecast needs at least "
                f"{need_h:.0f} h (most of a week) to learn this link's weekly pattern",
            ))
            continue
        if last_j is None or origin - last_j >= RECENT_BINS:
            out.append(LinkForecast(
                e, issued, (), last_v, last_t, "no-recent-data",
                "no reading in the last 15 minutes",
            ))
            continue
        points = []
        for m in model.horizons_min:
            v = preds[m][i]
            if math.isfinite(v):
                target = trimmed.bin_time(origin + horizon_bins(m, trimmed.step_s))
                points.append((m, target, round(float(v), 1)))
        if len(points) < len(model.horizons_min):
            out.append(LinkForecast(
                e, issued, (), last_v, last_t, "insufficient-history",
                "this link's weekly pattern has no history at the target times yet",
            ))
            continue
        out.append(LinkForecast(e, issued, tuple(points), last_v, last_t))
    return out


def forecast_metric(minutes: int) -> str:
    """Observation metric under which forecasts are stored: ``speed_forecast_kmh_15m``."""
    return f"speed_forecast_kmh_{minutes}m"


def step_of(model: SpeedForecaster) -> timedelta:
    return timedelta(seconds=model.step_s)
