"""Parse speed of the HKO, EPD and COVID-19 parsers (hko-rhrread, hko-fnd, hko-warnsum,
hko-warning-rss, hko-currentweather-rss, hko-nday-rss, epd-aqhi, epd-pollutants,
covid19-situation, covid19-cases).

    python benchmarks/bench_feeds_b.py [--quick] [--json]

Per feed and payload source ("real" = every captured sample in ``../shared/data/feeds`` or
``CITYPULSE_SHARED_DATA``; "sim" = simulator output, for feeds with no capture or as a second
case): the median over payloads of each payload's median ``parse`` wall time, the rows it
yields (observations + entities + events) and rows per second over all payloads. CPU time is
reported beside wall time because the machine is shared.

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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from citypulse.feeds.registry import get_feed
from citypulse.simulate import epd_aqhi, epd_pollutants, hko_fnd, hko_rhrread, hko_warnsum
from citypulse.simulate.base import FeedSimulator

REPO = Path(__file__).resolve().parents[1]
AT = datetime(2025, 8, 10, 4, 5, tzinfo=UTC)  # 12:05 HKT during a simulated No. 8 signal

REAL = {
    "hko-rhrread": ("hko-rhrread", "*.json"),
    "hko-fnd": ("hko-fnd", "*.json"),
    "hko-warning-rss": ("hko-warning-rss", "*.xml"),
    "hko-currentweather-rss": ("hko-currentweather-rss", "*.xml"),
    "hko-nday-rss": ("hko-nday-rss", "*.xml"),
    "epd-aqhi": ("epd-aqhi", "*.xml"),
    "covid19-situation": ("covid19", "latest_situation_*.csv"),
    "covid19-cases": ("covid19", "enhanced_sur_*.csv"),
}
SIMS: dict[str, FeedSimulator] = {
    "hko-rhrread": hko_rhrread.SIMULATOR,
    "hko-fnd": hko_fnd.SIMULATOR,
    "hko-warnsum": hko_warnsum.SIMULATOR,
    "epd-aqhi": epd_aqhi.SIMULATOR,
    "epd-pollutants": epd_pollutants.SIMULATOR,
}


def _feeds_dir() -> Path | None:
    base = Path(os.environ.get("CITYPULSE_SHARED_DATA", REPO.parent / "shared" / "data"))
    return base / "feeds" if (base / "feeds").is_dir() else None


def _cases() -> list[tuple[str, str, list[bytes]]]:
    feeds = _feeds_dir()
    out: list[tuple[str, str, list[bytes]]] = []
    if feeds is not None:
        for feed_id, (folder, pattern) in REAL.items():
            payloads = [p.read_bytes() for p in sorted((feeds / folder).glob(pattern))]
            if payloads:
                out.append((feed_id, "real", payloads))
    for feed_id, sim in SIMS.items():
        out.append((feed_id, "sim", [sim.emit(AT, random.Random(0))]))
    return out


def _median_parse(feed_id: str, payload: bytes, repeat: int) -> tuple[float, float, int]:
    """Median wall and CPU seconds of one payload's parse (after a warm-up), and its rows."""
    parse = get_feed(feed_id).parse
    batch = parse(payload, AT)
    rows = batch.n_observations + len(batch.entities) + len(batch.events)
    walls, cpus = [], []
    for _ in range(repeat):
        gc.collect()
        w0, c0 = time.perf_counter(), time.process_time()
        parse(payload, AT)
        cpus.append(time.process_time() - c0)
        walls.append(time.perf_counter() - w0)
    return statistics.median(walls), statistics.median(cpus), rows


def run(quick: bool = False) -> dict[str, Any]:
    results: dict[str, Any] = {"shared_samples": _feeds_dir() is not None}
    for feed_id, label, payloads in _cases():
        big = max(len(p) for p in payloads) > 500_000
        repeat = (3 if big else 7) if quick else (9 if big else 31)
        figures = [_median_parse(feed_id, p, repeat) for p in payloads]
        wall = statistics.median(f[0] for f in figures)
        cpu = statistics.median(f[1] for f in figures)
        total_s = sum(f[0] for f in figures)
        rows = sum(f[2] for f in figures)
        key = f"{feed_id}.{label}"
        results[f"{key}.payloads"] = len(payloads)
        results[f"{key}.bytes"] = sum(len(p) for p in payloads)
        results[f"{key}.rows"] = rows
        results[f"{key}.parse_median_ms"] = round(wall * 1000, 3)
        results[f"{key}.parse_cpu_median_ms"] = round(cpu * 1000, 3)
        results[f"{key}.rows_per_s"] = round(rows / total_s) if total_s else None
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
    cases = sorted({k.rsplit(".", 1)[0] for k in results if "." in k})
    print(f"{'feed.source':30} {'files':>5} {'bytes':>9} {'rows':>7} {'median ms':>10} "
          f"{'cpu ms':>8} {'rows/s':>10}")
    for case in cases:
        r = {k.rsplit(".", 1)[1]: v for k, v in results.items() if k.rsplit(".", 1)[0] == case}
        print(
            f"{case:30} {r['payloads']:>5} {r['bytes']:>9} {r['rows']:>7} "
            f"{r['parse_median_ms']:>10} {r['parse_cpu_median_ms']:>8} {r['rows_per_s']:>10}"
        )


if __name__ == "__main__":
    main()
