"""Stores for the dashboard tests, built once per session and copied per test module.

* ``real``: every captured payload under ``../shared/data/feeds`` replayed through the real
  ingest pipeline (feeds without captures - car parks, traffic news, warnsum, sensors - stay
  empty, which the pages must say honestly).
* ``sim``: the present state of every simulator (the demo's "prime") plus two hours of history,
  at a fixed recent time, through the same pipeline. The warnsum simulator is left out so the
  warning banner is driven only by the tests.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from citypulse.ingest.archive import RawArchive
from citypulse.ingest.pipeline import Pipeline
from citypulse.ingest.replay import replay
from citypulse.ingest.scheduler import DemoSource
from citypulse.store.bus import InProcessBus
from citypulse.store.duckdb import DuckDBStore

_BUILT: dict[str, Path] = {}
SIM_EXCLUDED = {"hko-warnsum", "td-irn-speed"}
"""Warnings come from the tests; road segments have no dashboard tile."""


def sim_time() -> datetime:
    """A minute ago: the data is fresh (tiles 'ok'), and fixed once the store is built."""
    return datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)


def _pipeline(store: DuckDBStore, folder: Path) -> Pipeline:
    return Pipeline(store, RawArchive(folder / "archive"), InProcessBus())


def build_real(feeds_dir: Path, folder: Path) -> Path:
    if "real" not in _BUILT:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "real.duckdb"
        store = DuckDBStore(str(path))
        try:
            replay(feeds_dir, _pipeline(store, folder))
        finally:
            store.close()
        _BUILT["real"] = path
    return _BUILT["real"]


def build_sim(folder: Path, at: datetime | None = None) -> Path:
    if "sim" not in _BUILT:
        from citypulse.simulate.registry import all_simulators

        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "sim.duckdb"
        store = DuckDBStore(str(path))
        try:
            sims = [s for fid, s in all_simulators().items() if fid not in SIM_EXCLUDED]
            when = at or sim_time()
            source = DemoSource(sims, _pipeline(store, folder), seed=7, start=when,
                                backfill_hours=2, backfill_max_payloads=4)
            source.prime(when)
            source.backfill(until=when)
        finally:
            store.close()
        _BUILT["sim"] = path
    return _BUILT["sim"]


def open_copy(path: Path, folder: Path) -> DuckDBStore:
    """A private copy of a built store (tests write to their stores)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    shutil.copyfile(path, target)
    wal = path.with_name(path.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, target.with_name(target.name + ".wal"))
    return DuckDBStore(str(target))
