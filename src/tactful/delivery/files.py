"""File adapters: a CSV for the print shop (letters and postcards) and a set of .eml files (email).

Every file holds personal data (names, addresses, messages): it is created owner-only (0600) in an
owner-only directory, and an existing file is never overwritten.
"""

from __future__ import annotations

import csv
import io
import os
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from pathlib import Path

from tactful.delivery.base import PermanentFailure, create_private_file, private_directory
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

    def __init__(self, directory: Path, filename: str = "print-shop.csv") -> None:
        self.path = private_directory(Path(directory)) / filename
        self._file: io.TextIOWrapper | None = None
        self._writer: csv.DictWriter[str] | None = None
        self.written = 0

    def _open(self) -> csv.DictWriter[str]:
        if self._writer is None:
            fd = create_private_file(self.path)
            self._file = os.fdopen(fd, "w", encoding="utf-8", newline="")
            self._writer = csv.DictWriter(self._file, fieldnames=PRINT_SHOP_COLUMNS)
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
