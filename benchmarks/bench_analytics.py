"""Benchmark of the traffic analytics on simulated speed-map history.

    python benchmarks/bench_analytics.py [--quick] [--json]

History: the simulator's model for every speed-map link (607 with readings in the table; 100
with --quick), one reading per link every 2 minutes, 15 days (9 with --quick), with random
incidents, bulk-loaded into a DuckDB store. Timed (median of several runs, one thread):

* ``congestion_day_s``: congestion index of every link over one day (5-minute bins) plus the
  region and district length-weighted means, on a grid already in memory; ``..._with_read_s``
  includes reading that day from the store;
* ``anomaly_day_s``: anomaly scoring and detection over one day of every link (grid in memory)
  and ``..._with_read_s`` with the read;
* ``baseline_fit_s``: free flow + time-of-week profile + scale from the 14-day history;
* ``model_fit_s``: the three gradient-boosting models (15/30/60 min);
* ``forecast_all_s``: forecasts for every link from the newest data (read of the last two
  hours included);
* ``runner_pass_s``: one full periodic pass (congestion + forecasts + anomalies written back)
  with fitted models.

``run(quick)`` returns the figures as a flat dict (used by ``citypulse bench``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from citypulse.analytics import anomalies as anom
from citypulse.analytics import congestion as cong
from citypulse.analytics.baseline import fit_baseline
from citypulse.analytics.engine import TrafficAnalytics
from citypulse.analytics.forecast import SpeedForecaster, forecast_latest
from citypulse.analytics.history import LINK_KIND, SPEED_METRIC, STEP, load_grid
from citypulse.analytics.runner import run_once
from citypulse.analytics.simulated import simulate_history, to_batch
from citypulse.store.duckdb import DuckDBStore

END = datetime(2024, 6, 3, 8, 0, tzinfo=UTC)  # Monday 16:00 HKT


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times = []
    out: Any = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 4), out


def run(quick: bool = False) -> dict[str, Any]:
    links = 100 if quick else None
    days = 9 if quick else 15
    repeat = 3 if quick else 5
    results: dict[str, Any] = {}
    t0 = time.perf_counter()
    history = simulate_history(days=days, links=links, seed=3, end=END)
    results["links"] = len(history.entities)
    results["days"] = days
    results["observations"] = history.frame.num_rows
    results["simulate_s"] = round(time.perf_counter() - t0, 2)
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1):
        store = DuckDBStore(str(Path(tmp) / "bench.duckdb"))
        t0 = time.perf_counter()
        store.append(to_batch(history))
        results["store_load_s"] = round(time.perf_counter() - t0, 2)

        day_start, day_end = END - timedelta(days=1), END
        hist_grid = load_grid(store, SPEED_METRIC, LINK_KIND, END - timedelta(days=days), day_start)
        t0 = time.perf_counter()
        baseline = fit_baseline(hist_grid)
        results["baseline_fit_s"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        model = SpeedForecaster().fit(hist_grid, baseline)
        results["model_fit_s"] = round(time.perf_counter() - t0, 3)

        def read_day() -> Any:
            return load_grid(store, SPEED_METRIC, LINK_KIND, day_start, day_end).rows(
                baseline.entity_ids
            )

        results["read_day_s"], day = timed(read_day, repeat)
        results["day_cells"] = int(day.values.size)
        infos = {e.id: e for e in history.entities}
        from citypulse.analytics.history import link_info

        link_infos = {e: link_info(x) for e, x in infos.items()}
        weights = [link_infos[e].length_km for e in day.entity_ids]
        regions = [link_infos[e].region for e in day.entity_ids]
        districts = [link_infos[e].district for e in day.entity_ids]

        def congestion_day(grid: Any) -> Any:
            import numpy as np

            ci = cong.congestion_index(grid.values, baseline.free_flow[:, None])
            w = np.array(weights)
            return (
                cong.weighted_area_means(ci, w, regions),
                cong.weighted_area_means(ci, w, districts),
            )

        def anomalies_day(grid: Any) -> list[anom.Anomaly]:
            return anom.detect(anom.score_grid(grid, baseline), infos=link_infos)

        results["congestion_day_s"], _ = timed(lambda: congestion_day(day), repeat)
        results["congestion_day_with_read_s"], _ = timed(
            lambda: congestion_day(read_day()), repeat
        )
        results["anomaly_day_s"], found = timed(lambda: anomalies_day(day), repeat)
        results["anomaly_day_with_read_s"], _ = timed(lambda: anomalies_day(read_day()), repeat)
        results["anomalies_found_in_day"] = len(found)
        in_day = [i for i in history.incidents if i.end > day_start and i.start < day_end]
        results["incidents_in_day"] = len(in_day)

        def overlaps(a: anom.Anomaly, i: Any) -> bool:
            return a.entity_id == f"td-link:{i.road_id}" and a.start < i.end and (
                a.end or day_end
            ) > i.start

        results["incidents_detected"] = sum(1 for i in in_day if any(overlaps(a, i) for a in found))
        results["anomalies_without_incident"] = sum(
            1 for a in found if not any(overlaps(a, i) for i in in_day)
        )

        def forecast_all() -> Any:
            end = day_end
            grid = load_grid(store, SPEED_METRIC, LINK_KIND, end - timedelta(hours=2), end)
            grid = grid.rows(baseline.entity_ids)
            return forecast_latest(model, grid, baseline, origin=grid.n_bins - 1)

        results["forecast_all_s"], fcs = timed(forecast_all, repeat)
        results["forecast_links_ok"] = sum(1 for f in fcs if f.points)

        engine = TrafficAnalytics(store)
        t0 = time.perf_counter()
        engine.fitted()
        results["engine_cold_fit_s"] = round(time.perf_counter() - t0, 2)
        run_once(engine)  # warm caches as serve would after its first pass

        def runner_pass() -> Any:
            engine.clear_cache()  # what a new 5-minute tick sees: fresh data, fitted models
            return run_once(engine)

        results["runner_pass_s"], summary = timed(runner_pass, repeat)
        results["runner_rows"] = summary.congestion_rows + summary.forecast_rows
        store.close()
    results["step_min"] = int(STEP.total_seconds() // 60)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = run(args.quick)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for k, v in figures.items():
            print(f"{k:>30}: {v}")


if __name__ == "__main__":
    main()
