"""One deterministic Hong Kong weather "truth" shared by the HKO and EPD simulators.

Every quantity is a pure function of the instant (and names), seeded per day/week/hour with
string seeds (stable across processes), so consecutive payloads of different feeds agree:
the rain in ``rhrread`` is the rain that raised the rainstorm signal in ``warnsum``, a past hour
of the 24-hour AQHI file never changes between polls. Climate: HKO 1991-2020 monthly normals
(rounded), a diurnal cycle peaking mid-afternoon, day-to-day anomalies, wet-season showers that
occasionally reach rainstorm-signal rates, and a tropical cyclone now and then from June to
October.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from citypulse.feeds.base import HKT

MONTH_MEAN_C = (16.3, 16.8, 19.1, 22.6, 25.9, 27.9, 28.8, 28.6, 27.7, 25.5, 21.8, 17.9)
MONTH_RH = (74, 80, 82, 83, 83, 83, 81, 81, 78, 73, 71, 69)
MONTH_WET = (0.10, 0.15, 0.20, 0.30, 0.40, 0.50, 0.45, 0.50, 0.40, 0.20, 0.10, 0.08)
MONTH_UV_PEAK = (5, 6, 7, 9, 10, 11, 11, 11, 10, 8, 6, 5)
TYPHOON_WEEK_P = {6: 0.12, 7: 0.22, 8: 0.25, 9: 0.25, 10: 0.15}

RAIN_AMBER, RAIN_RED, RAIN_BLACK = 30.0, 50.0, 70.0  # mm/h over the territory


def rng_for(*parts: object) -> random.Random:
    """A Random seeded by a string (string seeds are hashed with SHA-512: process-stable)."""
    return random.Random(":".join(str(p) for p in parts))


def local(at: datetime) -> datetime:
    return at.astimezone(HKT)


def hour_floor(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _month_interp(table: tuple[float, ...], day: date) -> float:
    """Smooth daily climate from monthly normals (linear between mid-months)."""
    pos = day.month - 1 + (day.day - 15) / 30.0
    i = math.floor(pos)
    frac = pos - i
    return table[i % 12] * (1 - frac) + table[(i + 1) % 12] * frac


@lru_cache(maxsize=4096)
def day_anomaly_c(day: date) -> float:
    """Day-to-day temperature anomaly, auto-correlated over ~3 days."""
    return sum(rng_for("anom", day - timedelta(days=k)).gauss(0, 1.2) for k in range(3)) / 1.7


def station_offset(name: str, hour: float) -> float:
    """Sites differ: inland valleys colder at night, urban sites warmer, islands damped."""
    r = rng_for("site", name)
    base = r.uniform(-0.8, 0.8)
    night = r.uniform(-2.5, 0.3) * max(0.0, math.cos(2 * math.pi * (hour - 4) / 24))
    return base + night


@dataclass(frozen=True, slots=True)
class RainEpisode:
    start: datetime  # UTC, on the hour
    hourly_peak: tuple[float, ...]  # territory-wide max mm/h for each hour of the episode
    thundery: bool

    @property
    def end(self) -> datetime:
        return self.start + timedelta(hours=len(self.hourly_peak))


@lru_cache(maxsize=4096)
def rain_episode(day: date) -> RainEpisode | None:
    """At most one rain episode starting on a given HK day."""
    r = rng_for("rain", day)
    typhoon = typhoon_stage(datetime(day.year, day.month, day.day, 12, tzinfo=HKT)) is not None
    if r.random() > (0.9 if typhoon else MONTH_WET[day.month - 1]):
        return None
    start_hour = r.randrange(24)
    hours = r.randint(1, 6) + (4 if typhoon else 0)
    wet = day.month in (5, 6, 7, 8, 9)
    peak = r.lognormvariate(math.log(14 if wet else 5), 0.8) * (2.0 if typhoon else 1.0)
    centre = r.uniform(0.3, 0.7) * hours
    profile = tuple(
        round(peak * math.exp(-(((h + 0.5 - centre) / max(1.0, hours / 3)) ** 2)), 1)
        for h in range(hours)
    )
    start = datetime(day.year, day.month, day.day, start_hour, tzinfo=HKT).astimezone(UTC)
    return RainEpisode(start, profile, thundery=wet and peak > 15)


def rain_rate(at: datetime) -> tuple[float, RainEpisode | None]:
    """Territory max rainfall (mm in the hour containing ``at``) and the episode, if any."""
    day = local(at).date()
    for d in (day, day - timedelta(days=1)):
        ep = rain_episode(d)
        if ep is not None and ep.start <= at < ep.end:
            idx = int((at - ep.start).total_seconds() // 3600)
            return ep.hourly_peak[idx], ep
    return 0.0, None


def district_share(district: str, at: datetime) -> float:
    """How much of the territory peak one district gets this hour (showers are patchy)."""
    return rng_for("patch", district, hour_floor(at).isoformat()).betavariate(1.2, 1.6)


def rainstorm(at: datetime) -> tuple[str, datetime] | None:
    """The rainstorm signal in force at ``at`` (``WRAINA/R/B``) and its issue time."""
    _, ep = rain_rate(at)
    if ep is None:
        return None

    def level(mm: float) -> str | None:
        if mm >= RAIN_BLACK:
            return "WRAINB"
        if mm >= RAIN_RED:
            return "WRAINR"
        if mm >= RAIN_AMBER:
            return "WRAINA"
        return None

    idx = int((at - ep.start).total_seconds() // 3600)
    code = level(ep.hourly_peak[idx])
    if code is None:
        return None
    first = idx
    while first > 0 and level(ep.hourly_peak[first - 1]) == code:
        first -= 1
    minute = rng_for("rs-min", ep.start.isoformat(), first).randrange(5, 40)
    issued = ep.start + timedelta(hours=first, minutes=minute)
    if issued > at:
        # Not issued yet this hour: whatever held at the end of the previous hour holds.
        if first == 0:
            return None
        return rainstorm(ep.start + timedelta(hours=first, seconds=-1))
    return code, issued


def _week_start(d: date) -> date:
    return d - timedelta(days=d.weekday())


@lru_cache(maxsize=1024)
def typhoon_episode(week: date) -> tuple[tuple[str, datetime, datetime], ...]:
    """Signal stages (code, start UTC, end UTC) of a tropical cyclone whose No. 1 goes up in
    the week starting ``week`` (empty: no cyclone that week)."""
    p = TYPHOON_WEEK_P.get(week.month, 0.0)
    r = rng_for("tc", week)
    if r.random() > p:
        return ()
    t = datetime(week.year, week.month, week.day, tzinfo=HKT) + timedelta(
        days=r.randrange(7), hours=r.randrange(24), minutes=r.choice((10, 20, 40))
    )
    stages = [("TC1", r.randint(8, 18)), ("TC3", r.randint(6, 14))]
    if r.random() < 0.35:
        stages.append((r.choice(("TC8NE", "TC8SE", "TC8NW", "TC8SW")), r.randint(5, 12)))
        if r.random() < 0.15:
            stages.append(("TC9", r.randint(2, 4)))
        stages.append(("TC3", r.randint(3, 8)))
    out = []
    for code, hours in stages:
        end = t + timedelta(hours=hours)
        out.append((code, t.astimezone(UTC), end.astimezone(UTC)))
        t = end
    return tuple(out)


def typhoon_stage(at: datetime) -> tuple[str, datetime] | None:
    """The tropical cyclone signal in force at ``at`` and its issue time."""
    week = _week_start(local(at).date())
    for w in (week, week - timedelta(days=7)):
        for code, start, end in typhoon_episode(w):
            if start <= at < end:
                return code, start
    return None


def typhoon_name(at: datetime) -> str:
    names = ("Koinu", "Saola", "Haikui", "Talim", "Doksuri", "Mawar", "Yagi", "Toraji")
    return rng_for("tc-name", _week_start(local(at).date())).choice(names)


def temperature_c(at: datetime, name: str = "Hong Kong Observatory") -> float:
    lt = local(at)
    h = lt.hour + lt.minute / 60
    mean = _month_interp(MONTH_MEAN_C, lt.date()) + day_anomaly_c(lt.date())
    amp = 2.8 if lt.month in (6, 7, 8) else 3.4
    diurnal = amp * math.cos(2 * math.pi * (h - 14.5) / 24)
    rate, _ = rain_rate(at)
    return mean + diurnal + station_offset(name, h) - min(4.0, rate / 8)


def day_max_c(day: date) -> float:
    noon = datetime(day.year, day.month, day.day, 14, 30, tzinfo=HKT).astimezone(UTC)
    return temperature_c(noon)


def humidity_pct(at: datetime) -> float:
    lt = local(at)
    h = lt.hour + lt.minute / 60
    rate, _ = rain_rate(at)
    base = _month_interp(tuple(float(x) for x in MONTH_RH), lt.date())
    value = base - 9 * math.cos(2 * math.pi * (h - 14.5) / 24) + min(15.0, rate)
    return max(35.0, min(99.0, value))


def uv_index(at: datetime) -> float | None:
    """Mean UV index of the past hour at King's Park; None at night (HKO sends "")."""
    lt = local(at)
    h = lt.hour + lt.minute / 60
    if not 7 <= h <= 18.5:
        return None
    sun = max(0.0, math.sin(math.pi * (h - 6.5) / 12.5))
    rate, _ = rain_rate(at)
    cloud = 0.25 if rate > 0 else rng_for("cloud", lt.date()).uniform(0.55, 1.0)
    return round(MONTH_UV_PEAK[lt.month - 1] * sun * cloud, 1)


