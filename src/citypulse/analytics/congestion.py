"""Congestion index per road link, region and district; hourly and daily patterns; the worst
links now against the same time last week.

**Index**: ``1 - speed / free-flow speed``, clipped to [0, 1]: 0 = the road runs at its
free-flow speed, 0.5 = at half of it, 1 = standing still. Free flow is learnt per link from
history (``baseline.free_flow_speeds``). It reads the same on a 110 km/h expressway and a
50 km/h street, which raw speeds do not.

**Areas**: a region's or district's index is the length-weighted mean over its links with a
reading (a 2 km flyover counts more than a 100 m slip road). Regions are the speed map's own
(``HK``, ``K``, ``TM``, ``ST``); districts come from the nearest TD detector
(``history.link_info``).

**Now**: each link's newest 5-minute bin within the last ``RECENT`` of the data's newest time
(data time, not the wall clock, so a replayed or demo store reads the same);
**last week**: the mean of the link's bins within +-10 minutes of the same instant 7 days
earlier.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from citypulse.analytics.history import (
    HK_OFFSET_S,
    FloatArray,
    Grid,
    LinkInfo,
    from_epoch_s,
    hour_of_day,
    is_weekend,
)
from citypulse.feeds.base import HKT
from citypulse.feeds.reference import REGION_NAMES

METRIC = "congestion_index"
RECENT = timedelta(minutes=15)
WEEK = timedelta(days=7)
LAST_WEEK_HALF_WINDOW = timedelta(minutes=10)
REGION_KIND = "traffic-region"
DISTRICT_KIND = "traffic-district"

DISTRICT_ZH: Mapping[str, str] = {
    "Central & Western": "中西區", "Wan Chai": "灣仔", "Eastern": "東區", "Southern": "南區",
    "Yau Tsim Mong": "油尖旺", "Sham Shui Po": "深水埗", "Kowloon City": "九龍城",
    "Wong Tai Sin": "黃大仙", "Kwun Tong": "觀塘", "Kwai Tsing": "葵青", "Tsuen Wan": "荃灣",
    "Tuen Mun": "屯門", "Yuen Long": "元朗", "North": "北區", "Tai Po": "大埔", "Sha Tin": "沙田",
    "Sai Kung": "西貢", "Islands": "離島",
}
"""Traditional Chinese names of the 18 districts, as TD's detector table spells them."""

_SLUG = re.compile(r"[^a-z0-9]+")


def slug(text: str) -> str:
    """``Central & Western`` -> ``central_western``: the district ids of ``/districts/{id}``
    (HKO/EPD's own ids)."""
    return _SLUG.sub("_", text.lower().replace("&", " ")).strip("_")


def region_entity_id(code: str) -> str:
    return f"{REGION_KIND}:{code}"


def district_entity_id(name: str) -> str:
    return f"{DISTRICT_KIND}:{slug(name)}"


def area_names(level: str, key: str) -> tuple[str, str]:
    if level == "region":
        return REGION_NAMES.get(key, (key, key))
    if level == "city":
        return ("Hong Kong", "香港")
    return key, DISTRICT_ZH.get(key, key)


