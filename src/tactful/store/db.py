"""Opening, creating and upgrading a store; bulk upserts; import batches (provenance).

The URL picks the backend: ``sqlite:///path`` (the default, ``tactful.db`` in the working
directory) or ``postgresql+psycopg://user@host/db``. ``--db`` or ``TACTFUL_DB`` sets it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tactful import __version__
from tactful.errors import StoreError
from tactful.store import tables

DEFAULT_URL = "sqlite:///tactful.db"


def resolve_url(url: str | None = None) -> str:
    """``--db`` wins, then ``TACTFUL_DB``, then ``sqlite:///tactful.db``. A bare path means SQLite."""
    chosen = url or os.environ.get("TACTFUL_DB") or DEFAULT_URL
    if "://" not in chosen:
        chosen = f"sqlite:///{chosen}"
    if chosen.startswith("postgresql://") or chosen.startswith("postgres://"):
        chosen = "postgresql+psycopg://" + chosen.split("://", 1)[1]
    return chosen


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str | None = None) -> Engine:
    """An engine for the store at ``url`` (see :func:`resolve_url`). Does not create anything."""
    resolved = resolve_url(url)
    try:
        engine = sa.create_engine(resolved, future=True)
    except (sa.exc.ArgumentError, ModuleNotFoundError) as exc:
        raise StoreError(f"cannot open store {resolved!r}: {exc}",
                         hint="use sqlite:///path.db or postgresql+psycopg://user@host:port/db") from exc
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("tactful.store") / "migrations"))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    cfg.attributes["engine"] = engine
    return cfg


def init_store(url: str | None = None) -> Engine:
    """Create the store, or upgrade it to the newest schema (Alembic ``upgrade head``)."""
    from alembic import command

    engine = make_engine(url)
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        command.upgrade(_alembic_config(engine), "head")
    except sa.exc.OperationalError as exc:
        raise StoreError(f"cannot reach store {engine.url.render_as_string()}: {exc.orig}") from exc
    return engine


def schema_revision(engine: Engine) -> str | None:
    """The Alembic revision the store is at, or None when it was never initialised."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def open_store(url: str | None = None) -> Engine:
    """An engine for an existing, up-to-date store; a clear error when it needs ``tactful init``."""
    from alembic.script import ScriptDirectory

    engine = make_engine(url)
    try:
        current = schema_revision(engine)
    except sa.exc.OperationalError as exc:
        raise StoreError(f"cannot reach store {engine.url.render_as_string()}: {exc.orig}") from exc
    head = ScriptDirectory.from_config(_alembic_config(engine)).get_current_head()
    if current != head:
        state = "is not initialised" if current is None else f"is at schema {current}, not {head}"
        raise StoreError(f"store {engine.url.render_as_string()} {state}",
                         hint="run `tactful init` (with the same --db) to create or upgrade it")
    return engine


def upsert(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert ``rows`` into ``table``, replacing rows with the same primary key. Returns the count.

    One multi-row statement per call (``INSERT ... ON CONFLICT (pk) DO UPDATE``) on both SQLite and
    PostgreSQL, so re-importing the same file is idempotent. Call it with batches of a few thousand.
    """
    if not rows:
        return 0
    pk = [c.name for c in table.primary_key.columns]
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(table)
    elif conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table)
    else:  # pragma: no cover - only the two supported backends reach here
        raise StoreError(f"upsert is not supported on {conn.dialect.name}")
    cols = list(rows[0].keys())
    update = {c: stmt.excluded[c] for c in cols if c not in pk}
    stmt = stmt.on_conflict_do_update(index_elements=pk, set_=update) if update else \
        stmt.on_conflict_do_nothing(index_elements=pk)
    conn.execute(stmt, list(rows))
    return len(rows)


def begin_import(conn: Connection, *, kind: str, origin: str, source_label: str | None = None,
                 fmt: str | None = None, mapping: Mapping[str, Any] | None = None) -> int:
    """Record the start of an import batch or API write; returns its id for the rows' ``import_id``."""
    result = conn.execute(
        tables.imports.insert().values(
            kind=kind, origin=origin, source_label=source_label, format=fmt,
            mapping=dict(mapping) if mapping else None, started_at=datetime.now(UTC),
            rows_read=0, rows_imported=0, rows_quarantined=0, tool_version=__version__,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def finish_import(conn: Connection, import_id: int, *, rows_read: int, rows_imported: int,
                  rows_quarantined: int, quarantine_file: str | None = None) -> None:
    conn.execute(
        tables.imports.update().where(tables.imports.c.id == import_id).values(
            finished_at=datetime.now(UTC), rows_read=rows_read, rows_imported=rows_imported,
            rows_quarantined=rows_quarantined, quarantine_file=quarantine_file,
        )
    )


def stamp(rows: Iterable[dict[str, Any]], import_id: int, at: datetime | None = None) -> list[dict[str, Any]]:
    """Add provenance (``import_id``, ``written_at``) to each row."""
    when = at or datetime.now(UTC)
    return [{**r, "import_id": import_id, "written_at": when} for r in rows]
