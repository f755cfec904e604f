"""Bookkeeping that tells the truth: the state of each import, and marks on an incomplete store.

Every ``imports`` row has a ``state``:

* ``running`` — written by :func:`tactful.store.db.begin_import` with the process id, the host name
  and a heartbeat; the importer updates the counts and the heartbeat as each batch commits
  (:class:`ProgressRecorder`), so the row always says how far the import got;
* ``finished`` — :func:`tactful.store.db.finish_import`;
* ``failed`` — :func:`fail_import`, with the error;
* ``interrupted`` — the process stopped without saying so (``kill -9``, a crash, a power cut). Nobody
  can write that at the moment it happens, so it is *derived*: a ``running`` row whose process is gone
  (same host: no such pid; another host: no heartbeat for :data:`STALE_AFTER`) is reported as
  interrupted by :func:`effective_state`, and written as such by :func:`sweep_interrupted` (run when an
  import starts and by ``tactful init``).

The ``store_state`` table holds marks on the whole store. ``incomplete`` is set by a bulk load that
leaves the store unusable until it ends (``tactful sample`` drops secondary indexes on SQLite) and cleared
in the transaction that ends it; :func:`tactful.store.db.open_store` refuses a marked store and names the
fix.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine

from tactful.files import pid_alive
from tactful.store import tables

#: A running import on another host whose heartbeat is older than this is reported as interrupted.
#: The importer beats once per batch (a few thousand rows: well under a minute).
STALE_AFTER = timedelta(minutes=15)
INCOMPLETE = "incomplete"
_ERROR_LIMIT = 2000  # characters of an error kept in imports.error


class ImportState(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


def this_host() -> str:
    return socket.gethostname()[:255]


def owner() -> dict[str, Any]:
    """The columns that say which process owns a running import (or a mark)."""
    return {"pid": os.getpid(), "host": this_host()}


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def owner_alive(pid: int | None, host: str | None, heartbeat_at: datetime | None,
                now: datetime | None = None) -> bool:
    """Whether the process that owns a running import (or a mark) may still be running."""
    if host == this_host() and pid is not None:
        return pid_alive(pid)
    beat = _aware(heartbeat_at)
    if beat is None:
        return False
    return (now or datetime.now(UTC)) - beat < STALE_AFTER


def _get(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, Mapping) else getattr(row, name)


def effective_state(row: Any, now: datetime | None = None) -> ImportState:
    """The state of an ``imports`` row (a Row or a mapping) as it really is: ``running`` only while its
    process lives."""
    try:
        state = ImportState(_get(row, "state"))
    except ValueError:
        return ImportState.INTERRUPTED  # an unknown state is not trusted as running or finished
    if state is ImportState.RUNNING and not owner_alive(_get(row, "pid"), _get(row, "host"),
                                                        _get(row, "heartbeat_at"), now):
        return ImportState.INTERRUPTED
    return state


def interrupted_message(row: Any) -> str:
    return (f"the process (pid {_get(row, 'pid')} on {_get(row, 'host')}) stopped before the import "
            "finished (killed or crashed); the counts are those of the last batch it committed")


def sweep_interrupted(conn: Connection) -> list[int]:
    """Write ``interrupted`` on running imports whose process is gone; returns their ids."""
    im = tables.imports
    # in id order: two sweepers lock the rows they update in the same order (no deadlock)
    rows = conn.execute(sa.select(im.c.id, im.c.state, im.c.pid, im.c.host, im.c.heartbeat_at)
                        .where(im.c.state == ImportState.RUNNING.value).order_by(im.c.id)).all()
    dead = [r for r in rows if effective_state(r) is ImportState.INTERRUPTED]
    for r in dead:
        conn.execute(im.update().where(im.c.id == r.id, im.c.state == ImportState.RUNNING.value)
                     .values(state=ImportState.INTERRUPTED.value, error=interrupted_message(r)))
    return [r.id for r in dead]


def fail_import(engine: Engine, import_id: int, error: BaseException | str) -> None:
    """Mark an import ``failed`` (or ``interrupted`` for Ctrl-C) with the reason; never raises.

    Called while another error is on its way to the user: that error is the one to report, so a
    failure to write the mark (the store itself broken) is swallowed.
    """
    state = ImportState.INTERRUPTED if isinstance(error, KeyboardInterrupt) else ImportState.FAILED
    text = "interrupted (Ctrl-C)" if isinstance(error, KeyboardInterrupt) else \
        " ".join(str(error).split()) or type(error).__name__
    try:
        with engine.begin() as conn:
            conn.execute(tables.imports.update()
                         .where(tables.imports.c.id == import_id,
                                tables.imports.c.state == ImportState.RUNNING.value)
                         .values(state=state.value, error=text[:_ERROR_LIMIT],
                                 finished_at=datetime.now(UTC)))
    except Exception:
        pass


class Heartbeat:
    """Beats for a running import that does not record progress per batch (a bulk load): at most once
    per ``every`` seconds, in its own short transaction, so another host can tell it is alive."""

    def __init__(self, engine: Engine, import_id: int, every: float = 60.0) -> None:
        self.engine = engine
        self.import_id = import_id
        self.every = every
        self._last = time.monotonic()

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self._last < self.every:
            return
        self._last = now
        im = tables.imports
        with self.engine.begin() as conn:
            conn.execute(im.update().where(im.c.id == self.import_id, im.c.state == ImportState.RUNNING.value)
                         .values(heartbeat_at=datetime.now(UTC)))


class ProgressRecorder:
    """Updates an import's counts and heartbeat through a raw DB-API cursor (the importer's writer
    connection), in whatever transaction that cursor is in."""

    def __init__(self, dialect: Dialect, import_id: int) -> None:
        im = tables.imports
        stmt = (im.update().where(im.c.id == sa.bindparam("b_id"))
                .values(rows_read=sa.bindparam("b_read"), rows_imported=sa.bindparam("b_imported"),
                        rows_quarantined=sa.bindparam("b_quarantined"), heartbeat_at=sa.bindparam("b_beat")))
        compiled = stmt.compile(dialect=dialect)
        self.sql = str(compiled)
        self.order: Sequence[str] | None = list(compiled.positiontup) if compiled.positiontup else None
        self.beat = im.c.heartbeat_at.type.bind_processor(dialect)
        self.import_id = import_id

    def record(self, cursor: Any, *, rows_read: int, rows_imported: int, rows_quarantined: int) -> None:
        beat: Any = datetime.now(UTC)
        if self.beat is not None:
            beat = self.beat(beat)
        params = {"b_id": self.import_id, "b_read": rows_read, "b_imported": rows_imported,
                  "b_quarantined": rows_quarantined, "b_beat": beat}
        cursor.execute(self.sql, tuple(params[k] for k in self.order) if self.order else params)


# --------------------------------------------------------------------------- marks on the store


@dataclass(frozen=True)
class StoreMark:
    name: str
    reason: str
    fix: str
    since: datetime
    pid: int | None
    host: str | None

    @property
    def owner_running(self) -> bool:
        return owner_alive(self.pid, self.host, None) if self.host == this_host() else False


def set_mark(conn: Connection, name: str, *, reason: str, fix: str) -> None:
    """Set (or replace) a mark on the store, in the caller's transaction."""
    conn.execute(tables.store_state.delete().where(tables.store_state.c.name == name))
    conn.execute(tables.store_state.insert().values(name=name, reason=reason, fix=fix,
                                                    since=datetime.now(UTC), **owner()))


def clear_mark(conn: Connection, name: str) -> None:
    conn.execute(tables.store_state.delete().where(tables.store_state.c.name == name))


def read_marks(conn: Connection) -> list[StoreMark]:
    st = tables.store_state
    return [StoreMark(r.name, r.reason, r.fix, _aware(r.since) or r.since, r.pid, r.host)
            for r in conn.execute(sa.select(st).order_by(st.c.name)).all()]
