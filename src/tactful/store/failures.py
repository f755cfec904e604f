"""Store errors after opening, turned into a :class:`~tactful.errors.StoreError` that says what to do.

A command that opened the store can still meet it broken: another process holds the SQLite write lock
past the busy timeout, the file (or its directory) is read-only, a page is corrupt, the PostgreSQL role
may read but not write, the disk is full, the server went away. The driver raises its own exception
(``sqlite3.OperationalError``, a ``psycopg.errors`` class, or SQLAlchemy's wrapper of either) from
wherever the command was; :func:`store_error` recognises them, and the CLI's single error handler
(:func:`tactful.cli.main`) prints the result with exit code 3, never a traceback.

:func:`tactful.store.db.make_engine` remembers the URL of the store the command opened, so the message
can name it (password hidden) without every caller passing it along.
"""

from __future__ import annotations

import sqlite3
from contextvars import ContextVar
from typing import Any

import sqlalchemy as sa

from tactful.errors import StoreError

_current_url: ContextVar[str | None] = ContextVar("tactful_store_url", default=None)

PG_GRANTS = ("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO <role>; "
             "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO <role>")


def remember_url(shown: str) -> None:
    """Record the (password-hidden) URL of the store this process works on, for messages."""
    _current_url.set(shown)


def driver_error(exc: BaseException) -> BaseException | None:
    """The driver's own exception behind ``exc`` (itself, SQLAlchemy's ``orig``, or a cause)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa.exc.DBAPIError) and current.orig is not None:
            return current.orig
        if isinstance(current, sqlite3.Error) or _is_psycopg(current):
            return current
        current = current.__cause__ or current.__context__
    return None


def _is_psycopg(exc: BaseException) -> bool:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    return isinstance(exc, psycopg.Error)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _sqlite(err: sqlite3.Error, where: str) -> StoreError | None:
    detail = _one_line(err)
    text = detail.lower()
    if "locked" in text or "busy" in text:
        return StoreError(
            f"store {where} is locked: another process kept it busy for longer than the busy timeout "
            f"({detail})",
            hint="wait for the other writer (an import, a sample build, a campaign) to finish and run the "
                 "command again; `fuser FILE` shows who has the file open; a longer wait: add "
                 "?timeout=SECONDS to the sqlite:/// URL (default 30)")
    if "readonly" in text or "read-only" in text or "read only" in text:
        return StoreError(
            f"store {where} is read-only: {detail}",
            hint="make the file and its directory writable by this user (SQLite writes -wal and -shm files "
                 "next to it), or point --db at a writable copy")
    if "malformed" in text or "not a database" in text or "corrupt" in text:
        return StoreError(
            f"store {where} is damaged: {detail}",
            hint="restore it from a backup (`sqlite3 FILE \".backup copy.db\"` makes one), or salvage "
                 "what is readable with `sqlite3 FILE .recover | sqlite3 new.db`, then `tactful init`")
    if "disk is full" in text or "database or disk is full" in text:
        return StoreError(f"store {where}: the disk is full ({detail})",
                          hint="free some space and run the command again; nothing half-written was kept")
    if "unable to open" in text or "disk i/o" in text:
        return StoreError(f"store {where} cannot be read or written: {detail}",
                          hint="check that the file and its directory exist and are readable and writable")
    return None


def _postgres(err: Any, where: str) -> StoreError | None:
    detail = _one_line(err)
    state = getattr(err, "sqlstate", None) or ""
    if state == "42501":  # insufficient_privilege
        return StoreError(
            f"the PostgreSQL role lacks a right on store {where}: {detail}",
            hint=f"as the database owner: {PG_GRANTS} (docs/operations-postgresql.md, section Roles); "
                 "`tactful init` needs the owner or CREATE on the schema")
    if state == "25006":  # read_only_sql_transaction (a standby, default_transaction_read_only)
        return StoreError(f"store {where} accepts no writes: {detail}",
                          hint="point --db at the primary server, not a read-only standby")
    if state in ("40P01", "40001"):
        return StoreError(
            f"store {where}: a concurrent writer kept conflicting with this one after several retries "
            f"({detail})", hint="run the command again; nothing of the failed batch was kept")
    if state == "55P03":
        return StoreError(f"store {where} is locked by another session: {detail}",
                          hint="wait for it to finish, or find it in pg_stat_activity")
    if state == "53100":
        return StoreError(f"store {where}: the server's disk is full ({detail})",
                          hint="free space on the database server and run the command again")
    if state.startswith("08") or state.startswith("57P"):
        return StoreError(f"lost the connection to store {where}: {detail}",
                          hint="check that the server is running; the batch being written was not kept, "
                               "run the command again")
    if state.startswith("XX") or state == "58030":
        return StoreError(f"store {where} reported an internal error or damage: {detail}",
                          hint="ask the database administrator to check the server log")
    return None


def store_error(exc: BaseException, url: str | None = None, *, known_only: bool = False) -> StoreError | None:
    """A :class:`StoreError` for a database error behind ``exc``, or None when there is none.

    ``known_only``: only the error classes above (locked, read-only, damaged, privileges, …), not any
    other database error (used when ``exc`` is already a Tactful error with a message of its own).
    """
    if isinstance(exc, StoreError):
        return exc
    err = driver_error(exc)
    if err is None:
        return None
    where = url or _current_url.get() or "(unknown URL)"
    found = _sqlite(err, where) if isinstance(err, sqlite3.Error) else _postgres(err, where)
    if found is not None or known_only:
        return found
    return StoreError(f"store {where} failed: {_one_line(err)}",
                      hint="run the command again; if it keeps failing, check the store "
                           "(docs/store.md, section Errors after opening)")
