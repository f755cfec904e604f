"""Opening, creating and upgrading a store; bulk upserts; import batches (provenance).

The URL picks the backend: ``sqlite:///path`` (the default, ``tactful.db`` in the working
directory) or ``postgresql+psycopg://user@host/db``. ``--db`` or ``TACTFUL_DB`` sets it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Dialect, Engine

from tactful import __version__
from tactful.errors import StoreError
from tactful.files import open_new_private_file
from tactful.store import bookkeeping, tables
from tactful.store.bookkeeping import ImportState
from tactful.store.failures import remember_url, store_error
from tactful.store.retry import key_ordered

DEFAULT_URL = "sqlite:///tactful.db"
SUPPORTED_BACKENDS = ("sqlite", "postgresql")
URL_FORMS = "sqlite:///path.db (a file), or postgresql+psycopg://user:password@host:port/dbname"
# The Alembic scripts (tests point this at a copy with an extra revision to exercise upgrades).
MIGRATIONS_LOCATION = str(resources.files("tactful.store") / "migrations")
CONNECT_TIMEOUT_S = 10  # PostgreSQL: fail in seconds, not minutes, when the host does not answer
SQLITE_BUSY_TIMEOUT_S = 30.0  # SQLite: how long to wait for another writer (?timeout=SECONDS in the URL)
# PostgreSQL: the advisory lock `tactful init` holds while it migrates (two inits: one waits)
INIT_LOCK_KEY = 0x7AC7F01

_PASSWORD_RE = re.compile(r"(://[^:/@]*:)[^@/]*@")


def resolve_url(url: str | None = None) -> str:
    """``--db`` wins, then ``TACTFUL_DB``, then ``sqlite:///tactful.db``. A bare path means SQLite."""
    chosen = url or os.environ.get("TACTFUL_DB") or DEFAULT_URL
    if "://" not in chosen:
        chosen = f"sqlite:///{chosen}"
    if chosen.startswith("postgresql://") or chosen.startswith("postgres://"):
        chosen = "postgresql+psycopg://" + chosen.split("://", 1)[1]
    return chosen


