"""Incident and anomaly detection on road-link and detector speeds, linked to traffic news.

Score: for each entity and 5-minute bin, ``z = (speed - profile) / free_flow / scale`` where the
profile is the entity's robust time-of-week baseline and ``scale`` its usual spread
(``baseline.py``). Daily peaks are in the profile, so a road that jams every evening scores
near 0 at its evening jam; a road running far below its normal speed for this time of week
scores strongly negative.

An anomaly is a run of at least ``MIN_BINS`` bins (15 minutes) each with ``z <= -Z_MIN`` and a
speed at least ``MIN_DROP`` below the profile; a missing bin inside a run does not break it.
Persistence and the two thresholds together keep noise (one odd reading) and tiny absolute
differences (a crawling bottleneck crawling slightly more) out. Unusually *fast* traffic is
not reported: nobody needs an alert for it.

Results become ``Event`` objects of kind ``traffic-anomaly`` with a stable id per entity and
start bin, so re-running the detector updates an event (and closes it when traffic recovers)
instead of duplicating it. When a TD traffic news incident coincides in time (+-30 minutes)
and place (within 3 km when both have coordinates, else the same district), the event carries
the news event's id.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from citypulse.analytics.baseline import Baseline
from citypulse.analytics.history import FloatArray, Grid, LinkInfo, haversine_km
from citypulse.model import Event

KIND = "traffic-anomaly"
Z_MIN = 4.0
MIN_DROP = 0.2
MIN_BINS = 3
MAX_GAP = 1
NEWS_SLACK = timedelta(minutes=30)
NEWS_RADIUS_KM = 3.0
SEVERITY = ((12.0, "high"), (7.0, "moderate"), (0.0, "low"))
"""Peak score -> severity: a lane closure at free-flow time scores ~15-20, a slowdown to
60 % of normal ~9."""


def severity(score: float) -> str:
    for threshold, name in SEVERITY:
        if score >= threshold:
            return name
    return "low"


@dataclass(frozen=True, slots=True)
class Anomaly:
    entity_id: str
    entity_kind: str
    start: datetime
    end: datetime | None  # None: still going on at the end of the data
    last_bin: datetime
    score: float  # peak of -z
    mean_score: float
    observed_kmh: float  # mean over the run
    baseline_kmh: float
    drop_pct: float
    bins: int
    name_en: str | None = None
    name_zh: str | None = None
    region: str | None = None
    district: str | None = None
    lat: float | None = None
    lon: float | None = None
    news_event_ids: tuple[str, ...] = ()
    news_title_en: str | None = None
    news_title_zh: str | None = None

    @property
    def severity(self) -> str:
        return severity(self.score)

    @property
    def event_id(self) -> str:
        return f"{KIND}:{self.entity_id}:{self.start:%Y%m%dT%H%MZ}"


@dataclass(frozen=True, slots=True)
class Scores:
    """z score and relative drop for every entity and bin of a grid."""

    grid: Grid
    expected: FloatArray
    z: FloatArray
    drop: FloatArray


def score_grid(grid: Grid, baseline: Baseline) -> Scores:
    base = baseline.aligned(grid)
    expected = base.profile_at(slice(None), grid.times_s())
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (grid.values - expected) / base.free_flow[:, None] / base.scale[:, None]
        drop = 1.0 - grid.values / expected
    return Scores(grid, expected, np.asarray(z, np.float64), np.asarray(drop, np.float64))


def _runs(flag: np.ndarray[Any, np.dtype[np.bool_]], seen: np.ndarray[Any, np.dtype[np.bool_]],
          max_gap: int) -> list[tuple[int, int]]:
    """(first, last) bins of runs of ``flag``; up to ``max_gap`` unobserved bins may sit inside
    a run, an observed unflagged bin ends it."""
    runs: list[tuple[int, int]] = []
    start = last = -1
    for j in (int(k) for k in np.flatnonzero(flag)):
        if start >= 0 and j - last - 1 <= max_gap and not seen[last + 1 : j].any():
            last = j
            continue
        if start >= 0:
            runs.append((start, last))
        start = last = j
    if start >= 0:
        runs.append((start, last))
    return runs


def detect(
    scores: Scores,
    *,
    entity_kind: str = "road-link",
    infos: Mapping[str, LinkInfo] | None = None,
    z_min: float = Z_MIN,
    min_drop: float = MIN_DROP,
    min_bins: int = MIN_BINS,
    max_gap: int = MAX_GAP,
    since: datetime | None = None,
) -> list[Anomaly]:
    """Anomalies in a scored grid, newest first; ``since``: only runs still going on at or
    after that time. A run touching the grid's last observed bin is open (``end`` None)."""
    grid = scores.grid
    flag = (scores.z <= -z_min) & (scores.drop >= min_drop)
    seen = ~np.isnan(grid.values)
    newest = grid.last_bin_with_data()
    out: list[Anomaly] = []
    infos = infos or {}
    for i in (int(k) for k in np.flatnonzero(flag.any(axis=1))):
        for a, b in _runs(flag[i], seen[i], max_gap):
            bins = int(flag[i, a : b + 1].sum())
            if bins < min_bins:
                continue
            last_bin = grid.bin_time(b)
            open_run = newest is not None and b >= newest - max_gap
            end = None if open_run else grid.bin_time(b + 1)
            if since is not None and (end is not None and end <= since):
                continue
            sel = flag[i, a : b + 1]
            obs = grid.values[i, a : b + 1][sel]
            exp = scores.expected[i, a : b + 1][sel]
            zs = -scores.z[i, a : b + 1][sel]
            info = infos.get(grid.entity_ids[i])
            out.append(
                Anomaly(
                    entity_id=grid.entity_ids[i],
                    entity_kind=entity_kind,
                    start=grid.bin_time(a),
                    end=end,
                    last_bin=last_bin,
                    score=round(float(zs.max()), 2),
                    mean_score=round(float(zs.mean()), 2),
                    observed_kmh=round(float(obs.mean()), 1),
                    baseline_kmh=round(float(exp.mean()), 1),
                    drop_pct=round(float((1 - obs.mean() / exp.mean()) * 100), 1),
                    bins=bins,
                    name_en=info.name_en if info else None,
                    name_zh=info.name_zh if info else None,
                    region=info.region if info else None,
                    district=info.district if info else None,
                    lat=info.lat if info else None,
                    lon=info.lon if info else None,
                )
            )
    out.sort(key=lambda x: (x.start, x.entity_id), reverse=True)
    return out


