"""``citypulse catalogue ...``: harvest CKAN sources, list them, search, export DCAT.

The coordinator mounts ``catalogue_app`` on the main CLI. Heavy imports stay inside commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

catalogue_app = typer.Typer(help="Open data catalogue: harvest, search, DCAT export.",
                            no_args_is_help=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir",
                 help="Data folder (default: CITYPULSE_DATA_DIR or ./citypulse-data)"),
]


def _data_dir(data_dir: Path | None) -> Path:
    if data_dir is not None:
        return data_dir
    from citypulse.config import Settings

    return Settings().data_dir


def _languages(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    out: dict[str, str] = {}
    for v in values:
        lang, sep, prefix = v.partition("=")
        if not sep or not lang or not prefix:
            raise typer.BadParameter(f"{v!r}: expected LANG=PREFIX, e.g. zh_Hant=tc-data")
        out[lang.strip()] = prefix.strip().strip("/")
    return out


@catalogue_app.command()
def harvest(
    url: Annotated[str, typer.Argument(help="CKAN site, e.g. https://data.gov.hk/en-data")],
    data_dir: DataDir = None,
    full: Annotated[bool, typer.Option("--full", help="Re-read everything, not only changes")]
    = False,
    timeout: Annotated[float, typer.Option(help="Seconds per request")] = 20.0,
    page_size: Annotated[int, typer.Option(help="package_search rows per page")] = 100,
    lang: Annotated[
        list[str] | None,
        typer.Option("--lang", help="Language prefix LANG=PREFIX (repeat); DATA.GOV.HK's "
                     "en=en-data and zh_Hant=tc-data are detected automatically"),
    ] = None,
    max_datasets: Annotated[int | None, typer.Option("--max", help="Stop after N datasets")]
    = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Harvest a CKAN Action API: incremental on metadata_modified, resumable."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from citypulse.catalogue.harvest import Harvester, SourceError
    from citypulse.catalogue.service import open_catalogue

    console = Console(stderr=True, quiet=quiet)
    cat = open_catalogue(_data_dir(data_dir))
    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=console, transient=False, disable=quiet,
    ) as bar:
        task = bar.add_task(f"harvest {url}", total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            harvester = Harvester(
                cat.db, url, full=full, timeout=timeout, page_size=page_size,
                languages=_languages(lang), progress=tick, log=console.print,
                max_datasets=max_datasets,
            )
        except SourceError as exc:
            raise typer.BadParameter(str(exc)) from exc
        report = harvester.run()
    console.print(
        f"{report.source}: mode={report.mode} listed={report.listed} planned={report.planned} "
        f"fetched={report.fetched} changed={report.changed} deleted={report.deleted} "
        f"skipped={report.skipped}{' (resumed)' if report.resumed else ''} "
        f"in {report.elapsed_s:.1f}s ({report.rate:.1f} datasets/s)"
    )
    for warning in report.warnings[:10]:
        console.print(f"  warning: {warning}")
    if report.error:
        console.print(f"[red]stopped: {report.error}[/red] (kept what was harvested; "
                      "run again to resume)")
        raise typer.Exit(1)


@catalogue_app.command()
def sources(data_dir: DataDir = None) -> None:
    """Harvest sources and the state of their last run."""
    from citypulse.catalogue.service import open_catalogue

    cat = open_catalogue(_data_dir(data_dir), sync_feeds=False)
    for key, state in cat.db.sources().items():
        typer.echo(
            f"{key}\n  mode={state.get('mode')} status={state.get('status')} "
            f"last_success={state.get('last_success')} hwm={state.get('hwm')}"
            + (f"\n  last_error={state.get('last_error')}" if state.get("last_error") else "")
        )


@catalogue_app.command()
def search(
    q: Annotated[str, typer.Argument(help="Search words")] = "",
    fq: Annotated[str, typer.Option(help="Filter, e.g. organization:hk-td")] = "",
    rows: int = 10,
    data_dir: DataDir = None,
) -> None:
    """Search the local catalogue."""
    from citypulse.catalogue.search import SearchParams
    from citypulse.catalogue.service import open_catalogue

    cat = open_catalogue(_data_dir(data_dir))
    result = cat.search(SearchParams(q=q, fq=[fq], rows=rows, facet=False))
    typer.echo(f"{result.count} datasets")
    for pkg in cat.db.packages_by_rid(result.rids):
        typer.echo(f"  {pkg['name']}: {pkg.get('title')}")


@catalogue_app.command("sync-feeds")
def sync_feeds(data_dir: DataDir = None) -> None:
    """Refresh the datasets of the citypulse feeds from the feed registry."""
    from citypulse.catalogue.service import open_catalogue

    cat = open_catalogue(_data_dir(data_dir), sync_feeds=False)
    typer.echo(f"{cat.sync_feeds()} feed datasets changed")


@catalogue_app.command()
def dcat(
    fmt: Annotated[str, typer.Option("--format", help="turtle or json-ld")] = "turtle",
    base_url: Annotated[str, typer.Option(help="Public URL of the portal")]
    = "http://localhost:8000/",
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout")] = None,
    data_dir: DataDir = None,
) -> None:
    """The whole catalogue as DCAT-AP (Turtle or JSON-LD)."""
    from citypulse.catalogue.dcat import catalogue_graph, serialize
    from citypulse.catalogue.service import open_catalogue

    cat = open_catalogue(_data_dir(data_dir))
    text = serialize(catalogue_graph(cat, base_url), fmt)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text, encoding="utf-8")
