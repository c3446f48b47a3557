"""``citypulse backup`` / ``citypulse restore``: the embedded store and everything else in the
data folder (portal, catalogue, sensors and backfill SQLite files, the raw archive, rules and
logs), as one folder with a checksummed manifest.

How each part is copied, and why:

* **DuckDB store**: ``EXPORT DATABASE`` to Parquet (zstd) + ``schema.sql``. One statement is
  one transaction, so the export is a consistent snapshot even while ingest appends (MVCC);
  Parquet is compact and readable by any DuckDB version or tool, unlike the native file, whose
  format belongs to one DuckDB release line. Copying the ``.duckdb`` file of a running store
  is NOT safe (a checkpoint may be half-written; the WAL holds the newest commits).
* **The store while ``citypulse serve`` runs**: DuckDB lets one process open the file (even
  read-only), so only the server can read it. ``serve`` therefore offers
  ``POST /api/v1/admin/backup``: it runs the export inside the owning process into
  ``<data_dir>/backups/`` and answers with the folder name; ``citypulse backup`` finds the
  server and its token in ``<data_dir>/.admin-token.json`` (written at start-up, mode 0600,
  deleted at shutdown) and moves the export into the backup. Authorisation is access to the
  data folder (the same access an offline backup needs), with no dependency on portal
  accounts; the endpoint takes no path from the client and exists only while ``serve`` has
  published a token. The alternative, "stop serve, back up, start again", costs downtime and
  live data; it remains what ``restore`` requires.
* **SQLite files**: the SQLite online backup API (consistent while the portal writes).
* **Everything else** (archive, YAML rules, JSONL logs): copied. The archive is append-only
  and written before a payload is stored, and it is copied after the store, so every payload
  in the backed-up store has its raw file in the backup.
* A PostgreSQL store is not in the folder: back it up with ``pg_dump`` (the manifest says so).

Restore verifies every checksum before touching anything, refuses to overwrite existing data
without ``--force`` and refuses while the store is open by another process.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Header, HTTPException, Request

from citypulse import __version__
from citypulse.config import Settings

FORMAT = "citypulse-backup/1"
MANIFEST = "manifest.json"
TOKEN_FILE = ".admin-token.json"
BACKUPS_DIR = "backups"
STORE_DIR = "store"
DATA_DIR = "data"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_SIDE_FILES = ("-wal", "-shm", "-journal", ".wal", ".tmp")
_COPY_FROM = re.compile(r"COPY\s+(?P<table>\S+)\s+FROM\s+'(?P<path>[^']+)'", re.IGNORECASE)


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says what to do."""


@dataclass
class BackupReport:
    dest: Path
    store: str
    files: int = 0
    bytes: int = 0
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [
            f"backup {self.dest}: {self.files} files, {self.bytes / 1e6:.1f} MB, "
            f"store {self.store}, {self.elapsed_s:.1f} s"
        ]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass
class RestoreReport:
    source: Path
    store: str
    files: int = 0
    elapsed_s: float = 0.0

    def __str__(self) -> str:
        return (
            f"restored {self.source}: {self.files} files, store {self.store}, "
            f"{self.elapsed_s:.1f} s"
        )


# --- helpers -------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(16) == _SQLITE_MAGIC
    except OSError:
        return False


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def _store_files(settings: Settings) -> set[Path]:
    if is_postgres(settings.store_url):
        return set()
    path = Path(settings.store_url).expanduser().resolve()
    return {path, path.with_name(path.name + ".wal")}


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


# --- the store -----------------------------------------------------------------------------


