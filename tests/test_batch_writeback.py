"""`tactful batch decide --to-store`: the run and its decisions written back to the store, all or
nothing, and read back by `tactful batch runs` / `tactful batch show`; on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from tactful.batch import writeback
from tactful.batch.run import DECISIONS_SCHEMA, RunResult, decide_candidates
from tactful.errors import StoreError
from tactful.policy import load_pack
from tactful.store import db, tables
from tactful.testing.cli import run_cli
from tactful.testing.store import seed
from test_batch_cli import ROWS, _candidates, world


@pytest.fixture()
def store(db_url: str) -> Iterator[str]:
    engine: Engine = db.init_store(db_url)
    seed(engine, world(), origin="test:writeback")
    engine.dispose()
    yield db_url


def _engine(url: str) -> Engine:
    return db.make_engine(url)


def _runs(url: str) -> list[Any]:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(tables.batch_runs).order_by(tables.batch_runs.c.started_at)))
    finally:
        engine.dispose()


def _decision_count(url: str, run_id: str | None = None) -> int:
    d = tables.batch_decisions
    query = sa.select(sa.func.count()).select_from(d)
    if run_id is not None:
        query = query.where(d.c.run_id == run_id)
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


def _stop_on_row(url: str, row: int) -> None:
    """A real database failure in the middle of the write: the store refuses decision ``row``."""
    engine = _engine(url)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                f'CREATE TRIGGER stop_here BEFORE INSERT ON batch_decisions WHEN NEW."row" = {row} '
                "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION stop_here() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.\"row\" = {row} THEN RAISE EXCEPTION 'disk on fire'; END IF; RETURN NEW; END $$")
            conn.exec_driver_sql("CREATE TRIGGER stop_here BEFORE INSERT ON batch_decisions "
                                 "FOR EACH ROW EXECUTE FUNCTION stop_here()")
    engine.dispose()


def test_the_stored_run_equals_the_parquet_output_row_by_row(store: str, tmp_path: Path) -> None:
    cands = _candidates(tmp_path)
    out = tmp_path / "decisions.parquet"
    code, stdout, stderr = run_cli(["batch", "decide", str(cands), "--db", store, "--out", str(out),
                                    "--to-store"])
    assert code == 0, stderr
    [run] = _runs(store)
    assert f"wrote batch run {run.id} to the store (8 decisions)" in stdout
    parquet = pq.read_table(out)
    stored = writeback.read_decisions(store, run.id)
    assert stored.column("row").to_pylist() == list(range(1, len(ROWS) + 1))
    assert stored.drop_columns(["row"]).to_pylist() == parquet.to_pylist()
    assert stored.drop_columns(["row"]).equals(parquet)  # types too (named is a bool, NULLs stay NULL)
    assert parquet.column("error").null_count < parquet.num_rows  # not a vacuous comparison
    assert "" in parquet.column("failed_rules").to_pylist()  # an empty text is not NULL
    # the run row: what ran, on what, its counts, by whom
    assert (run.status, run.policy_name, run.policy_version, run.backend, run.features) == (
        "finished", "default", "1", "duckdb", "backend")
    assert run.source == str(cands.resolve()) and run.source_sha256 == writeback.file_sha256(cands)
    verdicts = parquet.column("verdict").to_pylist()
    assert (run.rows, run.allow_count, run.soften_count, run.ask_count, run.block_count) == (
        8, verdicts.count("allow"), verdicts.count("soften"), verdicts.count("ask"), verdicts.count("block"))
    assert run.error_count == 2 and run.by_rule["evaluation-error"] == 2
    assert run.pid == os.getpid() and run.host and run.finished_at is not None and run.error is None
    # one customer's decisions, through the index
    bob = writeback.read_decisions(store, run.id, customer_id="bob")
    assert bob.column("touch_id").to_pylist() == [r[1] for r in ROWS if r[0] == "bob"]


def test_the_reference_path_and_chunks_round_trip_too(store: str, tmp_path: Path) -> None:
    """Several chunks in one transaction (executemany / COPY per chunk), the reference path's frame."""
    cands = _candidates(tmp_path)
    pack = load_pack()
    result = decide_candidates(cands, pack, db=store, reference=True)
    run_id = writeback.start_run(store, source=cands, policy_name=pack.name, policy_version=pack.version,
                                 backend="duckdb")
    assert [r.status for r in _runs(store)] == ["running"]
    steps: list[int] = []
    writeback.write_run(store, run_id, result, chunk_rows=3, progress=steps.append)
    assert steps == [3, 3, 2]
    stored = writeback.read_decisions(store, run_id)
    assert stored.drop_columns(["row"]).equals(result.decisions)
    run = writeback.get_run(store, "latest")
    assert (run.id, run.status, run.features, run.rows) == (run_id, "finished", "reference", 8)


