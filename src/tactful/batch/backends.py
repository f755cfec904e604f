"""Where the compiled policy runs: DuckDB (embedded, the default), Spark (local mode or a cluster) or
the PostgreSQL store's own server. Each backend says what it does not support, and
:func:`open_backend` refuses a request it cannot serve with a :class:`~tactful.errors.BatchError`
that says so."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from tactful.errors import BatchError
from tactful.store.db import parse_url, redact_url


@dataclass(frozen=True, slots=True)
class Backend:
    name: str
    description: str
    unsupported: tuple[str, ...]
    #: builds the feature frame itself from the store read in place (else the frame is built in
    #: Python and sent to it: the reference path)
    builds_features: bool = False


BACKENDS: dict[str, Backend] = {
    "duckdb": Backend("duckdb", "embedded DuckDB in this process (default): reads the SQLite or "
                      "PostgreSQL store in place and builds the feature frame, the policy and the input "
                      "hashes in one query", (), builds_features=True),
    "pyspark": Backend("pyspark", "Spark through PySpark: local mode, or the cluster named by "
                       "SPARK_REMOTE / TACTFUL_SPARK_MASTER", (
                           "needs a Java runtime (java on PATH)",
                           "building the feature frame from the store: Spark cannot read the store in "
                           "place here (no JDBC driver offline), so the frame is built in Python and "
                           "only the policy runs on Spark",
                           "starting a local Spark takes 10-15 s, so small runs are faster on duckdb",
                       )),
    "postgres": Backend("postgres", "the PostgreSQL server of the store (--db must be PostgreSQL): the "
                        "feature frame goes to a temporary table and the policy runs as SQL there", (
                            "SQLite stores (there is no server to run on; use duckdb)",
                            "building the feature frame in the server: the frame is built in Python "
                            "and only the policy runs in PostgreSQL",
                        )),
}


@dataclass
class Session:
    """An open backend: ``table(arrow)`` puts a frame into it, ``close()`` ends it."""

    backend: Backend
    con: Any
    table: Callable[[pa.Table], Any]


@contextmanager
def open_backend(name: str, *, db: str | None = None, threads: int | None = None) -> Iterator[Session]:
    """Open the backend ``name`` for one run; a backend that cannot serve it raises :class:`BatchError`
    naming what it does not support."""
    backend = check_backend(name, db=db)
    if name == "duckdb":
        from tactful.batch.store import connect

        con = connect(threads=threads)
        try:
            yield Session(backend, con, lambda frame: con.create_table("features", frame, temp=True,
                                                                        overwrite=True))
        finally:
            con.disconnect()
    elif name == "pyspark":
        yield from _spark(backend, threads)
    else:
        yield from _postgres(backend, db)


def check_backend(name: str, *, db: str | None = None) -> Backend:
    """The backend ``name`` if it can serve a run on the store ``db``; otherwise a
    :class:`BatchError` that says what it does not support (checked before any work is done)."""
    backend = BACKENDS.get(name)
    if backend is None:
        raise BatchError(f"unknown backend {name!r}", hint=f"one of {', '.join(BACKENDS)}")
    if name == "pyspark" and shutil.which("java") is None and "SPARK_REMOTE" not in os.environ:
        raise BatchError("the pyspark backend needs a Java runtime and there is no java on PATH",
                         hint="install a JRE (Debian: apt-get install openjdk-17-jre-headless) or use "
                              "--backend duckdb")
    if name == "postgres":
        url = parse_url(db)
        if url.get_backend_name() != "postgresql":
            raise BatchError(f"the postgres backend does not support {url.get_backend_name()} stores "
                             f"({redact_url(url)}): it runs the policy inside the store's PostgreSQL "
                             "server", hint="--db postgresql+psycopg://..., or --backend duckdb")
    return backend


def _spark(backend: Backend, threads: int | None) -> Iterator[Session]:
    import ibis
    from pyspark.sql import SparkSession

    master = os.environ.get("TACTFUL_SPARK_MASTER", f"local[{threads or '*'}]")
    builder = SparkSession.builder.appName("tactful-batch").config("spark.ui.enabled", "false") \
        .config("spark.sql.session.timeZone", "UTC")
    if "SPARK_REMOTE" not in os.environ:
        builder = builder.master(master)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    con = ibis.pyspark.connect(session)

    def table(frame: pa.Table) -> Any:
        session.createDataFrame(frame.to_pandas()).createOrReplaceTempView("tactful_features")
        return con.table("tactful_features")

    try:
        yield Session(backend, con, table)
    finally:
        session.stop()


def _postgres(backend: Backend, db: str | None) -> Iterator[Session]:
    url = parse_url(db)
    import ibis

    try:
        con = ibis.postgres.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                                    database=url.database)
    except Exception as exc:
        from tactful.errors import StoreError

        raise StoreError(f"cannot connect to {redact_url(url)}: {exc}") from None
    try:
        yield Session(backend, con, lambda frame: con.create_table("tactful_features", frame, temp=True,
                                                                    overwrite=True))
    finally:
        con.disconnect()
