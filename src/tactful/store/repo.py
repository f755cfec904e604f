"""Reading a customer back with provenance, and writing single records (API-style writes).

Every row the store holds says which import batch (or API call) last wrote it and when; the reader
returns each record as a typed :mod:`tactful.model` object together with that provenance::

    with engine.connect() as conn:
        view = read_customer(conn, "c-001")
    view.customer.record.openness           # the Customer
    view.consents[0].provenance.origin      # "api:/v1/consents" or the file it was imported from

Records are validated on the way out as on the way in: a row the model rejects (an unknown data
category, a bad enum value) raises :class:`~tactful.errors.StoreError` naming the table and the row,
instead of reaching a decision half-understood (fail closed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel, ValidationError
from sqlalchemy.engine import Connection

from tactful.errors import NotFoundError, StoreError
from tactful.model import (
    Consent,
    ContactPoint,
    Customer,
    Fact,
    Household,
    Order,
    OrderLine,
    Product,
    TouchRecord,
    validation_errors,
)
from tactful.store import tables
from tactful.store.bookkeeping import ImportState, effective_state, interrupted_message
from tactful.store.db import begin_import, finish_import, upsert

R = TypeVar("R", bound=BaseModel)

# The record kinds the writer accepts: the table name, its model, in the order references need them.
RECORD_KINDS: dict[str, tuple[sa.Table, type[BaseModel]]] = {
    "households": (tables.households, Household),
    "customers": (tables.customers, Customer),
    "products": (tables.products, Product),
    "contact_points": (tables.contact_points, ContactPoint),
    "consents": (tables.consents, Consent),
    "orders": (tables.orders, Order),
    "order_lines": (tables.order_lines, OrderLine),
    "facts": (tables.facts, Fact),
    "touches": (tables.touches, TouchRecord),
}
_KIND_OF_MODEL: dict[type[BaseModel], str] = {model: kind for kind, (_t, model) in RECORD_KINDS.items()}
_PROVENANCE_COLUMNS = ("import_id", "written_at")


# --------------------------------------------------------------------------- typed read-back


@dataclass(frozen=True)
class ImportBatch:
    """One import batch or API write: the ``imports`` row that provenance points at."""

    id: int
    kind: str  # customers, orders, ..., sample, api
    origin: str  # a file path, "sample:completejourney", "api:/v1/consents"
    source_label: str | None
    format: str | None
    started_at: datetime
    finished_at: datetime | None
    rows_read: int
    rows_imported: int
    rows_quarantined: int
    quarantine_file: str | None
    tool_version: str | None
    #: running | finished | failed | interrupted, as it really is (see tactful.store.bookkeeping: a
    #: row left ``running`` by a process that died reads as ``interrupted``)
    state: str = "finished"
    error: str | None = None  # why it failed or was interrupted
    pid: int | None = None
    host: str | None = None
    heartbeat_at: datetime | None = None  # the last batch it committed

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "origin": self.origin, "source_label": self.source_label,
            "format": self.format, "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at), "rows_read": self.rows_read,
            "rows_imported": self.rows_imported, "rows_quarantined": self.rows_quarantined,
            "quarantine_file": self.quarantine_file, "tool_version": self.tool_version,
            "state": self.state, "error": self.error, "pid": self.pid, "host": self.host,
            "heartbeat_at": _iso(self.heartbeat_at),
        }


@dataclass(frozen=True)
class Provenance:
    """Where a row came from: the batch that last wrote it (None if written outside any) and when."""

    batch: ImportBatch | None
    written_at: datetime | None

    @property
    def import_id(self) -> int | None:
        return self.batch.id if self.batch else None

    @property
    def kind(self) -> str | None:
        return self.batch.kind if self.batch else None

    @property
    def origin(self) -> str | None:
        return self.batch.origin if self.batch else None

    @property
    def source_label(self) -> str | None:
        return self.batch.source_label if self.batch else None

    @property
    def format(self) -> str | None:
        return self.batch.format if self.batch else None

    @property
    def started_at(self) -> datetime | None:
        return self.batch.started_at if self.batch else None

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "import_id": self.import_id, "import_kind": self.kind, "origin": self.origin,
            "source_label": self.source_label, "format": self.format,
            "started_at": _iso(self.started_at), "written_at": _iso(self.written_at),
        }


@dataclass(frozen=True)
class Stored(Generic[R]):
    """A record as the store holds it, with its provenance."""

    record: R
    provenance: Provenance

    def to_json_dict(self) -> dict[str, Any]:
        return {**self.record.model_dump(mode="json"), "provenance": self.provenance.to_json_dict()}


@dataclass(frozen=True)
class StoredOrderLine:
    """An order line with the product it sold (the product's ``implies`` are its sensitivity labels)."""

    line: Stored[OrderLine]
    product: Stored[Product]

    def to_json_dict(self) -> dict[str, Any]:
        return {**self.line.to_json_dict(), "product": self.product.to_json_dict()}


@dataclass(frozen=True)
class StoredOrder:
    order: Stored[Order]
    lines: tuple[StoredOrderLine, ...]

    def to_json_dict(self) -> dict[str, Any]:
        return {**self.order.to_json_dict(), "lines": [line.to_json_dict() for line in self.lines]}


@dataclass(frozen=True)
class CustomerView:
    """Everything the store knows about one customer, each record with its provenance.

    ``orders`` are newest first; when the read was limited, ``orders_total`` says how many exist.
    ``imports`` holds each import batch the rows point at, by id.
    """

    customer: Stored[Customer]
    household: Stored[Household] | None
    contact_points: tuple[Stored[ContactPoint], ...]
    consents: tuple[Stored[Consent], ...]
    orders: tuple[StoredOrder, ...]
    orders_total: int
    facts: tuple[Stored[Fact], ...]
    touches: tuple[Stored[TouchRecord], ...]
    imports: Mapping[int, ImportBatch] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "customer": self.customer.to_json_dict(),
            "household": self.household.to_json_dict() if self.household else None,
            "contact_points": [c.to_json_dict() for c in self.contact_points],
            "consents": [c.to_json_dict() for c in self.consents],
            "orders": [o.to_json_dict() for o in self.orders],
            "orders_total": self.orders_total,
            "facts": [f.to_json_dict() for f in self.facts],
            "touches": [t.to_json_dict() for t in self.touches],
            "imports": [self.imports[i].to_json_dict() for i in sorted(self.imports)],
        }


