"""Load: 200 concurrent readers and live ingest together, against ``citypulse serve``.

Setup: a data folder pre-filled with a few hours of simulated history; ``citypulse serve`` (one
process: web + ingest, as deployed on the embedded store) polls a local feed server that
answers every poll with a new simulated payload (speed map, IRN segments, detectors, journey
times, traffic news, weather, AQHI, car parks, Smart Village) every 10-30 s, about ten times
as often as the real feeds publish. Meanwhile 200 readers (closed loop) fetch pages and API
calls in a fixed mix with 2-10 s between requests (a person reading a dashboard whose live
values arrive over SSE, then moving on), and SSE clients listen to the live topics. The load
generator runs in this process (asyncio + httpx), the server in its own, so they do not share
a GIL; on the shared 2-core machine they do share the CPU (the load average, the server's CPU
share and its CPU per request are reported with the figures).

Reported: requests, error responses (anything but 2xx/3xx, and transport errors), req/s,
latency p50/p95/p99/max overall, for pages and for API calls and per path; payloads ingested
during the load and SSE messages received. Targets (assumed from the dashboards' page budget
of 0.75 s for tiles): page p99 <= 1000 ms, API p99 <= 500 ms, zero errors.

    python benchmarks/bench_load.py [--quick]      or      citypulse bench --only load
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

READERS = 200
THINK_MIN_S, THINK_MAX_S = 2.0, 10.0
TARGETS = {"page_p99_ms": 1000.0, "api_p99_ms": 500.0, "errors": 0}
# Poll intervals (s): about 10x faster than the real feeds publish (speed map: 2 min).
LIVE_FEEDS = {
    "td-speedmap": 10, "td-irn-speed": 15, "td-detectors": 10, "td-journey-time": 15,
    "td-traffic-news": 10, "hko-rhrread": 30, "hko-warnsum": 20, "epd-aqhi": 30,
    "carpark-vacancy": 15, "smart-village": 15,
}
PAGES = [
    "/", "/dashboards/traffic", "/status", "/datasets", "/dashboards/environment",
    "/dashboards/mobility", "/alerts", "/zh-hant/dashboards/traffic", "/initiatives",
]
# What the pages' scripts and API users ask for (a client wanting every speed of every kind
# at once, 850 KB, is not a reader: it belongs to bulk downloads).
API = [
    "/api/v1/traffic/links.geojson", "/api/v1/latest?metric=speed_kmh&kind=road-link",
    "/api/v1/feeds", "/api/v1/events", "/api/v1/aggregate?kind=road-link&metric=speed_kmh",
    "/api/v1/latest?metric=temperature_c", "/api/3/action/package_search?q=traffic",
]
# Of every 10 reader requests: 4 pages, 6 API calls (dashboards fetch data after the page).
MIX = PAGES[:4] + API[:6]


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FeedServer:
    """Answers ``/<feed id>`` with a fresh simulated payload for the current time."""

    def __init__(self) -> None:
        from citypulse.feeds.registry import get_feed
        from citypulse.simulate.registry import all_simulators

        sims = all_simulators()
        self.sims = {f: sims[f] for f in LIVE_FEEDS}
        self.media = {f: get_feed(f).media_type for f in LIVE_FEEDS}
        self.served: Counter[str] = Counter()
        self.rng = random.Random(7)
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                feed = self.path.strip("/")
                if feed not in outer.sims:
                    self.send_error(404)
                    return
                with outer.lock:
                    outer.served[feed] += 1
                    rng = random.Random(outer.rng.random())
                body = outer.sims[feed].emit(datetime.now(UTC).replace(microsecond=0), rng)
                self.send_response(200)
                self.send_header("Content-Type", outer.media[feed])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def urls(self) -> dict[str, str]:
        return {f: f"http://127.0.0.1:{self.port}/{f}" for f in LIVE_FEEDS}

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def prefill(data_dir: Path, hours: float, per_feed: int) -> None:
    """Simulated history, so dashboards and series have something to chew on."""
    from citypulse.ingest.archive import RawArchive
    from citypulse.ingest.pipeline import Pipeline
    from citypulse.ingest.scheduler import DemoSource
    from citypulse.simulate.registry import all_simulators
    from citypulse.store.duckdb import DuckDBStore

    store = DuckDBStore(str(data_dir / "citypulse.duckdb"))
    try:
        pipeline = Pipeline(store, RawArchive(data_dir / "archive"))
        sims = [s for f, s in all_simulators().items() if f != "wifi-hk"]
        DemoSource(sims, pipeline, backfill_hours=hours, backfill_max_payloads=per_feed,
                   seed=1).backfill()
    finally:
        store.close()


async def _reader(
    client: Any, n: int, stop_at: float, samples: list[tuple[str, float, int]], errors: Counter[str]
) -> None:
    rng = random.Random(n)
    i = n
    await asyncio.sleep(rng.uniform(0, THINK_MAX_S))  # readers arrive over a few seconds
    while time.monotonic() < stop_at:
        path = MIX[i % len(MIX)]
        i += 1
        t = time.perf_counter()
        try:
            r = await client.get(path)
            status = r.status_code
        except Exception as exc:  # transport error: counted, never hidden
            status = 0
            errors[f"{path}: {type(exc).__name__}"] += 1
        samples.append((path, (time.perf_counter() - t) * 1000, status))
        if not 200 <= status < 400 and status:
            errors[f"{path}: HTTP {status}"] += 1
        await asyncio.sleep(rng.uniform(THINK_MIN_S, THINK_MAX_S))


async def _sse(client: Any, stop_at: float, received: list[int]) -> None:
    try:
        async with client.stream("GET", "/api/v1/stream") as r:
            async for line in r.aiter_lines():
                if line.startswith("data:"):
                    received[0] += 1
                if time.monotonic() >= stop_at:
                    break
    except Exception:
        received[1] += 1


async def _load(base: str, seconds: float, readers: int, sse: int) -> dict[str, Any]:
    import httpx

    # Idle connections are dropped before uvicorn's 5 s keep-alive timeout closes them: else a
    # request sent on a connection the server is closing fails (a client-side race, not load).
    limits = httpx.Limits(max_connections=readers + 10, max_keepalive_connections=readers,
                          keepalive_expiry=2.0)
    samples: list[tuple[str, float, int]] = []
    errors: Counter[str] = Counter()
    received = [0, 0]
    baseline: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        for path in PAGES + API:  # warm-up: first renders fill caches
            await client.get(path)
        for path in MIX:  # one client alone: what a request costs without queueing
            times = []
            for _ in range(5):
                t = time.perf_counter()
                await client.get(path)
                times.append((time.perf_counter() - t) * 1000)
            baseline[path] = round(_pct(times, 50), 1)
        async with httpx.AsyncClient(base_url=base, timeout=None) as sse_client:
            stop_at = time.monotonic() + seconds
            started = time.perf_counter()
            tasks = [asyncio.create_task(_sse(sse_client, stop_at + 1, received))
                     for _ in range(sse)]
            await asyncio.gather(*(_reader(client, n, stop_at, samples, errors)
                                   for n in range(readers)))
            wall = time.perf_counter() - started
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    pages = [ms for p, ms, _ in samples if not p.startswith("/api/")]
    api = [ms for p, ms, _ in samples if p.startswith("/api/")]
    every = [ms for _, ms, _ in samples]
    per_path = {
        path: {"n": len(v), "alone_p50_ms": baseline[path], "p50_ms": round(_pct(v, 50), 1),
               "p99_ms": round(_pct(v, 99), 1)}
        for path in MIX
        for v in [[ms for p, ms, _ in samples if p == path]]
    }
    return {
        "readers": readers,
        "sse_clients": sse,
        "seconds": round(wall, 1),
        "requests": len(samples),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors.most_common(10)),
        "req_per_s": round(len(samples) / wall, 1),
        "p50_ms": round(_pct(every, 50), 1),
        "p95_ms": round(_pct(every, 95), 1),
        "p99_ms": round(_pct(every, 99), 1),
        "max_ms": round(max(every, default=float("nan")), 1),
        "page_p50_ms": round(_pct(pages, 50), 1),
        "page_p99_ms": round(_pct(pages, 99), 1),
        "api_p50_ms": round(_pct(api, 50), 1),
        "api_p99_ms": round(_pct(api, 99), 1),
        "sse_messages": received[0],
        "sse_failures": received[1],
        "per_path": per_path,
    }


def _wait_up(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(base + "/api/v1/feeds", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("serve did not come up")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _stored_rows(base: str) -> int:
    import httpx

    feeds = httpx.get(base + "/api/v1/feeds", timeout=30).json()
    return sum(int(f["total_rows"]) for f in feeds if f["id"] in LIVE_FEEDS)


def run(quick: bool) -> dict[str, Any]:
    seconds = 30.0 if quick else 90.0
    readers = READERS
    sse = 20 if quick else 50
    feeds = FeedServer()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        t = time.perf_counter()
        prefill(data_dir, hours=1.0 if quick else 6.0, per_feed=6 if quick else 36)
        prefill_s = time.perf_counter() - t
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITYPULSE_")}
        env.update(
            PYTHONPATH=os.pathsep.join(sys.path),
            CITYPULSE_FEEDS=json.dumps(sorted(LIVE_FEEDS)),
            CITYPULSE_FEED_URLS=json.dumps(feeds.urls()),
            CITYPULSE_INTERVALS=json.dumps(LIVE_FEEDS),
            CITYPULSE_FIRST_POLL_MAX_S="1",
        )
        log = data_dir / "serve.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "citypulse.cli", "serve", "--port", str(port),
                 "--data-dir", str(data_dir)],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )
            try:
                _wait_up(base, proc, log)
                time.sleep(3)  # first polls land
                rows_before, served_before = _stored_rows(base), sum(feeds.served.values())
                cpu_before, wall_before = _cpu_s(proc.pid), time.perf_counter()
                result = asyncio.run(_load(base, seconds, readers, sse))
                cpu = _cpu_s(proc.pid) - cpu_before
                # How much CPU the server got: near 1.0 means it was busy, well below with
                # slow answers means other processes had the cores.
                wall = time.perf_counter() - wall_before
                result["server_cpu_cores_used"] = round(cpu / wall, 2)
                result["server_cpu_ms_per_request"] = round(
                    1000 * cpu / max(1, result["requests"]), 1
                )
                result["ingest_rows_during_load"] = _stored_rows(base) - rows_before
                result["ingest_polls_during_load"] = sum(feeds.served.values()) - served_before
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                feeds.stop()
        server_log = log.read_text(errors="replace")
    result["load_average_1m"] = round(os.getloadavg()[0], 1)
    result["cpus"] = os.cpu_count()
    result["server_tracebacks"] = len(re.findall(r"^Traceback", server_log, re.MULTILINE))
    result["prefill_s"] = round(prefill_s, 1)
    result["targets"] = TARGETS
    result["meets_targets"] = (
        result["errors"] == 0
        and result["page_p99_ms"] <= TARGETS["page_p99_ms"]
        and result["api_p99_ms"] <= TARGETS["api_p99_ms"]
    )
    return result


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=2))
