"""Parse + store of one real traffic-speed payload, end to end, in steady state.

    python benchmarks/bench_pipeline.py [--quick] [--json]

The foundation's budget: parse and store one real speed map payload (607 links) in <= 20 ms
(median of 50). Each run stores a NEW payload (the real capture with its CAPTURE_DATEs shifted
by 2 minutes per run, so nothing is a duplicate) into a DuckDB file that already holds the
links, as a live poll does. Reported beside it, as the side-by-side baseline: the bare
``lxml`` parse of the same bytes and a raw Arrow insert of the same rows into DuckDB (the
floor any store pays). Falls back to a simulated payload when ../shared/data is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from citypulse.feeds import td_speedmap
from citypulse.feeds.base import parse_xml
from citypulse.store.duckdb import DuckDBStore

REPO = Path(__file__).resolve().parents[1]
FEEDS = Path(os.environ.get("CITYPULSE_SHARED_DATA", REPO.parent / "shared" / "data")) / "feeds"
_CAPTURE = re.compile(rb"<CAPTURE_DATE>([^<]+)</CAPTURE_DATE>")


def _payload() -> tuple[bytes, str]:
    files = sorted((FEEDS / "td-speedmap").glob("speedmap_*.xml"))
    if files:
        return files[0].read_bytes(), f"real capture {files[0].name}"
    from random import Random

    from citypulse.simulate.td_speedmap import SIMULATOR

    return SIMULATOR.emit(datetime(2026, 1, 5, 8, tzinfo=UTC), Random(1)), "simulated payload"


def _shift(payload: bytes, minutes: int) -> bytes:
    def bump(m: re.Match[bytes]) -> bytes:
        t = datetime.fromisoformat(m.group(1).decode()) + timedelta(minutes=minutes)
        return b"<CAPTURE_DATE>" + t.isoformat().encode() + b"</CAPTURE_DATE>"

    return _CAPTURE.sub(bump, payload)


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def run(quick: bool = False) -> dict[str, Any]:
    runs = 10 if quick else 50
    base, source = _payload()
    payloads = [_shift(base, 2 * (i + 1)) for i in range(runs)]
    fetched = datetime(2026, 1, 1, tzinfo=UTC)
    parse_s: list[float] = []
    store_s: list[float] = []
    total_s: list[float] = []
    lxml_s: list[float] = []
    raw_s: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStore(str(Path(tmp) / "bench.duckdb"))
        store.append(td_speedmap.parse(base, fetched))  # links known, as in steady state
        raw = duckdb.connect(str(Path(tmp) / "raw.duckdb"))
        raw.execute(
            "CREATE TABLE o(entity_id VARCHAR, metric VARCHAR, ts TIMESTAMPTZ,"
            " value DOUBLE, label VARCHAR)"
        )
        rows = 0
        for payload in payloads:
            t0 = time.perf_counter()
            batch = td_speedmap.parse(payload, fetched)
            t1 = time.perf_counter()
            result = store.append(batch)
            t2 = time.perf_counter()
            parse_s.append(t1 - t0)
            store_s.append(t2 - t1)
            total_s.append(t2 - t0)
            rows = result.observations_written
            t3 = time.perf_counter()
            parse_xml(payload)
            lxml_s.append(time.perf_counter() - t3)
            raw.register("obs", batch.observations)
            t4 = time.perf_counter()
            raw.execute("INSERT INTO o SELECT * FROM obs")
            raw_s.append(time.perf_counter() - t4)
        store.close()
        raw.close()
    total = _median_ms(total_s)
    return {
        "payload": source,
        "runs": runs,
        "rows_per_payload": rows,
        "parse_ms_median": _median_ms(parse_s),
        "store_ms_median": _median_ms(store_s),
        "parse_plus_store_ms_median": total,
        "target_ms": 20.0,
        "meets_target": total <= 20.0,
        "baseline_bare_lxml_parse_ms": _median_ms(lxml_s),
        "baseline_raw_arrow_insert_ms": _median_ms(raw_s),
        "ratio_total_to_baselines": round(
            total / (_median_ms(lxml_s) + _median_ms(raw_s)), 2
        ),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.quick)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:36} {value}")


if __name__ == "__main__":
    main()
