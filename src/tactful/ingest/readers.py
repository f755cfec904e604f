"""Streaming readers for CSV, JSON Lines and Parquet. Each yields one :class:`RawRecord` per source row,
good or not, so that nothing is lost: a row that cannot even be read (invalid UTF-8, a wrong column
count, broken JSON) comes out with its ``problem`` set and its raw text, ready for the quarantine.

Memory stays flat whatever the file size: CSV and JSONL are read line by line from a binary stream
(each line decoded on its own, so one bad byte spoils one row, not the file), Parquet batch by batch.

A quarantine file written by :mod:`tactful.ingest.quarantine` can be read back with the same reader:
its two leading columns (CSV) or keys (JSONL), ``_tactful_row`` and ``_tactful_reason``, are dropped.
"""

from __future__ import annotations

import bisect
import codecs
import csv
import io
import itertools
import json
import operator
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from tactful.errors import IngestError
from tactful.ingest.mapping import CsvOptions

ROW_KEY = "_tactful_row"
REASON_KEY = "_tactful_reason"
RAW_KEY = "_tactful_raw"
MAX_LINE = 16 * 1024 * 1024  # a physical line longer than this is read in pieces (each one a bad row)

FORMATS = ("csv", "jsonl", "parquet")
_EXTENSIONS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl",
               ".parquet": "parquet", ".pq": "parquet"}


def detect_format(path: Path, explicit: str | None = None) -> str:
    """``--format`` wins; otherwise the file's extension decides."""
    if explicit is not None:
        if explicit not in FORMATS:
            raise IngestError(f"unknown format {explicit!r}: expected one of {', '.join(FORMATS)}")
        return explicit
    fmt = _EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise IngestError(f"cannot tell the format of {path.name} from its extension",
                          hint="name it .csv, .jsonl or .parquet, or pass --format csv|jsonl|parquet")
    return fmt


@dataclass(slots=True)
class RawRecord:
    """One source row: its values by column, or the problem that kept it from being read."""

    row: int  # 1-based data row number (the header is not a row)
    line: int | None  # first physical line in the file (CSV, JSONL); None for Parquet
    values: dict[str, Any] | None
    problem: str | None = None
    raw: bytes | None = None  # CSV: the row's raw line(s); JSONL: the raw line

    def where(self) -> str:
        return f"row {self.row}" + (f" (line {self.line})" if self.line is not None else "")


class Reader(Protocol):
    """What the importer needs from a reader."""

    @property
    def columns(self) -> list[str] | None:
        """The header; None when rows carry their own keys (JSONL)."""

    @property
    def total(self) -> int:
        """For the progress bar: bytes (CSV, JSONL) or rows (Parquet)."""

    @property
    def done(self) -> int:
        """How much of ``total`` has been read."""

    def __iter__(self) -> Iterator[RawRecord]: ...

    def close(self) -> None: ...


