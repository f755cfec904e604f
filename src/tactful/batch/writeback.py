"""Batch decisions written back to the store (``tactful batch decide --to-store``) and read back
(``tactful batch runs``, ``tactful batch show``); the tables are ``batch_runs`` and
``batch_decisions`` (:mod:`tactful.store.tables`, migration 0005; docs/batch.md).

A run is written in two steps:

1. :func:`start_run` commits the run row, status ``running``, with the policy, the candidates file and
   its SHA-256, and this host and process: a run that is still deciding is visible, and one whose
   process died (``kill -9``, the machine stopped) is recognised as ``interrupted``
   (:func:`mark_interrupted`, as campaign runs are);
2. :func:`write_run` writes all its decisions and marks it ``finished`` with its counts **in one
   transaction**: SQLite ``executemany`` in chunks after ``BEGIN IMMEDIATE``; PostgreSQL ``COPY ...
   (FORMAT csv)`` in chunks, the CSV written by Arrow (every text quoted, a NULL unquoted, which is
   exactly how PostgreSQL's CSV tells an empty text from NULL). A failure or a kill part way rolls the
   decisions back: a run is never marked finished with part of its decisions, and a failed run has
   none (:func:`fail_run` records why).
"""

from __future__ import annotations

import hashlib
import io
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tactful import __version__
from tactful.batch.run import DECISIONS_SCHEMA, RunResult
from tactful.errors import BatchError, NotFoundError, StoreError
from tactful.policy.compile import RULE_SEPARATOR
from tactful.store import bookkeeping, tables
from tactful.store.db import open_store
from tactful.store.failures import store_error

#: a batch run's status (as a campaign run's): running, finished, failed (it stopped on an error),
#: interrupted (its process is gone: killed, or the machine stopped, while it ran)
RUNNING, FINISHED, FAILED, INTERRUPTED = "running", "finished", "failed", "interrupted"
VERDICTS = ("allow", "soften", "ask", "block")
#: decisions per executemany / COPY chunk (one progress step each; all chunks in one transaction)
CHUNK_ROWS = 50_000
#: the columns of batch_decisions in the order they are written
COLUMNS = ("run_id", "row", *DECISIONS_SCHEMA.names)


@dataclass(frozen=True)
class BatchRun:
    """A row of ``batch_runs``."""

    id: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    policy_name: str
    policy_version: str
    backend: str
    features: str | None
    evaluated_at: datetime | None
    source: str
    source_sha256: str
    rows: int | None
    by_verdict: dict[str, int]
    error_count: int | None
    by_rule: dict[str, int]
    error: str | None
    host: str | None
    pid: int | None
    tool_version: str | None


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise BatchError(f"cannot read {path}: {exc.strerror or exc}",
                         hint="check the candidates file's path and rights") from None
    return digest.hexdigest()


