"""Import throughput and memory: generate a large CSV, import it into a temporary SQLite store, print
rows/s and the importing process's peak RSS.

    .venv/bin/python benchmarks/bench_import.py                  # ~200 MB of order lines
    .venv/bin/python benchmarks/bench_import.py --kind customers --mb 50
    .venv/bin/python benchmarks/bench_import.py --mb 1000 --keep /tmp/big   # 1 GB, keep the files

One row in ``--bad-every`` (default 1000) is broken (an unknown product or an invalid date), so the
quarantine path is exercised too. The import runs in a child process so that its peak RSS
(``ru_maxrss``) is its own, not the generator's. Figures, never assertions (see docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_CUSTOMERS = 20_000
N_PRODUCTS = 5_000


def _write_until(path: Path, header: str, target_bytes: int, make_row: object) -> int:
    assert callable(make_row)
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write(header + "\n")
        written = len(header) + 1
        chunk: list[str] = []
        while written < target_bytes:
            line = make_row(rows) + "\n"
            chunk.append(line)
            written += len(line)
            rows += 1
            if len(chunk) >= 10_000:
                f.write("".join(chunk))
                chunk.clear()
        f.write("".join(chunk))
    return rows


def generate(workdir: Path, kind: str, megabytes: float, bad_every: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    target = int(megabytes * 1024 * 1024)
    first_names = ["Ann", "Bob", "Cy", "Dee", "Eli", "Fay", "Gus", "Hal", "Ivy", "Jo"]
    last_names = ["Lee", "Park", "Moss", "Diaz", "Novak", "Okafor", "Silva", "Young"]
    openness = ["closed", "reserved", "balanced", "open", ""]

    def customer(i: int) -> str:
        date = f"19{rng.randint(40, 99)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        if bad_every and i % bad_every == bad_every - 1:
            date = "1970-02-31"
        return (
            f"c{i},h{i % 5000},{rng.choice(first_names)},{rng.choice(last_names)},{date},,"
            f"{rng.choice(openness)},false"
        )

    files: dict[str, object] = {}
    hh = workdir / "households.csv"
    with hh.open("w") as f:
        f.write("id,size\n" + "".join(f"h{i},{1 + i % 4}\n" for i in range(5000)))
    if kind == "customers":
        path = workdir / "customers.csv"
        header = "id,household_id,first_name,last_name,birth_date,age_range,openness,deceased"
        rows = _write_until(path, header, target, customer)
        files.update(big=path, rows=rows, prerequisites=[("households", hh)])
        return files

    cust = workdir / "customers.csv"
    with cust.open("w") as f:
        f.write("id,household_id,first_name\n" + "".join(f"c{i},h{i % 5000},X\n" for i in range(N_CUSTOMERS)))
    prod = workdir / "products.csv"
    with prod.open("w") as f:
        f.write(
            "id,name,department,category\n"
            + "".join(f"p{i},Product {i},GROCERY,MISC\n" for i in range(N_PRODUCTS))
        )
    state = {"order": 0, "line": 0, "lines": 0}

    def order_line(i: int) -> str:
        if state["line"] >= state["lines"]:
            state["order"] += 1
            state["line"] = 0
            state["lines"] = rng.randint(1, 8)
        state["line"] += 1
        o = state["order"]
        product = f"p{rng.randrange(N_PRODUCTS)}"
        when = f"2024-{1 + o % 12:02d}-{1 + o % 28:02d}T{o % 24:02d}:15:00Z"
        if bad_every and i % bad_every == bad_every - 1:
            product = "p-unknown" if i % 2 else product
            when = when if i % 2 else "2024-13-01"
        return (
            f"o{o},c{o % N_CUSTOMERS},{when},pos,checkout,s{o % 40},{rng.randint(100, 9999) / 100},"
            f"{state['line']},{product},{rng.randint(1, 3)},{rng.randint(50, 2000) / 100}"
        )

    path = workdir / "orders.csv"
    rows = _write_until(
        path,
        "order_id,customer_id,at,source,context,store_id,total,line_no,product_id,quantity,amount",
        target,
        order_line,
    )
    files.update(
        big=path, rows=rows, prerequisites=[("households", hh), ("customers", cust), ("products", prod)]
    )
    return files


def child(db_url: str, kind: str, path: str, batch_size: int) -> None:
    """Run in the child process: import and print the figures as JSON."""
    from tactful.ingest import run_import
    from tactful.store.db import open_store

    engine = open_store(db_url)
    started = time.perf_counter()
    result = run_import(engine, kind, Path(path), batch_size=batch_size)
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "rows_read": result.rows_read,
                "rows_imported": result.rows_imported,
                "rows_quarantined": result.rows_quarantined,
                "seconds": seconds,
                "peak_rss_mb": peak_kb / 1024,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kind", choices=["orders", "customers"], default="orders")
    parser.add_argument("--mb", type=float, default=200.0, help="size of the generated CSV in MB")
    parser.add_argument("--bad-every", type=int, default=1000, help="one broken row in N (0: none)")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--keep", type=Path, default=None, help="keep the files and store in this directory")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", nargs=3, metavar=("DB", "KIND", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2], args.batch_size)
        return

    from tactful.ingest import run_import
    from tactful.store.db import init_store

    tmp = None
    if args.keep:
        workdir = args.keep
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="tactful-bench-")
        workdir = Path(tmp.name)
    print(
        f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print("command: " + " ".join([os.path.relpath(sys.executable), *sys.argv]))
    try:
        t0 = time.perf_counter()
        files = generate(workdir, args.kind, args.mb, args.bad_every, args.seed)
        big = files["big"]
        assert isinstance(big, Path)
        size_mb = big.stat().st_size / 1024 / 1024
        print(
            f"generated {big.name}: {size_mb:,.0f} MB, {files['rows']:,} rows "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        db_url = f"sqlite:///{workdir}/bench.db"
        engine = init_store(db_url)
        prerequisites = files["prerequisites"]
        assert isinstance(prerequisites, list)
        for kind, path in prerequisites:
            run_import(engine, kind, path)
        engine.dispose()
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--batch-size",
                str(args.batch_size),
                "--child",
                db_url,
                args.kind,
                str(big),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        rate = figures["rows_read"] / figures["seconds"]
        print(
            f"imported {args.kind}: {figures['rows_read']:,} rows read, "
            f"{figures['rows_imported']:,} imported, {figures['rows_quarantined']:,} quarantined"
        )
        print(
            f"time {figures['seconds']:.1f} s  ->  {rate:,.0f} rows/s, "
            f"{size_mb / figures['seconds']:.1f} MB/s"
        )
        print(f"peak RSS of the importing process: {figures['peak_rss_mb']:.0f} MB (file {size_mb:,.0f} MB)")
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
