"""File adapters: a CSV for the print shop (letters and postcards), email as a set of .eml files or
one mbox file, and a CSV for an SMS gateway.

Every file holds personal data (names, addresses, messages): it is created owner-only (0600) in an
owner-only directory, and an existing file is never overwritten.

Delivering into a directory again is idempotent for the CSV and .eml adapters (a delivery killed after
writing and before recording its messages as sent, then resumed): a message whose .eml file is there
(complete: it is written under a temporary name and linked into place) or whose row is complete in a
CSV of the same name family there (``print-shop.csv``, ``print-shop-2.csv``...) is not written again.
"""

from __future__ import annotations

import contextlib
import csv
import io
import mailbox
import os
import re
from collections.abc import Sequence
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.policy import Compat32
from email.utils import formataddr, formatdate
from pathlib import Path

from tactful.delivery.base import (
    PermanentFailure,
    create_new_private_file,
    create_private_file,
    private_directory,
)
from tactful.files import pid_alive
from tactful.store.outbox import Pending
from tactful.vocab import Channel

PRINT_SHOP_COLUMNS = ("outbox_key", "customer_id", "format", "recipient", "address", "sender", "subject",
                      "body")
#: A cell starting with one of these is a formula to a spreadsheet (CSV injection): data is never code.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str) -> str:
    """A CSV cell a spreadsheet shows as text: a leading formula character gets a ' in front."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _family(path: Path) -> list[Path]:
    """``path`` and the numbered names beside it (``print-shop.csv``, ``print-shop-2.csv``...) that
    are regular files (a link is never followed)."""
    found = []
    for candidate in path.parent.glob(f"{path.stem}*{path.suffix}"):
        rest = candidate.name[len(path.stem):-len(path.suffix) or None]
        if (rest == "" or (rest.startswith("-") and rest[1:].isdigit())) and not candidate.is_symlink() \
                and candidate.is_file():
            found.append(candidate)
    return found


def written_keys(path: Path, columns: tuple[str, ...]) -> set[str]:
    """The outbox keys of the complete rows in the CSV files of ``path``'s name family that this
    adapter wrote (their header is ``columns``; any other file is not ours and is ignored). A row cut
    short at the end of a file (the process was killed while writing it) is not complete: its message
    is written again, whole, in the next file."""
    keys: set[str] = set()
    for file in _family(path):
        try:
            with file.open("rb") as raw:
                raw.seek(0, os.SEEK_END)
                size = raw.tell()
                raw.seek(max(0, size - 2))
                whole = raw.read() == b"\r\n"  # the writer ends every row with CRLF
            with file.open(encoding="utf-8", newline="") as fh:
                reader = csv.reader(fh, strict=True)
                if next(reader, None) != list(columns):
                    continue
                last: list[str] | None = None
                try:
                    for row in reader:
                        if last is not None and len(last) == len(columns):
                            keys.add(last[0])
                        last = row
                except csv.Error:  # a quoted cell cut short: the row being read is incomplete,
                    if last is not None and len(last) == len(columns):  # the one before it whole
                        keys.add(last[0])
                    last = None
                if last is not None and whole and len(last) == len(columns):
                    keys.add(last[0])
        except (OSError, UnicodeDecodeError):
            continue  # unreadable: not a file of ours to trust; its messages are written again
    return keys


class PrintShopCsv:
    """Letters and postcards as rows of ``print-shop.csv`` for the print shop.

    ``format`` says how it is printed: ``sealed letter`` (the envelope shows the sender given) or
    ``postcard`` (everything on it is visible). ``outbox_key`` lets the print shop drop a row it has
    already printed.
    """

    name = "print-shop-csv"
    channels = frozenset({Channel.POSTAL_MAIL, Channel.POSTCARD})
    idempotent = True  # a message whose row is complete in a CSV of this directory is not written again

    columns: tuple[str, ...] = PRINT_SHOP_COLUMNS

    def __init__(self, directory: Path, filename: str = "print-shop.csv", *,
                 earlier: Sequence[Path] = ()) -> None:
        """``earlier``: directories an earlier delivery of the same messages wrote into (a killed
        run's): a message with a complete row in a CSV there counts as delivered too (they are only
        read, never created or written)."""
        self.path = private_directory(Path(directory)) / filename
        self.earlier = [Path(d) for d in earlier]
        self._file: io.TextIOWrapper | None = None
        self._writer: csv.DictWriter[str] | None = None
        self._done: set[str] | None = None  # keys with a complete row in these directories, read once
        self.written = 0

    def _already_written(self, key: str) -> bool:
        if self._done is None:
            self._done = written_keys(self.path, self.columns)
            for directory in self.earlier:
                self._done |= written_keys(directory / self.path.name, self.columns)
        return key in self._done

    def _write(self, key: str, row: dict[str, str]) -> None:
        writer = self._open()
        writer.writerow({k: _cell(v) for k, v in row.items()})
        assert self._done is not None
        self._done.add(key)
        self.written += 1

    def flush(self) -> None:
        """Hand the rows written so far to the operating system (before they are recorded as sent)."""
        if self._file is not None:
            self._file.flush()

    def _open(self) -> csv.DictWriter[str]:
        """The CSV, created on the first message: ``print-shop.csv``, or ``print-shop-2.csv``... when a
        file of that name is there (a resumed run's directory); an existing file is never touched."""
        if self._writer is None:
            self.path, fd = create_new_private_file(self.path)
            self._file = os.fdopen(fd, "w", encoding="utf-8", newline="")
            self._writer = csv.DictWriter(self._file, fieldnames=self.columns)
            self._writer.writeheader()
        return self._writer

    def send(self, message: Pending) -> None:
        if not message.address:
            raise PermanentFailure("no postal address for this contact point")
        name = " ".join(p for p in (message.first_name, message.last_name) if p)
        postcard = message.channel == Channel.POSTCARD.value
        # A postcard is named only when the message itself greets by name; a sealed letter needs an
        # addressee on the envelope.
        recipient = (name if message.named else "The resident") if postcard else (name or "The resident")
        if self._already_written(message.key):
            return  # a delivery killed before recording it wrote it whole: it counts as delivered
        self._write(message.key, {
            "outbox_key": message.key, "customer_id": message.customer_id,
            "format": "postcard" if postcard else "sealed letter", "recipient": recipient,
            "address": message.address, "sender": message.sender, "subject": message.subject,
            "body": message.body})

    def close(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            self._writer = None


#: bodies as UTF-8, quoted-printable (ASCII text stays readable in the file; long lines are wrapped)
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP


class _EmailPolicy(Compat32):
    """``compat32`` with a shortcut: a header that is short ASCII text on one line is written as it
    is (``compat32`` runs every header through :class:`email.header.Header`, about a fifth of the
    cost of a message); any other header is folded and encoded by ``compat32`` as usual."""

    def _plain(self, name: str, value: object) -> bool:
        return (isinstance(value, str) and value.isascii() and "\r" not in value and "\n" not in value
                and len(name) + len(value) + 2 <= (self.max_line_length or 78))

    def fold(self, name: str, value: str) -> str:
        if self._plain(name, value):
            return f"{name}: {value}{self.linesep}"
        return super().fold(name, value)

    def fold_binary(self, name: str, value: str) -> bytes:
        if self._plain(name, value):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


#: headers folded only past RFC 5322's hard limit: the Message-ID (84 characters) stays on its line
_POLICY = _EmailPolicy(max_line_length=998)


def email_message(message: Pending, *, from_address: str) -> Message:
    """The message as RFC 5322 email (MIME, UTF-8). The Message-ID carries the outbox key, so a
    receiving system can recognise a message it has seen.

    Built with the email package's ``compat32`` API (``Message``, ``set_payload``), about six times
    cheaper per message than ``EmailMessage`` with the default policy, which parses and refolds every
    header; that API does not check header values, so a line break in one is refused here."""
    if not message.address:
        raise PermanentFailure("no email address for this contact point")
    address = message.address.strip()
    if "@" not in address or any(ch in address for ch in "\r\n,;<>\"") or " " in address:
        raise PermanentFailure(f"not a single email address: {address!r}")
    subject = message.subject or message.sender
    for label, value in (("sender", message.sender), ("subject", subject), ("from address", from_address)):
        if any(ch in value for ch in "\r\n\0"):
            raise PermanentFailure(f"the message cannot be written as email: a line break in the {label}")
    msg = Message(policy=_POLICY)
    msg["MIME-Version"] = "1.0"
    msg["Content-Type"] = "text/html" if message.html else "text/plain"
    msg.set_payload(message.body, _UTF8_QP)  # adds the charset and Content-Transfer-Encoding
    msg["From"] = formataddr((message.sender, from_address)) if message.sender else from_address
    msg["To"] = address
    msg["Subject"] = subject if subject.isascii() else Header(subject, "utf-8").encode()
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = f"<{message.key}@tactful.invalid>"
    return msg


_PART = re.compile(r"\.[0-9a-f]{64}\.eml\.(\d+)\.part")


class EmlDirectory:
    """Email as one ``<outbox key>.eml`` file per message (open it in any mail program, or hand the
    directory to a bulk sender). A file already there for the same key is the same message: it is kept
    as it is and counts as delivered. A file is written as ``.<key>.eml.<pid>.part`` and linked to its
    name once complete, so a ``<key>.eml`` is never a message cut short by a kill; the part files a
    killed delivery left behind (their process is gone) are removed by the next delivery here."""

    name = "eml-files"
    channels = frozenset({Channel.EMAIL})
    idempotent = True

    def __init__(self, directory: Path, *, from_address: str = "no-reply@shop.invalid",
                 earlier: Sequence[Path] = ()) -> None:
        """``earlier``: directories an earlier delivery of the same messages wrote into (a killed
        run's): a message whose file is there counts as delivered too (only looked at)."""
        self.directory = private_directory(Path(directory))
        self.from_address = from_address
        self.earlier = [Path(d) for d in earlier]
        self.written = 0
        self._swept = False

    def _sweep(self) -> None:
        """Remove the part files of killed deliveries into this directory (never another file)."""
        self._swept = True
        for entry in os.scandir(self.directory):
            match = _PART.fullmatch(entry.name)
            if match and entry.is_file(follow_symlinks=False) and not pid_alive(int(match.group(1))):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)

    def send(self, message: Pending) -> None:
        if not self._swept:
            self._sweep()
        path = self.directory / f"{message.key}.eml"
        if path.exists() or path.is_symlink() or any(
                (d / path.name).is_file() for d in self.earlier):
            return
        data = email_message(message, from_address=self.from_address).as_bytes()
        part = self.directory / f".{message.key}.eml.{os.getpid()}.part"
        fd = create_private_file(part)
        try:
            with os.fdopen(fd, "wb") as fh:  # not fsynced one by one (15 ms each here): see close()
                fh.write(data)
            os.link(part, path)  # never replaces a file: EEXIST when one is there
        except FileExistsError:
            return  # written meanwhile by another delivery: the same message
        finally:
            os.unlink(part)
        self.written += 1

    def flush(self) -> None:
        """Nothing to do: each file is complete and closed when ``send`` returns."""

    def close(self) -> None:
        """Sync the directory (the files' names) once, at the end. The files' contents are written back
        by the operating system within seconds rather than synced one by one; a power loss right after
        a delivery may lose files already recorded as sent."""
        if self.written:
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


class Mbox:
    """Email as one mbox file (Python's :mod:`mailbox`), which mail programs open and import. The file
    is created owner-only; when one of that name exists (a resumed run), ``email-2.mbox``... is used."""

    name = "mbox"
    channels = frozenset({Channel.EMAIL})
    #: a message added to a mailbox file cannot be recognised there again by a resumed delivery:
    #: its outcome is recorded as soon as it is added (one message at most is added twice by a kill)
    idempotent = False

    def __init__(self, directory: Path, filename: str = "email.mbox", *,
                 from_address: str = "no-reply@shop.invalid") -> None:
        self.path = private_directory(Path(directory)) / filename
        self.from_address = from_address
        self._box: mailbox.mbox | None = None
        self.written = 0

    def _open(self) -> mailbox.mbox:
        if self._box is None:
            self.path, fd = create_new_private_file(self.path)  # 0600, so mailbox keeps the mode
            os.close(fd)
            self._box = mailbox.mbox(self.path, create=False)
            self._box.lock()
        return self._box

    def send(self, message: Pending) -> None:
        email = email_message(message, from_address=self.from_address)
        box = self._open()
        entry = mailbox.mboxMessage(email)
        entry.set_from(self.from_address)
        box.add(entry)
        box.flush()
        self.written += 1

    def flush(self) -> None:
        """Nothing to do: each message is flushed to the file as it is added."""

    def close(self) -> None:
        if self._box is not None:
            try:
                self._box.flush()
                self._box.unlock()
            finally:
                self._box.close()
                self._box = None


SMS_COLUMNS = ("outbox_key", "customer_id", "to", "sender", "body")
_PHONE = re.compile(r"\+?[0-9][0-9 ()./-]{4,30}")
SMS_LIMIT = 918  # six concatenated GSM-7 segments; a longer text is refused, not cut


class SmsCsv(PrintShopCsv):
    """Text messages as rows of ``sms.csv`` for an SMS gateway's bulk upload: the number, the sender
    name and the text. ``outbox_key`` lets the gateway drop a row it has already sent."""

    name = "sms-csv"
    channels = frozenset({Channel.SMS})
    columns = SMS_COLUMNS

    def __init__(self, directory: Path, filename: str = "sms.csv", *, earlier: Sequence[Path] = ()) -> None:
        super().__init__(directory, filename, earlier=earlier)

    def send(self, message: Pending) -> None:
        number = (message.address or "").strip()
        if not _PHONE.fullmatch(number):
            raise PermanentFailure(f"not a phone number: {number!r}" if number else
                                   "no phone number for this contact point")
        if len(message.body) > SMS_LIMIT:
            raise PermanentFailure(f"the text has {len(message.body)} characters; an SMS takes at most "
                                   f"{SMS_LIMIT}")
        if self._already_written(message.key):
            return  # a delivery killed before recording it wrote it whole: it counts as delivered
        self._write(message.key, {"outbox_key": message.key, "customer_id": message.customer_id,
                                  "to": number, "sender": message.sender, "body": message.body})
