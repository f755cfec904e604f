"""Sample-world figures: generation rate and end-to-end write of a synthetic world.

    .venv/bin/python benchmarks/bench_sample.py                 # 1,000,000 customers into a temp SQLite file
    .venv/bin/python benchmarks/bench_sample.py -n 100000 --db postgresql+psycopg://user@host/db
    .venv/bin/python benchmarks/bench_sample.py --generate-only --jobs 2
    .venv/bin/python benchmarks/bench_sample.py --completejourney   # the default world, timed

Prints figures; asserts nothing about time (see docs/performance.md for measured numbers).
Generation is measured on up to ``--generate-n`` customers (default 400,000) without a store, both in
wall-clock and in CPU seconds of this process (CPU time is the honest figure on a shared machine).
On PostgreSQL "indexing" is the end of the one-transaction load: secondary indexes re-created, foreign
keys re-added (each validated in one pass), ANALYZE, commit.
Peak RSS is the process's high-water mark (``ru_maxrss``), plus that of generator processes with --jobs.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from tactful.sample import synthetic
from tactful.sample.build import AS_OF, build_sample, synthetic_chunks
from tactful.sensitivity import load_mapping


def _rss_mib() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def bench_generation(n: int, seed: int, jobs: int) -> None:
    mk = synthetic.market(load_mapping())
    synthetic.generate_chunk(seed, 10**6, 0, 1000, AS_OF, mk)  # warm-up: word lists, imports
    rows = 0
    customers = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for size, chunks in synthetic_chunks(n, seed, mk, jobs=jobs):
        customers += size
        rows += sum(len(c) for c in chunks)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(
        f"generation: {customers:,} customers, {rows:,} rows in {wall:.2f} s wall ({customers / wall:,.0f} "
        f"customers/s, {rows / wall:,.0f} rows/s); {cpu:.2f} s CPU in this process "
        f"({customers / cpu:,.0f} customers/s per CPU second); jobs={jobs}"
    )


def bench_write(n: int | None, seed: int, db: str | None, jobs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="tactful-bench-") as tmp:
        url = db or f"sqlite:///{Path(tmp) / 'bench.db'}"
        last = [time.perf_counter()]

        def progress(phase: str, done: int, total: int) -> None:
            now = time.perf_counter()
            if now - last[0] >= 30:
                print(f"  {phase}: {done:,}/{total:,}", file=sys.stderr, flush=True)
                last[0] = now

        t0 = time.perf_counter()
        result = build_sample(url, seed=seed, synthetic_n=n, progress=progress, jobs=jobs)
        wall = time.perf_counter() - t0
        own, children = _rss_mib()
        size = ""
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            if path.exists():
                size = f", database file {path.stat().st_size / 2**30:.2f} GiB"
        print(
            f"write ({result.world}, {url.split(':', 1)[0]}): {result.customers:,} customers, "
            f"{result.total_rows:,} rows in {wall:.1f} s ({result.total_rows / wall:,.0f} rows/s; generation "
            f"{result.generate_seconds:.1f} s, writing {result.write_seconds - result.index_seconds:.1f} s, "
            f"indexing {result.index_seconds:.1f} s){size}"
        )
        print("  rows: " + ", ".join(f"{k} {v:,}" for k, v in result.rows.items()))
        print(f"  peak RSS: {own:,.0f} MiB (generator processes: {children:,.0f} MiB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--customers", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--db", default=None, help="store URL (default: a temporary SQLite file)")
    ap.add_argument("--jobs", type=int, default=0, help="generator processes (0: generate in this process)")
    ap.add_argument("--generate-n", type=int, default=400_000)
    ap.add_argument("--generate-only", action="store_true")
    ap.add_argument("--write-only", action="store_true")
    ap.add_argument("--completejourney", action="store_true", help="time the Complete Journey world instead")
    args = ap.parse_args()
    if args.completejourney:
        bench_write(None, args.seed, args.db, 0)
        return
    if not args.write_only:
        bench_generation(min(args.customers, args.generate_n), args.seed, args.jobs)
    if not args.generate_only:
        bench_write(args.customers, args.seed, args.db, args.jobs)


if __name__ == "__main__":
    main()
