"""Bookkeeping that tells the truth: import state and counts after a real ``kill -9``, failed and
interrupted imports, ``tactful imports list``; ``tactful init`` atomic (failed, killed, concurrent);
a killed ``tactful sample`` leaves a store that every command reports as incomplete, with the fix."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tactful.errors import StoreError
from tactful.ingest import run_import
from tactful.store import bookkeeping, db, tables
from tactful.testing.cli import run_cli

HEAD = db.head_revision()
ENV = {**os.environ, "COLUMNS": "200"}


def _customers_csv(path: Path, n: int) -> Path:
    with path.open("w") as fh:
        fh.write("id,first_name,last_name\n")
        for i in range(n):
            fh.write(f"c{i:07d},First{i},Last{i}\n")
    return path


def _scalar(url: str, sql: str) -> object:
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar_one()
    finally:
        engine.dispose()


def _wait_for(check: Callable[[], bool], proc: subprocess.Popen[str], what: str,
              timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the process ended (exit {proc.returncode}) before {what}: {out}{err}")
        try:
            if check():
                return
        except (sa.exc.OperationalError, sqlite3.OperationalError):
            pass  # the store is being created or is busy: look again
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"timed out waiting for {what}")


def _kill9(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _tactful(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tactful.cli", *argv], env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


# --------------------------------------------------------------------------- imports: kill -9


def test_a_killed_import_is_reported_interrupted_with_the_counts_it_committed(db_url: str,
                                                                             tmp_path: Path) -> None:
    db.init_store(db_url).dispose()
    n = 400_000
    big = _customers_csv(tmp_path / "customers.csv", n)
    proc = _tactful("import", "customers", str(big), "--db", db_url, "--batch-size", "2000")
    # the imports row follows the batches as they commit: wait until it says three of them are in
    _wait_for(lambda: int(_scalar(db_url, "SELECT coalesce(max(rows_imported), 0) FROM imports")) >= 6000,
              proc, "three batches were recorded")
    _kill9(proc)

    assert _scalar(db_url, "SELECT state FROM imports") == "running"  # nobody could write otherwise
    code, out, err = run_cli(["imports", "list", "--db", db_url, "--format", "json"])
    assert code == 0, err
    [entry] = json.loads(out)
    assert entry["state"] == "interrupted"
    assert f"pid {proc.pid}" in entry["error"] and "stopped before the import finished" in entry["error"]
    # the counts are exactly what the store holds: recorded in each batch's own transaction
    stored = int(_scalar(db_url, "SELECT count(*) FROM customers"))
    assert 6000 <= entry["rows_imported"] == stored < n
    assert entry["rows_read"] == entry["rows_imported"] + entry["rows_quarantined"]
    assert entry["finished_at"] is None

    code, out, err = run_cli(["imports", "list", "--db", db_url])
    assert code == 0, err
    assert "interrupted" in out and "run the same import again" in out

    # the next import writes the truth down for good
    small = _customers_csv(tmp_path / "more.csv", 3)
    code, out, err = run_cli(["import", "customers", str(small), "--db", db_url])
    assert code == 0, err
    engine = db.make_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tables.imports.c.id, tables.imports.c.state, tables.imports.c.error)
                            .order_by(tables.imports.c.id)).all()
    engine.dispose()
    assert [r.state for r in rows] == ["interrupted", "finished"]
    assert rows[0].error is not None and f"pid {proc.pid}" in rows[0].error


def _fail_after_first_batch(error: BaseException) -> Callable[[int, int], None]:
    calls = {"n": 0}

    def progress(done: int, total: int) -> None:
        calls["n"] += 1
        if calls["n"] > 3:
            raise error
    return progress


@pytest.mark.parametrize(("error", "state", "says"), [
    (RuntimeError("the disk went away"), "failed", "the disk went away"),
    (KeyboardInterrupt(), "interrupted", "Ctrl-C"),
])
def test_an_import_that_stops_on_an_error_is_failed_or_interrupted(
        db_url: str, tmp_path: Path, error: BaseException, state: str, says: str) -> None:
    engine = db.init_store(db_url)
    csv = _customers_csv(tmp_path / "customers.csv", 20_000)
    with pytest.raises(type(error)):
        run_import(engine, "customers", csv, batch_size=1000, progress=_fail_after_first_batch(error))
    with engine.connect() as conn:
        row = conn.execute(sa.select(tables.imports)).one()
        stored = conn.execute(sa.select(sa.func.count()).select_from(tables.customers)).scalar_one()
    engine.dispose()
    assert (row.state, row.finished_at is not None) == (state, True)
    assert row.error is not None and says in row.error
    assert row.rows_imported == stored < 20_000
    code, out, err = run_cli(["imports", "list", "--db", db_url, "--state", state, "--format", "json"])
    assert code == 0, err
    assert [e["id"] for e in json.loads(out)] == [row.id]
    code, out, err = run_cli(["imports", "list", "--db", db_url, "--state", "finished", "--format", "json"])
    assert json.loads(out) == []


def test_a_finished_import_says_finished_with_its_counts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    db.init_store(url).dispose()
    csv = tmp_path / "customers.csv"
    csv.write_text("id,first_name,birth_date\nc1,Ada,1980-01-01\nc2,Bob,not a date\nc3,Cy,\n")
    code, out, err = run_cli(["import", "customers", str(csv), "--db", url, "--batch-size", "1"])
    assert code == 4, err
    code, out, err = run_cli(["imports", "list", "--db", url, "--format", "json"])
    [entry] = json.loads(out)
    assert (entry["state"], entry["rows_read"], entry["rows_imported"], entry["rows_quarantined"]) == \
        ("finished", 3, 2, 1)
    assert entry["pid"] is not None and entry["heartbeat_at"] is not None
    code, out, err = run_cli(["imports", "list", "--db", url])
    assert code == 0 and "finished" in out and "quarantine:" in out


def test_the_state_of_a_running_row_is_checked_against_its_process(tmp_path: Path) -> None:
    engine = db.init_store(f"sqlite:///{tmp_path / 'shop.db'}")
    now = datetime.now(UTC)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    rows = {
        "alive here": dict(pid=os.getpid(), host=bookkeeping.this_host(),
                           heartbeat_at=now - timedelta(hours=5)),
        "dead here": dict(pid=int(dead.stdout), host=bookkeeping.this_host(), heartbeat_at=now),
        "beating elsewhere": dict(pid=1, host="another-host", heartbeat_at=now - timedelta(minutes=1)),
        "silent elsewhere": dict(pid=1, host="another-host", heartbeat_at=now - timedelta(hours=1)),
    }
    with engine.begin() as conn:
        for label, owner in rows.items():
            conn.execute(tables.imports.insert().values(kind="customers", origin=label, started_at=now,
                                                        rows_read=0, rows_imported=0, rows_quarantined=0,
                                                        state="running", **owner))
    code, out, err = run_cli(["imports", "list", "--db", str(engine.url), "--format", "json"])
    assert code == 0, err
    assert {e["origin"]: e["state"] for e in json.loads(out)} == {
        "alive here": "running", "dead here": "interrupted",
        "beating elsewhere": "running", "silent elsewhere": "interrupted"}
    with engine.begin() as conn:
        swept = bookkeeping.sweep_interrupted(conn)
        states = dict(conn.execute(sa.select(tables.imports.c.origin, tables.imports.c.state)).all())
    engine.dispose()
    assert len(swept) == 2
    assert states["dead here"] == states["silent elsewhere"] == "interrupted"
    assert states["alive here"] == states["beating elsewhere"] == "running"


# --------------------------------------------------------------------------- init: atomic


def _migrations_with(tmp_path: Path, upgrade_body: str) -> str:
    location = tmp_path / "migrations"
    shutil.copytree(db.MIGRATIONS_LOCATION, location, ignore=shutil.ignore_patterns("__pycache__"))
    (location / "versions" / "9999_test.py").write_text(
        '"""test-only revision"""\n'
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f'revision = "9999"\ndown_revision = "{HEAD}"\nbranch_labels = None\ndepends_on = None\n\n\n'
        "def upgrade() -> None:\n" + "".join(f"    {line}\n" for line in upgrade_body.splitlines()) +
        "\n\ndef downgrade() -> None:\n    pass\n")
    return str(location)


def _tables(url: str) -> set[str]:
    engine = db.make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


FAILING = 'op.create_table("half_built", sa.Column("id", sa.Integer, primary_key=True))\n' \
          'op.execute("SELECT * FROM no_such_table")'


def test_a_failed_init_of_a_new_store_leaves_nothing_and_the_next_init_succeeds(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = db.MIGRATIONS_LOCATION
    monkeypatch.setattr(db, "MIGRATIONS_LOCATION", _migrations_with(tmp_path, FAILING))
    with pytest.raises(StoreError):
        db.initialise(db_url)
    assert _tables(db_url) == set()  # not even the tables of the revisions before the failing one
    monkeypatch.setattr(db, "MIGRATIONS_LOCATION", real)
    result = db.initialise(db_url)
    result.engine.dispose()
    assert (result.action, result.to_revision) == ("created", HEAD)


def test_a_failed_upgrade_leaves_the_store_at_its_revision(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db.init_store(db_url).dispose()
    before = _tables(db_url)
    monkeypatch.setattr(db, "MIGRATIONS_LOCATION", _migrations_with(tmp_path, FAILING))
    with pytest.raises(StoreError):
        db.initialise(db_url)
    assert _tables(db_url) == before
    assert _scalar(db_url, "SELECT version_num FROM alembic_version") == HEAD


def _slow_init(location: str, url: str, after: Path | None = None) -> subprocess.Popen[str]:
    """``initialise`` with the migrations at ``location`` in a new process; with ``after``, it starts
    (everything imported already) as soon as that file exists."""
    code = ("import os, sys, time\nimport tactful.store.db as d\nd.MIGRATIONS_LOCATION = sys.argv[1]\n"
            "while sys.argv[3] and not os.path.exists(sys.argv[3]):\n    time.sleep(0.01)\n"
            "r = d.initialise(sys.argv[2])\nprint(r.action)\nr.engine.dispose()\n")
    return subprocess.Popen([sys.executable, "-c", code, location, url, str(after or "")], env=ENV,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_killed_init_leaves_nothing_half_built(db_url: str, tmp_path: Path) -> None:
    signal_file = tmp_path / "migrating"
    location = _migrations_with(tmp_path, (
        'op.create_table("half_built", sa.Column("id", sa.Integer, primary_key=True))\n'
        f'open({str(signal_file)!r}, "w").close()\n'
        "import time; time.sleep(120)"))
    proc = _slow_init(location, db_url)
    _wait_for(signal_file.exists, proc, "the migration was under way")
    _kill9(proc)
    assert _tables(db_url) == set()
    code, out, err = run_cli(["init", "--db", db_url])
    assert code == 0, err
    assert out.startswith("created store") and f"schema {HEAD}" in out
    code, out, err = run_cli(["customer", "list", "--db", db_url])
    assert (code, out) == (0, ""), err


def test_two_concurrent_inits_of_a_new_store_both_end_well(db_url: str, tmp_path: Path) -> None:
    signal_file = tmp_path / "migrating"
    location = _migrations_with(tmp_path, (
        f'open({str(signal_file)!r}, "a").write("x")\n'
        "import time; time.sleep(3)"))
    second = _slow_init(location, db_url, after=signal_file)  # starts while the first holds the lock
    first = _slow_init(location, db_url)
    outs = [p.communicate(timeout=120) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    assert [o.strip() for o, _ in outs] == ["created", "up_to_date"]
    assert signal_file.read_text() == "x"  # the slow revision ran once
    assert _scalar(db_url, "SELECT version_num FROM alembic_version") == "9999"


def test_concurrent_cli_inits_all_succeed(db_url: str) -> None:
    procs = [_tactful("init", "--db", db_url) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    said = sorted(o.split(" ")[0] for o, _ in outs)
    assert said == ["created", "store"], outs  # one created it; the other found it up to date


# --------------------------------------------------------------------------- sample: killed


def test_a_killed_sample_build_is_reported_incomplete_by_every_command(tmp_path: Path) -> None:
    path = tmp_path / "world.db"
    url = f"sqlite:///{path}"
    proc = _tactful("sample", "--synthetic", "60000", "--jobs", "0", "--quiet", "--db", url)

    def writing_customers() -> bool:
        if not path.exists():
            return False
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return bool(conn.execute("SELECT count(*) FROM customers").fetchone()[0])

    _wait_for(writing_customers, proc, "the build was writing customers", timeout=300)
    _kill9(proc)
    with sqlite3.connect(path) as conn:  # what the kill left: part of the world, without its indexes
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' "
                                               "AND name LIKE 'ix_%'")}
    assert "ix_customers_household_id" not in indexes

    for argv in (["customer", "list", "--db", url], ["customer", "show", "c0000001", "--db", url],
                 ["import", "customers", str(_customers_csv(tmp_path / "c.csv", 2)), "--db", url]):
        code, out, err = run_cli(argv)
        assert code == 3, (argv, out, err)
        assert "is incomplete" in err and "did not finish" in err, err
        assert "tactful sample --replace" in err
    code, out, err = run_cli(["imports", "list", "--db", url, "--format", "json"])
    assert code == 0
    assert "is incomplete" in err and "tactful sample --replace" in err
    assert [e["state"] for e in json.loads(out)] == ["interrupted"]

    code, out, err = run_cli(["sample", "--synthetic", "40", "--replace", "--quiet", "--db", url])
    assert code == 0, err
    with sqlite3.connect(path) as conn:
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    wanted = {str(ix.name) for t in tables.metadata.sorted_tables for ix in t.indexes}
    assert wanted <= indexes
    code, out, err = run_cli(["customer", "list", "--db", url, "--limit", "3"])
    assert code == 0 and len(out.split()) == 3, err


def test_a_bulk_load_heartbeat_beats_at_most_once_per_interval(tmp_path: Path) -> None:
    engine = db.init_store(f"sqlite:///{tmp_path / 'shop.db'}")
    with engine.begin() as conn:
        import_id = db.begin_import(conn, kind="sample", origin="sample:test")
        conn.execute(tables.imports.update().values(heartbeat_at=datetime(2020, 1, 1, tzinfo=UTC)))

    def beat_at() -> datetime:
        with engine.connect() as conn:
            value = conn.execute(sa.select(tables.imports.c.heartbeat_at)).scalar_one()
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value

    bookkeeping.Heartbeat(engine, import_id, every=3600)()
    assert beat_at().year == 2020  # too soon after the start
    bookkeeping.Heartbeat(engine, import_id, every=0)()
    assert datetime.now(UTC) - beat_at() < timedelta(minutes=1)
    engine.dispose()
