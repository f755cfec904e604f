"""tactful.files: the one helper that creates owner-only files (decisions, scenarios, messages, stores)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tactful.errors import BatchError, DeliveryError, ScenarioError, StoreError, TactfulError
from tactful.files import open_new_private_file

NOBODY = 65534


def _create(path: Path, error: type[TactfulError] = BatchError) -> None:
    fd = open_new_private_file(path, error, exists=f"{path} is taken", exists_hint="pick another path")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("new")


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@contextmanager
def _unprivileged() -> Iterator[None]:
    """Act as an ordinary user: root (as in CI) may write into any directory whatever its mode."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)


def test_a_new_file_is_created_owner_only_and_writable(tmp_path: Path) -> None:
    path = tmp_path / "decisions.csv"
    with _umask(0):  # even with no umask to narrow it, the file is 0600
        _create(path)
    assert path.read_text(encoding="utf-8") == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("error", [BatchError, ScenarioError, DeliveryError, StoreError])
def test_an_existing_file_is_refused_with_the_callers_error_and_wording(tmp_path: Path,
                                                                        error: type[TactfulError]) -> None:
    path = tmp_path / "kept.txt"
    path.write_text("someone else's", encoding="utf-8")
    path.chmod(0o644)
    with pytest.raises(error) as info:
        _create(path, error)
    assert type(info.value) is error
    assert info.value.message == f"{path} is taken" and info.value.hint == "pick another path"
    assert path.read_text(encoding="utf-8") == "someone else's"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # neither written nor narrowed


def test_a_directory_at_the_path_is_refused_as_existing(tmp_path: Path) -> None:
    with pytest.raises(BatchError, match="is taken"):
        _create(tmp_path)


def test_a_link_to_a_file_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "target.txt"
    target.write_text("precious", encoding="utf-8")
    link = tmp_path / "out.csv"
    link.symlink_to(target)
    with pytest.raises(BatchError, match="is taken"):
        _create(link)
    assert target.read_text(encoding="utf-8") == "precious" and link.is_symlink()


def test_a_dangling_link_is_refused_and_nothing_is_created_where_it_points(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    link = tmp_path / "out.csv"
    link.symlink_to(target)
    with pytest.raises(BatchError, match="is taken"):
        _create(link)
    assert not target.exists() and link.is_symlink()


def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "out.csv"
    with pytest.raises(ScenarioError) as info:
        _create(path, ScenarioError)
    assert info.value.message == f"cannot create {path}: No such file or directory"
    assert not path.parent.exists()


def test_an_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o755)
    locked.chmod(0o555)
    path = locked / "out.csv"
    try:
        with _unprivileged(), pytest.raises(DeliveryError) as info:
            _create(path, DeliveryError)
    finally:
        locked.chmod(0o755)
    assert info.value.message == f"cannot create {path}: Permission denied"
    assert not path.exists()


# --------------------------------------------------------------------------- private work directories


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_runs_work_directory_is_swept_by_the_next_run(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's work directory names its host and pid; the next run removes those of runs that no
    longer live on this host, and leaves alone the living, other hosts', unmarked ones and links."""
    import socket
    import tempfile

    from tactful.files import OWNER_FILE, private_workdir, sweep_stale_workdirs

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    host = socket.gethostname()

    def workdir(name: str, owner: str | None) -> Path:
        d = tmp_path / name
        d.mkdir(mode=0o700)
        (d / "customers.parquet").write_text("personal data")
        if owner is not None:
            (d / OWNER_FILE).write_text(owner)
        return d

    killed = workdir("tactful-x-killed", f"{host}\n{_dead_pid()}\n")
    living = workdir("tactful-x-living", f"{host}\n{os.getpid()}\n")
    elsewhere = workdir("tactful-x-elsewhere", f"not-{host}\n{_dead_pid()}\n")
    unmarked = workdir("tactful-x-unmarked", None)
    garbled = workdir("tactful-x-garbled", "nonsense")
    other_prefix = workdir("tactful-y-killed", f"{host}\n{_dead_pid()}\n")
    target = workdir("elsewhere-dir", f"{host}\n{_dead_pid()}\n")
    (tmp_path / "tactful-x-link").symlink_to(target)

    assert sweep_stale_workdirs("tactful-x-") == [killed]
    assert not killed.exists()
    for kept in (living, elsewhere, unmarked, garbled, other_prefix, target):
        assert (kept / "customers.parquet").exists(), kept

    with private_workdir("tactful-x-") as work:
        assert work.parent == tmp_path and stat.S_IMODE(work.stat().st_mode) == 0o700
        assert (work / OWNER_FILE).read_text().split() == [host, str(os.getpid())]
        assert sweep_stale_workdirs("tactful-x-") == []  # the running one is kept
    assert not work.exists()


def test_pid_alive_tells_a_running_process_from_a_gone_one() -> None:
    """One liveness check serves the import bookkeeping, the work-directory sweep and the delivery's
    part files: a running process is alive; a reaped one, a zombie, pid 0 and a pid no process can
    have are not (never an exception)."""
    import subprocess
    import sys
    import time

    from tactful.files import pid_alive

    assert pid_alive(os.getpid())
    reaped = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                            text=True, check=True)
    assert not pid_alive(int(reaped.stdout))
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        for _ in range(200):  # exited, not yet reaped: a zombie
            with open(f"/proc/{zombie.pid}/stat", encoding="ascii") as fh:
                if fh.read().rsplit(")", 1)[-1].split()[0] == "Z":
                    break
            time.sleep(0.05)
        assert not pid_alive(zombie.pid)
    finally:
        zombie.wait()
    assert not pid_alive(0) and not pid_alive(-1)
    assert not pid_alive(10**30)
