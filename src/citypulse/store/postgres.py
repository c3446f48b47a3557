"""Scale-out store: the store protocol on PostgreSQL 15 (psycopg 3), shared by many processes.

Design choices (``benchmarks/bench_scaleout.py`` measures them side by side with DuckDB):

* ``observations`` is range-partitioned by day on ``ts``. With the pg_partman extension
  (Debian ``postgresql-15-partman``) partman owns the partition set (``create_parent`` premakes
  the coming days, ``create_partition_time`` adds older days); without it (no package, or no
  right to ``CREATE EXTENSION``) the store creates native declarative partitions itself.
  Either way a batch's days are created *before* its rows are written, so nothing ever lands
  in a default partition (which would block creating that day later). ``partitioning`` says
  which one a database uses; the choice is made once, at schema creation.
* Indexes: the primary key ``(entity_id, metric, ts)`` is the btree the design asks for
  (entity, time) with the metric in between, because every read names one metric and the
  key is needed anyway for idempotent ``ON CONFLICT DO NOTHING``; a separate
  ``(entity_id, ts)`` index measured no faster for one link's series and costs a second
  index on every write. A BRIN index on ``ts`` (a few pages per partition) serves sub-day
  ranges across all entities.
* Ingest: a batch is sent with binary ``COPY`` into a session temp table (timestamps as
  epoch microseconds, converted in SQL), then one statement inserts it with
  ``ON CONFLICT DO NOTHING`` and, from the rows it really inserted (``RETURNING``), upserts
  ``latest`` and the hourly rollups. First occurrence of a repeated key wins: the temp table
  is scanned in COPY order (temp tables are never scanned in parallel or synchronised).
* ``observations_hourly`` keeps count/sum/min/max per entity, metric and hour, maintained in
  the same transaction, so hour-aligned aggregates and ``count_observations`` never scan raw
  history.
* The same payload appended concurrently by two processes is serialised on an advisory lock
  keyed by its sha256, so the second sees it stored (``duplicate``).
* Connections: one writer connection (writes are serialised per process, as in DuckDB) and a
  small pool of autocommit reader connections for the web's thread pool. A lost connection
  (server restart, failover) is re-opened and the whole batch transaction retried until
  ``reconnect_s`` has passed; idempotence makes a retry after an unacknowledged commit safe.
* Ingest exclusivity: :class:`FeedLeases` holds one session advisory lock per feed, so only
  one ``citypulse ingest`` process polls a feed; the lock dies with its connection.

All timestamps are ``timestamptz`` and every session runs in UTC.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import orjson
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.types.json import Jsonb, set_json_dumps, set_json_loads
from psycopg_pool import ConnectionPool

from citypulse.model import OBSERVATION_SCHEMA, Batch, Entity, Event, utc
from citypulse.store.base import (
    AggregatePoint,
    AppendResult,
    FeedHealth,
    LatestValue,
    PayloadRecord,
    SeriesPoint,
)

__all__ = [
    "SCHEMA_VERSION",
    "FeedLeases",
    "PostgresStore",
    "StoreConnectionError",
    "StoreUnavailableError",
    "redact",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
PAYLOAD_STATUSES = frozenset({"stored", "duplicate", "quarantined"})
T = TypeVar("T")
Conn = psycopg.Connection[tuple[Any, ...]]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)
# Query parameters of a store URL that are citypulse's, not libpq's.
_OWN_PARAMS = ("pool_max", "reconnect_s")
# Advisory lock keys (64-bit, via hashtextextended); payload and feed locks use their own text.
_MIGRATE_LOCK = "citypulse.migrate"
_PARTITION_LOCK = "citypulse.partitions"
# Feed leases are per schema: two installations in one database never block each other.
_LEASE_KEY = "hashtextextended(current_schema() || '/' || %s, 0)"
_ENTITY_CACHE_MAX = 200_000
_PARTITIONS_PER_TRANSACTION = 16
# A day with at least this many rows in one batch, and no partition yet, takes the bulk path.
_BULK_DAY_ROWS = 20_000


class StoreConnectionError(RuntimeError):
    """The store URL is malformed or the server cannot be reached at start-up."""


class StoreUnavailableError(RuntimeError):
    """The server stayed unreachable for longer than ``reconnect_s`` during operation."""


def redact(url: str) -> str:
    """The URL without its password, for messages and logs (also for malformed URLs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    userinfo, at, hostport = parts.netloc.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if not at or not colon:
        return url
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))


def _split_url(url: str) -> tuple[str, dict[str, str]]:
    """(libpq URL, citypulse options) — libpq refuses query parameters it does not know.
    The rest of the query is passed on byte for byte (libpq percent-decodes it itself)."""
    parts = urlsplit(url)
    own: dict[str, str] = {}
    rest: list[str] = []
    for item in parts.query.split("&") if parts.query else []:
        key, _, value = item.partition("=")
        if key in _OWN_PARAMS:
            own[key] = unquote(value)
        else:
            rest.append(item)
    return urlunsplit(parts._replace(query="&".join(rest))), own


def _is_connection_error(exc: BaseException, conn: Conn | None) -> bool:
    """A lost or refused connection (worth reconnecting), not a bad statement."""
    if isinstance(exc, psycopg.InterfaceError):
        return True
    if conn is not None and (conn.closed or conn.broken):
        return True
    return isinstance(
        exc,
        pg_errors.AdminShutdown | pg_errors.CrashShutdown | pg_errors.CannotConnectNow,
    ) or (isinstance(exc, psycopg.OperationalError) and conn is None)


def _epoch_us(ts: datetime) -> int:
    delta = utc(ts) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _bucket(bucket: timedelta) -> timedelta:
    if bucket <= timedelta(0):
        raise ValueError(f"bucket must be positive, got {bucket}")
    return bucket


def _hour_aligned(*instants: datetime) -> bool:
    return all(_epoch_us(t) % 3_600_000_000 == 0 for t in instants)


def _json_dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def _configure(conn: Conn) -> None:
    """Every session: UTC, orjson for jsonb."""
    set_json_dumps(_json_dumps, conn)
    set_json_loads(orjson.loads, conn)
    conn.execute("SET TIME ZONE 'UTC'")
    if not conn.autocommit:
        conn.commit()


# -- schema ----------------------------------------------------------------------------------

_MERGE_PATCH = """
CREATE OR REPLACE FUNCTION cp_merge_patch(target jsonb, patch jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $fn$
-- RFC 7396 JSON merge patch, as DuckDB's json_merge_patch: a feed that knows less about an
-- entity's properties adds and replaces keys without erasing the others; null deletes.
DECLARE
    k text;
    v jsonb;
    result jsonb;
BEGIN
    IF patch IS NULL THEN
        RETURN target;
    END IF;
    IF jsonb_typeof(patch) <> 'object' THEN
        RETURN patch;
    END IF;
    IF target IS NULL OR jsonb_typeof(target) <> 'object' THEN
        result := '{}'::jsonb;
    ELSE
        result := target;
    END IF;
    FOR k, v IN SELECT key, value FROM jsonb_each(patch) LOOP
        IF jsonb_typeof(v) = 'null' THEN
            result := result - k;
        ELSE
            result := jsonb_set(result, ARRAY[k], cp_merge_patch(result -> k, v));
        END IF;
    END LOOP;
    RETURN result;
END
$fn$
"""

