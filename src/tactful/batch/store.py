"""Reading the store in place: DuckDB attaches the SQLite or PostgreSQL store read-only, offline.

DuckDB's ``sqlite`` and ``postgres`` extensions are normally downloaded on first use, which cannot
work without the network; the ``duckdb-ext-sqlite`` / ``duckdb-ext-postgres`` wheels ship them for
the pinned DuckDB release. :func:`extension_directory` finds their directory from the installed
package (never a hard-coded path), :func:`connect` opens DuckDB on it with automatic installation
switched off, and :func:`attach_store` attaches a store URL as the catalog ``store`` and returns its
tables as Ibis tables typed after :mod:`tactful.store.tables` (SQLite's loose column types become the
store's declared ones).
"""

from __future__ import annotations

import importlib.metadata
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import sqlalchemy as sa

from tactful.errors import StoreError
from tactful.store import tables as store_tables
from tactful.store.db import parse_url, redact_url

#: The catalog name the store is attached under.
CATALOG = "store"
#: The DuckDB extension of each store dialect, and the wheel that ships it.
EXTENSIONS: Mapping[str, tuple[str, str]] = {
    "sqlite": ("sqlite", "duckdb-ext-sqlite"),
    "postgresql": ("postgres", "duckdb-ext-postgres"),
}


def extension_directory() -> Path:
    """The directory holding the offline DuckDB extensions (``duckdb_ext/extensions`` of the
    installed ``duckdb-ext-*`` wheels)."""
    for dist in ("duckdb-ext-sqlite", "duckdb-ext-postgres"):
        try:
            path = Path(str(importlib.metadata.distribution(dist).locate_file("duckdb_ext/extensions")))
        except importlib.metadata.PackageNotFoundError:
            continue
        if path.is_dir():
            return path
    raise StoreError("the DuckDB store extensions are not installed",
                     hint="pip install duckdb-ext-sqlite duckdb-ext-postgres (see pyproject.toml)")


def connect(*, threads: int | None = None, memory_limit: str | None = None,
            workdir: Path | None = None) -> Any:
    """A DuckDB (through Ibis) that loads extensions only from the installed wheels: in memory, or,
    with ``workdir`` (a private directory the caller made and removes), a database file there with
    its spill directory beside it, so that the tables a run materializes (:func:`materialize`) can
    leave memory when they outgrow ``memory_limit``."""
    config: dict[str, Any] = {"extension_directory": str(extension_directory()),
                              "autoinstall_known_extensions": False}
    if threads is not None:
        config["threads"] = threads
    if memory_limit is not None:
        config["memory_limit"] = memory_limit
    if workdir is None:
        return ibis.duckdb.connect(**config)
    config["temp_directory"] = str(workdir / "spill")
    return ibis.duckdb.connect(str(workdir / "run.duckdb"), **config)


def materialize(con: Any, expr: Any) -> Any:
    """Run ``expr`` once into a new table of the connection's database and return that table: in a
    database file (:func:`connect` with ``workdir``) its blocks can be evicted to the file under
    memory pressure, which DuckDB's temporary tables cannot. The table lives as long as the
    connection's database (a run's file is removed with its directory)."""
    return con.create_table(f"tactful_{uuid.uuid4().hex}", expr)


def _sql_string(text: str) -> str:
    """A SQL string literal (DuckDB's ATTACH takes no parameters)."""
    return "'" + text.replace("'", "''") + "'"


def _ibis_type(column: sa.Column[Any]) -> dt.DataType:
    t = column.type
    if isinstance(t, sa.Boolean):
        return dt.boolean
    if isinstance(t, sa.Integer):
        return dt.int64
    if isinstance(t, sa.Float):
        return dt.float64
    if isinstance(t, sa.DateTime):
        return dt.Timestamp(timezone="UTC")
    if isinstance(t, sa.Date):
        return dt.date
    return dt.string  # String, Text, JSON (its text)


def store_schema(table: sa.Table) -> ibis.Schema:
    """The Ibis schema of a store table, from its SQLAlchemy definition."""
    return ibis.schema({c.name: _ibis_type(c) for c in table.columns})


@dataclass(frozen=True)
class AttachedStore:
    """The store's tables, attached read-only, as typed Ibis tables (``store.table("customers")``)."""

    con: Any
    dialect: str
    url: str  # redacted, for messages
    tables: Mapping[str, Any]

    def table(self, name: str) -> Any:
        try:
            return self.tables[name]
        except KeyError:
            raise StoreError(f"the store has no table {name!r}") from None


