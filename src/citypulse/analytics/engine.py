"""One object that answers every traffic-analytics question from a store, with the expensive
parts (weeks of history -> baselines and a trained model) fitted once and reused.

The web API, the dashboard panel, the periodic runner and the CLI all go through
:class:`TrafficAnalytics`. "Now" is always the newest observation time in the store, not the
wall clock, so a replayed capture or a demo store is analysed as of its own time.

Learning window: the last ``HISTORY_DAYS`` (28) of data, less the most recent 24 hours when a
week of history remains without them, so an incident going on now (or earlier today) is judged
against a "normal" that does not already contain it.

Refitting: the road-link baseline (free flow + profile) is refitted at most every
``baseline_ttl_s`` seconds, the forecast model every ``model_ttl_s``, and both at once when the
data time jumps (a different store, a replay of another period). Fits run under a lock; reads
of a fitted state are lock-free (the objects are immutable once built).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from citypulse.analytics import anomalies as anom
from citypulse.analytics import congestion as cong
from citypulse.analytics.baseline import Baseline, fit_baseline
from citypulse.analytics.forecast import (
    HORIZONS_MIN,
    MIN_HISTORY_BINS,
    LinkForecast,
    SpeedForecaster,
    forecast_latest,
    horizon_bins,
)
from citypulse.analytics.history import (
    DETECTOR_LANE_KIND,
    LINK_KIND,
    SPEED_METRIC,
    STEP,
    Grid,
    LinkInfo,
    detector_parents,
    floor_time,
    grid_from_frame,
    link_info,
    load_grid,
)
from citypulse.model import Event, utc
from citypulse.store.base import TimeSeriesStore

HISTORY_DAYS = 28
EXCLUDE_RECENT = timedelta(hours=24)
MIN_LEARNING = timedelta(days=7)
DETECTOR_HISTORY_DAYS = 14
FORECAST_WINDOW = timedelta(hours=2)
DETECTOR_KIND = "traffic-detector"
NEWS_KIND = "traffic-news"


@dataclass(slots=True)
class _Fitted:
    at: datetime
    fitted_wall: float
    baseline: Baseline
    model: SpeedForecaster | None = None
    model_wall: float = 0.0
    grid: Grid | None = None
    seconds: dict[str, float] = field(default_factory=dict)


class TrafficAnalytics:
    """Congestion, anomalies and forecasts for the road links (and detectors) of a store."""

    def __init__(
        self,
        store: TimeSeriesStore,
        *,
        history_days: int = HISTORY_DAYS,
        detector_history_days: int = DETECTOR_HISTORY_DAYS,
        baseline_ttl_s: float = 3600.0,
        model_ttl_s: float = 6 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.history_days = history_days
        self.detector_history_days = detector_history_days
        self.baseline_ttl_s = baseline_ttl_s
        self.model_ttl_s = model_ttl_s
        self._clock = clock
        self._lock = threading.RLock()
        self._links: dict[str, LinkInfo] | None = None
        self._links_wall = -1e18
        self._fitted: _Fitted | None = None
        self._detectors: _Fitted | None = None
        self._detector_parents: dict[str, str] = {}
        self._detector_infos: dict[str, LinkInfo] = {}
        self._cache: dict[tuple[Any, ...], tuple[float, Any]] = {}

    # -- state -----------------------------------------------------------------------------

    def data_time(self, kind: str = LINK_KIND) -> datetime | None:
        """Newest speed observation time of the kind (from the ``latest`` table)."""
        values = self.store.latest(SPEED_METRIC, kind=kind)
        return max((v.ts for v in values), default=None)

    def newest_time(self, *, detectors: bool = True) -> datetime | None:
        """Newest speed observation of road links or (with ``detectors``) detector lanes."""
        times = [self.data_time()]
        if detectors:
            times.append(self.data_time(DETECTOR_LANE_KIND))
        return max((x for x in times if x is not None), default=None)

    def link_infos(self) -> dict[str, LinkInfo]:
        with self._lock:
            if self._links is None or self._clock() - self._links_wall > 600:
                self._links = {e.id: link_info(e) for e in self.store.entities(LINK_KIND)}
                self._links_wall = self._clock()
            return self._links

    def _stale(self, fitted: _Fitted | None, at: datetime, ttl: float) -> bool:
        if fitted is None:
            return True
        jumped = at < fitted.at or at - fitted.at > timedelta(seconds=max(ttl, 3600) * 2)
        return jumped or self._clock() - fitted.fitted_wall > ttl

    def fitted(self, at: datetime | None = None, *, with_model: bool = True) -> _Fitted | None:
        """The road-link baseline (and model) for data time ``at`` (default: newest)."""
        at = at or self.data_time()
        if at is None:
            return None
        with self._lock:
            f = self._fitted
            if self._stale(f, at, self.baseline_ttl_s):
                t0 = time.perf_counter()
                grid = self._history_grid(at)
                t1 = time.perf_counter()
                types = {e: i.road_type for e, i in self.link_infos().items()}
                baseline = fit_baseline(grid, types)
                f = _Fitted(at, self._clock(), baseline)
                f.seconds = {
                    "load": round(t1 - t0, 3),
                    "baseline": round(time.perf_counter() - t1, 3),
                }
                old = self._fitted
                if old is not None and old.model is not None and not self._model_stale(old, at):
                    f.model, f.model_wall = old.model, old.model_wall
                if with_model and f.model is None:
                    self._fit_model(f, grid)
                elif f.model is None:
                    f.grid = grid  # kept until the model is fitted: no second read
                self._fitted = f
            elif with_model and f is not None and (f.model is None or self._model_stale(f, at)):
                kept = f.grid if f.model is None else None
                self._fit_model(
                    f, kept or self._history_grid(at).rows(f.baseline.entity_ids)
                )
            return f

    def _history_grid(self, at: datetime) -> Grid:
        """The learning window: ``history_days`` up to ``at``, less the last
        ``EXCLUDE_RECENT`` when a week of history remains without it, so that an incident
        going on now is judged against history that does not contain it."""
        grid = load_grid(
            self.store, SPEED_METRIC, LINK_KIND, at - timedelta(days=self.history_days), at + STEP,
            trim=True,
        )
        grid = grid.rows(sorted(set(grid.entity_ids) | set(self.link_infos())))
        cols = np.flatnonzero(np.any(~np.isnan(grid.values), axis=0))
        if cols.size:
            cut = floor_time(at - EXCLUDE_RECENT)
            if cut - grid.bin_time(int(cols[0])) >= MIN_LEARNING:
                grid = grid.window(grid.start, cut)
        return grid

    def _model_stale(self, f: _Fitted, at: datetime) -> bool:
        return self._clock() - f.model_wall > self.model_ttl_s or at < f.at

    def _fit_model(self, f: _Fitted, grid: Grid) -> None:
        t0 = time.perf_counter()
        model = SpeedForecaster()
        # No link could be forecast without enough history: do not fit on scraps.
        if int(np.max(f.baseline.history_bins, initial=0)) >= MIN_HISTORY_BINS:
            model.fit(grid, f.baseline)
        f.model = model
        f.grid = None
        f.model_wall = self._clock()
        f.seconds["model"] = round(time.perf_counter() - t0, 3)

    def clear_cache(self) -> None:
        """Forget cached answers (not the fitted models): the next call recomputes."""
        self._cache.clear()

    def _cached(self, key: tuple[Any, ...], ttl: float, build: Callable[[], Any]) -> Any:
        hit = self._cache.get(key)
        now = self._clock()
        if hit is not None and now - hit[0] < ttl:
            return hit[1]
        value = build()
        if len(self._cache) > 64:
            self._cache.clear()
        self._cache[key] = (now, value)
        return value

    # -- congestion ------------------------------------------------------------------------

    def congestion(self, at: datetime | None = None) -> cong.CongestionSnapshot | None:
        at = at or self.data_time()
        if at is None:
            return None
        key = ("congestion", floor_time(at))
        result: cong.CongestionSnapshot | None = self._cached(
            key, 30.0, lambda: self._congestion(at)
        )
        return result

    def _congestion(self, at: datetime) -> cong.CongestionSnapshot | None:
        f = self.fitted(at, with_model=False)
        if f is None:
            return None
        ids = f.baseline.entity_ids
        end = floor_time(at) + STEP
        recent = load_grid(self.store, SPEED_METRIC, LINK_KIND, end - cong.RECENT, end).rows(ids)
        lw_at = at - cong.WEEK
        last_week = load_grid(
            self.store, SPEED_METRIC, LINK_KIND,
            lw_at - cong.LAST_WEEK_HALF_WINDOW, lw_at + cong.LAST_WEEK_HALF_WINDOW,
        ).rows(ids)
        return cong.snapshot(
            recent, last_week, f.baseline.free_flow, f.baseline.free_flow_source,
            self.link_infos(),
        )

    def patterns(
        self, days: int = 7, group: str = "city"
    ) -> tuple[list[cong.HourlyPattern], list[cong.DailyPattern]]:
        at = self.data_time()
        if at is None:
            return [], []
        key = ("patterns", days, group, floor_time(at, timedelta(minutes=15)))

        def build() -> tuple[list[cong.HourlyPattern], list[cong.DailyPattern]]:
            f = self.fitted(at, with_model=False)
            assert f is not None
            end = floor_time(at) + STEP
            grid = load_grid(
                self.store, SPEED_METRIC, LINK_KIND, end - timedelta(days=days), end
            ).rows(f.baseline.entity_ids)
            return cong.patterns(grid, f.baseline.free_flow, self.link_infos(), group)

        result: tuple[list[cong.HourlyPattern], list[cong.DailyPattern]] = self._cached(
            key, 300.0, build
        )
        return result

    # -- anomalies -------------------------------------------------------------------------

    def anomalies(
        self,
        hours: float = 24.0,
        *,
        at: datetime | None = None,
        detectors: bool = True,
        start: datetime | None = None,
    ) -> list[anom.Anomaly]:
        """Anomalies still going on at some point in the last ``hours`` (or since ``start``),
        newest first, with coinciding traffic news attached."""
        link_at = self.data_time()
        at = at or self.newest_time(detectors=detectors)
        if at is None:
            return []
        since = utc(start) if start is not None else at - timedelta(hours=hours)
        key = ("anomalies", floor_time(at), floor_time(since), detectors)

        def build() -> list[anom.Anomaly]:
            found = self._link_anomalies(at, since) if link_at is not None else []
            if detectors:
                found += self._detector_anomalies(since)
            news = self.store.events(since - anom.NEWS_SLACK, at + anom.NEWS_SLACK, kind=NEWS_KIND)
            linked = anom.link_news(found, news, at)
            linked.sort(key=lambda a: (a.start, a.entity_id), reverse=True)
            return linked

        result: list[anom.Anomaly] = self._cached(key, 60.0, build)
        return result

    def _link_anomalies(self, at: datetime, since: datetime) -> list[anom.Anomaly]:
        f = self.fitted(at, with_model=False)
        if f is None:
            return []
        end = floor_time(at) + STEP
        # An hour before ``since`` so a run that began earlier keeps its true start.
        grid = load_grid(
            self.store, SPEED_METRIC, LINK_KIND, since - timedelta(hours=1), end
        ).rows(f.baseline.entity_ids)
        scores = anom.score_grid(grid, f.baseline)
        return anom.detect(scores, entity_kind=LINK_KIND, infos=self.link_infos(), since=since)

    def detector_fitted(self, at: datetime | None = None) -> _Fitted | None:
        at = at or self.data_time(DETECTOR_LANE_KIND)
        if at is None:
            return None
        with self._lock:
            if self._stale(self._detectors, at, self.baseline_ttl_s):
                self._detector_parents = detector_parents(self.store)
                self._detector_infos = {
                    e.id: link_info(e) for e in self.store.entities(DETECTOR_KIND)
                }
                start = at - timedelta(days=self.detector_history_days)
                grid = self._detector_grid(start, at)
                cols = np.flatnonzero(np.any(~np.isnan(grid.values), axis=0))
                cut = floor_time(at - EXCLUDE_RECENT)
                if cols.size and cut - grid.bin_time(int(cols[0])) >= MIN_LEARNING:
                    grid = grid.window(grid.start, cut)
                self._detectors = _Fitted(at, self._clock(), fit_baseline(grid))
            return self._detectors

    def _detector_grid(self, start: datetime, at: datetime) -> Grid:
        """Detector speeds: the lanes' bucket means pooled per detector (vehicle-weighted
        would need volumes; lanes are weighted by their reading counts)."""
        end = floor_time(at) + STEP
        frame = self.store.observations_frame(
            SPEED_METRIC, DETECTOR_LANE_KIND, floor_time(start), end, bucket=STEP
        )
        return grid_from_frame(frame, start, end, STEP, parent=self._detector_parents)

    def _detector_anomalies(self, since: datetime) -> list[anom.Anomaly]:
        at = self.data_time(DETECTOR_LANE_KIND)
        if at is None:
            return []
        f = self.detector_fitted(at)
        if f is None:
            return []
        grid = self._detector_grid(since - timedelta(hours=1), at).rows(f.baseline.entity_ids)
        scores = anom.score_grid(grid, f.baseline)
        return anom.detect(
            scores, entity_kind=DETECTOR_KIND, infos=self._detector_infos, since=since
        )

    def anomaly_events(self, hours: float = 24.0, **kw: Any) -> list[Event]:
        return [anom.to_event(a) for a in self.anomalies(hours, **kw)]

    # -- forecasts -------------------------------------------------------------------------

    def forecasts(self, entity_ids: list[str] | None = None) -> list[LinkForecast]:
        """Forecasts for the given links (default: all links), from the newest data time."""
        at = self.data_time()
        if at is None:
            ids = entity_ids or sorted(self.link_infos())
            return [
                LinkForecast(e, None, (), None, None, "no-recent-data", "no speed data yet")
                for e in ids
            ]
        key = ("forecasts", floor_time(at), tuple(entity_ids) if entity_ids else None)
        result: list[LinkForecast] = self._cached(
            key, 60.0, lambda: self._forecasts(at, entity_ids)
        )
        return result

    def _forecasts(self, at: datetime, entity_ids: list[str] | None) -> list[LinkForecast]:
        f = self.fitted(at)
        assert f is not None and f.model is not None
        end = floor_time(at) + STEP
        start = end - FORECAST_WINDOW
        if entity_ids is not None and len(entity_ids) <= 8:
            rows = []
            for e in entity_ids:
                points = self.store.series(e, SPEED_METRIC, start, end, STEP)
                row = np.full(int(FORECAST_WINDOW / STEP), np.nan)
                for pt in points:
                    j = int((pt.ts - start) / STEP)
                    if 0 <= j < len(row) and pt.avg is not None:
                        row[j] = pt.avg
                rows.append(row)
            grid = Grid(tuple(entity_ids), start, STEP, np.array(rows).reshape(len(rows), -1))
        else:
            grid = load_grid(self.store, SPEED_METRIC, LINK_KIND, start, end)
            grid = grid.rows(entity_ids or list(f.baseline.entity_ids))
        return forecast_latest(f.model, grid, f.baseline, origin=grid.n_bins - 1)

    def forecast(self, entity_id: str) -> LinkForecast:
        return self.forecasts([entity_id])[0]

    @staticmethod
    def horizons() -> tuple[int, ...]:
        return HORIZONS_MIN

    @staticmethod
    def horizon_bins(minutes: int) -> int:
        return horizon_bins(minutes, int(STEP.total_seconds()))
