"""The additive ``Pipeline(on_stored=...)`` hook: called once per stored batch (never for
duplicates or quarantined payloads), a failing hook never fails ingest, and the alert engine
evaluates what the pipeline stores."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from citypulse.alerts.engine import ALERT_KIND, AlertEngine
from citypulse.alerts.rules import RuleSet
from citypulse.feeds.registry import get_feed
from citypulse.ingest.archive import RawArchive
from citypulse.ingest.pipeline import Pipeline
from citypulse.store.duckdb import DuckDBStore

from .support import Clock

AT = datetime(2025, 8, 8, 2, 0, tzinfo=UTC)


def message(level: float, ts: str = "2025-08-08T10:00:00+08:00") -> bytes:
    return orjson.dumps({
        "schema": "citypulse.sensors/1",
        "messages": [{
            "device_id": "tai-o-flood-01", "ts": ts,
            "device": {"sensor_type": "flood", "village": "Tai O",
                       "properties": {"alert_level_cm": 140}},
            "readings": [{"metric": "water_level_cm", "value": level}],
        }],
    })


def test_hook_called_once_per_stored_batch(store: DuckDBStore, tmp_path: Path) -> None:
    seen: list[tuple[str, int, str]] = []

    def hook(spec: Any, batch: Any, outcome: Any) -> None:
        seen.append((spec.id, batch.n_observations, outcome.status))

    pipeline = Pipeline(store, RawArchive(tmp_path / "a"), on_stored=[hook])
    spec = get_feed("smart-village")
    assert pipeline.process(spec, message(50), AT).status == "stored"
    assert pipeline.process(spec, message(50), AT).status == "duplicate"
    assert pipeline.process(spec, b"{not json", AT).status == "quarantined"
    assert seen == [("smart-village", 1, "stored")]


def test_failing_hook_is_contained(store: DuckDBStore, tmp_path: Path,
                                   caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def broken(spec: Any, batch: Any, outcome: Any) -> None:
        raise RuntimeError("boom")

    pipeline = Pipeline(store, RawArchive(tmp_path / "a"), on_stored=[broken])
    pipeline.on_stored.append(lambda s, b, o: calls.append(1))
    with caplog.at_level(logging.ERROR, logger="citypulse.ingest.pipeline"):
        out = pipeline.process(get_feed("smart-village"), message(50), AT)
    assert out.status == "stored" and calls == [1]
    assert "on_stored hook" in caplog.text


def test_engine_evaluates_pipeline_batches(store: DuckDBStore, tmp_path: Path,
                                           rules: RuleSet) -> None:
    engine = AlertEngine(store, None, rules, clock=Clock(AT))
    pipeline = Pipeline(store, RawArchive(tmp_path / "a"), on_stored=[engine.on_stored])
    spec = get_feed("smart-village")
    pipeline.process(spec, message(139.9), AT)
    pipeline.process(spec, message(141, "2025-08-08T10:05:00+08:00"), AT)
    pipeline.process(spec, message(141, "2025-08-08T10:05:00+08:00") + b" ", AT)  # new bytes
    found = store.events(AT.replace(year=2024), AT.replace(year=2026), kind=ALERT_KIND)
    assert [(a.properties["rule_id"], a.entity_ids) for a in found] == [
        ("flood-level", ("sensor:tai-o-flood-01",))
    ]
    # The engine's own batches are not fed back to it.
    assert engine.stats()["batches_evaluated"] == 3
