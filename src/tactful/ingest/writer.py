"""The importer's hot path: turning a mapped row into database values, and writing batches of them.

* :class:`TargetPlan` turns one row into the column values of one table. A row whose every value was
  already seen in a row that validated (same field, same text) takes the values pydantic produced then,
  without validating again; any other row is validated by the record model as before (so a bad row gets
  exactly the same error message). This is sound because the record models validate each field on its
  own (no model validators, no validator that looks at another field): checked when the plan is built,
  and a model that does not qualify is always validated in full.
* :class:`BatchWriter` writes batches through one raw DB-API connection with a statement compiled once
  (``INSERT ... ON CONFLICT (pk) DO UPDATE``, as :func:`tactful.store.db.upsert`), the column values
  already converted by SQLAlchemy's own bind processors. On PostgreSQL a batch is copied (``COPY``)
  into a temporary staging table of the same columns and upserted from it in one statement, in key
  order (bulk-load speed; concurrent writers lock shared rows in one order); the copy is binary when
  every value is of its column's exact class and range (:class:`_BinaryCopy`), else text. On SQLite
  each batch is one ``BEGIN IMMEDIATE`` transaction: the reference check and the writes happen under
  the write lock, so no other writer can remove a customer or product between the check and the
  insert, and SQLite's per-row foreign-key lookups are switched off for that connection (every
  reference was just checked in the same transaction; the order → order line and import → row
  references hold by construction).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Dialect

from tactful.ingest.kinds import Target
from tactful.store.repo import db_value
from tactful.store.retry import key_ordered

MISSING: Any = object()  # a row field that is absent (or empty) in a row
_UNSEEN: Any = object()
CACHE_LIMIT = 50_000  # distinct values remembered per field (bounded memory)


# PostgreSQL binary COPY (see :meth:`BatchWriter.write`): the Python classes a column of each type may
# receive, and the range of the integer types. psycopg picks its binary dumper by the column's type,
# not by the value, and some of those dumpers do not refuse what the server would (an int beyond the
# column's range is silently wrapped into int4; a naive datetime fails in the client in the middle of
# the COPY), so a batch whose values are not all of these exact classes (and ranges) goes as text,
# where the server checks and casts every value as before.
_INT_RANGES = {"int2": 2**15, "int4": 2**31, "int8": 2**63}
_BINARY_CLASSES: dict[str, tuple[type, ...]] = {
    "bool": (bool,), "int2": (int,), "int4": (int,), "int8": (int,), "float8": (float,),
    "text": (str,), "varchar": (str,), "date": (date,), "timestamptz": (datetime,),
}


class _BinaryCopy:
    """How one staging table takes binary COPY: the column types, and the check of a batch's values."""

    def __init__(self, oids: list[int], names: list[str], json_class: type) -> None:
        self.oids = oids
        self.checks: list[tuple[frozenset[type], int | None, bool]] = []
        for name in names:
            classes = (json_class,) if name == "json" else _BINARY_CLASSES[name]
            self.checks.append((frozenset((*classes, type(None))), _INT_RANGES.get(name),
                                name == "timestamptz"))

    @classmethod
    def of(cls, oids: list[int]) -> _BinaryCopy | None:
        """The binary COPY of columns with these type oids, or None when a type is not covered."""
        from psycopg.postgres import types
        from psycopg.types.json import Json

        names = []
        for oid in oids:
            info = types.get(oid)
            if info is None or (info.name not in _BINARY_CLASSES and info.name != "json"):
                return None
            names.append(info.name)
        return cls(oids, names, Json)

    def fits(self, rows: Sequence[tuple[Any, ...]]) -> bool:
        """Whether every value of ``rows`` is of its column's exact class, in range (integers) and
        with a time zone (``timestamptz``): only then does binary COPY store what text COPY would."""
        for values, (classes, bound, aware) in zip(zip(*rows, strict=True), self.checks, strict=True):
            if not set(map(type, values)) <= classes:
                return False
            if bound is not None or aware:
                present = [v for v in values if v is not None]
                if not present:
                    continue
                if bound is not None and not (-bound <= min(present) and max(present) < bound):
                    return False
                if aware and any(v.utcoffset() is None for v in present):
                    return False
        return True


def _independent_fields(model: type[BaseModel]) -> bool:
    """Whether ``model`` validates each field on its own (no model or decorator validators)."""
    decorators = model.__pydantic_decorators__
    return not (decorators.model_validators or decorators.field_validators or decorators.validators
                or decorators.root_validators or decorators.computed_fields)