def _iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, as pydantic writes the records' own times."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; the store writes UTC, so read them as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _batch(row: sa.RowMapping) -> ImportBatch:
    started = _utc(row["started_at"])
    assert started is not None  # NOT NULL column
    state = effective_state(row)
    error = row["error"]
    if state is ImportState.INTERRUPTED and row["state"] == ImportState.RUNNING.value:
        error = interrupted_message(row)
    return ImportBatch(
        id=int(row["id"]), kind=row["kind"], origin=row["origin"], source_label=row["source_label"],
        format=row["format"], started_at=started, finished_at=_utc(row["finished_at"]),
        rows_read=int(row["rows_read"]), rows_imported=int(row["rows_imported"]),
        rows_quarantined=int(row["rows_quarantined"]), quarantine_file=row["quarantine_file"],
        tool_version=row["tool_version"], state=state.value, error=error, pid=row["pid"],
        host=row["host"], heartbeat_at=_utc(row["heartbeat_at"]),
    )


def read_imports(conn: Connection, ids: Iterable[int] | None = None) -> dict[int, ImportBatch]:
    """Import batches by id: those in ``ids``, or all of them when ``ids`` is None."""
    query = sa.select(tables.imports).order_by(tables.imports.c.id)
    if ids is not None:
        wanted = sorted({int(i) for i in ids})
        if not wanted:
            return {}
        query = query.where(tables.imports.c.id.in_(wanted))
    return {b.id: b for b in (_batch(r) for r in conn.execute(query).mappings())}


def list_imports(conn: Connection, *, limit: int = 50, state: str | None = None) -> list[ImportBatch]:
    """The newest ``limit`` import batches, newest first; ``state`` keeps those in that (real) state."""
    query = sa.select(tables.imports).order_by(tables.imports.c.id.desc())
    if state is None:
        return [_batch(r) for r in conn.execute(query.limit(limit)).mappings()]
    out: list[ImportBatch] = []
    # the real state of a running row needs its process checked: filter after reading
    stored = [state] if state in (ImportState.FINISHED, ImportState.FAILED) else \
        [ImportState.RUNNING.value, state]
    for row in conn.execute(query.where(tables.imports.c.state.in_(stored))).mappings():
        batch = _batch(row)
        if batch.state == state:
            out.append(batch)
            if len(out) >= limit:
                break
    return out


