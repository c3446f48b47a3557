"""Simulated Smart Village sensor network: flood gauges, rain/temperature posts, dumping and
wildlife cameras in four villages, emitting the ``citypulse.sensors/1`` JSON that devices send
(the ``smart-village`` feed parses it; each message is also a valid HTTP/MQTT message body).

Flood levels follow the shared weather truth (:mod:`citypulse.simulate._hk_weather`): a base
level, a semi-diurnal tide at coastal villages and a response to the last six hours of the
village's rain, so amber/red/black rainstorms raise the water and the stronger ones cross the
gauges' ``alert_level_cm``. Cameras report illegal dumping (mostly at night) and wild animals
(mostly at dusk and night) now and then. Everything is a pure function of the time slot
(string-seeded), so re-emitting a slot gives the same payload.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, lru_cache
from typing import Any

import orjson

from citypulse.model import utc
from citypulse.sensors.schema import SCHEMA_ID
from citypulse.simulate import _hk_weather as wx

INTERVAL_S = 300
TIDE_PERIOD_H = 12.42


@dataclass(frozen=True, slots=True)
class Village:
    id: str
    name_en: str
    name_zh: str
    district: str  # the store's district id (as HKO and EPD write it)
    rain_district: str  # HKO rainfall district whose showers it gets
    lat: float
    lon: float
    coastal: bool
    alert_level_cm: float
    animals: tuple[str, ...]


VILLAGES: tuple[Village, ...] = (
    Village("tai-o", "Tai O", "大澳", "islands", "islands", 22.2536, 113.8622, True, 140.0,
            ("feral cattle", "wild boar", "long-tailed macaque")),
    Village("lai-chi-wo", "Lai Chi Wo", "荔枝窩", "north", "north", 22.5270, 114.2597, True,
            130.0, ("wild boar", "barking deer", "masked palm civet")),
    Village("mui-wo", "Mui Wo", "梅窩", "islands", "islands", 22.2650, 113.9990, True, 150.0,
            ("feral cattle", "wild boar")),
    Village("pui-o", "Pui O", "貝澳", "islands", "islands", 22.2418, 113.9785, False, 120.0,
            ("water buffalo", "feral cattle", "wild boar")),
)


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    village: Village
    sensor_type: str
    name_en: str
    name_zh: str
    d_lat: float
    d_lon: float

    def info(self) -> dict[str, Any]:
        v = self.village
        props: dict[str, Any] = {}
        if self.sensor_type == "flood":
            props["alert_level_cm"] = v.alert_level_cm
        return {
            "sensor_type": self.sensor_type,
            "village": v.name_en,
            "village_zh": v.name_zh,
            "name_en": self.name_en,
            "name_zh": self.name_zh,
            "lat": round(v.lat + self.d_lat, 6),
            "lon": round(v.lon + self.d_lon, 6),
            "district": v.district,
            "properties": props,
        }


def _devices() -> tuple[Device, ...]:
    out = []
    for v in VILLAGES:
        out += [
            Device(f"{v.id}-flood-01", v, "flood", f"{v.name_en} flood gauge",
                   f"{v.name_zh}水位計", 0.0004, 0.0003),
            Device(f"{v.id}-weather-01", v, "weather", f"{v.name_en} rain gauge",
                   f"{v.name_zh}雨量計", -0.0003, 0.0005),
            Device(f"{v.id}-dumping-01", v, "dumping", f"{v.name_en} dumping camera",
                   f"{v.name_zh}傾倒監察攝影機", 0.0008, -0.0006),
            Device(f"{v.id}-wildlife-01", v, "wildlife", f"{v.name_en} wildlife camera",
                   f"{v.name_zh}野生動物攝影機", -0.0010, -0.0009),
        ]
    return tuple(out)


DEVICES: tuple[Device, ...] = _devices()


def slot(at: datetime) -> datetime:
    """The 5-minute grid slot containing ``at``."""
    at = utc(at)
    return at.replace(minute=at.minute - at.minute % 5, second=0, microsecond=0)


def village_rain_mm_h(v: Village, at: datetime) -> float:
    return _hour_rain(v.rain_district, wx.hour_floor(utc(at)))


@lru_cache(maxsize=8192)
def _hour_rain(district: str, hour: datetime) -> float:
    rate, _ = wx.rain_rate(hour)
    return rate * wx.district_share(district, hour)


@cache
def _device_constant(kind: str, name: str, low: float, high: float) -> float:
    """A per-device constant (base level, tide phase...): seeded once, then remembered."""
    return wx.rng_for(kind, name).uniform(low, high)


def water_level_cm(
    v: Village, device_id: str, at: datetime, r: random.Random | None = None
) -> float:
    base = 35.0 + _device_constant("sv-base", device_id, 0, 20)
    tide = 0.0
    if v.coastal:
        hours = at.timestamp() / 3600
        phase = _device_constant("sv-tide", v.id, 0, 2 * math.pi)
        tide = 25.0 * math.sin(2 * math.pi * hours / TIDE_PERIOD_H + phase)
    rain = sum(
        village_rain_mm_h(v, at - timedelta(hours=k)) * math.exp(-k / 2.5) for k in range(6)
    )
    r = r or wx.rng_for("sv", device_id, at.isoformat())
    noise = r.gauss(0, 1.5)
    return round(max(0.0, base + tide + 3.0 * rain + noise), 1)


def battery_pct(device_id: str, at: datetime, r: random.Random) -> float:
    lt = wx.local(at)
    h = lt.hour + lt.minute / 60
    solar = 12.0 * math.sin(2 * math.pi * (h - 10) / 24)
    level = 78 + _device_constant("sv-bat", device_id, -8, 8) + solar
    level += r.gauss(0, 0.4)
    return round(min(100.0, max(5.0, level)), 1)


def _detections(device: Device, at: datetime, r: random.Random) -> list[dict[str, Any]]:
    lt = wx.local(at)
    night = lt.hour >= 22 or lt.hour < 5
    dusk = 17 <= lt.hour < 22 or 5 <= lt.hour < 7
    if device.sensor_type == "dumping":
        if r.random() < (0.01 if night else 0.002):
            return [{"detection": "illegal-dumping", "confidence": round(r.uniform(0.5, 0.98), 2),
                     "ts": (at - timedelta(seconds=r.randrange(300))).isoformat()}]
    elif device.sensor_type == "wildlife" and r.random() < (0.03 if night or dusk else 0.006):
        return [{"detection": "wild-animal", "confidence": round(r.uniform(0.6, 0.99), 2),
                 "species": r.choice(device.village.animals),
                 "ts": (at - timedelta(seconds=r.randrange(300))).isoformat()}]
    return []


def messages(at: datetime) -> list[dict[str, Any]]:
    """One message per device for the slot of ``at`` (the shape devices POST)."""
    t = slot(at)
    out: list[dict[str, Any]] = []
    stamp = t.isoformat()
    for d in DEVICES:
        v = d.village
        r = wx.rng_for("sv", d.device_id, stamp)  # one stream per device and slot
        readings: list[dict[str, Any]] = []
        if d.sensor_type == "flood":
            readings.append(
                {"metric": "water_level_cm", "value": water_level_cm(v, d.device_id, t, r)}
            )
        elif d.sensor_type == "weather":
            rain = village_rain_mm_h(v, t) / 12  # mm in this 5-minute slot
            readings += [
                {"metric": "rainfall_mm", "value": round(rain, 1)},
                {"metric": "temperature_c",
                 "value": round(wx.temperature_c(t, v.name_en) - 0.5, 1)},
                {"metric": "humidity_pct", "value": round(wx.humidity_pct(t), 0)},
            ]
        readings.append({"metric": "battery_pct", "value": battery_pct(d.device_id, t, r)})
        msg: dict[str, Any] = {
            "device_id": d.device_id,
            "ts": t.isoformat(),
            "device": d.info(),
            "readings": readings,
        }
        found = _detections(d, t, r)
        if found:
            msg["detections"] = found
        out.append(msg)
    return out


class SmartVillageSimulator:
    feed_id = "smart-village"
    interval_s = INTERVAL_S

    def emit(self, at: datetime, rng: random.Random) -> bytes:
        return orjson.dumps({"schema": SCHEMA_ID, "messages": messages(at)})


SIMULATOR = SmartVillageSimulator()
