"""portal.sqlite: users with argon2 hashes, server-side sessions, append-only edits with
optimistic concurrency that holds across threads and connections."""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from tests.blueprint.support import FAST_HASHER, PASSWORD

from citypulse.blueprint.db import PortalDB, UserError, VersionConflict


@pytest.fixture()
def db(tmp_path: Path) -> PortalDB:
    return PortalDB(tmp_path / "portal.sqlite", hasher=FAST_HASHER)


def test_wal_and_hashes(db: PortalDB, tmp_path: Path) -> None:
    db.add_user("eddie", PASSWORD, "editor")
    raw = sqlite3.connect(tmp_path / "portal.sqlite")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    stored = raw.execute("SELECT password_hash FROM users").fetchone()[0]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_users(db: PortalDB) -> None:
    user = db.add_user("eddie", PASSWORD, "editor")
    assert user.can_edit and not user.is_admin
    with pytest.raises(UserError, match="already exists"):
        db.add_user("EDDIE", PASSWORD, "viewer")  # names are case-insensitive
    with pytest.raises(UserError, match="at least 10"):
        db.add_user("short", "abc", "viewer")
    with pytest.raises(UserError, match="role must be"):
        db.add_user("rolf", PASSWORD, "owner")
    with pytest.raises(UserError, match="username"):
        db.add_user("bad name!", PASSWORD, "viewer")
    assert db.verify_password("eddie", PASSWORD) == user
    assert db.verify_password("eddie", "wrong password") is None
    assert db.verify_password("nobody", PASSWORD) is None
    assert db.set_role("eddie", "viewer").can_edit is False
    db.set_disabled("eddie", True)
    assert db.verify_password("eddie", PASSWORD) is None


def test_sessions(db: PortalDB) -> None:
    user = db.add_user("eddie", PASSWORD, "editor")
    token, session = db.create_session(user)
    found = db.session(token)
    assert found is not None and found.user.username == "eddie"
    assert found.csrf_token == session.csrf_token
    assert db.session(token + "x") is None
    assert db.session("") is None
    db.delete_session(token)
    assert db.session(token) is None
    expired, _ = db.create_session(user, ttl=timedelta(seconds=-1))
    assert db.session(expired) is None
    live, _ = db.create_session(user)
    db.set_password("eddie", "another long password")
    assert db.session(live) is None  # a new password ends open sessions


def test_edits_and_conflict(db: PortalDB) -> None:
    user = db.add_user("eddie", PASSWORD, "editor")
    e1 = db.record_edit("mobility-01", 0, user, "n1", {"status": "launched"}, {"status": "ongoing"})
    assert e1.version == 1
    with pytest.raises(VersionConflict) as info:
        db.record_edit("mobility-01", 0, user, "n2", {}, {"status": "ended"})
    assert (info.value.base_version, info.value.current_version) == (0, 1)
    e2 = db.record_edit("mobility-01", 1, user, "n2", {"status": "ongoing"}, {"status": "ended"})
    assert e2.version == 2
    assert [e.note for e in db.edits("mobility-01")] == ["n1", "n2"]
    assert db.edits("mobility-02") == []
    assert db.edit_marker() == (2, e2.id)


def test_concurrent_saves_from_the_same_version(tmp_path: Path) -> None:
    """Eight threads, separate connections, all based on version 0: exactly one wins."""
    db = PortalDB(tmp_path / "portal.sqlite", hasher=FAST_HASHER)
    user = db.add_user("eddie", PASSWORD, "editor")
    start = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def save(n: int) -> None:
        start.wait()
        try:
            db.record_edit("living-04", 0, user, f"n{n}", {}, {"notes": f"v{n}"})
            result = "ok"
        except VersionConflict:
            result = "conflict"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=save, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 7 + ["ok"]
    assert len(db.edits("living-04")) == 1