def test_a_failure_mid_write_keeps_nothing_and_marks_the_run_failed(store: str, tmp_path: Path) -> None:
    cands = _candidates(tmp_path)
    pack = load_pack()
    result = decide_candidates(cands, pack, db=store)
    _stop_on_row(store, 5)  # after two chunks of two were written
    run_id = writeback.start_run(store, source=cands, policy_name=pack.name, policy_version=pack.version,
                                 backend="duckdb")
    steps: list[int] = []
    with pytest.raises(StoreError) as info:
        writeback.write_run(store, run_id, result, chunk_rows=2, progress=steps.append)
    assert steps == [2, 2]  # it did fail part way
    assert f"cannot write batch run {run_id}" in info.value.message and "disk on fire" in info.value.message
    assert info.value.exit_code == 3
    [run] = _runs(store)
    assert (run.status, run.rows) == ("failed", None) and "disk on fire" in run.error
    assert _decision_count(store) == 0
    with pytest.raises(Exception, match="no finished batch run"):
        writeback.get_run(store, "latest")


def test_the_cli_says_why_a_write_failed_and_shows_the_failed_run(store: str, tmp_path: Path) -> None:
    _stop_on_row(store, 3)
    out = tmp_path / "d.parquet"
    code, _, err = run_cli(["batch", "decide", str(_candidates(tmp_path)), "--db", store, "--to-store",
                            "--out", str(out), "-q"])
    assert code == 3, err
    assert "cannot write batch run" in err and "disk on fire" in err and "Traceback" not in err
    assert out.exists()  # the file output stands on its own
    [run] = _runs(store)
    assert run.status == "failed" and _decision_count(store) == 0
    code, stdout, _ = run_cli(["batch", "show", run.id, "--db", store])
    assert code == 0 and "failed" in stdout and "disk on fire" in stdout and "no decisions" in stdout
    code, stdout, _ = run_cli(["batch", "runs", "--db", store])
    assert code == 0 and run.id in stdout and "failed" in stdout


