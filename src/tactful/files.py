"""New owner-only files: the one way Tactful creates a file that may hold personal data.

Decisions, exported scenarios, delivered messages and a new SQLite store all describe customers, so
each is created readable and writable by its owner only (0600; a umask can only take bits away),
and never opened when something already stands at its path: an existing file, or a link (even a
dangling one), is refused rather than followed or overwritten, so a file Tactful did not create is
never touched.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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


# --------------------------------------------------------------------------- private work directories

#: The file in a run's work directory that names the run (host and pid).
OWNER_FILE = "tactful-run"


@contextmanager
def private_workdir(prefix: str) -> Iterator[Path]:
    """A private temporary directory (0700) for one run's working files (they describe customers),
    removed when the run ends. It records the run's host and pid, so that a later run removes the
    directories of runs that were killed (``kill -9`` skips the removal): :func:`sweep_stale_workdirs`
    runs first."""
    sweep_stale_workdirs(prefix)
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        path = Path(name)
        (path / OWNER_FILE).write_text(f"{socket.gethostname()}\n{os.getpid()}\n", encoding="utf-8")
        yield path


def pid_alive(pid: int) -> bool:
    """Whether the process ``pid`` of this host still runs (one owned by another user counts; a zombie,
    killed but not yet reaped, does not; a pid no process can have does not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except (OSError, OverflowError):
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    except OSError:
        return True


def sweep_stale_workdirs(prefix: str) -> list[Path]:
    """Remove the work directories ``prefix*`` of the temporary directory that a run of this host left
    behind when it was killed: owned by this user, holding the owner file of :func:`private_workdir`,
    and naming a pid that no longer runs. Anything else (another user's, another host's, a directory
    without the file, a link) is left alone. Returns what was removed."""
    removed: list[Path] = []
    host = socket.gethostname()
    for path in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        try:
            if path.is_symlink() or not path.is_dir() or path.stat().st_uid != os.getuid():
                continue
            owner_host, pid = (path / OWNER_FILE).read_text(encoding="utf-8").split()[:2]
            if owner_host != host or pid_alive(int(pid)):
                continue
        except (OSError, ValueError):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