def redact_url(url: str | URL) -> str:
    """The URL as text with its password replaced by ``***`` (safe to print and to log)."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return _PASSWORD_RE.sub(r"\1***@", url)


def parse_url(url: str | None = None) -> URL:
    """The resolved store URL, checked: a supported backend, a database name, a valid port."""
    resolved = resolve_url(url)
    shown = redact_url(resolved)
    try:
        parsed = sa.engine.make_url(resolved)
        port = parsed.port
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise StoreError(f"malformed store URL {shown!r}: {exc}", hint=f"use {URL_FORMS}") from exc
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise StoreError(f"unsupported store backend {backend!r} in {shown!r}: Tactful stores live in "
                         "SQLite or PostgreSQL", hint=f"use {URL_FORMS}")
    if port is not None and not 0 < port < 65536:
        raise StoreError(f"malformed store URL {shown!r}: port {port} is not between 1 and 65535",
                         hint=f"use {URL_FORMS}")
    if not parsed.database:
        raise StoreError(f"store URL {shown!r} names no database", hint=f"use {URL_FORMS}")
    return parsed


def _sqlite_timeout(parsed: URL) -> float:
    raw = parsed.query.get("timeout")
    if raw is None:
        return SQLITE_BUSY_TIMEOUT_S
    text = raw if isinstance(raw, str) else raw[-1]
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 86_400:
        raise StoreError(f"store URL {redact_url(parsed)!r}: timeout={text!r} is not a number of seconds "
                         "between 0 and 86400", hint="e.g. sqlite:///shop.db?timeout=60")
    return value


def _sqlite_pragmas(busy_ms: int) -> Any:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={int(busy_ms)}")  # first: the pragmas below may wait too
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()
    return on_connect


def make_engine(url: str | None = None) -> Engine:
    """An engine for the store at ``url`` (see :func:`resolve_url`). Does not create anything."""
    parsed = parse_url(url)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    busy_s = SQLITE_BUSY_TIMEOUT_S
    if parsed.get_backend_name() == "sqlite":
        busy_s = _sqlite_timeout(parsed)
        connect_args["timeout"] = busy_s
        parsed = parsed.difference_update_query(["timeout"])
        if parsed.query:  # pysqlite ignores them with a warning that names our source line
            raise StoreError(f"store URL {redact_url(parsed)!r}: unknown option(s) "
                             f"{', '.join(sorted(parsed.query))}; a sqlite:/// URL takes only timeout",
                             hint="e.g. sqlite:///shop.db?timeout=60")
    try:
        engine = sa.create_engine(parsed, future=True, connect_args=connect_args)
    except (sa.exc.ArgumentError, ModuleNotFoundError) as exc:
        raise StoreError(f"cannot open store {redact_url(parsed)!r}: {exc}",
                         hint=f"use {URL_FORMS} (the PostgreSQL driver is psycopg 3: +psycopg)") from exc
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas(int(busy_s * 1000)))
        _create_owner_only(engine)
    remember_url(redact_url(engine.url))
    return engine


# --------------------------------------------------------------------------- owner-only store files


def _create_owner_only(engine: Engine) -> None:
    """Make a new SQLite store file readable and writable by its owner only (0600; it holds personal
    data). SQLite would create it 0644 (less the umask); so, just before the first connection, an
    absent file is created empty with mode 0600 (an empty file is a new database to SQLite), and
    SQLite gives the ``-wal``, ``-journal`` and ``-shm`` files it makes the mode of the database file.
    An existing file keeps its mode."""
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = database

    @sa.event.listens_for(engine, "do_connect")
    def _before_connect(*_args: Any) -> None:
        try:
            os.close(open_new_private_file(path, StoreError, exists=f"{path} already exists"))
        except StoreError:
            return  # it exists (and keeps its mode), or SQLite will report why it cannot open it (exit 3)


def _unreachable(engine: Engine, exc: sa.exc.DBAPIError) -> StoreError:
    """A StoreError for a failed connection that names the URL and says what to do."""
    shown = redact_url(engine.url)
    detail = " ".join(str(exc.orig).split())
    url = engine.url
    known = store_error(exc, shown, known_only=True)
    if known is not None:  # locked, read-only, damaged, no rights...
        return known
    if engine.dialect.name == "sqlite":
        hint = "check that the directory exists and is writable, and that the file is a SQLite database"
    elif "does not exist" in detail and "database" in detail:
        hint = (f"create the database first: createdb -h {url.host or 'localhost'} -p {url.port or 5432} "
                f"-U {url.username or 'postgres'} {url.database}   (or CREATE DATABASE \"{url.database}\"), "
                "then run `tactful init`")
    elif "password" in detail or "authentication" in detail:
        hint = "check the user and password in the URL and the server's pg_hba.conf"
    else:
        hint = (f"check that PostgreSQL is running and accepts TCP connections on "
                f"{url.host or 'localhost'}:{url.port or 5432}, and that the URL has the form "
                "postgresql+psycopg://user:password@host:port/dbname")
    return StoreError(f"cannot reach store {shown}: {detail}", hint=hint)


def _script_config() -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS_LOCATION)
    return cfg


def _alembic_config(engine: Engine) -> Any:
    cfg = _script_config()
    # Alembic's config is an ini parser: a literal % in the URL (an escaped password) must be doubled.
    cfg.set_main_option("sqlalchemy.url",
                        engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    """The newest schema revision this version of Tactful knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_script_config()).get_current_head()
    assert head is not None, "the store has no migrations"
    return head


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {rev.revision for rev in ScriptDirectory.from_config(_script_config()).walk_revisions()}


def _check_known(engine: Engine, current: str | None) -> None:
    if current is not None and current not in _known_revisions():
        raise StoreError(
            f"store {redact_url(engine.url)} is at schema {current}, which this version of Tactful "
            f"({__version__}) does not know: it was created or upgraded by a newer version",
            hint="upgrade Tactful (pip install -U tactful), or point --db at another store",
        )


@dataclass(frozen=True)
class InitResult:
    """What :func:`initialise` did: ``created``, ``upgraded`` or ``up_to_date``."""

    engine: Engine
    action: Literal["created", "upgraded", "up_to_date"]
    from_revision: str | None
    to_revision: str

    @property
    def url(self) -> str:
        """The store URL with its password hidden."""
        return redact_url(self.engine.url)

    def describe(self) -> str:
        if self.action == "created":
            return f"created store {self.url} (schema {self.to_revision})"
        if self.action == "upgraded":
            return f"upgraded store {self.url} from schema {self.from_revision} to {self.to_revision}"
        return f"store {self.url} is already up to date (schema {self.to_revision})"


