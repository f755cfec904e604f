"""Benchmark: recommendations on a store read in place (not a test).

Time-split holdout: train on every basket before the last --weeks weeks, test on the products each
customer bought for the first time in those weeks. Prints hit-rate@10 and NDCG@10 of co-occurrence with
the popularity fallback and of popularity alone, for each damping given, with the time of each step.
``--exclude-sensitive`` measures what a campaign runs: purchases of products the default pack deems
sensitive vote for nothing and such products are never popular (tactful.recommend, ``exclude``).

    .venv/bin/tactful sample --db sqlite:///sample.db            # The Complete Journey world
    .venv/bin/python benchmarks/bench_recommend.py --db sqlite:///sample.db [--weeks 4] [--damping 0 0.25 0.5]
        [--exclude-sensitive]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from tactful import recommend as rec
from tactful.batch.store import attach_store, connect
from tactful.policy import load_pack


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, help="the store (e.g. the sample world)")
    ap.add_argument("--weeks", type=int, default=4)
    ap.add_argument("--damping", type=float, nargs="+", default=[rec.Settings().damping])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--exclude-sensitive", action="store_true",
                    help="leave sensitive purchases out of the votes and the fallback, as a campaign does")
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
    exclude = None
    if args.exclude_sensitive:
        is_sensitive = load_pack(None).settings.is_sensitive
        exclude = rec.sensitive_products(store.table("products"), is_sensitive).cache()
        tainted = rec.clean(train, exclude).count().to_pyarrow().as_py()
        print(f"sensitive products left out: {exclude.count().to_pyarrow().as_py():,}; "
              f"training lines in orders without one: {tainted:,}")
    for damping in args.damping:
        settings = rec.Settings(damping=damping)
        t0 = time.perf_counter()
        metrics = rec.score(rec.recommend(train, settings, exclude=exclude), truth, settings.k,
                            f"co-occurrence + popularity fallback (damping {damping})")
        print(f"{metrics}  [{time.perf_counter() - t0:.1f} s]")
    t0 = time.perf_counter()
    popular = rec.recommend(train, rec.Settings(), use_co_occurrence=False, exclude=exclude)
    metrics = rec.score(popular, truth, 10, "popularity")
    print(f"{metrics}  [{time.perf_counter() - t0:.1f} s]")


if __name__ == "__main__":
    main()
