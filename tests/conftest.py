"""Shared fixtures. ``pg_url`` is a real PostgreSQL server: the one scripts/test.sh started
(TACTFUL_TEST_PG_URL), or a throwaway cluster this session starts on 127.0.0.1 and stops.
``sample_worlds`` builds each sample world a test asks for once per session (per xdist worker); a
module names its world in a ``world`` fixture, and ``store`` is a fresh copy of it."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


class SampleWorlds:
    """The sample worlds (``build_sample``) of this session, each built once in a SQLite file for its
    seed and synthetic size: campaign tests on worlds of the same (seed, size) share one build."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self._factory = factory
        self._built: dict[tuple[int, int], Path] = {}

    def path(self, *, seed: int, synthetic_n: int) -> Path:
        """The world's SQLite file, shared by every test that asks for it: read it, never write it."""
        key = (seed, synthetic_n)
        if key not in self._built:
            from tactful.sample import build_sample  # only sessions that use a world import it

            path = self._factory.mktemp(f"world-{seed}-{synthetic_n}") / "sample.db"
            build_sample(f"sqlite:///{path}", seed=seed, synthetic_n=synthetic_n)
            self._built[key] = path
        return self._built[key]



def query_rows(url: str, query: Any) -> list[Any]:
    """The rows ``query`` (a SQLAlchemy select) reads from the store at ``url``."""
    from tactful.store.db import open_store

    engine = open_store(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(query))
    finally:
        engine.dispose()


def copy_world(world: Path, directory: Path, name: str = "store.db") -> str:
    """The URL of a fresh copy of a world's file in ``directory``, for a test that writes."""
    copy = directory / name
    shutil.copy(world, copy)
    return f"sqlite:///{copy}"


@pytest.fixture(scope="session")
def sample_worlds(tmp_path_factory: pytest.TempPathFactory) -> SampleWorlds:
    return SampleWorlds(tmp_path_factory)


@pytest.fixture()
def store(world: Path, tmp_path: Path) -> str:
    """A fresh copy of the sample world the test's module names in its ``world`` fixture (``world``
    is the module's: ``sample_worlds.path(seed=..., synthetic_n=...)``)."""
    return copy_world(world, tmp_path)
