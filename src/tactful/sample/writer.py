"""Bulk writing of column chunks into the store: SQLite executemany, PostgreSQL COPY.

A chunk is a table name and a mapping of column name to a NumPy array (or list) of equal length.
Column kinds are taken from the array dtype:

* ``datetime64[s]`` (NaT = NULL) becomes a timestamp, ``datetime64[D]`` a date, written in the text
  form SQLAlchemy itself uses on SQLite (``YYYY-MM-DD HH:MM:SS.ffffff``) and read by PostgreSQL in
  a UTC session;
* integers, floats and booleans are passed as Python numbers (an integer id in a ``VARCHAR`` column is
  stored as its decimal text by both backends: SQLite's TEXT affinity converts it, COPY is text);
* object arrays hold ``str`` or ``None``.

Every row gets the provenance columns ``import_id`` and ``written_at`` (constants of the batch).
Rows are converted to tuples a slice at a time, so memory stays bounded by the chunk, not the world.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy.engine import Engine

from tactful.errors import SampleError
from tactful.store import tables

SLICE_ROWS = 100_000
SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"

Columns = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Const:
    """A column with the same value in every row (cheaper than a full array)."""

    value: Any


@dataclass(frozen=True, slots=True)
class Chunk:
    """Rows of one table, column-wise (every column but :class:`Const` ones has the same length)."""

    table: str
    columns: Columns

    def __len__(self) -> int:
        for values in self.columns.values():
            if not isinstance(values, Const):
                return len(values)
        return 0

    def column(self, name: str) -> Any:
        """A column as an array or list (a :class:`Const` expanded)."""
        values = self.columns[name]
        if isinstance(values, Const):
            return np.full(len(self), values.value, dtype=object)
        return values


def _day_strings(first: np.datetime64, last: np.datetime64) -> np.ndarray:
    return np.asarray(
        np.datetime_as_string(np.arange(first, last + np.timedelta64(1, "D"), dtype="datetime64[D]")),
        dtype=object,
    )


_TIME_OF_DAY: np.ndarray | None = None


def _time_of_day() -> np.ndarray:
    global _TIME_OF_DAY
    if _TIME_OF_DAY is None:
        _TIME_OF_DAY = np.array(
            [f" {h:02d}:{m:02d}:{s:02d}.000000" for h in range(24) for m in range(60) for s in range(60)],
            dtype=object,
        )
    return _TIME_OF_DAY


def format_timestamps(values: np.ndarray) -> list[str | None]:
    """``datetime64`` (any unit, whole seconds used) to ``YYYY-MM-DD HH:MM:SS.000000``; NaT to None."""
    secs = values.astype("datetime64[s]")
    nat = np.isnat(secs)
    if nat.all():
        return [None] * len(values)
    raw = secs.astype(np.int64)
    valid = raw[~nat] if nat.any() else raw
    days = np.floor_divide(raw, 86_400)
    lo, hi = int(np.floor_divide(valid.min(), 86_400)), int(np.floor_divide(valid.max(), 86_400))
    table = _day_strings(np.datetime64(lo, "D"), np.datetime64(hi, "D"))
    idx = np.clip(days - lo, 0, len(table) - 1)
    out = table[idx] + _time_of_day()[np.mod(raw, 86_400)]
    if nat.any():
        out[nat] = None
    result: list[str | None] = out.tolist()
    return result


def format_dates(values: np.ndarray) -> list[str | None]:
    days = values.astype("datetime64[D]")
    nat = np.isnat(days)
    out = np.asarray(np.datetime_as_string(days), dtype=object)
    if nat.any():
        out[nat] = None
    result: list[str | None] = out.tolist()
    return result


def to_pylist(values: Any) -> list[Any]:
    """One column slice as Python values the drivers accept."""
    if isinstance(values, np.ndarray):
        kind = values.dtype.kind
        if kind == "M":
            unit = np.datetime_data(values.dtype)[0]
            return format_dates(values) if unit in ("D", "W", "M", "Y") else format_timestamps(values)
        if kind == "f":
            out: list[Any] = values.tolist()
            if np.isnan(values).any():
                out = [None if v != v else v for v in out]
            return out
        return list(values.tolist())
    return list(values)


def _slice(values: Any, start: int, stop: int) -> list[Any]:
    if isinstance(values, Const):
        return [values.value] * (stop - start)
    return to_pylist(values[start:stop])


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(values: Any, start: int, stop: int) -> list[str]:
    """A column slice as PostgreSQL COPY text values: \\N for NULL, t/f, escaped strings."""
    if isinstance(values, Const):
        return _copy_text(np.array([values.value], dtype=object), 0, 1) * (stop - start)
    part = values[start:stop]
    if isinstance(part, np.ndarray):
        kind = part.dtype.kind
        if kind in "iu":
            return list(map(str, part.tolist()))
        if kind == "b":
            out_b: list[str] = np.where(part, "t", "f").tolist()
            return out_b
        if kind == "f" and not np.isnan(part).any():
            return list(map(repr, part.tolist()))
    out: list[str] = []
    for v in to_pylist(part):
        if v is None:
            out.append("\\N")
        elif v is True:
            out.append("t")
        elif v is False:
            out.append("f")
        elif isinstance(v, str):
            out.append(
                v.translate(_COPY_ESCAPES) if ("\\" in v or "\t" in v or "\n" in v or "\r" in v) else v
            )
        else:
            out.append(repr(v) if isinstance(v, float) else str(v))
    return out


@dataclass
class WriteStats:
    """Rows written per table."""

    rows: dict[str, int] = field(default_factory=dict)

    def add(self, table: str, n: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + n

    @property
    def total(self) -> int:
        return sum(self.rows.values())


class BulkWriter:
    """Writes chunks into one store through one raw DBAPI connection.

    SQLite: foreign-key checks and fsync off for the load (the generator guarantees integrity; the
    tests check it with ``PRAGMA foreign_key_check``), one transaction per slice. With ``defer_indexes``
    the secondary indexes of the loaded tables are dropped first and created again by :meth:`close`.

    PostgreSQL: ``COPY``, one transaction per chunk. With ``defer_indexes`` the whole load is one
    transaction instead: the foreign keys and secondary indexes of the loaded tables (their definitions
    read from the catalog) are dropped first; :meth:`close` creates the indexes again, re-adds the
    foreign keys (each validated in one pass over its table; a violation raises :class:`SampleError`
    and rolls everything back, so the store never loses a constraint), analyses the tables and commits.

    Use ``defer_indexes`` on an empty store only.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        import_id: int,
        written_at: datetime,
        defer_indexes: bool = False,
        tables_loaded: Sequence[str] = (),
    ) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        if self.dialect not in ("sqlite", "postgresql"):
            raise SampleError(f"the sample world cannot be written to a {self.dialect} store")
        self.import_id = import_id
        self.written_at_text = written_at.strftime(SQLITE_DATETIME)
        self.written_at = written_at
        self.stats = WriteStats()
        self.index_seconds = 0.0
        self._raw: Any = engine.raw_connection()
        self._deferred: list[sa.Index] = []
        # PostgreSQL single-transaction load: (table, name, definition) dropped for the load
        self._pg_load = self.dialect == "postgresql" and defer_indexes
        self._pg_indexes: list[tuple[str, str, str]] = []
        self._pg_fks: list[tuple[str, str, str]] = []
        self._failed = False
        self._queue: queue.Queue[tuple[str, list[tuple[Any, ...]]] | None] = queue.Queue(maxsize=3)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        if self.dialect == "sqlite":
            cur = self._raw.cursor()
            cur.execute("PRAGMA foreign_keys=OFF")
            cur.execute("PRAGMA synchronous=OFF")
            cur.execute("PRAGMA cache_size=-262144")  # 256 MiB of page cache for the load
            cur.close()
        if self._pg_load:
            self._pg_begin(tables_loaded)
        elif defer_indexes:
            self._drop_indexes(tables_loaded)

    # -- indexes ------------------------------------------------------------------------------------
    def _drop_indexes(self, names: Sequence[str]) -> None:
        cur = self._raw.cursor()
        for name in names:
            for index in sorted(tables.metadata.tables[name].indexes, key=lambda i: str(i.name)):
                cur.execute(f'DROP INDEX IF EXISTS "{index.name}"')
                self._deferred.append(index)
        cur.close()
        self._raw.commit()

    def _create_indexes(self) -> None:
        if not self._deferred:
            return
        started = time.perf_counter()
        with self.engine.begin() as conn:
            for index in self._deferred:
                index.create(conn, checkfirst=True)
        self._deferred = []
        self.index_seconds = time.perf_counter() - started

    # -- PostgreSQL: one transaction, constraints and indexes deferred -------------------------------
    _PG_FKS = """
        SELECT k.conrelid::regclass::text, quote_ident(k.conname), pg_get_constraintdef(k.oid)
        FROM pg_constraint k
        JOIN pg_class c ON c.oid = k.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE k.contype = 'f' AND n.nspname = current_schema() AND c.relname = ANY(%s)
        ORDER BY c.relname, k.conname
    """
    # secondary indexes: not the ones behind a primary-key, unique or exclusion constraint
    _PG_INDEXES = """
        SELECT x.indrelid::regclass::text, format('%%I.%%I', n.nspname, i.relname),
               pg_get_indexdef(x.indexrelid)
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class c ON c.oid = x.indrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND c.relname = ANY(%s)
          AND NOT EXISTS (
              SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid AND k.contype IN ('p', 'u', 'x')
          )
        ORDER BY c.relname, i.relname
    """

    def _pg_begin(self, names: Sequence[str]) -> None:
        """Open the load's transaction and drop the loaded tables' foreign keys and secondary indexes."""
        cur = self._raw.cursor()
        try:
            # the commit does not wait for its WAL flush: a crash right after it may lose the load (all
            # of it, the store stays consistent and empty), never corrupt the store
            cur.execute("SET LOCAL synchronous_commit = off")
            cur.execute("SET LOCAL maintenance_work_mem = '1GB'")  # index builds sort in memory
            cur.execute("SET LOCAL work_mem = '256MB'")  # the foreign keys' validation joins
            cur.execute("SET TIME ZONE 'UTC'")
            cur.execute(self._PG_FKS, (list(names),))
            self._pg_fks = [(t, n, d) for t, n, d in cur.fetchall()]
            cur.execute(self._PG_INDEXES, (list(names),))
            self._pg_indexes = [(t, n, d) for t, n, d in cur.fetchall()]
            for table, name, _ in self._pg_fks:
                cur.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
            for _, name, _ in self._pg_indexes:
                cur.execute(f"DROP INDEX {name}")
        except Exception as exc:
            self._pg_abort()
            with contextlib.suppress(Exception):
                self._raw.close()
            raise SampleError(f"preparing the PostgreSQL store for the load failed: {exc}") from exc
        finally:
            cur.close()

    def _pg_finish(self) -> None:
        """Re-create the indexes, re-add (and so validate) the foreign keys, analyse, commit."""
        started = time.perf_counter()
        cur = self._raw.cursor()
        step = "re-creating the indexes"
        try:
            for _, _, definition in self._pg_indexes:
                cur.execute(definition)
            for table, name, definition in self._pg_fks:
                step = f"re-adding foreign key {name} on {table}"
                cur.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
            step = "analysing the loaded tables"
            for table in self.stats.rows:  # every table written: fresh statistics for the planner
                cur.execute(f'ANALYZE "{table}"')
            step = "committing"
            self._raw.commit()
        except Exception as exc:
            self._pg_abort()
            raise SampleError(
                f"the sample world was not written: {step} failed: {exc}",
                hint="the load was rolled back: none of its rows kept, every constraint and index in place",
            ) from exc
        finally:
            cur.close()
        self.index_seconds = time.perf_counter() - started

    def _pg_abort(self) -> None:
        self._failed = True
        with contextlib.suppress(Exception):  # the first error is the one to report
            self._raw.rollback()

    # -- writing ------------------------------------------------------------------------------------
    def write(self, chunk: Chunk) -> int:
        n = len(chunk)
        if n == 0:
            return 0
        table = tables.metadata.tables[chunk.table]
        names = list(chunk.columns)
        for name in names:
            if name not in table.c:
                raise SampleError(f"table {chunk.table} has no column {name!r}")
        provenance = "import_id" in table.c
        if self.dialect == "sqlite":
            self._write_sqlite(chunk.table, names, chunk.columns, n, provenance)
        else:
            self._write_postgres(chunk.table, names, chunk.columns, n, provenance)
        self.stats.add(chunk.table, n)
        return n

    def _write_sqlite(self, table: str, names: list[str], columns: Columns, n: int, provenance: bool) -> None:
        cols = ", ".join(f'"{c}"' for c in names)
        marks = ", ".join("?" for _ in names)
        if provenance:
            cols += ', "import_id", "written_at"'
            marks += f", {int(self.import_id)}, '{self.written_at_text}'"
        sql = f'INSERT INTO "{table}" ({cols}) VALUES ({marks})'
        for start in range(0, n, SLICE_ROWS):
            stop = min(n, start + SLICE_ROWS)
            rows = list(zip(*(_slice(columns[c], start, stop) for c in names), strict=True))
            self._submit(sql, rows)

    # SQLite inserts run on a writer thread: sqlite3 releases the GIL inside each step, so this thread
    # can convert (and the caller generate) the next slice meanwhile. One transaction per slice.
    def _submit(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._drain, name="tactful-sample-writer", daemon=True)
            self._thread.start()
        self._raise_pending()
        self._queue.put((sql, rows))

    def _drain(self) -> None:
        cur = self._raw.cursor()
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                if self._error is not None:
                    continue  # keep draining so the producer never blocks
                sql, rows = item
                try:
                    cur.execute("BEGIN")
                    cur.executemany(sql, rows)
                    self._raw.commit()
                except BaseException as exc:  # handed to the producer thread
                    self._error = exc
                    with contextlib.suppress(Exception):  # the first error is the one to report
                        self._raw.rollback()
        finally:
            cur.close()

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise SampleError(f"writing the sample world failed: {error}") from error

    def _join(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._raise_pending()

    def _write_postgres(
        self, table: str, names: list[str], columns: Columns, n: int, provenance: bool
    ) -> None:
        if self._failed:
            raise SampleError("the load was rolled back after an earlier error")
        all_names = [*names, "import_id", "written_at"] if provenance else names
        cols = ", ".join(f'"{c}"' for c in all_names)
        tail = f"\t{int(self.import_id)}\t{self.written_at_text}\n" if provenance else "\n"
        cur = self._raw.cursor()
        try:
            cur.execute("SET TIME ZONE 'UTC'")
            # COPY's text format, built a slice at a time (one join per row, not one driver call per row)
            # the queued writer sends from a thread (the GIL released while the socket waits), so the
            # server ingests one slice while this thread formats the next
            copy_sql = f'COPY "{table}" ({cols}) FROM STDIN'
            with cur.copy(copy_sql, writer=QueuedLibpqWriter(cur)) as copy:
                for start in range(0, n, SLICE_ROWS):
                    stop = min(n, start + SLICE_ROWS)
                    texts = [_copy_text(columns[c], start, stop) for c in names]
                    copy.write(tail.join(map("\t".join, zip(*texts, strict=True))) + tail)
            if not self._pg_load:
                self._raw.commit()
        except Exception:
            if self._pg_load:
                self._pg_abort()
            else:
                self._raw.rollback()
            raise
        finally:
            cur.close()

    def flush(self) -> None:
        """Wait until everything submitted is in the store (raises the writer thread's error, if any)."""
        self._join()

    def close(self, ok: bool = True) -> None:
        """Finish the writes, restore the connection's settings, re-create deferred indexes.

        ``ok=False`` (the load failed): a PostgreSQL single-transaction load is rolled back.
        """
        if self._pg_load:
            try:
                if ok and not self._failed:
                    self._pg_finish()
                else:
                    self._pg_abort()
            finally:
                self._raw.close()
            return
        try:
            self._join()
        finally:
            try:
                if self.dialect == "sqlite":
                    cur = self._raw.cursor()
                    cur.execute("PRAGMA synchronous=NORMAL")
                    cur.execute("PRAGMA foreign_keys=ON")
                    cur.close()
            finally:
                self._raw.close()
        self._create_indexes()


@contextmanager
def bulk_writer(
    engine: Engine,
    *,
    import_id: int,
    written_at: datetime,
    defer_indexes: bool = False,
    tables_loaded: Sequence[str] = (),
) -> Iterator[BulkWriter]:
    writer = BulkWriter(
        engine,
        import_id=import_id,
        written_at=written_at,
        defer_indexes=defer_indexes,
        tables_loaded=tables_loaded,
    )
    try:
        yield writer
    except BaseException:
        with contextlib.suppress(Exception):  # the first error is the one to report
            writer.close(ok=False)
        raise
    writer.close()