def uv_desc(value: float) -> str:
    if value < 3:
        return "low"
    if value < 6:
        return "moderate"
    if value < 8:
        return "high"
    if value < 11:
        return "very high"
    return "extreme"


def very_hot(at: datetime) -> tuple[str, datetime] | None:
    """Very Hot Weather Warning on days reaching 33 C, 07:00-19:00."""
    lt = local(at)
    if day_max_c(lt.date()) >= 33.0 and 7 <= lt.hour < 19:
        return "WHOT", datetime(lt.year, lt.month, lt.day, 6, 45, tzinfo=HKT).astimezone(UTC)
    return None


def cold(at: datetime) -> tuple[str, datetime] | None:
    """Cold Weather Warning on days whose minimum is 12 C or below."""
    lt = local(at)
    mean = _month_interp(MONTH_MEAN_C, lt.date()) + day_anomaly_c(lt.date())
    if mean - 3.4 <= 12.0 and lt.hour >= 6:
        return "WCOLD", datetime(lt.year, lt.month, lt.day, 6, 0, tzinfo=HKT).astimezone(UTC)
    return None


def thunderstorm(at: datetime) -> tuple[str, datetime, datetime] | None:
    """Thunderstorm Warning (code, issue, expiry) during thundery rain episodes."""
    _, ep = rain_rate(at)
    if ep is None or not ep.thundery:
        return None
    return "WTS", ep.start, ep.end + timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Warning:
    family: str
    code: str
    issued: datetime
    expires: datetime | None = None
    cancelled: datetime | None = None


CANCEL_SHOWN = timedelta(minutes=20)


def warnings_at(at: datetime) -> list[Warning]:
    """Warnings in force at ``at``; for 20 minutes after one ends it is listed as cancelled."""
    out: list[Warning] = []
    for family, fn in (("WRAIN", rainstorm), ("WTCSGNL", typhoon_stage), ("WHOT", very_hot),
                       ("WCOLD", cold)):
        now = fn(at)
        if now is not None:
            out.append(Warning(family, now[0], now[1]))
            continue
        before = fn(at - CANCEL_SHOWN)
        if before is not None:
            # Ended in the last 20 min: find roughly when (the first 5-min step without it).
            step = at - CANCEL_SHOWN
            while step < at and fn(step) is not None:
                step += timedelta(minutes=5)
            out.append(Warning(family, before[0], before[1], cancelled=step))
    ts = thunderstorm(at)
    if ts is not None:
        out.append(Warning("WTS", ts[0], ts[1], expires=ts[2]))
    return out
