"""``citypulse backup`` / ``citypulse restore`` round trips.

Offline: a data folder with a DuckDB store (simulated payloads through the real pipeline), the
portal, catalogue, sensors and backfill SQLite files, the raw archive and a rules file; backup
through the CLI, restore into an empty folder, and everything compares equal (store tables
through the store API, SQLite files by their SQL dump, other files byte for byte).

Online (slow): ``citypulse serve`` in its own process ingesting continuously from a local feed
server; ``citypulse backup`` on the locked store goes through the server's endpoint; the
restored store is a consistent snapshot (``latest`` equals the newest observation of every
series, every stored payload's rows are there).
"""

from __future__ import annotations

import json
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.ingest.helpers import LocalServer
from typer.testing import CliRunner

from citypulse.backup import MANIFEST, TOKEN_FILE, BackupError, verify
from citypulse.cli import app as cli
from citypulse.config import Settings
from citypulse.feeds.registry import get_feed
from citypulse.ingest.archive import RawArchive
from citypulse.ingest.backfill import BackfillState
from citypulse.ingest.pipeline import Pipeline
from citypulse.simulate.registry import all_simulators
from citypulse.store.duckdb import DuckDBStore

from .crash import PayloadStream, ingest_env

FEEDS = ["td-speedmap", "td-traffic-news", "hko-rhrread", "carpark-vacancy"]
WIDE = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def make_data_dir(root: Path) -> Path:
    data = root / "data"
    store = DuckDBStore(str(data / "citypulse.duckdb"))
    pipeline = Pipeline(store, RawArchive(data / "archive"))
    at = datetime(2024, 6, 3, tzinfo=UTC)
    sims = all_simulators()
    for k in range(3):
        for feed_id in FEEDS:
            when = at + timedelta(minutes=10 * k)
            payload = sims[feed_id].emit(when, random.Random(f"{feed_id}{k}"))
            pipeline.process(get_feed(feed_id), payload, when, "replay")
    pipeline.process(get_feed("td-speedmap"), b"<html>broken</html>", at, "poll")
    store.close()
    from argon2 import PasswordHasher

    from citypulse.blueprint.db import PortalDB
    from citypulse.catalogue.service import Catalogue

    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    PortalDB(data / "portal.sqlite", hasher=hasher).add_user(
        "ada", "correct horse battery", "admin"
    )
    Catalogue(data / "catalogue.sqlite").close()
    with sqlite3.connect(data / "sensors.sqlite") as con:
        con.execute("CREATE TABLE devices (id TEXT PRIMARY KEY, key_hash TEXT)")
        con.execute("INSERT INTO devices VALUES ('tai-o-01', 'argon2$...')")
    with BackfillState(data / "backfill" / "state.sqlite3") as state:
        state.record("td-speedmap", "http://x/speedmap.xml", "20240603-0800", "stored", rows=3)
    (data / "alerts.yaml").write_text("rules: []\n", encoding="utf-8")
    return data


def store_snapshot(path: Path) -> dict[str, Any]:
    store = DuckDBStore(str(path))
    try:
        obs = store.observations(*WIDE)
        return {
            "entities": sorted((e.id, e.name_en, e.lat) for e in store.entities()),
            "observations": sorted(
                zip(*(obs[c].to_pylist() for c in ("entity_id", "metric", "ts", "value")),
                    strict=True)
            ),
            "latest": sorted(
                (v.entity_id, v.ts, v.value) for m in ("speed_kmh", "temperature_c")
                for v in store.latest(m)
            ),
            "events": sorted((e.id, e.title_en) for e in store.events(*WIDE)),
            "payloads": sorted((p.sha256, p.status, p.reason) for p in store.payloads(limit=10**6)),
            "health": sorted((h.feed_id, h.total_rows, h.last_error) for h in store.feed_health()),
        }
    finally:
        store.close()


def sqlite_dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as con:
        return list(con.iterdump())


def files_of(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".sqlite") and not p.name.endswith(".sqlite3")
        and not p.name.endswith((".duckdb", ".wal", "-wal", "-shm"))
    }


