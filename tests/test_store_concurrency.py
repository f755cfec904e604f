"""Concurrent writers on a real PostgreSQL: two imports of overlapping ids in opposite orders wait for
each other and both finish (rows upserted in key order; deadlocks and serialization failures retried)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from tactful.store import db, retry, tables

pytestmark = pytest.mark.postgres

ENV = {**os.environ, "COLUMNS": "200"}


def _libpq(url: str) -> str:
    return sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _deadlocks(url: str) -> int:
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT deadlocks FROM pg_stat_database "
                           "WHERE datname = current_database()").fetchone()
        assert row is not None
        return int(row[0])


def test_two_imports_of_overlapping_ids_in_opposite_orders_both_finish(pg_url: str, tmp_path: Path) -> None:
    db.init_store(pg_url).dispose()
    n = 12_000
    ids = [f"c{i:06d}" for i in range(n)]
    up, down = tmp_path / "up.csv", tmp_path / "down.csv"
    up.write_text("id,first_name\n" + "".join(f"{i},Up\n" for i in ids))
    down.write_text("id,first_name\n" + "".join(f"{i},Down\n" for i in reversed(ids)))
    before = _deadlocks(pg_url)
    for _ in range(3):
        procs = [subprocess.Popen([sys.executable, "-m", "tactful.cli", "import", "customers", str(path),
                                   "--db", pg_url, "--batch-size", "300"],
                                  env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for path in (up, down)]
        outs = [p.communicate(timeout=300) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        assert not any("Traceback" in err for _, err in outs), outs
    engine = db.make_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tables.customers)).scalar_one() == n
        states = conn.execute(sa.select(tables.imports.c.state, tables.imports.c.rows_imported)).all()
        names = set(conn.execute(sa.select(tables.customers.c.first_name).distinct()).scalars())
    engine.dispose()
    assert states == [("finished", n)] * 6
    assert names <= {"Up", "Down"}
    # key order, not luck or retries: the server saw no deadlock at all
    assert _deadlocks(pg_url) == before


def test_retrying_runs_a_transaction_again_after_a_real_deadlock(pg_url: str) -> None:
    dsn = _libpq(pg_url)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE pair (id int PRIMARY KEY, n int NOT NULL)")
        conn.execute("INSERT INTO pair VALUES (1, 0), (2, 0)")
    barrier = threading.Barrier(2, timeout=30)
    attempts = {1: 0, 2: 0}
    retried: list[str] = []
    errors: list[BaseException] = []

    def worker(first: int, second: int) -> None:
        with psycopg.connect(dsn) as conn:
            def transaction() -> None:
                attempts[first] += 1
                with conn.transaction():
                    conn.execute("UPDATE pair SET n = n + 1 WHERE id = %s", (first,))
                    if attempts[first] == 1:
                        barrier.wait()  # both hold their first row: the second update deadlocks
                    conn.execute("UPDATE pair SET n = n + 1 WHERE id = %s", (second,))

            try:
                retry.retrying(transaction, on_retry=lambda n, exc: retried.append(type(exc).__name__))
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=pair) for pair in ((1, 2), (2, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert retried == ["DeadlockDetected"]
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT n FROM pair ORDER BY id").fetchall() == [(2,), (2,)]


def test_other_errors_are_not_retried() -> None:
    calls: list[int] = []

    def boom() -> None:
        calls.append(1)
        raise psycopg.errors.UniqueViolation("duplicate key")

    with pytest.raises(psycopg.errors.UniqueViolation):
        retry.retrying(boom, sleep=lambda _s: None)
    assert calls == [1]


def test_a_deadlock_that_keeps_coming_back_is_raised_after_the_last_attempt() -> None:
    calls: list[int] = []
    slept: list[float] = []

    def deadlock() -> None:
        calls.append(1)
        raise psycopg.errors.DeadlockDetected("deadlock detected")

    with pytest.raises(psycopg.errors.DeadlockDetected):
        retry.retrying(deadlock, attempts=4, sleep=slept.append)
    assert len(calls) == 4 and len(slept) == 3
    assert slept[0] < slept[-1] <= retry.MAX_DELAY_S * 1.5  # backing off, bounded


def test_key_ordered_sorts_keys_of_a_batch() -> None:
    assert retry.key_ordered({"b": 2, "a": 1, "c": 3}) == [1, 2, 3]
    assert retry.key_ordered({("o2", 1): "x", ("o1", 2): "y", ("o1", 1): "z"}) == ["z", "y", "x"]