def _record(model: type[R], table: sa.Table, row: sa.RowMapping) -> R:
    data = {k: v for k, v in row.items() if k not in _PROVENANCE_COLUMNS}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        key = ", ".join(f"{c.name}={row[c.name]!r}" for c in table.primary_key.columns)
        problems = "; ".join(f"{path}: {msg}" for path, msg in validation_errors(exc))
        raise StoreError(
            f"the store's {table.name} row ({key}) is not a valid {model.__name__}: {problems}",
            hint="correct the row (re-import it, or write it again through the API) and retry",
        ) from None


def _provenance(row: sa.RowMapping, batches: Mapping[int, ImportBatch]) -> Provenance:
    import_id = row["import_id"]
    batch = batches.get(int(import_id)) if import_id is not None else None
    if import_id is not None and batch is None:  # pragma: no cover - the foreign key prevents it
        raise StoreError(f"a row points at import {import_id}, which is not in the imports table")
    return Provenance(batch=batch, written_at=_utc(row["written_at"]))


def _rows(conn: Connection, query: sa.Select[Any]) -> list[sa.RowMapping]:
    return list(conn.execute(query).mappings())


def customer_exists(conn: Connection, customer_id: str) -> bool:
    query = sa.select(tables.customers.c.id).where(tables.customers.c.id == customer_id)
    return conn.execute(query).first() is not None


def customer_ids(conn: Connection, *, limit: int | None = None, offset: int = 0) -> list[str]:
    """Customer ids in id order (``limit``/``offset`` page through them)."""
    query = sa.select(tables.customers.c.id).order_by(tables.customers.c.id).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return [str(r[0]) for r in conn.execute(query)]


def count_rows(conn: Connection) -> dict[str, int]:
    """How many rows each table holds (the imports table included)."""
    out: dict[str, int] = {}
    for table in tables.metadata.sorted_tables:
        out[table.name] = int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
    return out