# Identifier columns use the "C" collation: byte order, as DuckDB sorts, whatever the
# database's locale (and cheaper comparisons in every index).
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE cp_meta (key text COLLATE "C" PRIMARY KEY, value text NOT NULL)""",
        """CREATE TABLE entities (
            id text COLLATE "C" PRIMARY KEY,
            kind text COLLATE "C" NOT NULL,
            name_en text,
            name_zh text,
            lat double precision,
            lon double precision,
            district text,
            properties jsonb
        )""",
        "CREATE INDEX entities_kind ON entities (kind, id)",
        """CREATE TABLE observations (
            entity_id text COLLATE "C" NOT NULL,
            metric text COLLATE "C" NOT NULL,
            ts timestamptz NOT NULL,
            value double precision,
            label text,
            PRIMARY KEY (entity_id, metric, ts)
        ) PARTITION BY RANGE (ts)""",
        "CREATE INDEX observations_ts_brin ON observations USING brin (ts)",
        # Exact per-hour statistics of stored observations (n: rows, n_value: non-null values).
        """CREATE TABLE observations_hourly (
            entity_id text COLLATE "C" NOT NULL,
            metric text COLLATE "C" NOT NULL,
            hour timestamptz NOT NULL,
            n bigint NOT NULL,
            n_value bigint NOT NULL,
            sum_value double precision NOT NULL,
            min_value double precision,
            max_value double precision,
            PRIMARY KEY (entity_id, metric, hour)
        )""",
        "CREATE INDEX observations_hourly_metric_hour ON observations_hourly (metric, hour)",
        """CREATE TABLE latest (
            entity_id text COLLATE "C" NOT NULL,
            metric text COLLATE "C" NOT NULL,
            ts timestamptz NOT NULL,
            value double precision,
            label text,
            PRIMARY KEY (entity_id, metric)
        )""",
        "CREATE INDEX latest_metric ON latest (metric, entity_id)",
        """CREATE TABLE events (
            id text COLLATE "C" PRIMARY KEY,
            kind text COLLATE "C" NOT NULL,
            severity text NOT NULL,
            starts_at timestamptz NOT NULL,
            ends_at timestamptz,
            title_en text,
            title_zh text,
            body_en text,
            body_zh text,
            entity_ids text[],
            districts text[],
            source text,
            properties jsonb,
            updated_at timestamptz NOT NULL
        )""",
        "CREATE INDEX events_starts_at ON events (starts_at)",
        """CREATE TABLE payloads (
            sha256 text COLLATE "C" PRIMARY KEY,
            feed_id text COLLATE "C" NOT NULL,
            fetched_at timestamptz NOT NULL,
            status text NOT NULL,
            reason text,
            archive_path text,
            "rows" bigint NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX payloads_feed_fetched ON payloads (feed_id, fetched_at DESC)",
        "CREATE INDEX payloads_fetched ON payloads (fetched_at DESC)",
        """CREATE TABLE feed_health (
            feed_id text COLLATE "C" PRIMARY KEY,
            last_attempt timestamptz,
            last_success timestamptz,
            last_error text,
            last_error_at timestamptz,
            consecutive_failures integer NOT NULL DEFAULT 0,
            last_rows bigint NOT NULL DEFAULT 0,
            total_rows bigint NOT NULL DEFAULT 0,
            last_data_ts timestamptz
        )""",
        _MERGE_PATCH,
    ),
}

_ENTITY_COLUMNS = "id, kind, name_en, name_zh, lat, lon, district, properties"
_EVENT_COLUMNS = (
    "id, kind, severity, starts_at, ends_at, title_en, title_zh, body_en, body_zh, "
    "entity_ids, districts, source, properties"
)
_PAYLOAD_COLUMNS = 'sha256, feed_id, fetched_at, status, reason, archive_path, "rows"'
_HEALTH_COLUMNS = (
    "feed_id, last_attempt, last_success, last_error, last_error_at, consecutive_failures, "
    "last_rows, total_rows, last_data_ts"
)

_STAGE_OBSERVATIONS = """CREATE TEMP TABLE IF NOT EXISTS _cp_obs (
    entity_id text COLLATE "C", metric text COLLATE "C", ts_us bigint,
    value double precision, label text
) ON COMMIT DELETE ROWS"""

_COPY_STAGE = "COPY _cp_obs (entity_id, metric, ts_us, value, label) FROM STDIN (FORMAT binary)"
_TS_FROM_US = "(timestamptz '1970-01-01 00:00:00+00' + s.ts_us * interval '1 microsecond')"
_HOUR_OF = "date_bin('1 hour', {col}, timestamptz '1970-01-01 00:00:00+00')"

_ROLLUP_UPSERT = """
    ON CONFLICT (entity_id, metric, hour) DO UPDATE SET
        n = h.n + excluded.n,
        n_value = h.n_value + excluded.n_value,
        sum_value = h.sum_value + excluded.sum_value,
        min_value = least(h.min_value, excluded.min_value),
        max_value = greatest(h.max_value, excluded.max_value)"""
_ROLLUP_COLUMNS = (
    "INSERT INTO observations_hourly AS h "
    "(entity_id, metric, hour, n, n_value, sum_value, min_value, max_value)"
)
_ROLLUP_SELECT = f"""SELECT entity_id, metric, {_HOUR_OF.format(col="ts")}, count(*), count(value),
           coalesce(sum(value), 0), min(value), max(value)"""

# Insert new keys only, and fold the rows really inserted (RETURNING) into the hourly rollups.
_INSERT_OBSERVATIONS = f"""
WITH ins AS (
    INSERT INTO observations (entity_id, metric, ts, value, label)
    SELECT s.entity_id, s.metric, {_TS_FROM_US}, s.value, s.label FROM _cp_obs AS s
    ON CONFLICT DO NOTHING
    RETURNING entity_id, metric, ts, value
), roll AS (
    {_ROLLUP_COLUMNS}
    {_ROLLUP_SELECT}
    FROM ins GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    {_ROLLUP_UPSERT}
)
SELECT count(*) FROM ins
"""

# ``latest`` moves strictly forward to the batch's newest row per key (first occurrence at an
# equal ts). If that row was not stored because its key already was, the stored row has the
# same ts and ``latest`` already holds it, so ``excluded.ts > l.ts`` keeps it: ``latest``
# always equals the newest stored row. Hash-aggregating the stage avoids sorting the batch.
_UPSERT_LATEST = f"""
INSERT INTO latest AS l (entity_id, metric, ts, value, label)
SELECT DISTINCT ON (s.entity_id, s.metric) s.entity_id, s.metric, {_TS_FROM_US}, s.value,
       s.label
FROM _cp_obs AS s
JOIN (SELECT entity_id, metric, max(ts_us) AS ts_us FROM _cp_obs GROUP BY 1, 2) AS m
  ON m.entity_id = s.entity_id AND m.metric = s.metric AND m.ts_us = s.ts_us
ORDER BY s.entity_id, s.metric, s.ctid
ON CONFLICT (entity_id, metric) DO UPDATE SET
    ts = excluded.ts, value = excluded.value, label = excluded.label
WHERE excluded.ts > l.ts
"""

