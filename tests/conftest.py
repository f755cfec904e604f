"""Shared fixtures. ``pg_url`` is a real PostgreSQL server: the one scripts/test.sh started
(TACTFUL_TEST_PG_URL), or a throwaway cluster this session starts on 127.0.0.1 and stops."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tactful.testing import postgres


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    url = os.environ.get("TACTFUL_TEST_PG_URL")
    if url:
        yield url
        return
    with postgres.throwaway_postgres() as started:
        yield started


@pytest.fixture()
def pg_url(pg_server_url: str) -> str:
    """A fresh, empty database on the real PostgreSQL server."""
    return postgres.create_database(pg_server_url, f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """Each store test runs on SQLite (a file) and on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/tactful.db"
    return str(request.getfixturevalue("pg_url"))
