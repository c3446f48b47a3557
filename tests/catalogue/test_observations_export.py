"""Bulk downloads of a feed's observations: date-range parsing, CSV and Parquet bodies, and
the HTTP routes (with a store implementing the proposed ``observations`` method)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from citypulse.catalogue import observations as obs
from citypulse.catalogue.feeds import FeedProfile
from citypulse.catalogue.service import Catalogue
from citypulse.config import Settings
from citypulse.feeds.registry import all_feeds
from citypulse.model import OBSERVATION_SCHEMA
from citypulse.web.app import create_app

T0 = datetime(2024, 6, 19, 4, 0, tzinfo=UTC)


class ArrowStore:
    """A store holding observations in memory, implementing ``ObservationReader``."""

    def __init__(self, table: pa.Table, kinds: dict[str, str]) -> None:
        self.table = table
        self.kinds = kinds
        self.calls: list[dict[str, Any]] = []

    def observations(self, start: datetime, end: datetime, *,
                     kinds: Sequence[str] | None = None,
                     entity_ids: Sequence[str] | None = None,
                     metrics: Sequence[str] | None = None,
                     limit: int | None = None) -> pa.Table:
        self.calls.append({"start": start, "end": end, "kinds": kinds, "metrics": metrics})
        rows = [r for r in self.table.to_pylist()
                if start <= r["ts"] < end
                and (kinds is None or self.kinds.get(r["entity_id"]) in kinds)
                and (metrics is None or r["metric"] in metrics)]
        rows.sort(key=lambda r: (r["ts"], r["entity_id"], r["metric"]))
        return pa.Table.from_pylist(rows[:limit] if limit else rows, schema=OBSERVATION_SCHEMA)


def sample_table(n: int = 50) -> pa.Table:
    rows = []
    for i in range(n):
        rows.append({"entity_id": f"td-link:{i % 5}", "metric": "speed_kmh",
                     "ts": T0 + timedelta(minutes=2 * i), "value": 40.0 + i, "label": None})
        rows.append({"entity_id": "other:1", "metric": "speed_kmh",
                     "ts": T0 + timedelta(minutes=2 * i), "value": 1.0, "label": None})
    return pa.Table.from_pylist(rows, schema=OBSERVATION_SCHEMA)


def test_parse_bound() -> None:
    assert obs.parse_bound("start", "2024-06-19") == datetime(2024, 6, 18, 16, 0, tzinfo=UTC)
    assert obs.parse_bound("end", "2024-06-19", end=True) == datetime(2024, 6, 19, 16, 0,
                                                                       tzinfo=UTC)
    assert obs.parse_bound("start", "2024-06-19T12:00:00+08:00") == T0
    assert obs.parse_bound("start", "2024-06-19T04:00:00Z") == T0
    assert obs.parse_bound("start", "") is None
    for bad in ("2024-06-19T12:00:00", "yesterday", "2024-13-01"):
        with pytest.raises(obs.ExportError) as err:
            obs.parse_bound("start", bad)
        assert err.value.status == 400


def test_window() -> None:
    lo, hi = obs.window(None, None, now=T0)
    assert hi == T0 and hi - lo == timedelta(hours=24)
    with pytest.raises(obs.ExportError):
        obs.window("2024-06-20", "2024-06-19")
    with pytest.raises(obs.ExportError):
        obs.window("2020-01-01", "2024-06-19")


def test_csv_and_parquet_bodies() -> None:
    table = sample_table(10)
    text = b"".join(obs.csv_chunks(table, chunk_rows=3))
    back = pacsv.read_csv(io.BytesIO(text))
    assert back.num_rows == table.num_rows
    assert back.column_names == ["entity_id", "metric", "ts", "value", "label"]
    assert pq.read_table(io.BytesIO(obs.parquet_bytes(table))).equals(table)
    empty = b"".join(obs.csv_chunks(table.slice(0, 0)))
    assert empty.decode().strip().startswith('"entity_id"')


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[TestClient, ArrowStore]:
    table = sample_table()
    store = ArrowStore(table, {f"td-link:{i}": "road-link" for i in range(5)} | {
        "other:1": "other"})
    monkeypatch.setattr(obs, "feed_profile",
                        lambda feed_id: FeedProfile((("road-link", "speed_kmh"),)))
    app = create_app(Settings(data_dir=tmp_path), store=store)  # type: ignore[arg-type]
    app.state.catalogue = Catalogue(tmp_path / "c.sqlite", sync_feeds=False)
    return TestClient(app), store


def test_csv_route(client: tuple[TestClient, ArrowStore]) -> None:
    c, store = client
    feed = next(iter(all_feeds()))
    r = c.get(f"/api/v1/feeds/{feed}/observations.csv",
              params={"start": "2024-06-19T12:00:00+08:00", "end": "2024-06-19T13:00:00+08:00"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="' in r.headers["content-disposition"]
    back = pacsv.read_csv(io.BytesIO(r.content))
    # 30 two-minute steps in the hour, only road links (the other kind is filtered out).
    assert back.num_rows == 30
    assert set(back.column("entity_id").to_pylist()) <= {f"td-link:{i}" for i in range(5)}
    assert store.calls[-1]["kinds"] == ("road-link",)


def test_parquet_route(client: tuple[TestClient, ArrowStore]) -> None:
    c, _ = client
    feed = next(iter(all_feeds()))
    r = c.get(f"/api/v1/feeds/{feed}/observations.parquet",
              params={"start": "2024-06-19", "end": "2024-06-19"})
    assert r.status_code == 200
    table = pq.read_table(io.BytesIO(r.content))
    assert table.schema.equals(OBSERVATION_SCHEMA)
    assert table.num_rows == 50


def test_route_errors(client: tuple[TestClient, ArrowStore], tmp_path: Path) -> None:
    c, _ = client
    assert c.get("/api/v1/feeds/no-such-feed/observations.csv").status_code == 404
    feed = next(iter(all_feeds()))
    r = c.get(f"/api/v1/feeds/{feed}/observations.csv", params={"start": "2024-06-19T12:00"})
    assert r.status_code == 400 and "offset" in r.json()["detail"]
    app = create_app(Settings(data_dir=tmp_path), store=object())  # type: ignore[arg-type]
    app.state.catalogue = Catalogue(tmp_path / "d.sqlite", sync_feeds=False)
    r = TestClient(app).get(f"/api/v1/feeds/{feed}/observations.csv")
    assert r.status_code == 501