def read_customer(conn: Connection, customer_id: str, *, max_orders: int | None = None) -> CustomerView:
    """Everything about ``customer_id`` with provenance; :class:`NotFoundError` when there is none.

    ``max_orders`` keeps only the newest orders (``orders_total`` still counts all of them).
    """
    t = tables
    cust_rows = _rows(conn, sa.select(t.customers).where(t.customers.c.id == customer_id))
    if not cust_rows:
        raise NotFoundError(f"no customer {customer_id!r} in the store",
                            hint="check the id; `tactful customer list` prints the ids the store holds")
    cust_row = cust_rows[0]
    house_rows: list[sa.RowMapping] = []
    if cust_row["household_id"] is not None:
        house_rows = _rows(conn, sa.select(t.households).where(t.households.c.id == cust_row["household_id"]))
    cp_rows = _rows(conn, sa.select(t.contact_points).where(t.contact_points.c.customer_id == customer_id)
                    .order_by(t.contact_points.c.id))
    consent_rows = _rows(conn, sa.select(t.consents).where(t.consents.c.customer_id == customer_id)
                         .order_by(t.consents.c.at, t.consents.c.id))
    order_query = (sa.select(t.orders).where(t.orders.c.customer_id == customer_id)
                   .order_by(t.orders.c.at.desc(), t.orders.c.id.desc()))
    if max_orders is not None:
        order_query = order_query.limit(max_orders)
    order_rows = _rows(conn, order_query)
    orders_total = int(conn.execute(
        sa.select(sa.func.count()).select_from(t.orders).where(t.orders.c.customer_id == customer_id)
    ).scalar_one())
    line_rows: list[sa.RowMapping] = []
    product_rows: dict[str, sa.RowMapping] = {}
    if order_rows:
        chosen = order_query.with_only_columns(t.orders.c.id).subquery()
        line_rows = _rows(conn, sa.select(t.order_lines)
                          .where(t.order_lines.c.order_id.in_(sa.select(chosen.c.id)))
                          .order_by(t.order_lines.c.order_id, t.order_lines.c.line_no))
        product_ids = sorted({r["product_id"] for r in line_rows})
        for start in range(0, len(product_ids), 1000):
            chunk = product_ids[start:start + 1000]
            for r in _rows(conn, sa.select(t.products).where(t.products.c.id.in_(chunk))):
                product_rows[r["id"]] = r
    fact_rows = _rows(conn, sa.select(t.facts).where(t.facts.c.customer_id == customer_id)
                      .order_by(t.facts.c.at, t.facts.c.id))
    touch_rows = _rows(conn, sa.select(t.touches).where(t.touches.c.customer_id == customer_id)
                       .order_by(t.touches.c.at.desc(), t.touches.c.id))

    every_row = [cust_row, *house_rows, *cp_rows, *consent_rows, *order_rows, *line_rows,
                 *product_rows.values(), *fact_rows, *touch_rows]
    batches = read_imports(conn, [r["import_id"] for r in every_row if r["import_id"] is not None])

    def stored(model: type[R], table: sa.Table, row: sa.RowMapping) -> Stored[R]:
        return Stored(record=_record(model, table, row), provenance=_provenance(row, batches))

    lines_by_order: dict[str, list[StoredOrderLine]] = {}
    for row in line_rows:
        product = product_rows.get(row["product_id"])
        if product is None:  # pragma: no cover - the foreign key prevents it
            raise StoreError(f"order line {row['order_id']}/{row['line_no']} names product "
                             f"{row['product_id']!r}, which is not in the store")
        lines_by_order.setdefault(row["order_id"], []).append(StoredOrderLine(
            line=stored(OrderLine, t.order_lines, row), product=stored(Product, t.products, product)))

    return CustomerView(
        customer=stored(Customer, t.customers, cust_row),
        household=stored(Household, t.households, house_rows[0]) if house_rows else None,
        contact_points=tuple(stored(ContactPoint, t.contact_points, r) for r in cp_rows),
        consents=tuple(stored(Consent, t.consents, r) for r in consent_rows),
        orders=tuple(StoredOrder(order=stored(Order, t.orders, r),
                                 lines=tuple(lines_by_order.get(r["id"], []))) for r in order_rows),
        orders_total=orders_total,
        facts=tuple(stored(Fact, t.facts, r) for r in fact_rows),
        touches=tuple(stored(TouchRecord, t.touches, r) for r in touch_rows),
        imports=batches,
    )


# --------------------------------------------------------------------------- single-record writes


@dataclass(frozen=True)
class WriteResult:
    """What :func:`write_records` wrote: the import batch it opened and how many rows."""

    import_id: int
    kind: str
    count: int


def record_kind(record: BaseModel) -> str:
    """The record kind (table name) of a :mod:`tactful.model` record."""
    kind = _KIND_OF_MODEL.get(type(record))
    if kind is None:
        raise StoreError(f"{type(record).__name__} is not a store record",
                         hint=f"write one of: {', '.join(m.__name__ for m in _KIND_OF_MODEL)}")
    return kind


