"""Store errors after opening: every command exits 3 with a clear message, never a traceback.

Real SQLite files (locked by another connection, read-only to the user running the command, damaged
pages), a real PostgreSQL role without write rights, a store with two rows in ``alembic_version``;
and numeric CLI options out of range are usage errors (exit 2) on every command that has them.
"""

from __future__ import annotations

import ctypes
import os
import sqlite3
import subprocess
import sys
import typing
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import typer

from tactful.store import db
from tactful.testing import postgres
from tactful.testing.cli import run_cli

CUSTOMERS_CSV = "id,first_name\nc1,Ada\nc2,Bob\nc3,Cy\n"


def _store(tmp_path: Path, customers: int = 0) -> tuple[str, Path]:
    path = tmp_path / "shop.db"
    url = f"sqlite:///{path}"
    engine = db.init_store(url)
    if customers:
        with engine.begin() as conn:
            batch = db.begin_import(conn, kind="customers", origin="test")
            rows = [{"id": f"c{i:05d}", "first_name": "x" * 200} for i in range(customers)]
            db.upsert(conn, db.tables.customers, db.stamp(rows, batch))
            db.finish_import(conn, batch, rows_read=customers, rows_imported=customers, rows_quarantined=0)
    engine.dispose()
    return url, path


def _csv(tmp_path: Path, text: str = CUSTOMERS_CSV) -> Path:
    path = tmp_path / "customers.csv"
    path.write_text(text)
    path.chmod(0o644)
    return path


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err and 'File "' not in err, err


# --------------------------------------------------------------------------- SQLite: locked


def test_a_lock_held_past_the_busy_timeout_is_exit_3_for_every_writing_command(tmp_path: Path) -> None:
    url, path = _store(tmp_path, customers=3)
    csv = _csv(tmp_path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write transaction that never ends
    holder.execute("INSERT INTO households (id) VALUES ('h-lock')")
    short = f"{url}?timeout=0.3"
    try:
        for argv in (["import", "customers", str(csv), "--db", short],
                     ["init", "--db", short],
                     ["sample", "--synthetic", "5", "--replace", "--quiet", "--db", short]):
            code, out, err = run_cli(argv)
            assert code == 3, (argv, code, out, err)
            assert "is locked" in err and str(path) in err, err
            assert "wait for the other writer" in err
            _no_traceback(err)
        # readers are not blocked by a writer (WAL): the store is still readable
        code, out, err = run_cli(["customer", "list", "--db", short])
        assert code == 0, err
        assert out.split() == ["c00000", "c00001", "c00002"]
    finally:
        holder.rollback()
        holder.close()
    code, out, err = run_cli(["import", "customers", str(csv), "--db", short])
    assert code == 0, err


def test_a_bad_timeout_in_the_url_is_a_store_error(tmp_path: Path) -> None:
    url, _ = _store(tmp_path)
    code, _, err = run_cli(["customer", "list", "--db", f"{url}?timeout=soon"])
    assert code == 3
    assert "timeout='soon'" in err and "seconds" in err


def test_an_unknown_sqlite_url_option_is_a_store_error(tmp_path: Path) -> None:
    # pysqlite ignored ?mode=ro with a SAWarning printing a line of Tactful's source: the store was
    # opened read-write although the user asked for read-only
    url, _ = _store(tmp_path)
    code, out, err = run_cli(["customer", "list", "--db", f"{url}?mode=ro"])
    assert code == 3, (out, err)
    assert "unknown option(s) mode" in err and "SAWarning" not in out + err


# --------------------------------------------------------------------------- SQLite: read-only


_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER = 1, 2, 3


def _without_file_override() -> None:
    """In the child before exec: root loses the capabilities that let it ignore file modes."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _obeying_file_modes(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a process that obeys file modes (root, by default, ignores them)."""
    cmd = [sys.executable, "-m", "tactful.cli", *argv]
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
                          preexec_fn=_without_file_override if os.geteuid() == 0 else None)


