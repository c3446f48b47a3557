"""Dashboards under load, and SSE fan-out.

1. Pages: a DuckDB store holding ``days`` (30; quick: 2) of simulated data for every feed, made
   by the demo's own simulators and ingest pipeline (``DemoSource.backfill``; history at a
   coarser step than live, see ``backfill_max_payloads``), is served by uvicorn in its own
   process (one worker, like ``citypulse serve``). Each dashboard page is requested by 200
   concurrent clients; a small ASGI wrapper adds ``Server-Timing: app;dur=...`` (time inside the
   app until the response starts), so we report the server time and what clients saw. Also:
   the cold cost of each page (every tile computed from the store) and the traffic page while
   ingest keeps invalidating its tiles (a speed map payload every second).
2. SSE fan-out: N clients (1 000 and 10 000) hold ``/api/v1/stream`` open while the server
   publishes one message a second; delivery latency = receive time - publish time (both on
   this machine's clock), and the server process's CPU over the window.

    python benchmarks/bench_dashboards.py [--quick] [--days N] [--keep DIR]
    citypulse bench --only dashboards
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PAGES = [
    "/dashboards/traffic", "/dashboards/environment", "/dashboards/mobility",
    "/dashboards/connectivity", "/dashboards/covid-19", "/dashboards/smart-village",
    "/districts/sha_tin", "/zh-hant/dashboards/environment",
]
EXTRA = ["/dashboards", "/districts", "/fragments/warnings", "/api/v1/wifi/points",
         "/dashboards/mobility/tiles/carparks"]
CONCURRENCY = 200
CACHE = Path(os.environ.get("CITYPULSE_BENCH_CACHE", Path.home() / ".cache" / "citypulse-bench"))


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the store ----------------------------------------------------------------------------------


def build_store(path: Path, days: int, end: datetime) -> dict[str, Any]:
    """``days`` of every simulator's payloads, ingested through the real pipeline."""
    from citypulse.ingest.archive import RawArchive
    from citypulse.ingest.pipeline import Pipeline
    from citypulse.ingest.scheduler import DemoSource
    from citypulse.simulate.registry import all_simulators
    from citypulse.store.bus import InProcessBus
    from citypulse.store.duckdb import DuckDBStore

    path.parent.mkdir(parents=True, exist_ok=True)
    store = DuckDBStore(str(path))
    started = time.perf_counter()
    try:
        archive = Path(tempfile.mkdtemp(prefix="bench-dash-archive-"))
        pipeline = Pipeline(store, RawArchive(archive), InProcessBus())
        # Hourly history (two-hourly over 30 days) keeps the build to minutes; the last day
        # is then filled at the feeds' own cadence up to 60 payloads each.
        history = DemoSource(list(all_simulators().values()), pipeline, seed=11, start=end,
                             backfill_hours=24 * days,
                             backfill_max_payloads=max(48, 12 * days))
        payloads = history.backfill(until=end - timedelta(hours=2))
        recent = DemoSource(list(all_simulators().values()), pipeline, seed=12, start=end,
                            backfill_hours=2, backfill_max_payloads=60)
        recent.prime(end)
        payloads += recent.backfill(until=end)
        shutil.rmtree(archive, ignore_errors=True)
        figures = {
            "days": days,
            "payloads": payloads,
            "observations": store.count_observations(),
            "entities": len(store.entities()),
            "events": len(store.events(end - timedelta(days=days + 1), end)),
            "build_s": round(time.perf_counter() - started, 1),
        }
    finally:
        store.close()
    figures["file_mb"] = round(path.stat().st_size / 1e6, 1)
    return figures


def cached_store(days: int) -> tuple[Path, dict[str, Any]]:
    """Reuse a store built today for the same number of days (building takes minutes)."""
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    path = CACHE / f"dashboards-{days}d-{end:%Y%m%d}.duckdb"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return path, json.loads(meta.read_text()) | {"reused": True}
    for old in CACHE.glob(f"dashboards-{days}d-*"):
        old.unlink()
    figures = build_store(path, days, end)
    meta.write_text(json.dumps(figures))
    return path, figures


# --- the server process ---------------------------------------------------------------------------


