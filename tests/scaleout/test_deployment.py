"""The scale-out deployment as real processes: `citypulse ingest` (simulator) + `citypulse serve
--workers 2` on PostgreSQL + Redis. Live updates reach SSE clients of the web workers; a second
ingester stands by (one ingester per lease) and takes over when the first is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from .conftest import free_port

LEASE_HOLDERS = """
SELECT DISTINCT a.client_port FROM pg_locks AS l JOIN pg_stat_activity AS a USING (pid)
WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = 'citypulse-ingest-leases'
"""


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.handle = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "citypulse.cli", *args],
            env=env,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
        )

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.handle.close()
        return int(self.process.returncode)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.stop(signal.SIGKILL)


def sse_listener(url: str, events: list[tuple[float, str]], stop: threading.Event) -> None:
    """Collect (arrival time, topic) of every SSE event until ``stop``."""
    try:
        with httpx.stream("GET", url, timeout=httpx.Timeout(5.0, read=60.0)) as response:
            for line in response.iter_lines():
                if line.startswith("event: "):
                    events.append((time.monotonic(), line[7:]))
                if stop.is_set():
                    return
    except httpx.HTTPError:
        return


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def lease_holders(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [int(r[0]) for r in conn.execute(LEASE_HOLDERS).fetchall()]


def test_ingest_plus_two_web_workers(
    tmp_path: Path, pg_store_url: str, redis_server_url: str, procs: list[Proc]
) -> None:
    env = {
        **os.environ,
        "CITYPULSE_FEEDS": json.dumps(["td-speedmap"]),
        "CITYPULSE_DEMO_INTERVAL_S": "1",
        "CITYPULSE_DEMO_SPEED": "60",
    }
    common = ["--store", pg_store_url, "--bus", redis_server_url]
    procs.append(
        Proc(["ingest", "--demo", *common, "--data-dir", str(tmp_path / "a")], env,
             tmp_path / "ingest-a.log")
    )
    port = free_port()
    procs.append(
        Proc(["serve", "--workers", "2", "--port", str(port), *common,
              "--data-dir", str(tmp_path / "web")], env, tmp_path / "web.log")
    )
    base = f"http://127.0.0.1:{port}"

    def web_up() -> bool:
        try:
            return httpx.get(f"{base}/api/v1/feeds", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(web_up, 120, "the web workers\n" + procs[1].output())
    assert "workers=2" in procs[1].output()

    # SSE clients on the web workers receive what the separate ingest process stores.
    stop = threading.Event()
    streams: list[list[tuple[float, str]]] = [[] for _ in range(4)]
    listeners = [
        threading.Thread(target=sse_listener, args=(f"{base}/api/v1/stream", s, stop), daemon=True)
        for s in streams
    ]
    for t in listeners:
        t.start()
    wait_for(lambda: all(any(t == "traffic" for _, t in s) for s in streams), 90,
             "traffic updates on every SSE stream")
    latest = httpx.get(f"{base}/api/v1/latest", params={"metric": "speed_kmh"}, timeout=10)
    assert latest.status_code == 200 and len(latest.json()) > 100

    # A second ingester stands by: one holder of the lease.
    procs.append(
        Proc(["ingest", "--demo", *common, "--data-dir", str(tmp_path / "b")], env,
             tmp_path / "ingest-b.log")
    )
    time.sleep(3)
    [first_holder] = lease_holders(pg_store_url)

    # Kill the active ingester (no clean shutdown): the standby takes over, updates go on.
    procs[0].stop(signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(lambda: lease_holders(pg_store_url) not in ([], [first_holder]), 60,
             "the standby ingester to take the lease")
    wait_for(lambda: all(any(at > killed_at + 1 and t == "traffic" for at, t in s)
                         for s in streams), 90, "updates from the standby ingester")
    stop.set()
    assert procs[2].stop() == 0, procs[2].output()
    assert procs[1].stop() == 0, procs[1].output()