def _open_binary(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise IngestError(f"input file {path} does not exist") from None
    except OSError as exc:
        raise IngestError(f"cannot open {path}: {exc}") from None


# --------------------------------------------------------------------------- CSV


@dataclass(slots=True)
class _Line:
    no: int
    raw: bytes
    text: str
    error: str | None


_BLOCK = 1 << 20  # bytes read at a time; split into lines and decoded in one go
_MIN_RUN = 16  # the fewest simple lines worth reading as one Arrow chunk
_BARE_CR = re.compile(rb"\r(?!\n)")


def _pieces(line: bytes) -> list[bytes]:
    """A physical line as :meth:`readline` with ``MAX_LINE`` returns it: in pieces when too long."""
    return [line[i:i + MAX_LINE] for i in range(0, len(line), MAX_LINE)]


class _Lines:
    """Physical lines for :func:`csv.reader`, each decoded on its own (a bad byte spoils its line
    only); remembers which lines each record took (``taken``) and can be handed lines back
    (``pending``) to re-read them. The file is read a block at a time and split at ``\n`` as
    :meth:`readline` would (lines longer than ``MAX_LINE`` come in pieces)."""

    def __init__(self, stream: IO[bytes], encoding: str) -> None:
        self.stream = stream
        self.encoding = encoding
        self.pending: deque[_Line] = deque()
        self.taken: list[_Line] = []
        self.line_no = 0
        self.bytes_read = 0
        self._raw: list[bytes] = []
        self._text: list[str] | None = []
        self._errors: list[str | None] | None = None
        self._next = 0
        self.blocks = 0  # blocks read so far (the fast path tries each block once)
        self._carry = b""
        self._eof = False

    def __iter__(self) -> _Lines:
        return self

    def _fill(self) -> bool:
        """Read the next block of whole lines; False at the end of the file."""
        lines: list[bytes] = []
        while not lines:
            if self._eof:
                return False
            data = self.stream.read(_BLOCK)
            if not data:
                self._eof = True
                lines = [self._carry] if self._carry else []
                self._carry = b""
            else:
                self.bytes_read += len(data)
                lines = io.BytesIO(self._carry + data).readlines()
                self._carry = b"" if lines[-1].endswith(b"\n") else lines.pop()
                if len(self._carry) >= MAX_LINE:
                    pieces = _pieces(self._carry)
                    self._carry = pieces.pop() if len(pieces[-1]) < MAX_LINE else b""
                    lines += pieces
            if max(map(len, lines), default=0) >= MAX_LINE:
                lines = [piece for line in lines for piece in _pieces(line)]
        if self.line_no == 0 and self._next == 0 and self.encoding == "utf-8" \
                and lines[0].startswith(codecs.BOM_UTF8):
            lines[0] = lines[0][len(codecs.BOM_UTF8):]
        encoding = self.encoding
        try:
            if max(map(len, lines), default=0) >= MAX_LINE:  # pieces of a long line: a character may be cut
                self._text = [line.decode(encoding) for line in lines]
            else:  # whole lines: the block decodes iff each line does; lines are decoded when read
                b"".join(lines).decode(encoding)
                self._text = None
            self._errors = None
        except UnicodeDecodeError:
            self._text = []
            self._errors = []
            for i, line in enumerate(lines, start=self.line_no + 1):
                try:
                    text, error = line.decode(encoding), None
                except UnicodeDecodeError as exc:
                    text = line.decode(encoding, "replace")
                    error = (f"line {i} is not valid {encoding}: byte "
                             f"{line[exc.start]:#04x} at byte {exc.start + 1} of the line")
                self._text.append(text)
                self._errors.append(error)
        self._raw = lines
        self._next = 0
        self.blocks += 1
        return True

    def __next__(self) -> str:
        if self.pending:
            item = self.pending.popleft()
        else:
            i = self._next
            if i >= len(self._raw):
                if not self._fill():
                    raise StopIteration
                i = 0
            self._next = i + 1
            self.line_no += 1
            raw = self._raw[i]
            text = raw.decode(self.encoding) if self._text is None else self._text[i]
            item = _Line(self.line_no, raw, text,
                         None if self._errors is None else self._errors[i])
        self.taken.append(item)
        return item.text


def _after_fields(raw: bytes, n: int, delimiter: bytes, quote: bytes) -> int:
    """The byte offset just after the ``n``-th delimiter outside quotes (for dropping leading columns)."""
    in_quotes = False
    seen = 0
    for i in range(len(raw)):
        ch = raw[i:i + 1]
        if ch == quote:
            in_quotes = not in_quotes
        elif ch == delimiter and not in_quotes:
            seen += 1
            if seen == n:
                return i + 1
    return len(raw)


def _well_quoted(text: str, delimiter: str, quote: str) -> bool:
    """Whether every quote in the line opens a field, closes it, or is doubled inside it."""
    body = text.rstrip("\r\n")
    n = len(body)
    i = 0
    at_field_start = True
    in_quotes = False
    while i < n:
        c = body[i]
        if in_quotes:
            if c == quote:
                if i + 1 < n and body[i + 1] == quote:
                    i += 2
                    continue
                in_quotes = False
                if i + 1 < n and body[i + 1] != delimiter:
                    return False
        elif c == quote:
            if not at_field_start:
                return False
            in_quotes = True
        at_field_start = c == delimiter and not in_quotes
        i += 1
    return not in_quotes


@dataclass(slots=True)
class CsvChunk:
    """Consecutive rows of a CSV file read at once (one per line, all well formed): the rows
    ``first_row``... and lines ``first_line``..., their text by column, and each row's raw line."""

    first_row: int
    first_line: int
    table: Any  # a pyarrow Table of string columns, named as in the header
    raw: list[bytes]

    def __len__(self) -> int:
        return len(self.raw)

    def slice(self, start: int, length: int) -> CsvChunk:
        return CsvChunk(self.first_row + start, self.first_line + start,
                        self.table.slice(start, length), self.raw[start:start + length])

    def records(self, indices: list[int] | None = None) -> list[RawRecord]:
        """The chunk's rows (those at ``indices``, or all) as the record-by-record reader gives them."""
        import pyarrow as pa

        wanted = list(range(len(self.raw))) if indices is None else indices
        table = self.table.take(pa.array(wanted, pa.int64())) if indices is not None else self.table
        return [RawRecord(self.first_row + i, self.first_line + i, values, None, self.raw[i])
                for i, values in zip(wanted, table.to_pylist(), strict=True)]


class CsvReader:
    """Reads a CSV file record by record (quoted fields may span lines)."""

    def __init__(self, path: Path, options: CsvOptions) -> None:
        self.path = path
        self.options = options
        self.stream = _open_binary(path)
        self.total = path.stat().st_size
        self.lines = _Lines(self.stream, options.encoding)
        self.reader = csv.reader(self.lines, delimiter=options.delimiter, quotechar=options.quotechar,
                                 doublequote=True, strict=True)
        self.skip = 0  # 2 when reading back a quarantine file
        # the fast path's view of the current block (see _fast_chunk)
        self._block_id = -1
        self._block = b""
        self._offsets: list[int] = []
        self._bad_at = 0
        self._quote = options.quotechar.encode(options.encoding)
        self._delimiter = options.delimiter.encode(options.encoding)
        self.columns: list[str] | None = None
        self.header_raw = b""
        self._read_header()

    @property
    def done(self) -> int:
        return self.lines.bytes_read

    def close(self) -> None:
        self.stream.close()

    def _fail(self, message: str) -> IngestError:
        self.close()
        return IngestError(f"{self.path}: {message}")

    def _read_header(self) -> None:
        self.lines.taken = []
        try:
            header = next(self.reader)
            while not header or (len(header) == 1 and header[0].isspace()):  # blank lines before it
                self.lines.taken = []
                header = next(self.reader)
        except StopIteration:
            raise self._fail("the file is empty: expected a header line with the column names") from None
        except csv.Error as exc:
            raise self._fail(f"line {self.lines.line_no}: cannot read the header: {exc}") from None
        for line in self.lines.taken:
            if line.error:
                raise self._fail(f"{line.error} (in the header)")
        self.header_raw = b"".join(line.raw for line in self.lines.taken)
        columns = [h.strip() for h in header]
        if columns[:2] == [ROW_KEY, REASON_KEY]:
            self.skip = 2
            columns = columns[2:]
            self.header_raw = self.header_raw[self._prefix_end(self.header_raw):]
        seen: set[str] = set()
        for i, name in enumerate(columns, start=1):
            if name in seen:
                raise self._fail(f"column {name!r} appears twice in the header",)
            seen.add(name)
            if not name:
                raise self._fail(f"column {i} of the header has no name",)
        self.columns = columns

    def _prefix_end(self, raw: bytes) -> int:
        enc = self.options.encoding
        return _after_fields(raw, self.skip, self.options.delimiter.encode(enc),
                             self.options.quotechar.encode(enc))

    def _resyncs(self, lines: list[_Line], width: int) -> bool:
        """Whether ``lines`` read as rows of their own: each has balanced quotes and ``width`` fields.

        Used after a quote opened on a row's first line swallowed the lines below it: when they are
        complete rows, the first line alone is bad and they are read again. A line that closes a
        genuine multi-line field has a quote that does not open a field, so such a row stays whole
        (re-reading its continuation lines as rows could import garbage).
        """
        quote = self.options.quotechar
        for line in lines:
            if line.error or not _well_quoted(line.text, self.options.delimiter, quote):
                return False
            try:
                fields = next(csv.reader([line.text], delimiter=self.options.delimiter,
                                         quotechar=quote, strict=True))
            except (csv.Error, StopIteration):
                return False
            if len(fields) != width:
                return False
        return True

    def __iter__(self) -> Iterator[RawRecord]:
        for item in self._records(fast=False):
            assert isinstance(item, RawRecord)
            yield item

    def chunks(self) -> Iterator[RawRecord | CsvChunk]:
        """Like iterating the reader, but a run of simple lines comes as one :class:`CsvChunk`, read by
        Arrow: a block of the file is taken that way when it is UTF-8, has no quote character, no
        stray carriage return and no NUL, and Arrow reads exactly one row of the header's width from
        each line. Anything else (a quoted field, a bad line, a blank line) is read record by record
        as always, so the rows and their problems are the same either way."""
        yield from self._records(fast=self.skip == 0 and self.options.encoding == "utf-8"
                                 and len(self.columns or ()) >= 2)

    def _fast_chunk(self, row: int) -> tuple[CsvChunk | None, int]:
        """The simple lines that come next in the current block as a chunk (or None when there are too
        few), and the line number before which the fast path should not try again."""
        lines = self.lines
        done = lines.line_no  # lines read so far
        first = lines._next
        raw = lines._raw
        if lines._errors is not None:  # a line of this block is not valid text: read it record by record
            return None, done + len(raw) - first
        if self._block_id != lines.blocks:
            self._block_id = lines.blocks
            self._block = b"".join(raw)
            self._offsets = [0, *itertools.accumulate(map(len, raw))]
            self._bad_at = 0
        block, offsets = self._block, self._offsets
        # the first line (from ``first``) with a quote, a NUL or a carriage return not ending the line
        if self._bad_at <= offsets[first]:
            start = offsets[first]
            found = [i for i in (block.find(self._quote, start), block.find(b"\x00", start)) if i >= 0]
            cr = _BARE_CR.search(block, start)
            if cr is not None:
                found.append(cr.start())
            self._bad_at = min(found, default=len(block))
        stop = bisect.bisect_right(offsets, self._bad_at) - 1 if self._bad_at < len(block) else len(raw)
        candidate = raw[first:stop]
        # ... and the first one that is not one row of the header's width (a blank line, a short row)
        counts = list(map(operator.methodcaller("count", self._delimiter), candidate))
        width = len(self.columns or ()) - 1
        if counts.count(width) != len(counts):
            candidate = candidate[:next(i for i, c in enumerate(counts) if c != width)]
        if len(candidate) < _MIN_RUN or max(map(len, candidate)) >= MAX_LINE:
            return None, done + len(candidate) + 1
        import pyarrow as pa
        import pyarrow.csv as pacsv

        assert self.columns is not None
        names = [f"c{i}" for i in range(len(self.columns))]
        data = block[offsets[first]:offsets[first + len(candidate)]]
        try:
            table = pacsv.read_csv(
                io.BytesIO(data),
                read_options=pacsv.ReadOptions(column_names=names, use_threads=False,
                                               block_size=max(len(data) + 1, 1 << 20)),
                parse_options=pacsv.ParseOptions(delimiter=self.options.delimiter, quote_char=False,
                                                 double_quote=False, escape_char=False,
                                                 newlines_in_values=False, ignore_empty_lines=False),
                convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                     strings_can_be_null=False, check_utf8=True))
        except (pa.ArrowException, ValueError):
            return None, done + len(raw) - first
        if table.num_rows != len(candidate):  # pragma: no cover - one row per checked line
            return None, done + len(raw) - first
        chunk = CsvChunk(row + 1, done + 1, table.rename_columns(self.columns), candidate)
        lines.line_no += len(candidate)
        lines._next = first + len(candidate)
        return chunk, done + len(candidate)

    def _records(self, fast: bool) -> Iterator[RawRecord | CsvChunk]:
        assert self.columns is not None
        width = len(self.columns) + self.skip
        row = 0
        retry_at = 0  # the line number from which the fast path tries again
        while True:
            if fast and not self.lines.pending and self.lines.line_no >= retry_at:
                lines = self.lines
                if lines._next >= len(lines._raw) and not lines._fill():
                    return
                chunk, retry_at = self._fast_chunk(row)
                if chunk is not None:
                    row += len(chunk)
                    yield chunk
                    continue
            self.lines.taken = []
            try:
                fields = next(self.reader)
            except StopIteration:
                return
            except csv.Error as exc:
                taken = list(self.lines.taken)
                if not taken:  # pragma: no cover - csv raises only after reading a line
                    raise
                row += 1
                first = taken[0]
                if len(taken) > 1 and not self._resyncs(taken[1:], width):
                    yield RawRecord(row, first.no, None,
                                    f"lines {first.no}-{taken[-1].no} are not valid CSV: {exc}",
                                    self._raw(taken))
                    continue
                # the first line is the bad row; the lines after it are read again on their own
                self.lines.pending.extendleft(reversed(taken[1:]))
                problem = (f"a quoted field opened on line {first.no} is never closed" if len(taken) > 1
                           else f"line {first.no} is not valid CSV: {exc}")
                yield RawRecord(row, first.no, None, problem, self._strip(first.raw))
                continue
            taken = self.lines.taken
            if not fields or (len(taken) == 1 and taken[0].error is None and taken[0].text.isspace()):
                continue  # a blank line (or one of spaces and tabs only) is not a row
            row += 1
            if len(taken) == 1 and len(fields) == width and taken[0].error is None:  # the usual row
                first = taken[0]
                yield RawRecord(row, first.no, dict(zip(self.columns, fields[self.skip:] if self.skip
                                                        else fields, strict=True)),
                                None, self._strip(first.raw) if self.skip else first.raw)
                continue
            taken = list(taken)
            errors = [line.error for line in taken if line.error]
            if errors:
                yield RawRecord(row, taken[0].no, None, "; ".join(errors), self._raw(taken))
                continue
            if len(fields) != width:
                if len(taken) > 1 and self._resyncs(taken[1:], width):
                    self.lines.pending.extendleft(reversed(taken[1:]))
                    yield RawRecord(row, taken[0].no, None,
                                    f"a quoted field opened on line {taken[0].no} is never closed "
                                    f"(expected {len(self.columns)} columns as in the header)",
                                    self._strip(taken[0].raw))
                    continue
                yield RawRecord(row, taken[0].no, None,
                                f"expected {len(self.columns)} columns as in the header, got "
                                f"{len(fields) - self.skip}", self._raw(taken))
                continue
            yield RawRecord(row, taken[0].no, dict(zip(self.columns, fields[self.skip:], strict=True)),
                            None, self._raw(taken))

    def _strip(self, raw: bytes) -> bytes:
        return raw[self._prefix_end(raw):] if self.skip else raw

    def _raw(self, taken: list[_Line]) -> bytes:
        return self._strip(b"".join(line.raw for line in taken))