def congestion_index(speed: FloatArray, free_flow: FloatArray) -> FloatArray:
    """``1 - speed / free_flow`` clipped to [0, 1]; NaN where either is missing."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ci = 1.0 - np.asarray(speed, np.float64) / np.asarray(free_flow, np.float64)
    return np.asarray(np.clip(ci, 0.0, 1.0), dtype=np.float64)


def weighted_area_means(
    ci: FloatArray, weights: FloatArray, groups: Sequence[str | None]
) -> tuple[list[str], FloatArray, FloatArray]:
    """Length-weighted mean of ``ci`` rows per group, per column: (keys, means [G x T],
    contributing links [G x T]). Rows with no group are left out."""
    keys = sorted({g for g in groups if g})
    pos = {k: i for i, k in enumerate(keys)}
    member = np.zeros((len(keys), len(groups)))
    for r, g in enumerate(groups):
        if g:
            member[pos[g], r] = weights[r]
    ok = ~np.isnan(ci)
    vals = np.where(ok, ci, 0.0)
    num = member @ vals
    den = member @ ok.astype(np.float64)
    cnt = (member > 0).astype(np.float64) @ ok.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(den > 0, num / np.maximum(den, 1e-12), np.nan)
    return keys, np.asarray(means, np.float64), np.asarray(cnt, np.float64)


@dataclass(frozen=True, slots=True)
class LinkCongestion:
    entity_id: str
    name_en: str
    name_zh: str
    near_en: str | None
    near_zh: str | None
    region: str | None
    district: str | None
    road_type: str | None
    length_km: float
    free_flow_kmh: float
    free_flow_source: str
    speed_kmh: float | None
    index: float | None
    ts: datetime | None
    last_week_speed_kmh: float | None
    last_week_index: float | None
    change: float | None


@dataclass(frozen=True, slots=True)
class AreaCongestion:
    level: str  # city | region | district
    key: str
    entity_id: str
    name_en: str
    name_zh: str
    index: float | None
    links: int
    links_total: int
    length_km: float
    last_week_index: float | None
    change: float | None


@dataclass(frozen=True, slots=True)
class CongestionSnapshot:
    at: datetime | None
    last_week_at: datetime | None
    links: list[LinkCongestion]
    city: AreaCongestion
    regions: list[AreaCongestion]
    districts: list[AreaCongestion]
    free_flow_sources: dict[str, int]

    def worst(self, n: int = 10) -> list[LinkCongestion]:
        ranked = [x for x in self.links if x.index is not None]
        ranked.sort(key=lambda x: (-(x.index or 0.0), x.entity_id))
        return ranked[:n]

    def worse_than_last_week(self, n: int = 10) -> list[LinkCongestion]:
        ranked = [x for x in self.links if x.change is not None]
        ranked.sort(key=lambda x: (-(x.change or 0.0), x.entity_id))
        return [x for x in ranked[:n] if (x.change or 0.0) > 0]


def _r(v: float | None, nd: int = 3) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), nd)


def _latest(values: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(last non-NaN value per row, its column; NaN/-1 when none)."""
    ok = ~np.isnan(values)
    has = ok.any(axis=1)
    last = values.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1)
    vals = np.where(has, values[np.arange(len(values)), last], np.nan)
    return vals, np.where(has, last, -1).astype(np.float64)


def snapshot(
    recent: Grid,
    last_week: Grid | None,
    free_flow: FloatArray,
    free_flow_source: Sequence[str],
    infos: Mapping[str, LinkInfo],
) -> CongestionSnapshot:
    """Congestion now (newest bin per link in ``recent``) and a week earlier (mean of
    ``last_week``), per link and area. Rows of both grids follow ``recent.entity_ids``."""
    ids = recent.entity_ids
    speed, col = _latest(recent.values)
    ci_now = congestion_index(speed, free_flow)
    lw_speed = np.full(len(ids), np.nan)
    if last_week is not None and last_week.values.size:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lw_speed = np.nanmean(last_week.values, axis=1)
    ci_lw = congestion_index(lw_speed, free_flow)
    newest = recent.last_bin_with_data()
    at = recent.bin_time(newest) if newest is not None else None
    lw_at = at - WEEK if at is not None else None

    links: list[LinkCongestion] = []
    for i, e in enumerate(ids):
        info = infos.get(e)
        idx_now = _r(ci_now[i])
        idx_lw = _r(ci_lw[i])
        links.append(
            LinkCongestion(
                entity_id=e,
                name_en=info.name_en if info else e,
                name_zh=info.name_zh if info else e,
                near_en=info.near_en if info else None,
                near_zh=info.near_zh if info else None,
                region=info.region if info else None,
                district=info.district if info else None,
                road_type=info.road_type if info else None,
                length_km=info.length_km if info else 0.5,
                free_flow_kmh=round(float(free_flow[i]), 1),
                free_flow_source=free_flow_source[i],
                speed_kmh=_r(speed[i], 1),
                index=idx_now,
                ts=recent.bin_time(int(col[i])) if col[i] >= 0 else None,
                last_week_speed_kmh=_r(lw_speed[i], 1),
                last_week_index=idx_lw,
                change=_r(idx_now - idx_lw) if idx_now is not None and idx_lw is not None
                else None,
            )
        )

    weights = np.array([x.length_km for x in links]) if links else np.zeros(0)
    both = np.stack([ci_now, ci_lw], axis=1) if links else np.zeros((0, 2))

    def areas(level: str, groups: list[str | None]) -> list[AreaCongestion]:
        keys, means, counts = weighted_area_means(both, weights, groups)
        out = []
        for k, key in enumerate(keys):
            members = [i for i, g in enumerate(groups) if g == key]
            now_v, lw_v = _r(means[k, 0]), _r(means[k, 1])
            en, zh = area_names(level, key)
            out.append(
                AreaCongestion(
                    level=level,
                    key=key,
                    entity_id=(
                        region_entity_id(key) if level == "region"
                        else district_entity_id(key) if level == "district"
                        else "hk"
                    ),
                    name_en=en,
                    name_zh=zh,
                    index=now_v,
                    links=int(counts[k, 0]),
                    links_total=len(members),
                    length_km=round(float(weights[members].sum()), 2),
                    last_week_index=lw_v,
                    change=_r(now_v - lw_v) if now_v is not None and lw_v is not None else None,
                )
            )
        return out

    city = areas("city", ["hk"] * len(links))
    empty_city = AreaCongestion(
        "city", "hk", "hk", "Hong Kong", "香港", None, 0, 0, 0.0, None, None
    )
    sources: dict[str, int] = {}
    for s in free_flow_source:
        sources[s] = sources.get(s, 0) + 1
    return CongestionSnapshot(
        at=at,
        last_week_at=lw_at,
        links=links,
        city=city[0] if city else empty_city,
        regions=areas("region", [x.region for x in links]),
        districts=areas("district", [x.district for x in links]),
        free_flow_sources=sources,
    )