def build_app(store_path: str, ingest: bool, publish_every: float, bus_url: str = "") -> Any:
    """The app as ``citypulse serve`` builds it, timed per request; optionally with a speed map
    payload ingested every second (tiles invalidated) and/or a bench message published."""
    import threading

    from citypulse.config import Settings
    from citypulse.store import open_store
    from citypulse.store.bus import InProcessBus
    from citypulse.web.app import create_app

    store = open_store(store_path)
    if bus_url:
        from citypulse.store.redis_bus import open_bus

        bus = open_bus(bus_url)
    else:
        bus = InProcessBus()
    folder = Path(store_path).parent if store_path != ":memory:" else Path(tempfile.mkdtemp())
    app = create_app(Settings(data_dir=folder), store, bus)

    def ingest_loop() -> None:
        import random

        from citypulse.feeds.registry import get_feed
        from citypulse.ingest.archive import RawArchive
        from citypulse.ingest.pipeline import Pipeline
        from citypulse.simulate.registry import all_simulators

        pipeline = Pipeline(store, RawArchive(Path(tempfile.mkdtemp())), bus)
        sim = all_simulators()["td-speedmap"]
        at = datetime.now(UTC)
        while True:
            at += timedelta(minutes=2)
            pipeline.process(get_feed("td-speedmap"), sim.emit(at, random.Random(1)), at,
                             "simulator")
            time.sleep(1.0)

    def publish_loop() -> None:
        seq = 0
        while True:
            time.sleep(publish_every)
            seq += 1
            bus.publish("bench", {"seq": seq, "sent": time.time()})

    if ingest:
        threading.Thread(target=ingest_loop, daemon=True).start()
    if publish_every > 0:
        threading.Thread(target=publish_loop, daemon=True).start()

    sse_latencies: list[float] = []

    async def timed(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        if scope["path"] == "/__bench/sse":
            # Server-side fan-out latency: publish -> chunk handed to the client's transport.
            body = json.dumps(sse_latencies).encode()
            sse_latencies.clear()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        if scope["path"] == "/api/v1/stream":

            async def send_stream(message: Any) -> None:
                await send(message)
                chunk = message.get("body") or b""
                at = chunk.rfind(b'"sent":')
                if at >= 0:
                    sse_latencies.append(time.time() - float(chunk[at + 7:chunk.index(b"}", at)]))

            await app(scope, receive, send_stream)
            return
        start = time.perf_counter()

        async def send_timed(message: Any) -> None:
            if message["type"] == "http.response.start":
                dur = (time.perf_counter() - start) * 1000
                headers = list(message.get("headers", []))
                headers.append((b"server-timing", f"app;dur={dur:.3f}".encode()))
                message = dict(message, headers=headers)
            await send(message)

        await app(scope, receive, send_timed)

    return timed


def _serve(port: int, store_path: str, ingest: bool, publish_every: float, bus_url: str
           ) -> None:
    import uvicorn

    _raise_fd_limit()
    uvicorn.run(build_app(store_path, ingest, publish_every, bus_url), host="127.0.0.1",
                port=port, log_level="warning", access_log=False, backlog=16384)


def _raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Server:
    def __init__(self, store: Path | str, *, ingest: bool = False, publish_every: float = 0.0,
                 bus_url: str = ""):
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(self.port), str(store),
             "1" if ingest else "0", str(publish_every), bus_url], env=env)
        self._wait()

    def _wait(self) -> None:
        import httpx

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dashboard server exited during start-up")
            try:
                httpx.get(self.base + "/api/v1/districts", timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.3)
        raise RuntimeError("dashboard server did not start")

    def cpu_s(self) -> float:
        """User + system CPU seconds of the server process so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# --- page load ------------------------------------------------------------------------------------


async def _load(base: str, path: str, total: int, concurrency: int) -> dict[str, float]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client_ms: list[float] = []
    server_ms: list[float] = []
    errors = 0
    sizes: list[int] = []
    sem = asyncio.Semaphore(concurrency)
    headers = {"Accept-Encoding": "gzip"}
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120,
                                 headers=headers) as client:
        t = time.perf_counter()
        first = await client.get(path)
        cold_ms = (time.perf_counter() - t) * 1000
        await client.get(path)

        async def one() -> None:
            nonlocal errors
            async with sem:
                t = time.perf_counter()
                r = await client.get(path)
                client_ms.append((time.perf_counter() - t) * 1000)
                if r.status_code != 200:
                    errors += 1
                sizes.append(int(r.headers.get("content-length") or len(r.content)))
                timing = r.headers.get("server-timing", "")
                if "dur=" in timing:
                    server_ms.append(float(timing.split("dur=")[1]))

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(total)))
        wall = time.perf_counter() - start
    return {
        "status": first.status_code,
        "requests": total,
        "errors": errors,
        "first_ms": round(cold_ms, 1),
        "req_per_s": round(total / wall, 1),
        "server_p50_ms": round(_pct(server_ms, 50), 2),
        "server_p99_ms": round(_pct(server_ms, 99), 2),
        "server_max_ms": round(max(server_ms), 2) if server_ms else float("nan"),
        "client_p50_ms": round(_pct(client_ms, 50), 1),
        "client_p99_ms": round(_pct(client_ms, 99), 1),
        "bytes_gzip": int(_pct([float(s) for s in sizes], 50)),
    }


def bench_pages(store: Path, quick: bool) -> dict[str, Any]:
    total = 400 if quick else 2000
    out: dict[str, Any] = {}
    server = Server(store)
    try:
        for path in PAGES + EXTRA:
            out[f"GET {path}"] = asyncio.run(_load(server.base, path, total, CONCURRENCY))
    finally:
        server.stop()
    # The same traffic page while a speed map payload arrives every second (its tiles are
    # recomputed after each one; readers get the previous result until then). On a copy: the
    # cached store stays as built.
    scratch = Path(tempfile.mkdtemp(prefix="bench-dash-ingest-"))
    copy = scratch / store.name
    shutil.copyfile(store, copy)
    wal = store.with_name(store.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, copy.with_name(copy.name + ".wal"))
    server = Server(copy, ingest=True)
    try:
        time.sleep(3)
        out["GET /dashboards/traffic (ingest every 1 s)"] = asyncio.run(
            _load(server.base, "/dashboards/traffic", total, CONCURRENCY))
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return out


# --- SSE fan-out ----------------------------------------------------------------------------------


async def _sse_clients(ports: list[int], n: int, messages: int, ready: asyncio.Event,
                       connected: list[int], latencies: list[float], received: list[int],
                       failed: list[int]) -> None:
    async def client(port: int) -> None:
        request = (f"GET /api/v1/stream?topics=bench HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                   "Accept: text/event-stream\r\n\r\n").encode()
        for attempt in range(5):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                               limit=1 << 16)
                break
            except OSError:
                await asyncio.sleep(0.5 * (attempt + 1))
        else:
            failed[0] += 1
            return
        writer.write(request)
        got = 0
        try:
            first = await reader.readline()
            if first.startswith(b"HTTP/1.1 200"):
                connected[0] += 1
            while got < messages:
                line = await reader.readline()
                if not line:
                    break
                at = line.rfind(b'"sent":')
                if at >= 0 and line.startswith(b"data: "):
                    now = time.time()
                    if ready.is_set():
                        latencies.append(now - float(line[at + 7:line.index(b"}", at)]))
                        got += 1
        except OSError:
            failed[0] += 1
        finally:
            received[0] += got
            writer.close()

    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(client(ports[i % len(ports)])))
        if i % 100 == 99:
            await asyncio.sleep(0.1)  # ~1 000 connections a second: within the accept queue
    await asyncio.gather(*tasks)


def _sse_run(servers: list[Server], n: int, messages: int,
             publish: Any = None) -> dict[str, Any]:
    """``n`` clients spread over ``servers``; ``publish`` (a callable run once a second) when
    the servers do not publish themselves."""
    _raise_fd_limit()
    latencies: list[float] = []
    connected = [0]
    received = [0]
    failed = [0]

    async def main() -> dict[str, Any]:
        ready = asyncio.Event()
        ports = [s.port for s in servers]
        task = asyncio.create_task(
            _sse_clients(ports, n, messages, ready, connected, latencies, received, failed))
        # Wait until every client is connected and subscribed.
        deadline = time.monotonic() + 180
        while connected[0] + failed[0] < n and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(3.0)
        import httpx

        async with httpx.AsyncClient(timeout=120) as http:
            for port in ports:
                await http.get(f"http://127.0.0.1:{port}/__bench/sse")  # reset
        cpu0, wall0 = sum(s.cpu_s() for s in servers), time.monotonic()
        ready.set()
        pumping = None
        if publish is not None:

            async def pump() -> None:
                while True:
                    await asyncio.sleep(1.0)
                    publish()

            pumping = asyncio.create_task(pump())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(task, timeout=messages * 1.0 + 60)
        if pumping is not None:
            pumping.cancel()
        cpu1, wall1 = sum(s.cpu_s() for s in servers), time.monotonic()
        server_side: list[float] = []
        async with httpx.AsyncClient(timeout=120) as http:
            for port in ports:
                server_side += (await http.get(f"http://127.0.0.1:{port}/__bench/sse")).json()
        return {
            "clients": n,
            "workers": len(servers),
            "connected": connected[0],
            "failed": failed[0],
            "messages": messages,
            "deliveries": received[0],
            "expected": n * messages,
            "server_handoff_p50_ms": round(_pct(server_side, 50) * 1000, 1),
            "server_handoff_p99_ms": round(_pct(server_side, 99) * 1000, 1),
            "latency_p50_ms": round(_pct(latencies, 50) * 1000, 1),
            "latency_p99_ms": round(_pct(latencies, 99) * 1000, 1),
            "latency_max_ms": round(max(latencies) * 1000, 1) if latencies else float("nan"),
            "server_cpu_pct_of_one_core": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 1),
            "server_cpu_ms_per_message": round(1000 * (cpu1 - cpu0) / max(1, messages), 1),
            "window_s": round(wall1 - wall0, 1),
        }

    try:
        import uvloop

        return uvloop.run(main())
    except ImportError:
        return asyncio.run(main())


def bench_sse(quick: bool) -> dict[str, Any]:
    """One worker with the in-process bus (the embedded deployment), then the same clients over
    two workers sharing a Redis bus (the scale-out deployment; ingest publishes once)."""
    out: dict[str, Any] = {}
    messages = 5 if quick else 15
    for n in ([200, 1000] if quick else [1000, 10_000]):
        server = Server(":memory:", publish_every=1.0)
        try:
            out[f"sse_{n}_1_worker"] = _sse_run([server], n, messages)
        finally:
            server.stop()
    redis = shutil.which("redis-server")
    if redis is None:
        out["sse_2_workers"] = "skipped: no redis-server"
        return out
    port = _free_port()
    proc = subprocess.Popen([redis, "--port", str(port), "--save", "", "--appendonly", "no",
                             "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL)
    try:
        from citypulse.store.redis_bus import open_bus

        url = f"redis://127.0.0.1:{port}/0"
        time.sleep(1.0)
        publisher = open_bus(url)
        seq = [0]

        def publish() -> None:
            seq[0] += 1
            publisher.publish("bench", {"seq": seq[0], "sent": time.time()})

        n = 1000 if quick else 10_000
        servers = [Server(":memory:", bus_url=url) for _ in range(2)]
        try:
            out[f"sse_{n}_2_workers_redis"] = _sse_run(servers, n, messages, publish)
        finally:
            for s in servers:
                s.stop()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return out


def run(quick: bool = False, days: int | None = None) -> dict[str, Any]:
    days = days if days is not None else (2 if quick else 30)
    store, figures = cached_store(days)
    results: dict[str, Any] = {"store": figures, "concurrency": CONCURRENCY}
    results.update(bench_pages(store, quick))
    results.update(bench_sse(quick))
    return results


if __name__ == "__main__":
    if len(sys.argv) >= 6 and sys.argv[1] == "--serve":
        _serve(int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1", float(sys.argv[5]),
               sys.argv[6] if len(sys.argv) > 6 else "")
    else:
        import argparse

        parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
        parser.add_argument("--quick", action="store_true")
        parser.add_argument("--days", type=int, default=None)
        args = parser.parse_args()
        print(json.dumps(run(args.quick, args.days), indent=2, ensure_ascii=False))