def new_run_id(at: datetime | None = None) -> str:
    """``batch-<UTC time>-<6 random hex digits>``: sorts by time, unique."""
    when = (at or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"batch-{when}-{secrets.token_hex(3)}"


def mark_interrupted(conn: Connection) -> list[str]:
    """Runs still ``running`` whose process on this host is gone are marked ``interrupted``; runs of
    other hosts are left as they are (this host cannot see their processes). Returns the ids marked."""
    r = tables.batch_runs
    here = bookkeeping.this_host()
    gone = [row.id for row in conn.execute(sa.select(r.c.id, r.c.host, r.c.pid)
                                           .where(r.c.status == RUNNING).order_by(r.c.id))
            if row.host == here and row.pid is not None
            and not bookkeeping.owner_alive(int(row.pid), row.host, None)]
    if gone:
        conn.execute(r.update().where(r.c.id.in_(gone), r.c.status == RUNNING)
                     .values(status=INTERRUPTED, finished_at=datetime.now(UTC)))
    return gone


def _db_error(exc: BaseException, what: str) -> BaseException:
    """A database error as the store's error (exit 3), naming what was being done; anything else as
    it is."""
    found = store_error(exc)
    if found is None:
        return exc
    return StoreError(f"{what}: {found.message}", hint=found.hint)


def start_run(db: str | None, *, source: Path, policy_name: str, policy_version: str, backend: str,
              evaluated_at: datetime | None = None, at: datetime | None = None) -> str:
    """Record a new batch run, status ``running`` (committed: visible while it decides); returns its
    id. Refuses, before anything is written, a store that is missing or not at the newest schema."""
    digest = file_sha256(source)  # an unreadable file fails here, before the store is touched
    engine = open_store(db)
    rid = new_run_id(at)
    try:
        with engine.begin() as conn:
            mark_interrupted(conn)
            conn.execute(tables.batch_runs.insert().values(
                id=rid, status=RUNNING, started_at=at or datetime.now(UTC), policy_name=policy_name,
                policy_version=policy_version, backend=backend, evaluated_at=evaluated_at,
                source=str(source.resolve()), source_sha256=digest, tool_version=__version__,
                **bookkeeping.owner()))
    except sa.exc.DBAPIError as exc:
        raise _db_error(exc, "cannot record the batch run in the store") from exc
    finally:
        engine.dispose()
    return rid


def fail_run(db: str | None, run_id: str, error: BaseException | str, *, status: str = FAILED) -> None:
    """Mark a running run ``failed`` (or ``interrupted``) with why; its decisions were rolled back.
    Best effort: a store that cannot be reached now leaves the run ``running``, and it is seen as
    interrupted once its process is gone."""
    text = error if isinstance(error, str) else (getattr(error, "message", None)
                                                 or f"{type(error).__name__}: {error}")
    r = tables.batch_runs
    try:
        engine = open_store(db)
    except Exception:
        return
    try:
        with engine.begin() as conn:
            conn.execute(r.update().where(r.c.id == run_id, r.c.status == RUNNING).values(
                status=status, finished_at=datetime.now(UTC), error=str(text)[:4000]))
    except sa.exc.DBAPIError:
        pass
    finally:
        engine.dispose()


def _counts(values: pa.Array | pa.ChunkedArray) -> dict[str, int]:
    """Each distinct non-NULL value and how often it occurs, most frequent first (Arrow's C++ count:
    a Python loop over 5 M rows costs seconds)."""
    counts = pc.value_counts(values.drop_null()).to_pylist()
    return {c["values"]: int(c["counts"]) for c in sorted(counts, key=lambda c: (-c["counts"], c["values"]))}


def _summary(result: RunResult) -> dict[str, Any]:
    decisions = result.decisions
    by_verdict = _counts(decisions.column("verdict"))
    unknown = set(by_verdict) - set(VERDICTS)
    if unknown:  # fail closed: a verdict this code does not know is never counted as something else
        raise StoreError(f"unknown verdict(s) in the decisions: {', '.join(sorted(unknown))}",
                         hint="this is a bug in Tactful")
    rules = pc.list_flatten(pc.split_pattern(decisions.column("fired_rules"), RULE_SEPARATOR))
    by_rule = {r: n for r, n in _counts(rules).items() if r}
    return {
        "rows": decisions.num_rows,
        **{f"{v}_count": by_verdict.get(v, 0) for v in VERDICTS},
        "error_count": decisions.num_rows - decisions.column("error").null_count,
        "by_rule": by_rule,
        "features": result.path,
    }


def _chunks(decisions: pa.Table, run_id: str, chunk_rows: int) -> Any:
    """The decisions with ``run_id`` and ``row`` (1-based) first, in slices of ``chunk_rows``."""
    n = decisions.num_rows
    for start in range(0, n, chunk_rows):
        part = decisions.slice(start, chunk_rows)
        m = part.num_rows
        yield pa.Table.from_arrays(
            [pa.array([run_id] * m, type=pa.string()),
             pa.array(range(start + 1, start + m + 1), type=pa.int64()), *part.columns],
            names=list(COLUMNS))


def write_run(db: str | None, run_id: str, result: RunResult, *, chunk_rows: int = CHUNK_ROWS,
              progress: Callable[[int], None] | None = None) -> None:
    """Write the run's decisions and mark it ``finished`` with its counts, all in one transaction (see
    the module doc). ``progress`` is called with the rows of each chunk written. On any failure the
    transaction is rolled back, the run is marked ``failed`` with the error (``interrupted`` for
    Ctrl-C), and the error is raised (a database error as a :class:`StoreError`, exit 3)."""
    engine: Engine | None = None
    try:
        if result.decisions.schema != DECISIONS_SCHEMA:
            raise StoreError("the decisions do not have the columns of the decisions table",
                             hint="this is a bug in Tactful")
        summary = _summary(result)
        engine = open_store(db)
        with engine.connect() as conn:
            try:
                _write(conn, run_id, result.decisions, summary, chunk_rows, progress)
            except BaseException:
                conn.rollback()
                raise
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            fail_run(db, run_id, "interrupted (Ctrl-C) while writing its decisions", status=INTERRUPTED)
            raise
        shown = _db_error(exc, f"cannot write batch run {run_id} to the store (none of its decisions "
                               "were kept; the run is marked failed)")
        fail_run(db, run_id, shown)
        if shown is exc:
            raise
        raise shown from exc
    finally:
        if engine is not None:
            engine.dispose()


def _write(conn: Connection, run_id: str, decisions: pa.Table, summary: dict[str, Any], chunk_rows: int,
           progress: Callable[[int], None] | None) -> None:
    raw: Any = conn.connection.dbapi_connection
    table = tables.batch_decisions
    quote = conn.dialect.identifier_preparer.quote
    cols = ", ".join(quote(c) for c in COLUMNS)
    name = conn.dialect.identifier_preparer.format_table(table)
    if conn.dialect.name == "sqlite":
        # the write lock first: nobody else writes between the first chunk and the commit
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        sql = f"INSERT INTO {name} ({cols}) VALUES ({', '.join('?' * len(COLUMNS))})"
        cur = raw.cursor()
        try:
            for part in _chunks(decisions, run_id, chunk_rows):
                cur.executemany(sql, zip(*(c.to_pylist() for c in part.columns), strict=True))
                if progress is not None:
                    progress(part.num_rows)
        finally:
            cur.close()
    else:
        from pyarrow import csv

        options = csv.WriteOptions(include_header=False)  # every text quoted, NULL as nothing
        conn.exec_driver_sql("SELECT 1")  # the transaction begins here, on this connection
        cur = raw.cursor()
        try:
            for part in _chunks(decisions, run_id, chunk_rows):
                sink = io.BytesIO()
                csv.write_csv(part, sink, options)
                with cur.copy(f"COPY {name} ({cols}) FROM STDIN (FORMAT csv)") as copy:
                    copy.write(sink.getbuffer())
                if progress is not None:
                    progress(part.num_rows)
        finally:
            cur.close()
    r = tables.batch_runs
    by_rule, features = summary.pop("by_rule"), summary.pop("features")
    done = conn.execute(r.update().where(r.c.id == run_id, r.c.status == RUNNING).values(
        status=FINISHED, finished_at=datetime.now(UTC), by_rule=by_rule, features=features, **summary))
    if done.rowcount != 1:
        raise StoreError(f"batch run {run_id} is no longer running (marked interrupted or failed "
                         "meanwhile?); its decisions were not kept",
                         hint="run `tactful batch runs` to see its status, then run the batch again")
    conn.commit()


def delete_runs(db: str | None, run_ids: list[str]) -> dict[str, int]:
    """Delete runs and their decisions, all in one transaction (retention: a nightly run of 5 M
    decisions adds 5 M rows). Refuses, before deleting anything, a run that is not in the store and
    one still ``running`` (a run whose process is gone is ``interrupted`` by then and may go).
    Returns the decisions deleted per run."""
    r, d = tables.batch_runs, tables.batch_decisions
    wanted = list(dict.fromkeys(run_ids))

    def body(conn: Connection) -> dict[str, int]:
        found = {x.id: x.status
                 for x in conn.execute(sa.select(r.c.id, r.c.status).where(r.c.id.in_(wanted)))}
        missing = [i for i in wanted if i not in found]
        if missing:
            raise NotFoundError(f"batch run {missing[0]!r} is not in the store; nothing was deleted",
                                hint="`tactful batch runs` lists them")
        running = [i for i in wanted if found[i] == RUNNING]
        if running:
            raise BatchError(f"batch run {running[0]} is still running; nothing was deleted",
                             hint="wait for it to finish (or to be seen interrupted once its process "
                                  "is gone), then delete it")
        deleted: dict[str, int] = {}
        for run_id in wanted:
            deleted[run_id] = conn.execute(d.delete().where(d.c.run_id == run_id)).rowcount
            conn.execute(r.delete().where(r.c.id == run_id))
        return deleted

    engine = open_store(db)
    try:
        with engine.begin() as conn:
            mark_interrupted(conn)
            return body(conn)
    except sa.exc.DBAPIError as exc:
        raise _db_error(exc, "cannot delete the batch runs (nothing was deleted)") from exc
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- reading back


def _run(row: Any) -> BatchRun:
    return BatchRun(
        id=row.id, status=row.status, started_at=row.started_at, finished_at=row.finished_at,
        policy_name=row.policy_name, policy_version=row.policy_version, backend=row.backend,
        features=row.features, evaluated_at=row.evaluated_at, source=row.source,
        source_sha256=row.source_sha256, rows=row.rows,
        by_verdict={v: int(getattr(row, f"{v}_count") or 0) for v in VERDICTS},
        error_count=row.error_count, by_rule=dict(row.by_rule or {}), error=row.error, host=row.host,
        pid=row.pid, tool_version=row.tool_version)


def _read(db: str | None, body: Callable[[Connection], Any]) -> Any:
    engine = open_store(db)
    try:
        with engine.begin() as conn:
            mark_interrupted(conn)  # a run killed on this host says so
            return body(conn)
    except sa.exc.DBAPIError as exc:
        raise _db_error(exc, "cannot read the batch runs") from exc
    finally:
        engine.dispose()


def list_runs(db: str | None = None, *, limit: int = 50) -> list[BatchRun]:
    """The newest batch runs first."""
    r = tables.batch_runs
    runs: list[BatchRun] = _read(db, lambda conn: [_run(x) for x in conn.execute(
        sa.select(r).order_by(r.c.started_at.desc(), r.c.id.desc()).limit(limit))])
    return runs


def get_run(db: str | None, run_id: str) -> BatchRun:
    """One run by id, or ``latest`` (the newest finished run); :class:`NotFoundError` (exit 2) when
    there is none."""
    r = tables.batch_runs

    def body(conn: Connection) -> BatchRun:
        if run_id == "latest":
            query = sa.select(r).where(r.c.status == FINISHED).order_by(r.c.started_at.desc(),
                                                                         r.c.id.desc()).limit(1)
        else:
            query = sa.select(r).where(r.c.id == run_id)
        row = conn.execute(query).first()
        if row is None:
            raise NotFoundError("there is no finished batch run in the store" if run_id == "latest"
                                else f"batch run {run_id!r} is not in the store",
                                hint="`tactful batch runs` lists them")
        return _run(row)

    result: BatchRun = _read(db, body)
    return result


def read_decisions(db: str | None, run_id: str, *, customer_id: str | None = None,
                   limit: int | None = None) -> pa.Table:
    """The decisions of a run in row order (optionally of one customer, at most ``limit``): ``row``
    then the columns of :data:`tactful.batch.run.DECISIONS_SCHEMA`."""
    d = tables.batch_decisions
    query = sa.select(*(d.c[c] for c in COLUMNS[1:])).where(d.c.run_id == run_id)
    if customer_id is not None:
        query = query.where(d.c.customer_id == customer_id)
    query = query.order_by(d.c.row)
    if limit is not None:
        query = query.limit(limit)

    def body(conn: Connection) -> list[Any]:
        return [tuple(x) for x in conn.execute(query)]

    rows: list[Any] = _read(db, body)
    schema = pa.schema([("row", pa.int64()), *DECISIONS_SCHEMA])
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    return pa.table([pa.array(list(c), type=f.type) for c, f in zip(columns, schema, strict=True)],
                    schema=schema)


def count_decisions(db: str | None, run_id: str, *, customer_id: str | None = None) -> dict[str, int]:
    """Decisions of a run (optionally of one customer) by verdict."""
    d = tables.batch_decisions
    query = sa.select(d.c.verdict, sa.func.count()).where(d.c.run_id == run_id)
    if customer_id is not None:
        query = query.where(d.c.customer_id == customer_id)
    query = query.group_by(d.c.verdict)
    counts: dict[str, int] = _read(db, lambda conn: {v: int(n) for v, n in conn.execute(query)})
    return counts
