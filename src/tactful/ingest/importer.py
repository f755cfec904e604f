"""Run one import: read → map → validate → check references in the store → upsert in batches, with
provenance; every row that cannot be taken goes to the quarantine file with its reason.

The invariant: ``rows_read == rows_imported + rows_quarantined``. Nothing is dropped silently; the
importer checks the invariant before it reports and refuses to report a result that breaks it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection, Engine

from tactful.errors import IngestError, TactfulError
from tactful.ingest.kinds import KindSpec, RowError, Target, kind_spec
from tactful.ingest.mapping import ColumnMapping, RowValueError, apply, load_mapping
from tactful.ingest.quarantine import Quarantine, default_path
from tactful.ingest.readers import CsvReader, RawRecord, Reader, detect_format, open_reader
from tactful.store import db

DEFAULT_BATCH_SIZE = 5_000
_IN_CHUNK = 900  # ids per IN (...) lookup; well under SQLite's bound-parameter limit

Progress = Callable[[int, int], None]  # (done, total) in the reader's unit (bytes or rows)


@dataclass(slots=True)
class ImportResult:
    kind: str
    path: Path
    format: str
    import_id: int
    rows_read: int = 0
    rows_imported: int = 0
    rows_quarantined: int = 0
    quarantine_file: Path | None = None
    seconds: float = 0.0
    #: the first few quarantine reasons, for the summary
    examples: list[str] = field(default_factory=list)

    @property
    def progress_unit(self) -> str:
        return "rows" if self.format == "parquet" else "bytes"


@dataclass(slots=True)
class _Pending:
    record: RawRecord
    items: list[tuple[Target, BaseModel]]
    values: dict[str, Any]  # validated values of the referencing fields (customer_id...)


def _db_value(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [_db_value(v) for v in value]
    return value


def _db_row(record: BaseModel) -> dict[str, Any]:
    """Column values of a validated record (enum members as their values, tuples as JSON lists)."""
    row = dict(record.__dict__)
    for name, value in row.items():
        if isinstance(value, Enum | tuple):
            row[name] = _db_value(value)
    return row


def _reference_values(items: Iterable[tuple[Target, BaseModel]], fields: tuple[str, ...]) -> dict[str, Any]:
    """The values of the referencing row fields (customer_id, product_id...) of one row."""
    out: dict[str, Any] = {}
    for target, record in items:
        values = record.__dict__
        for name in fields:
            if name not in out:
                record_field = next((k for k, v in target.rename.items() if v == name), name)
                if record_field in values:
                    out[name] = values[record_field]
    return out


def check_columns(mapping: ColumnMapping, columns: list[str] | None, path: Path) -> None:
    """Before any row is read: every column the mapping names exists, every required field has a
    column or a constant, and (without a mapping file) no column is left unexplained."""
    if columns is None:
        return
    present = set(columns)
    shown = ", ".join(columns) or "(none)"
    for name, spec in mapping.fields.items():
        if spec.declared and spec.column is not None and spec.column not in present:
            raise IngestError(f"{mapping.source}: fields.{name}: column {spec.column!r} is not in "
                              f"{path.name}",
                              hint=f"its columns are: {shown}")
    for info in mapping.kind.fields():
        spec = mapping.fields[info.name]
        if info.required and not spec.has_constant and spec.column not in present:
            raise IngestError(
                f"{path.name}: no column for the required field {info.name!r} of {mapping.kind.name}",
                hint=f"its columns are: {shown}; map one with a mapping file (--mapping, see "
                     "docs/import-formats.md)")
    if not mapping.explicit:
        unknown = [c for c in columns if c not in mapping.kind.field_names()]
        if unknown:
            raise IngestError(
                f"{path.name}: column(s) {', '.join(repr(c) for c in unknown)} are not fields of "
                f"{mapping.kind.name} (fields: {', '.join(mapping.kind.field_names())})",
                hint="rename them, or pass a mapping file (--mapping): columns a mapping does not "
                     "name are ignored")


class _Run:
    """The state of one import while it runs."""

    def __init__(self, engine: Engine, spec: KindSpec, mapping: ColumnMapping, quarantine: Quarantine,
                 import_id: int, sensitivity: Any) -> None:
        self.engine = engine
        self.spec = spec
        self.mapping = mapping
        self.quarantine = quarantine
        self.import_id = import_id
        self.sensitivity = sensitivity
        self.pending: list[_Pending] = []
        self.bad: list[tuple[RawRecord, str]] = []
        self.read = 0
        self.imported = 0
        self.quarantined = 0
        self.examples: list[str] = []
        self.check_keys = True  # off when a header was checked up front (CSV, Parquet)
        self.ref_fields = tuple(ref.field for ref in spec.references)

    # ---------------------------------------------------------------- per row

    def describe(self, path: str) -> str:
        """A row field as the user knows it: ``status (column OptIn)``."""
        base = path.split("[", 1)[0]
        spec = self.mapping.fields.get(base)
        if spec is None or not self.mapping.explicit:
            return path
        if spec.has_constant:
            return f"{path} (constant {spec.constant!r} in the mapping)"
        if spec.column is not None and spec.column != base:
            return f"{path} (column {spec.column!r})"
        return path

    def reject(self, record: RawRecord, problems: list[tuple[str, str]] | str) -> None:
        if isinstance(problems, str):
            reason = problems
        else:
            reason = "; ".join(f"{self.describe(f)}: {m}" if f else m for f, m in problems)
        self.bad.append((record, " ".join(f"{record.where()}: {reason}".split())))  # one line

    def take(self, record: RawRecord) -> None:
        self.read += 1
        if record.problem is not None or record.values is None:
            self.reject(record, record.problem or "the row could not be read")
            return
        problems: list[tuple[str, str]] = []
        if not self.mapping.explicit and self.check_keys:  # without a mapping every key is one of ours
            problems += [(k, f"unknown field (not a field of {self.spec.name}; use a mapping file "
                             "to ignore it)") for k in record.values if not self.spec.is_field(k)]
        try:
            values = apply(self.mapping, record.values)
        except RowValueError as exc:
            problems += exc.problems
            values = {}
        if problems:
            self.reject(record, problems)
            return
        if self.spec.name == "products" and not values.get("implies") and self.sensitivity is not None:
            values["implies"] = list(self.sensitivity.implies(
                _text(values.get("department")), _text(values.get("category")),
                _text(values.get("subcategory")), _text(values.get("name"))))
        try:
            items = self.spec.validate(values)
        except RowError as exc:
            self.reject(record, exc.problems)
            return
        self.pending.append(_Pending(record, items, _reference_values(items, self.ref_fields)))

    # ---------------------------------------------------------------- per batch

    def _missing_references(self, conn: Connection) -> None:
        """Quarantine pending rows that name a customer, household or product the store lacks."""
        for ref in self.spec.references:
            wanted = {str(p.values[ref.field]) for p in self.pending if p.values.get(ref.field) is not None}
            if not wanted:
                continue
            found: set[str] = set()
            ordered = sorted(wanted)
            for i in range(0, len(ordered), _IN_CHUNK):
                chunk = ordered[i:i + _IN_CHUNK]
                found.update(conn.execute(sa.select(ref.table.c.id).where(ref.table.c.id.in_(chunk)))
                             .scalars())
            missing = wanted - found
            if not missing:
                continue
            keep: list[_Pending] = []
            for p in self.pending:
                value = p.values.get(ref.field)
                if value is not None and str(value) in missing:
                    self.reject(p.record, [(ref.field, f"{value!r} is not in the store's {ref.table.name} "
                                                       f"(import the {ref.table.name} first)")])
                else:
                    keep.append(p)
            self.pending = keep

    def _write(self, conn: Connection, rows: list[_Pending]) -> None:
        for target in self.spec.targets:
            key = target.key
            by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
            for p in rows:
                for t, record in p.items:
                    if t is target:
                        row = _db_row(record)
                        by_key[tuple(row[k] for k in key)] = row  # the last row with a key wins
            db.upsert(conn, target.table, db.stamp(by_key.values(), self.import_id))

    def flush(self) -> None:
        if self.pending:
            try:
                with self.engine.begin() as conn:
                    self._missing_references(conn)
                    self._write(conn, self.pending)
                self.imported += len(self.pending)
            except (sa.exc.IntegrityError, sa.exc.DataError):
                # the store refused something the checks let through (a value too long for a column,
                # a row deleted meanwhile): write one row at a time and quarantine what it refuses
                for p in self.pending:
                    try:
                        with self.engine.begin() as conn:
                            self._write(conn, [p])
                        self.imported += 1
                    except (sa.exc.IntegrityError, sa.exc.DataError) as exc:
                        detail = " ".join(str(exc.orig).split())
                        self.reject(p.record, f"the store refused the row: {detail}")
            self.pending = []
        for record, reason in sorted(self.bad, key=lambda b: b[0].row):
            self.quarantine.write(record, reason)
            self.quarantined += 1
            if len(self.examples) < 5:
                self.examples.append(reason)
        self.bad = []


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def run_import(
    engine: Engine,
    kind: str,
    path: Path,
    *,
    mapping_path: Path | None = None,
    fmt: str | None = None,
    source_label: str | None = None,
    quarantine_path: Path | None = None,
    sensitivity_path: Path | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> ImportResult:
    """Import ``path`` as ``kind`` into the store behind ``engine`` (see the module docstring).

    Raises :class:`IngestError` when the import cannot run at all (missing file, bad mapping, a
    header without a required column); bad rows never raise, they are quarantined.
    """
    started = time.perf_counter()
    if batch_size < 1:
        raise IngestError(f"batch size must be at least 1, got {batch_size}")
    spec = kind_spec(kind)
    mapping = load_mapping(mapping_path, spec)
    fmt = detect_format(path, fmt or mapping.format)
    sensitivity = None
    if spec.name == "products":
        from tactful.sensitivity import load_mapping as load_sensitivity

        sensitivity = load_sensitivity(sensitivity_path)
    elif sensitivity_path is not None:
        raise IngestError("--sensitivity applies to products only")
    q_path = quarantine_path or default_path(path, fmt)
    if q_path.resolve() == path.resolve():
        raise IngestError(f"the quarantine file {q_path} would overwrite the input",
                          hint="pass another --quarantine path")

    reader: Reader = open_reader(path, fmt, mapping.csv)
    try:
        check_columns(mapping, reader.columns, path)
        header_raw = reader.header_raw if isinstance(reader, CsvReader) else b""
        quarantine = Quarantine(q_path, fmt, csv_options=mapping.csv, header_raw=header_raw)
        document = {"file": mapping.source, **mapping.document} if mapping.explicit else None
        with engine.begin() as conn:
            import_id = db.begin_import(conn, kind=spec.name, origin=str(path.resolve()),
                                        source_label=source_label, fmt=fmt, mapping=document)
        run = _Run(engine, spec, mapping, quarantine, import_id, sensitivity)
        run.check_keys = reader.columns is None
        try:
            step = max(1, min(batch_size, 1000))
            for record in reader:
                run.take(record)
                if len(run.pending) + len(run.bad) >= batch_size:
                    run.flush()
                if progress is not None and run.read % step == 0:
                    progress(reader.done, reader.total)
            run.flush()
            if progress is not None:
                progress(reader.done, reader.total)
        finally:
            quarantine.close()
    finally:
        reader.close()

    if run.read != run.imported + run.quarantined:  # the promise this module makes; never expected
        raise TactfulError(f"import {import_id}: {run.read} rows read but {run.imported} imported and "
                           f"{run.quarantined} quarantined; please report this bug")
    if run.quarantined == 0 and quarantine_path is None and q_path.exists():
        q_path.unlink()  # a quarantine file left by an earlier run of this import no longer applies
    written = q_path if run.quarantined else None
    with engine.begin() as conn:
        db.finish_import(conn, import_id, rows_read=run.read, rows_imported=run.imported,
                         rows_quarantined=run.quarantined,
                         quarantine_file=str(written.resolve()) if written else None)
    return ImportResult(spec.name, path, fmt, import_id, run.read, run.imported, run.quarantined, written,
                        time.perf_counter() - started, run.examples)
