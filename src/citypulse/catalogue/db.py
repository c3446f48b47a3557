"""The catalogue's storage: one SQLite file (``<data_dir>/catalogue.sqlite``) with FTS5.

Why SQLite and not the DuckDB store: a DuckDB file is owned by one process (DuckDB refuses a
second one even read-only), but the catalogue is written by ``citypulse catalogue harvest``
while ``citypulse serve`` reads it. SQLite in WAL mode lets many readers run beside one writer
across processes, and FTS5 gives a ranked (BM25) full-text index in the same file, so there is
no search server to run. Facet counting and sorting run on an in-memory snapshot
(``search.SearchIndex``) rebuilt when the ``generation`` counter here changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import zstandard

from citypulse.catalogue.model import (
    Package,
    extras_dict,
    facet_values,
    normalize_group,
    normalize_organization,
    normalize_package,
    now_ckan,
    search_text,
)

FTS_COLUMNS = ("name", "title", "tags", "notes", "org", "res")
# BM25 weights per FTS column: a hit in the title counts most, then tags and the name.
FTS_WEIGHTS = (4.0, 10.0, 5.0, 1.0, 2.0, 1.0)
LOCAL_SOURCE = "citypulse"
_VOLATILE = ("metadata_modified", "metadata_created", "id", "owner_org")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES ('generation', '0');
CREATE TABLE IF NOT EXISTS package(
    rid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    metadata_modified TEXT NOT NULL,
    metadata_created TEXT NOT NULL,
    title_sort TEXT NOT NULL,
    num_resources INTEGER NOT NULL,
    num_tags INTEGER NOT NULL,
    digest TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS package_source ON package(source, name);
CREATE TABLE IF NOT EXISTS facet(rid INTEGER NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS facet_rid ON facet(rid);
CREATE TABLE IF NOT EXISTS resource(id TEXT PRIMARY KEY, rid INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS resource_rid ON resource(rid);
CREATE TABLE IF NOT EXISTS organization(
    name TEXT PRIMARY KEY, id TEXT NOT NULL, data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS grp(name TEXT PRIMARY KEY, id TEXT NOT NULL, data BLOB NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS package_fts USING fts5(
    name, title, tags, notes, org, res,
    tokenize = 'porter unicode61 remove_diacritics 2'
);
-- The short, telling columns again, alone: their doclists are a fraction of the full
-- index's, so the per-column matches that rank results stay cheap (see search._scores).
CREATE VIRTUAL TABLE IF NOT EXISTS package_short USING fts5(
    title, tags, nameorg,
    tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TABLE IF NOT EXISTS harvest_source(key TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS harvest_todo(
    source TEXT NOT NULL, name TEXT NOT NULL, modified TEXT,
    PRIMARY KEY (source, name)
);
"""


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def pack(pkg: Mapping[str, Any]) -> bytes:
    """A package as stored: zstd-compressed JSON (CKAN's package shape is verbose: ~4 KB of
    JSON a dataset shrinks about 4x, which keeps 50 000 datasets well inside the page cache)."""
    return zstandard.ZstdCompressor(level=3).compress(orjson.dumps(pkg))


def unpack(blob: bytes) -> Any:
    if blob[:4] == _ZSTD_MAGIC:
        return orjson.loads(zstandard.ZstdDecompressor().decompress(blob))
    return orjson.loads(blob)


def digest(pkg: Mapping[str, Any]) -> str:
    """Content hash without timestamps and ids: an unchanged dataset is not rewritten."""
    body = {k: v for k, v in pkg.items() if k not in _VOLATILE}
    body["resources"] = [
        {k: v for k, v in r.items() if k not in ("package_id", "created", "metadata_modified")}
        for r in body.get("resources") or [] if isinstance(r, dict)
    ]
    if isinstance(body.get("organization"), dict):
        body["organization"] = {k: v for k, v in body["organization"].items() if k != "created"}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


