"""Throwaway stores for tests (public: other packages' tests use them too).

``temp_store()`` gives an initialised store on a temporary SQLite file, removed afterwards::

    from tactful.testing.store import temp_store

    with temp_store(records=[household, customer, consent]) as engine:
        with engine.connect() as conn:
            view = read_customer(conn, customer.id)

``init_temp_store(url)`` does the same for a URL you already have (the ``db_url`` fixture, say), so a
test can run on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy.engine import Engine

from tactful.store.db import init_store
from tactful.store.repo import write_all


def seed(engine: Engine, records: Iterable[BaseModel], *, origin: str = "test:seed",
         import_kind: str = "test") -> None:
    """Write ``records`` (any mix of tactful.model store records) in reference order, one batch per kind."""
    with engine.begin() as conn:
        write_all(conn, records, origin=origin, import_kind=import_kind)


def init_temp_store(url: str, records: Iterable[BaseModel] = ()) -> Engine:
    """Initialise the store at ``url`` and write ``records`` into it; returns its engine."""
    engine = init_store(url)
    seed(engine, records)
    return engine


@contextmanager
def temp_store(records: Iterable[BaseModel] = (), *, directory: Path | None = None) -> Iterator[Engine]:
    """An initialised SQLite store in a temporary directory, holding ``records``; removed on exit.

    The engine's URL (``engine.url``) can be passed to commands as ``--db``.
    """
    tmp = Path(tempfile.mkdtemp(prefix="tactful-store-", dir=directory))
    engine = init_store(f"sqlite:///{tmp / 'tactful.db'}")
    try:
        seed(engine, records)
        yield engine
    finally:
        engine.dispose()
        shutil.rmtree(tmp, ignore_errors=True)
