"""Benchmark: recommendations on a store read in place (not a test).

Time-split holdout: train on every basket before the last --weeks weeks, test on the products each
customer bought for the first time in those weeks. Prints hit-rate@10 and NDCG@10 of co-occurrence with
the popularity fallback and of popularity alone, for each damping given, with the time of each step.

    .venv/bin/tactful sample --db sqlite:///sample.db            # The Complete Journey world
    .venv/bin/python benchmarks/bench_recommend.py --db sqlite:///sample.db [--weeks 4] [--damping 0 0.25 0.5]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from tactful import recommend as rec
from tactful.batch.store import attach_store, connect


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, help="the store (e.g. the sample world)")
    ap.add_argument("--weeks", type=int, default=4)
    ap.add_argument("--damping", type=float, nargs="+", default=[rec.Settings().damping])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}; "
          f"load average {os.getloadavg()[0]:.1f}")
    con = connect(threads=args.threads)
    store = attach_store(con, args.db)
    t0 = time.perf_counter()
    train, truth = rec.split(store.table("orders"), store.table("order_lines"), weeks=args.weeks)
    lines = train.count().to_pyarrow().as_py()
    held = truth.count().to_pyarrow().as_py()
    print(f"split (last {args.weeks} weeks held out): {lines:,} training basket lines, "
          f"{held:,} held-out first purchases, {time.perf_counter() - t0:.1f} s")
    for damping in args.damping:
        settings = rec.Settings(damping=damping)
        t0 = time.perf_counter()
        metrics = rec.score(rec.recommend(train, settings), truth, settings.k,
                            f"co-occurrence + popularity fallback (damping {damping})")
        print(f"{metrics}  [{time.perf_counter() - t0:.1f} s]")
    t0 = time.perf_counter()
    popular = rec.recommend(train, rec.Settings(), use_co_occurrence=False)
    metrics = rec.score(popular, truth, 10, "popularity")
    print(f"{metrics}  [{time.perf_counter() - t0:.1f} s]")


if __name__ == "__main__":
    main()
