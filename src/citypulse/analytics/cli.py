"""``citypulse analytics ...``: the forecast backtest and a one-off analytics run.

``backtest`` runs on simulated history by default (``--days``, ``--links``), on the speed-map
history of a store with ``--store``, or on recorded payload files with ``--replay DIR`` (e.g.
the real captures). It prints MAE / RMSE / MAPE per horizon for the model and both baselines.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from citypulse.analytics.history import Grid

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the report as JSON.")]
DaysOpt = Annotated[
    float, typer.Option(min=0.01, help="Days of history (simulated, or read from the store).")
]
LinksOpt = Annotated[
    int, typer.Option(min=1, help="Simulated links (a subset of the ~600, over all regions).")
]
TestDaysOpt = Annotated[
    float, typer.Option("--test-days", min=0.01, help="Final days held out for testing.")
]
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Backtest on this store's speed-map history (DuckDB path or postgresql:// URL).",
    ),
]
ReplayOpt = Annotated[
    Path | None,
    typer.Option(
        "--replay",
        exists=True,
        file_okay=False,
        help="Backtest on recorded payload files under this folder (e.g. the real captures).",
    ),
]
SeedOpt = Annotated[int, typer.Option(help="Simulation and model seed.")]

analytics_app = typer.Typer(
    help="Traffic analytics: forecast backtest, one-off runs.", no_args_is_help=True
)


def _store_grid(url: str, days: float) -> tuple[Grid, dict[str, str | None], str]:
    """The store's road-link speeds over its last ``days`` of data as a grid starting at the
    first bin with data."""
    import numpy as np

    from citypulse.analytics.engine import TrafficAnalytics
    from citypulse.analytics.history import LINK_KIND, SPEED_METRIC, STEP, floor_time, load_grid
    from citypulse.store import open_store

    try:
        store = open_store(url)
    except Exception as exc:  # locked DuckDB file, bad URL
        typer.secho(f"cannot open store {url}: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    try:
        engine = TrafficAnalytics(store)
        at = engine.data_time()
        if at is None:
            typer.secho(f"store {url} has no road-link speeds", fg="red", err=True)
            raise typer.Exit(2)
        end = floor_time(at) + STEP
        grid = load_grid(store, SPEED_METRIC, LINK_KIND, end - timedelta(days=days), end)
        cols = np.flatnonzero(np.any(~np.isnan(grid.values), axis=0))
        if cols.size:
            grid = grid.window(grid.bin_time(int(cols[0])), grid.end)
        types = {e: i.road_type for e, i in engine.link_infos().items()}
        return grid, types, f"store {url}"
    finally:
        store.close()


def _replay_store(directory: Path) -> tuple[str, int, int]:
    """Parse every recorded payload under ``directory`` into a temporary DuckDB file."""
    import tempfile

    from citypulse.feeds.base import FeedError
    from citypulse.feeds.registry import feed_for_file
    from citypulse.model import now_utc
    from citypulse.store.duckdb import DuckDBStore

    path = str(Path(tempfile.mkdtemp(prefix="citypulse-backtest-")) / "replay.duckdb")
    files = parsed = 0
    with DuckDBStore(path) as store:
        for f in sorted(p for p in directory.rglob("*") if p.is_file()):
            spec = feed_for_file(f)
            if spec is None:
                continue
            files += 1
            try:
                store.append(spec.parse(f.read_bytes(), now_utc()))
                parsed += 1
            except FeedError:
                continue
    return path, files, parsed


@analytics_app.command()
def backtest(
    as_json: JsonOpt = False,
    days: DaysOpt = 21.0,
    links: LinksOpt = 60,
    test_days: TestDaysOpt = 7.0,
    store: StoreOpt = None,
    replay: ReplayOpt = None,
    seed: SeedOpt = 7,
) -> None:
    """Backtest the 15/30/60-minute speed forecasts against last value and the time-of-week
    historical average, on the same origins and targets."""
    from citypulse.analytics.backtest import run_backtest
    from citypulse.analytics.history import grid_from_frame

    types: dict[str, str | None]
    if replay is not None:
        path, files, parsed = _replay_store(replay)
        grid, types, _ = _store_grid(path, days)
        source = f"replayed files under {replay} ({parsed} of {files} parsed)"
    elif store is not None:
        grid, types, source = _store_grid(store, days)
    else:
        from citypulse.analytics.simulated import simulate_history

        sim = simulate_history(days=days, links=links, seed=seed)
        grid = grid_from_frame(sim.frame, sim.start, sim.end)
        types = {e.id: str(e.properties.get("road_type")) for e in sim.entities}
        source = (
            f"simulated speed map (seed {seed}, {len(sim.incidents)} injected incidents)"
        )
    report = run_backtest(grid, source=source, test_days=test_days, road_types=types, seed=seed)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        typer.echo(report.table())


@analytics_app.command("run")
def run_command(
    store: Annotated[str, typer.Option("--store", help="DuckDB path or postgresql:// URL.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run the analytics once on a store (congestion, anomalies, forecasts written back), as
    ``citypulse serve`` does every 5 minutes."""
    from citypulse.analytics.engine import TrafficAnalytics
    from citypulse.analytics.runner import run_once
    from citypulse.store import open_store

    try:
        ts_store = open_store(store)
    except Exception as exc:
        typer.secho(f"cannot open store {store}: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    try:
        summary = run_once(TrafficAnalytics(ts_store), None, lookback=timedelta(hours=24))
    finally:
        ts_store.close()
    if as_json:
        typer.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        for key, value in summary.as_dict().items():
            typer.echo(f"{key}: {value}")


@analytics_app.command("simulate-history")
def simulate_history_command(
    store: Annotated[str, typer.Option("--store", help="DuckDB path or postgresql:// URL.")],
    days: DaysOpt = 14.0,
    links: Annotated[
        int | None, typer.Option(min=1, help="Links to simulate (default: all ~600).")
    ] = None,
    seed: SeedOpt = 7,
) -> None:
    """Load simulated speed-map history (the simulator's model, with incidents) ending now
    into a store, so a demo has the weeks of history analytics learn from. For demo and test
    stores only: it writes td-speedmap observations."""
    from datetime import UTC, datetime

    from citypulse.analytics.history import floor_time
    from citypulse.analytics.simulated import simulate_history, to_batch
    from citypulse.store import open_store

    end = floor_time(datetime.now(UTC), timedelta(minutes=2))
    history = simulate_history(days=days, links=links, seed=seed, end=end)
    try:
        ts_store = open_store(store)
    except Exception as exc:
        typer.secho(f"cannot open store {store}: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    try:
        result = ts_store.append(to_batch(history))
    finally:
        ts_store.close()
    typer.echo(
        f"{result.observations_written} speed observations of {len(history.entities)} links "
        f"over {days:g} days ({len(history.incidents)} incidents) written to {store}"
    )
