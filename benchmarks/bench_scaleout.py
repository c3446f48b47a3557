"""Embedded DuckDB vs scale-out PostgreSQL, side by side: same data, same machine, one run.

    python benchmarks/bench_scaleout.py [--quick] [--days 1,30,365] [--no-web]

Simulated Hong Kong traffic: the TD speed map's 600 road links, one reading every 2 minutes
(432 000 rows a day; a year is 157.7 M). History grows in phases (1 day, then 30, then 365):
each day is one batch through ``store.append`` on both stores, interleaved day by day so load
from other users of the machine hits both alike. After each phase, on both stores:

* bulk ingest rate of the phase (rows/s, through the store's own append path);
* real-time ingest of one 600-row payload (the next 2-minute tick), median ms;
* latest value per link (the ``latest`` table), one link's 5-minute buckets over the last 30
  days, hourly aggregate of all links over the last 30 days and over the whole history.

After the first phase, the web tier on PostgreSQL (it reads ``latest`` and the entities, so
the history size does not matter): ``citypulse serve --workers N`` (N = 1, 2, 4) under ``wrk``
(the traffic dashboard's ``/api/v1/traffic/links.geojson``: latest + entities for 600 links),
and SSE fan-out through Redis (clients spread over 2 workers, messages published by another
process, delivery latency).

PostgreSQL runs in a throwaway cluster (``scripts/services.sh`` with fsync on and 1 GB shared
buffers) unless ``CITYPULSE_TEST_PG_URL``/``CITYPULSE_TEST_REDIS_URL`` point at servers.
``VACUUM ANALYZE`` runs after each phase (untimed), as autovacuum would.

``run(quick)`` returns a flat dict (``citypulse bench``); the full run writes
``benchmarks/results/scaleout.md`` (quick: ``scaleout-quick.md``) and a JSON beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from citypulse.model import OBSERVATION_SCHEMA, Batch, Entity, sha256
from citypulse.store.duckdb import DuckDBStore
from citypulse.store.postgres import PostgresStore

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
LINKS = 600
TICKS_PER_DAY = 720  # one reading every 2 minutes
T0 = datetime(2024, 1, 1, tzinfo=UTC)
METRIC = "speed_kmh"
KIND = "road-link"
LINK = "td-link:3123"
WINDOW_DAYS = 30


# -- data ------------------------------------------------------------------------------------


def _generator() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    return con


def day_table(gen: duckdb.DuckDBPyConnection, first_tick: int, ticks: int) -> pa.Table:
    """Tick-major rows (as payloads arrive): every link at one tick, then the next tick. Speeds
    follow a daily cycle with per-link noise."""
    query = f"""SELECT 'td-link:' || (3000 + i % {LINKS}) AS entity_id, '{METRIC}' AS metric,
               TIMESTAMPTZ '{T0.isoformat()}'
                   + to_minutes(CAST(2 * ({first_tick} + i // {LINKS}) AS BIGINT)) AS ts,
               round(55 + 25 * sin(2 * pi() * (({first_tick} + i // {LINKS}) % 720) / 720.0)
                     + (hash(i, {first_tick}) % 200) / 10.0 - 10, 1) AS value,
               CASE hash(i, {first_tick}) % 3 WHEN 0 THEN 'TRAFFIC GOOD'
                    WHEN 1 THEN 'TRAFFIC AVERAGE' ELSE 'TRAFFIC BAD' END AS label
        FROM range({LINKS * ticks}) AS r(i)"""
    table: pa.Table = gen.sql(query).to_arrow_table()
    return table.cast(OBSERVATION_SCHEMA)


def entities() -> list[Entity]:
    return [
        Entity(
            f"td-link:{3000 + i}",
            KIND,
            f"Link {i}",
            f"路段 {i}",
            22.2 + i / 10_000,
            114.1 + i / 10_000,
            "central_western",
            {
                "start_lat": 22.2 + i / 10_000,
                "start_lon": 114.1 + i / 10_000,
                "end_lat": 22.2 + (i + 1) / 10_000,
                "end_lon": 114.1 + (i + 1) / 10_000,
                "region": "HK",
            },
        )
        for i in range(LINKS)
    ]


def batch(table: pa.Table, tag: str, ents: list[Entity] | None = None) -> Batch:
    return Batch(
        feed_id="td-speedmap",
        fetched_at=T0,
        payload_sha256=sha256(tag.encode()),
        entities=ents or [],
        observations=table,
    )


# -- helpers ---------------------------------------------------------------------------------


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(samples), 2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def services() -> Iterator[tuple[str, str, bool]]:
    """(PostgreSQL URL, Redis URL, durable?) — a throwaway cluster unless given."""
    pg, rd = os.environ.get("CITYPULSE_BENCH_PG_URL"), os.environ.get("CITYPULSE_BENCH_REDIS_URL")
    if pg and rd:
        yield pg, rd, True
        return
    env_file = Path(tempfile.mkstemp(prefix="citypulse-bench-services-")[1])
    env = {**os.environ, "PG_DURABLE": "1", "PG_SHARED_BUFFERS": "1GB"}
    subprocess.run(
        ["bash", str(REPO / "scripts" / "services.sh"), "start", str(env_file)],
        check=True,
        env=env,
        capture_output=True,
    )
    values = dict(re.findall(r"export (\w+)='([^']*)'", env_file.read_text()))
    try:
        yield values["CITYPULSE_TEST_PG_URL"], values["CITYPULSE_TEST_REDIS_URL"], True
    finally:
        subprocess.run(
            ["bash", str(REPO / "scripts" / "services.sh"), "stop", str(env_file)],
            check=False,
            capture_output=True,
        )


def pg_bytes(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0) "
            "+ pg_total_relation_size('observations_hourly') "
            "FROM pg_inherits AS i WHERE i.inhparent = 'observations'::regclass"
        ).fetchone()
        return int(row[0]) if row else 0


def vacuum_analyze(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


# -- store phase -----------------------------------------------------------------------------


def store_phases(
    work: Path,
    pg_url: str,
    sizes: list[int],
    repeat: int,
    results: dict[str, Any],
    after_phase: Callable[[int], None] = lambda size: None,
) -> list[dict[str, Any]]:
    gen = _generator()
    ents = entities()
    duck = DuckDBStore(str(work / "bench.duckdb"))
    pg = PostgresStore(pg_url, pool_max=2)
    rows: list[dict[str, Any]] = []
    loaded = 0
    live_tick = 400 * TICKS_PER_DAY  # real-time payloads land after the largest history
    try:
        for size in sizes:
            phase: dict[str, Any] = {"days": size, "rows": size * TICKS_PER_DAY * LINKS}
            wall = {"duckdb": 0.0, "postgres": 0.0}
            n = 0
            load_started = os.getloadavg()[0]
            for d in range(loaded, size):
                table = day_table(gen, d * TICKS_PER_DAY, TICKS_PER_DAY)
                for name, store in (("duckdb", duck), ("postgres", pg)):
                    b = batch(table, f"day-{d}", ents if d == 0 else None)
                    start = time.perf_counter()
                    result = store.append(b)
                    wall[name] += time.perf_counter() - start
                    assert result.observations_written == table.num_rows, (name, d)
                n += table.num_rows
                if d % 30 == 29:
                    print(f"  loaded day {d + 1}/{size}", file=sys.stderr, flush=True)
            loaded = size
            phase["loaded_rows"] = n
            for name in wall:
                phase[f"{name}_bulk_rows_per_s"] = round(n / wall[name]) if wall[name] else None
            phase["load_avg"] = round((load_started + os.getloadavg()[0]) / 2, 1)
            vacuum_analyze(pg_url)
            with duck._write_lock:
                duck._write("CHECKPOINT")
            phase["duckdb_bytes_per_row"] = round(
                (work / "bench.duckdb").stat().st_size / (size * TICKS_PER_DAY * LINKS), 1
            )
            phase["postgres_bytes_per_row"] = round(
                pg_bytes(pg_url) / (size * TICKS_PER_DAY * LINKS), 1
            )

            # Real-time: one 600-row payload per 2-minute tick, after the history.
            for name, store in (("duckdb", duck), ("postgres", pg)):
                ticks = iter(range(live_tick, live_tick + repeat + 1))

                def append_one(store: Any = store, ticks: Any = ticks, name: str = name) -> None:
                    tick = next(ticks)
                    store.append(batch(day_table(gen, tick, 1), f"live-{name}-{tick}"))

                phase[f"{name}_append_600_ms"] = median_ms(append_one, repeat)
            live_tick += repeat + 2

            end = T0 + timedelta(days=size)
            window = end - timedelta(days=min(size, WINDOW_DAYS))
            timed_queries(phase, duck, pg, window, end, repeat)
            # Same answers from both engines.
            got_duck = duck.aggregate(KIND, METRIC, window, end, timedelta(hours=1))
            got_pg = pg.aggregate(KIND, METRIC, window, end, timedelta(hours=1))
            assert [(p.ts, p.n, p.entities) for p in got_duck] == [
                (p.ts, p.n, p.entities) for p in got_pg
            ]
            rows.append(phase)
            results[f"store_{size}d"] = phase
            print(json.dumps(phase), file=sys.stderr, flush=True)
            after_phase(size)
    finally:
        duck.close()
        pg.close()
    return rows


def timed_queries(
    phase: dict[str, Any], duck: Any, pg: Any, window: datetime, end: datetime, repeat: int
) -> None:
    queries: dict[str, Callable[[Any], object]] = {
        "latest_600": lambda s: s.latest(METRIC, kind=KIND),
        "series_1_link_30d_5min": lambda s: s.series(
            LINK, METRIC, window, end, timedelta(minutes=5)
        ),
        "aggregate_all_links_30d_hourly": lambda s: s.aggregate(
            KIND, METRIC, window, end, timedelta(hours=1)
        ),
        "aggregate_all_links_all_history_hourly": lambda s: s.aggregate(
            KIND, METRIC, T0, end, timedelta(hours=1)
        ),
    }
    for qname, query in queries.items():
        reps = repeat if "aggregate" not in qname else max(3, repeat // 3)
        for name, store in (("duckdb", duck), ("postgres", pg)):
            phase[f"{name}_{qname}_ms"] = median_ms(functools.partial(query, store), reps)


# -- web tier --------------------------------------------------------------------------------


class Server:
    def __init__(self, args: list[str], log: Path) -> None:
        self.handle = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "citypulse.cli", *args],
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )

    def wait(self, url: str, timeout: float = 180) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"server at {url} did not come up")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.handle.close()


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of a process and its children (the uvicorn workers), from
    /proc: unlike requests/s it does not depend on what else the machine is running."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        if pid == root or ppid == root:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def wrk(url: str, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def latency(pct: str) -> float:
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m is None:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return {
        "requests": int(total.group(1)) if total else 0,
        "rps": round(float(rps.group(1)), 1) if rps else float("nan"),
        "p50_ms": round(latency("50"), 1),
        "p99_ms": round(latency("99"), 1),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def web_tier(
    work: Path, pg_url: str, redis_url: str, seconds: int, results: dict[str, Any]
) -> dict[str, Any]:
    web: dict[str, Any] = {}
    if shutil.which("wrk") is None:
        web["skipped"] = "wrk not installed (apt-get install wrk)"
        return web
    path = "/api/v1/traffic/links.geojson"
    for workers in (1, 2, 4):
        port = free_port()
        server = Server(
            ["serve", "--workers", str(workers), "--port", str(port), "--store", pg_url,
             "--data-dir", str(work / "web")],
            work / f"web-{workers}.log",
        )
        try:
            server.wait(f"http://127.0.0.1:{port}{path}")
            wrk(f"http://127.0.0.1:{port}{path}", 3, 16)  # warm every worker
            cpu_before = tree_cpu_s(server.process.pid)
            figures = wrk(f"http://127.0.0.1:{port}{path}", seconds, 32)
            cpu = tree_cpu_s(server.process.pid) - cpu_before
            figures["cpu_ms_per_request"] = round(1000 * cpu / max(1, figures["requests"]), 1)
            figures["load_avg"] = round(os.getloadavg()[0], 1)
            web[f"workers_{workers}"] = figures
            print(f"  web {workers} worker(s): {figures}", file=sys.stderr, flush=True)
        finally:
            server.stop()
    web["sse"] = asyncio.run(sse_fanout(work, pg_url, redis_url))
    results["web"] = web
    return web


async def sse_fanout(
    work: Path, pg_url: str, redis_url: str, clients: int = 200, messages: int = 30
) -> dict[str, Any]:
    """``clients`` SSE connections over 2 web workers; another process's bus publishes
    ``messages`` at 5/s stamped with their send time; latency = arrival - send."""
    from citypulse.store.redis_bus import RedisBus

    port = free_port()
    server = Server(
        ["serve", "--workers", "2", "--port", str(port), "--store", pg_url, "--bus", redis_url,
         "--data-dir", str(work / "web")],
        work / "web-sse.log",
    )
    latencies: list[float] = []
    received = [0] * clients
    try:
        await asyncio.to_thread(server.wait, f"http://127.0.0.1:{port}/api/v1/feeds")

        async def client(i: int, ready: asyncio.Event, done: asyncio.Event) -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /api/v1/stream?topics=bench HTTP/1.0\r\nHost: x\r\n\r\n")
            await writer.drain()
            while not done.is_set():
                try:
                    line = await asyncio.wait_for(reader.readline(), 1.0)
                except TimeoutError:
                    continue
                if not line:
                    break
                if line.startswith(b": connected"):
                    ready.set()
                if line.startswith(b"data: "):
                    data = json.loads(line[6:])
                    latencies.append((time.time() - data["sent"]) * 1000)
                    received[i] += 1
            writer.close()

        done = asyncio.Event()
        readies = [asyncio.Event() for _ in range(clients)]
        tasks = [asyncio.create_task(client(i, readies[i], done)) for i in range(clients)]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
        await asyncio.sleep(1.0)
        bus = RedisBus(redis_url)
        for k in range(messages):
            bus.publish("bench", {"sent": time.time(), "k": k})
            await asyncio.sleep(0.2)
        deadline = time.monotonic() + 30
        while sum(received) < clients * messages and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        bus.close()
        done.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        server.stop()
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 2) if ordered else 0

    return {
        "clients": clients,
        "workers": 2,
        "messages": messages,
        "delivered": sum(received),
        "expected": clients * messages,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(ordered[-1], 2) if ordered else 0,
    }


# -- report ----------------------------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "n/a"
    return f"{a / b:.1f}x"


def markdown(results: dict[str, Any]) -> str:
    phases = [v for k, v in results.items() if k.startswith("store_")]
    meta = results["meta"]
    lines = [
        "# Scale-out benchmark: DuckDB (embedded) vs PostgreSQL 15",
        "",
        f"Run {meta['started']} on {meta['machine']} ({meta['cpus']} CPUs shared with other "
        f"users; load average {meta['load_start']} at start, {meta['load_end']} at end). "
        "Produced by `python benchmarks/bench_scaleout.py` "
        f"(days: {', '.join(str(p['days']) for p in phases)}). PostgreSQL "
        f"{meta['postgres']}, fsync on, shared_buffers 1 GB, pg_partman daily partitions; "
        f"DuckDB {meta['duckdb']}. Same data, same process, interleaved day by day.",
        "",
        "Data: simulated TD speed map, 600 road links every 2 minutes = 432 000 rows/day; "
        "one year would be 157.7 M rows. Largest size run here: "
        f"**{max(p['days'] for p in phases)} days = {max(p['rows'] for p in phases):,} rows**.",
        "",
        "## Ingest",
        "",
        "| history | DuckDB bulk rows/s | PostgreSQL bulk rows/s | DuckDB / PG | "
        "DuckDB 600-row payload ms | PG 600-row payload ms | PG / DuckDB | bytes/row DuckDB | "
        "bytes/row PG | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in phases:
        lines.append(
            f"| {p['days']} d | {p['duckdb_bulk_rows_per_s']:,} | {p['postgres_bulk_rows_per_s']:,}"
            f" | {ratio(p['duckdb_bulk_rows_per_s'], p['postgres_bulk_rows_per_s'])} "
            f"| {p['duckdb_append_600_ms']} | {p['postgres_append_600_ms']} "
            f"| {ratio(p['postgres_append_600_ms'], p['duckdb_append_600_ms'])} "
            f"| {p['duckdb_bytes_per_row']} | {p['postgres_bytes_per_row']} | {p['load_avg']} |"
        )
    lines += [
        "",
        "Bulk = the rows of that phase (days not loaded before), one day per `append`. "
        "PostgreSQL bytes/row include the btree primary key, BRIN and the hourly rollups.",
        "",
        "## Queries (median ms, warm)",
        "",
        "| query | history | DuckDB | PostgreSQL | PG / DuckDB |",
        "|---|---|---:|---:|---:|",
    ]
    names = {
        "latest_600": "latest value of 600 links",
        "series_1_link_30d_5min": "1 link, 5-min buckets, last 30 d",
        "aggregate_all_links_30d_hourly": "all links, hourly, last 30 d",
        "aggregate_all_links_all_history_hourly": "all links, hourly, whole history",
    }
    for q, label in names.items():
        for p in phases:
            d, g = p[f"duckdb_{q}_ms"], p[f"postgres_{q}_ms"]
            lines.append(f"| {label} | {p['days']} d | {d} | {g} | {ratio(g, d)} |")
    if len(phases) > 1:
        lines += [
            "",
            "## How cost grows with history",
            "",
            "| measure | engine | " + " | ".join(
                f"{b['days']} d / {a['days']} d" for a, b in itertools.pairwise(phases)
            ) + " |",
            "|---|---|" + "---:|" * (len(phases) - 1),
        ]
        for key in ["bulk_rows_per_s", "append_600_ms", *[f"{q}_ms" for q in names]]:
            for engine in ("duckdb", "postgres"):
                # Time per unit of work, later phase over earlier: > 1x means it got costlier.
                cells = [
                    ratio(a[f"{engine}_{key}"], b[f"{engine}_{key}"])
                    if key.endswith("_per_s")
                    else ratio(b[f"{engine}_{key}"], a[f"{engine}_{key}"])
                    for a, b in itertools.pairwise(phases)
                ]
                label = "bulk time per row" if key == "bulk_rows_per_s" else key.removesuffix("_ms")
                lines.append(f"| {label} | {engine} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "Ratios of cost (time) between history sizes: 1.0x = flat. The 30-day window holds "
            "only 1 day at the 1-day size, so 30 d / 1 d compares 30x the rows; from 30 d to "
            "365 d a fixed-window query should stay flat while whole-history queries grow.",
        ]
    web = results.get("web", {})
    if web and "skipped" not in web and "workers_1" in web:
        lines += [
            "",
            "## Web tier on PostgreSQL (`citypulse serve --workers N`)",
            "",
            "`GET /api/v1/traffic/links.geojson` (the traffic dashboard's map layer: latest "
            "speeds + 600 link geometries, 189 KB of JSON), `wrk -t2 -c32`, "
            f"{meta['web_seconds']} s per run, wrk on the same 2 CPUs"
            + (f", measured {meta['web_measured']}" if meta.get("web_measured") else "")
            + ".",
            "",
            "| workers | requests/s | p50 ms | p99 ms | non-2xx | web CPU ms/request | "
            "load avg |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for w in (1, 2, 4):
            f = web.get(f"workers_{w}")
            if f:
                lines.append(
                    f"| {w} | {f['rps']} | {f['p50_ms']} | {f['p99_ms']} | {f['non_2xx']} "
                    f"| {f.get('cpu_ms_per_request', 'n/a')} | {f.get('load_avg', 'n/a')} |"
                )
        lines += [
            "",
            "Web CPU ms/request (the workers' own CPU time per request, from /proc) does not "
            "depend on the machine's other load: a dedicated core serves about "
            "1000 / that many requests per second.",
        ]
        sse = web.get("sse")
        if sse:
            lines += [
                "",
                "SSE fan-out through Redis: "
                f"{sse['clients']} clients on {sse['workers']} web workers, {sse['messages']} "
                "messages published at 5/s by another process: "
                f"{sse['delivered']}/{sse['expected']} delivered, latency p50 {sse['p50_ms']} ms, "
                f"p99 {sse['p99_ms']} ms, max {sse['max_ms']} ms.",
            ]
    lines += ["", "Raw figures: `scaleout.json` beside this file.", ""]
    return "\n".join(lines)


def run(
    quick: bool = False,
    sizes: list[int] | None = None,
    web: bool = True,
    web_seconds: int | None = None,
    stem: str | None = None,
) -> dict[str, Any]:
    sizes = sizes or ([1] if quick else [1, 30, 365])
    repeat = 7 if quick else 15
    web_seconds = web_seconds or (5 if quick else 15)
    results: dict[str, Any] = {
        "meta": {
            "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": platform.machine() + " " + platform.system(),
            "cpus": os.cpu_count(),
            "load_start": round(os.getloadavg()[0], 1),
            "duckdb": duckdb.__version__,
            "web_seconds": web_seconds,
        }
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = stem or ("scaleout-quick" if quick else "scaleout")
    with services() as (pg_url, redis_url, _durable), tempfile.TemporaryDirectory(
        prefix="citypulse-bench-scaleout-"
    ) as tmp:
        import psycopg

        with psycopg.connect(pg_url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            results["meta"]["postgres"] = str(row[0]).split()[0] if row else "?"
        work = Path(tmp)

        def save() -> None:
            results["meta"]["load_end"] = round(os.getloadavg()[0], 1)
            (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2, default=str))
            (RESULTS / f"{stem}.md").write_text(markdown(results))

        def after_phase(size: int) -> None:
            # The web tier reads the latest table and entities (history size does not matter):
            # measured once, after the first phase, so a long largest phase cannot starve it.
            if web and size == sizes[0]:
                web_tier(work, pg_url, redis_url, web_seconds, results)
            save()

        store_phases(work, pg_url, sizes, repeat, results, after_phase)
    flat: dict[str, Any] = {}
    for key, value in results.items():
        if isinstance(value, dict):
            for k, v in value.items():
                flat[f"{key}.{k}"] = v
    return flat


def web_only(stem: str, web_seconds: int) -> None:
    """Re-measure the web tier alone (1 day of data in PostgreSQL) and merge it into an
    existing results file, e.g. when the machine was too busy during the full run."""
    path = RESULTS / f"{stem}.json"
    results = json.loads(path.read_text())
    with services() as (pg_url, redis_url, _durable), tempfile.TemporaryDirectory(
        prefix="citypulse-bench-web-"
    ) as tmp:
        pg = PostgresStore(pg_url)
        try:
            pg.append(batch(day_table(_generator(), 0, TICKS_PER_DAY), "day-0", entities()))
        finally:
            pg.close()
        vacuum_analyze(pg_url)
        results["meta"]["web_seconds"] = web_seconds
        results["meta"]["web_measured"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        web_tier(Path(tmp), pg_url, redis_url, web_seconds, results)
    path.write_text(json.dumps(results, indent=2, default=str))
    (RESULTS / f"{stem}.md").write_text(markdown(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--days", help="comma-separated history sizes, e.g. 1,30,365")
    parser.add_argument("--no-web", action="store_true")
    parser.add_argument("--web-seconds", type=int)
    parser.add_argument("--stem", help="results file name (default scaleout / scaleout-quick)")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the markdown from the JSON results")
    parser.add_argument("--web-only", action="store_true",
                        help="re-measure the web tier and merge it into the results file")
    args = parser.parse_args()
    if args.report_only:
        stem = args.stem or "scaleout"
        results = json.loads((RESULTS / f"{stem}.json").read_text())
        (RESULTS / f"{stem}.md").write_text(markdown(results))
        return
    if args.web_only:
        web_only(args.stem or "scaleout", args.web_seconds or 15)
        return
    sizes = [int(x) for x in args.days.split(",")] if args.days else None
    figures = run(
        args.quick, sizes, web=not args.no_web, web_seconds=args.web_seconds, stem=args.stem
    )
    print(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
