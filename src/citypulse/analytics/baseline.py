"""What is normal for each road: its free-flow speed and its robust time-of-week profile,
learnt from history. Congestion, anomaly scores and forecasts are all measured against these.

* **Free-flow speed**: the median of the link's 5-minute speeds between 01:00 and 05:00 HKT
  (empty roads) when at least two hours of such bins exist; otherwise the 90th percentile of
  all its bins (at least an hour of them); otherwise a prior by road type (short history, e.g.
  a freshly replayed capture), flagged as such.
* **Seasonal profile**: per link and 5-minute bin of the week (Monday 00:00 HKT = 0), the
  median over every past week of the bins within +-``POOL_BINS`` of it (a 25-minute window:
  5 x weeks samples). A median, so an incident in one past week does not become "normal";
  pooled neighbours, so two or three weeks of history are enough.
* **Scale**: the robust spread (1.4826 x MAD) of a link's deviations from its profile in units
  of its free-flow speed. Deviations are divided by free flow, not by the profile value: a
  bottleneck crawling at 5 % of free flow every evening would otherwise turn tiny absolute
  misfits on the peak's flanks into huge relative ones.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from citypulse.analytics.history import (
    DAY_S,
    HK_OFFSET_S,
    WEEK_S,
    FloatArray,
    Grid,
    IntArray,
    hour_of_day,
    week_bin,
)

POOL_BINS = 2
NIGHT_HOURS = (1, 5)
MIN_NIGHT_BINS = 24
MIN_ALL_BINS = 12
MIN_SCALE = 0.02
"""Smallest deviation scale (2 % of free flow): a link whose speed never varies would otherwise
turn rounding into alarms."""

PRIOR_FREE_FLOW_KMH: Mapping[str, float] = {"MAJOR ROUTE": 70.0, "URBAN ROAD": 45.0}
"""Free-flow priors by speed-map road type when history is too short: the usual signed limits
(70 km/h on most major routes, 50 km/h on urban roads) less junction delay on urban roads."""
PRIOR_DEFAULT_KMH = 55.0
CHUNK = 64  # links per block when building the profile (bounds memory to ~20 MB)


def _local_weeks(times_s: IntArray) -> IntArray:
    """Monday-aligned week number in Hong Kong time (1970-01-01 was a Thursday)."""
    local_day = (times_s + HK_OFFSET_S) // DAY_S
    return np.asarray((local_day + 3) // 7, dtype=np.int64)


def nan_median(a: FloatArray, axis: int) -> FloatArray:
    """Median ignoring NaN via one sort (NaN sorts last): several times faster than
    ``np.nanmedian`` on many small groups; all-NaN groups give NaN without a warning."""
    s = np.sort(a, axis=axis)
    count = np.sum(~np.isnan(a), axis=axis, keepdims=True)
    lo = np.clip((count - 1) // 2, 0, None)
    hi = np.clip(count // 2, 0, None)
    m = (np.take_along_axis(s, lo, axis=axis) + np.take_along_axis(s, hi, axis=axis)) / 2
    m = np.where(count > 0, m, np.nan)
    return np.asarray(np.squeeze(m, axis=axis), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Baseline:
    """Per-entity normal state. ``profile[i, b]``: typical speed (km/h) of entity ``i`` in
    week bin ``b`` (NaN: never seen); ``free_flow[i]`` km/h with its ``free_flow_source``
    (``night``, ``history`` or ``prior``); ``scale[i]``: deviation spread / free flow;
    ``weeks[i]``: distinct weeks of history behind the profile."""

    entity_ids: tuple[str, ...]
    step_s: int
    free_flow: FloatArray
    free_flow_source: tuple[str, ...]
    profile: FloatArray
    scale: FloatArray
    weeks: IntArray
    history_bins: IntArray

    def index(self) -> dict[str, int]:
        return {e: i for i, e in enumerate(self.entity_ids)}

    def profile_at(self, rows: IntArray | slice, times_s: IntArray) -> FloatArray:
        """Profile values for ``rows`` at the bins starting at ``times_s``."""
        return np.asarray(self.profile[rows][:, week_bin(times_s, self.step_s)], np.float64)

    def aligned(self, grid: Grid) -> Baseline:
        """This baseline re-ordered to ``grid``'s entities (unknown ones get NaN rows)."""
        if grid.entity_ids == self.entity_ids:
            return self
        idx = self.index()
        pos = np.array([idx.get(e, -1) for e in grid.entity_ids], dtype=np.int64)
        ok = pos >= 0
        safe = np.where(ok, pos, 0)

        def take(a: FloatArray) -> FloatArray:
            out = np.asarray(a[safe], dtype=np.float64).copy()
            out[~ok] = np.nan
            return out

        profile = self.profile[safe].copy()
        profile[~ok] = np.nan
        return Baseline(
            grid.entity_ids,
            self.step_s,
            take(self.free_flow),
            tuple(self.free_flow_source[p] if p >= 0 else "prior" for p in pos),
            profile,
            take(self.scale),
            np.where(ok, self.weeks[safe], 0).astype(np.int64),
            np.where(ok, self.history_bins[safe], 0).astype(np.int64),
        )


