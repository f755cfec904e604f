"""The quarantine file: every row an import could not take, with its row number and the reason, in a
form the same ``tactful import`` command reads back once the rows are fixed.

* CSV input → CSV quarantine: the original header line and each bad row's original raw line(s),
  byte for byte (invalid bytes included, so they can be found and fixed), each preceded by two
  columns ``_tactful_row`` and ``_tactful_reason``. Prepending (not appending) keeps a row whose quoted
  field spans lines intact.
* JSONL or Parquet input → JSONL quarantine: the row's original keys and values plus
  ``_tactful_row`` and ``_tactful_reason``; a line that was not a JSON object at all is kept as text
  under ``_tactful_raw``.

Safety (the file may be named by anyone, and it holds personal data):

* the rows are written to a temporary file next to the target (``.<name>.<random>.partial``),
  created owner-only (0600), and renamed over the target when the import ends, also when it fails
  (a killed import leaves the temporary file); an import with no bad rows leaves no file;
* :meth:`Quarantine.prepare` runs before any row is committed: the target may not be a symbolic
  link, the input, the store or anything but a regular file that is itself a quarantine file of ours
  (its first line starts with ``_tactful_row``, or ``{"_tactful_row":`` for JSONL), and a file must be
  creatable in its directory; otherwise the import stops (exit 2) before it starts. The target is
  checked again before the rename.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import stat
import tempfile
from collections.abc import Sequence
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


#: how every quarantine file of ours starts (after a UTF-8 byte-order mark, if any)
_MARK = ROW_KEY.encode("ascii")
_OURS = (_MARK, b'"' + _MARK + b'"', b'{"' + _MARK + b'"')


def is_ours(path: Path) -> bool:
    """Whether ``path`` is a regular file (not a link) that a Tactful import wrote as a quarantine."""
    try:
        if path.is_symlink() or not stat.S_ISREG(path.stat().st_mode):
            return False
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError:
        return False
    return head.removeprefix(b"\xef\xbb\xbf").startswith(_OURS)


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


class Quarantine:
    """Writes bad rows for ``path`` (CSV or JSONL, see the module docstring).

    ``protect`` names files the quarantine must never replace (the input, the store's files), each
    with what it is, for the message. Call :meth:`prepare` before the import commits anything, and
    :meth:`close` when it ends (also when it fails: the rows quarantined so far are kept)."""

    def __init__(self, path: Path, fmt: str, *, csv_options: CsvOptions | None = None,
                 header_raw: bytes = b"", protect: Sequence[tuple[Path, str]] = (),
                 remove_stale: bool = False) -> None:
        self.path = path
        self.csv = fmt == "csv"
        self.options = csv_options or CsvOptions()
        self.header_raw = header_raw
        self.protect = tuple(protect)
        self.remove_stale = remove_stale
        self.count = 0
        self._stream: IO[bytes] | None = None
        self._temp: Path | None = None
        self._newline = b"\r\n" if header_raw.endswith(b"\r\n") else b"\n"

    def _refuse(self, why: str, hint: str = "pass another --quarantine path") -> IngestError:
        return IngestError(f"the quarantine file {self.path} {why}", hint=hint)

    def check_target(self) -> None:
        """Refuse a target that is a link, a protected file, or an existing file that is not ours."""
        path = self.path
        for other, what in self.protect:
            if _same(path, other):
                raise self._refuse(f"would overwrite the {what}")
        if path.is_symlink():
            raise self._refuse("is a symbolic link; a quarantine file is never written through a link")
        if path.exists():
            if path.is_dir():
                raise self._refuse("is a directory")
            if not is_ours(path):
                raise self._refuse(
                    f"exists and is not a quarantine file written by tactful (its first line does not "
                    f"start with {ROW_KEY}); it was left as it is",
                    "pass a new path, or delete or move that file yourself if it is no longer needed")

    def _create_temp(self) -> tuple[int, Path]:
        directory = self.path.parent
        try:
            fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".partial", dir=directory)
        except OSError as exc:
            raise self._refuse(f"cannot be written: {exc.strerror or exc} ({directory})") from None
        return fd, Path(temp)

    def prepare(self) -> None:
        """Before the import starts: check the target and that a file can be created next to it."""
        self.check_target()
        fd, probe = self._create_temp()
        os.close(fd)
        probe.unlink()

    def _open(self) -> IO[bytes]:
        if self._stream is None:
            self.check_target()
            fd, self._temp = self._create_temp()  # owner-only (0600): the rows hold personal data
            self._stream = os.fdopen(fd, "wb")
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
        """Put the rows in place (rename over the target, re-checked) or, with none, leave no file;
        a stale quarantine file of ours at the default path is removed (``remove_stale``)."""
        stream, temp = self._stream, self._temp
        self._stream = self._temp = None
        if stream is not None:
            stream.close()
        if temp is None or self.count == 0:
            if temp is not None:
                temp.unlink(missing_ok=True)
            if self.remove_stale and is_ours(self.path):
                self.path.unlink()  # left by an earlier run of this import; it no longer applies
            return
        try:
            self.check_target()  # again: the target may have changed while the import ran
        except IngestError as exc:
            raise IngestError(f"{exc.message}; the {self.count:,} quarantined rows are in {temp}",
                              hint=exc.hint) from None
        os.replace(temp, self.path)
