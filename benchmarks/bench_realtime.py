"""Benchmark: real-time decisions from the store — store read + decide for random customers (not a test).

For a sample of random customers of a store (the 1 M-customer synthetic world: ``tactful sample
--synthetic 1000000``), measures with ``time.perf_counter_ns`` on one open connection, as a server
would run it:

* **read**: the store queries and building the scenario document (tactful.realtime),
* **validate**: validating it into the Scenario model (the same validation as a scenario file),
* **decide**: evaluating it with the default pack,
* **total**: the three together,

and prints p50 / p90 / p99 / max / mean per step, the queries per decision, what a scenario held on
average, the query plans (SQLite), and the machine. The touch (default: an email recommendation that
uses the purchases of the last 90 days and shows two products) can be replaced with ``--touch FILE``.

    .venv/bin/python benchmarks/bench_realtime.py --db sqlite:////tmp/big.db [--customers 5000]
    .venv/bin/python benchmarks/bench_realtime.py --db postgresql+psycopg://postgres@127.0.0.1:PORT/big
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from rich.progress import Progress

from tactful.policy import evaluate, load_pack
from tactful.realtime import StoreScenarioBuilder, TouchFile, load_touch_file, parse_touch, to_scenario
from tactful.sample import PERSONA_IDS
from tactful.store import tables
from tactful.store.db import open_store, redact_url

DEFAULT_TOUCH: dict[str, Any] = {
    "now": "2026-11-01T00:00:00Z",  # the sample world's reference date
    "touch": {
        "kind": "recommendation",
        "purpose": "marketing.communications.email",
        "channel": "email",
        "to": {"kind": "email"},
        "uses": [{"kind": "purchase", "within_days": 90}],
        "shows_items": ["1082185", "995242"],  # bananas and milk, the most bought products
        "depth": "item",
        "named": True,
    },
}


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def _row(name: str, ns: list[int]) -> str:
    ms = [v / 1e6 for v in ns]
    return (f"{name:<9} p50 {_pct(ms, 50):7.3f}  p90 {_pct(ms, 90):7.3f}  p99 {_pct(ms, 99):7.3f}  "
            f"max {max(ms):8.3f}  mean {statistics.fmean(ms):7.3f}  (ms)")


def _customer_ids(conn: sa.Connection, n: int, rng: random.Random) -> list[str]:
    """``n`` random customers: synthetic ids are 10000000 + i; the personas are mixed in."""
    total = int(conn.execute(sa.select(sa.func.count()).select_from(tables.customers)).scalar_one())
    synthetic = total - len(PERSONA_IDS) - 1  # persona-teen-father is a customer without a persona row
    ids = [str(10_000_000 + rng.randrange(max(1, synthetic))) for _ in range(n)]
    ids[:: max(1, n // 50)] = [rng.choice(list(PERSONA_IDS.values())) for _ in ids[:: max(1, n // 50)]]
    return ids


def _plans(conn: sa.Connection, builder: StoreScenarioBuilder) -> list[str]:
    """SQLite's query plan of each per-customer statement (the indexes they use)."""
    if conn.dialect.name != "sqlite":
        return []
    prepared = builder.orders_query("10000001", datetime(2026, 8, 3, tzinfo=UTC), False, ["10000001001"])
    assert prepared is not None
    values = {"cid": "10000001", "since": datetime(2026, 8, 3), "now": datetime(2026, 11, 1)}
    statements = {"profile": builder._q_profile.params(**values)}
    statements["orders"] = prepared[0].params(**prepared[1])
    out = []
    for name, stmt in statements.items():
        compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}",
                                    tuple(None for _ in compiled.positiontup or ())).all()
        out.append(f"{name:<9} " + "; ".join(str(r[-1]) for r in rows))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True, help="the store URL (a synthetic sample world)")
    ap.add_argument("--customers", type=int, default=5000, help="decisions to measure")
    ap.add_argument("--warmup", type=int, default=200, help="decisions before measuring")
    ap.add_argument("--touch", type=Path, help="a touch file (default: an email recommendation)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    console = Console()
    pack = load_pack(None)
    spec: TouchFile = load_touch_file(args.touch) if args.touch else parse_touch(DEFAULT_TOUCH)
    builder = StoreScenarioBuilder(pack)
    engine = open_store(args.db)
    rng = random.Random(args.seed)
    queries = 0

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _count(*_a: Any) -> None:
        nonlocal queries
        queries += 1

    read: list[int] = []
    valid: list[int] = []
    decide: list[int] = []
    total: list[int] = []
    cpu: list[int] = []
    facts = orders = 0
    verdicts: dict[str, int] = {}
    with engine.connect() as conn:
        ids = _customer_ids(conn, args.customers + args.warmup, rng)
        plans = _plans(conn, builder)
        queries = 0
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("deciding", total=len(ids))
            for i, cid in enumerate(ids):
                c0 = time.thread_time_ns()
                t0 = time.perf_counter_ns()
                doc = builder.document(conn, cid, spec)
                t1 = time.perf_counter_ns()
                scenario = to_scenario(doc, cid)
                t2 = time.perf_counter_ns()
                decision = evaluate(scenario, pack)
                t3 = time.perf_counter_ns()
                c3 = time.thread_time_ns()
                if i == args.warmup - 1:
                    queries = 0
                if i >= args.warmup:
                    read.append(t1 - t0)
                    valid.append(t2 - t1)
                    decide.append(t3 - t2)
                    total.append(t3 - t0)
                    cpu.append(c3 - c0)
                    facts += len(scenario.facts)
                    orders += len(scenario.touch.uses)
                    verdicts[decision.verdict.value] = verdicts.get(decision.verdict.value, 0) + 1
                    if any(r.rule == "evaluation-error" for r in decision.reasons):
                        raise SystemExit(f"evaluation error for customer {cid}: {decision.reasons}")
                progress.advance(task)
    engine.dispose()
    n = len(total)
    print(f"store: {redact_url(engine.url)} ({engine.dialect.name}); {n} random customers after "
          f"{args.warmup} warm-up decisions; touch: {args.touch or 'built-in email recommendation'}")
    print(_row("read", read))
    print(_row("validate", valid))
    print(_row("decide", decide))
    print(_row("total", total))
    print(_row("total CPU", cpu) + "  this thread's CPU time: what the machine's load cannot inflate")
    print(f"queries per decision: {queries / n:.2f}; per scenario on average {facts / n:.1f} facts, "
          f"{orders / n:.1f} used; verdicts: {dict(sorted(verdicts.items()))}")
    for line in plans:
        print(f"plan {line}")
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {sys.version.split()[0]}, "
          f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


if __name__ == "__main__":
    main()
