"""Simulated HKO current weather report (``rhrread``, ``lang=en``): the JSON HKO serves at HH:02,
with the real quirks (26 or 27 stations, ``uvindex`` ``""`` at night, message fields ``""`` or a
list, ``min`` only with rain, a gauge under maintenance now and then), driven by the shared
weather truth in ``_hk_weather`` so warnings, rain and temperatures agree across feeds."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import orjson

from citypulse.feeds._hk_common import WARNING_CODES, hko_place
from citypulse.feeds.base import HKT
from citypulse.simulate import _hk_weather as wx

STATIONS = (
    "King's Park", "Hong Kong Observatory", "Wong Chuk Hang", "Ta Kwu Ling", "Lau Fau Shan",
    "Tai Po", "Sha Tin", "Tuen Mun", "Tseung Kwan O", "Sai Kung", "Cheung Chau", "Chek Lap Kok",
    "Tsing Yi", "Shek Kong", "Tsuen Wan Ho Koon", "Tsuen Wan Shing Mun Valley", "Hong Kong Park",
    "Shau Kei Wan", "Kowloon City", "Happy Valley", "Wong Tai Sin", "Stanley", "Kwun Tong",
    "Sham Shui Po", "Kai Tak Runway Park", "Yuen Long Park", "Tai Mei Tuk",
)
"""HKO's order in the live payload."""

DISTRICTS = (
    "Central & Western District", "Eastern District", "Kwai Tsing", "Islands District",
    "North District", "Sai Kung", "Sha Tin", "Southern District", "Tai Po", "Tsuen Wan",
    "Tuen Mun", "Wan Chai", "Yuen Long", "Yau Tsim Mong", "Sham Shui Po", "Kowloon City",
    "Wong Tai Sin", "Kwun Tong",
)
REGIONS = ("Lantau", "New Territories East", "New Territories West", "Hong Kong Island and Kowloon")
SOMETIMES_OUT = ("Tai Mei Tuk", "Tsuen Wan Shing Mun Valley")

HOT_TIP = (
    "Hot weather might cause adverse health effects. The public should stay on the alert and "
    "drink more water."
)
RAIN_REMINDER = (
    "Though rainstorm warning has been cancelled, people should stay alert to the danger that "
    "may be brought about by river flooding."
)


def iso(ts: datetime) -> str:
    return ts.astimezone(HKT).strftime("%Y-%m-%dT%H:%M:%S+08:00")


def clock(ts: datetime) -> str:
    lt = ts.astimezone(HKT)
    h = lt.hour % 12 or 12
    return f"{h}:{lt.minute:02d} {'a.m.' if lt.hour < 12 else 'p.m.'}"


def icon(rate: float, thundery: bool, at: datetime) -> int:
    if rate > 0:
        if thundery and rate >= 10:
            return 65
        return 64 if rate >= 30 else 63 if rate >= 5 else 62
    hour = at.astimezone(HKT).hour
    day = 7 <= hour < 19
    cloud = wx.rng_for("cloud", at.astimezone(HKT).date()).random()
    if cloud < 0.4:
        return 50 if day else 70
    return 51 if cloud < 0.7 and day else 60 if cloud < 0.9 else 61


def warning_lines(at: datetime) -> tuple[list[str], bool]:
    """English warning sentences in force, and whether a rainstorm was just cancelled."""
    lines: list[str] = []
    just_cancelled = False
    for w in wx.warnings_at(at):
        name = WARNING_CODES[w.code].name_en if w.code in WARNING_CODES else w.code
        if w.cancelled is not None:
            just_cancelled = just_cancelled or w.family == "WRAIN"
            continue
        if w.code == "WTS" and w.expires is not None:
            lines.append(
                f"The Thunderstorm Warning has been issued. It will remain effective until "
                f"{clock(w.expires)} today. A few thunderstorms are expected to occur over "
                "Hong Kong."
            )
        else:
            lines.append(f"The {name} is now in force.")
    return lines, just_cancelled


