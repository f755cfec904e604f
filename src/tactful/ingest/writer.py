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
  order (bulk-load speed; concurrent writers lock shared rows in one order). On SQLite each batch is
  one ``BEGIN IMMEDIATE`` transaction: the reference check and the writes happen under the write lock,
  so no other writer can remove a customer or product between the check and the insert, and SQLite's
  per-row foreign-key lookups are switched off for that connection (every reference was just checked
  in the same transaction; the order → order line and import → row references hold by construction).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Dialect

from tactful.ingest.kinds import Target
from tactful.store.retry import key_ordered

MISSING: Any = object()  # a row field that is absent (or empty) in a row
_UNSEEN: Any = object()
CACHE_LIMIT = 50_000  # distinct values remembered per field (bounded memory)


def db_value(value: Any) -> Any:
    """A validated model value as the store holds it: enums by value, tuples as lists."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [db_value(v) for v in value]
    return value


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
    pk = [c.name for c in table.primary_key.columns]
    stmt: Any
    if dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(table)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table)
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
        if not self.sqlite:
            quote = self.dialect.identifier_preparer.quote
            for plan in plans:
                table = plan.target.table
                name = self.dialect.identifier_preparer.format_table(table)
                stage = quote(f"tactful_stage_{table.name}")  # per session; one per table
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

    def existing(self, cur: Any, table: sa.Table, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are in ``table`` (by its ``id`` column)."""
        name = self.dialect.identifier_preparer.format_table(table)
        # one statement whatever the number of ids (they travel as one JSON array, cheap to send);
        # counted first, as usually every id is there (``ids`` are distinct and ``id`` is the primary key)
        param = json.dumps(list(ids))
        if self.sqlite:
            where = "id IN (SELECT value FROM json_each(?))"
        else:
            where = "id IN (SELECT jsonb_array_elements_text(%s::jsonb))"
        cur.execute(f"SELECT count(*) FROM {name} WHERE {where}", (param,))
        if cur.fetchone()[0] == len(ids):
            return set(ids)
        cur.execute(f"SELECT id FROM {name} WHERE {where}", (param,))
        return {r for (r,) in cur.fetchall()}

    def write(self, cur: Any, per_target: Sequence[Sequence[tuple[Any, ...]]], import_id: int,
              written_at: Any) -> None:
        """Upsert each target's rows (the last row with a key wins), with provenance."""
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