class TargetPlan:
    """Row → column values of one target table; remembers values that validated (see module doc)."""

    def __init__(self, target: Target, dialect: Dialect) -> None:
        self.target = target
        self.model = target.model
        self.fields: tuple[str, ...] = tuple(target.model.model_fields)
        self.row_fields: tuple[str, ...] = tuple(target.row_field(f) for f in self.fields)
        self.columns: tuple[str, ...] = (*self.fields, "import_id", "written_at")
        self.processors: list[Callable[[Any], Any] | None] = [
            target.table.c[f].type._cached_bind_processor(dialect) for f in self.fields]
        written = target.table.c["written_at"].type._cached_bind_processor(dialect)
        self.written_processor: Callable[[Any], Any] | None = written
        self.key_index: tuple[int, ...] = tuple(self.fields.index(k) for k in target.key)
        self.caching = _independent_fields(target.model)
        self.caches: list[dict[Any, Any]] = [{} for _ in self.fields]
        self._pairs = tuple(zip(self.row_fields, self.caches, strict=True))

    def lookup(self, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The column values of a row whose every value validated before, else None."""
        if not self.caching:
            return None
        out = []
        for row_field, cache in self._pairs:
            raw = values.get(row_field, MISSING)
            if raw is not MISSING and raw.__class__ is not str:
                return None
            value = cache.get(raw, _UNSEEN)
            if value is _UNSEEN:
                return None
            out.append(value)
        return tuple(out)

    def convert(self, values: Mapping[str, Any], record: BaseModel) -> tuple[Any, ...]:
        """The column values of a validated record; remembers them for :meth:`lookup`."""
        data = record.__dict__
        out = []
        for i, name in enumerate(self.fields):
            value = db_value(data[name])
            processor = self.processors[i]
            if processor is not None and value is not None:
                value = processor(value)
            out.append(value)
            if self.caching:
                raw = values.get(self.row_fields[i], MISSING)
                if raw is MISSING or raw.__class__ is str:
                    cache = self.caches[i]
                    if len(cache) >= CACHE_LIMIT:
                        cache.clear()
                    cache[raw] = value
        return tuple(out)

    def value_of(self, row: tuple[Any, ...], row_field: str) -> Any:
        return row[self.row_fields.index(row_field)] if row_field in self.row_fields else MISSING


def upsert_statement(table: sa.Table, columns: Sequence[str], dialect: Dialect) -> tuple[str, list[str]]:
    """The SQL of ``INSERT ... ON CONFLICT (pk) DO UPDATE`` for ``columns`` (as :func:`db.upsert`
    builds it) and the order of its positional parameters (empty for named parameters)."""
    from tactful.store.db import conflict_insert

    pk = [c.name for c in table.primary_key.columns]
    stmt = conflict_insert(table, dialect)
    update = {c: stmt.excluded[c] for c in columns if c not in pk}
    stmt = stmt.on_conflict_do_update(index_elements=pk, set_=update) if update else \
        stmt.on_conflict_do_nothing(index_elements=pk)
    compiled = stmt.compile(dialect=dialect, column_keys=list(columns))
    return str(compiled), list(compiled.positiontup or [])


class BatchWriter:
    """Writes batches of rows (see the module docstring) through one raw DB-API connection."""

    def __init__(self, engine: sa.Engine, plans: Sequence[TargetPlan]) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self.sqlite = self.dialect.name == "sqlite"
        self.plans = plans
        self.statements: list[tuple[str, list[int] | None]] = []
        for plan in plans:
            sql, order = upsert_statement(plan.target.table, plan.columns, self.dialect)
            self.statements.append((sql, [plan.columns.index(n) for n in order] if order else None))
        # PostgreSQL: each target's rows are copied into a temporary staging table (COPY), then
        # upserted from it in key order in one statement
        self.staged: list[tuple[str, str, str]] = []  # (create, copy, upsert) per target
        self.stage_names: list[str] = []
        #: per target: how its staging table takes binary COPY (None: text only), set by :meth:`open`
        self.binary: list[_BinaryCopy | None] = []
        if not self.sqlite:
            quote = self.dialect.identifier_preparer.quote
            for plan in plans:
                table = plan.target.table
                name = self.dialect.identifier_preparer.format_table(table)
                stage = quote(f"tactful_stage_{table.name}")  # per session; one per table
                self.stage_names.append(stage)
                cols = ", ".join(quote(c) for c in plan.columns)
                key = [quote(c.name) for c in table.primary_key.columns]
                update = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in plan.columns
                                   if quote(c) not in key)
                action = f"DO UPDATE SET {update}" if update else "DO NOTHING"
                self.staged.append((
                    f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} (LIKE {name} INCLUDING DEFAULTS) "
                    "ON COMMIT DELETE ROWS",
                    f"COPY {stage} ({cols}) FROM STDIN",
                    f"INSERT INTO {name} ({cols}) SELECT {cols} FROM {stage} ORDER BY {', '.join(key)} "
                    f"ON CONFLICT ({', '.join(key)}) {action}"))
        self._conn: sa.Connection | None = None
        self._raw: Any = None

    def open(self) -> None:
        self._conn = self.engine.connect()
        raw = self._conn.connection.dbapi_connection
        assert raw is not None
        self._raw = raw
        if self.staged:
            cur = raw.cursor()
            try:
                for create, _copy, _upsert in self.staged:
                    cur.execute(create)
                self.binary = []
                for plan, stage in zip(self.plans, self.stage_names, strict=True):
                    cur.execute("SELECT attname, atttypid::int FROM pg_attribute "
                                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                                (stage,))
                    oid_of = dict(cur.fetchall())
                    self.binary.append(_BinaryCopy.of([oid_of[c] for c in plan.columns]))
                raw.commit()
            finally:
                cur.close()
        if self.sqlite:
            raw.commit()
            raw.execute("PRAGMA foreign_keys=OFF")  # see the module docstring

    def close(self) -> None:
        if self._conn is None:
            return
        try:
            if self.sqlite and self._raw is not None:
                self._raw.rollback()
                self._raw.execute("PRAGMA foreign_keys=ON")
        finally:
            self._conn.close()
            self._conn = None
            self._raw = None

    def begin(self) -> Any:
        cur = self._raw.cursor()
        if self.sqlite:
            cur.execute("BEGIN IMMEDIATE")
        return cur

    def commit(self) -> None:
        self._raw.commit()

    def rollback(self) -> None:
        self._raw.rollback()

    def missing(self, cur: Any, table: sa.Table, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are not in ``table`` (by its ``id`` column)."""
        name = self.dialect.identifier_preparer.format_table(table)
        # one statement whatever the number of ids (they travel as one JSON array, cheap to send),
        # answering only the missing ones (usually none): one index probe per distinct id
        param = json.dumps(list(ids))
        if self.sqlite:
            sql = (f"SELECT w.value FROM json_each(?) AS w WHERE NOT EXISTS "
                   f"(SELECT 1 FROM {name} AS t WHERE t.id = w.value)")
        else:
            sql = (f"SELECT w.id FROM jsonb_array_elements_text(%s::jsonb) AS w(id) WHERE NOT EXISTS "
                   f"(SELECT 1 FROM {name} AS t WHERE t.id = w.id)")
        cur.execute(sql, (param,))
        return {r for (r,) in cur.fetchall()}

    def write(self, cur: Any, per_target: Sequence[Sequence[tuple[Any, ...]]], import_id: int | None,
              written_at: Any, binary: bool = True) -> None:
        """Upsert each target's rows (the last row with a key wins), with provenance. ``binary`` False
        copies as text on PostgreSQL (the row-by-row retry of a refused batch: the server's message
        for a refused value, which the quarantine keeps, names the value only in text COPY)."""
        for i, (plan, (sql, order), rows) in enumerate(zip(self.plans, self.statements, per_target,
                                                          strict=True)):
            if not rows:
                continue
            stamp_at = plan.written_processor(written_at) if plan.written_processor else written_at
            key = plan.key_index
            if len(key) == 1:
                k0 = key[0]
                by_key: dict[Any, tuple[Any, ...]] = {r[k0]: r for r in rows}
            else:
                by_key = {tuple(r[k] for k in key): r for r in rows}
            tail = (import_id, stamp_at)
            # in key order: concurrent writers lock shared rows in one order (no deadlock)
            params: list[Any] = [r + tail for r in key_ordered(by_key)]
            if self.staged:  # PostgreSQL: COPY into the staging table, then one upsert from it
                _create, copy_sql, upsert = self.staged[i]
                copy_binary = self.binary[i] if binary else None
                if copy_binary is not None and copy_binary.fits(params):
                    # binary COPY: no text to format in the client nor to parse in the server
                    with cur.copy(copy_sql + " (FORMAT BINARY)") as copy:
                        copy.set_types(copy_binary.oids)
                        for p in params:
                            copy.write_row(p)
                else:
                    with cur.copy(copy_sql) as copy:
                        for p in params:
                            copy.write_row(p)
                cur.execute(upsert)
                continue
            if order is not None:
                if order != list(range(len(plan.columns))):
                    params = [tuple(p[i] for i in order) for p in params]
            else:
                columns = plan.columns
                params = [dict(zip(columns, p, strict=True)) for p in params]
            cur.executemany(sql, params)
