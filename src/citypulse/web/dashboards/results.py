"""What a tile query returns and what a tile's state is: plain dataclasses, shared by the query
engine, the HTML views, the JSON API and the cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from citypulse.model import Event


@dataclass(frozen=True, slots=True)
class Value:
    value: float | None
    label: str | None = None
    ts: datetime | None = None


@dataclass(slots=True)
class Row:
    """One entity with the values a tile shows (a table row, a map marker)."""

    id: str
    name_en: str | None = None
    name_zh: str | None = None
    district: str | None = None
    lat: float | None = None
    lon: float | None = None
    values: dict[str, Value] = field(default_factory=dict)
    props: dict[str, Any] = field(default_factory=dict)

    @property
    def ts(self) -> datetime | None:
        stamps = [v.ts for v in self.values.values() if v.ts is not None]
        return max(stamps) if stamps else None


@dataclass(slots=True)
class SeriesData:
    """Aligned series for a chart: ``x`` in epoch seconds, one list per key in ``ys``."""

    x: list[int] = field(default_factory=list)
    ys: dict[str, list[float | None]] = field(default_factory=dict)
    bucket_s: int = 3600


@dataclass(slots=True)
class Figure:
    key: str
    title_en: str
    title_zh: str
    value: float | None
    unit: str = ""
    decimals: int = 0
    text: str | None = None
    band: str | None = None
    ts: datetime | None = None


@dataclass(slots=True)
class Area:
    """One district's values (choropleths, counts by district)."""

    district: str
    values: dict[str, Value] = field(default_factory=dict)


@dataclass(slots=True)
class TileData:
    updated: datetime | None = None
    rows: list[Row] = field(default_factory=list)
    series: SeriesData | None = None
    events: list[Event] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    areas: list[Area] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (
            self.rows
            or (self.series is not None and self.series.x)
            or self.events
            or any(f.value is not None or f.text for f in self.figures)
            or self.areas
            or self.extra.get("has_data")
        )


State = Literal["ok", "stale", "unavailable", "empty", "error", "pending"]


@dataclass(frozen=True, slots=True)
class TileStatus:
    """``unavailable``: the tile's feed is down (``since``: when data last arrived, ``reason``:
    the feed's last error); ``stale``: data older than the tile's ``stale_after``; ``empty``:
    nothing stored yet; ``error``: the query failed; ``pending``: still computing."""

    state: State
    since: datetime | None = None
    reason: str | None = None
    age_s: float | None = None
    checked: datetime | None = None
    """When the tile's feeds last delivered successfully (for tiles with nothing to show)."""


@dataclass(frozen=True, slots=True)
class TileParams:
    """Validated page parameters that queries may use."""

    district: str | None = None
    vehicle: str | None = None
    start: date | None = None
    end: date | None = None
    lat: float | None = None
    lon: float | None = None

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.district, self.vehicle, self.start, self.end, self.lat, self.lon)

    def query_string(self) -> str:
        from urllib.parse import urlencode

        pairs = [
            (k, str(v))
            for k, v in (("district", self.district), ("vehicle", self.vehicle),
                         ("start", self.start), ("end", self.end), ("lat", self.lat),
                         ("lon", self.lon))
            if v is not None
        ]
        return urlencode(pairs)