class CatalogueDB:
    """Thread-safe access to the catalogue file: one connection per thread (SQLite
    connections must not be shared between threads; the web app reads from a pool)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._merged: dict[tuple[str, str], bytes] = {}
        conn = self.conn()
        with conn:
            conn.executescript(_SCHEMA)

    # --- connections ---------------------------------------------------------------------

    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA cache_size=-32000")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction that bumps ``generation`` (readers then refresh)."""
        with self._write_lock:
            conn = self.conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute(
                    "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'"
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                self._merged.clear()
                raise

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.ProgrammingError):  # another thread's
                    conn.close()
            self._all.clear()
        self._local = threading.local()

    def generation(self) -> int:
        row = self.conn().execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0]) if row else 0

    # --- packages ----------------------------------------------------------------------

    def upsert_packages(
        self, packages: Iterable[Mapping[str, Any]], *, source: str, keep_times: bool = False
    ) -> int:
        """Insert or update packages; returns how many changed. A package whose content is
        unchanged is left alone. ``keep_times``: the package's ``metadata_modified`` is ours
        to set (local datasets): it changes only when the content does."""
        changed = 0
        with self.write() as conn:
            for raw in packages:
                pkg = normalize_package(raw)
                if self._upsert_one(conn, pkg, source=source, keep_times=keep_times):
                    changed += 1
        return changed

    def _upsert_one(
        self, conn: sqlite3.Connection, pkg: Package, *, source: str, keep_times: bool
    ) -> bool:
        dig = digest(pkg)
        row = conn.execute(
            "SELECT rid, id, digest, metadata_created, metadata_modified, source "
            "FROM package WHERE name = ?",
            (pkg["name"],),
        ).fetchone()
        if row is not None and row[2] == dig and row[5] == source:
            return False
        if row is not None:
            rid = int(row[0])
            if keep_times:
                pkg["id"] = row[1]
                pkg["metadata_created"] = row[3]
                pkg["metadata_modified"] = now_ckan()
            self._delete_rid(conn, rid, keep_row=True)
        elif keep_times:
            pkg["metadata_modified"] = pkg["metadata_created"] = now_ckan()
        for r in pkg["resources"]:
            r["package_id"] = pkg["id"]
        title_sort = str(pkg.get("title") or pkg["name"]).casefold()
        values = (
            pkg["id"], pkg["name"], source, pkg["metadata_modified"], pkg["metadata_created"],
            title_sort, pkg["num_resources"], pkg["num_tags"], dig, pack(pkg),
        )
        if row is None:
            # A renamed dataset keeps its id: drop the row under the old name first.
            old = conn.execute("SELECT rid FROM package WHERE id = ?", (pkg["id"],)).fetchone()
            if old is not None:
                self._delete_rid(conn, int(old[0]))
            cur = conn.execute(
                "INSERT INTO package(id, name, source, metadata_modified, metadata_created, "
                "title_sort, num_resources, num_tags, digest, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            rid = int(cur.lastrowid or 0)
        else:
            clash = conn.execute(
                "SELECT rid FROM package WHERE id = ? AND rid != ?", (pkg["id"], rid)
            ).fetchone()
            if clash is not None:
                self._delete_rid(conn, int(clash[0]))
            conn.execute(
                "UPDATE package SET id=?, name=?, source=?, metadata_modified=?, "
                "metadata_created=?, title_sort=?, num_resources=?, num_tags=?, digest=?, "
                "data=? WHERE rid=?",
                (*values, rid),
            )
        facets = facet_values(pkg)
        rows = [(rid, field, v) for field, vals in facets.items() for v in vals]
        for key, value in extras_dict(pkg).items():
            if value is not None and not isinstance(value, (dict, list)):
                rows.append((rid, f"extras_{key}", str(value)[:200]))
        conn.executemany("INSERT INTO facet(rid, field, value) VALUES (?, ?, ?)", rows)
        conn.executemany(
            "INSERT OR REPLACE INTO resource(id, rid) VALUES (?, ?)",
            [(r["id"], rid) for r in pkg["resources"]],
        )
        text = search_text(pkg)
        conn.execute(
            "INSERT INTO package_fts(rowid, name, title, tags, notes, org, res) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (rid, *(text[c] for c in FTS_COLUMNS)),
        )
        conn.execute(
            "INSERT INTO package_short(rowid, title, tags, nameorg) VALUES (?, ?, ?, ?)",
            (rid, text["title"], text["tags"], text["name"] + " \n" + text["org"]),
        )
        if isinstance(pkg.get("organization"), Mapping):
            self._merge_group(conn, "organization", normalize_organization(pkg["organization"]))
        for g in pkg["groups"]:
            self._merge_group(conn, "grp", normalize_group(g))
        return True

    def _delete_rid(self, conn: sqlite3.Connection, rid: int, keep_row: bool = False) -> None:
        conn.execute("DELETE FROM facet WHERE rid = ?", (rid,))
        conn.execute("DELETE FROM resource WHERE rid = ?", (rid,))
        conn.execute("DELETE FROM package_fts WHERE rowid = ?", (rid,))
        conn.execute("DELETE FROM package_short WHERE rowid = ?", (rid,))
        if not keep_row:
            conn.execute("DELETE FROM package WHERE rid = ?", (rid,))

    def delete_packages(self, names: Iterable[str]) -> int:
        n = 0
        with self.write() as conn:
            for name in names:
                row = conn.execute("SELECT rid FROM package WHERE name = ?", (name,)).fetchone()
                if row is not None:
                    self._delete_rid(conn, int(row[0]))
                    n += 1
        return n

    def _merge_group(self, conn: sqlite3.Connection, table: str, new: dict[str, Any]) -> None:
        # Thousands of datasets name the same publisher: skip merging an identical record.
        cache_key = (table, str(new["name"]))
        body = orjson.dumps({k: v for k, v in new.items() if k != "created"},
                            option=orjson.OPT_SORT_KEYS)
        if self._merged.get(cache_key) == body:
            return
        self._merged[cache_key] = body
        row = conn.execute(f"SELECT data FROM {table} WHERE name = ?", (new["name"],)).fetchone()
        if row is not None:
            old = orjson.loads(row[0])
            merged = {**old, **{k: v for k, v in new.items() if v not in (None, "", {}, [])}}
            for key in ("title_translated", "description_translated"):
                if isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
                    merged[key] = {**old[key], **{k: v for k, v in new[key].items() if v}}
            merged["id"] = old.get("id", new["id"])
            if merged == old:
                return
            new = merged
        conn.execute(
            f"INSERT OR REPLACE INTO {table}(name, id, data) VALUES (?, ?, ?)",
            (new["name"], new["id"], orjson.dumps(new)),
        )

    def upsert_groups(self, groups: Iterable[Mapping[str, Any]], *, organizations: bool) -> None:
        table = "organization" if organizations else "grp"
        norm = normalize_organization if organizations else normalize_group
        with self.write() as conn:
            for g in groups:
                self._merge_group(conn, table, norm(g))

    # --- reads -------------------------------------------------------------------------

    def package(self, name_or_id: str) -> Package | None:
        row = self.conn().execute(
            "SELECT data FROM package WHERE name = ? OR id = ? LIMIT 1", (name_or_id, name_or_id)
        ).fetchone()
        return unpack(row[0]) if row else None

    def packages_by_rid(self, rids: Sequence[int]) -> list[Package]:
        if not rids:
            return []
        marks = ",".join("?" * len(rids))
        rows = self.conn().execute(
            f"SELECT rid, data FROM package WHERE rid IN ({marks})", list(rids)
        ).fetchall()
        by_rid = {int(r[0]): r[1] for r in rows}
        return [unpack(by_rid[r]) for r in rids if r in by_rid]

    def package_names(self, *, limit: int | None = None, offset: int = 0) -> list[str]:
        sql = "SELECT name FROM package ORDER BY name"
        args: tuple[int, ...] = ()
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            args = (limit, offset)
        elif offset:
            sql += " LIMIT -1 OFFSET ?"
            args = (offset,)
        return [r[0] for r in self.conn().execute(sql, args)]

    def source_packages(self, source: str) -> dict[str, str]:
        """name -> metadata_modified of the packages a source gave us."""
        return dict(
            self.conn().execute(
                "SELECT name, metadata_modified FROM package WHERE source = ?", (source,)
            ).fetchall()
        )

    def count(self) -> int:
        return int(self.conn().execute("SELECT count(*) FROM package").fetchone()[0])

    def resource(self, resource_id: str) -> tuple[Package, dict[str, Any]] | None:
        row = self.conn().execute(
            "SELECT p.data FROM resource r JOIN package p ON p.rid = r.rid WHERE r.id = ?",
            (resource_id,),
        ).fetchone()
        if row is None:
            return None
        pkg = unpack(row[0])
        for res in pkg["resources"]:
            if res["id"] == resource_id:
                return pkg, res
        return None

    def groups(self, *, organizations: bool) -> list[dict[str, Any]]:
        table = "organization" if organizations else "grp"
        return [orjson.loads(r[0]) for r in self.conn().execute(
            f"SELECT data FROM {table} ORDER BY name"
        )]

    def group(self, name_or_id: str, *, organizations: bool) -> dict[str, Any] | None:
        table = "organization" if organizations else "grp"
        row = self.conn().execute(
            f"SELECT data FROM {table} WHERE name = ? OR id = ? LIMIT 1", (name_or_id, name_or_id)
        ).fetchone()
        return orjson.loads(row[0]) if row else None

    def fts(self, match: str, *, scored: bool, short: bool = False) -> tuple[Any, Any]:
        """Run one FTS5 query: (rowids, scores) as numpy arrays, higher score = better;
        scores are zeros when not ``scored``. ``short``: query the title/tags/name index.
        Ids come back as one ``group_concat`` string:
        building 25 000 Python row tuples costs 5x more than the match itself."""
        import numpy as np

        conn = self.conn()
        if scored:
            weights = ", ".join(str(w) for w in FTS_WEIGHTS)
            row = conn.execute(
                f"SELECT group_concat(rowid), group_concat(-bm25(package_fts, {weights})) "
                "FROM package_fts WHERE package_fts MATCH ?", (match,)
            ).fetchone()
            return _ints(row[0]), _floats(row[1])
        table = "package_short" if short else "package_fts"
        row = conn.execute(
            f"SELECT group_concat(rowid) FROM {table} WHERE {table} MATCH ?", (match,)
        ).fetchone()
        rids = _ints(row[0])
        return rids, np.zeros(len(rids), dtype=np.float64)

    # --- harvest state -------------------------------------------------------------------

    def source_state(self, key: str) -> dict[str, Any]:
        row = self.conn().execute(
            "SELECT data FROM harvest_source WHERE key = ?", (key,)
        ).fetchone()
        return orjson.loads(row[0]) if row else {}

    def sources(self) -> dict[str, dict[str, Any]]:
        return {
            r[0]: orjson.loads(r[1])
            for r in self.conn().execute("SELECT key, data FROM harvest_source ORDER BY key")
        }

    def save_source_state(self, key: str, state: Mapping[str, Any]) -> None:
        with self._write_lock:
            conn = self.conn()
            conn.execute(
                "INSERT OR REPLACE INTO harvest_source(key, data) VALUES (?, ?)",
                (key, orjson.dumps(dict(state))),
            )

    def set_todo(self, source: str, items: Iterable[tuple[str, str | None]]) -> None:
        with self._write_lock:
            conn = self.conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM harvest_todo WHERE source = ?", (source,))
                conn.executemany(
                    "INSERT OR REPLACE INTO harvest_todo(source, name, modified) VALUES (?, ?, ?)",
                    [(source, n, m) for n, m in items],
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def todo(self, source: str) -> list[tuple[str, str | None]]:
        return [
            (r[0], r[1])
            for r in self.conn().execute(
                "SELECT name, modified FROM harvest_todo WHERE source = ? ORDER BY name",
                (source,),
            )
        ]

    def harvested(
        self, source: str, packages: Sequence[Mapping[str, Any]], done: Sequence[str]
    ) -> int:
        """Store a harvested batch and tick its names off the to-do list in one transaction,
        so an interrupted harvest resumes exactly where it stopped."""
        changed = 0
        with self.write() as conn:
            for raw in packages:
                pkg = normalize_package(raw)
                if self._upsert_one(conn, pkg, source=source, keep_times=False):
                    changed += 1
            conn.executemany(
                "DELETE FROM harvest_todo WHERE source = ? AND name = ?",
                [(source, n) for n in done],
            )
        return changed

    def owner_of(self, name: str) -> str | None:
        row = self.conn().execute("SELECT source FROM package WHERE name = ?", (name,)).fetchone()
        return str(row[0]) if row else None


def _ints(text: str | None) -> Any:
    import numpy as np

    if not text:
        return np.zeros(0, dtype=np.int64)
    return np.fromstring(text, dtype=np.int64, sep=",")  # text mode: not deprecated


def _floats(text: str | None) -> Any:
    import numpy as np

    if not text:
        return np.zeros(0, dtype=np.float64)
    return np.fromstring(text, dtype=np.float64, sep=",")