# --- patterns --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HourlyPattern:
    key: str
    name_en: str
    name_zh: str
    weekday: list[float | None]  # 24 hourly means, HKT
    weekend: list[float | None]


@dataclass(frozen=True, slots=True)
class DailyPoint:
    date: str  # HKT date
    mean: float | None
    peak_hour: int | None
    peak: float | None


@dataclass(frozen=True, slots=True)
class DailyPattern:
    key: str
    name_en: str
    name_zh: str
    days: list[DailyPoint]


def patterns(
    grid: Grid,
    free_flow: FloatArray,
    infos: Mapping[str, LinkInfo],
    group: str = "city",
) -> tuple[list[HourlyPattern], list[DailyPattern]]:
    """Mean congestion index by hour of day (weekdays and weekends apart) and per day with its
    busiest hour, for the city, each region or each district (``group``)."""
    ci = congestion_index(grid.values, free_flow[:, None])
    weights = np.array([infos[e].length_km if e in infos else 0.5 for e in grid.entity_ids])
    if group == "region":
        groups: list[str | None] = [
            infos[e].region if e in infos else None for e in grid.entity_ids
        ]
    elif group == "district":
        groups = [infos[e].district if e in infos else None for e in grid.entity_ids]
    else:
        groups = ["hk"] * len(grid.entity_ids)
    keys, means, _ = weighted_area_means(ci, weights, groups)
    level = "city" if group not in ("region", "district") else group
    times = grid.times_s()
    hours = hour_of_day(times)
    weekend = is_weekend(times)
    local_day = (times + HK_OFFSET_S) // 86_400
    days = np.unique(local_day)
    hourly: list[HourlyPattern] = []
    daily: list[DailyPattern] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for k, key in enumerate(keys):
            row = means[k]
            wd: list[float | None] = []
            we: list[float | None] = []
            for h in range(24):
                wd.append(_r(np.nanmean(row[(hours == h) & ~weekend])) if np.any(
                    (hours == h) & ~weekend) else None)
                we.append(_r(np.nanmean(row[(hours == h) & weekend])) if np.any(
                    (hours == h) & weekend) else None)
            points: list[DailyPoint] = []
            for d in days:
                in_day = local_day == d
                day_vals = row[in_day]
                by_hour = [
                    (h, np.nanmean(day_vals[hours[in_day] == h]))
                    for h in range(24)
                    if np.any(~np.isnan(day_vals[hours[in_day] == h]))
                ]
                date = from_epoch_s(int(d) * 86_400).astimezone(HKT).date().isoformat()
                if not by_hour:
                    points.append(DailyPoint(date, None, None, None))
                    continue
                peak_h, peak_v = max(by_hour, key=lambda x: x[1])
                points.append(DailyPoint(date, _r(np.nanmean(day_vals)), peak_h, _r(peak_v)))
            en, zh = area_names(level, key)
            hourly.append(HourlyPattern(key, en, zh, wd, we))
            daily.append(DailyPattern(key, en, zh, points))
    return hourly, daily
