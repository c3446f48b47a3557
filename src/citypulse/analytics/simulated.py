"""Simulated speed-map history for backtests, tests and benchmarks, straight from the simulator's
own model (``citypulse.simulate.profile``) instead of through XML.

Emitting weeks of ``speedmap.xml`` and parsing it back costs ~1 s per simulated hour for 600
links; calling the same functions the speed-map simulator calls (regional capture second,
``traffic_level``, ``free_flow_kmh``, ``congested_speed`` with the incident factor, rounding to
whole km/h as TD does) gives the same numbers for a chosen subset of links in a fraction of the
time. ``tests/analytics`` checks the two paths agree on the deterministic part.

Incidents are drawn per link (a Poisson number per day, uniform start, 20-150 minutes, speed
x0.15-0.6), like the breakdowns and collisions the traffic news reports.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from citypulse.analytics.history import SPEED_METRIC, FloatArray, IntArray
from citypulse.feeds.reference import SpeedmapLink, link_name, speedmap_links
from citypulse.model import OBSERVATION_SCHEMA, Batch, Entity
from citypulse.simulate.profile import (
    Incident,
    free_flow_kmh,
    sensitivity,
    traffic_level,
)
from citypulse.simulate.td_speedmap import CAPTURE_SECOND

CYCLE = timedelta(minutes=2)
DEFAULT_END = datetime(2024, 6, 3, tzinfo=UTC)  # a Monday 08:00 HKT: history ends at a peak
INCIDENTS_PER_LINK_DAY = 0.25
NOISE = 0.07
"""``congested_speed``'s default multiplicative noise (standard deviation)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SimulatedHistory:
    """Raw observations (``entity_id``, ``ts``, ``value``), the link entities and the incidents
    that were injected (ground truth for anomaly tests)."""

    frame: pa.Table
    entities: list[Entity]
    incidents: list[Incident]
    start: datetime
    end: datetime


def pick_links(n: int | None) -> list[SpeedmapLink]:
    """``n`` links spread over the table (every k-th, so all regions and road types appear);
    None or more than the table: all."""
    links = list(speedmap_links().values())
    if n is None or n >= len(links):
        return links
    n = max(1, n)
    step = len(links) / n
    return [links[int(i * step)] for i in range(n)]


def link_entity(link: SpeedmapLink) -> Entity:
    """The entity the speed-map parser makes for a link in the packaged table."""
    name_en, name_zh = link_name(link.link_id, link.region, link.road_type)
    props: dict[str, object] = {
        "region": link.region,
        "road_type": link.road_type,
        "start_lat": link.start_lat,
        "start_lon": link.start_lon,
        "end_lat": link.end_lat,
        "end_lon": link.end_lon,
    }
    return Entity(
        f"td-link:{link.link_id}", "road-link", name_en, name_zh, link.mid_lat, link.mid_lon,
        None, props,
    )


def random_incidents(
    links: Sequence[SpeedmapLink],
    start: datetime,
    end: datetime,
    rng: random.Random,
    per_link_day: float = INCIDENTS_PER_LINK_DAY,
) -> list[Incident]:
    days = (end - start).total_seconds() / 86_400
    out: list[Incident] = []
    for link in links:
        n = int(np.random.default_rng(rng.getrandbits(32)).poisson(per_link_day * days))
        for _ in range(n):
            t = start + timedelta(seconds=rng.uniform(0, (end - start).total_seconds()))
            t = t.replace(second=0, microsecond=0)
            dur = timedelta(minutes=rng.randint(20, 150))
            out.append(Incident(link.link_id, t, t + dur, factor=rng.uniform(0.15, 0.6)))
    out.sort(key=lambda i: (i.start, i.road_id))
    return out


def congested_speeds(
    free_flow: float,
    levels: FloatArray,
    sensitivity: float,
    factors: FloatArray,
    gauss: FloatArray,
) -> FloatArray:
    """``profile.congested_speed`` for many instants at once, then rounded as the simulator
    rounds: the same formula with the noise draws passed in (``gauss`` = ``rng.gauss(0, 0.07)``
    values). ``tests/analytics`` checks it against the scalar function value by value."""
    load = np.minimum(1.2, levels * sensitivity)
    slowdown = 0.85 * np.power(load, 2.2)
    speed = free_flow * np.maximum(0.05, 1.0 - slowdown) * factors
    speed = speed * np.maximum(0.5, 1.0 + gauss)
    speed = np.maximum(1.0, np.minimum(speed, free_flow * 1.15))
    return np.asarray(np.maximum(1.0, np.round(speed)), dtype=np.float64)


