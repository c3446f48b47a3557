"""The ``citypulse`` command line: serve, ingest, replay, simulate, bench and feature sub-commands.

Heavy imports happen inside commands so ``citypulse --help`` stays instant.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import random
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from citypulse.config import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from citypulse.ingest.pipeline import Pipeline
    from citypulse.ingest.scheduler import IngestSource
    from citypulse.store.base import TimeSeriesStore
    from citypulse.store.bus import InProcessBus

app = typer.Typer(
    help="citypulse: smart city portal and real-time city data platform.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="DuckDB file path or postgresql:// URL (default: DATA_DIR/citypulse.duckdb)."),
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Where the store, raw archive and portal data live.")
]


def _settings(store: str | None, data_dir: Path | None, **extra: Any) -> Settings:
    overrides: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
    if store:
        overrides["store"] = store
    if data_dir:
        overrides["data_dir"] = data_dir
    settings = Settings(**overrides)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


def _open(
    settings: Settings, bus_url: str | None = None
) -> tuple[TimeSeriesStore, InProcessBus, Pipeline]:
    from citypulse.ingest.archive import RawArchive
    from citypulse.ingest.pipeline import Pipeline
    from citypulse.store import open_store

    try:
        store = open_store(settings.store_url)
    except Exception as exc:  # a locked DuckDB file or a bad URL: say so and stop
        typer.secho(f"cannot open store {_redact(settings.store_url)}: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    try:
        bus = _open_bus(bus_url)
    except typer.Exit:
        store.close()
        raise
    return store, bus, Pipeline(store, RawArchive(settings.archive_dir), bus)


def _redact(url: str) -> str:
    from citypulse.store.redis_bus import redact

    return redact(url)


def _open_bus(url: str | None) -> InProcessBus:
    """The in-process bus, or Redis (checked now: a wrong URL is a start-up error; outages
    later are ridden out)."""
    from citypulse.store.redis_bus import RedisBus, open_bus

    try:
        bus = open_bus(url)
        if isinstance(bus, RedisBus):
            bus.ping()
    except Exception as exc:
        typer.secho(f"cannot use bus {_redact(url or '')}: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    return bus


def _enabled_feeds(settings: Settings) -> list[Any]:
    from citypulse.feeds.registry import all_feeds, get_feed

    if settings.feeds:
        return [_with_url(get_feed(f), settings) for f in settings.feeds]
    return [_with_url(f, settings) for f in all_feeds().values() if f.enabled_by_default]


def _with_url(spec: Any, settings: Settings) -> Any:
    """The feed with its URL replaced by ``settings.feed_urls[id]`` (mirror, proxy, test)."""
    import dataclasses

    url = settings.feed_urls.get(spec.id)
    return dataclasses.replace(spec, url=url) if url else spec


def _alert_engine(settings: Settings, ts_store: Any, bus: Any, pipeline: Any) -> Any:
    """The alert engine, evaluating every stored batch; bad rules stop start-up clearly."""
    from citypulse.alerts.engine import AlertEngine
    from citypulse.alerts.rules import RuleError

    try:
        engine = AlertEngine.from_settings(settings, ts_store, bus)
    except RuleError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from exc
    pipeline.on_stored.append(engine.on_stored)
    return engine


def _seed_demo_history(ts_store: Any, days: float = 8.0) -> None:
    """Simulated speed-map history for the demo, so congestion baselines, anomaly detection
    and forecasts have the week they need; skipped when the store already has it."""
    from citypulse.analytics.history import floor_time
    from citypulse.analytics.simulated import simulate_history, to_batch

    links = 617
    if ts_store.count_observations("speed_kmh") >= links * 720 * (days - 1):
        return
    end = floor_time(datetime.now(UTC), timedelta(minutes=2))
    ts_store.append(to_batch(simulate_history(days=days, links=None, end=end)))


@app.command()
def serve(
    demo: Annotated[bool, typer.Option("--demo", help="Feed the store from the built-in city simulator.")] = False,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    no_ingest: Annotated[bool, typer.Option("--no-ingest", help="Serve only; do not poll feeds.")] = False,
    bus_url: Annotated[str | None, typer.Option("--bus", envvar="CITYPULSE_BUS", help="Live-update bus: redis://host:port/db to share updates between processes (default: in-process).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Run N web worker processes (web only, no ingest: run `citypulse ingest` beside them). Needs a postgresql:// store; use --bus redis://... for live updates.")] = None,
) -> None:
    """Run the portal, dashboards and API, with ingest in the same process (the embedded store
    has exactly one owner). Without --demo it polls the real endpoints; a feed it cannot reach
    is shown as down on /status, never faked. With --workers N: web workers only (scale-out)."""
    import uvicorn

    from citypulse.web.app import create_app

    settings = _settings(store, data_dir, demo=demo, host=host, port=port)
    if workers is not None:
        _serve_workers(settings, workers, bus_url, host, port)
        return
    ts_store, bus, pipeline = _open(settings, bus_url)
    alert_engine = _alert_engine(settings, ts_store, bus, pipeline)
    from citypulse.analytics.runner import AnalyticsRunner
    from citypulse.sensors.ingest import SensorIngest
    from citypulse.sensors.keys import KeyStore

    sensor_ingest = SensorIngest(pipeline, KeyStore.for_data_dir(settings.data_dir))
    runner: dict[str, Any] = {"analytics": AnalyticsRunner(ts_store, bus, interval_s=300)}

    async def start_ingest(web: FastAPI) -> None:
        # Alerts and analytics run in every mode: they read what the store already holds.
        await alert_engine.start()
        web.state.analytics = runner["analytics"].engine
        await runner["analytics"].start()
        if settings.mqtt_url:
            from citypulse.sensors.mqtt import MqttSubscriber

            runner["mqtt"] = MqttSubscriber.from_url(sensor_ingest, settings.mqtt_url)
            runner["mqtt"].start()
            web.state.mqtt_subscriber = runner["mqtt"]
        if no_ingest:
            return
        source: IngestSource
        if settings.demo:
            from citypulse.ingest.scheduler import DemoSource
            from citypulse.simulate.registry import all_simulators

            source = DemoSource(
                list(all_simulators().values()),
                pipeline,
                interval_s=settings.demo_interval_s,
                speed=settings.demo_speed,
            )
            # Analytics learn from a week of history: give the demo one, in the background.
            runner["seed"] = asyncio.create_task(asyncio.to_thread(_seed_demo_history, ts_store))
        else:
            from citypulse.ingest.fetch import Fetcher
            from citypulse.ingest.scheduler import Scheduler

            source = Scheduler(
                _enabled_feeds(settings),
                Fetcher(timeout_s=settings.http_timeout_s, max_bytes=settings.max_payload_bytes),
                pipeline,
                intervals=settings.intervals,
                first_poll_max_s=settings.first_poll_max_s,
            )
        runner["source"] = source
        await source.start()

    async def stop_ingest(web: FastAPI) -> None:
        source = runner.get("source")
        if source is not None:
            await source.stop()
        if (mq := runner.get("mqtt")) is not None:
            await asyncio.to_thread(mq.stop)
        await runner["analytics"].stop()
        await alert_engine.stop()
        await _close_bus(bus)

    async def backup_on(web: FastAPI) -> None:
        # `citypulse backup` exports the locked store through this process (see backup.py).
        from citypulse.backup import publish_token

        local = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, host)
        publish_token(web, settings, f"http://{local}:{port}")

    async def backup_off(web: FastAPI) -> None:
        from citypulse.backup import withdraw_token

        withdraw_token(web, settings)

    web = create_app(settings, ts_store, bus, on_startup=[start_ingest, backup_on], on_shutdown=[stop_ingest, backup_off])
    web.state.alert_engine = alert_engine
    web.state.sensor_ingest = sensor_ingest
    web.state.pipeline = pipeline
    mode = "demo (simulated data)" if settings.demo else "live feeds"
    typer.echo(f"citypulse on http://{host}:{port}  store={settings.store_url}  mode={mode}")
    try:
        uvicorn.run(web, host=host, port=port, log_level="info")
    finally:
        ts_store.close()


@app.command()
def ingest(
    once: Annotated[str | None, typer.Option("--once", help="Poll this feed once and exit.")] = None,
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    ack: Annotated[bool, typer.Option("--ack", help="Print one JSON line per payload once it is committed to the store.")] = False,
    bus_url: Annotated[str | None, typer.Option("--bus", envvar="CITYPULSE_BUS", help="Publish live updates on this bus (redis://host:port/db) for the web workers.")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Ingest from the built-in city simulator instead of the real feeds.")] = False,
) -> None:
    """Poll the real feeds (no web server). With --once FEED: one poll, print the outcome.

    --ack prints ``{"ack": "stored", "feed", "sha256", "rows"}`` on stdout after the store
    committed the payload (never before), for supervisors and the crash-safety test.
    On PostgreSQL each feed is polled by exactly one ingest process (an advisory lock per
    feed): start two for fail-over, and the second takes a feed over when the first stops."""
    from citypulse.feeds.registry import get_feed
    from citypulse.ingest.fetch import Fetcher
    from citypulse.ingest.scheduler import Scheduler

    settings = _settings(store, data_dir, demo=demo or None)
    ts_store, bus, pipeline = _open(settings, bus_url)
    if ack:
        pipeline.on_stored.append(_print_ack)
    fetcher = Fetcher(timeout_s=settings.http_timeout_s, max_bytes=settings.max_payload_bytes)
    try:
        if once:
            try:
                feed = _with_url(get_feed(once), settings)
            except KeyError as exc:
                typer.secho(str(exc.args[0]), fg="red", err=True)
                raise typer.Exit(2) from exc
            scheduler = Scheduler([feed], fetcher, pipeline, intervals=settings.intervals)
            outcome = asyncio.run(scheduler.run_once(feed.id))
            typer.echo(f"{feed.id}: {outcome}")
            if getattr(outcome, "status", "") in ("error", "quarantined"):
                raise typer.Exit(1)
            return

        asyncio.run(_ingest_forever(settings, ts_store, pipeline, bus))
    finally:
        bus_close = getattr(bus, "close", None)
        if callable(bus_close):
            bus_close()
        ts_store.close()


_ACK_LOCK = threading.Lock()


def _print_ack(spec: Any, batch: Any, outcome: Any) -> None:
    """``on_stored`` hook of ``ingest --ack``: runs after ``store.append`` returned, i.e. after
    the commit; one line per payload, flushed at once (a kill right after loses nothing)."""
    line = json.dumps(
        {"ack": "stored", "feed": spec.id, "sha256": outcome.sha256, "rows": outcome.rows}
    )
    with _ACK_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


@app.command()
def replay(
    directory: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="Folder of recorded payloads.")],
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Ingest recorded payload files in time order (idempotent: replaying twice changes nothing)."""
    from citypulse.ingest.replay import replay as run_replay

    settings = _settings(store, data_dir)
    ts_store, _bus, pipeline = _open(settings)
    try:
        report = run_replay(directory, pipeline)
    finally:
        ts_store.close()
    typer.echo(str(report))


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Folder to write payload files into.")] = Path("simulated"),
    hours: Annotated[float, typer.Option(help="Hours of simulated time to emit.")] = 1.0,
    end: Annotated[str | None, typer.Option(help="End time, ISO 8601 (default: now).")] = None,
    feed: Annotated[list[str] | None, typer.Option("--feed", help="Only these feeds.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same payloads).")] = 1,
) -> None:
    """Write simulated payloads in the real feed formats, ready for `citypulse replay`."""
    from citypulse.simulate.registry import all_simulators

    end_at = datetime.fromisoformat(end) if end else datetime.now(UTC)
    if end_at.tzinfo is None:
        end_at = end_at.replace(tzinfo=UTC)
    start_at = end_at - timedelta(hours=hours)
    rng = random.Random(seed)
    written = 0
    for sim in all_simulators().values():
        if feed and sim.feed_id not in feed:
            continue
        folder = out / sim.feed_id
        folder.mkdir(parents=True, exist_ok=True)
        at = start_at
        while at <= end_at:
            payload = sim.emit(at, rng)
            ext = "json" if payload.lstrip()[:1] in (b"{", b"[") else "xml"
            (folder / f"{sim.feed_id}_{at.strftime('%Y%m%dT%H%M%SZ')}.{ext}").write_bytes(payload)
            written += 1
            at += timedelta(seconds=sim.interval_s)
    typer.echo(f"wrote {written} payloads under {out}")


