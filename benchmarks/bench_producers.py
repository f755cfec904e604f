"""The Ibis feature frame of a store: how long it takes, and whether it agrees with the Python path.

    .venv/bin/tactful sample --db sqlite:////tmp/sample.db          # the sample world, once
    .venv/bin/python benchmarks/bench_producers.py --db sqlite:////tmp/sample.db -n 300
    .venv/bin/python benchmarks/bench_producers.py --db sqlite:////tmp/sample.db -n 300 --no-python

Candidates: the first N customers (by id) x the touch files of docs/examples/touches plus four touches
that reach inferences, health facts, birthdays and an advisor conversation. Prints the time of the
Ibis frame (`tactful.batch.producers.feature_frame`, DuckDB over the store read in place: the
product labels, the materialized pool of facts, the frame) and, unless --no-python, of the Python
reference (a scenario from the store and `derive` per candidate) and every cell where they disagree.
Asserts nothing about time; figures go to docs/performance.md with the machine's load.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.progress import track

from tactful.batch.producers import candidate_row, candidates_table, feature_frame
from tactful.batch.store import attach_store, connect
from tactful.errors import TactfulError
from tactful.features import FEATURES, derive
from tactful.policy import load_pack
from tactful.realtime import StoreScenarioBuilder, TouchFile, load_touch_file, parse_touch
from tactful.store import db

NOW = "2026-11-01T00:00:00Z"
EXTRA: list[dict[str, Any]] = [
    {"kind": "offer", "purpose": "marketing", "channel": "email", "to": {"kind": "email"},
     "uses": [{"kind": "purchase", "within_days": 30}], "depth": "item"},
    {"kind": "recommendation", "purpose": "personalize", "channel": "app",
     "uses": [{"origin": "inferred"}, {"category": "user.health_and_medical"}], "depth": "category"},
    {"kind": "greeting", "purpose": "marketing", "channel": "web",
     "uses": [{"category": "user.demographic.date_of_birth"}], "named": True},
    {"kind": "advisor_prompt", "purpose": "essential.service", "channel": "advisor",
     "trigger": "customer_request", "shows": [{"kind": "attribute"}, {"kind": "purchase", "newest": 1}]},
]


def touches() -> list[TouchFile]:
    here = Path(__file__).resolve().parent.parent / "docs" / "examples" / "touches"
    files = [load_touch_file(p) for p in sorted(here.glob("*.yaml"))]
    return files + [parse_touch({"touch": t, "now": NOW}) for t in EXTRA]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True, help="store URL (SQLite or PostgreSQL)")
    ap.add_argument("-n", type=int, default=300, help="customers (the first N by id)")
    ap.add_argument("--threads", type=int, default=None, help="DuckDB threads")
    ap.add_argument("--no-python", action="store_true", help="skip the Python reference")
    args = ap.parse_args()
    pack = load_pack()
    tfs = touches()
    print(f"load average {os.getloadavg()[0]:.1f} (2-core machine)")

    attached = attach_store(connect(threads=args.threads), args.db)
    ids = (attached.table("customers").select("id").order_by("id").limit(args.n)
           .to_pyarrow().column("id").to_pylist())
    rows = [candidate_row(i, cid, tf.touch, tf.now) for i, (cid, tf) in
            enumerate((c, t) for c in ids for t in tfs)]
    t0, c0 = time.perf_counter(), time.process_time()
    frame = feature_frame(candidates_table(rows), attached, pack.settings).to_pyarrow()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"Ibis frame: {len(rows):,} candidates ({len(ids):,} customers x {len(tfs)} touches), "
          f"{frame.num_columns - 2} features: {wall:.1f} s wall, {cpu:.1f} s CPU, peak RSS {rss:.0f} MiB")
    if args.no_python:
        return

    got = {r["row"]: r for r in frame.to_pylist()}
    builder = StoreScenarioBuilder(pack)
    engine = db.open_store(args.db)
    wrong: Counter[str] = Counter()
    example: dict[str, Any] = {}
    refused = 0
    t0 = time.perf_counter()
    try:
        with engine.connect() as conn:
            for row in track(rows, description="Python reference"):
                tf = tfs[row["row"] % len(tfs)]
                try:
                    scenario = builder.scenario(conn, row["customer_id"], tf, tf.now)
                except TactfulError:  # refused: the Ibis fact families must be NULL (blocked)
                    refused += 1
                    if got[row["row"]]["uses_facts"] is not None:
                        wrong["refused but judged"] += 1
                    continue
                values = derive(scenario, pack.settings).values
                for f in FEATURES:
                    cell = getattr(values[f], "value", values[f])
                    if cell != got[row["row"]][f]:
                        wrong[f] += 1
                        example.setdefault(f, (row["customer_id"], row["row"] % len(tfs), cell,
                                               got[row["row"]][f]))
    finally:
        engine.dispose()
    print(f"Python reference: {time.perf_counter() - t0:.1f} s wall; {refused} candidates refused")
    cells = (len(rows) - refused) * len(FEATURES)
    print(f"disagreeing cells: {sum(wrong.values())} of {cells:,}"
          + (f" {dict(wrong)} {example}" if wrong else ""))


if __name__ == "__main__":
    main()