# --- traffic news -----------------------------------------------------------------------------


_DISTRICT_NOISE = re.compile(r"\bdistrict\b|\band\b|[^a-z0-9\u4e00-\u9fff]+|區$")


def _norm_district(name: str | None) -> str:
    """Spelling-insensitive district key: ``Central & Western District`` and ``Central and
    Western`` (traffic news and the detector table disagree) give the same key."""
    return _DISTRICT_NOISE.sub("", (name or "").strip().lower())


def _event_point(event: Event) -> tuple[float, float] | None:
    p = event.properties or {}
    try:
        lat, lon = float(p["lat"]), float(p["lon"])
    except (KeyError, TypeError, ValueError):
        return None
    return (lat, lon) if math.isfinite(lat) and math.isfinite(lon) else None


def link_news(
    anomalies: Sequence[Anomaly], news: Iterable[Event], now: datetime
) -> list[Anomaly]:
    """Attach the traffic news incidents that coincide with each anomaly (see module doc);
    the closest in place, then in start time, comes first."""
    items = list(news)
    out: list[Anomaly] = []
    for a in anomalies:
        a_end = a.end or now
        matches: list[tuple[float, float, Event]] = []
        for ev in items:
            ev_end = ev.ends_at or now
            if a.start > ev_end + NEWS_SLACK or a_end < ev.starts_at - NEWS_SLACK:
                continue
            point = _event_point(ev)
            if point is not None and a.lat is not None and a.lon is not None:
                dist = float(haversine_km(np.array([a.lat]), np.array([a.lon]),
                                          np.array([point[0]]), np.array([point[1]]))[0])
                if dist > NEWS_RADIUS_KM:
                    continue
            elif a.district and any(
                _norm_district(d) == _norm_district(a.district) for d in ev.districts
            ):
                dist = NEWS_RADIUS_KM  # same district: ranks after a measured match
            else:
                continue
            matches.append((dist, abs((ev.starts_at - a.start).total_seconds()), ev))
        if not matches:
            out.append(a)
            continue
        matches.sort(key=lambda m: (m[0], m[1], m[2].id))
        best = matches[0][2]
        out.append(
            replace(
                a,
                news_event_ids=tuple(m[2].id for m in matches),
                news_title_en=best.title_en,
                news_title_zh=best.title_zh,
            )
        )
    return out


# --- events -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventText:
    title_en: str
    title_zh: str
    body_en: str
    body_zh: str
    extra: dict[str, Any] = field(default_factory=dict)


def _text(a: Anomaly) -> EventText:
    name_en = a.name_en or a.entity_id
    name_zh = a.name_zh or name_en
    where_en = f" ({a.district})" if a.district else ""
    title_en = f"Unusually slow traffic: {name_en}{where_en}"
    title_zh = f"車速異常緩慢：{name_zh}"
    body_en = (
        f"{a.observed_kmh:.0f} km/h against a usual {a.baseline_kmh:.0f} km/h for this time of "
        f"week ({a.drop_pct:.0f}% slower), score {a.score:.1f}."
    )
    body_zh = (
        f"平均車速 {a.observed_kmh:.0f} 公里／小時，此時段一般為 {a.baseline_kmh:.0f} 公里／小時"
        f"（慢 {a.drop_pct:.0f}%），異常分數 {a.score:.1f}。"
    )
    if a.news_title_en or a.news_title_zh:
        body_en += f" Traffic news: {a.news_title_en or a.news_title_zh}."
        body_zh += f" 交通消息：{a.news_title_zh or a.news_title_en}。"
    return EventText(title_en, title_zh, body_en, body_zh)


def to_event(a: Anomaly) -> Event:
    t = _text(a)
    props: dict[str, Any] = {
        "score": a.score,
        "mean_score": a.mean_score,
        "observed_kmh": a.observed_kmh,
        "baseline_kmh": a.baseline_kmh,
        "drop_pct": a.drop_pct,
        "bins": a.bins,
        "metric": "speed_kmh",
        "entity_kind": a.entity_kind,
        "last_bin": a.last_bin.isoformat(),
    }
    if a.region:
        props["region"] = a.region
    if a.lat is not None and a.lon is not None:
        props["lat"], props["lon"] = a.lat, a.lon
    if a.news_event_ids:
        props["news_event_id"] = a.news_event_ids[0]
        props["news_event_ids"] = list(a.news_event_ids)
    return Event(
        id=a.event_id,
        kind=KIND,
        severity=a.severity,
        starts_at=a.start,
        ends_at=a.end,
        title_en=t.title_en,
        title_zh=t.title_zh,
        body_en=t.body_en,
        body_zh=t.body_zh,
        entity_ids=(a.entity_id,),
        districts=(a.district,) if a.district else (),
        source="analytics",
        properties=props,
    )
