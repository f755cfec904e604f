"""The candidates table: one row per (customer, proposed touch), read from CSV, JSON Lines or Parquet.

Columns (docs/batch.md): ``customer_id`` and ``touch_id`` (required), then the fields of a touch file's
``touch`` section (docs/realtime.md): ``kind``, ``purpose``, ``channel`` (required), ``to`` (a contact
point id) or ``to_kind`` (email, phone, postal: the customer's best contact point of that kind),
``sender``, ``sender_implies``, ``uses``, ``shows``, ``shows_items``, ``shows_implies``, ``depth``,
``named``, ``trigger``, ``granularity``, ``group_size``, and an optional ``now`` (the evaluation time
of that row). A list cell is a list (JSON Lines, Parquet) or text: ids separated by ``;``, or a JSON
array (fact selectors such as ``[{"kind": "purchase", "within_days": 60}]``).

A file that cannot be read, lacks a required column or has a column not listed here is a
:class:`~tactful.errors.BatchError` (exit 2). A *row* that is not a valid touch does not stop the run:
it is decided ``block`` with its error (fail closed), and counted in the summary.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from tactful.errors import BatchError, TactfulError
from tactful.realtime import TouchFile, parse_touch
from tactful.safeload import TOUCH_LIMITS, DocumentError, load_json

REQUIRED = ("customer_id", "touch_id", "kind", "purpose", "channel")
LIST_FIELDS = ("sender_implies", "uses", "shows", "shows_items", "shows_implies")
SCALAR_FIELDS = ("kind", "purpose", "channel", "to", "sender", "depth", "named", "trigger", "granularity",
                 "group_size")
COLUMNS = ("customer_id", "touch_id", *SCALAR_FIELDS, "to_kind", *LIST_FIELDS, "now")
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


@dataclass(frozen=True, slots=True)
class Candidate:
    """One row: its number (1-based, as a person counts rows), keys, and the touch or the error."""

    row: int
    customer_id: str
    touch_id: str
    touch: TouchFile | None
    error: str | None


def read_table(path: Path) -> pa.Table:
    """The candidates file as an Arrow table (every CSV column read as text)."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise BatchError(f"{path}: unknown candidates format {path.suffix or '(no suffix)'!r}",
                         hint="expected .csv, .jsonl or .parquet")
    if not path.is_file():
        raise BatchError(f"{path}: no such candidates file")
    try:
        if fmt == "csv":
            from pyarrow import csv

            names = csv.open_csv(path).schema.names  # the header; every column then read as text
            table = csv.read_csv(path, convert_options=csv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=True))
        elif fmt == "jsonl":
            from pyarrow import json as pjson

            table = pjson.read_json(path)
        else:
            from pyarrow import parquet

            table = parquet.read_table(path)
    except (pa.ArrowInvalid, OSError, ValueError) as exc:
        raise BatchError(f"{path}: cannot read the candidates ({exc})") from None
    return check_columns(table, str(path))


def check_columns(table: pa.Table, source: str) -> pa.Table:
    """``table`` if its columns are candidates columns with the required ones present, else a
    :class:`BatchError` naming ``source`` (a file, or the caller that made the table)."""
    unknown = [c for c in table.column_names if c not in COLUMNS]
    if unknown:
        raise BatchError(f"{source}: unknown column(s) {', '.join(map(repr, unknown))}",
                         hint=f"expected columns among {', '.join(COLUMNS)} (docs/batch.md)")
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise BatchError(f"{source}: missing column(s) {', '.join(missing)}",
                         hint=f"every candidate needs {', '.join(REQUIRED)}")
    return table


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    text = str(value).strip()
    if not text:
        return []
    if text.startswith("["):
        try:  # the bounded loader: a cell of 5,000 "[" is a row error, not a RecursionError
            loaded = load_json(text, "the JSON array", TOUCH_LIMITS)
        except DocumentError as exc:
            raise ValueError(exc.message) from None
        if not isinstance(loaded, list):
            raise ValueError("expected a JSON array")
        return loaded
    return [part.strip() for part in text.split(";") if part.strip()]


def touch_document(row: Mapping[str, Any]) -> dict[str, Any]:
    """A candidates row as a touch file document (what :func:`tactful.realtime.parse_touch` reads)."""
    touch: dict[str, Any] = {}
    for name in SCALAR_FIELDS:
        value = row.get(name)
        if value is not None and value != "":
            touch[name] = value
    if row.get("to_kind") not in (None, ""):
        if "to" in touch:
            raise ValueError("give to or to_kind, not both")
        touch["to"] = {"kind": row["to_kind"]}
    for name in LIST_FIELDS:
        try:
            items = _list(row.get(name))
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        if items:
            touch[name] = items
    doc: dict[str, Any] = {"version": 1, "touch": touch}
    if row.get("now") not in (None, ""):
        doc["now"] = row["now"]
    return doc


def candidates(table: pa.Table, source: str) -> Iterator[Candidate]:
    """Every row of the table as a :class:`Candidate`; a row that is not a valid touch carries its
    error (naming the file, the row and the field) instead of a touch."""
    for i, row in enumerate(table.to_pylist(), start=1):
        customer = str(row.get("customer_id") or "")
        touch_id = str(row.get("touch_id") or "")
        where = f"{source}: row {i}"
        if not customer or not touch_id:
            yield Candidate(i, customer, touch_id, None, f"{where}: customer_id and touch_id are required")
            continue
        try:
            touch = parse_touch(touch_document(row), source=where)
        except (ValueError, TactfulError) as exc:
            message = exc.message if isinstance(exc, TactfulError) else f"{where}: {exc}"
            yield Candidate(i, customer, touch_id, None, " ".join(message.split()))
            continue
        yield Candidate(i, customer, touch_id, touch, None)
