"""Benchmark: writing a batch run's decisions back to the store (``batch decide --to-store``; not a
test; issue 9 §3).

N decisions shaped like a real run's (5 candidate touches per customer, the verdict mix, fired rule
lists and failed rules of the default pack, a SHA-256 input hash per row, an error on 1 row in 1,000)
are written by :func:`tactful.batch.writeback.write_run` to a fresh store: SQLite (executemany in
chunks in one transaction) and/or PostgreSQL (COPY csv in chunks in one transaction). Prints rows/s,
the time to the commit, the load average before and after, and the store's size.

    .venv/bin/python benchmarks/bench_writeback.py --rows 5000000 --sqlite /tmp/wb-bench \\
        --postgres "$TACTFUL_TEST_PG_URL"

``--postgres`` takes a server URL; a fresh database is created on it (as the tests do).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import time
import uuid
from pathlib import Path

import pyarrow as pa
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tactful.batch import writeback
from tactful.batch.run import DECISIONS_SCHEMA, RunResult
from tactful.store import db

#: (verdict, max depth, named, fired rules) in the proportions of a default-pack run over the sample
MIX = [
    ("allow", "item", False, ""), ("allow", "item", False, ""), ("allow", "none", False, ""),
    ("soften", "category", True, "openness-depth-cap"),
    ("ask", "none", False, "birthday-needs-expectation"),
    ("block", "none", False, "marketing-needs-opt-in"),
    ("block", "none", False, "shown-items-reveal-inference,sensitive-data-on-shared-channel"),
    ("block", "none", False, "consent-refused,marketing-needs-opt-in,partner-collected-data"),
]


def decisions(n: int) -> pa.Table:
    """``n`` decisions shaped like a real run's (see the module doc)."""
    idx = range(n)
    mix = [MIX[(i * 7 + i // 5) % len(MIX)] for i in idx]
    err = [i % 1000 == 999 for i in idx]
    return pa.table({
        "customer_id": [f"c{i // 5:08d}" for i in idx],
        "touch_id": [f"touch-{i % 5}" for i in idx],
        "verdict": ["block" if e else m[0] for m, e in zip(mix, err, strict=True)],
        "max_depth": ["none" if e else m[1] for m, e in zip(mix, err, strict=True)],
        "named": [False if e else m[2] for m, e in zip(mix, err, strict=True)],
        "fired_rules": ["evaluation-error" if e else m[3] for m, e in zip(mix, err, strict=True)],
        "failed_rules": ["" for _ in idx],
        "policy_name": ["default"] * n, "policy_version": ["1"] * n,
        "input_hash": [None if e else hashlib.sha256(i.to_bytes(8, "little")).hexdigest()
                       for i, e in zip(idx, err, strict=True)],
        "error": [f"row {i + 1}: customer 'c{i // 5:08d}' is not in the store" if e else None
                  for i, e in zip(idx, err, strict=True)],
    }, schema=DECISIONS_SCHEMA)


def bench(url: str, table: pa.Table, source: Path) -> None:
    db.init_store(url).dispose()
    run_id = writeback.start_run(url, source=source, policy_name="default", policy_version="1",
                                 backend="duckdb")
    load0 = os.getloadavg()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn()) as bar:
        task = bar.add_task(f"writing to {db.redact_url(url)}", total=table.num_rows)
        t0 = time.perf_counter()
        writeback.write_run(url, run_id, RunResult(table, "duckdb"),
                            progress=lambda k: bar.advance(task, k))
        seconds = time.perf_counter() - t0
    load1 = os.getloadavg()
    run = writeback.get_run(url, run_id)
    assert run.status == "finished" and run.rows == table.num_rows
    print(f"{db.redact_url(url)}: {table.num_rows:,} decisions in {seconds:.1f} s = "
          f"{table.num_rows / seconds:,.0f} rows/s (one transaction, chunks of {writeback.CHUNK_ROWS:,}); "
          f"load average {load0[0]:.1f} before, {load1[0]:.1f} after")
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        print(f"  store file(s): {size / 2**20:,.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--sqlite", type=Path, help="a directory for a fresh SQLite store")
    parser.add_argument("--postgres", help="a PostgreSQL server URL (a fresh database is created)")
    args = parser.parse_args()
    print(f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    t0 = time.perf_counter()
    table = decisions(args.rows)
    print(f"{args.rows:,} synthetic decisions built in {time.perf_counter() - t0:.1f} s")
    if args.sqlite is not None:
        args.sqlite.mkdir(parents=True, exist_ok=True)
        source = args.sqlite / "candidates.csv"
        source.write_text("customer_id,touch_id\n", encoding="utf-8")
        store = args.sqlite / f"wb-{uuid.uuid4().hex[:8]}.db"
        bench(f"sqlite:///{store}", table, source)
    if args.postgres:
        from tactful.testing import postgres

        directory = Path(os.environ.get("TMPDIR", "/tmp"))
        source = directory / f"wb-candidates-{uuid.uuid4().hex[:8]}.csv"
        source.write_text("customer_id,touch_id\n", encoding="utf-8")
        url = postgres.create_database(args.postgres, f"wb_{uuid.uuid4().hex[:8]}")
        bench(url, table, source)
        source.unlink()


if __name__ == "__main__":
    main()
