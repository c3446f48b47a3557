"""Alert fixtures: a DuckDB store on a temp file, a bus that records what is published, the
default rules and an engine on a hand-moved clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from citypulse.alerts.engine import AlertEngine
from citypulse.alerts.rules import RuleSet, load_rules
from citypulse.store.duckdb import DuckDBStore

from .support import Clock


class RecordingBus:
    """Bus stand-in that keeps every published message (the engine only publishes)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []

    def publish(self, topic: str, data: dict[str, Any]) -> None:
        self.messages.append((topic, data))

    def subscribe(self, topics: Any = None, maxsize: int = 100) -> Any:
        raise NotImplementedError

    def actions(self) -> list[tuple[str, str]]:
        return [(d["action"], d["alert"]["properties"]["rule_id"]) for t, d in self.messages
                if t == "alerts"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    s = DuckDBStore(str(tmp_path / "alerts.duckdb"))
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def bus() -> RecordingBus:
    return RecordingBus()


@pytest.fixture(scope="session")
def rules() -> RuleSet:
    return load_rules()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(store: DuckDBStore, bus: RecordingBus, rules: RuleSet, clock: Clock) -> AlertEngine:
    return AlertEngine(store, bus, rules, clock=clock)
