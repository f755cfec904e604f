"""A throwaway PostgreSQL cluster on 127.0.0.1 for tests.

Debian's server binaries live in ``/usr/lib/postgresql/<major>/bin``. ``initdb`` refuses to run as
root, so as root the cluster is created and run as the ``postgres`` user on a directory that user
owns. The server listens only on 127.0.0.1, on a free port, with no Unix socket outside its own
directory.

Command line (used by ``scripts/test.sh``)::

    python -m tactful.testing.postgres start DIR   # prints the SQLAlchemy URL
    python -m tactful.testing.postgres stop DIR
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

URL_FILE = "tactful-url"
CLUSTER_FILE = "tactful-cluster"


def find_bindir() -> Path:
    """The newest installed server's bin directory, or an error saying how to install one."""
    env = os.environ.get("TACTFUL_PG_BINDIR")
    candidates = [env] if env else sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major, reverse=True)
    for cand in candidates:
        if cand and (Path(cand) / "initdb").exists():
            return Path(cand)
    raise RuntimeError(
        "no PostgreSQL server found under /usr/lib/postgresql/*/bin; "
        "install it with `apt-get install -y postgresql` (scripts/test.sh does this)"
    )


def _major(path: str) -> int:
    try:
        return int(Path(path).parent.name.split(".")[0])
    except ValueError:
        return 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_owner(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def start(directory: Path) -> str:
    """Create and start a cluster in ``directory``; return its SQLAlchemy URL."""
    bindir = find_bindir()
    directory.mkdir(parents=True, exist_ok=True)
    cluster = directory
    if os.geteuid() == 0:
        # The postgres user must reach the cluster: /tmp is world-traversable, DIR may not be.
        cluster = Path(tempfile.mkdtemp(prefix="tactful-pg-", dir="/tmp"))
        shutil.chown(cluster, "postgres", "postgres")
    (directory / CLUSTER_FILE).write_text(str(cluster))
    data = cluster / "data"
    subprocess.run(
        _as_owner([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                   "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]),
        check=True, capture_output=True, text=True,
    )
    port = _free_port()
    opts = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={cluster} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50")
    subprocess.run(
        _as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(cluster / "log"),
                   "-w", "-t", "60", "start"]),
        check=True, capture_output=True, text=True,
    )
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    (directory / URL_FILE).write_text(url)
    _wait_ready(port)
    return url


def _wait_ready(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"PostgreSQL did not accept connections on 127.0.0.1:{port} within {timeout}s")


def stop(directory: Path) -> None:
    """Stop the cluster in ``directory`` (fast shutdown) and remove it."""
    pointer = directory / CLUSTER_FILE
    cluster = Path(pointer.read_text()) if pointer.exists() else directory
    data = cluster / "data"
    if data.exists():
        subprocess.run(
            _as_owner([str(find_bindir() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
            check=False, capture_output=True, text=True,
        )
    shutil.rmtree(cluster, ignore_errors=True)
    shutil.rmtree(directory, ignore_errors=True)


def create_database(url: str, name: str) -> str:
    """Create a fresh database on the server of ``url``; return the URL that points at it."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return url.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A server for the duration of the block; yields its URL."""
    directory = Path(tempfile.mkdtemp(prefix="tactful-pg-"))
    try:
        yield start(directory)
    finally:
        stop(directory)


def _main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: python -m tactful.testing.postgres start|stop DIR", file=sys.stderr)
        return 2
    directory = Path(argv[1])
    if argv[0] == "start":
        try:
            print(start(directory))
        except subprocess.CalledProcessError as exc:
            print(f"PostgreSQL failed to start: {exc.stderr or exc.stdout}", file=sys.stderr)
            stop(directory)
            return 1
    else:
        stop(directory)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