def free_flow_speeds(
    grid: Grid, road_types: Mapping[str, str | None] | None = None
) -> tuple[FloatArray, tuple[str, ...]]:
    """Free-flow speed per grid row and where it came from (see module docstring)."""
    hours = hour_of_day(grid.times_s())
    night = (hours >= NIGHT_HOURS[0]) & (hours < NIGHT_HOURS[1])
    values = grid.values
    n_night = np.sum(~np.isnan(values[:, night]), axis=1)
    n_all = np.sum(~np.isnan(values), axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        night_median = nan_median(values[:, night], axis=1) if night.any() else np.full(
            len(values), np.nan
        )
        p90 = np.nanpercentile(values, 90, axis=1) if values.shape[1] else np.full(
            len(values), np.nan
        )
    out = np.empty(len(values))
    sources: list[str] = []
    types = road_types or {}
    for i, entity_id in enumerate(grid.entity_ids):
        if n_night[i] >= MIN_NIGHT_BINS and night_median[i] > 0:
            out[i] = night_median[i]
            sources.append("night")
        elif n_all[i] >= MIN_ALL_BINS and p90[i] > 0:
            out[i] = p90[i]
            sources.append("history")
        else:
            out[i] = PRIOR_FREE_FLOW_KMH.get(types.get(entity_id) or "", PRIOR_DEFAULT_KMH)
            sources.append("prior")
    return out, tuple(sources)


def seasonal_profile(grid: Grid, pool: int = POOL_BINS) -> tuple[FloatArray, IntArray]:
    """(profile [entities x week bins], distinct weeks with data per entity)."""
    step_s = grid.step_s
    n_week_bins = WEEK_S // step_s
    times = grid.times_s()
    tow = week_bin(times, step_s)
    weeks = _local_weeks(times)
    uniq, week_idx = np.unique(weeks, return_inverse=True)
    n_weeks = len(uniq)
    n = len(grid.entity_ids)
    profile = np.full((n, n_week_bins), np.nan)
    covered = np.zeros(n, dtype=np.int64)
    for lo in range(0, n, CHUNK):
        block = grid.values[lo : lo + CHUNK]
        cube = np.full((len(block), n_weeks, n_week_bins), np.nan)
        cube[:, week_idx, tow] = block
        covered[lo : lo + CHUNK] = np.sum(np.any(~np.isnan(cube), axis=2), axis=1)
        shifted = [np.roll(cube, -o, axis=2) for o in range(-pool, pool + 1)]
        samples = np.concatenate(shifted, axis=1)  # [links, weeks * (2 pool + 1), bins]
        profile[lo : lo + CHUNK] = nan_median(samples, axis=1)
    return profile, covered


def fit_baseline(
    grid: Grid, road_types: Mapping[str, str | None] | None = None, pool: int = POOL_BINS
) -> Baseline:
    """Learn free flow, profile and deviation scale of every entity of ``grid``."""
    free_flow, sources = free_flow_speeds(grid, road_types)
    profile, weeks = seasonal_profile(grid, pool)
    times = grid.times_s()
    expected = profile[:, week_bin(times, grid.step_s)]
    dev = (grid.values - expected) / free_flow[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = nan_median(dev, axis=1)
        mad = nan_median(np.abs(dev - med[:, None]), axis=1)
    scale = np.where(np.isnan(mad), MIN_SCALE, np.maximum(1.4826 * mad, MIN_SCALE))
    return Baseline(
        grid.entity_ids,
        grid.step_s,
        free_flow,
        sources,
        profile,
        scale,
        weeks,
        np.sum(~np.isnan(grid.values), axis=1).astype(np.int64),
    )
