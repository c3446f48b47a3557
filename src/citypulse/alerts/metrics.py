"""The metric registry alert rules are checked against: a rule naming a metric no feed produces
would never fire, silently; it is refused at load instead.

One central table (feeds do not all declare their metrics; several derive names at run time,
e.g. car park vacancy per vehicle type and category), completed by the sensor metrics, any
feed's ``SPEC.extra["metrics"]`` or module-level ``METRICS`` tuple, and names registered by
code (analytics) or declared in the rules file. ``tests/alerts/test_metrics.py`` parses every
simulator's output and fails when a feed emits a metric missing here, so the table keeps up.
"""

from __future__ import annotations

import difflib
import importlib
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from citypulse.sensors.schema import SENSOR_METRICS


@dataclass(frozen=True, slots=True)
class MetricInfo:
    name: str
    unit: str
    kinds: tuple[str, ...]
    """Entity kinds that carry it (documentation and suggestions; not enforced)."""


_TABLE: tuple[MetricInfo, ...] = (
    # TD traffic
    MetricInfo("speed_kmh", "km/h", ("road-link", "road-segment", "traffic-detector-lane")),
    MetricInfo("speed_sd_kmh", "km/h", ("traffic-detector-lane",)),
    MetricInfo("volume_veh", "vehicles", ("traffic-detector-lane",)),
    MetricInfo("occupancy_pct", "%", ("traffic-detector-lane",)),
    MetricInfo("journey_time_min", "min", ("journey-time-indicator",)),
    MetricInfo("journey_time_message", "code", ("journey-time-indicator",)),
    # Car parks, Wi-Fi
    MetricInfo("hotspots", "count", ("wifi-hotspot",)),
    # EPD
    MetricInfo("aqhi", "index", ("aqhi-station",)),
    MetricInfo("no2_ugm3", "µg/m³", ("aqhi-station",)),
    MetricInfo("o3_ugm3", "µg/m³", ("aqhi-station",)),
    MetricInfo("so2_ugm3", "µg/m³", ("aqhi-station",)),
    MetricInfo("co_ugm3", "µg/m³", ("aqhi-station",)),
    MetricInfo("pm10_ugm3", "µg/m³", ("aqhi-station",)),
    MetricInfo("pm2_5_ugm3", "µg/m³", ("aqhi-station", "sensor")),
    # HKO
    MetricInfo("temperature_c", "°C", ("weather-station", "sensor")),
    MetricInfo("humidity_pct", "%", ("weather-station", "sensor")),
    MetricInfo("uv_index", "index", ("weather-station",)),
    MetricInfo("weather_icon", "code", ("weather-station",)),
    MetricInfo("rainfall_mm", "mm", ("rainfall-district", "sensor")),
    MetricInfo("lightning", "flag", ("lightning-region",)),
    MetricInfo("sea_temperature_c", "°C", ("weather-station",)),
    MetricInfo("soil_temperature_0_5m_c", "°C", ("weather-station",)),
    MetricInfo("soil_temperature_1_0m_c", "°C", ("weather-station",)),
    MetricInfo("forecast_max_temp_c", "°C", ("weather-forecast",)),
    MetricInfo("forecast_min_temp_c", "°C", ("weather-forecast",)),
    MetricInfo("forecast_max_rh_pct", "%", ("weather-forecast",)),
    MetricInfo("forecast_min_rh_pct", "%", ("weather-forecast",)),
    MetricInfo("forecast_icon", "code", ("weather-forecast",)),
    MetricInfo("forecast_psr", "ordinal", ("weather-forecast",)),
    # DH COVID-19 (territory)
    *(
        MetricInfo(name, "count", ("territory",))
        for name in (
            "confirmed_cases_total", "ruled_out_cases_total", "hospitalised_for_investigation",
            "reporting_criteria_cases_total", "deaths_total", "discharged_total",
            "probable_cases_total", "hospitalised_critical", "pcr_positive_total",
            "rat_positive_total", "new_cases", "new_cases_imported", "new_cases_local",
            "new_cases_asymptomatic", "new_cases_probable",
        )
    ),
)

PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # carpark-vacancy: vacancy_{vehicle}[_{category}], vacancy_{ev|dis|unl}_{vehicle}[...]
    (re.compile(r"^vacancy_(?:(?:ev|dis|unl)_)?(?:private_car|lgv|hgv|cv|coach|motorcycle)"
                r"(?:_[a-z]{1,20})?$"), "carpark"),
)

_FEED_MODULES_WITH_METRICS = ("covid19_cases",)

_registered: dict[str, MetricInfo] = {}
_lock = threading.Lock()


def register_metric(name: str, unit: str = "", kinds: Iterable[str] = ()) -> None:
    """Make a derived metric (e.g. from analytics) valid in alert rules."""
    with _lock:
        _registered[name] = MetricInfo(name, unit, tuple(kinds))


@cache
def _base() -> dict[str, MetricInfo]:
    table = {m.name: m for m in _TABLE}
    for m in SENSOR_METRICS.values():
        table.setdefault(m.name, MetricInfo(m.name, m.unit, ("sensor",)))
    try:
        from citypulse.feeds.registry import all_feeds

        for spec in all_feeds().values():
            kinds = tuple(str(k) for k in spec.extra.get("entity_kinds", ()))
            for name in spec.extra.get("metrics", ()) or ():
                table.setdefault(str(name), MetricInfo(str(name), "", kinds))
    except Exception:  # a broken feed module must not make every rule file unloadable
        pass
    for module_name in _FEED_MODULES_WITH_METRICS:
        try:
            module = importlib.import_module(f"citypulse.feeds.{module_name}")
        except ImportError:
            continue
        for name in getattr(module, "METRICS", ()):
            table.setdefault(str(name), MetricInfo(str(name), "", ()))
    return table


class MetricRegistry:
    """Known metric names (+ patterns), with "did you mean" suggestions."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        with _lock:
            self._names = {**_base(), **_registered}
        for name in extra:
            self._names.setdefault(name, MetricInfo(name, "", ()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (
            name in self._names or any(p.match(name) for p, _ in PATTERNS)
        )

    def info(self, name: str) -> MetricInfo | None:
        if name in self._names:
            return self._names[name]
        for pattern, kind in PATTERNS:
            if pattern.match(name):
                return MetricInfo(name, "count", (kind,))
        return None

    def names(self) -> list[str]:
        return sorted(self._names)

    def suggest(self, name: str) -> list[str]:
        return difflib.get_close_matches(name, list(self._names), n=3, cutoff=0.6)


def known_metrics(extra: Iterable[str] = ()) -> MetricRegistry:
    return MetricRegistry(extra)
