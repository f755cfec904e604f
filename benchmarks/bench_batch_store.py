"""Benchmark: ``batch decide`` from the store read in place, at scale (not a test; issue 9 §5).

N customers of a store (the first N by id) x 5 candidate touches, through the in-backend path of
``tactful batch decide``, as it runs it: one DuckDB working in a database file of a private directory
(what the run materializes can leave memory; ``--memory-limit``, default 3GB, caps DuckDB's memory and
it spills past it), the store attached read-only, the typed candidates (built here column-wise, as the
input), the rows of the candidates' customers and their pools of facts read once and materialized
(tactful.batch.producers.scoped_store, tactful.batch.usage.fact_pool), the Ibis feature frame
materialized, the full default pack compiled with rule masks and the input hash
(tactful.batch.run.decide_frame) materialized, and the decisions written to Parquet with the masks
named (CompiledPack.names_from_masks). Prints, per step, wall and process CPU time (every DuckDB
thread included) with the load average, the policy step against a bare materializing scan of the
same frame, peak RSS, and the feature frame's query plan (--plan).

    .venv/bin/tactful sample --synthetic 1000000 --db sqlite:////tmp/realtime/big.db   # once
    .venv/bin/python benchmarks/bench_batch_store.py --db sqlite:////tmp/realtime/big.db \\
        --customers 10000 100000 1000000 --threads 2 [--plan] [--spark 10000]
    # the growth table across stores of 10 k, 100 k and 1 M customers, every customer of each:
    .venv/bin/python benchmarks/bench_batch_store.py --all --db sqlite:////tmp/g/s10k.db \\
        --db sqlite:////tmp/g/s100k.db --db sqlite:////tmp/realtime/big.db

Each size runs in its own process (so that peak RSS is that size's); the last lines are a growth
table. ``--spark N`` also decides the feature frame of N customers (built by DuckDB, then sent to
Spark local mode) with the compiled policy on Spark.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tactful.batch.candidates import touch_document
from tactful.batch.producers import CANDIDATE_SCHEMA, candidate_row, feature_frame
from tactful.batch.run import build_frame, decide_frame
from tactful.batch.store import attach_store, connect
from tactful.policy import load_pack
from tactful.policy.compile import compile_pack
from tactful.realtime import parse_touch

NOW = datetime(2026, 11, 1, tzinfo=UTC)
#: the five candidate touches every customer gets
TOUCHES: list[dict[str, Any]] = [
    {"kind": "offer", "purpose": "marketing.communications.email", "channel": "email", "to_kind": "email",
     "uses": '[{"kind": "purchase", "newest": 3}]', "depth": "item", "named": "true"},
    {"kind": "recommendation", "purpose": "marketing", "channel": "postcard", "to_kind": "postal",
     "uses": '[{"kind": "purchase", "within_days": 60}]', "depth": "category", "named": "true"},
    {"kind": "reminder", "purpose": "marketing.communications.sms", "channel": "sms", "to_kind": "phone",
     "depth": "item", "named": "false"},
    {"kind": "service", "purpose": "essential.service", "channel": "web", "depth": "none", "named": "false"},
    {"kind": "share", "purpose": "third_party_sharing", "channel": "partner_export", "sender": "partner:acme",
     "granularity": "aggregate", "group_size": "12", "depth": "segment", "named": "false"},
]


def typed_candidates(customer_ids: pa.Array) -> pa.Table:
    """customers x TOUCHES as the typed candidates table, built column-wise (the batch's input)."""
    import ibis

    schema = ibis.schema(CANDIDATE_SCHEMA).to_pyarrow()
    specs = [parse_touch(touch_document(t)).touch for t in TOUCHES]
    templates = pa.Table.from_pylist([candidate_row(0, "", s, NOW) for s in specs], schema=schema)
    n, k = len(customer_ids), len(TOUCHES)
    table = templates.take(pa.array(np.tile(np.arange(k), n)))
    table = table.set_column(schema.get_field_index("row"), schema.field("row"),
                             pa.array(np.arange(n * k, dtype=np.int64)))
    return table.set_column(schema.get_field_index("customer_id"), schema.field("customer_id"),
                            pc.take(customer_ids, pa.array(np.repeat(np.arange(n), k))))


READ = "read (the candidates' customers' store rows, materialized)"
FEATURES = "features (the pools and the frame, block by block, materialized)"
POLICY = "policy (rule masks + input hash, materialized)"


def store_customers(url: str) -> int:
    """How many customers the store holds."""
    con = connect(threads=1)
    try:
        return int(attach_store(con, url).table("customers").count().to_pyarrow().as_py())
    finally:
        con.disconnect()


class Clock:
    def __init__(self) -> None:
        self.steps: dict[str, tuple[float, float]] = {}

    def __call__(self, name: str, fn: Any) -> Any:
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        self.steps[name] = (time.perf_counter() - w0, time.process_time() - c0)
        return out


def run_one(db: str, customers: int, threads: int, plan: bool, out_dir: Path,
            memory_limit: str) -> dict[str, Any]:
    pack = load_pack()
    compiled = compile_pack(pack)
    # as tactful batch decide runs it: a DuckDB database file in a private directory (what the run
    # materializes can leave memory), with a memory limit (DuckDB spills past it)
    work = out_dir / "duckdb"
    work.mkdir(mode=0o700)
    con = connect(threads=threads, memory_limit=memory_limit, workdir=work)
    clock = Clock()
    load0 = os.getloadavg()[0]
    store = clock("attach the store", lambda: attach_store(con, db))
    ids = store.table("customers").select("id").order_by("id").limit(customers).to_pyarrow().column(0)
    cands = typed_candidates(ids.combine_chunks())
    con.con.register("candidates_arrow", cands)
    typed = con.table("candidates_arrow")
    split: dict[str, float] = {}
    w0, c0 = time.perf_counter(), time.process_time()
    frame = build_frame(con, store, typed, pack.settings, split)
    # the read and the blocks of the frame, as tactful.batch.run.build_frame times them (CPU: split in
    # the same proportion as wall, since both run in one call)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    for name, key in ((READ, "read"), (FEATURES, "features")):
        clock.steps[name] = (split[key], cpu * split[key] / max(wall, 1e-9))
    decisions = decide_frame(frame, compiled)
    clock(POLICY, lambda: con.create_table("decisions", decisions))
    clock("bare materializing scan of the frame (reference)",
          lambda: con.raw_sql("CREATE TABLE scanned AS SELECT * FROM tactful_frame"))
    out = out_dir / f"decisions-{customers}.parquet"

    def write() -> int:
        from pyarrow import parquet

        table = compiled.names_from_masks(con.table("decisions").to_pyarrow())
        n = table.num_rows
        for name, value in (("policy_name", pack.name), ("policy_version", pack.version)):
            table = table.append_column(name, pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(n, dtype=np.int32)), pa.array([value])))
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as sink:
            parquet.write_table(table, sink)
        return n

    rows = clock("write (name the masks, Parquet)", write)
    verdicts = {r["verdict"]: r["n"] for r in con.sql(
        "SELECT verdict, count(*) AS n FROM decisions GROUP BY verdict").to_pyarrow().to_pylist()}
    frame_plan = []
    if plan:  # the plan of one block's frame (the pools materialized again for it)
        sql = con.compile(feature_frame(typed, store, pack.settings))
        frame_plan = con.raw_sql(f"EXPLAIN {sql}").fetchall()
    out.unlink()
    con.disconnect()
    disk = sum(f.stat().st_size for f in work.rglob("*") if f.is_file()) / 2**20
    return {"customers": customers, "disk_mib": disk, "decisions": rows, "steps": clock.steps,
            "verdicts": verdicts,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "load_before": load0, "load_after": os.getloadavg()[0], "threads": threads,
            "plan": [text for _, text in frame_plan]}


