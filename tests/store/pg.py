"""The throwaway PostgreSQL/Redis servers of the scale-out tests (``scripts/services.sh``).

Tests that need a server skip with the reason when its URL is not configured, except when
``CITYPULSE_REQUIRE_SERVICES=1`` (``scripts/test.sh``, CI): then a missing server fails the
run instead of silently skipping the PostgreSQL half of the suite.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

HOW = "run `bash scripts/services.sh start ENV_FILE` and source ENV_FILE (scripts/test.sh does)"


def _require(var: str, what: str) -> str:
    value = os.environ.get(var, "")
    if not value:
        message = f"{what} tests need {var}: {HOW}"
        if os.environ.get("CITYPULSE_REQUIRE_SERVICES") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return value


def pg_url() -> str:
    return _require("CITYPULSE_TEST_PG_URL", "PostgreSQL")


def redis_url() -> str:
    return _require("CITYPULSE_TEST_REDIS_URL", "Redis")


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def fresh_database() -> Iterator[str]:
    """A URL of an empty, private schema on the test database (``search_path`` set through
    libpq ``options``), dropped afterwards with its pg_partman configuration. A schema costs
    ~2 ms where ``CREATE DATABASE`` took ~0.5 s on the shared test machine."""
    import psycopg

    url = pg_url()
    name = f"cp_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    parts = urlsplit(url)
    query = "&".join(
        q for q in (parts.query, "options=" + quote(f"-c search_path={name}")) if q
    )
    try:
        yield urlunsplit(parts._replace(query=query))
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            partman = conn.execute(
                "SELECT 1 FROM pg_extension WHERE extname = 'pg_partman'"
            ).fetchone()
            if partman:
                conn.execute(
                    "DELETE FROM partman.part_config WHERE parent_table LIKE %s", [f"{name}.%"]
                )
                conn.execute(f'DROP TABLE IF EXISTS partman."template_{name}_observations"')


def pg_ctl(*args: str) -> None:
    """Run pg_ctl on the test cluster (as the cluster's owner)."""
    data = _require("CITYPULSE_TEST_PG_DATA", "PostgreSQL restart")
    binary = os.path.join(os.environ.get("CITYPULSE_TEST_PG_BIN", ""), "pg_ctl")
    command = [binary, "-D", data, *args]
    runas = os.environ.get("CITYPULSE_TEST_PG_RUNAS", "")
    if runas and os.geteuid() == 0:
        command = ["runuser", "-u", runas, "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


def restart_postgres(mode: str = "immediate") -> None:
    """Kill the server (``immediate``: like a crash, no checkpoint) and start it again."""
    data = _require("CITYPULSE_TEST_PG_DATA", "PostgreSQL restart")
    pg_ctl("-m", mode, "-w", "stop")
    pg_ctl("-l", os.path.join(data, "server.log"), "-w", "-t", "60", "start")
