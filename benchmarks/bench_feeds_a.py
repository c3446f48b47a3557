"""Parse speed of the td-detectors, td-journey-time, td-traffic-news, carpark-info/vacancy and
wifi-hk parsers.

    python benchmarks/bench_feeds_a.py [--quick] [--json]

For each feed: the median wall time of ``parse(payload)`` over repeated runs, the rows it
yields (observations + entities + events) and rows per second. Payloads are the real captured
samples where they exist (``../shared/data/feeds``, or ``CITYPULSE_SHARED_DATA``) and simulator
output otherwise; Wi-Fi.HK is also measured on a generated 30 000-venue fixed-hotspot file, the
city-scale case. CPU time is reported beside wall time because the machine is shared.

``run(quick)`` returns the figures as a flat dict (used by ``citypulse bench``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from citypulse.feeds.registry import get_feed
from citypulse.model import Batch
from citypulse.simulate import (
    carpark_info,
    carpark_vacancy,
    td_detectors,
    td_journey_time,
    td_traffic_news,
    wifi_hk,
)

REPO = Path(__file__).resolve().parents[1]
AT = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)  # Monday 18:00 HKT, evening peak

SAMPLES = {
    "td-detectors": "td-detectors/rawSpeedVol-all_20240406-2127.xml",
    "td-journey-time": "td-journey-time/journeytime_20181015-1654.xml",
    "wifi-hk": "wifi-hk/non-fixed-wi-fi-hk-locations_2023-06-07.json",
}


def _feeds_dir() -> Path | None:
    base = Path(os.environ.get("CITYPULSE_SHARED_DATA", REPO.parent / "shared" / "data"))
    return base / "feeds" if (base / "feeds").is_dir() else None


def _payloads() -> list[tuple[str, str, bytes]]:
    """(feed id, payload label, bytes) for every case measured."""
    rng = random.Random(0)
    feeds = _feeds_dir()
    out: list[tuple[str, str, bytes]] = []
    for feed_id, rel in SAMPLES.items():
        if feeds is not None and (feeds / rel).is_file():
            out.append((feed_id, "real", (feeds / rel).read_bytes()))
    out += [
        ("td-detectors", "sim", td_detectors.SIMULATOR.emit(AT, rng)),
        ("td-journey-time", "sim", td_journey_time.SIMULATOR.emit(AT, rng)),
        ("td-traffic-news", "sim", _busy_news()),
        ("carpark-info", "sim", carpark_info.SIMULATOR.emit(AT, rng)),
        ("carpark-vacancy", "sim", carpark_vacancy.SIMULATOR.emit(AT, rng)),
        ("wifi-hk", "sim-30000", wifi_hk.fixed_file(30_000, AT)),
    ]
    return out


def _busy_news() -> bytes:
    """The simulated traffic-news payload with the most messages in a day (a busy fetch)."""
    best = b""
    for hour in range(24):
        at = AT.replace(hour=hour)
        payload = td_traffic_news.SIMULATOR.emit(at, random.Random(0))
        if payload.count(b"<message>") > best.count(b"<message>"):
            best = payload
    return best


def _rows(batch: Batch) -> int:
    return batch.n_observations + len(batch.entities) + len(batch.events)


def _measure(fn: Callable[[], Batch], repeat: int) -> tuple[float, float, Batch]:
    """Median wall and CPU seconds of ``fn`` over ``repeat`` runs (after one warm-up)."""
    batch = fn()
    walls, cpus = [], []
    for _ in range(repeat):
        gc.collect()
        w0, c0 = time.perf_counter(), time.process_time()
        batch = fn()
        cpus.append(time.process_time() - c0)
        walls.append(time.perf_counter() - w0)
    return statistics.median(walls), statistics.median(cpus), batch


def run(quick: bool = False) -> dict[str, Any]:
    results: dict[str, Any] = {"shared_samples": _feeds_dir() is not None}
    for feed_id, label, payload in _payloads():
        spec = get_feed(feed_id)
        big = len(payload) > 5_000_000
        repeat = (3 if big else 5) if quick else (7 if big else 21)
        wall, cpu, batch = _measure(partial(spec.parse, payload, AT), repeat)
        key = f"{feed_id}.{label}"
        rows = _rows(batch)
        results[f"{key}.bytes"] = len(payload)
        results[f"{key}.rows"] = rows
        results[f"{key}.parse_median_ms"] = round(wall * 1000, 2)
        results[f"{key}.parse_cpu_median_ms"] = round(cpu * 1000, 2)
        results[f"{key}.rows_per_s"] = round(rows / wall) if wall else None
        results[f"{key}.mb_per_s"] = round(len(payload) / wall / 1e6, 1) if wall else None
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = run(args.quick)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    cases = sorted({k.rsplit(".", 1)[0] for k in results if k.count(".") >= 2})
    print(f"{'feed.payload':32} {'bytes':>10} {'rows':>7} {'median ms':>10} {'cpu ms':>8} "
          f"{'rows/s':>10} {'MB/s':>6}")
    for case in cases:
        r = {k.rsplit(".", 1)[1]: v for k, v in results.items() if k.rsplit(".", 1)[0] == case}
        print(
            f"{case:32} {r['bytes']:>10} {r['rows']:>7} {r['parse_median_ms']:>10} "
            f"{r['parse_cpu_median_ms']:>8} {r['rows_per_s']:>10} {r['mb_per_s']:>6}"
        )


if __name__ == "__main__":
    main()