def export_duckdb(con: Any, dest: Path) -> None:
    """``EXPORT DATABASE`` of an open DuckDB connection (or cursor) into ``dest`` (created).
    A fresh cursor, so it reads a committed snapshot and never waits for the writer."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    cursor = con.cursor()
    try:
        cursor.execute(f"EXPORT DATABASE '{_sql_path(dest)}' (FORMAT parquet, COMPRESSION zstd)")
    finally:
        cursor.close()


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def export_store(store: Any, dest: Path) -> None:
    """Export an open :class:`~citypulse.store.duckdb.DuckDBStore` (uses its connection: the
    store has no export method of its own)."""
    con = getattr(store, "_con", None)
    if con is None:
        raise BackupError(f"{type(store).__name__} cannot be exported here (use pg_dump)")
    export_duckdb(con, dest)


def export_store_file(path: str, dest: Path) -> None:
    """Export a DuckDB store file that no process holds open."""
    import duckdb

    try:
        con = duckdb.connect(path, read_only=True)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise StoreBusy(path) from exc
        raise
    try:
        export_duckdb(con, dest)
    finally:
        con.close()


class StoreBusy(BackupError):
    def __init__(self, path: str) -> None:
        super().__init__(f"the DuckDB store {path} is open in another process")
        self.path = path


def import_store(export_dir: Path, target: Path) -> None:
    """Build a DuckDB file at ``target`` from an export (schema, then each table's Parquet
    file, found by name inside ``export_dir`` wherever the export was written)."""
    import duckdb

    schema = (export_dir / "schema.sql").read_text(encoding="utf-8")
    load = (export_dir / "load.sql").read_text(encoding="utf-8")
    con = duckdb.connect(str(target))
    try:
        con.execute("BEGIN")
        for statement in _statements(schema):
            con.execute(statement)
        for m in _COPY_FROM.finditer(load):
            source = export_dir / Path(m["path"]).name
            if not source.is_file():
                raise BackupError(f"{export_dir}: {source.name} named in load.sql is missing")
            con.execute(f"COPY {m['table']} FROM '{_sql_path(source)}' (FORMAT parquet)")
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
    finally:
        con.close()


def _statements(sql: str) -> list[str]:
    """schema.sql split into statements (DuckDB writes one per line, ending with ';')."""
    out, current = [], []
    for line in sql.splitlines():
        current.append(line)
        if line.rstrip().endswith(";"):
            out.append("\n".join(current))
            current = []
    if "".join(current).strip():
        out.append("\n".join(current))
    return [s for s in out if s.strip()]


# --- the online path: an endpoint inside `citypulse serve` ---------------------------------

router = APIRouter(include_in_schema=False)


@router.post("/api/v1/admin/backup")
def backup_endpoint(
    request: Request, authorization: str | None = Header(None)
) -> dict[str, Any]:
    """Export the store inside the process that owns it (see the module docstring)."""
    expected: str | None = getattr(request.app.state, "admin_token", None)
    if not expected:
        raise HTTPException(404, "Not Found")
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(401, "bad or missing token", {"WWW-Authenticate": "Bearer"})
    settings: Settings = request.app.state.settings
    name = f".partial-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
    dest = settings.data_dir / BACKUPS_DIR / name / STORE_DIR
    started = time.monotonic()
    try:
        export_store(request.app.state.store, dest)
    except BackupError as exc:
        raise HTTPException(409, str(exc)) from exc
    return {"dir": name, "elapsed_s": round(time.monotonic() - started, 3)}


def publish_token(app: Any, settings: Settings, url: str) -> Path:
    """Enable the endpoint for this server and tell local CLIs how to reach it."""
    token = secrets.token_urlsafe(32)
    app.state.admin_token = token
    path = settings.data_dir / TOKEN_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "token": token, "pid": os.getpid()}, f)
    return path


def withdraw_token(app: Any, settings: Settings) -> None:
    app.state.admin_token = None
    path = settings.data_dir / TOKEN_FILE
    with contextlib.suppress(OSError):
        info = json.loads(path.read_text())
        if info.get("pid") == os.getpid():
            path.unlink()


def _export_via_server(settings: Settings, dest: Path, timeout_s: float) -> None:
    import httpx

    token_path = settings.data_dir / TOKEN_FILE
    try:
        info = json.loads(token_path.read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(
            f"the store {settings.store_url} is open in another process that offers no "
            f"backup endpoint ({token_path} not found): stop it, or run `citypulse serve` "
            "(it publishes one), then retry"
        ) from exc
    url = str(info["url"]).rstrip("/") + "/api/v1/admin/backup"
    try:
        r = httpx.post(
            url, headers={"Authorization": f"Bearer {info['token']}"}, timeout=timeout_s
        )
    except httpx.HTTPError as exc:
        raise BackupError(f"cannot reach the running server at {url}: {exc}") from exc
    if r.status_code != 200:
        raise BackupError(f"the running server refused the backup: {r.status_code} {r.text}")
    name = str(r.json()["dir"])
    if not re.fullmatch(r"\.partial-[0-9TZ]+-[0-9a-f]+", name):
        raise BackupError(f"unexpected export folder name {name!r}")
    partial = settings.data_dir / BACKUPS_DIR / name
    shutil.move(str(partial / STORE_DIR), str(dest))
    shutil.rmtree(partial, ignore_errors=True)


# --- backup --------------------------------------------------------------------------------


def backup(
    settings: Settings,
    dest: Path,
    *,
    include_archive: bool = True,
    store: Any = None,
    server_timeout_s: float = 3600.0,
) -> BackupReport:
    """Back up the store and the data folder into ``dest`` (must not exist or be empty).

    ``store``: an open DuckDB store of this process to export directly (tests, embedding);
    otherwise the file is opened, or, when another process holds it, exported through that
    server's endpoint."""
    started = time.monotonic()
    dest = dest.resolve()
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} exists and is not empty: pick a new folder")
    data_dir = settings.data_dir.resolve()
    inside = dest == data_dir or data_dir in dest.parents
    if inside and (data_dir / BACKUPS_DIR) not in dest.parents:
        raise BackupError(
            f"{dest} is inside the data folder: put backups elsewhere or under "
            f"{data_dir / BACKUPS_DIR}"
        )
    dest.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    store_url = settings.store_url
    work = dest / STORE_DIR
    # 1. the store first (see the module docstring on ordering)
    if is_postgres(store_url):
        method = "not included (PostgreSQL: use pg_dump)"
        notes.append("the PostgreSQL store is not in this backup: back it up with pg_dump")
    elif store is not None:
        export_store(store, work)
        method = "export (this process)"
    else:
        try:
            if not Path(store_url).exists():
                raise BackupError(f"no store at {store_url}")
            export_store_file(store_url, work)
            method = "export (offline)"
        except StoreBusy:
            _export_via_server(settings, work, server_timeout_s)
            method = "export (through the running server)"
    # 2. the data folder: SQLite through its backup API, the rest copied
    skip = _store_files(settings)
    skip.add((data_dir / TOKEN_FILE).resolve())
    for path in _walk(data_dir):
        resolved = path.resolve()
        rel = path.relative_to(data_dir)
        if resolved in skip or rel.parts[0] == BACKUPS_DIR or dest in resolved.parents:
            continue
        if not include_archive and rel.parts[0] == settings.archive_dir.name:
            continue
        if path.name.endswith(_SIDE_FILES):  # journals, WALs, temp files being written
            continue
        target = dest / DATA_DIR / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if _is_sqlite(path):
                _sqlite_backup(path, target)
            else:
                shutil.copy2(path, target)
        except FileNotFoundError:  # removed or renamed since the walk listed it
            continue
    if not include_archive:
        notes.append("raw archive not included (--no-archive)")
    report = BackupReport(dest, method, notes=notes)
    _write_manifest(dest, settings, method, notes, report)
    report.elapsed_s = time.monotonic() - started
    return report


