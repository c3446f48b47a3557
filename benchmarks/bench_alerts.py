"""Benchmark of alert rule evaluation and sensor intake.

    python benchmarks/bench_alerts.py [--quick] [--json]

Workload (the default rules, city-like batches): every "2 minutes" a speed map batch of 600
road links plus 2 400 detector-lane speeds (same metric, other entity kind: scoped out by the
rule) and 2 400 rows of metrics no rule watches; every "hour" 18 AQHI stations; every
"5 minutes" 16 Smart Village sensors. Speeds random-walk so links keep entering and leaving
the "below 15 km/h for 10 minutes" state, AQHI and water levels cross their thresholds now
and then: alerts fire and clear throughout.

Figures:
* ``eval_obs_per_s``: observations per second through ``AlertEngine.process_batch`` with a
  null store (evaluation only), all rows counted, watched or not;
* ``eval_watched_obs_per_s``: the same per row of a metric some rule watches;
* ``eval_obs_per_s_duckdb``: the same with alert changes written to a DuckDB store;
* ``baseline_rowwise_obs_per_s``: a naive evaluator over ``Batch.observation_list()`` (one
  Python object per row, every rule tested on every row, no state): the design's baseline;
* ``tick_ms_10k_pending``: one timer tick with 10 000 pending "for" conditions;
* ``sensor_msgs_per_s``: HTTP/MQTT-path messages (auth, validation, duplicate check, pipeline,
  DuckDB) per second through ``SensorIngest.submit``;
* ``webhook_deliveries_per_s``: signed deliveries to a local HTTP server.

``run(quick)`` returns the figures as a flat dict (``citypulse bench``).
"""

from __future__ import annotations

import argparse
import http.server
import json
import random
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from citypulse.alerts.engine import AlertEngine
from citypulse.alerts.rules import Webhook, load_rules
from citypulse.alerts.webhooks import WebhookDispatcher
from citypulse.ingest.archive import RawArchive
from citypulse.ingest.pipeline import Pipeline
from citypulse.model import Batch, Entity, Event, ObservationBuilder
from citypulse.sensors.ingest import SensorIngest
from citypulse.sensors.keys import KeyStore
from citypulse.store.duckdb import DuckDBStore

T0 = datetime(2025, 8, 8, 0, 0, tzinfo=UTC)
LINKS, LANES, OTHER = 600, 2400, 2400
STATIONS, SENSORS = 18, 16


class NullStore:
    """Just enough store for the engine: nothing is kept."""

    def append(self, batch: Batch) -> Any:
        return None

    def entity(self, entity_id: str) -> Entity | None:
        return None

    def events(self, *args: Any, **kwargs: Any) -> list[Event]:
        return []


def workload(batches: int, seed: int = 7) -> list[Batch]:
    rng = random.Random(seed)
    links = [Entity(f"td-link:{i}", "road-link") for i in range(LINKS)]
    lanes = [Entity(f"td-detector:{i}:lane", "traffic-detector-lane") for i in range(LANES)]
    stations = [Entity(f"epd-station:{i}", "aqhi-station") for i in range(STATIONS)]
    sensors = [Entity(f"sensor:s{i}", "sensor", properties={
        "sensor_type": "flood", "alert_level_cm": 120 + i}) for i in range(SENSORS)]
    speed = [rng.uniform(5, 80) for _ in range(LINKS)]
    out: list[Batch] = []
    for n in range(batches):
        at = T0 + timedelta(minutes=2 * n)
        b = ObservationBuilder()
        for i, ent in enumerate(links):
            speed[i] = min(110.0, max(1.0, speed[i] + rng.gauss(0, 6)))
            b.add(ent.id, "speed_kmh", at, round(speed[i]))
        for ent in lanes:
            b.add(ent.id, "speed_kmh", at, rng.uniform(0, 100))
        for i in range(OTHER):
            b.add(f"td-detector:{i}:lane", "occupancy_pct", at, rng.uniform(0, 100))
        if n % 30 == 0:
            for ent in stations:
                b.add(ent.id, "aqhi", at, float(rng.choice((3, 4, 5, 6, 7, 8))))
        if n % 3 == 0:
            for ent in sensors:
                b.add(ent.id, "water_level_cm", at, rng.uniform(60, 160))
        ents = (links + lanes + stations + sensors) if n == 0 else []
        out.append(Batch.build("bench", f"bench:{n}".encode(), at, entities=ents,
                               observations=b))
    return out


def _eval(engine: AlertEngine, batches: list[Batch]) -> tuple[float, int, int]:
    rows = sum(b.n_observations for b in batches)
    before = engine.observations_evaluated
    start = time.perf_counter()
    for batch in batches:
        engine.process_batch(batch)
    elapsed = time.perf_counter() - start
    return elapsed, rows, engine.observations_evaluated - before


