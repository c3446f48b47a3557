"""Live tiles for the home page (weather, AQHI, traffic) from the store's ``latest`` table.

The store may be empty (fresh install), still starting, or a stub: every tile then says 'no data
yet' instead of failing the page. Reads go through ``latest()``, which never scans history.
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from citypulse.store.base import LatestValue

log = logging.getLogger(__name__)
STALE_AFTER = timedelta(hours=3)
PREFERRED_WEATHER_STATIONS = (
    "hko-station:HKO",
    "hko-station:hko",
    "hko-station:hong-kong-observatory",
)

# AQHI health-risk bands (EPD): 1-3 low, 4-6 moderate, 7 high, 8-10 very high, 10+ serious.
AQHI_BANDS: tuple[tuple[float, str], ...] = (
    (3, "low"),
    (6, "moderate"),
    (7, "high"),
    (10, "very_high"),
    (float("inf"), "serious"),
)


@dataclass(frozen=True, slots=True)
class LiveTile:
    key: str  # weather | aqhi | traffic
    available: bool
    value: float | None = None
    value_text: str = ""
    entities: int = 0
    ts: datetime | None = None
    stale: bool = False
    band: str | None = None  # aqhi risk band
    detail: dict[str, Any] = field(default_factory=dict)


def aqhi_band(value: float) -> str:
    for upper, name in AQHI_BANDS:
        if value <= upper:
            return name
    return "serious"


def _latest(store: Any, metric: str, kind: str | None = None) -> list[LatestValue]:
    try:
        if kind is None:
            return list(store.latest(metric))
        return list(store.latest(metric, kind=kind))
    except Exception as exc:  # the store is optional for the portal: degrade, don't fail
        log.info("live tile %s unavailable: %s", metric, exc)
        return []


def _newest(values: Sequence[LatestValue]) -> datetime | None:
    stamps = [v.ts for v in values if v.ts is not None]
    return max(stamps) if stamps else None


def _is_stale(ts: datetime | None, now: datetime) -> bool:
    if ts is None:
        return True
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return now - ts > STALE_AFTER


def weather_tile(store: Any, now: datetime) -> LiveTile:
    values = [v for v in _latest(store, "temperature_c") if v.value is not None]
    if not values:
        return LiveTile("weather", False)
    preferred = [v for v in values if v.entity_id in PREFERRED_WEATHER_STATIONS]
    temps = [float(v.value) for v in values if v.value is not None]
    if preferred and preferred[0].value is not None:
        value, source = float(preferred[0].value), "observatory"
    else:
        value, source = statistics.median(temps), "median"
    ts = _newest(values)
    return LiveTile(
        "weather",
        True,
        value=value,
        value_text=f"{value:.1f}",
        entities=len(values),
        ts=ts,
        stale=_is_stale(ts, now),
        detail={"min": min(temps), "max": max(temps), "source": source},
    )


def aqhi_tile(store: Any, now: datetime) -> LiveTile:
    values = [v for v in _latest(store, "aqhi") if v.value is not None]
    if not values:
        return LiveTile("aqhi", False)
    worst = max(values, key=lambda v: float(v.value or 0))
    top = float(worst.value or 0)
    ts = _newest(values)
    text = worst.label if worst.label else (f"{top:.0f}" if top <= 10 else "10+")
    return LiveTile(
        "aqhi",
        True,
        value=top,
        value_text=text,
        entities=len(values),
        ts=ts,
        stale=_is_stale(ts, now),
        band=aqhi_band(top),
        detail={"median": statistics.median(float(v.value or 0) for v in values)},
    )


def traffic_tile(store: Any, now: datetime) -> LiveTile:
    values = _latest(store, "speed_kmh", "road-link") or _latest(store, "speed_kmh")
    speeds = [float(v.value) for v in values if v.value is not None]
    if not values:
        return LiveTile("traffic", False)
    labels = Counter(v.label for v in values if v.label)
    ts = _newest(values)
    mean = statistics.fmean(speeds) if speeds else None
    return LiveTile(
        "traffic",
        True,
        value=mean,
        value_text=f"{mean:.0f}" if mean is not None else "–",
        entities=len(values),
        ts=ts,
        stale=_is_stale(ts, now),
        detail={"labels": labels.most_common(4)},
    )


def live_tiles(store: Any, now: datetime | None = None) -> list[LiveTile]:
    """Blocking (the store is synchronous): call from a worker thread."""
    now = now or datetime.now(UTC)
    if store is None:
        return [LiveTile("weather", False), LiveTile("aqhi", False), LiveTile("traffic", False)]
    return [weather_tile(store, now), aqhi_tile(store, now), traffic_tile(store, now)]
