"""Parse speed of the two TD traffic-speed feeds on every real captured payload.

    python benchmarks/bench_parse.py [--quick] [--json]

Per payload: median wall time of ``parse(payload, fetched_at)`` over 50 runs (10 with
``--quick``), observations per second, and the baseline of a bare safe ``lxml`` parse of the
same bytes (what any XML feed pays before reading a value). The budget for parse + store of
one payload is 20 ms; this measures the parse half only (see bench_store.py for the rest).

``run(quick)`` returns the figures as a flat dict (used by ``citypulse bench``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from citypulse.feeds import td_irn_speed, td_speedmap
from citypulse.feeds.base import parse_xml

REPO = Path(__file__).resolve().parents[1]
FEEDS = Path(os.environ.get("CITYPULSE_SHARED_DATA", REPO.parent / "shared" / "data")) / "feeds"
FETCHED = datetime(2024, 1, 1, tzinfo=UTC)
BUDGET_MS = 20.0

TARGETS: dict[str, tuple[str, str, Callable[[bytes, datetime], Any]]] = {
    "td-speedmap": ("td-speedmap", "speedmap_*.xml", td_speedmap.parse),
    "td-irn-speed": ("td-irn-speed", "irnAvgSpeed-all_*.xml", td_irn_speed.parse),
}


def median_ms(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """(wall, CPU) medians in ms of ``runs`` calls after one warm-up (caches, lazy tables),
    GC paused. CPU time is reported too because the shared machines this runs on are often
    busy: wall time then includes waiting for a core, CPU time does not."""
    fn()
    wall, cpu = [], []
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        for _ in range(runs):
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    finally:
        if gc_was_on:
            gc.enable()
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def run(quick: bool = False) -> dict[str, Any]:
    runs = 10 if quick else 50
    results: dict[str, Any] = {"runs_per_payload": runs, "budget_parse_plus_store_ms": BUDGET_MS}
    for feed, (folder, pattern, parse) in TARGETS.items():
        files = sorted((FEEDS / folder).glob(pattern))
        if not files:
            results[f"{feed}_skipped"] = f"no samples under {FEEDS / folder}"
            continue
        per_file_ms, cpu_ms, lxml_ms, rows_per_s = [], [], [], []
        for path in files:
            payload = path.read_bytes()
            n = parse(payload, FETCHED).n_observations
            ms, cpu = median_ms(lambda p=payload, f=parse: f(p, FETCHED), runs)  # type: ignore[misc]
            base, _ = median_ms(lambda p=payload: parse_xml(p), runs)  # type: ignore[misc]
            per_file_ms.append(ms)
            cpu_ms.append(cpu)
            lxml_ms.append(base)
            rows_per_s.append(n / (ms / 1000))
            results[f"{feed}:{path.name}_ms"] = round(ms, 2)
            results[f"{feed}:{path.name}_rows"] = n
        results[f"{feed}_payloads"] = len(files)
        results[f"{feed}_median_ms"] = round(statistics.median(per_file_ms), 2)
        results[f"{feed}_median_cpu_ms"] = round(statistics.median(cpu_ms), 2)
        results[f"{feed}_worst_ms"] = round(max(per_file_ms), 2)
        results[f"{feed}_rows_per_s"] = round(statistics.median(rows_per_s))
        results[f"{feed}_baseline_lxml_only_ms"] = round(statistics.median(lxml_ms), 2)
        results[f"{feed}_parse_vs_lxml_ratio"] = round(
            statistics.median(per_file_ms) / statistics.median(lxml_ms), 2
        )
        results[f"{feed}_within_budget"] = max(per_file_ms) <= BUDGET_MS
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--quick", action="store_true", help="10 runs per payload instead of 50")
    args = parser.parse_args()
    results = run(args.quick)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    width = max(len(k) for k in results)
    for key, value in results.items():
        shown = (
            f"{value:,}"
            if isinstance(value, int | float) and not isinstance(value, bool)
            else value
        )
        print(f"{key:<{width}}  {shown}")


if __name__ == "__main__":
    main()