def simulate_history(
    days: float = 21.0,
    links: int | None = 40,
    *,
    end: datetime = DEFAULT_END,
    seed: int = 7,
    incidents: Sequence[Incident] | None = None,
    incident_rate: float = INCIDENTS_PER_LINK_DAY,
    missing: float = 0.0,
    noise: float = NOISE,
) -> SimulatedHistory:
    """``days`` of speed-map readings every 2 minutes for ``links`` links ending at ``end``.

    ``incidents``: use these instead of random ones (``[]`` for none). ``missing``: share of
    readings dropped at random (feeds have gaps).
    """
    chosen = pick_links(links)
    start = (end - timedelta(days=days)).replace(second=0, microsecond=0)
    if incidents is None:
        incidents = random_incidents(chosen, start, end, random.Random(seed + 1), incident_rate)
    by_link: dict[str, list[Incident]] = {}
    for inc in incidents:
        by_link.setdefault(inc.road_id, []).append(inc)

    n_cycles = int((end - start) / CYCLE)
    cycle_s = int(CYCLE.total_seconds())
    start_s = int((start - _EPOCH).total_seconds())
    rng = np.random.default_rng(seed)
    levels: dict[str, FloatArray] = {}
    ids: list[pa.Array] = []
    stamps: list[IntArray] = []
    values: list[FloatArray] = []
    for link in chosen:
        second = CAPTURE_SECOND.get(link.region, max(CAPTURE_SECOND.values()))
        times = start_s + cycle_s * np.arange(n_cycles, dtype=np.int64) + second
        level = levels.get(link.region)
        if level is None:
            level = levels[link.region] = np.array(
                [traffic_level(_EPOCH + timedelta(seconds=int(s)), link.region) for s in times]
            )
        factors = np.ones(n_cycles)
        for inc in by_link.get(link.link_id, ()):
            lo = int((inc.start - _EPOCH).total_seconds())
            hi = int((inc.end - _EPOCH).total_seconds())
            factors[(times >= lo) & (times < hi)] *= inc.factor
        speed = congested_speeds(
            free_flow_kmh(link.link_id, link.road_type),
            level,
            sensitivity(link.link_id),
            factors,
            rng.normal(0.0, noise, n_cycles),
        )
        keep = rng.random(n_cycles) >= missing if missing else np.ones(n_cycles, bool)
        ids.append(pa.array(np.full(int(keep.sum()), f"td-link:{link.link_id}"), pa.string()))
        stamps.append(times[keep] * 1_000_000)
        values.append(speed[keep])
    frame = pa.Table.from_arrays(
        [
            pa.concat_arrays(ids) if ids else pa.array([], pa.string()),
            pa.array(np.concatenate(stamps) if stamps else np.zeros(0, np.int64)).cast(
                pa.timestamp("us", tz="UTC")
            ),
            pa.array(np.concatenate(values) if values else np.zeros(0), pa.float64()),
        ],
        names=["entity_id", "ts", "value"],
    )
    return SimulatedHistory(frame, [link_entity(x) for x in chosen], list(incidents), start, end)


def to_batch(history: SimulatedHistory, feed_id: str = "td-speedmap") -> Batch:
    """The history as one store batch (``speed_kmh`` observations + link entities), as if
    every simulated payload had been ingested."""
    n = history.frame.num_rows
    table = pa.Table.from_arrays(
        [
            history.frame.column("entity_id"),
            pa.repeat(pa.scalar(SPEED_METRIC, pa.string()), n),
            history.frame.column("ts"),
            history.frame.column("value"),
            pa.nulls(n, pa.string()),
        ],
        schema=OBSERVATION_SCHEMA,
    )
    tag = f"simulated:{history.start.isoformat()}:{history.end.isoformat()}:{n}".encode()
    batch = Batch.build(feed_id, tag, history.end, entities=history.entities)
    batch.observations = table
    return batch
