"""The metric registry keeps up with the feeds: every metric any simulator's payload parses
into is known, so a rule on it loads."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from citypulse.alerts.metrics import known_metrics
from citypulse.feeds.registry import all_feeds
from citypulse.simulate.registry import all_simulators

TIMES = (datetime(2025, 1, 14, 20, 5, tzinfo=UTC), datetime(2025, 8, 9, 6, 40, tzinfo=UTC))


@pytest.mark.parametrize("feed_id", sorted(all_simulators()))
def test_every_simulated_metric_is_known(feed_id: str) -> None:
    registry = known_metrics()
    spec = all_feeds()[feed_id]
    sim = all_simulators()[feed_id]
    for at in TIMES:
        batch = spec.parse(sim.emit(at, random.Random(3)), at)
        metrics = set(batch.observations.column("metric").to_pylist())
        unknown = sorted(m for m in metrics if m not in registry)
        assert not unknown, f"{feed_id} emits metrics missing from alerts/metrics.py: {unknown}"


def test_declared_feed_metrics_are_known() -> None:
    registry = known_metrics()
    for spec in all_feeds().values():
        for name in spec.extra.get("metrics", ()) or ():
            assert name in registry
