"""The digital office's own state in ``<data_dir>/portal.sqlite``: users, sessions and the audit
history of initiative edits.

SQLite (stdlib, WAL) because this is small, write-rarely data that must survive restarts and be
readable by the CLI while the server runs; the time-series store is DuckDB, which allows only one
process per file. Edits are never updated or deleted: the current state of an initiative is the
shipped YAML with its edits applied in order, and ``UNIQUE(initiative_id, version)`` makes two
concurrent saves based on the same version impossible even across processes.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

Role = Literal["viewer", "editor", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "editor", "admin")
USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,39}$")
MIN_PASSWORD_LENGTH = 10
SESSION_TTL = timedelta(hours=12)

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    created_at TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user_id);
CREATE TABLE IF NOT EXISTS edits (
    id INTEGER PRIMARY KEY,
    initiative_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    username TEXT NOT NULL,
    at TEXT NOT NULL,
    note TEXT NOT NULL,
    before_json TEXT NOT NULL,
    after_json TEXT NOT NULL,
    UNIQUE (initiative_id, version)
);
"""


class UserError(ValueError):
    """Bad username, password or role, or a duplicate user."""


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    role: Role
    created_at: datetime
    disabled: bool = False

    @property
    def can_edit(self) -> bool:
        return self.role in ("editor", "admin") and not self.disabled

    @property
    def is_admin(self) -> bool:
        return self.role == "admin" and not self.disabled


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class EditRecord:
    """One saved edit: ``before``/``after`` hold only the fields that changed."""

    id: int
    initiative_id: str
    version: int  # the initiative's version after this edit (shipped YAML = 0)
    username: str
    at: datetime
    note: str
    before: dict[str, Any]
    after: dict[str, Any]


