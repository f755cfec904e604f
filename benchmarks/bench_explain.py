"""Benchmark: what filling the reasons in plain words costs the batch evaluator (not a test).

``tactful campaign run`` decides with ``decide_candidates(..., explain=True)`` so that its decision log
holds each fired rule's message filled from the customer's facts. This decides the same candidates
file (every customer of the store x the channels given, showing the products that imply the most data
categories, as the demo campaign's touches do) with and without ``explain``, alternating, and prints
the wall time of each and the share of the reasons step.

    .venv/bin/python benchmarks/bench_explain.py --db sqlite:///tactful.db [--limit 1000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa
from pyarrow import parquet

from tactful.batch.run import RunScenarioBuilder, decide_candidates
from tactful.policy import load_pack
from tactful.store import tables
from tactful.store.db import open_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="a store with the sample world")
    parser.add_argument("--limit", type=int, default=1000, help="customers (default 1000)")
    parser.add_argument("--channels", nargs="+", default=["postcard", "email"])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--now", default="2026-11-01T09:00:00+00:00")
    args = parser.parse_args()
    now = datetime.fromisoformat(args.now).astimezone(UTC)
    engine = open_store(args.db)
    try:
        with engine.connect() as conn:
            customers = list(conn.execute(sa.select(tables.customers.c.id).order_by(tables.customers.c.id)
                                          .limit(args.limit)).scalars())
            products = conn.execute(sa.select(tables.products.c.id, tables.products.c.implies)).all()
    finally:
        engine.dispose()
    revealing = [p.id for p in sorted(products, key=lambda p: -len(p.implies or []))[:3]]
    kinds = {"postcard": "postal", "postal_mail": "postal", "email": "email", "sms": "phone"}
    pack = load_pack(None)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "candidates.parquet"
        parquet.write_table(pa.Table.from_pylist([
            {"customer_id": cid, "touch_id": f"t-{ch}", "kind": "recommendation", "purpose": "marketing",
             "channel": ch, "to": None, "to_kind": kinds[ch], "sender_implies": None,
             "uses": json.dumps([{"kind": "purchase"}]), "shows_items": ";".join(revealing),
             "depth": "item", "named": "true"} for cid in customers for ch in args.channels]), path)
        rows = len(customers) * len(args.channels)
        builder = RunScenarioBuilder(pack)
        decide_candidates(path, pack, db=args.db, now=now, builder=builder)  # warm: orders read once
        times: dict[bool, list[float]] = {False: [], True: []}
        fired = 0
        for _ in range(args.repeat):
            for explain in (False, True):
                t0 = time.perf_counter()
                result = decide_candidates(path, pack, db=args.db, now=now, builder=builder, explain=explain)
                times[explain].append(time.perf_counter() - t0)
                if explain:
                    fired = sum(len(r or ()) for r in result.reasons or [])
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}")
    print(f"{rows:,} candidates ({len(customers):,} customers x {', '.join(args.channels)}); "
          f"{fired:,} reasons filled")
    for explain in (False, True):
        best = min(times[explain])
        print(f"explain={explain!s:5}: best {best:.2f} s ({rows / best:,.0f} candidates/s); "
              f"all {', '.join(f'{t:.2f}' for t in times[explain])}")
    extra = min(times[True]) - min(times[False])
    print(f"reasons in plain words: +{extra:.2f} s ({extra / min(times[False]) * 100:+.1f} %), "
          f"{extra / max(fired, 1) * 1e6:.0f} us per reason")


if __name__ == "__main__":
    main()
