"""Fixtures of the scale-out tests: a fresh PostgreSQL schema and the test Redis server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.store.pg import fresh_database, redis_url


@pytest.fixture
def pg_store_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture
def redis_server_url() -> str:
    return redis_url()
