"""What each KIND of import holds: its row fields, the record models that validate a row, the tables
it writes (in foreign-key order) and the references it checks in the store before writing.

A row field is named like the record field it fills, except in ``orders``, where one row is one
order line and the order's own ``id`` is the row's ``order_id``.
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from functools import cached_property
from typing import Any, Union, get_args, get_origin

import sqlalchemy as sa
from pydantic import BaseModel, ValidationError

from tactful import model
from tactful.ingest import values as syntax
from tactful.store import tables


class RowError(Exception):
    """A row cannot be imported; ``problems`` are (row field, what was expected) pairs."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" if f else m for f, m in problems))
        self.problems = list(problems)


@dataclass(frozen=True, slots=True)
class Target:
    """One record model a row fills and the table it is written to."""

    table: sa.Table
    model: type[BaseModel]
    #: record field → row field, where they differ
    rename: Mapping[str, str] = field(default_factory=dict)

    def row_field(self, record_field: str) -> str:
        return self.rename.get(record_field, record_field)

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.table.primary_key.columns)


@dataclass(frozen=True, slots=True)
class Reference:
    """A row field that must name an existing row of ``table`` (a foreign key), when not empty."""

    field: str
    table: sa.Table

    def describe(self) -> str:
        return self.table.name


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One row field, for mapping checks and for the reference in docs/import-formats.md."""

    name: str
    required: bool
    type: str  # text, integer, number, boolean, date, date-time, list, enum
    choices: tuple[str, ...] = ()  # allowed values of an enum field
    default: str | None = None


@dataclass(frozen=True)
class KindSpec:
    name: str
    targets: tuple[Target, ...]
    references: tuple[Reference, ...] = ()
    description: str = ""
    #: fields holding vocabulary keys: field → "data_category" or "data_use"
    vocab_fields: Mapping[str, str] = field(default_factory=dict)

    def check_vocab(self, name: str, value: Any) -> None:
        """Raise VocabularyError when ``value`` is not a known key for the vocabulary field ``name``."""
        from tactful import vocab

        which = self.vocab_fields.get(name)
        if which == "data_use":
            vocab.check_use(str(value))
        elif which == "data_category":
            vocab.check_category(str(value))

    def fields(self) -> list[FieldInfo]:
        """The row fields, in the order of the record models (shared fields once)."""
        return list(self._fields)

    @cached_property
    def _fields(self) -> tuple[FieldInfo, ...]:
        seen: dict[str, FieldInfo] = {}
        for target in self.targets:
            for name, info in target.model.model_fields.items():
                row_name = target.row_field(name)
                if row_name in seen:
                    continue
                kind, choices = _describe_type(info.annotation)
                default = None
                if not info.is_required():
                    dv = info.get_default(call_default_factory=True)
                    if isinstance(dv, Enum):
                        dv = dv.value
                    default = None if dv is None or dv == () else str(dv).lower() if isinstance(dv, bool) \
                        else str(dv)
                seen[row_name] = FieldInfo(row_name, info.is_required(), kind, choices, default)
        return tuple(seen.values())

    @cached_property
    def _names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self._fields)

    @cached_property
    def _known(self) -> frozenset[str]:
        return frozenset(self._names)

    @cached_property
    def _plans(self) -> tuple[tuple[Target, dict[str, str]], ...]:
        """Per target: row field → record field, for the row fields its model has."""
        plans = []
        for target in self.targets:
            back = {v: k for k, v in target.rename.items()}
            plans.append((target, {name: back.get(name, name) for name in self._names
                                   if back.get(name, name) in target.model.model_fields}))
        return tuple(plans)

    @cached_property
    def checkers(self) -> dict[str, syntax.Checker]:
        """Row field → the check of its documented value syntax (:mod:`tactful.ingest.values`)."""
        out: dict[str, syntax.Checker] = {}
        for info in self._fields:
            column = None
            for target in self.targets:
                back = {v: k for k, v in target.rename.items()}
                name = back.get(info.name, info.name)
                if name in target.table.c:
                    column = target.table.c[name]
                    break
            out[info.name] = syntax.checker(info.type, column)
        return out

    def check_values(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """The row's values as the record models should see them (trimmed, date-times in UTC), and the
        problems of those that do not have their documented syntax (left out of the first)."""
        out: dict[str, Any] = {}
        problems: list[tuple[str, str]] = []
        checkers = self.checkers
        for name, value in values.items():
            check = checkers.get(name)
            if check is None:
                out[name] = value
                continue
            try:
                out[name] = check(value)
            except syntax.ValueProblem as exc:
                problems.append((name, str(exc)))
        return out, problems

    def field_names(self) -> list[str]:
        return list(self._names)

    def is_field(self, name: str) -> bool:
        return name in self._known

    def field_info(self, name: str) -> FieldInfo | None:
        for f in self._fields:
            if f.name == name:
                return f
        return None

    def validate(self, values: Mapping[str, Any]) -> list[tuple[Target, BaseModel]]:
        """The validated records of one row, or :class:`RowError` naming every bad field."""
        problems: list[tuple[str, str]] = [
            (name, f"unknown field (not a field of {self.name}; see docs/import-formats.md)")
            for name in values if name not in self._known
        ]
        values, bad = self.check_values(values)
        problems += bad
        bad_fields = {name for name, _ in bad}
        out: list[tuple[Target, BaseModel]] = []
        for target, plan in self._plans:
            data = {record_field: values[row_field] for row_field, record_field in plan.items()
                    if row_field in values}
            try:
                out.append((target, target.model.model_validate(data)))
            except ValidationError as exc:
                for path, msg in model.validation_errors(exc):
                    head = path.split(".", 1)[0].split("[", 1)[0]
                    item = path[len(head):]
                    if target.row_field(head) in bad_fields:
                        continue  # already said (its value was left out, so "missing" here)
                    problem = (target.row_field(head) + item, _tidy(msg))
                    if problem not in problems:
                        problems.append(problem)
            except (ArithmeticError, ValueError, TypeError, RecursionError) as exc:
                # a validator that failed in an unexpected way: this row's error, never the import's
                problems.append(("", f"cannot validate the row: {type(exc).__name__}: {exc}"))
        if problems:
            raise RowError(problems)
        return out


def _tidy(message: str) -> str:
    """One readable line from a pydantic message: no 'Value error, ' prefix, the bad value once, a
    vocabulary hint in parentheses."""
    message = " ".join(message.split())
    message = message.removeprefix("Value error, ")
    head, sep, tail = message.rpartition(", got ")
    if sep and tail in head:
        message = head
    main, sep, hint = message.partition(" hint: ")
    return f"{main} ({hint})" if sep else message


def _describe_type(annotation: Any) -> tuple[str, tuple[str, ...]]:
    """(type name, enum choices) of a record field's annotation, Optional and Annotated removed."""
    ann = annotation
    if get_origin(ann) in (Union, types.UnionType):
        args = [a for a in get_args(ann) if a is not type(None)]
        ann = args[0] if len(args) == 1 else ann
    if get_origin(ann) is not None and hasattr(ann, "__metadata__"):  # Annotated
        ann = get_args(ann)[0]
    if get_origin(ann) is tuple:
        return "list", ()
    if isinstance(ann, type):
        if issubclass(ann, Enum):
            return "enum", tuple(str(m.value) for m in ann)
        if issubclass(ann, bool):
            return "boolean", ()
        if issubclass(ann, int):
            return "integer", ()
        if issubclass(ann, float):
            return "number", ()
        if issubclass(ann, datetime):
            return "date-time", ()
        if issubclass(ann, date):
            return "date", ()
    return "text", ()


