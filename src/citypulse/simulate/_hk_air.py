"""Deterministic air quality "truth" for the EPD simulators: hourly pollutant concentrations per
station (traffic peaks for NO2 at roadside sites, afternoon ozone, regional haze episodes in the
dry season, washout by rain) and the AQHI computed from them the way EPD does (added health
risk of 3-hour mean NO2, SO2, O3 and PM, banded 1..10, 11 = "10+")."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from functools import lru_cache

from citypulse.feeds._hk_common import Place, epd_station
from citypulse.feeds.base import HKT
from citypulse.simulate import _hk_weather as wx

STATION_ORDER = (
    "Central/Western", "Southern", "Eastern", "Kwun Tong", "Sham Shui Po", "Kwai Chung",
    "Tsuen Wan", "Tseung Kwan O", "Yuen Long", "Tuen Mun", "Tung Chung", "Tai Po", "Sha Tin",
    "North", "Tap Mun", "Causeway Bay", "Central", "Mong Kok",
)
"""EPD's order in the live file (general stations, then roadside)."""

CO_STATIONS = frozenset({"Tsuen Wan", "Tung Chung", "Causeway Bay", "Central", "Mong Kok"})
POLLUTANTS = ("NO2", "O3", "SO2", "CO", "PM10", "PM2.5")

# EPD's AQHI risk coefficients (per µg/m³) and the added-risk (%) upper bounds of bands 1..10.
BETA = {"NO2": 0.0004462559, "SO2": 0.0001393235, "O3": 0.0005116328,
        "PM10": 0.0002821751, "PM2.5": 0.0002180567}
AR_BANDS = (1.88, 3.76, 5.64, 7.52, 9.41, 11.29, 12.91, 15.07, 17.22, 19.37)


def stations() -> list[Place]:
    out = []
    for name in STATION_ORDER:
        place = epd_station(name)
        assert place is not None, name
        out.append(place)
    return out


def traffic(hour: float) -> float:
    return (0.55 + 0.5 * math.exp(-(((hour - 8.8) / 1.6) ** 2))
            + 0.6 * math.exp(-(((hour - 18.3) / 2.2) ** 2)))


def sun(hour: float) -> float:
    return max(0.0, math.sin(math.pi * (hour - 7) / 12))


@lru_cache(maxsize=2048)
def haze(day: object) -> float:
    """Regional pollution factor of a day: ~1, up to ~3 on dry-season haze days."""
    r = wx.rng_for("haze", day)
    month = getattr(day, "month", 1)
    dry = month in (10, 11, 12, 1, 2, 3)
    return 1.0 + (r.uniform(0.6, 2.2) if r.random() < (0.3 if dry else 0.06) else r.uniform(0, .3))


@lru_cache(maxsize=65536)
def concentrations(name: str, hour: datetime) -> dict[str, float | None]:
    """µg/m³ per pollutant at one station for the hour starting ``hour`` (UTC, on the hour);
    None = not measured there or missing (EPD writes ``-``)."""
    lt = hour.astimezone(HKT)
    h = lt.hour + 0.5
    place = epd_station(name)
    roadside = place is not None and place.extra == "roadside"
    r = wx.rng_for("air", name, hour.isoformat())
    site = wx.rng_for("air-site", name)
    factor = haze(lt.date())
    rate, _ = wx.rain_rate(hour)
    wash = 0.55 if rate > 2 else 1.0
    if wx.typhoon_stage(hour) is not None:
        factor, wash = 0.6, 0.5

    def noise() -> float:
        return r.lognormvariate(0, 0.15)

    no2 = (site.uniform(70, 110) if roadside else site.uniform(18, 45)) * traffic(h)
    o3 = (site.uniform(10, 25) if roadside else site.uniform(25, 55)) * (0.4 + 1.4 * sun(h))
    values: dict[str, float | None] = {
        "NO2": no2 * factor ** 0.5 * noise(),
        "O3": o3 * factor ** 0.7 * noise(),
        "SO2": site.uniform(2, 7) * noise(),
        "CO": site.uniform(450, 750) * traffic(h) * noise() if name in CO_STATIONS else None,
        "PM10": site.uniform(22, 40) * factor * wash * noise() * (1.2 if roadside else 1.0),
    }
    pm10 = values["PM10"]
    values["PM2.5"] = None if pm10 is None else pm10 * site.uniform(0.6, 0.75)
    for key in POLLUTANTS:
        if values[key] is not None and r.random() < 0.01:
            values[key] = None  # an instrument out for the hour
    return {k: (round(v, 1) if v is not None else None) for k, v in values.items()}


def aqhi(name: str, hour: datetime) -> int:
    """AQHI (1..10, 11 = "10+") from the 3-hour mean concentrations ending with ``hour``."""
    means: dict[str, float] = {}
    for key in ("NO2", "SO2", "O3", "PM10", "PM2.5"):
        vals = [
            v for k in range(3)
            if (v := concentrations(name, hour - timedelta(hours=k))[key]) is not None
        ]
        means[key] = sum(vals) / len(vals) if vals else 0.0

    def risk(key: str) -> float:
        return math.exp(BETA[key] * means[key]) - 1

    added = 100 * (risk("NO2") + risk("SO2") + risk("O3") + max(risk("PM10"), risk("PM2.5")))
    for band, upper in enumerate(AR_BANDS, start=1):
        if added <= upper:
            return band
    return 11


def latest_hour(at: datetime) -> datetime:
    """EPD publishes at HH:30 the values up to HH:00."""
    return wx.hour_floor(at - timedelta(minutes=30))
