"""Blueprint portal: page latency under 200 concurrent clients, and search speed.

The server runs in its own process (uvicorn, one worker, like ``citypulse serve``) so the load
generator does not share its GIL; a small ASGI wrapper adds ``Server-Timing: app;dur=...`` so
we report both the time inside the app (server p99) and what clients saw (queueing included).
Search is timed in process over English and Chinese queries, including partial Chinese words.

    python benchmarks/bench_portal.py [--quick]      or      citypulse bench --only portal
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

QUERIES = [
    "HKeToll",
    "易通行",
    "出行",
    "智方便",
    "lampposts",
    "traffic data",
    "智慧交通基金",
    "covid vaccination",
    "鄉村",
    "open data portal",
    "zzz-no-hit",
]
PAGES = ["/", "/initiatives", "/initiatives?q=traffic&sort=title", "/zh-hant/initiatives"]


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def build_app(data_dir: str) -> Any:
    """The app as ``citypulse serve`` builds it (DuckDB store, empty), timed per request."""
    from citypulse.config import Settings
    from citypulse.store import open_store
    from citypulse.web.app import create_app

    store = open_store(str(Path(data_dir) / "citypulse.duckdb"))
    app = create_app(Settings(data_dir=Path(data_dir)), store)

    async def timed(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
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


def _serve(port: int, data_dir: str) -> None:
    import uvicorn

    uvicorn.run(
        build_app(data_dir),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=60,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _load(
    base: str, path: str, total: int, concurrency: int, cookies: dict[str, str] | None = None
) -> dict[str, float]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client_ms: list[float] = []
    server_ms: list[float] = []
    errors = 0
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(
        base_url=base, limits=limits, timeout=60, cookies=cookies
    ) as client:
        await client.get(path)  # warm-up (first request builds the portal state)

        async def one() -> None:
            nonlocal errors
            async with sem:
                t = time.perf_counter()
                r = await client.get(path)
                client_ms.append((time.perf_counter() - t) * 1000)
                if r.status_code != 200:
                    errors += 1
                timing = r.headers.get("server-timing", "")
                if "dur=" in timing:
                    server_ms.append(float(timing.split("dur=")[1]))

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(total)))
        wall = time.perf_counter() - start
    return {
        "requests": total,
        "concurrency": concurrency,
        "errors": errors,
        "req_per_s": round(total / wall, 1),
        "server_p50_ms": round(_pct(server_ms, 50), 2),
        "server_p99_ms": round(_pct(server_ms, 99), 2),
        "client_p50_ms": round(_pct(client_ms, 50), 1),
        "client_p99_ms": round(_pct(client_ms, 99), 1),
    }


def bench_search(rounds: int) -> dict[str, Any]:
    from citypulse.blueprint.loader import load_blueprint
    from citypulse.blueprint.search import SearchIndex
    from citypulse.blueprint.service import index_fields

    t = time.perf_counter()
    data = load_blueprint()
    load_ms = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    index = SearchIndex((i.id, index_fields(i)) for i in data.initiatives)
    build_ms = (time.perf_counter() - t) * 1000
    per_query: dict[str, float] = {}
    samples: list[float] = []
    for q in QUERIES:
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            index.search(q)
            times.append((time.perf_counter() - t) * 1000)
        per_query[q] = round(statistics.median(times), 4)
        samples += times
    return {
        "initiatives": len(data.initiatives),
        "yaml_load_validate_ms": round(load_ms, 1),
        "index_build_ms": round(build_ms, 2),
        "search_median_ms": round(statistics.median(samples), 4),
        "search_p99_ms": round(_pct(samples, 99), 4),
        "search_max_ms": round(max(samples), 4),
        "search_median_ms_by_query": per_query,
    }


def run(quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = {"search": bench_search(200 if quick else 2000)}
    total = 400 if quick else 2000
    with tempfile.TemporaryDirectory() as data_dir:
        port = _free_port()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port), data_dir],
            env=env,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_up(base, proc)
            for path in PAGES:
                results[f"GET {path}"] = asyncio.run(_load(base, path, total, 200))
            # Signed-in pages are rendered every time (the page cache is for anonymous readers).
            cookies = _sign_in(base, data_dir)
            for path in PAGES[:2]:
                results[f"GET {path} (signed in, uncached)"] = asyncio.run(
                    _load(base, path, total // 2, 200, cookies)
                )
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    return results


def _sign_in(base: str, data_dir: str) -> dict[str, str]:
    import re

    import httpx

    from citypulse.blueprint.db import PortalDB

    PortalDB(Path(data_dir) / "portal.sqlite").add_user("bench", "bench password 1", "editor")
    with httpx.Client(base_url=base) as c:
        token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text)
        assert token
        r = c.post(
            "/login",
            data={
                "username": "bench",
                "password": "bench password 1",
                "csrf_token": token.group(1),
            },
        )
        assert r.status_code in (200, 303), r.status_code
        return {"cp_session": c.cookies["cp_session"]}


def _wait_up(base: str, proc: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("portal server exited during start-up")
        try:
            httpx.get(base + "/api/v1/areas", timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("portal server did not start")


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--serve":
        _serve(int(sys.argv[2]), sys.argv[3])
    else:
        print(json.dumps(run("--quick" in sys.argv), indent=2, ensure_ascii=False))
