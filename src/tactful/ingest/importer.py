"""Run one import: read → map → validate → check references in the store → upsert in batches, with
provenance; every row that cannot be taken goes to the quarantine file with its reason.

The invariant: ``rows_read == rows_imported + rows_quarantined``. Nothing is dropped silently; the
importer checks the invariant before it reports and refuses to report a result that breaks it.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from tactful.errors import IngestError, TactfulError
from tactful.ingest.columnar import TargetColumns
from tactful.ingest.kinds import KindSpec, RowError, kind_spec
from tactful.ingest.mapping import ColumnMapping, RowValueError, compile_mapping, load_mapping
from tactful.ingest.quarantine import Quarantine, default_path
from tactful.ingest.readers import CsvChunk, CsvReader, RawRecord, Reader, detect_format, open_reader
from tactful.ingest.writer import MISSING, BatchWriter, TargetPlan
from tactful.store import db
from tactful.store.bookkeeping import ProgressRecorder, fail_import
from tactful.store.retry import retrying

DEFAULT_BATCH_SIZE = 5_000
#: referenced ids remembered per reference as seen in the store (PostgreSQL; bounded memory)
KNOWN_LIMIT = 200_000
_FOREIGN_KEY_VIOLATION = "23503"  # SQLSTATE

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


@dataclass(slots=True)
class _Batch:
    """Rows handed from the reading thread to the writing one."""

    records: list[RawRecord] = field(default_factory=list)  # the good rows, in order
    rows: list[list[tuple[Any, ...]]] = field(default_factory=list)  # per target: column values
    refs: list[tuple[Any, ...]] = field(default_factory=list)  # per good row: its reference values
    bad: list[tuple[RawRecord, str]] = field(default_factory=list)
    #: mapped rows waiting for the column-at-a-time check (see :mod:`tactful.ingest.columnar`)
    pending: list[tuple[RawRecord, dict[str, Any]]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records) + len(self.bad) + len(self.pending)


class _Run:
    """The state of one import while it runs: rows are read, mapped and validated in the calling
    thread and handed in batches to a writing thread (bounded queue: memory stays flat), which checks
    references, upserts and writes the quarantine."""

    def __init__(self, engine: Engine, spec: KindSpec, mapping: ColumnMapping, quarantine: Quarantine,
                 import_id: int, sensitivity: Any, vectorised: bool = True) -> None:
        self.engine = engine
        self.spec = spec
        self.mapping = mapping
        self.quarantine = quarantine
        self.import_id = import_id
        self.sensitivity = sensitivity
        self.plans = [TargetPlan(t, engine.dialect) for t in spec.targets]
        self.writer = BatchWriter(engine, self.plans)
        self.progress = ProgressRecorder(engine.dialect, import_id)  # the imports row, per batch
        self.apply = compile_mapping(mapping)
        self.vectorised = vectorised
        self.columns = [TargetColumns(spec, plan.target, plan.model, engine.dialect, plan.caching)
                        for plan in self.plans]
        # where each reference's value is found: (target index, column index)
        self.ref_slots: list[tuple[int, int]] = []
        for ref in spec.references:
            for ti, plan in enumerate(self.plans):
                if ref.field in plan.row_fields:
                    self.ref_slots.append((ti, plan.row_fields.index(ref.field)))
                    break
            else:  # pragma: no cover - every reference names a field of one of the kind's records
                raise AssertionError(f"{spec.name}: no record has the field {ref.field}")
        # PostgreSQL enforces the foreign keys behind the references: an id this import already found
        # in the store is not looked up again (a row removed since makes the batch fail on the foreign
        # key: it is then checked again in full, see :meth:`_write_checked`). SQLite's writer works
        # with foreign keys off, so there every batch looks every id up (see tactful.ingest.writer).
        self.known: list[set[str]] = [set() for _ in spec.references]
        self.trusted: list[bool] = [
            engine.dialect.name == "postgresql" and _foreign_key(self.plans[ti].target.table,
                                                                 self.plans[ti].fields[ci], ref.table)
            for ref, (ti, ci) in zip(spec.references, self.ref_slots, strict=True)]
        self._relied = False  # the batch being written took some ids from ``known``
        self.batch = self._new_batch()
        self.read = 0
        self.imported = 0
        self.quarantined = 0
        self.examples: list[str] = []
        self.check_keys = True  # off when a header was checked up front (CSV, Parquet)
        self._queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=2)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _new_batch(self) -> _Batch:
        return _Batch(rows=[[] for _ in self.plans])

    # ---------------------------------------------------------------- per row (reading thread)

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

    def reason(self, record: RawRecord, problems: list[tuple[str, str]] | str) -> str:
        if isinstance(problems, str):
            reason = problems
        else:
            reason = "; ".join(f"{self.describe(f)}: {m}" if f else m for f, m in problems)
        return " ".join(f"{record.where()}: {reason}".split())  # one line

    def reject(self, record: RawRecord, problems: list[tuple[str, str]] | str) -> None:
        self.batch.bad.append((record, self.reason(record, problems)))

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
            values = self.apply(record.values)
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
        if self.vectorised:
            self.batch.pending.append((record, values))
        else:
            self.validate_row(record, values, self.batch)

    def validate_row(self, record: RawRecord, values: dict[str, Any], batch: _Batch) -> None:
        """The per-row path: the record models validate the row (values seen before are reused)."""
        rows = self.row_values(record, values, batch)
        if rows is not None:
            self.merge(batch, [record], [[row] for row in rows])

    def row_values(self, record: RawRecord, values: dict[str, Any],
                   batch: _Batch) -> list[tuple[Any, ...]] | None:
        """One row's values per target, validated by the record models; None (and the row in
        ``batch.bad``) when they refuse it."""
        rows = [plan.lookup(values) for plan in self.plans]
        if any(row is None for row in rows):
            try:
                items = self.spec.validate(values)
            except RowError as exc:
                batch.bad.append((record, self.reason(record, exc.problems)))
                return None
            rows = [plan.convert(values, item) for plan, (_, item) in zip(self.plans, items, strict=True)]
        return rows  # type: ignore[return-value]

    def merge(self, batch: _Batch, records: list[RawRecord], rows: list[list[tuple[Any, ...]]]) -> None:
        """Append good rows (``rows``: per target, one tuple per record) to the batch."""
        if self.quarantine.csv:
            for record in records:
                record.values = None  # a CSV quarantine keeps the raw line: free the dict while queued
        batch.records.extend(records)
        for out, more in zip(batch.rows, rows, strict=True):
            out.extend(more)
        if self.ref_slots:
            batch.refs.extend(zip(*[[row[ci] for row in rows[ti]] for ti, ci in self.ref_slots],
                                  strict=True))
        else:
            batch.refs.extend(() for _ in records)

    def merge_columns(self, batch: _Batch, records: list[RawRecord],
                      per_target: list[tuple[list[list[Any]], Any]],
                      values_of: Callable[[list[int]], list[tuple[RawRecord, dict[str, Any]]]]) -> None:
        """Append a column-checked run of rows to the batch, in order; the rows the fast check flags
        (``values_of`` gives their full records and mapped values) go through :meth:`row_values`."""
        flags = per_target[0][1]
        for _, more in per_target[1:]:
            flags = flags | more
        flagged = [int(i) for i in flags.nonzero()[0]]
        if any(not columns for columns, _ in per_target):  # a target the fast path cannot check
            flagged = list(range(len(records)))
        if len(flagged) == len(records):
            for record, values in values_of(flagged):
                self.validate_row(record, values, batch)
            return
        targets = [list(zip(*columns, strict=True)) for columns, _ in per_target]
        if flagged:
            dropped = set()
            for i, (record, values) in zip(flagged, values_of(flagged), strict=True):
                records[i] = record
                row = self.row_values(record, values, batch)
                if row is None:
                    dropped.add(i)
                else:
                    for t, rows in enumerate(targets):
                        rows[i] = row[t]
            if dropped:
                keep = [i for i in range(len(records)) if i not in dropped]
                records = [records[i] for i in keep]
                targets = [[rows[i] for i in keep] for rows in targets]
        self.merge(batch, records, targets)

    def check_columns(self, batch: _Batch) -> None:
        """The fast path: check the batch's pending rows a column at a time; the rows it flags go
        through the record models, in their place, so the batch is the same as row by row."""
        pending, batch.pending = batch.pending, []
        if not pending:
            return
        values = [v for _, v in pending]
        per_target = [columns.rows(values, MISSING) for columns in self.columns]
        self.merge_columns(batch, [r for r, _ in pending], per_target,
                           lambda indices: [pending[i] for i in indices])

    def fast_columns(self) -> dict[str, str | None] | None:
        """Row field → column when whole CSV chunks can be checked as they are (a mapping that only
        names columns, no product sensitivity to fill in), else None."""
        if not self.vectorised or self.spec.name == "products":
            return None
        out: dict[str, str | None] = {}
        for name, spec in self.mapping.fields.items():
            if spec.has_constant or spec.values is not None or spec.date_formats or spec.split is not None:
                return None
            out[name] = spec.column
        return out

    def take_chunk(self, chunk: CsvChunk, batch_size: int, column_of: dict[str, str | None],
                   after_part: Callable[[], None] | None = None) -> None:
        """Take a :class:`CsvChunk` a column at a time, cut at the same batch boundaries as row by row
        (``after_part`` is called after each piece: the progress bar moves batch by batch)."""
        start = 0
        while start < len(chunk):
            room = max(1, batch_size - len(self.batch))
            part = chunk.slice(start, room)
            start += len(part)
            self._take_part(part, column_of)
            if len(self.batch) >= batch_size:
                self.hand_over()
            if after_part is not None:
                after_part()

    def _take_part(self, part: CsvChunk, column_of: dict[str, str | None]) -> None:
        if self.batch.pending:  # rows read record by record before this part come first in the batch
            self.check_columns(self.batch)
        self.read += len(part)
        per_target = [columns.arrow_rows(part.table, column_of) for columns in self.columns]
        first_row, first_line = part.first_row, part.first_line
        records = [RawRecord(first_row + i, first_line + i, None, None, raw)
                   for i, raw in enumerate(part.raw)]

        def values_of(indices: list[int]) -> list[tuple[RawRecord, dict[str, Any]]]:
            out = []
            for record in part.records(indices):
                out.append((record, self.apply(record.values or {})))
            return out

        self.merge_columns(self.batch, records, per_target, values_of)

    def hand_over(self) -> None:
        """Send the current batch to the writing thread (waits while two are queued)."""
        if self._error is not None:
            raise self._error
        if not len(self.batch):
            return
        batch, self.batch = self.batch, self._new_batch()
        self.check_columns(batch)
        if self._thread is None:
            self._thread = threading.Thread(target=self._write_all, name="tactful-import-writer",
                                            daemon=True)
            self._thread.start()
        while True:
            try:
                self._queue.put(batch, timeout=0.5)
                return
            except queue.Full:
                if self._error is not None or not self._thread.is_alive():
                    raise self._error or TactfulError("the import's writer stopped") from None

    def finish(self) -> None:
        """Hand over the last batch and wait until everything is written."""
        self.hand_over()
        if self._thread is not None:
            while self._thread.is_alive():
                try:
                    self._queue.put(None, timeout=0.5)
                    break
                except queue.Full:
                    continue
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop the writing thread without writing what is still queued (after an error)."""
        if self._thread is None:
            return
        self._error = self._error or TactfulError("import aborted")
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join()
        self._thread = None

    # ---------------------------------------------------------------- per batch (writing thread)

    def _write_all(self) -> None:
        try:
            self.writer.open()
            try:
                while True:
                    batch = self._queue.get()
                    if batch is None or self._error is not None:
                        return
                    self.flush(batch)
            finally:
                self.writer.close()
        except BaseException as exc:  # handed to the reading thread
            self._error = exc

    def _missing_references(self, cur: Any, batch: _Batch) -> None:
        """Quarantine rows that name a customer, household or product the store lacks."""
        self._relied = False
        for r, ref in enumerate(self.spec.references):
            wanted = {str(refs[r]) for refs in batch.refs if refs[r] is not None and refs[r] is not MISSING}
            if not wanted:
                continue
            ask = wanted
            if self.trusted[r]:
                known = self.known[r]
                ask = wanted - known
                self._relied = self._relied or len(ask) < len(wanted)
            missing = self.writer.missing(cur, ref.table, sorted(ask)) if ask else set()
            if self.trusted[r]:
                if len(known) + len(ask) > KNOWN_LIMIT:
                    known.clear()
                known.update(ask - missing)
            if not missing:
                continue
            keep = [i for i, refs in enumerate(batch.refs)
                    if refs[r] is None or refs[r] is MISSING or str(refs[r]) not in missing]
            for i in sorted(set(range(len(batch.records))) - set(keep)):
                value = batch.refs[i][r]
                batch.bad.append((batch.records[i], self.reason(batch.records[i], [(
                    ref.field, f"{value!r} is not in the store's {ref.table.name} "
                               f"(import the {ref.table.name} first)")])))
            batch.records = [batch.records[i] for i in keep]
            batch.refs = [batch.refs[i] for i in keep]
            batch.rows = [[rows[i] for i in keep] for rows in batch.rows]

    def _write_checked(self, batch: _Batch) -> None:
        """Write a batch with its reference check; when ids taken from ``known`` made it fail on a
        foreign key (a row removed from the store since), check every id again and write it again."""
        try:
            self._write(batch.rows, batch)
        except self.writer.dialect.dbapi.IntegrityError as exc:  # type: ignore[union-attr]
            if not self._relied or getattr(exc, "sqlstate", None) != _FOREIGN_KEY_VIOLATION:
                raise
            for known in self.known:
                known.clear()
            self._write(batch.rows, batch)

    def _write(self, rows: list[list[tuple[Any, ...]]], check: _Batch | None, binary: bool = True) -> None:
        # a deadlock or serialization failure (PostgreSQL) rolls the batch back: run it again
        retrying(lambda: self._write_once(rows, check, binary))

    def _write_once(self, rows: list[list[tuple[Any, ...]]], check: _Batch | None, binary: bool) -> None:
        writer = self.writer
        cur = writer.begin()
        try:
            if check is not None:
                self._missing_references(cur, check)
                rows = check.rows
            writer.write(cur, rows, self.import_id, datetime.now(UTC), binary)
            if check is not None:  # the imports row says how far the import got, in the same commit
                done, bad = self.imported + len(check.records), self.quarantined + len(check.bad)
                self.progress.record(cur, rows_read=done + bad, rows_imported=done, rows_quarantined=bad)
            writer.commit()
        except BaseException:
            writer.rollback()
            raise
        finally:
            cur.close()

    def flush(self, batch: _Batch) -> None:
        fallback = False
        if batch.records:
            try:
                self._write_checked(batch)
                self.imported += len(batch.records)
            except (self.writer.dialect.dbapi.IntegrityError,  # type: ignore[union-attr]
                    self.writer.dialect.dbapi.DataError) as first:  # type: ignore[union-attr]
                # the store refused something the checks let through (a value too long for a column):
                # write one row at a time and quarantine what it refuses
                del first
                for i, record in enumerate(batch.records):
                    try:
                        self._write([[rows[i]] for rows in batch.rows], None, binary=False)
                        self.imported += 1
                    except (self.writer.dialect.dbapi.IntegrityError,  # type: ignore[union-attr]
                            self.writer.dialect.dbapi.DataError) as exc:  # type: ignore[union-attr]
                        detail = " ".join(str(exc).split())
                        batch.bad.append((record, self.reason(record, f"the store refused the row: "
                                                                      f"{detail}")))
                fallback = True
        for record, reason in sorted(batch.bad, key=lambda b: b[0].row):
            self.quarantine.write(record, reason)
            self.quarantined += 1
            if len(self.examples) < 5:
                self.examples.append(reason)
        if fallback or not batch.records:  # counts not yet recorded with a batch's commit
            cur = self.writer.begin()
            try:
                self.progress.record(cur, rows_read=self.imported + self.quarantined,
                                     rows_imported=self.imported, rows_quarantined=self.quarantined)
                self.writer.commit()
            except BaseException:
                self.writer.rollback()
                raise
            finally:
                cur.close()


