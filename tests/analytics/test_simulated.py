"""The fast history synthesiser must produce what the speed-map simulator produces."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np

from citypulse.analytics.simulated import congested_speeds, pick_links, simulate_history
from citypulse.feeds.registry import get_feed
from citypulse.simulate.profile import Incident, congested_speed, sensitivity
from citypulse.simulate.td_speedmap import SpeedmapSimulator


class FixedGauss(random.Random):
    """A random source whose Gaussian draws are given in advance."""

    def __init__(self, draws: list[float]) -> None:
        super().__init__(0)
        self.draws = list(draws)

    def gauss(self, mu: float = 0.0, sigma: float = 1.0) -> float:
        return self.draws.pop(0) if self.draws else 0.0


def test_vectorised_speeds_equal_the_simulator_formula() -> None:
    rng = np.random.default_rng(1)
    levels = rng.uniform(0, 1, 500)
    factors = np.where(rng.random(500) < 0.2, rng.uniform(0.15, 1.0, 500), 1.0)
    gauss = rng.normal(0, 0.07, 500)
    for link in pick_links(8):
        free = 60.0 + len(link.link_id)
        vec = congested_speeds(free, levels, sensitivity(link.link_id), factors, gauss)
        one = [
            max(1, round(congested_speed(free, lv, link.link_id, FixedGauss([g]), factor=f)))
            for lv, f, g in zip(levels, factors, gauss, strict=True)
        ]
        np.testing.assert_array_equal(vec, np.array(one, dtype=float))


def test_history_matches_simulated_payloads_without_noise() -> None:
    """Same links, capture instants and speeds as SpeedmapSimulator.emit -> parser, with the
    noise switched off on both sides and an incident on one link."""
    end = datetime(2024, 6, 3, 1, 0, tzinfo=UTC)
    links = pick_links(12)
    inc = Incident(links[3].link_id, end - timedelta(minutes=30), end, factor=0.3)
    hist = simulate_history(days=1 / 24, links=12, end=end, incidents=[inc], noise=0.0)
    ours = {
        (e, t): v
        for e, t, v in zip(
            hist.frame.column("entity_id").to_pylist(),
            hist.frame.column("ts").to_pylist(),
            hist.frame.column("value").to_pylist(),
            strict=True,
        )
    }
    sim = SpeedmapSimulator(incidents=(inc,))
    parse = get_feed("td-speedmap").parse
    wanted = {f"td-link:{x.link_id}" for x in links}
    compared = 0
    for minutes in (10, 24, 40, 58):
        at = end - timedelta(minutes=60 - minutes)
        batch = parse(sim.emit(at, FixedGauss([])), at)
        for o in batch.observation_list():
            if o.entity_id in wanted and (o.entity_id, o.ts) in ours:
                assert ours[(o.entity_id, o.ts)] == o.value, (o.entity_id, o.ts)
                compared += 1
    assert compared >= 12 * 3
    slowed = [v for (e, _t), v in ours.items() if e == f"td-link:{links[3].link_id}"]
    assert min(slowed) < max(slowed) * 0.5  # the incident shows
