"""What every delivery adapter is: a name, the channels it carries, and ``send`` for one message.

An adapter raises :class:`Bounce` when the address refuses the message for good (the contact point is
then marked bounced), :class:`TemporaryFailure` when trying again later may work (the delivery loop
retries with exponential back-off), and :class:`PermanentFailure` for anything else that will not
work by retrying. Misconfiguration (a directory it may not use) raises
:class:`~tactful.errors.DeliveryError` before anything is sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from tactful.errors import DeliveryError
from tactful.files import open_new_private_file
from tactful.store.outbox import Pending
from tactful.vocab import Channel


class DeliveryFailure(Exception):
    """One message could not be delivered; ``str()`` says why in plain words."""


class Bounce(DeliveryFailure):
    """The address does not exist or refuses mail: record it on the contact point."""


class TemporaryFailure(DeliveryFailure):
    """Worth retrying: the server is busy or unreachable, a mailbox is full..."""


class PermanentFailure(DeliveryFailure):
    """Retrying will not help (the message is malformed, the server refuses it for its content)."""


class Adapter(Protocol):
    """``idempotent``: sending a message again that the adapter may already have sent (a delivery
    killed before it recorded the outcome, then resumed) does not deliver it twice, so the loop may
    record the outcomes of many messages at once. An adapter that cannot tell (SMTP: the server
    accepted the message, then the process died) has its outcomes recorded message by message."""

    name: str
    channels: frozenset[Channel]
    idempotent: bool

    def send(self, message: Pending) -> None:
        """Deliver one message, or raise a :class:`DeliveryFailure`."""

    def flush(self) -> None:
        """Make what ``send`` delivered so far durable enough to be recorded as sent (written to the
        operating system); called before each batch of outcomes is recorded."""

    def close(self) -> None:
        """Flush and release what the adapter holds (files, connections)."""


def private_directory(path: Path) -> Path:
    """``path`` as a directory for files holding personal data: created owner-only (0700) when
    missing; an existing one must be a directory."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise DeliveryError(f"cannot create the output directory {path}: {exc.strerror or exc}",
                            hint="choose a directory you can write to") from None
    if not path.is_dir():
        raise DeliveryError(f"{path} is not a directory", hint="choose a new directory for the output")
    return path


def create_private_file(path: Path) -> int:
    """Create ``path`` owner-only (0600) and return its descriptor; never opens an existing file,
    so a file this adapter did not create is never overwritten."""
    return open_new_private_file(path, DeliveryError,
                                     exists=f"{path} already exists and will not be overwritten",
                                     exists_hint="deliver into a new directory (each run gets its own)")


def create_new_private_file(path: Path, *, limit: int = 1000) -> tuple[Path, int]:
    """Create ``path`` owner-only, or when it exists ``<stem>-2<suffix>``, ``-3``... (a resumed run
    writes beside what its killed part wrote, never over it); returns the path and its descriptor."""
    for n in range(1, limit + 1):
        candidate = path if n == 1 else path.with_name(f"{path.stem}-{n}{path.suffix}")
        if candidate.exists() or candidate.is_symlink():
            continue
        try:
            return candidate, create_private_file(candidate)
        except DeliveryError:
            if candidate.exists() or candidate.is_symlink():
                continue  # created meanwhile by someone else: try the next name
            raise
    raise DeliveryError(f"{path} and {limit - 1} numbered names beside it already exist",
                        hint="deliver into a new directory")