def _foreign_key(table: Any, column: str, referred: Any) -> bool:
    """Whether ``table.column`` is declared a foreign key to ``referred`` (enforced by the store)."""
    return any(fk.column.table is referred for fk in table.c[column].foreign_keys)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _store_files(engine: Engine) -> list[tuple[Path, str]]:
    """The files of a SQLite store (a quarantine file may never replace them)."""
    if engine.url.get_backend_name() != "sqlite" or not engine.url.database \
            or engine.url.database == ":memory:":
        return []
    base = Path(engine.url.database)
    return [(base.with_name(base.name + suffix), "store") for suffix in ("", "-wal", "-journal", "-shm")]


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
    vectorised: bool = True,
) -> ImportResult:
    """Import ``path`` as ``kind`` into the store behind ``engine`` (see the module docstring).

    Raises :class:`IngestError` when the import cannot run at all (missing file, bad mapping, a
    header without a required column); bad rows never raise, they are quarantined. ``vectorised``
    False validates every row with the record models (the reference the fast path is tested against;
    the result is the same, only slower).
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

    reader: Reader = open_reader(path, fmt, mapping.csv)
    try:
        check_columns(mapping, reader.columns, path)
        header_raw = reader.header_raw if isinstance(reader, CsvReader) else b""
        quarantine = Quarantine(q_path, fmt, csv_options=mapping.csv, header_raw=header_raw,
                                protect=[(path, "input"), *_store_files(engine)],
                                remove_stale=quarantine_path is None)
        quarantine.prepare()  # refuses a bad or unwritable path (exit 2) before anything is committed
        document = {"file": mapping.source, **mapping.document} if mapping.explicit else None
        with engine.begin() as conn:
            import_id = db.begin_import(conn, kind=spec.name, origin=str(path.resolve()),
                                        source_label=source_label, fmt=fmt, mapping=document)
        run = _Run(engine, spec, mapping, quarantine, import_id, sensitivity, vectorised)
        run.check_keys = reader.columns is None
        try:
            step = max(1, min(batch_size, 1000))
            take = run.take
            column_of = run.fast_columns() if isinstance(reader, CsvReader) else None
            items = reader.chunks() if isinstance(reader, CsvReader) and column_of is not None else reader
            for item in items:
                if isinstance(item, CsvChunk):
                    assert column_of is not None
                    run.take_chunk(item, batch_size, column_of,
                                   None if progress is None else lambda: progress(reader.done, reader.total))
                    continue
                take(item)
                if len(run.batch) >= batch_size:
                    run.hand_over()
                if progress is not None and run.read % step == 0:
                    progress(reader.done, reader.total)
            run.finish()
            if progress is not None:
                progress(reader.done, reader.total)
        except BaseException as exc:
            run.abort()
            fail_import(engine, import_id, exc)  # the imports row says it failed, and why
            raise
        finally:
            quarantine.close()
    finally:
        reader.close()

    if run.read != run.imported + run.quarantined:  # the promise this module makes; never expected
        fail_import(engine, import_id, "rows were lost between reading and writing")
        raise TactfulError(f"import {import_id}: {run.read} rows read but {run.imported} imported and "
                           f"{run.quarantined} quarantined; please report this bug")
    written = q_path if run.quarantined else None
    with engine.begin() as conn:
        db.finish_import(conn, import_id, rows_read=run.read, rows_imported=run.imported,
                         rows_quarantined=run.quarantined,
                         quarantine_file=str(written.resolve()) if written else None)
    return ImportResult(spec.name, path, fmt, import_id, run.read, run.imported, run.quarantined, written,
                        time.perf_counter() - started, run.examples)