def initialise(url: str | None = None) -> InitResult:
    """Create the store, or upgrade it to the newest schema (Alembic ``upgrade head``); say which.

    Atomic: the check and every migration run in one transaction that holds the store's write lock
    (SQLite: ``BEGIN EXCLUSIVE``; PostgreSQL: a transaction-scoped advisory lock, and PostgreSQL's DDL
    is transactional). A failed or killed init leaves the store as it was (a new SQLite file stays
    empty) and the next init succeeds; of two concurrent inits one waits for the other, then finds
    the store up to date.
    """
    from alembic import command
    from alembic.util import CommandError

    engine = make_engine(url)
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        if path and path != ":memory:" and not path.startswith("file:"):
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the directory for store {redact_url(engine.url)}: {exc}",
                                 hint="choose a path in a writable directory") from exc
    head = head_revision()
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN EXCLUSIVE")
            else:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": INIT_LOCK_KEY})
            before = _revision(conn, engine)
            _check_known(engine, before)
            if before != head:
                cfg = _alembic_config(engine)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
            after = _revision(conn, engine)
            if after != head:  # pragma: no cover - Alembic reported success but the stamp disagrees
                raise StoreError(f"store {redact_url(engine.url)} is at schema {after} after upgrading "
                                 f"to {head}")
            bookkeeping.sweep_interrupted(conn)
            conn.commit()
    except sa.exc.DBAPIError as exc:
        engine.dispose()
        raise _unreachable(engine, exc) from exc
    except CommandError as exc:
        engine.dispose()
        raise StoreError(f"cannot upgrade store {redact_url(engine.url)}: {exc}",
                         hint="see docs/operations-postgresql.md, section Upgrades") from exc
    except BaseException:
        engine.dispose()
        raise
    action: Literal["created", "upgraded", "up_to_date"] = (
        "created" if before is None else "upgraded" if before != head else "up_to_date")
    return InitResult(engine=engine, action=action, from_revision=before, to_revision=head)


def init_store(url: str | None = None) -> Engine:
    """Create the store, or upgrade it to the newest schema; returns its engine."""
    return initialise(url).engine