def test_a_run_that_cannot_decide_is_recorded_failed(store: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,kind\nann,offer\n", encoding="utf-8")  # no touch_id column
    code, _, err = run_cli(["batch", "decide", str(bad), "--db", store, "--to-store", "-q"])
    assert code == 2, err
    [run] = _runs(store)
    assert run.status == "failed" and "touch_id" in run.error and run.finished_at is not None


def _hold_sqlite_lock(url: str) -> Any:
    import sqlite3

    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_a_killed_run_leaves_no_decisions_and_is_shown_interrupted(store: str, tmp_path: Path) -> None:
    """kill -9 while writing (PostgreSQL: inside the COPY, rows already sent; SQLite: waiting for the
    write lock another process holds): no decisions are kept, and the run is seen as interrupted."""
    cands = _candidates(tmp_path)
    engine = _engine(store)
    sqlite = engine.dialect.name == "sqlite"
    if not sqlite:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.\"row\" = 4 THEN PERFORM pg_sleep(20); END IF; RETURN NEW; END $$")
            conn.exec_driver_sql("CREATE TRIGGER slow BEFORE INSERT ON batch_decisions "
                                 "FOR EACH ROW EXECUTE FUNCTION slow()")
    out = tmp_path / "d.parquet"
    tactful = Path(sys.executable).parent / "tactful"
    url = store + ("?timeout=60" if sqlite else "")
    proc = subprocess.Popen([str(tactful), "batch", "decide", str(cands), "--db", url, "--to-store", "-q",
                             "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    holder = None
    try:
        deadline = time.monotonic() + 120
        while sqlite and not _run_ids(engine):  # its run row is written: now take the write lock
            assert proc.poll() is None and time.monotonic() < deadline, "the run never started"
            time.sleep(0.05)
        if sqlite:
            holder = _hold_sqlite_lock(store)
        while not _writing(engine, out):
            assert proc.poll() is None, "the run ended before it was killed"
            assert time.monotonic() < deadline, "the run never started writing"
            time.sleep(0.2)
        time.sleep(1.0)  # (SQLite) from the file to the lock wait
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        if holder is not None:
            holder.rollback()
            holder.close()
    [run] = _runs(store)
    assert run.status == "running"  # nobody could say otherwise yet
    code, stdout, _ = run_cli(["batch", "runs", "--db", store])
    assert code == 0 and "interrupted" in stdout
    assert writeback.get_run(store, run.id).status == "interrupted"
    assert _decision_count(store) == 0
    engine.dispose()


def _writing(engine: Engine, out: Path) -> bool:
    """Whether the run has reached the write of its decisions to the store."""
    if engine.dialect.name == "sqlite":
        return out.exists()  # written just before the decisions go to the store
    with engine.connect() as conn:
        return bool(conn.execute(sa.text(
            "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'COPY %batch_decisions%' "
            "AND wait_event = 'PgSleep'")).first())


def _run_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [r for (r,) in conn.execute(sa.select(tables.batch_runs.c.id))]


def test_migration_0005_goes_down_and_up(store: str, tmp_path: Path) -> None:
    code, _, err = run_cli(["batch", "decide", str(_candidates(tmp_path)), "--db", store, "--to-store",
                            "-q"])
    assert code == 0, err
    engine = _engine(store)
    try:
        command.downgrade(db._alembic_config(engine), "0004")
        names = set(sa.inspect(engine).get_table_names())
        assert "batch_runs" not in names and "batch_decisions" not in names and "campaign_runs" in names
        assert db.schema_revision(engine) == "0004"
        # a store one schema behind is refused with its fix, before any work (exit 3)
        out = tmp_path / "never.parquet"
        code, _, err = run_cli(["batch", "decide", str(_candidates(tmp_path)), "--db", store,
                                "--to-store", "--out", str(out), "-q"])
        assert code == 3 and "tactful init" in err and not out.exists()
        command.upgrade(db._alembic_config(engine), "head")
        inspector = sa.inspect(engine)
        assert {"batch_runs", "batch_decisions"} <= set(inspector.get_table_names())
        indexes = {tuple(ix["column_names"]) for ix in inspector.get_indexes("batch_decisions")}
        assert ("customer_id", "run_id") in indexes
        assert inspector.get_pk_constraint("batch_decisions")["constrained_columns"] == ["run_id", "row"]
    finally:
        engine.dispose()
    assert _runs(store) == []


def test_runs_and_show_on_the_command_line(store: str, tmp_path: Path) -> None:
    code, stdout, _ = run_cli(["batch", "runs", "--db", store])
    assert code == 0 and "no batch runs" in stdout
    code, _, err = run_cli(["batch", "show", "latest", "--db", store])
    assert code == 2 and "no finished batch run" in err
    code, stdout, err = run_cli(["batch", "decide", str(_candidates(tmp_path)), "--db", store, "--to-store",
                                 "-q"])
    assert code == 0, err
    run_id = stdout.strip()  # --quiet prints the run id alone
    assert run_id.startswith("batch-") and "\n" not in run_id
    code, stdout, _ = run_cli(["batch", "runs", "--db", store])
    assert code == 0 and run_id in stdout and "finished" in stdout
    code, stdout, _ = run_cli(["batch", "show", run_id, "--db", store, "-n", "100"])
    assert code == 0
    assert "default 1" in stdout and "candidates.csv" in stdout and "fired rules" in stdout
    assert "email-bread" in stdout and "is not in the store" in stdout
    code, stdout, _ = run_cli(["batch", "show", "latest", "--db", store, "--customer", "bob"])
    assert code == 0 and "2 decisions of customer bob" in stdout
    assert "web-service" in stdout and "email-bread" not in stdout
    code, stdout, _ = run_cli(["batch", "show", run_id, "--db", store, "--customer", "zed"])
    assert code == 0 and "no decisions for customer zed" in stdout
    code, _, err = run_cli(["batch", "show", "batch-nope", "--db", store])
    assert code == 2 and "'batch-nope' is not in the store" in err and "batch runs" in err


def test_text_from_the_store_is_never_markup_or_terminal_control(store: str, tmp_path: Path) -> None:
    hostile = "[bold red]evil[/bold red]:x:\x1b[2J\u202e"
    rows = [[hostile, "t[link=http://x]1", *ROWS[0][2:]]]
    code, _, err = run_cli(["batch", "decide", str(_candidates(tmp_path, rows)), "--db", store,
                            "--to-store", "-q"])
    assert code == 0, err
    code, stdout, _ = run_cli(["batch", "show", "latest", "--db", store, "-c", hostile])
    assert code == 0
    assert "[bold red]evil[/bold red]:x:" in stdout and "\\x1b[2J" in stdout and "\\u202e" in stdout
    assert "\x1b" not in stdout and "\u202e" not in stdout and "t[link=http://x]1" in stdout


def test_write_run_refuses_decisions_of_another_shape(store: str, tmp_path: Path) -> None:
    run_id = writeback.start_run(store, source=_candidates(tmp_path), policy_name="default",
                                 policy_version="1", backend="duckdb")
    wrong = pa.table({"customer_id": ["ann"]})
    with pytest.raises(StoreError, match="columns of the decisions table"):
        writeback.write_run(store, run_id, RunResult(wrong, "duckdb"))
    assert DECISIONS_SCHEMA.names[0] == "customer_id"


def test_delete_removes_runs_and_their_decisions_all_or_nothing(store: str, tmp_path: Path) -> None:
    cands = _candidates(tmp_path)
    pack = load_pack()
    result = decide_candidates(cands, pack, db=store)
    ids = []
    for _ in range(2):
        run_id = writeback.start_run(store, source=cands, policy_name=pack.name,
                                     policy_version=pack.version, backend="duckdb")
        writeback.write_run(store, run_id, result)
        ids.append(run_id)
    running = writeback.start_run(store, source=cands, policy_name=pack.name, policy_version=pack.version,
                                  backend="duckdb")  # this process is alive: it stays running
    # one bad id among good ones: nothing is deleted
    code, _, err = run_cli(["batch", "delete", ids[0], "batch-nope", "--db", store])
    assert code == 2 and "'batch-nope' is not in the store; nothing was deleted" in err
    code, _, err = run_cli(["batch", "delete", ids[0], running, "--db", store])
    assert code == 2 and f"{running} is still running; nothing was deleted" in err
    assert _decision_count(store) == 16 and len(_runs(store)) == 3
    code, stdout, err = run_cli(["batch", "delete", ids[0], "--db", store])
    assert code == 0, err
    assert f"deleted batch run {ids[0]} and its 8 decisions" in stdout
    assert _decision_count(store, ids[0]) == 0 and _decision_count(store, ids[1]) == 8
    assert sorted(r.id for r in _runs(store)) == sorted([ids[1], running])
