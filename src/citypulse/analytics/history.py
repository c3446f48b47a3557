"""Observation history as dense grids: the shape every traffic model here works on.

Analytics read one metric of all entities of a kind over a window with
``TimeSeriesStore.observations_frame`` (one query, bucket means computed by the store) and lay
it out as a :class:`Grid`: a float matrix of entities x fixed time bins (5 minutes by default),
NaN where a bin has no observation. Feeds report at their own irregular instants (the speed
map's regions are captured at different seconds of a 2-minute cycle), so a common grid is what
lets links, regions and horizons be compared bin by bin.

Times of day and week are Hong Kong time (UTC+8, no daylight saving), which is what traffic
follows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from citypulse.feeds.td_detectors import reference as detector_reference
from citypulse.model import Entity, utc
from citypulse.store.base import TimeSeriesStore

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

STEP = timedelta(minutes=5)
"""Default grid step: the speed map refreshes every 2 minutes, so a 5-minute bin averages 2-3
readings (less noise) and the 15/30/60-minute horizons are whole numbers of bins."""

HK_OFFSET_S = 8 * 3600
DAY_S = 86_400
WEEK_S = 7 * DAY_S
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)

LINK_KIND = "road-link"
DETECTOR_LANE_KIND = "traffic-detector-lane"
SPEED_METRIC = "speed_kmh"


def epoch_s(ts: datetime) -> int:
    return int((utc(ts) - _EPOCH).total_seconds())


def from_epoch_s(seconds: float) -> datetime:
    return _EPOCH + timedelta(seconds=float(seconds))


def floor_time(ts: datetime, step: timedelta = STEP) -> datetime:
    """``ts`` rounded down to the epoch-aligned grid."""
    s = int(step.total_seconds())
    return from_epoch_s(epoch_s(ts) // s * s)


def week_bin(seconds: IntArray | int, step_s: int) -> IntArray:
    """Time-of-week bin (Monday 00:00 HKT = 0) of epoch seconds, for bins of ``step_s``."""
    local = np.asarray(seconds, dtype=np.int64) + HK_OFFSET_S
    weekday = (local // DAY_S + _EPOCH_WEEKDAY) % 7
    return np.asarray(weekday * (DAY_S // step_s) + (local % DAY_S) // step_s, dtype=np.int64)


def hour_of_day(seconds: IntArray) -> IntArray:
    return np.asarray(((seconds + HK_OFFSET_S) % DAY_S) // 3600, dtype=np.int64)


def is_weekend(seconds: IntArray) -> npt.NDArray[np.bool_]:
    weekday = ((np.asarray(seconds, dtype=np.int64) + HK_OFFSET_S) // DAY_S + _EPOCH_WEEKDAY) % 7
    return np.asarray(weekday >= 5)


@dataclass(frozen=True, slots=True)
class Grid:
    """``values[i, j]``: mean of entity ``entity_ids[i]`` in bin ``j`` (NaN: no data); bin ``j``
    covers ``[start + j * step, start + (j + 1) * step)``."""

    entity_ids: tuple[str, ...]
    start: datetime
    step: timedelta
    values: FloatArray

    @property
    def n_bins(self) -> int:
        return int(self.values.shape[1])

    @property
    def step_s(self) -> int:
        return int(self.step.total_seconds())

    @property
    def end(self) -> datetime:
        return self.start + self.n_bins * self.step

    def times_s(self) -> IntArray:
        """Epoch seconds of each bin's start."""
        return np.asarray(epoch_s(self.start) + self.step_s * np.arange(self.n_bins), np.int64)

    def bin_time(self, j: int) -> datetime:
        return self.start + j * self.step

    def index(self) -> dict[str, int]:
        return {e: i for i, e in enumerate(self.entity_ids)}

    def rows(self, entity_ids: Sequence[str]) -> Grid:
        """The grid limited to ``entity_ids`` (in that order; unknown ids get empty rows)."""
        idx = self.index()
        out = np.full((len(entity_ids), self.n_bins), np.nan)
        for k, e in enumerate(entity_ids):
            i = idx.get(e)
            if i is not None:
                out[k] = self.values[i]
        return Grid(tuple(entity_ids), self.start, self.step, out)

    def window(self, start: datetime, end: datetime) -> Grid:
        """Bins from ``start`` (inclusive) to ``end`` (exclusive), both on this grid."""
        j0 = max(0, int((epoch_s(start) - epoch_s(self.start)) // self.step_s))
        j1 = min(self.n_bins, math.ceil((epoch_s(end) - epoch_s(self.start)) / self.step_s))
        j1 = max(j0, j1)
        return Grid(self.entity_ids, self.bin_time(j0), self.step, self.values[:, j0:j1])

    def last_bin_with_data(self) -> int | None:
        seen = np.flatnonzero(np.any(~np.isnan(self.values), axis=0))
        return int(seen[-1]) if seen.size else None


def empty_grid(start: datetime, end: datetime, step: timedelta = STEP) -> Grid:
    t0 = floor_time(start, step)
    n = max(0, math.ceil((epoch_s(end) - epoch_s(t0)) / step.total_seconds()))
    return Grid((), t0, step, np.empty((0, n)))


def grid_from_frame(
    frame: pa.Table,
    start: datetime,
    end: datetime,
    step: timedelta = STEP,
    entity_ids: Sequence[str] | None = None,
    *,
    parent: dict[str, str] | None = None,
) -> Grid:
    """Lay a frame (``entity_id``, ``ts``, ``value`` and optionally ``n``, raw or bucketed) out
    on the grid [floor(start), end): each bin holds the ``n``-weighted mean of its rows.

    ``parent`` maps entity ids to the id they are pooled into (detector lanes -> detector);
    rows of ids outside ``entity_ids`` (when given) or outside the window are dropped.
    """
    t0 = floor_time(start, step)
    step_s = int(step.total_seconds())
    n_bins = max(0, math.ceil((epoch_s(end) - epoch_s(t0)) / step_s))
    ids_col = frame.column("entity_id")
    if parent is not None:
        keys = pa.array(list(parent.keys()), pa.string())
        vals = pa.array(list(parent.values()), pa.string())
        pos = pc.index_in(ids_col, value_set=keys)
        ids_col = pc.take(vals, pos)
    if entity_ids is None:
        present = pc.unique(pc.drop_null(ids_col)).to_pylist()
        entity_ids = sorted(str(e) for e in present)
    ids = tuple(entity_ids)
    values = np.full((len(ids), n_bins), np.nan)
    if frame.num_rows == 0 or not ids or n_bins == 0:
        return Grid(ids, t0, step, values)
    row = pc.index_in(ids_col, value_set=pa.array(ids, pa.string()))
    row_np = row.to_numpy(zero_copy_only=False)
    ts_us = frame.column("ts").cast(pa.int64()).to_numpy(zero_copy_only=False)
    col = (ts_us // 1_000_000 - epoch_s(t0)) // step_s
    value = frame.column("value").to_numpy(zero_copy_only=False).astype(np.float64)
    if "n" in frame.column_names:
        weight = frame.column("n").to_numpy(zero_copy_only=False).astype(np.float64)
    else:
        weight = np.ones(frame.num_rows)
    row_f = np.asarray(row_np, dtype=np.float64)  # nulls arrive as NaN
    keep = ~np.isnan(row_f) & (col >= 0) & (col < n_bins) & ~np.isnan(value) & (weight > 0)
    flat = row_f[keep].astype(np.int64) * n_bins + col[keep]
    size = len(ids) * n_bins
    sums = np.bincount(flat, weights=value[keep] * weight[keep], minlength=size)
    counts = np.bincount(flat, weights=weight[keep], minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(counts > 0, sums / np.maximum(counts, 1e-12), np.nan)
    return Grid(ids, t0, step, values.reshape(len(ids), n_bins))


def load_grid(
    store: TimeSeriesStore,
    metric: str,
    kind: str | None,
    start: datetime,
    end: datetime,
    step: timedelta = STEP,
    entity_ids: Sequence[str] | None = None,
    *,
    parent: dict[str, str] | None = None,
    trim: bool = False,
) -> Grid:
    """One store query -> grid (bucket means computed by the store). ``trim``: start the grid
    at the first bin with data (a store holding an hour needs no 28-day grid)."""
    t0 = floor_time(start, step)
    frame = store.observations_frame(metric, kind, t0, utc(end), bucket=step)
    if trim and frame.num_rows:
        first = pc.min(frame.column("ts")).as_py()
        t0 = max(t0, floor_time(first, step))
    return grid_from_frame(frame, t0, end, step, entity_ids, parent=parent)


# --- road-link metadata ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """What analytics need to know about a road link (or a detector), display names included.

    ``district``: the speed map gives none, so a link takes the district of the nearest TD
    traffic detector (packaged table, ~790 points over all 18 districts); ``near_en/zh`` names
    that detector's road when it is within ``NEAR_M`` metres, which says more than the link's
    node numbers."""

    entity_id: str
    name_en: str
    name_zh: str
    region: str | None
    road_type: str | None
    district: str | None
    lat: float | None
    lon: float | None
    length_km: float
    near_en: str | None = None
    near_zh: str | None = None
    properties: dict[str, object] = field(default_factory=dict)


NEAR_M = 600.0
DEFAULT_LENGTH_KM = 0.5
"""Weight of a link without coordinates in length-weighted area means."""


def haversine_km(
    lat1: FloatArray, lon1: FloatArray, lat2: FloatArray, lon2: FloatArray
) -> FloatArray:
    r = 6371.0088
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp = p2 - p1
    dl = np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return np.asarray(2 * r * np.arcsin(np.sqrt(np.clip(a, 0, 1))), dtype=np.float64)


DetectorPoints = tuple[FloatArray, FloatArray, tuple[str, ...], tuple[str, ...], tuple[str, ...]]


@cache
def _detector_points() -> DetectorPoints:
    refs = sorted(detector_reference().values(), key=lambda r: r.id)
    return (
        np.array([r.lat for r in refs]),
        np.array([r.lon for r in refs]),
        tuple(r.district for r in refs),
        tuple(r.road_en for r in refs),
        tuple(r.road_tc for r in refs),
    )


def nearest_district(lat: float, lon: float) -> tuple[str | None, float, str | None, str | None]:
    """(district, distance km, road EN, road ZH) of the TD detector nearest to a point."""
    lats, lons, districts, roads_en, roads_zh = _detector_points()
    if lats.size == 0:
        return None, math.inf, None, None
    d = haversine_km(np.full_like(lats, lat), np.full_like(lons, lon), lats, lons)
    k = int(np.argmin(d))
    return districts[k] or None, float(d[k]), roads_en[k] or None, roads_zh[k] or None


def link_info(entity: Entity) -> LinkInfo:
    p = entity.properties or {}
    region = p.get("region")
    road_type = p.get("road_type")
    length = DEFAULT_LENGTH_KM
    try:
        coords = [float(p[k]) for k in ("start_lat", "start_lon", "end_lat", "end_lon")]
    except (KeyError, TypeError, ValueError):
        coords = []
    if len(coords) == 4 and all(math.isfinite(c) for c in coords):
        length = float(
            haversine_km(
                np.array([coords[0]]), np.array([coords[1]]), np.array([coords[2]]),
                np.array([coords[3]]),
            )[0]
        )
        length = max(length, 0.05)
    district = entity.district
    near_en = near_zh = None
    if entity.lat is not None and entity.lon is not None:
        found, dist_km, road_en, road_zh = nearest_district(entity.lat, entity.lon)
        district = district or found
        if dist_km * 1000 <= NEAR_M:
            near_en, near_zh = road_en, road_zh
    return LinkInfo(
        entity_id=entity.id,
        name_en=entity.name_en or entity.id,
        name_zh=entity.name_zh or entity.name_en or entity.id,
        region=str(region) if region else None,
        road_type=str(road_type) if road_type else None,
        district=district,
        lat=entity.lat,
        lon=entity.lon,
        length_km=round(length, 3),
        near_en=near_en,
        near_zh=near_zh,
        properties=dict(p),
    )


def detector_parents(store: TimeSeriesStore) -> dict[str, str]:
    """Lane entity id -> detector entity id (``td-detector:X:fast-lane`` -> ``td-detector:X``):
    detector anomalies pool the lanes, as one lane alone is noisy and often empty."""
    out: dict[str, str] = {}
    for e in store.entities(DETECTOR_LANE_KIND):
        parent = (e.properties or {}).get("detector")
        out[e.id] = str(parent) if parent else e.id.rsplit(":", 1)[0]
    return out
