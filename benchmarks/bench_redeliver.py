"""Benchmark: deliver a finished benchmark campaign run's messages again (not a test; issue 10 §7).

After ``benchmarks/bench_campaign.py`` ran a campaign on a store made for the benchmark, this sets
that run's outbox messages back to pending, removes the past touches their delivery added, and
delivers them again into a new directory with the current delivery code and the campaign's file
adapters (print-shop CSV, SMS CSV, .eml files), printing wall and CPU time per message: the delivery
step of a million-customer run measured on its real outbox, without running the campaign again.

    .venv/bin/python benchmarks/bench_redeliver.py --db sqlite:////tmp/s5/big.db --out /tmp/s5/redeliver

**It rewrites the store's outbox and touches**: point it only at a store made for the benchmark. The
store must hold exactly one campaign run; ``--out`` must not exist.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from tactful.delivery import EmlDirectory, PrintShopCsv, SmsCsv, deliver
from tactful.store import tables
from tactful.store.db import open_store


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="a benchmark store holding one finished campaign run")
    parser.add_argument("--out", required=True, type=Path, help="a new directory for the files")
    args = parser.parse_args()
    if args.out.exists():
        print(f"{args.out} exists; give a new directory", file=sys.stderr)
        return 2
    engine = open_store(args.db)
    try:
        with engine.begin() as conn:
            r, o = tables.campaign_runs, tables.outbox
            runs = conn.execute(sa.select(r.c.id, r.c.campaign, r.c.period, r.c.status)).all()
            if len(runs) != 1 or runs[0].status != "finished":
                print(f"expected one finished campaign run in the store, found {len(runs)}", file=sys.stderr)
                return 2
            run = runs[0]
            n = conn.execute(o.update().where(o.c.run_id == run.id).values(
                status="pending", sent_at=None, adapter=None, attempts=0, last_error=None)).rowcount
            t = conn.execute(tables.touches.delete().where(tables.touches.c.id.like("outbox-%"))).rowcount
        print(f"run {run.id}: {n:,} messages set back to pending, {t:,} past touches removed")
        c0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        report = deliver(engine, [PrintShopCsv(args.out), SmsCsv(args.out), EmlDirectory(args.out / "email")],
                         campaign=run.campaign, period=run.period, show_progress=True)
        wall, c1 = time.perf_counter() - w0, resource.getrusage(resource.RUSAGE_SELF)
    finally:
        engine.dispose()
    user, system = c1.ru_utime - c0.ru_utime, c1.ru_stime - c0.ru_stime
    per = (user + system) / max(1, report.total) * 1000
    print(f"delivered {dict(report.counts)} in {wall:.1f} s wall, {user + system:.1f} s CPU "
          f"(user {user:.1f}, system {system:.1f}), {per:.2f} ms CPU per message; "
          f"peak RSS {c1.ru_maxrss / 1024:,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