def spark_policy(db: str, customers: int) -> None:
    """The feature frame of ``customers`` x 5 built by DuckDB, sent to Spark local mode; the compiled
    policy (rule masks and input hash) runs there."""
    import ibis
    from pyspark.sql import SparkSession

    pack = load_pack()
    compiled = compile_pack(pack)
    con = connect(threads=2)
    store = attach_store(con, db)
    ids = store.table("customers").select("id").order_by("id").limit(customers).to_pyarrow().column(0)
    con.con.register("candidates_arrow", typed_candidates(ids.combine_chunks()))
    frame = feature_frame(con.table("candidates_arrow"), store, pack.settings).to_pyarrow()
    t0 = time.perf_counter()
    session = (SparkSession.builder.master("local[2]").appName("bench").config("spark.ui.enabled", "false")
               .config("spark.sql.session.timeZone", "UTC").getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    start = time.perf_counter() - t0
    t0 = time.perf_counter()
    session.createDataFrame(frame.to_pandas()).createOrReplaceTempView("frame")
    load = time.perf_counter() - t0
    scon = ibis.pyspark.connect(session)
    expr = compiled.decide(scon.table("frame"), keep=["row"], rule_ids="masks")
    t0 = time.perf_counter()
    out = expr.to_pyarrow()
    policy = time.perf_counter() - t0
    session.stop()
    print(f"Spark local[2], {frame.num_rows:,} decisions: start {start:.1f} s, frame to Spark {load:.1f} s, "
          f"policy (masks, to Arrow) {policy:.1f} s = {frame.num_rows / policy:,.0f} decisions/s; "
          f"{out.num_rows:,} rows back; load average {os.getloadavg()[0]:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", action="append", required=True,
                    help="a store URL; repeat it to run each store (with --all: every customer of each)")
    ap.add_argument("--customers", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--all", action="store_true",
                    help="decide every customer of each --db store (the growth table across stores)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--plan", action="store_true", help="print the feature frame's query plan")
    ap.add_argument("--memory-limit", default="3GB", help="DuckDB's memory limit (it spills past it)")
    ap.add_argument("--spark", type=int, default=0, help="also run the policy on Spark for N customers")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(run_one(args.db[0], args.customers[0], args.threads, args.plan, Path(tmp),
                                     args.memory_limit)))
        return
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"machine: {os.cpu_count()} CPUs, {memory:.0f} GiB, {platform.platform()}, "
          f"Python {platform.python_version()}")
    results = []
    runs = [(url, store_customers(url)) for url in args.db] if args.all else \
        [(args.db[0], n) for n in args.customers]
    for url, n in runs:
        cmd = [sys.executable, __file__, "--db", url, "--customers", str(n), "--threads",
               str(args.threads), "--memory-limit", args.memory_limit, "--one",
               *(["--plan"] if args.plan and (url, n) == runs[-1] else [])]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        results.append(r)
        total_w = sum(w for k, (w, _) in r["steps"].items() if not k.startswith("bare"))
        total_c = sum(c for k, (_, c) in r["steps"].items() if not k.startswith("bare"))
        print(f"\n{n:,} customers of {url} x {len(TOUCHES)} = {r['decisions']:,} decisions, DuckDB "
              f"{r['threads']} "
              f"threads (memory limit {args.memory_limit}), load average {r['load_before']:.1f} -> "
              f"{r['load_after']:.1f}")
        for name, (w, c) in r["steps"].items():
            print(f"  {name:<50} {w:8.2f} s wall {c:8.2f} s CPU")
        print(f"  {'total (without the bare scan)':<50} {total_w:8.2f} s wall {total_c:8.2f} s CPU; "
              f"{r['decisions'] / total_w:,.0f} decisions/s")
        pol = r["steps"][POLICY]
        scan = r["steps"]["bare materializing scan of the frame (reference)"]
        print(f"  policy / bare scan = {pol[0] / scan[0]:.2f}x wall, {pol[1] / max(scan[1], 1e-9):.2f}x CPU "
              "(target <= 2x)")
        print(f"  peak RSS {r['peak_rss_mib']:,.0f} MiB; run's database file and spill "
              f"{r['disk_mib']:,.0f} MiB at the end; verdicts {r['verdicts']}")
        if r["plan"]:
            print("\nquery plan of the feature frame:")
            for text in r["plan"]:
                print(text)
        r["total"] = (total_w, total_c)
    print("\ngrowth (DuckDB, in-backend path):")
    print("| customers | decisions | read s wall | features s wall | policy s wall | total s wall | "
          "total s CPU | peak RSS MiB | load |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['customers']:,} | {r['decisions']:,} | {r['steps'][READ][0]:.2f} | "
              f"{r['steps'][FEATURES][0]:.2f} | {r['steps'][POLICY][0]:.2f} | "
              f"{r['total'][0]:.2f} | {r['total'][1]:.2f} | {r['peak_rss_mib']:,.0f} | "
              f"{r['load_before']:.1f} |")
    if args.spark:
        spark_policy(args.db[0], args.spark)


if __name__ == "__main__":
    main()
