"""The ``citypulse`` command line: serve, ingest, replay, simulate, bench and feature sub-commands.

Heavy imports happen inside commands so ``citypulse --help`` stays instant.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import random
import sys
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


def _open(settings: Settings) -> tuple[TimeSeriesStore, InProcessBus, Pipeline]:
    from citypulse.ingest.archive import RawArchive
    from citypulse.ingest.pipeline import Pipeline
    from citypulse.store import open_store
    from citypulse.store.bus import InProcessBus

    try:
        store = open_store(settings.store_url)
    except Exception as exc:  # a locked DuckDB file or a bad URL: say so and stop
        typer.secho(f"cannot open store {settings.store_url}: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    bus = InProcessBus()
    return store, bus, Pipeline(store, RawArchive(settings.archive_dir), bus)


def _enabled_feeds(settings: Settings) -> list[Any]:
    from citypulse.feeds.registry import all_feeds, get_feed

    if settings.feeds:
        return [get_feed(f) for f in settings.feeds]
    return [f for f in all_feeds().values() if f.enabled_by_default]


@app.command()
def serve(
    demo: Annotated[bool, typer.Option("--demo", help="Feed the store from the built-in city simulator.")] = False,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    no_ingest: Annotated[bool, typer.Option("--no-ingest", help="Serve only; do not poll feeds.")] = False,
) -> None:
    """Run the portal, dashboards and API, with ingest in the same process (the embedded store
    has exactly one owner). Without --demo it polls the real endpoints; a feed it cannot reach
    is shown as down on /status, never faked."""
    import uvicorn

    from citypulse.web.app import create_app

    settings = _settings(store, data_dir, demo=demo, host=host, port=port)
    ts_store, bus, pipeline = _open(settings)
    runner: dict[str, Any] = {}

    async def start_ingest(web: FastAPI) -> None:
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
        else:
            from citypulse.ingest.fetch import Fetcher
            from citypulse.ingest.scheduler import Scheduler

            source = Scheduler(
                _enabled_feeds(settings),
                Fetcher(timeout_s=settings.http_timeout_s, max_bytes=settings.max_payload_bytes),
                pipeline,
                intervals=settings.intervals,
            )
        runner["source"] = source
        await source.start()

    async def stop_ingest(web: FastAPI) -> None:
        source = runner.get("source")
        if source is not None:
            await source.stop()

    web = create_app(settings, ts_store, bus, on_startup=[start_ingest], on_shutdown=[stop_ingest])
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
) -> None:
    """Poll the real feeds (no web server). With --once FEED: one poll, print the outcome."""
    from citypulse.feeds.registry import get_feed
    from citypulse.ingest.fetch import Fetcher
    from citypulse.ingest.scheduler import Scheduler

    settings = _settings(store, data_dir)
    ts_store, _bus, pipeline = _open(settings)
    fetcher = Fetcher(timeout_s=settings.http_timeout_s, max_bytes=settings.max_payload_bytes)
    try:
        if once:
            try:
                feed = get_feed(once)
            except KeyError as exc:
                typer.secho(str(exc.args[0]), fg="red", err=True)
                raise typer.Exit(2) from exc
            scheduler = Scheduler([feed], fetcher, pipeline, intervals=settings.intervals)
            outcome = asyncio.run(scheduler.run_once(feed.id))
            typer.echo(f"{feed.id}: {outcome}")
            if getattr(outcome, "status", "") in ("error", "quarantined"):
                raise typer.Exit(1)
            return

        async def forever() -> None:
            scheduler = Scheduler(
                _enabled_feeds(settings), fetcher, pipeline, intervals=settings.intervals
            )
            await scheduler.start()
            try:
                while True:
                    await asyncio.sleep(3600)
            finally:
                await scheduler.stop()

        asyncio.run(forever())
    finally:
        ts_store.close()


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


def _mount_subapps() -> None:
    """Feature sub-commands live beside their features."""
    for module_name, attr, name in (
        ("citypulse.blueprint.cli", "users_app", "users"),
        ("citypulse.catalogue.cli", "catalogue_app", "catalogue"),
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