# --------------------------------------------------------------------------- JSON Lines


class JsonlReader:
    """Reads one JSON object per line."""

    columns: list[str] | None = None

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stream = _open_binary(path)
        self.total = path.stat().st_size
        self.done = 0

    def close(self) -> None:
        self.stream.close()

    def __iter__(self) -> Iterator[RawRecord]:
        row = 0
        line_no = 0
        while True:
            raw = self.stream.readline(MAX_LINE)
            if not raw:
                return
            self.done += len(raw)
            line_no += 1
            if line_no == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            if not raw.strip():
                continue  # a blank line is not a row
            row += 1
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield RawRecord(row, line_no, None, f"line {line_no} is not valid UTF-8: byte "
                                f"{raw[exc.start]:#04x} at byte {exc.start + 1} of the line", raw)
                continue
            values, problem = self._parse(text)
            if values is not None and RAW_KEY in values:  # a quarantined line that was not JSON
                raw = str(values.pop(RAW_KEY)).encode("utf-8")
                values, problem = self._parse(raw.decode("utf-8"))
            yield RawRecord(row, line_no, values, problem, raw)

    @staticmethod
    def _parse(text: str) -> tuple[dict[str, Any] | None, str | None]:
        try:
            value = json.loads(text, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as exc:
            return None, f"not valid JSON: {exc.msg} at column {exc.colno}"
        except _DuplicateKey as exc:
            return None, (f"the key {exc.key!r} appears twice in one object: which value is meant "
                          "cannot be known (JSON keeps only the last)")
        except RecursionError:
            return None, "the JSON is nested too deeply to read"
        except ValueError as exc:  # an integer of more than 4300 digits
            return None, f"a value cannot be read: {exc}"
        if not isinstance(value, dict):
            return None, f"expected a JSON object on each line, got a JSON {type(value).__name__}"
        if "\\u" in text and _has_surrogate(value):
            return None, "a string holds an unpaired surrogate (\\ud800-\\udfff), which is not valid Unicode"
        value.pop(ROW_KEY, None)
        value.pop(REASON_KEY, None)
        return value, None


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are unique; a key given twice is a row error, never "the last wins"
    (a second ``status`` could silently turn a refusal into a grant)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _has_surrogate(value: Any) -> bool:
    """Whether a parsed JSON value holds a lone surrogate (only ``\\udXXX`` escapes can produce one)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if any("\ud800" <= c <= "\udfff" for c in item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


# --------------------------------------------------------------------------- Parquet


class ParquetReader:
    """Reads a Parquet file batch by batch (a few thousand rows at a time)."""

    def __init__(self, path: Path, batch_size: int = 10_000) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not path.exists():
            raise IngestError(f"input file {path} does not exist")
        try:
            self.file = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            raise IngestError(f"{path}: not a readable Parquet file: {exc}") from None
        self.path = path
        self.batch_size = batch_size
        names = list(self.file.schema_arrow.names)
        seen: set[str] = set()
        for i, name in enumerate(names, start=1):
            if name in seen:
                self.file.close()
                raise IngestError(f"{path}: column {name!r} appears twice in the file's schema",
                                  hint="give every column its own name")
            if not name.strip():
                self.file.close()
                raise IngestError(f"{path}: column {i} of the file's schema has no name")
            seen.add(name)
        self.columns: list[str] | None = names
        self.total = int(self.file.metadata.num_rows)
        self.done = 0

    def close(self) -> None:
        self.file.close()

    def __iter__(self) -> Iterator[RawRecord]:
        import pyarrow as pa

        row = 0
        batches = self.file.iter_batches(batch_size=self.batch_size)
        while True:
            try:
                batch = next(batches)
                rows: list[tuple[dict[str, Any] | None, str | None]]
                try:
                    rows = [(values, None) for values in batch.to_pylist()]
                except (ValueError, OverflowError, pa.ArrowException):
                    rows = self._row_by_row(batch)  # a value Python cannot hold: find its row
            except StopIteration:
                return
            except (pa.ArrowException, OSError, ValueError) as exc:  # a corrupt page or row group
                raise IngestError(f"{self.path}: cannot read the Parquet data after row {row} (is the "
                                  f"file damaged?): {' '.join(str(exc).split())}") from None
            for values, problem in rows:
                row += 1
                self.done = row
                if values is not None:
                    values.pop(ROW_KEY, None)
                    values.pop(REASON_KEY, None)
                yield RawRecord(row, None, values, problem)

    @staticmethod
    def _row_by_row(batch: Any) -> list[tuple[dict[str, Any] | None, str | None]]:
        """The batch's rows one value at a time; a value that cannot be converted (a timestamp beyond
        year 9999) spoils its row only."""
        import pyarrow as pa

        out: list[tuple[dict[str, Any] | None, str | None]] = []
        names = batch.schema.names
        columns = batch.columns
        for i in range(batch.num_rows):
            values: dict[str, Any] = {}
            problem = None
            for name, column in zip(names, columns, strict=True):
                try:
                    values[name] = column[i].as_py()
                except (ValueError, OverflowError, pa.ArrowException) as exc:
                    problem = f"{name}: the value cannot be read: {' '.join(str(exc).split())}"
                    break
            out.append((None, problem) if problem else (values, None))
        return out


def open_reader(path: Path, fmt: str, options: CsvOptions) -> Reader:
    if fmt == "csv":
        return CsvReader(path, options)
    if fmt == "jsonl":
        return JsonlReader(path)
    return ParquetReader(path)