def test_backup_restore_round_trip(tmp_path: Path) -> None:
    data = make_data_dir(tmp_path)
    runner = CliRunner()
    dest = tmp_path / "backup"
    result = runner.invoke(cli, ["backup", str(dest), "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    assert "export (offline)" in result.output
    manifest = verify(dest)
    names = {f["path"] for f in manifest["files"]}
    assert {"store/schema.sql", "store/observations.parquet", "data/portal.sqlite",
            "data/catalogue.sqlite", "data/sensors.sqlite", "data/backfill/state.sqlite3",
            "data/alerts.yaml"} <= names
    assert any(n.startswith("data/archive/td-speedmap/") for n in names)

    target = tmp_path / "restored"
    result = runner.invoke(cli, ["restore", str(dest), "--data-dir", str(target)])
    assert result.exit_code == 0, result.output
    assert store_snapshot(target / "citypulse.duckdb") == store_snapshot(
        data / "citypulse.duckdb"
    )
    for name in ("portal.sqlite", "catalogue.sqlite", "sensors.sqlite", "backfill/state.sqlite3"):
        assert sqlite_dump(target / name) == sqlite_dump(data / name), name
    assert files_of(target) == files_of(data)
    snap = store_snapshot(target / "citypulse.duckdb")
    assert snap["observations"] and snap["events"] and snap["entities"]
    assert any(p[1] == "quarantined" for p in snap["payloads"])


def test_restore_refuses_corruption_and_existing_data(tmp_path: Path) -> None:
    data = make_data_dir(tmp_path)
    runner = CliRunner()
    dest = tmp_path / "backup"
    assert runner.invoke(cli, ["backup", str(dest), "--data-dir", str(data),
                               "--no-archive"]).exit_code == 0
    assert not any(f["path"].startswith("data/archive/")
                   for f in json.loads((dest / MANIFEST).read_text())["files"])
    # Over existing data: refused, then allowed with --force.
    result = runner.invoke(cli, ["restore", str(dest), "--data-dir", str(data)])
    assert result.exit_code == 2 and "--force" in result.output
    result = runner.invoke(cli, ["restore", str(dest), "--data-dir", str(data), "--force"])
    assert result.exit_code == 0, result.output
    # A flipped byte is caught before anything is written.
    victim = dest / "data" / "portal.sqlite"
    raw = bytearray(victim.read_bytes())
    raw[200] ^= 0xFF
    victim.write_bytes(bytes(raw))
    with pytest.raises(BackupError, match="corrupt"):
        verify(dest)
    fresh = tmp_path / "fresh"
    result = runner.invoke(cli, ["restore", str(dest), "--data-dir", str(fresh)])
    assert result.exit_code == 2 and "corrupt" in result.output
    assert not (fresh / "citypulse.duckdb").exists()
    # Into a non-empty folder: refused.
    assert runner.invoke(cli, ["backup", str(dest), "--data-dir", str(data)]).exit_code == 2


def test_backup_of_a_store_held_open_without_a_server_says_what_to_do(tmp_path: Path) -> None:
    data = make_data_dir(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ok', flush=True); "
         "time.sleep(120)", str(data / "citypulse.duckdb")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        result = CliRunner().invoke(cli, ["backup", str(tmp_path / "b"), "--data-dir", str(data)])
        assert result.exit_code == 2
        assert "stop it" in result.output and TOKEN_FILE in result.output
    finally:
        holder.kill()
        holder.wait()


# --- online -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_online_backup_of_a_running_server_is_consistent(tmp_path: Path) -> None:
    feeds = ["td-speedmap", "td-irn-speed", "td-traffic-news"]
    server = LocalServer()
    server.start()
    stream = PayloadStream(feeds, seed=5)
    data = tmp_path / "data"
    env = ingest_env(stream.install(server), data, "")
    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "citypulse.cli", "serve", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    try:
        deadline = time.monotonic() + 180  # a bound on start-up, not a timing check
        while not (data / TOKEN_FILE).exists() or sum(stream.hits.values()) < 6:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)
        assert (data / TOKEN_FILE).stat().st_mode & 0o077 == 0
        dest = tmp_path / "backup"
        settings = Settings(data_dir=data)
        from citypulse.backup import backup

        report = backup(settings, dest)
        assert report.store == "export (through the running server)", report
        hits_at_backup = sum(stream.hits.values())
        while sum(stream.hits.values()) < hits_at_backup + 4:  # ingest went on meanwhile
            assert proc.poll() is None
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        server.stop()
        log.close()
    assert not (data / TOKEN_FILE).exists()
    target = tmp_path / "restored"
    from citypulse.backup import restore

    restore(Settings(data_dir=target), dest)
    store = DuckDBStore(str(target / "citypulse.duckdb"))
    try:
        obs = store.observations(*WIDE)
        assert obs.num_rows > 0
        newest: dict[tuple[str, str], datetime] = {}
        for e, m, ts in zip(obs["entity_id"].to_pylist(), obs["metric"].to_pylist(),
                            obs["ts"].to_pylist(), strict=True):
            if (e, m) not in newest or ts > newest[(e, m)]:
                newest[(e, m)] = ts
        latest = {(v.entity_id, v.metric): v.ts for m in {k[1] for k in newest}
                  for v in store.latest(m)}
        assert latest == newest, "latest and history disagree: not one snapshot"
        stored = store.payloads(status="stored", limit=10**6)
        keys = set(zip(obs["entity_id"].to_pylist(), obs["metric"].to_pylist(),
                       obs["ts"].to_pylist(), strict=True))
        for p in stored:
            feed_id, _at, body = stream.served[p.sha256]
            batch = get_feed(feed_id).parse(body, p.fetched_at)
            part = set(zip(*(batch.observations[c].to_pylist()
                             for c in ("entity_id", "metric", "ts")), strict=True))
            assert part <= keys, f"{feed_id} payload {p.sha256[:12]} only partly in the backup"
    finally:
        store.close()
    print(f"online backup: {len(stored)} payloads, {obs.num_rows} observations, {report}")


def test_backup_endpoint_is_off_by_default_and_needs_the_token(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from citypulse.backup import publish_token, withdraw_token
    from citypulse.web.app import create_app

    data = make_data_dir(tmp_path)
    settings = Settings(data_dir=data)
    store = DuckDBStore(str(data / "citypulse.duckdb"))
    app = create_app(settings, store)
    try:
        with TestClient(app) as client:
            assert client.post("/api/v1/admin/backup").status_code == 404  # not published
            token_file = publish_token(app, settings, "http://127.0.0.1:1")
            assert token_file.stat().st_mode & 0o077 == 0
            token = json.loads(token_file.read_text())["token"]
            assert client.post("/api/v1/admin/backup").status_code == 401
            bad = client.post("/api/v1/admin/backup", headers={"Authorization": "Bearer x"})
            assert bad.status_code == 401
            ok = client.post("/api/v1/admin/backup",
                             headers={"Authorization": f"Bearer {token}"})
            assert ok.status_code == 200, ok.text
            export = data / "backups" / ok.json()["dir"] / "store"
            assert (export / "schema.sql").is_file() and (export / "observations.parquet").is_file()
            assert "/api/v1/admin/backup" not in client.get("/openapi.json").text
            withdraw_token(app, settings)
            assert not token_file.exists()
            assert client.post("/api/v1/admin/backup",
                               headers={"Authorization": f"Bearer {token}"}).status_code == 404
    finally:
        store.close()
