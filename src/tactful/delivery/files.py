"""File adapters: a CSV for the print shop (letters and postcards), email as a set of .eml files or
one mbox file, and a CSV for an SMS gateway.

Every file holds personal data (names, addresses, messages): it is created owner-only (0600) in an
owner-only directory, and an existing file is never overwritten.
"""

from __future__ import annotations

import csv
import io
import mailbox
import os
import re
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from pathlib import Path

from tactful.delivery.base import (
    PermanentFailure,
    create_new_private_file,
    create_private_file,
    private_directory,
)
from tactful.store.outbox import Pending
from tactful.vocab import Channel

PRINT_SHOP_COLUMNS = ("outbox_key", "customer_id", "format", "recipient", "address", "sender", "subject",
                      "body")
#: A cell starting with one of these is a formula to a spreadsheet (CSV injection): data is never code.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str) -> str:
    """A CSV cell a spreadsheet shows as text: a leading formula character gets a ' in front."""
    return "'" + value if value.startswith(_FORMULA_START) else value


class PrintShopCsv:
    """Letters and postcards as rows of ``print-shop.csv`` for the print shop.

    ``format`` says how it is printed: ``sealed letter`` (the envelope shows the sender given) or
    ``postcard`` (everything on it is visible). ``outbox_key`` lets the print shop drop a row it has
    already printed.
    """

    name = "print-shop-csv"
    channels = frozenset({Channel.POSTAL_MAIL, Channel.POSTCARD})

    columns: tuple[str, ...] = PRINT_SHOP_COLUMNS

    def __init__(self, directory: Path, filename: str = "print-shop.csv") -> None:
        self.path = private_directory(Path(directory)) / filename
        self._file: io.TextIOWrapper | None = None
        self._writer: csv.DictWriter[str] | None = None
        self.written = 0

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
        writer = self._open()
        writer.writerow({k: _cell(v) for k, v in {
            "outbox_key": message.key, "customer_id": message.customer_id,
            "format": "postcard" if postcard else "sealed letter", "recipient": recipient,
            "address": message.address, "sender": message.sender, "subject": message.subject,
            "body": message.body}.items()})
        assert self._file is not None
        self._file.flush()
        self.written += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            self._writer = None


def email_message(message: Pending, *, from_address: str) -> EmailMessage:
    """The message as RFC 5322 email. The Message-ID carries the outbox key, so a receiving system can
    recognise a message it has seen."""
    if not message.address:
        raise PermanentFailure("no email address for this contact point")
    address = message.address.strip()
    if "@" not in address or any(ch in address for ch in "\r\n,;<>\"") or " " in address:
        raise PermanentFailure(f"not a single email address: {address!r}")
    msg = EmailMessage()
    try:
        msg["From"] = formataddr((message.sender, from_address)) if message.sender else from_address
        msg["To"] = address
        msg["Subject"] = message.subject or message.sender
    except (ValueError, TypeError) as exc:  # a header the email library refuses (a line break, ...)
        raise PermanentFailure(f"the message cannot be written as email: {exc}") from None
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = f"<{message.key}@tactful.invalid>"
    if message.html:
        msg.set_content(message.body, subtype="html")
    else:
        msg.set_content(message.body)
    return msg


class EmlDirectory:
    """Email as one ``<outbox key>.eml`` file per message (open it in any mail program, or hand the
    directory to a bulk sender). A file already there for the same key is the same message: it is kept
    as it is and counts as delivered."""

    name = "eml-files"
    channels = frozenset({Channel.EMAIL})

    def __init__(self, directory: Path, *, from_address: str = "no-reply@shop.invalid") -> None:
        self.directory = private_directory(Path(directory))
        self.from_address = from_address
        self.written = 0

    def send(self, message: Pending) -> None:
        path = self.directory / f"{message.key}.eml"
        if path.exists():
            return
        data = email_message(message, from_address=self.from_address).as_bytes()
        fd = create_private_file(path)
        with os.fdopen(fd, "wb") as fh:  # not fsynced one by one (15 ms each here): see close()
            fh.write(data)
        self.written += 1

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

    def __init__(self, directory: Path, filename: str = "sms.csv") -> None:
        super().__init__(directory, filename)

    def send(self, message: Pending) -> None:
        number = (message.address or "").strip()
        if not _PHONE.fullmatch(number):
            raise PermanentFailure(f"not a phone number: {number!r}" if number else
                                   "no phone number for this contact point")
        if len(message.body) > SMS_LIMIT:
            raise PermanentFailure(f"the text has {len(message.body)} characters; an SMS takes at most "
                                   f"{SMS_LIMIT}")
        writer = self._open()
        writer.writerow({k: _cell(v) for k, v in {
            "outbox_key": message.key, "customer_id": message.customer_id, "to": number,
            "sender": message.sender, "body": message.body}.items()})
        assert self._file is not None
        self._file.flush()
        self.written += 1