def _revision(conn: Connection, engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    heads = MigrationContext.configure(conn).get_current_heads()
    if len(heads) > 1:
        raise StoreError(
            f"store {redact_url(engine.url)} has {len(heads)} rows in alembic_version "
            f"({', '.join(sorted(heads))}): which schema it is at cannot be told (stamped by hand or by "
            "another tool?)",
            hint="keep only the row of the schema the tables really have, e.g. "
                 "DELETE FROM alembic_version WHERE version_num <> '<revision>'; then `tactful init` "
                 "(docs/store.md, section Errors after opening)")
    return heads[0] if heads else None


def schema_revision(engine: Engine) -> str | None:
    """The Alembic revision the store is at, or None when it was never initialised."""
    with engine.connect() as conn:
        return _revision(conn, engine)


def incomplete_error(engine: Engine, mark: bookkeeping.StoreMark) -> StoreError:
    """The error (and fix) for a store carrying a mark such as ``incomplete``."""
    when = mark.since.strftime("%Y-%m-%d %H:%M:%S UTC")
    still = (f"; its process (pid {mark.pid}) is still running: wait for it to finish"
             if mark.owner_running else "")
    return StoreError(f"store {redact_url(engine.url)} is {mark.name}: {mark.reason} (since {when}){still}",
                      hint=mark.fix)


def store_marks(engine: Engine) -> list[bookkeeping.StoreMark]:
    """The marks on the store (``incomplete`` while a bulk load has not finished)."""
    with engine.connect() as conn:
        return bookkeeping.read_marks(conn)


def open_store(url: str | None = None, *, allow_incomplete: bool = False) -> Engine:
    """An engine for an existing, up-to-date store; a clear error when it needs ``tactful init``.

    A store marked incomplete (a ``tactful sample`` build that did not finish) is refused with its fix,
    unless ``allow_incomplete`` (for commands that diagnose the store, such as ``tactful imports list``).
    """
    engine = make_engine(url)
    shown = redact_url(engine.url)
    database = engine.url.database
    if (engine.dialect.name == "sqlite" and database and database != ":memory:"
            and not database.startswith("file:") and not Path(database).exists()):
        # Connecting would create an empty file: say that the store is missing instead.
        raise StoreError(f"store {shown} does not exist",
                         hint="run `tactful init` (with the same --db) to create it, or check the path")
    try:
        with engine.connect() as conn:
            current = _revision(conn, engine)
            _check_known(engine, current)
            head = head_revision()
            if current != head:
                state = "is not initialised" if current is None else f"is at schema {current}, not {head}"
                raise StoreError(f"store {shown} {state}",
                                 hint="run `tactful init` (with the same --db) to create or upgrade it")
            marks = bookkeeping.read_marks(conn)
    except sa.exc.DBAPIError as exc:
        engine.dispose()
        raise _unreachable(engine, exc) from exc
    except BaseException:
        engine.dispose()
        raise
    if marks and not allow_incomplete:
        engine.dispose()
        raise incomplete_error(engine, marks[0])
    return engine


def conflict_insert(table: sa.Table, dialect: Dialect) -> Any:
    """``INSERT INTO table`` in ``dialect``'s own form, the one that takes ``ON CONFLICT ... DO
    NOTHING / DO UPDATE`` (SQLite and PostgreSQL: the store's two backends)."""
    if dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    if dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    raise StoreError(f"inserting with ON CONFLICT is not supported on {dialect.name}")


def upsert(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert ``rows`` into ``table``, replacing rows with the same primary key. Returns the count.

    One multi-row statement per call (``INSERT ... ON CONFLICT (pk) DO UPDATE``) on both SQLite and
    PostgreSQL, so re-importing the same file is idempotent. Call it with batches of a few thousand.
    """
    if not rows:
        return 0
    pk = [c.name for c in table.primary_key.columns]
    stmt = conflict_insert(table, conn.dialect)
    cols = list(rows[0].keys())
    if all(k in cols for k in pk):  # key order: concurrent writers lock shared rows in one order
        rows = key_ordered({tuple(r[k] for k in pk): r for r in rows})
    update = {c: stmt.excluded[c] for c in cols if c not in pk}
    stmt = stmt.on_conflict_do_update(index_elements=pk, set_=update) if update else \
        stmt.on_conflict_do_nothing(index_elements=pk)
    conn.execute(stmt, list(rows))
    return len(rows)


def begin_import(conn: Connection, *, kind: str, origin: str, source_label: str | None = None,
                 fmt: str | None = None, mapping: Mapping[str, Any] | None = None) -> int:
    """Record the start of an import batch or API write; returns its id for the rows' ``import_id``."""
    bookkeeping.sweep_interrupted(conn)  # the truth about earlier imports whose process died
    now = datetime.now(UTC)
    result = conn.execute(
        tables.imports.insert().values(
            kind=kind, origin=origin, source_label=source_label, format=fmt,
            mapping=dict(mapping) if mapping else None, started_at=now,
            rows_read=0, rows_imported=0, rows_quarantined=0, tool_version=__version__,
            state=ImportState.RUNNING.value, heartbeat_at=now, **bookkeeping.owner(),
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def finish_import(conn: Connection, import_id: int, *, rows_read: int, rows_imported: int,
                  rows_quarantined: int, quarantine_file: str | None = None) -> None:
    """Record the end of an import batch: its final counts, state ``finished``."""
    conn.execute(
        tables.imports.update().where(tables.imports.c.id == import_id).values(
            finished_at=datetime.now(UTC), rows_read=rows_read, rows_imported=rows_imported,
            rows_quarantined=rows_quarantined, quarantine_file=quarantine_file,
            state=ImportState.FINISHED.value, heartbeat_at=datetime.now(UTC),
        )
    )


def stamp(rows: Iterable[dict[str, Any]], import_id: int, at: datetime | None = None) -> list[dict[str, Any]]:
    """Add provenance (``import_id``, ``written_at``) to each row."""
    when = at or datetime.now(UTC)
    return [{**r, "import_id": import_id, "written_at": when} for r in rows]