# Bulk path for a day whose partition does not exist yet: fill a standalone table sorted by
# key (first occurrence of a repeated key wins), then attach it; the CHECK constraint lets
# ATTACH skip its validation scan and the indexes are built in one sorted pass. ~3x faster
# than row-by-row index inserts, and it leaves the day clustered by entity.
_BULK_FILL = f"""
INSERT INTO {{table}} (entity_id, metric, ts, value, label)
SELECT DISTINCT ON (s.entity_id, s.metric, s.ts_us)
       s.entity_id, s.metric, {_TS_FROM_US}, s.value, s.label
FROM _cp_obs AS s WHERE s.ts_us >= %(lo)s AND s.ts_us < %(hi)s
ORDER BY s.entity_id, s.metric, s.ts_us, s.ctid
"""
_BULK_ROLLUP = f"""
{_ROLLUP_COLUMNS}
{_ROLLUP_SELECT}
FROM {{table}} GROUP BY 1, 2, 3
{_ROLLUP_UPSERT}
"""

_UPSERT_ENTITIES = f"""
INSERT INTO entities AS e ({_ENTITY_COLUMNS})
SELECT r.id, r.kind, r.name_en, r.name_zh, r.lat, r.lon, r.district, r.properties
FROM jsonb_to_recordset(%s::jsonb) AS r(
    id text, kind text, name_en text, name_zh text, lat double precision,
    lon double precision, district text, properties jsonb)
ON CONFLICT (id) DO UPDATE SET
    kind = excluded.kind,
    name_en = coalesce(excluded.name_en, e.name_en),
    name_zh = coalesce(excluded.name_zh, e.name_zh),
    lat = coalesce(excluded.lat, e.lat),
    lon = coalesce(excluded.lon, e.lon),
    district = coalesce(excluded.district, e.district),
    properties = coalesce(cp_merge_patch(e.properties, excluded.properties),
                          excluded.properties, e.properties)
"""

_UPSERT_EVENTS = f"""
INSERT INTO events AS ev ({_EVENT_COLUMNS}, updated_at)
SELECT r.id, r.kind, r.severity, r.starts_at, r.ends_at, r.title_en, r.title_zh, r.body_en,
       r.body_zh, ARRAY(SELECT jsonb_array_elements_text(r.entity_ids)),
       ARRAY(SELECT jsonb_array_elements_text(r.districts)), r.source, r.properties,
       r.updated_at
FROM jsonb_to_recordset(%s::jsonb) AS r(
    id text, kind text, severity text, starts_at timestamptz, ends_at timestamptz,
    title_en text, title_zh text, body_en text, body_zh text, entity_ids jsonb,
    districts jsonb, source text, properties jsonb, updated_at timestamptz)
ON CONFLICT (id) DO UPDATE SET
    kind = excluded.kind, severity = excluded.severity,
    -- an update (e.g. traffic news re-announced) never moves an event's start later
    starts_at = least(ev.starts_at, excluded.starts_at), ends_at = excluded.ends_at,
    title_en = excluded.title_en, title_zh = excluded.title_zh,
    body_en = excluded.body_en, body_zh = excluded.body_zh,
    entity_ids = excluded.entity_ids, districts = excluded.districts,
    source = excluded.source, properties = excluded.properties,
    updated_at = excluded.updated_at
WHERE excluded.updated_at >= ev.updated_at
"""

_STORE_PAYLOAD = f"""
INSERT INTO payloads ({_PAYLOAD_COLUMNS})
VALUES (%(sha)s, %(feed)s, %(at)s, 'stored', NULL, NULL, %(rows)s)
ON CONFLICT (sha256) DO UPDATE SET
    feed_id = excluded.feed_id, fetched_at = excluded.fetched_at, status = 'stored',
    reason = NULL, "rows" = excluded."rows"
"""

# A stored payload stays stored: a later 'duplicate' or 'quarantined' record of the same bytes
# may only add the archive path.
_RECORD_PAYLOAD = f"""
INSERT INTO payloads AS p ({_PAYLOAD_COLUMNS})
VALUES (%(sha)s, %(feed)s, %(at)s, %(status)s, %(reason)s, %(path)s, %(rows)s)
ON CONFLICT (sha256) DO UPDATE SET
    archive_path = coalesce(excluded.archive_path, p.archive_path),
    feed_id = CASE WHEN p.status = 'stored' THEN p.feed_id ELSE excluded.feed_id END,
    fetched_at = CASE WHEN p.status = 'stored' THEN p.fetched_at ELSE excluded.fetched_at END,
    reason = CASE WHEN p.status = 'stored' THEN p.reason ELSE excluded.reason END,
    "rows" = CASE WHEN p.status = 'stored' THEN p."rows" ELSE excluded."rows" END,
    status = CASE WHEN p.status = 'stored' THEN p.status ELSE excluded.status END
"""

# One statement, so concurrent attempts of one feed (two processes) never lose an update.
_RECORD_FETCH = f"""
INSERT INTO feed_health AS h ({_HEALTH_COLUMNS})
VALUES (
    %(feed)s, %(at)s,
    CASE WHEN %(ok)s THEN %(at)s::timestamptz END,
    CASE WHEN %(ok)s THEN NULL ELSE %(error)s::text END,
    CASE WHEN %(ok)s THEN NULL ELSE %(at)s::timestamptz END,
    CASE WHEN %(ok)s THEN 0 ELSE 1 END,
    CASE WHEN %(ok)s THEN %(rows)s::bigint ELSE 0 END,
    CASE WHEN %(ok)s THEN %(rows)s::bigint ELSE 0 END,
    CASE WHEN %(ok)s THEN %(data_ts)s::timestamptz END
)
ON CONFLICT (feed_id) DO UPDATE SET
    last_attempt = excluded.last_attempt,
    last_success = CASE WHEN %(ok)s THEN excluded.last_attempt ELSE h.last_success END,
    last_error = CASE WHEN %(ok)s THEN h.last_error ELSE excluded.last_error END,
    last_error_at = CASE WHEN %(ok)s THEN h.last_error_at ELSE excluded.last_error_at END,
    consecutive_failures = CASE WHEN %(ok)s THEN 0 ELSE h.consecutive_failures + 1 END,
    last_rows = CASE WHEN %(ok)s THEN excluded.last_rows ELSE h.last_rows END,
    total_rows = CASE WHEN %(ok)s THEN h.total_rows + excluded.total_rows ELSE h.total_rows END,
    last_data_ts = CASE
        WHEN %(ok)s AND excluded.last_data_ts IS NOT NULL
             AND (h.last_data_ts IS NULL OR excluded.last_data_ts > h.last_data_ts)
        THEN excluded.last_data_ts ELSE h.last_data_ts END
"""

_ORIGIN = "timestamptz '1970-01-01 00:00:00+00'"
_US_OF = "(extract(epoch FROM {col}) * 1000000)::bigint"