def db_value(value: Any) -> Any:
    """A validated model value as the store holds it: enums by value, tuples as lists, datetimes in
    UTC (the record writer here and the importers' batch writer both use it)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [db_value(v) for v in value]
    if isinstance(value, datetime) and value.tzinfo is not UTC:  # validated ones already are: kept as is
        # SQLite drops the offset of an aware datetime: store UTC everywhere.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def to_row(record: BaseModel) -> dict[str, Any]:
    """A record as a row for its table (enum values as text, tuples as lists, times in UTC)."""
    return {k: db_value(v) for k, v in record.model_dump(mode="python").items()}


def _coerce(kind: str, model: type[BaseModel], records: Sequence[BaseModel | Mapping[str, Any]]
            ) -> list[BaseModel]:
    out: list[BaseModel] = []
    for index, rec in enumerate(records):
        if isinstance(rec, model):
            out.append(rec)
            continue
        if isinstance(rec, BaseModel):
            raise StoreError(f"{kind}[{index}] is a {type(rec).__name__}, not a {model.__name__}",
                             hint=f"write {model.__name__} records as {kind!r}")
        try:
            out.append(model.model_validate(dict(rec)))
        except ValidationError as exc:
            problems = "; ".join(f"{kind}[{index}].{path}: {msg}" for path, msg in validation_errors(exc))
            raise StoreError(f"invalid {model.__name__}: {problems}",
                             hint="fix the record; nothing was written") from None
    return out


def _missing(conn: Connection, column: sa.Column[Any], wanted: set[str]) -> list[str]:
    if not wanted:
        return []
    found: set[str] = set()
    ordered = sorted(wanted)
    for start in range(0, len(ordered), 1000):
        chunk = ordered[start:start + 1000]
        found.update(str(r[0]) for r in conn.execute(sa.select(column).where(column.in_(chunk))))
    return sorted(wanted - found)


# Which references each kind has: (field in the record, the column it must exist in, a plain name).
_REFERENCES: dict[str, list[tuple[str, sa.Column[Any], str]]] = {
    "customers": [("household_id", tables.households.c.id, "household")],
    "contact_points": [("customer_id", tables.customers.c.id, "customer")],
    "consents": [("customer_id", tables.customers.c.id, "customer")],
    "orders": [("customer_id", tables.customers.c.id, "customer")],
    "order_lines": [("order_id", tables.orders.c.id, "order"),
                    ("product_id", tables.products.c.id, "product")],
    "facts": [("customer_id", tables.customers.c.id, "customer")],
    "touches": [("customer_id", tables.customers.c.id, "customer")],
}


def write_records(conn: Connection, kind: str, records: Sequence[BaseModel | Mapping[str, Any]], *,
                  origin: str = "api", import_kind: str = "api", source_label: str | None = None
                  ) -> WriteResult:
    """Validate ``records`` of one ``kind`` (a table name), open an import batch and upsert them.

    ``records`` are :mod:`tactful.model` records or mappings validated into them. Each write is a
    full record: it replaces every column of a row with the same key. Referenced customers, orders,
    products and households must already exist (:class:`NotFoundError` lists the missing ones;
    nothing is written). Runs in the caller's transaction: use ``engine.begin()``.
    """
    if kind not in RECORD_KINDS:
        raise StoreError(f"unknown record kind {kind!r}", hint=f"use one of: {', '.join(RECORD_KINDS)}")
    table, model = RECORD_KINDS[kind]
    valid = _coerce(kind, model, records)
    rows = [to_row(r) for r in valid]
    # Same-kind references within the batch count (none of the kinds refers to itself today).
    for fieldname, column, noun in _REFERENCES.get(kind, []):
        wanted = {str(r[fieldname]) for r in rows if r.get(fieldname) is not None}
        missing = _missing(conn, column, wanted)
        if missing:
            shown = ", ".join(repr(m) for m in missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise NotFoundError(f"cannot write {kind}: no {noun} {shown} in the store",
                                hint=f"write the {noun} first; nothing was written")
    import_id = begin_import(conn, kind=import_kind, origin=origin, source_label=source_label, fmt=None)
    now = datetime.now(UTC)
    try:
        count = upsert(conn, table, [{**r, "import_id": import_id, "written_at": now} for r in rows])
    except sa.exc.IntegrityError as exc:
        raise StoreError(f"cannot write {kind}: {' '.join(str(exc.orig).split())}",
                         hint="check the records' keys and references; nothing was written") from exc
    finish_import(conn, import_id, rows_read=len(rows), rows_imported=count, rows_quarantined=0)
    return WriteResult(import_id=import_id, kind=kind, count=count)


def write_all(conn: Connection, records: Iterable[BaseModel], *, origin: str = "api",
              import_kind: str = "api", source_label: str | None = None) -> list[WriteResult]:
    """Write records of mixed kinds, grouped by kind in reference order (households before customers,
    customers and products before orders, orders before lines). One import batch per kind."""
    by_kind: dict[str, list[BaseModel]] = {}
    for rec in records:
        by_kind.setdefault(record_kind(rec), []).append(rec)
    return [write_records(conn, kind, by_kind[kind], origin=origin, import_kind=import_kind,
                          source_label=source_label)
            for kind in RECORD_KINDS if kind in by_kind]


__all__ = [
    "RECORD_KINDS", "CustomerView", "ImportBatch", "Provenance", "Stored", "StoredOrder",
    "StoredOrderLine", "WriteResult", "count_rows", "customer_exists", "customer_ids", "read_customer",
    "read_imports", "record_kind", "to_row", "write_all", "write_records",
]