class RhrreadSimulator:
    feed_id = "hko-rhrread"
    interval_s = 3600

    def document(self, at: datetime, rng: random.Random) -> dict[str, Any]:
        report = wx.hour_floor(at - timedelta(minutes=2))
        update = report + timedelta(minutes=2)
        rain_end = report - timedelta(minutes=15)
        rate, ep = wx.rain_rate(rain_end - timedelta(minutes=30))
        thundery = bool(ep and ep.thundery)
        out_today = wx.rng_for("out", report.isoformat()).random() < 0.05
        temps = []
        for name in STATIONS:
            if out_today and name == SOMETIMES_OUT[report.hour % 2]:
                continue
            value = wx.temperature_c(report, name) + rng.gauss(0, 0.2)
            temps.append({"place": name, "value": round(value), "unit": "C"})
        rain = []
        maintenance = wx.rng_for("maint", report.date()).choice(DISTRICTS + ("",) * 30)
        for name in DISTRICTS:
            place = hko_place("district", name)
            district = place.id if place else name
            high = round(rate * wx.district_share(district, rain_end))
            rec: dict[str, Any] = {"unit": "mm", "place": name, "max": high,
                                   "main": "TRUE" if name == maintenance else "FALSE"}
            if name == maintenance:
                rec["max"] = 0
            elif high > 0:
                rec["min"] = max(0, round(high * wx.rng_for("min", district, report).random()))
            rain.append(rec)
        uv = wx.uv_index(report)
        warn, cancelled = warning_lines(update)
        tc = wx.typhoon_stage(update)
        doc: dict[str, Any] = {}
        if thundery and rate >= 5:
            hit = [r for r in REGIONS if wx.rng_for("ltg", r, report).random() < 0.6] or [
                REGIONS[1]]
            doc["lightning"] = {
                "data": [{"place": r, "occur": "true"} for r in hit],
                "startTime": iso(rain_end - timedelta(hours=1)),
                "endTime": iso(rain_end),
            }
        doc["rainfall"] = {"data": rain, "startTime": iso(rain_end - timedelta(hours=1)),
                           "endTime": iso(rain_end)}
        doc["warningMessage"] = warn or ""
        doc["icon"] = [icon(rate, thundery, report)]
        doc["iconUpdateTime"] = iso(report)
        if wx.very_hot(update):
            doc["specialWxTips"] = [HOT_TIP]
        if cancelled:
            doc["rainstormReminder"] = RAIN_REMINDER
        doc["uvindex"] = (
            ""
            if uv is None
            else {"data": [{"place": "King's Park", "value": uv, "desc": wx.uv_desc(uv)}],
                  "recordDesc": "During the past hour"}
        )
        doc["updateTime"] = iso(update)
        doc["temperature"] = {"data": temps, "recordTime": iso(report)}
        doc["tcmessage"] = (
            [
                f"Here is the latest information about Tropical Storm {wx.typhoon_name(update)} "
                f"at {clock(report)}:\nIt was centred about "
                f"{wx.rng_for('tc-km', report).randrange(150, 600, 10)} kilometres south-southeast "
                "of Hong Kong. It is forecast to move west-northwest at about 15 kilometres per "
                "hour."
            ]
            if tc is not None
            else ""
        )
        doc["mintempFrom00To09"] = ""
        doc["rainfallFrom00To12"] = ""
        doc["rainfallLastMonth"] = ""
        doc["rainfallJanuaryToLastMonth"] = ""
        doc["humidity"] = {
            "recordTime": iso(report),
            "data": [{"unit": "percent", "value": round(wx.humidity_pct(report)),
                      "place": "Hong Kong Observatory"}],
        }
        return doc

    def emit(self, at: datetime, rng: random.Random) -> bytes:
        return orjson.dumps(self.document(at, rng))


SIMULATOR = RhrreadSimulator()
