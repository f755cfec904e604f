"""SMTP delivery (the standard library's smtplib): one connection reused across messages.

A 5xx answer to a recipient (no such user, mailbox unavailable) is a bounce; a 4xx answer, a dropped
connection or a refused connection is temporary and retried by the delivery loop; other 5xx answers
are permanent failures.
"""

from __future__ import annotations

import smtplib
import ssl

from tactful.delivery.base import Bounce, PermanentFailure, TemporaryFailure
from tactful.delivery.files import email_message
from tactful.errors import DeliveryError
from tactful.store.outbox import Pending
from tactful.vocab import Channel

BOUNCE_CODES = frozenset({550, 551, 553, 554})  # mailbox unavailable, not local, name not allowed, failed


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class Smtp:
    name = "smtp"
    channels = frozenset({Channel.EMAIL})
    #: a server that accepted a message cannot be asked whether it has it: each outcome is recorded
    #: right after the message went out, so a kill sends at most the message in flight twice
    idempotent = False

    def __init__(self, host: str, port: int = 25, *, from_address: str, starttls: bool = False,
                 username: str | None = None, password: str | None = None, timeout: float = 10.0) -> None:
        if not host or not 0 < port < 65536:
            raise DeliveryError(f"bad SMTP server {host!r}:{port}",
                                hint="give a host name and a port 1-65535")
        if "@" not in from_address:
            raise DeliveryError(f"bad sender address {from_address!r}", hint="e.g. offers@shop.example")
        self.host, self.port, self.from_address = host, port, from_address
        self.starttls, self.username, self.password, self.timeout = starttls, username, password, timeout
        self._conn: smtplib.SMTP | None = None
        self.sent = 0

    def _connect(self) -> smtplib.SMTP:
        if self._conn is None:
            try:
                conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                if self.starttls:
                    conn.starttls(context=ssl.create_default_context())
                if self.username:
                    conn.login(self.username, self.password or "")
            except smtplib.SMTPAuthenticationError as exc:
                raise PermanentFailure(f"the SMTP server refused the login ({exc.smtp_code})") from None
            except (OSError, smtplib.SMTPException) as exc:
                raise TemporaryFailure(
                    f"cannot connect to SMTP server {self.host}:{self.port}: {exc}") from None
            self._conn = conn
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def send(self, message: Pending) -> None:
        email = email_message(message, from_address=self.from_address)
        conn = self._connect()
        try:
            refused = conn.send_message(email, from_addr=self.from_address, to_addrs=[str(message.address)])
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            self._reset()
            if code in BOUNCE_CODES or 500 <= code < 600:
                raise Bounce(f"{code} {_text(text)}") from None
            raise TemporaryFailure(f"{code} {_text(text)}") from None
        except smtplib.SMTPResponseException as exc:
            self._reset()
            if 400 <= exc.smtp_code < 500:
                raise TemporaryFailure(f"{exc.smtp_code} {_text(exc.smtp_error)}") from None
            raise PermanentFailure(f"{exc.smtp_code} {_text(exc.smtp_error)}") from None
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise TemporaryFailure(f"the SMTP connection failed: {exc}") from None
        if refused:  # pragma: no cover - a single recipient is either accepted or raises above
            raise Bounce(str(refused))
        self.sent += 1

    def flush(self) -> None:
        """Nothing to do: the server has each message once ``send`` returns."""

    def _reset(self) -> None:
        try:
            if self._conn is not None:
                self._conn.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.quit()
            except (smtplib.SMTPException, OSError):
                pass
            finally:
                self._conn = None