def baseline_rowwise(batches: list[Batch]) -> float:
    """Every rule on every row object, no state: the simplest thing that could work."""
    rules = [r for r in load_rules().rules if r.metric is not None]
    start = time.perf_counter()
    hits = 0
    for batch in batches:
        for obs in batch.observation_list():
            for rule in rules:
                cond = rule.metric
                assert cond is not None
                if obs.metric != cond.metric or obs.value is None or cond.value is None:
                    continue
                if (cond.op == "<" and obs.value < cond.value) or (
                    cond.op in (">", ">=") and obs.value >= cond.value
                ):
                    hits += 1
    return time.perf_counter() - start


def tick_cost(pending: int = 10_000) -> float:
    engine = AlertEngine(NullStore(), None, load_rules(), clock=lambda: T0)  # type: ignore[arg-type]
    b = ObservationBuilder()
    ents = [Entity(f"td-link:p{i}", "road-link") for i in range(pending)]
    for ent in ents:
        b.add(ent.id, "speed_kmh", T0, 5.0)
    engine.process_batch(Batch.build("bench", b"p", T0, entities=ents, observations=b))
    start = time.perf_counter()
    engine.tick(T0 + timedelta(minutes=5))  # none due yet: the scan is the cost
    return (time.perf_counter() - start) * 1000


def sensor_rate(folder: Path, messages: int) -> float:
    store = DuckDBStore(str(folder / "sensors.duckdb"))
    keys = KeyStore(folder / "sensors.sqlite")
    key = keys.add_device("bench-flood-01", sensor_type="flood", village="Bench")
    now = [T0]
    ingest = SensorIngest(Pipeline(store, RawArchive(folder / "archive")), keys,
                          clock=lambda: now[0])
    bodies = [
        orjson.dumps({"ts": (T0 + timedelta(minutes=i)).isoformat(), "readings": [
            {"metric": "water_level_cm", "value": 50 + i % 40},
            {"metric": "battery_pct", "value": 90}]})
        for i in range(messages)
    ]
    now[0] = T0 + timedelta(minutes=messages)
    start = time.perf_counter()
    for body in bodies:
        result = ingest.submit(body, api_key=key)
        assert result.accepted, result
    elapsed = time.perf_counter() - start
    keys.close()
    store.close()
    return messages / elapsed


def webhook_rate(deliveries: int) -> float:
    done = threading.Semaphore(0)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self.send_response(204)
            self.end_headers()
            done.release()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/h"
    dispatcher = WebhookDispatcher([Webhook(id="bench", url=url, secret="x")])
    dispatcher.start()
    alert = {"id": "a", "severity": "high", "properties": {"rule_id": "r"}}
    start = time.perf_counter()
    for i in range(deliveries):
        dispatcher.submit("alert.fired", {**alert, "id": f"a{i}"})
    for _ in range(deliveries):
        done.acquire(timeout=30)
    elapsed = time.perf_counter() - start
    dispatcher.stop()
    server.shutdown()
    server.server_close()
    return deliveries / elapsed


def run(quick: bool = False) -> dict[str, Any]:
    n = 30 if quick else 300
    batches = workload(n)
    rules = load_rules()
    engine = AlertEngine(NullStore(), None, rules, clock=lambda: T0)  # type: ignore[arg-type]
    engine.process_batch(workload(1, seed=1)[0])  # warm the entity and scope caches
    elapsed, rows, watched = _eval(engine, batches)
    out: dict[str, Any] = {
        "batches": n,
        "rows_per_batch": rows // n,
        "eval_obs_per_s": round(rows / elapsed),
        "eval_watched_obs_per_s": round(watched / elapsed),
        "eval_ms_per_batch": round(elapsed / n * 1000, 3),
        "alerts_fired": engine.fired,
        "alerts_cleared": engine.cleared,
    }
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStore(str(Path(tmp) / "alerts.duckdb"))
        db_engine = AlertEngine(store, None, rules, clock=lambda: T0)
        db_elapsed, db_rows, _ = _eval(db_engine, batches)
        store.close()
        out["eval_obs_per_s_duckdb"] = round(db_rows / db_elapsed)
        out["alert_writes_duckdb"] = db_engine.fired + db_engine.cleared
        base = baseline_rowwise(batches[: max(3, n // 10)])
        base_rows = sum(b.n_observations for b in batches[: max(3, n // 10)])
        out["baseline_rowwise_obs_per_s"] = round(base_rows / base)
        out["speedup_vs_baseline"] = round((rows / elapsed) / (base_rows / base), 1)
        out["tick_ms_10k_pending"] = round(tick_cost(), 2)
        out["sensor_msgs_per_s"] = round(sensor_rate(Path(tmp), 100 if quick else 500), 1)
    out["webhook_deliveries_per_s"] = round(webhook_rate(50 if quick else 300), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = run(args.quick)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:30} {value}")


if __name__ == "__main__":
    main()
