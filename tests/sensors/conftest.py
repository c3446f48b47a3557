"""Sensor fixtures: a data dir with a DuckDB store, a device registry with a few devices, the
shared intake around a real pipeline and an alert engine."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from citypulse.alerts.engine import AlertEngine
from citypulse.ingest.archive import RawArchive
from citypulse.ingest.pipeline import Pipeline
from citypulse.sensors.ingest import SensorIngest
from citypulse.sensors.keys import KeyStore
from citypulse.store.bus import InProcessBus
from citypulse.store.duckdb import DuckDBStore

NOW = datetime(2025, 8, 8, 2, 0, tzinfo=UTC)


@dataclass
class Rig:
    data_dir: Path
    store: DuckDBStore
    bus: InProcessBus
    pipeline: Pipeline
    keys: KeyStore
    ingest: SensorIngest
    engine: AlertEngine
    key: dict[str, str]
    now: list[datetime]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    store = DuckDBStore(str(tmp_path / "citypulse.duckdb"))
    bus = InProcessBus()
    now = [NOW]
    engine = AlertEngine(store, bus, clock=lambda: now[0])
    pipeline = Pipeline(store, RawArchive(tmp_path / "archive"), bus,
                        on_stored=[engine.on_stored])
    keys = KeyStore.for_data_dir(tmp_path)
    key = {
        "flood": keys.add_device("tai-o-flood-01", sensor_type="flood", village="Tai O",
                                 village_zh="大澳", lat=22.254, lon=113.8625, district="Islands",
                                 properties={"alert_level_cm": 140}),
        "cam": keys.add_device("pui-o-dumping-01", sensor_type="dumping", village="Pui O"),
    }
    ingest = SensorIngest(pipeline, keys, clock=lambda: now[0])
    try:
        yield Rig(tmp_path, store, bus, pipeline, keys, ingest, engine, key, now)
    finally:
        keys.close()
        store.close()