def _sqlite_backup(source: Path, target: Path) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def _write_manifest(
    dest: Path, settings: Settings, method: str, notes: list[str], report: BackupReport
) -> None:
    import duckdb

    files = []
    for path in _walk(dest):
        if path.name == MANIFEST:
            continue
        size = path.stat().st_size
        files.append({"path": path.relative_to(dest).as_posix(), "bytes": size,
                      "sha256": _sha256(path)})
        report.files += 1
        report.bytes += size
    manifest = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "citypulse": __version__,
        "duckdb": duckdb.__version__,
        "store": {"url": settings.store_url, "method": method,
                  "included": (dest / STORE_DIR).is_dir()},
        "notes": notes,
        "files": files,
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")


# --- restore -------------------------------------------------------------------------------


def verify(source: Path) -> dict[str, Any]:
    """Read the manifest and check every file's size and checksum; BackupError if not."""
    try:
        manifest: dict[str, Any] = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"{source} has no readable {MANIFEST}: not a citypulse backup") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{source}: unknown backup format {manifest.get('format')!r}")
    bad = []
    for entry in manifest["files"]:
        rel = Path(entry["path"])
        if rel.is_absolute() or ".." in rel.parts:
            raise BackupError(f"{source}: unsafe path {entry['path']!r} in the manifest")
        path = source / rel
        intact = (
            path.is_file()
            and path.stat().st_size == entry["bytes"]
            and _sha256(path) == entry["sha256"]
        )
        if not intact:
            bad.append(entry["path"])
    if bad:
        raise BackupError(f"{source}: {len(bad)} file(s) missing or corrupt, e.g. {bad[:3]}")
    return manifest