def test_a_read_only_store_file_is_exit_3_naming_the_fix(tmp_path: Path) -> None:
    url, path = _store(tmp_path, customers=2)
    csv = _csv(tmp_path)
    path.chmod(0o444)  # the directory stays writable (SQLite's -wal and -shm files), the file is not
    try:
        done = _obeying_file_modes(["import", "customers", str(csv), "--db", url], tmp_path)
        assert done.returncode == 3, (done.stdout, done.stderr)
        assert "read-only" in done.stderr and "writable" in done.stderr, done.stderr
        _no_traceback(done.stderr)
        done = _obeying_file_modes(["customer", "list", "--db", url], tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["c00000", "c00001"]
    finally:
        path.chmod(0o644)
    with sqlite3.connect(path) as conn:  # nothing was written, not even the imports row
        assert conn.execute("SELECT count(*) FROM imports").fetchone() == (1,)


# --------------------------------------------------------------------------- SQLite: damaged


def test_a_corrupted_page_is_exit_3_not_a_traceback(tmp_path: Path) -> None:
    url, path = _store(tmp_path, customers=2000)
    page = sqlite3.connect(path).execute("PRAGMA page_size").fetchone()[0]
    size = path.stat().st_size
    assert size > 20 * page
    with path.open("r+b") as fh:  # page 1 (header and schema) intact; scribble over the rest
        for offset in range(2 * page, size, page):
            fh.seek(offset)
            fh.write(b"\xa5" * 64 + os.urandom(page // 4))
    for argv in (["customer", "list", "--db", url, "--limit", "5000"],
                 ["customer", "show", "c01999", "--db", url],
                 ["import", "customers", str(_csv(tmp_path)), "--db", url],
                 ["imports", "list", "--db", url]):
        code, out, err = run_cli(argv)
        assert code == 3, (argv, code, out, err)
        assert "damaged" in err and ".recover" in err, err
        _no_traceback(err)


def test_a_file_that_is_not_a_database_is_exit_3(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    path.write_bytes(b"name,email\n" * 500)
    code, _, err = run_cli(["customer", "list", "--db", str(path)])
    assert code == 3
    assert "damaged" in err and "not a database" in err
    code, _, err = run_cli(["init", "--db", str(path)])
    assert code == 3 and "damaged" in err


# --------------------------------------------------------------------------- alembic_version


def test_two_rows_in_alembic_version_is_exit_3(db_url: str, tmp_path: Path) -> None:
    engine = db.init_store(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES ('0001')"))
    engine.dispose()
    for argv in (["customer", "list", "--db", db_url], ["init", "--db", db_url],
                 ["imports", "list", "--db", db_url],
                 ["import", "customers", str(_csv(tmp_path)), "--db", db_url]):
        code, out, err = run_cli(argv)
        assert code == 3, (argv, out, err)
        assert f"2 rows in alembic_version (0001, {db.head_revision()})" in err, err
        assert "DELETE FROM alembic_version" in err
        _no_traceback(err)


# --------------------------------------------------------------------------- PostgreSQL: rights


def _role_url(pg_url: str, role: str) -> str:
    return sa.engine.make_url(pg_url).set(username=role, password=None).render_as_string(hide_password=False)


@pytest.mark.postgres
def test_a_postgres_role_without_write_rights_is_exit_3(pg_url: str, tmp_path: Path) -> None:
    engine = db.init_store(pg_url)
    role = f"reader_{uuid.uuid4().hex[:8]}"
    dbname = sa.engine.make_url(pg_url).database
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(sa.text(f'GRANT CONNECT ON DATABASE "{dbname}" TO "{role}"'))
        conn.execute(sa.text(f'GRANT USAGE ON SCHEMA public TO "{role}"'))
        conn.execute(sa.text(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"'))
    engine.dispose()
    url = _role_url(pg_url, role)
    code, out, err = run_cli(["import", "customers", str(_csv(tmp_path)), "--db", url])
    assert code == 3, (out, err)
    assert "lacks a right" in err and "permission denied for table imports" in err, err
    assert "GRANT SELECT, INSERT, UPDATE, DELETE" in err
    _no_traceback(err)
    code, out, err = run_cli(["customer", "list", "--db", url])  # reading is allowed
    assert code == 0, err
    code, out, err = run_cli(["init", "--db", url])  # nothing to do, nothing written
    assert code == 0 and "up to date" in out, err


@pytest.mark.postgres
def test_init_by_a_role_that_cannot_create_tables_is_exit_3(pg_server_url: str) -> None:
    url = postgres.create_database(pg_server_url, f"t_{uuid.uuid4().hex[:12]}")
    role = f"nocreate_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(sa.text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
    admin.dispose()
    code, out, err = run_cli(["init", "--db", _role_url(url, role)])
    assert code == 3, (out, err)
    assert "lacks a right" in err and "permission denied for schema public" in err, err
    _no_traceback(err)
    check = sa.create_engine(url)
    with check.connect() as conn:  # nothing half-built
        assert sa.inspect(conn).get_table_names() == []
    check.dispose()


# --------------------------------------------------------------------------- numeric options


# Typer ships its own copy of click: walk the command tree by duck typing, as scripts/cli_reference.py


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found: list[tuple[tuple[str, ...], Any]] = []
    for name, cmd in sorted(group.commands.items()):
        if getattr(cmd, "commands", None):
            found += _commands(cmd, (*prefix, name))
        else:
            found.append(((*prefix, name), cmd))
    return found


def _numeric_options() -> list[tuple[tuple[str, ...], Any]]:
    from tactful.cli import app

    root = typer.main.get_command(app)
    return [(path, param) for path, cmd in _commands(root) for param in cmd.params
            if param.param_type_name == "option" and _numeric(param.type_descriptor.annotation)]


def _numeric(annotation: Any) -> bool:
    kinds = typing.get_args(annotation) or (annotation,)
    return any(k in (int, float) for k in kinds)


def test_every_numeric_option_has_bounds() -> None:
    from tactful.commands import sample as sample_command
    from tactful.sample import synthetic

    assert sample_command.MAX_CUSTOMERS == synthetic.MAX_CUSTOMERS
    options = _numeric_options()
    assert len(options) >= 6  # customer show --orders, list --limit/--offset, import --batch-size, sample...
    unbounded = [f"tactful {' '.join(path)} {param.opts[0]}" for path, param in options
                 if param.min is None or param.max is None]
    assert unbounded == [], "give these options min= and max= (typer.Option(..., min=, max=))"


@pytest.mark.parametrize("value", [str(2**70), "-1", str(-(2**70)), "1e400"])
def test_numeric_options_out_of_range_are_usage_errors(value: str, tmp_path: Path) -> None:
    url, _ = _store(tmp_path)
    csv = _csv(tmp_path)
    positional = {("customer", "show"): ["c1"], ("import",): ["customers", str(csv)],
                  ("decide",): [str(csv)]}
    for path, param in _numeric_options():
        if value == "-1" and param.min is not None and param.min <= -1:
            continue
        argv = [*path, *positional.get(path, []), param.opts[0], value]
        if any(p.name == "db" for p in _command(path).params):
            argv += ["--db", url]
        code, out, err = run_cli(argv)
        assert code == 2, (argv, code, out, err)
        assert "Invalid value" in err or "is not" in err, (argv, err)
        _no_traceback(err)


def _command(path: tuple[str, ...]) -> Any:
    from tactful.cli import app

    cmd: Any = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return cmd
