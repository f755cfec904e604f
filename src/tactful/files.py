"""New owner-only files: the one way Tactful creates a file that may hold personal data.

Decisions, exported scenarios, delivered messages and a new SQLite store all describe customers, so
each is created readable and writable by its owner only (0600; a umask can only take bits away),
and never opened when something already stands at its path: an existing file, or a link (even a
dangling one), is refused rather than followed or overwritten, so a file Tactful did not create is
never touched.
"""

from __future__ import annotations

import os
from pathlib import Path

from tactful.errors import TactfulError

#: Create, write only, refuse anything that exists (``O_EXCL`` also refuses a link, dangling or not);
#: ``O_NOFOLLOW`` says the same where the system has it.
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def open_new_private_file(path: str | Path, error: type[TactfulError], *, exists: str,
                        exists_hint: str | None = None) -> int:
    """Create ``path`` owner-only (0600) and return its open write-only descriptor.

    When something already stands at ``path`` (a file, a directory, a link) raise ``error(exists,
    hint=exists_hint)``; when it cannot be created (no such directory, no permission, a read-only
    disk) raise ``error("cannot create <path>: <reason>")``. The caller owns the descriptor.
    """
    try:
        return os.open(path, _NEW_FILE_FLAGS, 0o600)
    except FileExistsError:
        raise error(exists, hint=exists_hint) from None
    except OSError as exc:
        raise error(f"cannot create {path}: {exc.strerror or exc}") from None