def restore(settings: Settings, source: Path, *, force: bool = False) -> RestoreReport:
    """Restore a backup into ``settings``' data folder and store. The server must be stopped."""
    started = time.monotonic()
    source = source.resolve()
    manifest = verify(source)
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    store_url = settings.store_url
    has_store = bool(manifest["store"].get("included"))
    if has_store and is_postgres(store_url):
        raise BackupError("this backup holds a DuckDB store; --store is a PostgreSQL URL")
    entries = [Path(e["path"]) for e in manifest["files"]]
    data_files = [p for p in entries if p.parts[0] == DATA_DIR]
    archive = settings.archive_dir.name
    store_path = Path(store_url).expanduser() if has_store else None
    # Archive files are content-addressed: restoring over the same names merges, no clash.
    clash = [
        data_dir / Path(*p.parts[1:])
        for p in data_files
        if p.parts[1] != archive and (data_dir / Path(*p.parts[1:])).exists()
    ]
    if store_path is not None and store_path.exists():
        clash.append(store_path)
    if clash and not force:
        raise BackupError(
            f"{len(clash)} file(s) would be overwritten, e.g. {clash[0]}: pass --force "
            "(after stopping citypulse) to replace them"
        )
    if store_path is not None:
        _check_not_open(store_path)
        tmp = store_path.with_name(store_path.name + ".restoring")
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)
        store_path.parent.mkdir(parents=True, exist_ok=True)
        import_store(source / STORE_DIR, tmp)
        from citypulse.store.duckdb import DuckDBStore

        DuckDBStore(str(tmp)).close()  # the schema is one this citypulse can open
        store_path.with_name(store_path.name + ".wal").unlink(missing_ok=True)
        os.replace(tmp, store_path)
    for rel in data_files:
        target = data_dir / Path(*rel.parts[1:])
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp_target = target.with_name(target.name + ".restoring")
        shutil.copy2(source / rel, tmp_target)
        for side in ("-wal", "-shm", "-journal"):
            target.with_name(target.name + side).unlink(missing_ok=True)
        os.replace(tmp_target, target)
    return RestoreReport(source, "restored" if has_store else "not in backup",
                         files=len(entries), elapsed_s=time.monotonic() - started)


def _check_not_open(store_path: Path) -> None:
    if not store_path.exists():
        return
    import duckdb

    try:
        duckdb.connect(str(store_path), read_only=True).close()
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise BackupError(
                f"{store_path} is open in another process: stop citypulse serve first"
            ) from exc
        raise
