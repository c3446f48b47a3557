"""Simulated HKO 9-day forecast (``fnd``, ``lang=en``), issued at 11:30 and 16:30 HKT: days
from the shared weather truth plus an error that grows with lead time, as forecasts do."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Any

import orjson

from citypulse.feeds.base import HKT
from citypulse.simulate import _hk_weather as wx
from citypulse.simulate.hko_rhrread import iso

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
WINDS_WINTER = ("Northeast force 4 to 5.", "East to northeast force 4, occasionally force 5.",
                "North force 4 to 5, occasionally force 6 offshore.")
WINDS_SUMMER = ("South to southwest force 3 to 4.", "Southwest force 3, occasionally force 4.",
                "East to southeast force 3 to 4.")
PSR = ("Low", "Medium Low", "Medium", "Medium High", "High")


def issue_time(at: datetime) -> datetime:
    """The latest regular issue (11:30 or 16:30 HKT) at or before ``at``."""
    lt = at.astimezone(HKT)
    for days_back in range(0, 2):
        d = lt.date() - timedelta(days=days_back)
        for hh, mm in ((16, 30), (11, 30)):
            t = datetime(d.year, d.month, d.day, hh, mm, tzinfo=HKT)
            if t <= lt:
                return t
    raise AssertionError("unreachable")  # pragma: no cover


def day_forecast(issue: datetime, day: date, lead: int) -> dict[str, Any]:
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=HKT)
    err = wx.rng_for("fnd-err", issue.isoformat(), day)
    hi = wx.day_max_c(day) + err.gauss(0, 0.35 * lead)
    lo = hi - err.uniform(4.0, 7.5)
    ep = wx.rain_episode(day)
    tc = wx.typhoon_stage(noon)
    peak = max(ep.hourly_peak) if ep else 0.0
    if tc is not None:
        weather, icon_code, psr = "Squally showers and thunderstorms. Rough seas.", 65, 4
    elif peak >= 30:
        weather, icon_code, psr = "Cloudy with heavy showers and squally thunderstorms.", 64, 4
    elif peak >= 8:
        weather, icon_code, psr = "Mainly cloudy with showers and a few thunderstorms.", 63, 3
    elif peak > 0:
        weather, icon_code, psr = "Sunny intervals and one or two showers.", 54, 2
    else:
        weather, icon_code, psr = "Mainly fine.", 50, 0
    psr = max(0, min(4, psr + round(err.gauss(0, 0.15 * lead))))
    rh_hi = min(95, wx.MONTH_RH[day.month - 1] + 12 + (5 if peak else 0))
    winds = WINDS_SUMMER if day.month in (5, 6, 7, 8, 9) else WINDS_WINTER
    return {
        "forecastDate": day.strftime("%Y%m%d"),
        "week": WEEKDAYS[day.weekday()],
        "forecastWind": winds[wx.rng_for("wind", day).randrange(len(winds))],
        "forecastWeather": weather,
        "forecastMaxtemp": {"value": round(hi), "unit": "C"},
        "forecastMintemp": {"value": round(lo), "unit": "C"},
        "forecastMaxrh": {"value": int(rh_hi), "unit": "percent"},
        "forecastMinrh": {"value": int(rh_hi - 25 + (10 if peak else 0)), "unit": "percent"},
        "ForecastIcon": icon_code,
        "PSR": PSR[psr],
    }


class FndSimulator:
    feed_id = "hko-fnd"
    interval_s = 1800

    def emit(self, at: datetime, rng: random.Random) -> bytes:
        issue = issue_time(at)
        first = issue.date() + timedelta(days=1)
        days = [day_forecast(issue, first + timedelta(days=i), i + 1) for i in range(9)]
        sea_at = datetime(issue.year, issue.month, issue.day, 14, tzinfo=HKT)
        if sea_at > issue:
            sea_at -= timedelta(days=1)
        soil_at = datetime(issue.year, issue.month, issue.day, 7, tzinfo=HKT)
        month_mean = wx.MONTH_MEAN_C[issue.month - 1]
        tc = wx.typhoon_stage(issue)
        situation = (
            f"Tropical Storm {wx.typhoon_name(issue)} will edge closer to the coast of Guangdong. "
            "Squally showers and thunderstorms are expected."
            if tc
            else "A ridge of high pressure will bring mainly fine weather to the coast of "
            "Guangdong in the next couple of days."
        )
        doc = {
            "generalSituation": situation,
            "weatherForecast": days,
            "updateTime": iso(issue),
            "seaTemp": {"place": "North Point", "value": round(month_mean + 0.8),
                        "unit": "C", "recordTime": iso(sea_at)},
            "soilTemp": [
                {"place": "Hong Kong Observatory", "value": round(month_mean + 1.5, 1),
                 "unit": "C", "recordTime": iso(soil_at),
                 "depth": {"unit": "metre", "value": 0.5}},
                {"place": "Hong Kong Observatory", "value": round(month_mean + 2.4, 1),
                 "unit": "C", "recordTime": iso(soil_at),
                 "depth": {"unit": "metre", "value": 1}},
            ],
        }
        return orjson.dumps(doc)


SIMULATOR = FndSimulator()
