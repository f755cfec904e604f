"""The quarantine file: every row an import could not take, with its row number and the reason, in a
form the same ``tactful import`` command reads back once the rows are fixed.

* CSV input → CSV quarantine: the original header line and each bad row's original raw line(s),
  byte for byte (invalid bytes included, so they can be found and fixed), each preceded by two
  columns ``_tactful_row`` and ``_tactful_reason``. Prepending (not appending) keeps a row whose quoted
  field spans lines intact.
* JSONL or Parquet input → JSONL quarantine: the row's original keys and values plus
  ``_tactful_row`` and ``_tactful_reason``; a line that was not a JSON object at all is kept as text
  under ``_tactful_raw``.

The file is created when the first bad row is written, so an import with no bad rows leaves none.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from tactful.errors import IngestError
from tactful.ingest.mapping import CsvOptions
from tactful.ingest.readers import RAW_KEY, REASON_KEY, ROW_KEY, RawRecord


def default_path(input_path: Path, fmt: str) -> Path:
    """``orders.csv`` → ``orders.quarantine.csv``; JSONL and Parquet → ``<name>.quarantine.jsonl``."""
    suffix = ".csv" if fmt == "csv" else ".jsonl"
    return input_path.with_name(f"{input_path.stem}.quarantine{suffix}")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return str(value)


class Quarantine:
    """Writes bad rows to ``path`` (CSV or JSONL, see the module docstring)."""

    def __init__(self, path: Path, fmt: str, *, csv_options: CsvOptions | None = None,
                 header_raw: bytes = b"") -> None:
        self.path = path
        self.csv = fmt == "csv"
        self.options = csv_options or CsvOptions()
        self.header_raw = header_raw
        self.count = 0
        self._stream: IO[bytes] | None = None
        self._newline = b"\r\n" if header_raw.endswith(b"\r\n") else b"\n"

    def _open(self) -> IO[bytes]:
        if self._stream is None:
            try:
                self._stream = self.path.open("wb")
            except OSError as exc:
                raise IngestError(f"cannot write the quarantine file {self.path}: {exc}") from None
            if self.csv:
                header = self.header_raw
                if not header.endswith(b"\n"):
                    header += self._newline
                self._stream.write(self._prefix(ROW_KEY, REASON_KEY) + header)
        return self._stream

    def _prefix(self, row: str, reason: str) -> bytes:
        out = io.StringIO()
        csv.writer(out, delimiter=self.options.delimiter, quotechar=self.options.quotechar,
                   quoting=csv.QUOTE_MINIMAL, lineterminator="").writerow([row, reason])
        return (out.getvalue() + self.options.delimiter).encode(self.options.encoding, "backslashreplace")

    def write(self, record: RawRecord, reason: str) -> None:
        stream = self._open()
        reason = " ".join(reason.split())  # one line
        if self.csv:
            raw = record.raw or b""
            if not raw.endswith(b"\n"):
                raw += self._newline
            stream.write(self._prefix(str(record.row), reason) + raw)
        else:
            obj: dict[str, Any] = {ROW_KEY: record.row, REASON_KEY: reason}
            if record.values is not None:
                obj.update({k: v for k, v in record.values.items() if k not in obj})
            else:
                obj[RAW_KEY] = (record.raw or b"").decode("utf-8", "backslashreplace").rstrip("\r\n")
            line = json.dumps(obj, ensure_ascii=False, default=_json_default) + "\n"
            stream.write(line.encode("utf-8"))
        self.count += 1

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