class PostgresStore:
    """:class:`~citypulse.store.base.TimeSeriesStore` on a PostgreSQL database.

    ``url`` is a libpq URL (``postgresql://user:pass@host:port/db?sslmode=...``) and may add
    ``pool_max`` (reader connections, default 4) and ``reconnect_s`` (how long a write waits
    for a lost server, default 60). Opening checks the connection and applies the schema, so a
    wrong URL fails here with :class:`StoreConnectionError`, naming the server but never the
    password.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_max: int | None = None,
        reconnect_s: float | None = None,
        connect_timeout: float = 10.0,
        application_name: str = "citypulse",
    ) -> None:
        self.url = url
        self.display_url = redact(url)
        try:
            conninfo, own = _split_url(url)
            psycopg.conninfo.conninfo_to_dict(conninfo)
            self.pool_max = int(pool_max or own.get("pool_max") or 4)
            self.reconnect_s = float(
                reconnect_s if reconnect_s is not None else own.get("reconnect_s") or 60.0
            )
        except (psycopg.ProgrammingError, ValueError) as exc:
            raise StoreConnectionError(
                f"invalid PostgreSQL URL {self.display_url}: {_first_line(exc)}"
            ) from exc
        if self.pool_max < 1:
            raise StoreConnectionError(f"pool_max must be at least 1 in {self.display_url}")
        self._conninfo = conninfo
        self._connect_kwargs: dict[str, Any] = {
            "connect_timeout": max(1, round(connect_timeout)),
            "application_name": application_name,
        }
        self._lock = threading.RLock()  # the writer connection and its transaction
        self._closed = False
        self._writer: Conn | None = None
        self._staged: Conn | None = None  # the session whose temp stage table exists
        self._partitions: set[date] = set()
        self._entities: dict[str, str] = {}  # id -> JSON last written by this process
        self._pending_entities: dict[str, str] = {}
        self._pending_partitions: set[date] = set()
        self.reconnects = 0
        try:
            self._writer = self._connect()
        except psycopg.OperationalError as exc:
            raise StoreConnectionError(
                f"cannot connect to PostgreSQL at {self.display_url}: {_first_line(exc)}"
            ) from exc
        try:
            self._migrate(self._writer)
            self.partitioning = self._meta(self._writer, "partitioning") or "native"
            self._partman_schema = self._meta(self._writer, "partman_schema")
        except BaseException as exc:
            self._writer.close()
            if isinstance(exc, psycopg.Error):
                raise StoreConnectionError(
                    f"cannot set up the citypulse schema in {self.display_url}: "
                    f"{_first_line(exc)}"
                ) from exc
            raise
        self._pool: ConnectionPool[Conn] = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=self.pool_max,
            kwargs={"autocommit": True, **self._connect_kwargs},
            configure=_configure,
            open=False,
            name="citypulse-readers",
            reconnect_timeout=max(30.0, self.reconnect_s),
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout + 5)
        except Exception as exc:
            self._writer.close()
            raise StoreConnectionError(
                f"cannot open reader connections to {self.display_url}: {_first_line(exc)}"
            ) from exc

    # -- connections -----------------------------------------------------------------------

    def _connect(self) -> Conn:
        conn: Conn = psycopg.connect(self._conninfo, **self._connect_kwargs)
        try:
            _configure(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _writer_conn(self) -> Conn:
        if self._closed:
            raise RuntimeError(f"store {self.display_url} is closed")
        if self._writer is None or self._writer.closed:
            self._writer = self._connect()
            self.reconnects += 1
            log.warning("reconnected to PostgreSQL at %s", self.display_url)
        return self._writer

    def _transact(self, fn: Callable[[Conn], T], *, what: str = "write") -> T:
        """Run ``fn`` in one transaction on the writer connection, re-running it whole after
        a lost connection (until ``reconnect_s``) or a deadlock. Idempotent writes only."""
        deadline = time.monotonic() + self.reconnect_s
        delay = 0.1
        deadlocks = 0
        with self._lock:
            while True:
                conn: Conn | None = None
                try:
                    conn = self._writer_conn()
                    with conn.transaction():
                        result = fn(conn)
                    self._committed()
                    return result
                except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure):
                    self._forget_pending()
                    deadlocks += 1
                    if deadlocks > 5:
                        raise
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    self._forget_pending()
                    if not _is_connection_error(exc, conn):
                        raise
                    self._drop_writer()
                    if time.monotonic() + delay > deadline:
                        raise StoreUnavailableError(
                            f"PostgreSQL at {self.display_url} unreachable for "
                            f"{self.reconnect_s:.0f} s during {what}: {_first_line(exc)}"
                        ) from exc
                    log.warning(
                        "PostgreSQL connection lost during %s (%s); retrying in %.1f s",
                        what,
                        _first_line(exc),
                        delay,
                    )
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
                except BaseException:
                    self._forget_pending()
                    if conn is not None and (conn.closed or conn.broken):
                        self._drop_writer()
                    raise

    def _forget_pending(self) -> None:
        """A rolled-back transaction also took back what it created: the stage, if new."""
        self._pending_entities.clear()
        self._pending_partitions.clear()
        self._staged = None

    def _drop_writer(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):  # closing a dead socket
                self._writer.close()
        self._writer = None
        # A new session has a new temp table; partitions may have been dropped meanwhile.
        self._partitions.clear()

    def _committed(self) -> None:
        self._partitions.update(self._pending_partitions)
        self._pending_partitions.clear()
        if len(self._entities) + len(self._pending_entities) > _ENTITY_CACHE_MAX:
            self._entities.clear()
        self._entities.update(self._pending_entities)
        self._pending_entities.clear()

    def _read(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """One autocommit statement on a pooled connection (its own snapshot), retried on a
        fresh connection after the server restarted."""
        return self._with_reader(lambda conn: conn.execute(sql, params).fetchall())

    def _with_reader(self, fn: Callable[[Conn], T]) -> T:
        if self._closed:
            raise RuntimeError(f"store {self.display_url} is closed")
        deadline = time.monotonic() + min(self.reconnect_s, 15.0)
        delay = 0.05
        while True:
            used: Conn | None = None
            try:
                with self._pool.connection() as conn:
                    used = conn
                    return fn(conn)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                # No connection to be had (pool timeout), or the one we had died.
                if not _is_connection_error(exc, used):
                    raise
                if time.monotonic() + delay > deadline:
                    raise StoreUnavailableError(
                        f"PostgreSQL at {self.display_url} unreachable: {_first_line(exc)}"
                    ) from exc
                self._pool.check()  # drop every broken idle connection at once
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    # -- schema ----------------------------------------------------------------------------

    def _migrate(self, conn: Conn) -> None:
        """Apply missing schema versions under an advisory lock, so processes starting at
        once never race; then set up daily partitions (pg_partman when possible). A current
        schema is only read, so a read-only session (a streaming replica) opens too."""
        row = conn.execute(
            "SELECT max(version) FROM schema_version"
            if self._has_table(conn, "schema_version")
            else "SELECT NULL"
        ).fetchone()
        conn.commit()
        if row is not None and row[0] is not None and int(row[0]) == SCHEMA_VERSION:
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [_MIGRATE_LOCK])
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version integer PRIMARY KEY, applied_at timestamptz NOT NULL)"
            )
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            current = int(row[0]) if row and row[0] is not None else 0
            if current > SCHEMA_VERSION:
                raise StoreConnectionError(
                    f"database {self.display_url} has schema version {current}, newer than "
                    f"this citypulse ({SCHEMA_VERSION}); upgrade citypulse"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[version]:
                    conn.execute(statement)
                if version == 1:
                    self._setup_partitioning(conn)
                conn.execute(
                    "INSERT INTO schema_version VALUES (%s, %s)", [version, datetime.now(UTC)]
                )

    def _setup_partitioning(self, conn: Conn) -> None:
        mode, schema = "native", None
        try:
            with conn.transaction():  # a savepoint: no partman must not abort the migration
                found = conn.execute(
                    "SELECT extnamespace::regnamespace::text FROM pg_extension "
                    "WHERE extname = 'pg_partman'"
                ).fetchone()
                if found is None:
                    conn.execute("CREATE SCHEMA IF NOT EXISTS partman")
                    conn.execute("CREATE EXTENSION pg_partman SCHEMA partman")
                    schema = "partman"
                else:
                    schema = str(found[0])
                parent = self._parent_name(conn)
                conn.execute(
                    f"SELECT {schema}.create_parent(%s, 'ts', 'native', 'daily', p_premake := 2)",
                    [parent],
                )
                mode = "pg_partman"
        except psycopg.Error as exc:
            log.warning(
                "pg_partman unavailable (%s): native daily partitions created on demand",
                _first_line(exc),
            )
            schema = None
        conn.execute(
            "INSERT INTO cp_meta VALUES ('partitioning', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [mode],
        )
        if schema is not None:
            conn.execute(
                "INSERT INTO cp_meta VALUES ('partman_schema', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [schema],
            )

    @staticmethod
    def _has_table(conn: Conn, name: str) -> bool:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [name]).fetchone()
        return bool(row and row[0])

    @staticmethod
    def _parent_name(conn: Conn) -> str:
        row = conn.execute("SELECT current_schema()").fetchone()
        return f"{row[0] if row else 'public'}.observations"

    @staticmethod
    def _meta(conn: Conn, key: str) -> str | None:
        row = conn.execute("SELECT value FROM cp_meta WHERE key = %s", [key]).fetchone()
        conn.commit()
        return None if row is None else str(row[0])

    @property
    def schema_version(self) -> int:
        return int(self._read("SELECT max(version) FROM schema_version")[0][0])

    def _ensure_partitions(self, days: Iterable[date]) -> None:
        """Create the daily partitions of ``days`` that this process has not seen yet, a few
        per short transaction: creating a partition locks the parent table against readers,
        and a backfill of years of daily data (COVID-19 history) needs ~1 100 of them."""
        missing = sorted(set(days) - self._partitions)
        for i in range(0, len(missing), _PARTITIONS_PER_TRANSACTION):
            chunk = missing[i : i + _PARTITIONS_PER_TRANSACTION]
            self._transact(partial(self._create_partitions, days=chunk), what="partitions")
            self._partitions.update(chunk)

    def _create_partitions(self, conn: Conn, *, days: list[date]) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [_PARTITION_LOCK])
        if self.partitioning == "pg_partman":
            conn.execute(
                f"SELECT {self._partman_schema}.create_partition_time("
                "%s, %s::timestamptz[], p_analyze := false)",
                [self._parent_name(conn), [_day_start(d) for d in days]],
            )
            return
        for d in days:
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} PARTITION OF observations "
                    "FOR VALUES FROM ({}) TO ({})"
                ).format(
                    sql.Identifier(_partition_name(d)),
                    sql.Literal(_day_start(d)),
                    sql.Literal(_day_start(d + _DAY)),
                )
            )

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        self._pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- writes ----------------------------------------------------------------------------

    def append(self, batch: Batch) -> AppendResult:
        observations = _observation_table(batch.observations)
        fetched_at = utc(batch.fetched_at)
        if observations.num_rows:
            self._ensure_partitions(_days(observations) - set(_bulk_days(observations)))

        def write(conn: Conn) -> AppendResult:
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                ["citypulse.payload:" + batch.payload_sha256],
            )
            seen = conn.execute(
                "SELECT status FROM payloads WHERE sha256 = %s", [batch.payload_sha256]
            ).fetchone()
            if seen is not None and seen[0] == "stored":
                return AppendResult(
                    batch.feed_id, batch.payload_sha256, 0, 0, 0, duplicate=True
                )
            entities = self._upsert_entities(conn, batch.entities)
            written = self._insert_observations(conn, observations)
            events = self._upsert_events(conn, batch.events, fetched_at)
            conn.execute(
                _STORE_PAYLOAD,
                {
                    "sha": batch.payload_sha256,
                    "feed": batch.feed_id,
                    "at": fetched_at,
                    "rows": observations.num_rows,
                },
            )
            return AppendResult(
                batch.feed_id, batch.payload_sha256, written, entities, events
            )

        return self._transact(write, what=f"append of {batch.feed_id}")

    def load_observations(self, table: pa.Table) -> int:
        """Bulk-load observations outside any payload (``citypulse migrate``): the same
        idempotent insert, rollups and ``latest`` as ``append``. Returns rows written."""
        observations = _observation_table(table)
        if observations.num_rows == 0:
            return 0
        self._ensure_partitions(_days(observations) - set(_bulk_days(observations)))
        return self._transact(
            lambda conn: self._insert_observations(conn, observations), what="bulk load"
        )

    def _insert_observations(self, conn: Conn, table: pa.Table) -> int:
        """Stage the batch with binary COPY, move ``latest``, then write it: days without a
        partition yet and enough rows go through the bulk path, the rest through the
        idempotent ``ON CONFLICT DO NOTHING`` insert. Returns rows written."""
        if table.num_rows == 0:
            return 0
        columns = [
            table.column("entity_id").to_pylist(),
            table.column("metric").to_pylist(),
            table.column("ts").cast(pa.int64()).to_pylist(),
            table.column("value").to_pylist(),
            table.column("label").to_pylist(),
        ]
        written = 0
        with conn.cursor() as cur:
            if self._staged is not conn:  # once per session (a read-only one never needs it)
                cur.execute(_STAGE_OBSERVATIONS)
                self._staged = conn
            # The stage empties itself at commit (ON COMMIT DELETE ROWS).
            with cur.copy(_COPY_STAGE) as copy:
                copy.set_types(["text", "text", "int8", "float8", "text"])
                for values in zip(*columns, strict=True):
                    copy.write_row(values)
            bulk = _bulk_days(table)
            if bulk:
                # Sorts and hash aggregates of whole days: in memory, not in temp files.
                cur.execute("SET LOCAL work_mem = '256MB'")
            cur.execute(_UPSERT_LATEST)
            new = self._new_days(conn, bulk) if bulk else {}
            left = table.num_rows - sum(new.values())
            for day in sorted(new):
                written += self._bulk_day(conn, day, clear_stage=left > 0)
            if left > 0:
                found = cur.execute(_INSERT_OBSERVATIONS).fetchone()
                written += int(found[0]) if found else 0
        return written

    def _new_days(self, conn: Conn, days: dict[date, int]) -> dict[date, int]:
        """Of ``days``, those with no partition yet, under the partition lock (held to the
        end of the transaction, so no other process creates them meanwhile)."""
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [_PARTITION_LOCK])
        names = [_partition_name(d) for d in days]
        rows = conn.execute(
            "SELECT c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relname = ANY(%s)",
            [names],
        ).fetchall()
        existing = {r[0] for r in rows}
        return {d: n for d, n in days.items() if _partition_name(d) not in existing}

    def _bulk_day(self, conn: Conn, day: date, *, clear_stage: bool) -> int:
        name = sql.Identifier(_partition_name(day))
        lo, hi = _day_start(day), _day_start(day + _DAY)
        conn.execute(sql.SQL("CREATE TABLE {} (LIKE observations INCLUDING DEFAULTS)").format(name))
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK (ts >= {} AND ts < {})").format(
                name, sql.Identifier(f"{_partition_name(day)}_bounds"), sql.Literal(lo),
                sql.Literal(hi)
            )
        )
        cur = conn.execute(
            sql.SQL(_BULK_FILL).format(table=name),
            {"lo": _epoch_us(lo), "hi": _epoch_us(hi)},
        )
        written = max(0, cur.rowcount)
        conn.execute(
            sql.SQL("ALTER TABLE observations ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})")
            .format(name, sql.Literal(lo), sql.Literal(hi))
        )
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                name, sql.Identifier(f"{_partition_name(day)}_bounds")
            )
        )
        conn.execute(sql.SQL(_BULK_ROLLUP).format(table=name))
        if clear_stage:  # other days of the batch go through the row-by-row insert next
            conn.execute(
                "DELETE FROM _cp_obs WHERE ts_us >= %s AND ts_us < %s",
                [_epoch_us(lo), _epoch_us(hi)],
            )
        self._pending_partitions.add(day)
        return written

    def _upsert_entities(self, conn: Conn, entities: Sequence[Entity]) -> int:
        """Upsert entities that differ from what this process last wrote for their id: the
        feeds resend the same ~600 entities with every payload."""
        if not entities:
            return 0
        latest = {e.id: e for e in entities}  # the last one of an id wins
        rows: list[dict[str, Any]] = []
        for e in latest.values():
            record = {
                "id": e.id,
                "kind": e.kind,
                "name_en": e.name_en,
                "name_zh": e.name_zh,
                "lat": e.lat,
                "lon": e.lon,
                "district": e.district,
                "properties": e.properties,
            }
            key = orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()
            if self._entities.get(e.id) == key:
                continue
            self._pending_entities[e.id] = key
            rows.append(record)
        if not rows:
            return 0
        cur = conn.execute(_UPSERT_ENTITIES, [Jsonb(rows)])
        return max(0, cur.rowcount)

    def upsert_entities(self, entities: Sequence[Entity]) -> int:
        return self._transact(lambda conn: self._upsert_entities(conn, entities))

    def _upsert_events(self, conn: Conn, events: Sequence[Event], fetched_at: datetime) -> int:
        if not events:
            return 0
        unique = list({e.id: e for e in events}.values())
        rows = [
            {
                "id": e.id,
                "kind": e.kind,
                "severity": e.severity,
                "starts_at": utc(e.starts_at).isoformat(),
                "ends_at": None if e.ends_at is None else utc(e.ends_at).isoformat(),
                "title_en": e.title_en,
                "title_zh": e.title_zh,
                "body_en": e.body_en,
                "body_zh": e.body_zh,
                "entity_ids": list(e.entity_ids),
                "districts": list(e.districts),
                "source": e.source,
                "properties": e.properties,
                "updated_at": fetched_at.isoformat(),
            }
            for e in unique
        ]
        cur = conn.execute(_UPSERT_EVENTS, [Jsonb(rows)])
        return max(0, cur.rowcount)

    def record_payload(self, record: PayloadRecord) -> None:
        """Remember a payload; a payload already stored keeps status ``stored``."""
        if record.status not in PAYLOAD_STATUSES:
            raise ValueError(f"unknown payload status {record.status!r}")
        params = {
            "sha": record.sha256,
            "feed": record.feed_id,
            "at": utc(record.fetched_at),
            "status": record.status,
            "reason": record.reason,
            "path": record.archive_path,
            "rows": record.rows,
        }
        self._transact(lambda conn: conn.execute(_RECORD_PAYLOAD, params), what="payload record")

    def record_fetch(
        self,
        feed_id: str,
        *,
        at: datetime,
        ok: bool,
        rows: int = 0,
        error: str | None = None,
        data_ts: datetime | None = None,
    ) -> None:
        """Success resets ``consecutive_failures`` and adds ``rows``; a failure counts up and
        keeps the error. ``last_error`` survives later successes so /status can show it."""
        params = {
            "feed": feed_id,
            "at": utc(at),
            "ok": ok,
            "rows": rows,
            "error": error or "unknown error",
            "data_ts": None if data_ts is None else utc(data_ts),
        }
        self._transact(lambda conn: conn.execute(_RECORD_FETCH, params), what="feed health")

    def import_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Copy rows of ``entities``, ``events``, ``payloads`` or ``feed_health`` as they are
        (``citypulse migrate``); rows whose key exists are left alone. Returns rows added."""
        allowed = {"entities": "id", "events": "id", "payloads": "sha256", "feed_health": "feed_id"}
        if table not in allowed:
            raise ValueError(f"cannot import into {table!r}")
        if not rows:
            return 0
        names = ", ".join(f'"{c}"' for c in columns)

        def load(conn: Conn) -> int:
            conn.execute(f"CREATE TEMP TABLE _cp_import (LIKE {table}) ON COMMIT DROP")
            with conn.cursor().copy(f"COPY _cp_import ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(
                        [Jsonb(v) if isinstance(v, dict) else v for v in row]
                    )
            cur = conn.execute(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM _cp_import "
                f"ON CONFLICT ({allowed[table]}) DO NOTHING"
            )
            return max(0, cur.rowcount)

        return self._transact(load, what=f"import of {table}")

    # -- reads -----------------------------------------------------------------------------

    def entities(self, kind: str | None = None) -> list[Entity]:
        if kind is None:
            rows = self._read(f"SELECT {_ENTITY_COLUMNS} FROM entities ORDER BY id")
        else:
            rows = self._read(
                f"SELECT {_ENTITY_COLUMNS} FROM entities WHERE kind = %s ORDER BY id", [kind]
            )
        return [_entity(r) for r in rows]

    def entity(self, entity_id: str) -> Entity | None:
        rows = self._read(f"SELECT {_ENTITY_COLUMNS} FROM entities WHERE id = %s", [entity_id])
        return _entity(rows[0]) if rows else None

    def latest(
        self,
        metric: str,
        *,
        kind: str | None = None,
        entity_ids: Sequence[str] | None = None,
    ) -> list[LatestValue]:
        if entity_ids is not None and len(entity_ids) == 0:
            return []
        sql = "SELECT l.entity_id, l.metric, l.ts, l.value, l.label FROM latest AS l"
        params: dict[str, Any] = {"metric": metric}
        if kind is not None:
            sql += " JOIN entities AS e ON e.id = l.entity_id AND e.kind = %(kind)s"
            params["kind"] = kind
        sql += " WHERE l.metric = %(metric)s"
        if entity_ids is not None:
            sql += " AND l.entity_id = ANY(%(ids)s::text[])"
            params["ids"] = list(entity_ids)
        sql += " ORDER BY l.entity_id"
        return [LatestValue(r[0], r[1], r[2], r[3], r[4]) for r in self._read(sql, params)]

    def series(
        self,
        entity_id: str,
        metric: str,
        start: datetime,
        end: datetime,
        bucket: timedelta,
    ) -> list[SeriesPoint]:
        """Hour-multiple buckets over an hour-aligned range read the hourly rollups."""
        params = {
            "entity": entity_id,
            "metric": metric,
            "start": utc(start),
            "end": utc(end),
            "b": _bucket(bucket),
        }
        if bucket % _HOUR == timedelta(0) and _hour_aligned(start, end):
            sql = f"""SELECT date_bin(%(b)s, hour, {_ORIGIN}) AS bucket,
                       sum(sum_value) / nullif(sum(n_value), 0), min(min_value),
                       max(max_value), sum(n)
                FROM observations_hourly
                WHERE entity_id = %(entity)s AND metric = %(metric)s
                  AND hour >= %(start)s AND hour < %(end)s
                GROUP BY 1 ORDER BY 1"""
        else:
            sql = f"""SELECT date_bin(%(b)s, ts, {_ORIGIN}) AS bucket, avg(value), min(value),
                       max(value), count(*)
                FROM observations
                WHERE entity_id = %(entity)s AND metric = %(metric)s
                  AND ts >= %(start)s AND ts < %(end)s
                GROUP BY 1 ORDER BY 1"""
        return [SeriesPoint(r[0], r[1], r[2], r[3], int(r[4])) for r in self._read(sql, params)]

    def aggregate(
        self,
        kind: str,
        metric: str,
        start: datetime,
        end: datetime,
        bucket: timedelta,
    ) -> list[AggregatePoint]:
        """Statistics over every raw observation of the kind's entities in each bucket
        (``n`` observations from ``entities`` distinct entities); hour-multiple buckets over
        an hour-aligned range come from the hourly rollups."""
        params = {
            "kind": kind,
            "metric": metric,
            "start": utc(start),
            "end": utc(end),
            "b": _bucket(bucket),
        }
        if bucket % _HOUR == timedelta(0) and _hour_aligned(start, end):
            # One rollup row per entity and hour: hourly buckets count entities with count(*),
            # a hash aggregate ~4x cheaper than count(DISTINCT), which sorts.
            hourly = bucket == _HOUR
            bucket_sql = "h.hour" if hourly else f"date_bin(%(b)s, h.hour, {_ORIGIN})"
            entities_sql = "count(*)" if hourly else "count(DISTINCT h.entity_id)"
            sql = f"""SELECT {bucket_sql} AS bucket,
                       sum(h.sum_value) / nullif(sum(h.n_value), 0), min(h.min_value),
                       max(h.max_value), sum(h.n), {entities_sql}
                FROM observations_hourly AS h JOIN entities AS e ON e.id = h.entity_id
                WHERE e.kind = %(kind)s AND h.metric = %(metric)s
                  AND h.hour >= %(start)s AND h.hour < %(end)s
                GROUP BY 1 ORDER BY 1"""
        else:
            sql = f"""SELECT date_bin(%(b)s, o.ts, {_ORIGIN}) AS bucket, avg(o.value),
                       min(o.value), max(o.value), count(*), count(DISTINCT o.entity_id)
                FROM observations AS o JOIN entities AS e ON e.id = o.entity_id
                WHERE e.kind = %(kind)s AND o.metric = %(metric)s
                  AND o.ts >= %(start)s AND o.ts < %(end)s
                GROUP BY 1 ORDER BY 1"""
        return [
            AggregatePoint(r[0], r[1], r[2], r[3], int(r[4]), int(r[5]))
            for r in self._read(sql, params)
        ]

    def observations_frame(
        self,
        metric: str,
        kind: str | None,
        start: datetime,
        end: datetime,
        *,
        bucket: timedelta | None = None,
    ) -> pa.Table:
        """All entities' observations of a metric in [start, end) as Arrow (see the protocol),
        streamed with ``COPY ... TO STDOUT`` and parsed by Arrow's CSV reader."""
        params: dict[str, Any] = {"metric": metric, "start": utc(start), "end": utc(end)}
        where = "o.metric = %(metric)s AND o.ts >= %(start)s AND o.ts < %(end)s " \
            "AND o.value IS NOT NULL"
        if kind is not None:
            where += " AND o.entity_id IN (SELECT id FROM entities WHERE kind = %(kind)s)"
            params["kind"] = kind
        if bucket is None:
            sql = (
                f"SELECT o.entity_id, {_US_OF.format(col='o.ts')}, o.value, 1 "
                f"FROM observations AS o WHERE {where}"
            )
        else:
            params["b"] = _bucket(bucket)
            sql = (
                f"SELECT o.entity_id, {_US_OF.format(col=f'date_bin(%(b)s, o.ts, {_ORIGIN})')}"
                f", avg(o.value), count(*) FROM observations AS o WHERE {where} GROUP BY 1, 2"
            )
        names = ["entity_id", "ts", "value", "n"]
        table = self._copy_out(
            sql, params, names, [pa.string(), pa.int64(), pa.float64(), pa.int64()]
        )
        return table.set_column(1, "ts", table.column("ts").cast(pa.timestamp("us", tz="UTC")))

    def observations(
        self,
        start: datetime,
        end: datetime,
        *,
        kinds: Sequence[str] | None = None,
        entity_ids: Sequence[str] | None = None,
        metrics: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> pa.Table:
        """Raw observations with ts in [start, end) (optionally of entities of ``kinds``,
        ``entity_ids`` and ``metrics``), ordered by (ts, entity_id, metric), as an Arrow table
        with OBSERVATION_SCHEMA (what ``citypulse export parquet`` and bulk downloads read)."""
        where = ["o.ts >= %(start)s", "o.ts < %(end)s"]
        params: dict[str, Any] = {"start": utc(start), "end": utc(end)}
        if kinds is not None:
            where.append("o.entity_id IN (SELECT id FROM entities WHERE kind = ANY(%(kinds)s))")
            params["kinds"] = list(kinds)
        if entity_ids is not None:
            where.append("o.entity_id = ANY(%(ids)s::text[])")
            params["ids"] = list(entity_ids)
        if metrics is not None:
            where.append("o.metric = ANY(%(metrics)s::text[])")
            params["metrics"] = list(metrics)
        sql = (
            f"SELECT o.entity_id, o.metric, {_US_OF.format(col='o.ts')}, o.value, o.label "
            f"FROM observations AS o WHERE {' AND '.join(where)} "
            "ORDER BY o.ts, o.entity_id, o.metric"
        )
        if limit is not None:
            sql += f" LIMIT {max(0, int(limit))}"
        table = self._copy_out(
            sql,
            params,
            ["entity_id", "metric", "ts", "value", "label"],
            [pa.string(), pa.string(), pa.int64(), pa.float64(), pa.string()],
        )
        return table.set_column(
            2, "ts", table.column("ts").cast(pa.timestamp("us", tz="UTC"))
        ).cast(OBSERVATION_SCHEMA)

    def _copy_out(
        self, sql: str, params: dict[str, Any], names: list[str], types: list[pa.DataType]
    ) -> pa.Table:
        def fetch(conn: Conn) -> bytes:
            chunks: list[bytes] = []
            with conn.cursor().copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)", params) as copy:
                for chunk in copy:
                    chunks.append(bytes(chunk))
            return b"".join(chunks)

        data = self._with_reader(fetch)
        schema = pa.schema(list(zip(names, types, strict=True)))
        if not data:
            return schema.empty_table()
        return pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False),
            convert_options=pacsv.ConvertOptions(
                column_types=schema,
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                null_values=[""],
            ),
        )

    def events(
        self,
        start: datetime,
        end: datetime,
        *,
        kind: str | None = None,
        active_only: bool = False,
    ) -> list[Event]:
        """Events overlapping [start, end), oldest start first. An instant event
        (``ends_at == starts_at``) counts when it starts inside the window."""
        sql = f"""SELECT {_EVENT_COLUMNS} FROM events
            WHERE starts_at < %(end)s
              AND (ends_at IS NULL OR ends_at > %(start)s
                   OR (ends_at = starts_at AND starts_at >= %(start)s))"""
        params: dict[str, Any] = {"start": utc(start), "end": utc(end)}
        if active_only:
            sql += " AND (ends_at IS NULL OR ends_at > %(end)s)"
        if kind is not None:
            sql += " AND kind = %(kind)s"
            params["kind"] = kind
        sql += " ORDER BY starts_at, id"
        return [_event(r) for r in self._read(sql, params)]

    def payloads(
        self, *, feed_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[PayloadRecord]:
        """Most recently fetched first."""
        clauses: list[str] = []
        params: dict[str, Any] = {"limit": max(0, int(limit))}
        if feed_id is not None:
            clauses.append("feed_id = %(feed)s")
            params["feed"] = feed_id
        if status is not None:
            clauses.append("status = %(status)s")
            params["status"] = status
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._read(
            f"SELECT {_PAYLOAD_COLUMNS} FROM payloads{where} "
            "ORDER BY fetched_at DESC, sha256 LIMIT %(limit)s",
            params,
        )
        return [PayloadRecord(r[0], r[1], r[2], r[3], r[4], r[5], int(r[6])) for r in rows]

    def seen_payload(self, sha256: str) -> bool:
        """True for any recorded payload (stored, duplicate or quarantined)."""
        return bool(self._read("SELECT 1 FROM payloads WHERE sha256 = %s LIMIT 1", [sha256]))

    def feed_health(self) -> list[FeedHealth]:
        rows = self._read(f"SELECT {_HEALTH_COLUMNS} FROM feed_health ORDER BY feed_id")
        return [
            FeedHealth(r[0], r[1], r[2], r[3], r[4], int(r[5]), int(r[6]), int(r[7]), r[8])
            for r in rows
        ]

    def count_observations(self, metric: str | None = None) -> int:
        """Exact, from the hourly rollups (maintained in the same transaction as the rows),
        so it never counts raw history."""
        if metric is None:
            rows = self._read("SELECT coalesce(sum(n), 0) FROM observations_hourly")
        else:
            rows = self._read(
                "SELECT coalesce(sum(n), 0) FROM observations_hourly WHERE metric = %s", [metric]
            )
        return int(rows[0][0])

    def table_count(self, table: str) -> int:
        """Rows of one of the fixed small tables (``citypulse migrate`` compares counts)."""
        if table not in ("entities", "events", "payloads", "feed_health", "latest"):
            raise ValueError(f"no count for table {table!r}")
        return int(self._read(f"SELECT count(*) FROM {table}")[0][0])

    def days(self) -> list[date]:
        """UTC days that hold observations (from the rollups), oldest first."""
        rows = self._read(
            "SELECT DISTINCT (hour AT TIME ZONE 'UTC')::date FROM observations_hourly ORDER BY 1"
        )
        return [r[0] for r in rows]

    # -- ingest exclusivity ----------------------------------------------------------------

    def feed_leases(self) -> FeedLeases:
        """A lease holder for ``citypulse ingest`` (see :class:`FeedLeases`)."""
        return FeedLeases(self._conninfo, self._connect_kwargs, self.display_url)


class FeedLeases:
    """Exactly one ingester per feed across processes: a session-level advisory lock per
    feed (keyed by schema and feed id), held on one dedicated connection. A process that dies,
    or whose connection drops, loses its locks at once and a standby ingester takes the feeds
    over on its next :meth:`acquire`; :meth:`check` tells the holder which feeds it lost so it
    stops polling them (after a server restart another process may have taken them first)."""

    def __init__(self, conninfo: str, connect_kwargs: dict[str, Any], display_url: str) -> None:
        self._conninfo = conninfo
        self._kwargs = connect_kwargs
        self._display = display_url
        self._conn: Conn | None = None
        self._lock = threading.Lock()
        self.held: set[str] = set()

    @staticmethod
    def key(feed_id: str) -> str:
        return f"citypulse.feed:{feed_id}"

    def _connection(self) -> Conn:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(
                self._conninfo,
                autocommit=True,
                **{**self._kwargs, "application_name": "citypulse-ingest-leases"},
            )
        return self._conn

    def acquire(self, feed_ids: Iterable[str]) -> set[str]:
        """Try to lock each feed not held yet; returns the feeds newly acquired (none while
        the server is unreachable)."""
        got: set[str] = set()
        with self._lock:
            try:
                conn = self._connection()
                for feed_id in feed_ids:
                    if feed_id in self.held:
                        continue
                    row = conn.execute(
                        f"SELECT pg_try_advisory_lock({_LEASE_KEY})",
                        [self.key(feed_id)],
                    ).fetchone()
                    if row and row[0]:
                        self.held.add(feed_id)
                        got.add(feed_id)
            except psycopg.Error as exc:
                log.warning("feed leases: %s unreachable (%s)", self._display, _first_line(exc))
                self._lost_connection()
                return set()
        return got

    def check(self) -> set[str]:
        """Verify the lease connection; if it was lost, every lease is gone: returns the feeds
        to stop polling."""
        with self._lock:
            if not self.held:
                return set()
            try:
                self._connection().execute("SELECT 1")
                return set()
            except psycopg.Error:
                return self._lost_connection()

    def _lost_connection(self) -> set[str]:
        lost = set(self.held)
        self.held.clear()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None
        return lost

    def release(self, feed_id: str) -> None:
        with self._lock:
            if feed_id not in self.held:
                return
            self.held.discard(feed_id)
            try:
                self._connection().execute(
                    f"SELECT pg_advisory_unlock({_LEASE_KEY})",
                    [self.key(feed_id)],
                )
            except psycopg.Error:
                self._lost_connection()

    def close(self) -> None:
        with self._lock:
            self.held.clear()
            if self._conn is not None:
                self._conn.close()
                self._conn = None


# -- helpers ---------------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _day_start(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _partition_name(d: date) -> str:
    """pg_partman's daily naming, also used for partitions the store creates itself."""
    return f"observations_p{d:%Y_%m_%d}"


def _bulk_days(table: pa.Table) -> dict[date, int]:
    """Days of a batch with enough rows for the bulk path (history loads, migration)."""
    if table.num_rows < _BULK_DAY_ROWS:
        return {}
    days = table.column("ts").cast(pa.timestamp("us", tz="UTC")).cast(pa.date32())
    counts = pc.value_counts(days)
    return {
        c["values"]: c["counts"]
        for c in counts.to_pylist()
        if c["values"] is not None and c["counts"] >= _BULK_DAY_ROWS
    }


def _days(table: pa.Table) -> set[date]:
    """The UTC days a batch touches (its daily partitions)."""
    days = pc.unique(table.column("ts").cast(pa.timestamp("us", tz="UTC")).cast(pa.date32()))
    return {d for d in days.to_pylist() if d is not None}


def _observation_table(table: pa.Table) -> pa.Table:
    if table.schema.equals(OBSERVATION_SCHEMA):
        return table
    return table.select(OBSERVATION_SCHEMA.names).cast(OBSERVATION_SCHEMA)


def _props(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _entity(r: tuple[Any, ...]) -> Entity:
    return Entity(
        id=r[0],
        kind=r[1],
        name_en=r[2],
        name_zh=r[3],
        lat=r[4],
        lon=r[5],
        district=r[6],
        properties=_props(r[7]),
    )


def _event(r: tuple[Any, ...]) -> Event:
    return Event(
        id=r[0],
        kind=r[1],
        severity=r[2],
        starts_at=r[3],
        ends_at=r[4],
        title_en=r[5],
        title_zh=r[6],
        body_en=r[7],
        body_zh=r[8],
        entity_ids=tuple(r[9] or ()),
        districts=tuple(r[10] or ()),
        source=r[11],
        properties=_props(r[12]),
    )


def iter_days(start: date, end: date) -> Iterator[date]:
    """Every day in [start, end]."""
    d = start
    while d <= end:
        yield d
        d += _DAY
