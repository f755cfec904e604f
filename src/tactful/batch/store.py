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
from collections.abc import Mapping
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
            database: Path | None = None) -> Any:
    """An in-memory DuckDB (through Ibis) that loads extensions only from the installed wheels; with
    ``database``, a DuckDB file there instead (a new one: tables larger than ``memory_limit`` live on
    disk, and the spill files go beside it)."""
    config: dict[str, Any] = {"extension_directory": str(extension_directory()),
                              "autoinstall_known_extensions": False}
    if threads is not None:
        config["threads"] = threads
    if memory_limit is not None:
        config["memory_limit"] = memory_limit
    if database is not None:
        config["temp_directory"] = str(database.with_name(database.name + ".tmp"))
        return ibis.duckdb.connect(str(database), **config)
    return ibis.duckdb.connect(**config)


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
    present = set(con.list_tables(database=(CATALOG, schema)))
    typed: dict[str, Any] = {}
    for name, table in store_tables.metadata.tables.items():
        if name not in present:
            continue
        raw = con.table(name, database=(CATALOG, schema))
        want = store_schema(table)
        typed[name] = raw.select(**{c: _cast(raw[c], t) for c, t in want.items() if c in raw.columns})
    return AttachedStore(con=con, dialect=dialect, url=shown, tables=typed)


def _cast(col: Any, want: dt.DataType) -> Any:
    have = col.type()
    if have == want:
        return col
    if want.is_timestamp() and have.is_timestamp():
        # SQLite timestamps are stored without a zone; the store writes UTC
        return col.cast(dt.Timestamp()).cast(want) if have.timezone is None else col.cast(want)
    return col.cast(want)
