"""Crash-safety harness: ``citypulse ingest`` polls a local server that plays a stream of
simulated payloads; the harness SIGKILLs the process at random points, restarts it, and finally
checks the store.

"Acknowledged as stored" = a line ``{"ack": "stored", "sha256": ...}`` printed by
``citypulse ingest --ack``. The CLI prints it from the pipeline's ``on_stored`` hook, which runs
only after ``store.append`` returned, i.e. after the transaction committed. A payload killed
between commit and ack is simply stored without an ack (allowed); an acked payload that is
missing, partial or doubled is a failure.

Each payload is served twice in a row (a live feed serves the same file for several polls), so
after a restart the re-served bytes must come out as a duplicate, not a second copy.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
from tests.ingest.helpers import LocalServer, Reply

from citypulse.feeds.registry import get_feed
from citypulse.model import sha256
from citypulse.simulate.registry import all_simulators
from citypulse.store.base import TimeSeriesStore

BASE_TIME = datetime(2024, 6, 3, 0, 0, tzinfo=UTC)
KEYS = ["entity_id", "metric", "ts"]


class PayloadStream:
    """Per feed, payload k = the simulator's output at BASE_TIME + k intervals, served on
    requests 2k and 2k+1 (generated on demand, deterministic)."""

    def __init__(self, feed_ids: list[str], seed: int = 7) -> None:
        sims = all_simulators()
        self.sims = {f: sims[f] for f in feed_ids}
        self.seed = seed
        self.hits: Counter[str] = Counter()
        self.served: dict[str, tuple[str, datetime, bytes]] = {}  # sha -> feed, at, bytes
        self._cache: dict[tuple[str, int], bytes] = {}
        self._lock = threading.Lock()

    def path(self, feed_id: str) -> str:
        return f"/feed/{feed_id}"

    def payload(self, feed_id: str, k: int) -> tuple[datetime, bytes]:
        sim = self.sims[feed_id]
        at = BASE_TIME + timedelta(seconds=k * max(60, int(sim.interval_s)))
        key = (feed_id, k)
        if key not in self._cache:
            self._cache[key] = sim.emit(at, random.Random(f"{self.seed}:{feed_id}:{k}"))
        return at, self._cache[key]

    def route(self, feed_id: str) -> Any:
        media = get_feed(feed_id).media_type

        def answer(_headers: dict[str, str]) -> Reply:
            with self._lock:
                n = self.hits[feed_id]
                self.hits[feed_id] += 1
                at, body = self.payload(feed_id, n // 2)
                self.served[sha256(body)] = (feed_id, at, body)
            return Reply(200, body, {"Content-Type": media})

        return answer

    def install(self, server: LocalServer) -> dict[str, str]:
        urls = {}
        for feed_id in self.sims:
            server.routes[self.path(feed_id)] = self.route(feed_id)
            urls[feed_id] = server.url(self.path(feed_id))
        return urls


@dataclass
class Round:
    mode: str  # "blind" (kill at a random time from spawn) or "after-ack"
    delay_s: float
    acks: int
    returncode: int | None
    log_tail: str = ""  # stderr of a process that ended on its own


@dataclass
class CrashRun:
    acked: dict[str, str] = field(default_factory=dict)  # sha -> feed
    rounds: list[Round] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)

    @property
    def kills(self) -> int:
        return sum(1 for r in self.rounds if r.returncode == -signal.SIGKILL)


def _read_acks(stream: IO[str], sink: list[dict[str, Any]], event: threading.Event) -> None:
    for line in stream:
        line = line.strip()
        if line.startswith('{"ack"'):
            sink.append(json.loads(line))
            event.set()


def ingest_env(urls: dict[str, str], data_dir: Path, store_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYPULSE_")}
    env.update(
        CITYPULSE_DATA_DIR=str(data_dir),
        CITYPULSE_STORE=store_url,
        CITYPULSE_FEEDS=json.dumps(sorted(urls)),
        CITYPULSE_FEED_URLS=json.dumps(urls),
        CITYPULSE_INTERVALS=json.dumps({f: 1 for f in urls}),
        CITYPULSE_FIRST_POLL_MAX_S="0.2",
        CITYPULSE_HTTP_TIMEOUT_S="10",
        PYTHONUNBUFFERED="1",
    )
    return env


def run_rounds(
    stream: PayloadStream,
    server: LocalServer,
    data_dir: Path,
    store_url: str,
    rounds: int,
    rng: random.Random,
    log_dir: Path,
) -> CrashRun:
    """Start ``citypulse ingest --ack`` ``rounds`` times, SIGKILL each at a random point."""
    env = ingest_env(stream.install(server), data_dir, store_url)
    run = CrashRun()
    for i in range(rounds):
        acks: list[dict[str, Any]] = []
        got_ack = threading.Event()
        err_path = log_dir / f"ingest-{i:02d}.log"
        with err_path.open("w") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "citypulse.cli", "ingest", "--ack"],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env,
            )
            assert proc.stdout is not None
            reader = threading.Thread(target=_read_acks, args=(proc.stdout, acks, got_ack))
            reader.start()
            if rng.random() < 0.3:
                mode, delay = "blind", rng.uniform(0.0, 4.0)
                time.sleep(delay)
            else:
                mode, delay = "after-ack", rng.uniform(0.0, 1.5)
                # A bound on waiting for the first ack (the process may be slow to import on
                # a busy machine), not a timing assertion.
                got_ack.wait(60)
                time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            reader.join(30)
            proc.stdout.close()
        for ack in acks:
            run.acked[ack["sha256"]] = ack["feed"]
        tail = err_path.read_text(errors="replace")[-3000:]
        ended = proc.returncode != -signal.SIGKILL
        run.rounds.append(
            Round(mode, round(delay, 3), len(acks), proc.returncode, tail if ended else "")
        )
        run.logs.append(tail)
    return run


# --- verification -----------------------------------------------------------------------------


def _keys(table: pa.Table) -> pa.Table:
    return table.select(KEYS)


def verify(store: TimeSeriesStore, stream: PayloadStream, run: CrashRun) -> dict[str, int]:
    """Check the store after the crashes; returns counts for the report. Assertion messages
    say which payload broke which property."""
    stored = {
        p.sha256: p
        for p in store.payloads(status="stored", limit=1_000_000)
    }
    # 1. every acked payload is recorded as stored, once (sha256 is the payloads key).
    missing = [s for s in run.acked if s not in stored]
    assert not missing, f"acked but not stored: {[(run.acked[s], s[:12]) for s in missing]}"
    unknown = [s for s in stored if s not in stream.served]
    assert not unknown, f"stored payloads the server never served: {unknown[:5]}"

    # Wide window: a parser may stamp observations with the fetch time (wall clock).
    table = store.observations(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    # 2. no observation twice.
    distinct = table.group_by(KEYS).aggregate([([], "count_all")])
    dup = pc.filter(distinct, pc.greater(distinct["count_all"], 1))
    assert dup.num_rows == 0, f"{dup.num_rows} observation keys stored more than once"
    assert distinct.num_rows == table.num_rows

    # 3. every stored payload (acked or not) is complete: all its keys are in the store.
    expected_parts = []
    entity_ids: set[str] = set()
    for sha in stored:
        feed_id, _at, body = stream.served[sha]
        # Parsed again as ingest did: with the fetch time it recorded.
        batch = get_feed(feed_id).parse(body, stored[sha].fetched_at)
        obs = _keys(batch.observations)
        entity_ids.update(e.id for e in batch.entities)
        if obs.num_rows:
            expected_parts.append(obs.append_column("sha", pa.array([sha] * obs.num_rows)))
    expected_rows = 0
    if expected_parts:
        expected = pa.concat_tables(expected_parts)
        expected_rows = expected.num_rows
        found = expected.join(_keys(table), KEYS, join_type="left anti")
        if found.num_rows:
            bad = Counter(found["sha"].to_pylist())
            raise AssertionError(
                "stored payloads with observations missing (partial commit): "
                + ", ".join(f"{stream.served[s][0]} {s[:12]}: {n}" for s, n in bad.items())
            )
        # 4. nothing stored that no stored payload contains.
        extra = _keys(table).join(expected.select(KEYS), KEYS, join_type="left anti")
        assert extra.num_rows == 0, f"{extra.num_rows} observations from no stored payload"

    # 5. latest agrees with history, and every entity a stored payload declares exists
    # (car park vacancy refers to car parks declared by another feed: not checked here).
    newest = table.group_by(["entity_id", "metric"]).aggregate([("ts", "max")])
    metrics = set(newest["metric"].to_pylist())
    latest = {(v.entity_id, v.metric): v.ts for m in metrics for v in store.latest(m)}
    history = {
        (e, m): ts
        for e, m, ts in zip(
            newest["entity_id"].to_pylist(),
            newest["metric"].to_pylist(),
            newest["ts_max"].to_pylist(),
            strict=True,
        )
    }
    wrong = {k: (latest.get(k), v) for k, v in history.items() if latest.get(k) != v}
    assert not wrong, f"latest disagrees with history for {len(wrong)} series: {list(wrong)[:3]}"
    known = {e.id for e in store.entities()}
    orphans = entity_ids - known
    assert not orphans, f"entities of stored payloads missing: {sorted(orphans)[:5]}"
    return {
        "rounds": len(run.rounds),
        "kills": run.kills,
        "kills_after_ack": sum(1 for r in run.rounds if r.mode == "after-ack"),
        "acked_payloads": len(run.acked),
        "stored_payloads": len(stored),
        "served_payloads": len(stream.served),
        "requests": sum(stream.hits.values()),
        "observations": table.num_rows,
        "expected_observation_keys": expected_rows,
    }
