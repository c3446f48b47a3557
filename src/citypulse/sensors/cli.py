"""``citypulse sensors``: register devices, issue, rotate and revoke their API keys.

The registry is ``<data_dir>/sensors.sqlite`` (SQLite, so this works while ``citypulse serve``
owns the DuckDB store). A key is printed once, when issued; only its SHA-256 is kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from citypulse.config import Settings

sensors_app = typer.Typer(
    help="Smart Village / IoT sensors: device registry and per-device API keys.",
    no_args_is_help=True,
)

TypeOpt = Annotated[
    str, typer.Option("--type", help="flood, dumping, wildlife, weather, air, noise, bin, other.")
]
VillageZhOpt = Annotated[
    str | None, typer.Option("--village-zh", help="Village name (Chinese).")
]
PropOpt = Annotated[
    list[str] | None,
    typer.Option("--prop", help="Extra property key=value, e.g. alert_level_cm=120 (repeatable)."),
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Where sensors.sqlite lives (default: DATA_DIR).")
]


def _keys(data_dir: Path | None) -> Any:
    from citypulse.sensors.keys import KeyStore

    settings = Settings(data_dir=data_dir) if data_dir else Settings()
    return KeyStore.for_data_dir(settings.data_dir)


def _props(pairs: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise typer.BadParameter(f"--prop wants key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        parsed: Any = value
        try:
            parsed = float(value) if "." in value else int(value)
        except ValueError:
            parsed = value
        out[key.strip()] = parsed
    return out


@sensors_app.command("add-device")
def add_device(
    device_id: Annotated[str, typer.Argument(help="Lowercase id, e.g. tai-o-flood-01.")],
    sensor_type: TypeOpt = "other",
    village: Annotated[str | None, typer.Option(help="Village name (English).")] = None,
    village_zh: VillageZhOpt = None,
    name_en: Annotated[str | None, typer.Option("--name-en")] = None,
    name_zh: Annotated[str | None, typer.Option("--name-zh")] = None,
    lat: Annotated[float | None, typer.Option(help="WGS84 latitude.")] = None,
    lon: Annotated[float | None, typer.Option(help="WGS84 longitude.")] = None,
    district: Annotated[str | None, typer.Option()] = None,
    prop: PropOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Register a device and print its new API key (shown only this once)."""
    from citypulse.sensors.keys import DeviceExistsError

    keys = _keys(data_dir)
    try:
        key = keys.add_device(
            device_id, sensor_type=sensor_type, village=village, village_zh=village_zh,
            name_en=name_en, name_zh=name_zh, lat=lat, lon=lon, district=district,
            properties=_props(prop),
        )
    except (DeviceExistsError, ValueError) as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from exc
    finally:
        keys.close()
    typer.echo(f"device {device_id} registered; API key (store it now, it is not kept):")
    typer.echo(key)


@sensors_app.command("rotate-key")
def rotate_key(
    device_id: Annotated[str, typer.Argument()],
    data_dir: DataDirOpt = None,
) -> None:
    """Issue a new key for a device; the old key stops working at once."""
    keys = _keys(data_dir)
    try:
        key = keys.rotate_key(device_id)
    except LookupError as exc:
        typer.secho(str(exc.args[0]), fg="red", err=True)
        raise typer.Exit(2) from exc
    finally:
        keys.close()
    typer.echo(key)


@sensors_app.command()
def revoke(
    device_id: Annotated[str, typer.Argument()],
    data_dir: DataDirOpt = None,
) -> None:
    """Revoke a device's key: its messages are refused as ``revoked-key`` from now on."""
    keys = _keys(data_dir)
    try:
        done = keys.revoke(device_id)
    finally:
        keys.close()
    if not done:
        typer.secho(f"no active device {device_id!r}", fg="red", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {device_id}")


@sensors_app.command("list")
def list_devices(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DataDirOpt = None,
) -> None:
    """List registered devices (never their keys)."""
    keys = _keys(data_dir)
    try:
        devices = keys.devices()
    finally:
        keys.close()
    if as_json:
        typer.echo(json.dumps([d.public() for d in devices], ensure_ascii=False, indent=2))
        return
    for d in devices:
        state = "active" if d.active else "revoked"
        where = d.village or "-"
        typer.echo(f"{d.device_id:32} {d.sensor_type:9} {where:20} {d.key_hint}…  {state}")