class VersionConflict(Exception):
    """The edit was based on an older version than the current one."""

    def __init__(self, initiative_id: str, base_version: int, current_version: int) -> None:
        super().__init__(
            f"{initiative_id}: edit based on version {base_version}, current is {current_version}"
        )
        self.initiative_id = initiative_id
        self.base_version = base_version
        self.current_version = current_version


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_username(username: str) -> str:
    if not USERNAME_RE.match(username):
        raise UserError(
            "username must be 2-40 characters: letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise UserError("password is too long")
    return password


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    return role


class PortalDB:
    """Thread-safe access to ``portal.sqlite``: one connection per thread (SQLite's rule), WAL so
    readers never wait for the writer, ``BEGIN IMMEDIATE`` around every write."""

    def __init__(self, path: Path | str, *, hasher: PasswordHasher | None = None) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.hasher = hasher or PasswordHasher()
        self._local = threading.local()
        self._dummy_hash = self.hasher.hash(secrets.token_hex(16))
        self._conn().executescript(SCHEMA)  # idempotent (IF NOT EXISTS), its own transaction

    # -- connections --------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=10000")
            self._local.conn = conn
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- users --------------------------------------------------------------------------------
    @staticmethod
    def _user(row: sqlite3.Row) -> User:
        return User(
            id=int(row["id"]),
            username=str(row["username"]),
            role=check_role(str(row["role"])),
            created_at=datetime.fromisoformat(row["created_at"]),
            disabled=bool(row["disabled"]),
        )

    def add_user(self, username: str, password: str, role: str = "viewer") -> User:
        check_username(username)
        check_password(password)
        role = check_role(role)
        pw_hash = self.hasher.hash(password)
        try:
            with self._write() as conn:
                cur = conn.execute(
                    "INSERT INTO users (username, password_hash, role, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    (username, pw_hash, role, _iso(_now())),
                )
                user_id = cur.lastrowid
        except sqlite3.IntegrityError as exc:
            raise UserError(f"user {username!r} already exists") from exc
        user = self.user_by_id(int(user_id or 0))
        assert user is not None
        return user

    def user(self, username: str) -> User | None:
        row = self._conn().execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
        return self._user(row) if row else None

    def user_by_id(self, user_id: int) -> User | None:
        row = self._conn().execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
        return self._user(row) if row else None

    def users(self) -> list[User]:
        rows = self._conn().execute("SELECT * FROM users ORDER BY username").fetchall()
        return [self._user(r) for r in rows]

    def set_role(self, username: str, role: str) -> User:
        role = check_role(role)
        with self._write() as conn:
            cur = conn.execute("UPDATE users SET role = ? WHERE username = ?", (role, username))
            if cur.rowcount == 0:
                raise UserError(f"no user {username!r}")
        user = self.user(username)
        assert user is not None
        return user

    def set_password(self, username: str, password: str) -> None:
        check_password(password)
        pw_hash = self.hasher.hash(password)
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE users SET password_hash = ? WHERE username = ?", (pw_hash, username)
            )
            if cur.rowcount == 0:
                raise UserError(f"no user {username!r}")
            # A new password ends every open session of that user.
            conn.execute(
                "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE username = ?)",
                (username,),
            )

    def set_disabled(self, username: str, disabled: bool) -> None:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE users SET disabled = ? WHERE username = ?", (int(disabled), username)
            )
            if cur.rowcount == 0:
                raise UserError(f"no user {username!r}")
            if disabled:
                conn.execute(
                    "DELETE FROM sessions WHERE user_id = "
                    "(SELECT id FROM users WHERE username = ?)",
                    (username,),
                )

    def verify_password(self, username: str, password: str) -> User | None:
        """The user if the password matches and the account is enabled. Slow on purpose (argon2);
        unknown users cost the same as wrong passwords so timing does not reveal usernames."""
        row = self._conn().execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
        stored = str(row["password_hash"]) if row else self._dummy_hash
        try:
            self.hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None or row["disabled"]:
            return None
        if self.hasher.check_needs_rehash(stored):
            with self._write() as conn:
                conn.execute(
                    "UPDATE users SET password_hash = ? WHERE id = ?",
                    (self.hasher.hash(password), row["id"]),
                )
        return self._user(row)

    # -- sessions -----------------------------------------------------------------------------
    def create_session(self, user: User, ttl: timedelta = SESSION_TTL) -> tuple[str, Session]:
        """A new session; only the token's SHA-256 is stored, so a leaked database file does not
        hand out live sessions."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = _now()
        expires = now + ttl
        with self._write() as conn:
            conn.execute("DELETE FROM sessions WHERE expires_at < ?", (_iso(now),))
            conn.execute(
                "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (_token_hash(token), user.id, csrf, _iso(now), _iso(expires)),
            )
        return token, Session(user, csrf, expires)

    def session(self, token: str) -> Session | None:
        if not token or len(token) > 200:
            return None
        row = (
            self._conn()
            .execute(
                "SELECT s.csrf_token, s.expires_at, u.* FROM sessions s JOIN users u "
                "ON u.id = s.user_id WHERE s.token_hash = ?",
                (_token_hash(token),),
            )
            .fetchone()
        )
        if row is None:
            return None
        expires = datetime.fromisoformat(row["expires_at"])
        if expires <= _now() or row["disabled"]:
            return None
        return Session(self._user(row), str(row["csrf_token"]), expires)

    def delete_session(self, token: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM sessions WHERE token_hash = ?", (_token_hash(token),))

    # -- edits --------------------------------------------------------------------------------
    @staticmethod
    def _edit(row: sqlite3.Row) -> EditRecord:
        return EditRecord(
            id=int(row["id"]),
            initiative_id=str(row["initiative_id"]),
            version=int(row["version"]),
            username=str(row["username"]),
            at=datetime.fromisoformat(row["at"]),
            note=str(row["note"]),
            before=json.loads(row["before_json"]),
            after=json.loads(row["after_json"]),
        )

    def current_version(self, initiative_id: str) -> int:
        row = (
            self._conn()
            .execute("SELECT max(version) FROM edits WHERE initiative_id = ?", (initiative_id,))
            .fetchone()
        )
        return int(row[0] or 0)

    def record_edit(
        self,
        initiative_id: str,
        base_version: int,
        user: User,
        note: str,
        before: Mapping[str, Any],
        after: Mapping[str, Any],
    ) -> EditRecord:
        """Append an edit if ``base_version`` is still current, else raise VersionConflict.
        The check and the insert share one IMMEDIATE transaction, and the UNIQUE constraint
        backs it up against any other writer."""
        now = _now()
        try:
            with self._write() as conn:
                row = conn.execute(
                    "SELECT max(version) FROM edits WHERE initiative_id = ?", (initiative_id,)
                ).fetchone()
                current = int(row[0] or 0)
                if current != base_version:
                    raise VersionConflict(initiative_id, base_version, current)
                cur = conn.execute(
                    "INSERT INTO edits (initiative_id, version, user_id, username, at, note, "
                    "before_json, after_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        initiative_id,
                        current + 1,
                        user.id,
                        user.username,
                        _iso(now),
                        note,
                        json.dumps(dict(before), ensure_ascii=False, sort_keys=True),
                        json.dumps(dict(after), ensure_ascii=False, sort_keys=True),
                    ),
                )
                edit_id = int(cur.lastrowid or 0)
        except sqlite3.IntegrityError as exc:
            raise VersionConflict(
                initiative_id, base_version, self.current_version(initiative_id)
            ) from exc
        return EditRecord(
            edit_id,
            initiative_id,
            base_version + 1,
            user.username,
            now,
            note,
            dict(before),
            dict(after),
        )

    def edits(self, initiative_id: str | None = None) -> list[EditRecord]:
        """Edits oldest first (for one initiative, or all)."""
        if initiative_id is None:
            rows = self._conn().execute("SELECT * FROM edits ORDER BY id").fetchall()
        else:
            rows = (
                self._conn()
                .execute(
                    "SELECT * FROM edits WHERE initiative_id = ? ORDER BY id", (initiative_id,)
                )
                .fetchall()
            )
        return [self._edit(r) for r in rows]

    def edit_marker(self) -> tuple[int, int]:
        """(count, last id): changes whenever an edit is saved by any process."""
        row = self._conn().execute("SELECT count(*), coalesce(max(id), 0) FROM edits").fetchone()
        return int(row[0]), int(row[1])
