"""Colour bands: how a value becomes a colour on a map, a chip or an area, always with a name.

Colour is never the only cue: every band has a title shown beside or inside the colour, and the
ink (text) colour on each fill meets WCAG AA contrast (checked by the tests). AQHI bands follow
EPD's health-risk categories; vacancy, saturation and severity are citypulse's own.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


@dataclass(frozen=True, slots=True)
class Band:
    key: str
    title_en: str
    title_zh: str
    colour: str
    ink: str = "#ffffff"
    upper: float = math.inf
    """Values up to and including ``upper`` fall in this band (numeric schemes)."""
    labels: tuple[str, ...] = ()
    """Observation labels that select this band whatever the value (categorical states)."""
    cls: str = "b-none"
    """CSS class carrying the colours (pages use classes, never style attributes)."""

    def title(self, lang: str) -> str:
        return self.title_zh if lang.startswith("zh") else self.title_en


NO_DATA = Band("none", "No data", "沒有數據", "#6b7280")

_SCHEMES: dict[str, tuple[Band, ...]] = {
    # EPD AQHI health-risk categories: 1-3 low, 4-6 moderate, 7 high, 8-10 very high, 10+ serious
    # (stored as 11).
    "aqhi": (
        Band("low", "Low", "低", "#1b7a34", upper=3),
        Band("moderate", "Moderate", "中", "#f0b400", "#14181c", upper=6),
        Band("high", "High", "高", "#c4221f", upper=7),
        Band("very_high", "Very high", "甚高", "#6b3200", upper=10),
        Band("serious", "Serious", "嚴重", "#000000"),
    ),
    "vacancy": (
        Band("closed", "Closed", "關閉", "#4a5561", labels=("closed",)),
        Band("full", "Full", "滿", "#b3201d", upper=0),
        Band("few", "1-9 free", "1-9 個空位", "#9a4d00", upper=9),
        Band("some", "10-49 free", "10-49 個空位", "#0b5394", upper=49),
        Band("plenty", "50+ free", "50 個或以上空位", "#1b7a34"),
    ),
    "vacancy_flag": (
        Band("closed", "Closed", "關閉", "#4a5561", labels=("closed",)),
        Band("full", "Full", "滿", "#b3201d", upper=0),
        Band("available", "Spaces available", "有空位", "#1b7a34"),
    ),
    "saturation": (
        Band("good", "Good", "暢順", "#16803c", labels=("good",)),
        Band("average", "Average", "一般", "#9a4d00", labels=("average",)),
        Band("bad", "Congested", "擠塞", "#c4221f", labels=("bad",)),
    ),
    "jti": (
        Band("green", "Smooth", "暢順", "#16803c", labels=("green",)),
        Band("amber", "Slow", "緩慢", "#9a4d00", labels=("amber",)),
        Band("red", "Congested", "擠塞", "#c4221f", labels=("red",)),
    ),
    "severity": (
        Band("info", "Information", "資訊", "#4a5561", labels=("info",)),
        Band("low", "Low", "低", "#0b5394", labels=("low",)),
        Band("moderate", "Moderate", "中", "#9a4d00", labels=("moderate",)),
        Band("high", "High", "高", "#c4221f", labels=("high",)),
        Band("severe", "Severe", "嚴重", "#5c0a0a", labels=("severe",)),
    ),
    "alert_state": (
        Band("normal", "Normal", "正常", "#1b7a34", labels=("normal",)),
        Band("info", "Information", "資訊", "#0b5394", labels=("info",)),
        Band("low", "Low", "低", "#0b5394", labels=("low",)),
        Band("moderate", "Moderate", "中", "#9a4d00", labels=("moderate",)),
        Band("high", "High", "高", "#c4221f", labels=("high",)),
        Band("severe", "Severe", "嚴重", "#5c0a0a", labels=("severe",)),
    ),
    "speed": (
        Band("slow", "Under 30 km/h", "每小時 30 公里以下", "#c4221f", upper=29.999),
        Band("moderate", "30-59 km/h", "每小時 30-59 公里", "#9a4d00", upper=59.999),
        Band("fast", "60 km/h or more", "每小時 60 公里或以上", "#16803c"),
    ),
    "temperature": (
        Band("cold", "Under 12 °C", "12 °C 以下", "#1f4e79", upper=11.999),
        Band("cool", "12-19 °C", "12-19 °C", "#4f8fc0", "#14181c", upper=19.999),
        Band("mild", "20-27 °C", "20-27 °C", "#f3d27a", "#14181c", upper=27.999),
        Band("warm", "28-32 °C", "28-32 °C", "#f09a4a", "#14181c", upper=32.999),
        Band("hot", "33 °C or more", "33 °C 或以上", "#b3201d"),
    ),
    # Rainfall in the past hour; 30 / 50 / 70 mm are HKO's amber / red / black rainstorm levels.
    "rainfall": (
        Band("dry", "No rain", "無雨", "#eef3f7", "#14181c", upper=0),
        Band("light", "Under 10 mm", "10 毫米以下", "#bcd7ea", "#14181c", upper=9.999),
        Band("heavy", "10-29 mm", "10-29 毫米", "#5b9bd5", "#14181c", upper=29.999),
        Band("amber", "30-49 mm", "30-49 毫米", "#f0b400", "#14181c", upper=49.999),
        Band("red", "50-69 mm", "50-69 毫米", "#c4221f", upper=69.999),
        Band("black", "70 mm or more", "70 毫米或以上", "#000000"),
    ),
    "layer": (
        Band("aqhi", "AQHI station", "空氣質素監測站", "#1b7a34", labels=("aqhi-station",)),
        Band("weather", "Weather station", "氣象站", "#0b5394", labels=("weather-station",)),
        Band("carpark", "Car park", "停車場", "#5a2d82", labels=("carpark",)),
        Band("sensor", "Village sensor", "鄉村感應器", "#9a4d00", labels=("sensor",)),
        Band("news", "Traffic incident", "交通事故", "#c4221f", labels=("traffic-news",)),
    ),
    "flood": (
        Band("normal", "Below 50 cm", "50 厘米以下", "#1b7a34", upper=49.999),
        Band("watch", "50-99 cm", "50-99 厘米", "#9a4d00", upper=99.999),
        Band("flood", "100 cm or more", "100 厘米或以上", "#c4221f"),
    ),
}
SCHEMES: Final = MappingProxyType({
    name: tuple(dataclasses.replace(b, cls=f"b-{name}-{b.key}") for b in bands)
    for name, bands in _SCHEMES.items()
})

SEQUENTIAL = ("#e3eef9", "#b3d0ec", "#6fa8d6", "#2f78b5", "#0b3f75")
SEQUENTIAL_INK = ("#14181c", "#14181c", "#14181c", "#ffffff", "#ffffff")


def band_for(scheme: str | Sequence[Band], value: float | None, label: str | None = None
             ) -> Band:
    """The band of ``value`` (or of ``label`` for categorical states); NO_DATA if neither."""
    bands = SCHEMES.get(scheme, ()) if isinstance(scheme, str) else scheme
    if label:
        for b in bands:
            if label in b.labels:
                return b
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NO_DATA
    for b in bands:
        if b.labels:
            continue
        if value <= b.upper:
            return b
    return NO_DATA


def quantile_bands(values: Sequence[float], unit_en: str = "", unit_zh: str = "",
                   classes: int = 5) -> tuple[Band, ...]:
    """Sequential bands with breaks at quantiles of ``values`` (choropleth of counts)."""
    data = sorted(v for v in values if v is not None and not math.isnan(v))
    if not data:
        return ()
    breaks: list[float] = []
    for i in range(1, classes):
        q = data[min(len(data) - 1, round(i * (len(data) - 1) / classes))]
        if not breaks or q > breaks[-1]:
            breaks.append(q)
    bands: list[Band] = []
    low = data[0]
    for i, upper in enumerate([*breaks, math.inf]):
        hi = data[-1] if math.isinf(upper) else upper
        text_en = f"{_num(low)}-{_num(hi)}{unit_en}" if hi != low else f"{_num(low)}{unit_en}"
        text_zh = f"{_num(low)}-{_num(hi)}{unit_zh}" if hi != low else f"{_num(low)}{unit_zh}"
        c = min(len(SEQUENTIAL) - 1, round(i * (len(SEQUENTIAL) - 1) / max(1, len(breaks))))
        bands.append(Band(f"q{i}", text_en, text_zh, SEQUENTIAL[c], SEQUENTIAL_INK[c],
                          upper=upper, cls=f"b-seq-{c}"))
        low = upper + (1 if float(upper).is_integer() else 0.01)
        if hi >= data[-1]:
            break
    return tuple(bands)


def _num(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() or abs(v) >= 100 else f"{v:,.1f}"


def stylesheet() -> str:
    """CSS classes for every band (``--band`` fill, ``--band-ink`` text on it)."""
    lines = ["/* Generated by citypulse.web.dashboards.bands: band colours. */",
             f".{NO_DATA.cls} {{ --band: {NO_DATA.colour}; --band-ink: {NO_DATA.ink}; }}"]
    for bands in SCHEMES.values():
        for b in bands:
            lines.append(f".{b.cls} {{ --band: {b.colour}; --band-ink: {b.ink}; }}")
    for i, (colour, ink) in enumerate(zip(SEQUENTIAL, SEQUENTIAL_INK, strict=True)):
        lines.append(f".b-seq-{i} {{ --band: {colour}; --band-ink: {ink}; }}")
    return "\n".join(lines) + "\n"
