"""``citypulse users``: add (prompt or --password-stdin), list, set-role, passwd, disable."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from citypulse.blueprint.cli import users_app
from citypulse.blueprint.db import PortalDB

runner = CliRunner()


def test_add_list_and_roles(tmp_path: Path) -> None:
    d = ["--data-dir", str(tmp_path)]
    result = runner.invoke(
        users_app,
        ["add", "eddie", "--role", "editor", "--password-stdin", *d],
        input="correct horse battery\n",
    )
    assert result.exit_code == 0, result.output
    assert "added eddie (editor)" in result.output
    result = runner.invoke(
        users_app,
        ["add", "ada", "--role", "admin", *d],
        input="another long password\nanother long password\n",
    )
    assert result.exit_code == 0, result.output
    listing = runner.invoke(users_app, ["list", *d]).output
    assert "ada\tadmin" in listing and "eddie\teditor" in listing
    assert runner.invoke(users_app, ["set-role", "eddie", "viewer", *d]).exit_code == 0
    db = PortalDB(tmp_path / "portal.sqlite")
    user = db.verify_password("eddie", "correct horse battery")
    assert user is not None and user.role == "viewer"


def test_errors(tmp_path: Path) -> None:
    d = ["--data-dir", str(tmp_path)]
    bad_role = runner.invoke(
        users_app,
        ["add", "x1", "--role", "boss", "--password-stdin", *d],
        input="correct horse battery\n",
    )
    assert bad_role.exit_code == 2
    short = runner.invoke(users_app, ["add", "x1", "--password-stdin", *d], input="short\n")
    assert short.exit_code == 1 and "at least 10" in short.output
    assert runner.invoke(users_app, ["set-role", "ghost", "editor", *d]).exit_code == 1


def test_passwd_and_disable(tmp_path: Path) -> None:
    d = ["--data-dir", str(tmp_path)]
    runner.invoke(users_app, ["add", "eddie", "--password-stdin", *d], input="correct horse 1\n")
    assert (
        runner.invoke(
            users_app, ["passwd", "eddie", "--password-stdin", *d], input="correct horse 2\n"
        ).exit_code
        == 0
    )
    db = PortalDB(tmp_path / "portal.sqlite")
    assert db.verify_password("eddie", "correct horse 2") is not None
    assert runner.invoke(users_app, ["disable", "eddie", *d]).exit_code == 0
    assert db.verify_password("eddie", "correct horse 2") is None