@app.command()
def backfill(
    feed: Annotated[str, typer.Argument(help="Feed id, e.g. td-speedmap (see `citypulse feeds`).")],
    from_: Annotated[datetime, typer.Option("--from", formats=["%Y-%m-%d"], help="First day, YYYY-MM-DD (Hong Kong date), inclusive.")],
    to: Annotated[datetime, typer.Option("--to", formats=["%Y-%m-%d"], help="Last day, YYYY-MM-DD (Hong Kong date), inclusive.")],
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    rate: Annotated[float, typer.Option("--rate", min=0.0, help="Archive API requests per second (0: no limit).")] = 2.0,
    max_versions: Annotated[int | None, typer.Option("--max-versions", min=0, help="Fetch at most this many versions in this run (oldest first).")] = None,
    archive_api: Annotated[str | None, typer.Option("--archive-api", help="Base URL of the historical archive API (default: https://api.data.gov.hk/v1/historical-archive).")] = None,
) -> None:
    """Load a feed's history from the DATA.GOV.HK historical archive through the ingest pipeline.

    Resumable: versions already done (kept in DATA_DIR/backfill/) are not fetched again, so
    re-running after an interruption or failures continues where it stopped."""
    from citypulse.feeds.registry import get_feed
    from citypulse.ingest.backfill import DEFAULT_ARCHIVE_API, BackfillError, run_backfill
    from citypulse.ingest.fetch import Fetcher

    start, end = from_.date(), to.date()
    if start > end:
        typer.secho(f"--from {start} is after --to {end}", fg="red", err=True)
        raise typer.Exit(2)
    try:
        spec = get_feed(feed)
    except KeyError as exc:
        typer.secho(str(exc.args[0]), fg="red", err=True)
        raise typer.Exit(2) from exc
    settings = _settings(store, data_dir)
    ts_store, _bus, pipeline = _open(settings)
    try:
        report = run_backfill(
            spec,
            pipeline,
            start,
            end,
            data_dir=settings.data_dir,
            fetcher=Fetcher.from_settings(settings),
            archive_api=archive_api or DEFAULT_ARCHIVE_API,
            rate=rate,
            max_versions=max_versions,
            progress=True,
        )
    except BackfillError as exc:
        typer.secho(f"backfill {spec.id}: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    finally:
        ts_store.close()
    typer.echo(str(report))
    if report.errors:
        raise typer.Exit(1)


@app.command()
def backup(
    dest: Annotated[Path, typer.Argument(help="New folder to write the backup into.")],
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    no_archive: Annotated[bool, typer.Option("--no-archive", help="Leave out the raw payload archive.")] = False,
) -> None:
    """Back up the store and the data folder (portal, catalogue, sensors, archive...) into DEST.

    Safe while `citypulse serve` runs: the store is exported inside the server (DuckDB allows
    one process per file), SQLite files through SQLite's online backup. See backup.py."""
    from citypulse.backup import BackupError
    from citypulse.backup import backup as run_backup

    settings = _settings(store, data_dir)
    try:
        report = run_backup(settings, dest, include_archive=not no_archive)
    except BackupError as exc:
        typer.secho(f"backup failed: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    typer.echo(str(report))


@app.command()
def restore(
    source: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="A folder written by `citypulse backup`.")],
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Replace existing data (citypulse must be stopped).")] = False,
) -> None:
    """Restore a backup into the data folder and store (checksums verified first; the server
    must be stopped)."""
    from citypulse.backup import BackupError
    from citypulse.backup import restore as run_restore

    settings = _settings(store, data_dir)
    try:
        report = run_restore(settings, source, force=force)
    except BackupError as exc:
        typer.secho(f"restore failed: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    typer.echo(str(report))


@app.command()
def feeds() -> None:
    """List the registered feeds with their live URLs and poll intervals."""
    from citypulse.feeds.registry import all_feeds

    for spec in all_feeds().values():
        typer.echo(f"{spec.id:28} every {spec.interval_s:>5}s  {spec.url}")


@app.command()
def bench(
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
    quick: Annotated[bool, typer.Option(help="Smaller sizes, for a smoke run.")] = False,
    only: Annotated[list[str] | None, typer.Option("--only", help="Run only these benchmark modules.")] = None,
) -> None:
    """Run the benchmarks in ./benchmarks (each bench_*.py exposes run(quick) -> dict)."""
    folder = Path.cwd() / "benchmarks"
    if not folder.is_dir():
        typer.secho("no ./benchmarks folder: run from a citypulse checkout", fg="red", err=True)
        raise typer.Exit(2)
    results: dict[str, Any] = {}
    for path in sorted(folder.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if only and name not in only:
            continue
        spec = importlib.util.spec_from_file_location(f"citypulse_bench_{name}", path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        typer.echo(f"running {name} ...", err=True)
        results[name] = module.run(quick)
    if as_json:
        typer.echo(json.dumps(results, indent=2, default=str))
    else:
        for name, figures in results.items():
            typer.echo(f"\n## {name}")
            for key, value in figures.items():
                typer.echo(f"  {key}: {value}")


# -- scale-out: web workers, leased ingest, history export, migration ------------------------


async def _close_bus(bus: InProcessBus) -> None:
    from citypulse.store.redis_bus import RedisBus

    if isinstance(bus, RedisBus):
        await bus.aclose()


def _serve_workers(
    settings: Settings, workers: int, bus_url: str | None, host: str, port: int
) -> None:
    """N uvicorn worker processes built by ``citypulse.web.factory`` from the environment.
    Store and bus are checked here first, so a wrong URL fails before any worker starts."""
    import os

    import uvicorn

    from citypulse.web.factory import BUS_ENV

    if not settings.store_url.startswith(("postgresql://", "postgres://")):
        typer.secho(
            "--workers needs a shared postgresql:// store: a DuckDB file has exactly one owner "
            "process (run `citypulse serve` without --workers, or `citypulse migrate`)",
            fg="red",
            err=True,
        )
        raise typer.Exit(2)
    if settings.demo:
        typer.secho(
            "--workers serves only; run `citypulse ingest --demo` beside it", fg="red", err=True
        )
        raise typer.Exit(2)
    ts_store, bus, _pipeline = _open(settings, bus_url)
    ts_store.close()
    bus_close = getattr(bus, "close", None)
    if callable(bus_close):
        bus_close()
    if not bus_url:
        typer.secho(
            "note: no --bus: live updates from `citypulse ingest` will not reach these workers",
            fg="yellow",
            err=True,
        )
    os.environ["CITYPULSE_STORE"] = settings.store_url
    os.environ["CITYPULSE_DATA_DIR"] = str(settings.data_dir)
    os.environ[BUS_ENV] = bus_url or ""
    typer.echo(
        f"citypulse web on http://{host}:{port}  workers={workers}  "
        f"store={_redact(settings.store_url)}  bus={_redact(bus_url or 'in-process')}"
    )
    uvicorn.run(
        "citypulse.web.factory:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


async def _ingest_forever(
    settings: Settings, store: TimeSeriesStore, pipeline: Pipeline, bus: InProcessBus
) -> None:
    """Run ingest until SIGTERM/SIGINT: every enabled feed (or the simulator with --demo) as a
    unit that runs only while this process holds its lease (PostgreSQL advisory lock)."""
    import signal

    from citypulse.ingest.fetch import Fetcher
    from citypulse.ingest.leased import LeasedIngest
    from citypulse.ingest.scheduler import DemoSource, Scheduler

    units: dict[str, Any] = {}
    if settings.demo:
        from citypulse.simulate.registry import all_simulators

        def demo() -> IngestSource:
            sims = [
                s for s in all_simulators().values() if not settings.feeds or s.feed_id in settings.feeds
            ]
            return DemoSource(
                sims,
                pipeline,
                interval_s=settings.demo_interval_s,
                speed=settings.demo_speed,
            )

        units["demo"] = demo
    else:
        for spec in _enabled_feeds(settings):

            def poll(spec: Any = spec) -> IngestSource:
                return Scheduler(
                    [spec],
                    Fetcher(timeout_s=settings.http_timeout_s, max_bytes=settings.max_payload_bytes),
                    pipeline,
                    intervals=settings.intervals,
                    first_poll_max_s=settings.first_poll_max_s,
                )

            units[spec.id] = poll
    make_leases = getattr(store, "feed_leases", None)
    leases = make_leases() if callable(make_leases) else None
    runner = LeasedIngest(units, leases)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await runner.start()
    mode = "exclusive per feed (PostgreSQL advisory locks)" if leases else "all feeds"
    typer.echo(f"citypulse ingest: {len(units)} unit(s), {mode}", err=True)
    try:
        await stop.wait()
    finally:
        await runner.stop()
        await _close_bus(bus)


export_app = typer.Typer(help="Export stored history.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("parquet")
def export_parquet(
    out: Annotated[Path, typer.Option("--out", help="Folder to write feed=<id>/date=<day>/part-0.parquet into.")],
    from_: Annotated[datetime | None, typer.Option("--from", formats=["%Y-%m-%d"], help="First UTC day, inclusive (default: the oldest).")] = None,
    to: Annotated[datetime | None, typer.Option("--to", formats=["%Y-%m-%d"], help="Last UTC day, inclusive (default: the newest).")] = None,
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Write observations as Hive-partitioned Parquet (feed/date) for DuckDB, Spark, pandas."""
    from citypulse.store.parquet import export_parquet as run_export
    from citypulse.store.parquet import open_source

    settings = _settings(store, data_dir)
    try:
        source = open_source(settings.store_url)
    except Exception as exc:
        typer.secho(f"cannot open store {_redact(settings.store_url)}: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    try:
        report = run_export(
            source,
            out,
            from_.date() if from_ else None,
            to.date() if to else None,
            progress=lambda day, rows: typer.echo(f"{day}: {rows} rows", err=True),
        )
    finally:
        source.close()
    typer.echo(str(report))


@app.command()
def migrate(
    from_: Annotated[Path, typer.Option("--from", help="The DuckDB store file to copy (stop the serve that owns it first).")],
    to: Annotated[str, typer.Option("--to", help="postgresql:// URL of the target database.")],
) -> None:
    """Copy an embedded DuckDB installation into PostgreSQL (idempotent: re-run to resume)."""
    from citypulse.store.migrate import migrate_duckdb_to_postgres

    if not to.startswith(("postgresql://", "postgres://")):
        typer.secho("--to must be a postgresql:// URL", fg="red", err=True)
        raise typer.Exit(2)
    try:
        report = migrate_duckdb_to_postgres(
            from_,
            to,
            progress=lambda table, day, rows: typer.echo(
                f"{table}{' ' + str(day) if day else ''}: {rows} rows", err=True
            ),
        )
    except Exception as exc:
        typer.secho(f"migrate: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    typer.echo(str(report))
    if not report.complete:
        raise typer.Exit(1)


def _mount_subapps() -> None:
    """Feature sub-commands live beside their features."""
    for module_name, attr, name in (
        ("citypulse.blueprint.cli", "users_app", "users"),
        ("citypulse.catalogue.cli", "catalogue_app", "catalogue"),
        ("citypulse.sensors.cli", "sensors_app", "sensors"),
        ("citypulse.analytics.cli", "analytics_app", "analytics"),
    ):
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        sub = getattr(module, attr, None)
        if sub is not None:
            app.add_typer(sub, name=name)


_mount_subapps()


if __name__ == "__main__":
    app()