def attach_store(con: Any, url: str | None = None) -> AttachedStore:
    """Attach the store at ``url`` (SQLite file or PostgreSQL) read-only to the DuckDB connection
    ``con`` and return its tables typed after the store's schema. Raises :class:`StoreError` for an
    unsupported URL, a missing SQLite file or a store DuckDB cannot open."""
    parsed = parse_url(url)
    dialect = parsed.get_backend_name()
    shown = redact_url(parsed)
    if dialect not in EXTENSIONS:
        raise StoreError(f"the batch reads SQLite or PostgreSQL stores, not {dialect} ({shown})")
    extension, _ = EXTENSIONS[dialect]
    if dialect == "sqlite":
        path = parsed.database or ""
        if not path or path == ":memory:" or not Path(path).is_file():
            raise StoreError(f"no SQLite store at {shown}", hint="tactful store init, or --db URL")
        target = str(Path(path).resolve())
        schema = "main"
    else:
        target = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        schema = "public"
    try:
        con.raw_sql(f"LOAD {extension}")
        con.raw_sql(f"ATTACH {_sql_string(target)} AS {CATALOG} (TYPE {extension}, READ_ONLY)")
    except Exception as exc:
        raise StoreError(f"DuckDB could not attach the store {shown}: {exc}") from None
    present = _table_columns(parsed, shown)
    typed: dict[str, Any] = {}
    for name, table in store_tables.metadata.tables.items():
        if name in present:
            typed[name] = _typed_table(con, name, table, schema, present[name])
    return AttachedStore(con=con, dialect=dialect, url=shown, tables=typed)


def copy_store(con: Any, url: str | None, columns: Mapping[str, Sequence[str] | None]) -> AttachedStore:
    """Copy the store's tables named in ``columns`` (each with the columns listed, or all of them for
    None) into native tables of the DuckDB connection ``con`` (``store_<name>``, typed as
    :func:`attach_store` types them), detach the store, and return the copies as an
    :class:`AttachedStore`. A run that reads the same tables many times (a campaign decides block after
    block) reads the store once: later scans are DuckDB's own (parallel, filtered, spilled to the
    connection's database file) instead of the SQLite or PostgreSQL scanner's."""
    attached = attach_store(con, url)
    copies: dict[str, Any] = {}
    try:
        for name, wanted in columns.items():
            table = attached.table(name)
            if wanted is not None:
                table = table.select(*wanted)
            copies[name] = con.create_table(f"store_{name}", table, overwrite=True)
    finally:
        con.raw_sql(f"DETACH {CATALOG}")
    return AttachedStore(con=con, dialect=attached.dialect, url=attached.url, tables=copies)


def _table_columns(parsed: sa.URL, shown: str) -> dict[str, set[str]]:
    """The store's tables and their columns, asked of the database itself: DuckDB's catalog listing would bind
    every table of the attached store, and its SQLite scanner spends time in proportion to a table's
    size on each bind (seconds for a 1 M-customer store's order lines)."""
    if parsed.get_backend_name() == "sqlite":
        url = sa.URL.create("sqlite", database=f"file:{Path(parsed.database or '').resolve()}?mode=ro",
                            query={"uri": "true"})
    else:
        url = parsed
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        inspector = sa.inspect(engine)
        return {name: {c["name"] for c in inspector.get_columns(name)}
                for name in inspector.get_table_names()}
    except sa.exc.SQLAlchemyError as exc:
        detail = " ".join(str(getattr(exc, "orig", None) or exc).split())
        raise StoreError(f"cannot list the tables of the store {shown}: {detail}") from None
    finally:
        engine.dispose()


_SQL_TYPES = {"boolean": "BOOLEAN", "int64": "BIGINT", "float64": "DOUBLE", "date": "DATE",
              "string": "VARCHAR"}


def _typed_table(con: Any, name: str, table: sa.Table, schema: str, columns: set[str]) -> Any:
    """The attached table ``name`` (its ``columns`` the store holds: an older store may lack some) as
    an Ibis table of the store's declared types, given as SQL with
    its schema: Ibis then needs no DESCRIBE, so nothing binds the table until a query reads it. A
    timestamp goes through a zone-less timestamp (SQLite stores UTC without a zone; a PostgreSQL
    ``timestamptz`` becomes its UTC wall time, as the session's zone is UTC) to ``timestamptz``."""
    want = ibis.schema({c: t for c, t in store_schema(table).items() if c in columns})
    cols = []
    for col, t in want.items():
        quoted = '"' + col.replace('"', '""') + '"'
        if t.is_timestamp():
            cols.append(f"CAST(CAST({quoted} AS TIMESTAMP) AS TIMESTAMPTZ) AS {quoted}")
        else:
            cols.append(f"CAST({quoted} AS {_SQL_TYPES[str(t)]}) AS {quoted}")
    sql = f'SELECT {", ".join(cols)} FROM {CATALOG}."{schema}"."{name}"'
    return con.sql(sql, schema=want)
