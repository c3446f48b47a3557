"""``citypulse users ...``: manage digital-office accounts in ``<data_dir>/portal.sqlite``.

Mounted by the main CLI as ``app.add_typer(users_app, name="users")``. Passwords are prompted
(hidden, confirmed) or read from stdin with ``--password-stdin`` for scripts; never an argument,
which would leak into shell history and the process list.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from citypulse.blueprint.db import ROLES, PortalDB, UserError
from citypulse.config import Settings

users_app = typer.Typer(
    help="Manage digital office accounts (portal sign-in).", no_args_is_help=True
)

DataDirOption = typer.Option(
    None, "--data-dir", help="Data folder holding portal.sqlite (default: CITYPULSE_DATA_DIR)"
)


def _db(data_dir: Path | None) -> PortalDB:
    folder = data_dir or Settings().data_dir
    return PortalDB(Path(folder) / "portal.sqlite")


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@users_app.command("add")
def add(
    username: str = typer.Argument(..., help="Login name (letters, digits, . _ -)"),
    role: str = typer.Option("editor", "--role", help="viewer | editor | admin"),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from the first line of stdin"
    ),
    data_dir: Path | None = DataDirOption,
) -> None:
    """Create an account."""
    if role not in ROLES:
        typer.echo(f"error: role must be one of {', '.join(ROLES)}", err=True)
        raise typer.Exit(2)
    password = _read_password(password_stdin)
    try:
        user = _db(data_dir).add_user(username, password, role)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"added {user.username} ({user.role})")


@users_app.command("list")
def list_users(data_dir: Path | None = DataDirOption) -> None:
    """List accounts and roles."""
    for user in _db(data_dir).users():
        state = " (disabled)" if user.disabled else ""
        typer.echo(f"{user.username}\t{user.role}\t{user.created_at:%Y-%m-%d}{state}")


@users_app.command("set-role")
def set_role(
    username: str,
    role: str = typer.Argument(..., help="viewer | editor | admin"),
    data_dir: Path | None = DataDirOption,
) -> None:
    """Change an account's role."""
    try:
        user = _db(data_dir).set_role(username, role)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{user.username} is now {user.role}")


@users_app.command("passwd")
def passwd(
    username: str,
    password_stdin: bool = typer.Option(False, "--password-stdin"),
    data_dir: Path | None = DataDirOption,
) -> None:
    """Set a new password (ends the account's open sessions)."""
    try:
        _db(data_dir).set_password(username, _read_password(password_stdin))
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"password of {username} changed")


@users_app.command("disable")
def disable(
    username: str,
    enable: bool = typer.Option(False, "--enable", help="Re-enable instead"),
    data_dir: Path | None = DataDirOption,
) -> None:
    """Disable (or --enable) an account; disabling ends its sessions."""
    try:
        _db(data_dir).set_disabled(username, not enable)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{username} {'enabled' if enable else 'disabled'}")