KINDS: dict[str, KindSpec] = {
    spec.name: spec
    for spec in (
        KindSpec("households", (Target(tables.households, model.Household),),
                 description="A household: the people who share a postal address or an inbox."),
        KindSpec("customers", (Target(tables.customers, model.Customer),),
                 (Reference("household_id", tables.households),),
                 description="A customer (the data subject)."),
        KindSpec("contact-points", (Target(tables.contact_points, model.ContactPoint),),
                 (Reference("customer_id", tables.customers),),
                 description="An email address, phone number or postal address of a customer."),
        KindSpec("consents", (Target(tables.consents, model.Consent),),
                 (Reference("customer_id", tables.customers),),
                 description="A customer's yes or no for a purpose (a data use), optionally per channel.",
                 vocab_fields={"purpose": "data_use"}),
        KindSpec("products", (Target(tables.products, model.Product),),
                 description="A product; `implies` are the data categories buying it reveals.",
                 vocab_fields={"implies": "data_category"}),
        KindSpec("orders",
                 (Target(tables.orders, model.Order, {"id": "order_id"}),
                  Target(tables.order_lines, model.OrderLine)),
                 (Reference("customer_id", tables.customers), Reference("product_id", tables.products)),
                 description="One row per order line; the order's columns are repeated on each line."),
        KindSpec("facts", (Target(tables.facts, model.Fact),),
                 (Reference("customer_id", tables.customers),),
                 description="One thing known about a customer (attribute, event, preference, inference).",
                 vocab_fields={"category": "data_category", "implies": "data_category"}),
        KindSpec("touches", (Target(tables.touches, model.TouchRecord),),
                 (Reference("customer_id", tables.customers),),
                 description="A touch that was sent (the history that frequency rules read).",
                 vocab_fields={"purpose": "data_use"}),
    )
}


def kind_spec(name: str) -> KindSpec:
    from tactful.errors import IngestError

    try:
        return KINDS[name]
    except KeyError:
        raise IngestError(f"unknown import kind {name!r}: expected one of {', '.join(KINDS)}") from None
