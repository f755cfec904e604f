"""Benchmark: a whole campaign run over a synthetic store, end to end (not a test; issue 10 §7).

Runs the demo campaign's content (:func:`tactful.campaign.demo_campaign`: every customer, 3 products
shown, channels postcard -> postal mail -> email -> SMS, the default pack) through the same
:func:`tactful.campaign.run_campaign` that ``tactful campaign run`` calls, on synthetic stores built by
``tactful sample --synthetic N``, and prints the time of each step as the run records it (audience,
recommendations, candidates, features and policy, compose, decision log and outbox, delivery, report),
the wall time, the process CPU time (user + system, every DuckDB thread included), peak RSS and the
load average before and after.

    .venv/bin/tactful sample --synthetic 10000 --db sqlite:////tmp/cm1m/s10k.db      # once per size
    .venv/bin/python benchmarks/bench_campaign.py \\
        --store 10000 sqlite:////tmp/cm1m/s10k.db --store 100000 sqlite:////tmp/cm1m/s100k.db \\
        [--dry-run] [--path auto|reference|in-backend] [--block N] [--limit N] [--out /tmp/cm1m/runs]

A logged run writes into the store (decision log, outbox, run row) and delivers files under ``--out``:
point it at a store made for the benchmark, never at one you keep. ``--dry-run`` decides, composes and
writes the report only. Each store runs in its own process (so peak RSS is that run's); the last lines
are a table of all sizes. ``--limit N`` caps the audience at the first N customers by id (the
recommendations still read the whole store).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tactful.campaign import demo_campaign, run_campaign

NOW = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
STEPS = ("audience", "copy of the store", "recommendations", "candidates", "features and policy", "compose",
         "decision log and outbox", "delivery", "report")


def run_one(db: str, out_dir: Path, dry_run: bool, limit: int | None, backend: str,
            reference: bool | None, block: int) -> dict[str, Any]:
    """One campaign run on ``db``; its figures as a dict (printed as JSON by the child process)."""
    campaign = demo_campaign()
    if limit is not None:
        campaign = dataclasses.replace(campaign, limit=limit)
    load0 = os.getloadavg()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        def step(name: str, total: int | None) -> Any:
            task = bar.add_task(name, total=total)
            return lambda n: bar.advance(task, n)

        summary = run_campaign(campaign, db=db, backend=backend, dry_run=dry_run, now=NOW,
                               out_dir=out_dir, step=step, reference=reference, block=block)
    wall = time.perf_counter() - wall0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "customers": summary.customers, "decisions": summary.decisions, "queued": summary.queued,
        "by_verdict": summary.by_verdict, "by_channel": summary.by_channel, "swaps": summary.swaps,
        "seconds": summary.seconds, "cpu_steps": summary.cpu, "wall": wall,
        "cpu": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
        "peak_rss_mib": cpu1.ru_maxrss / 1024, "load_before": load0, "load_after": os.getloadavg(),
        "dry_run": dry_run, "block": block,
        "path": {None: "auto", True: "reference", False: "in-backend"}[reference],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", nargs=2, action="append", metavar=("N", "URL"), default=[],
                    help="a synthetic store of N customers (repeat for each size)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/tactful-bench-campaign"),
                    help="where logged runs deliver their files")
    ap.add_argument("--dry-run", action="store_true", help="decide, compose and report only")
    ap.add_argument("--limit", type=int, default=None, help="cap the audience at the first N customers")
    ap.add_argument("--backend", default="duckdb")
    ap.add_argument("--path", choices=("auto", "reference", "in-backend"), default="auto",
                    help="the feature frame built in Python (reference), in DuckDB (in-backend), or "
                         "as `tactful campaign run` picks it (auto: in-backend from 50,000 customers)")
    ap.add_argument("--block", type=int, default=50_000, help="customers per block")
    ap.add_argument("--one", nargs=2, metavar=("N", "URL"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.one:
        args.out.mkdir(mode=0o700, parents=True, exist_ok=True)
        reference = {"auto": None, "reference": True, "in-backend": False}[args.path]
        print(json.dumps(run_one(args.one[1], args.out, args.dry_run, args.limit, args.backend,
                                 reference, args.block)))
        return
    if not args.store:
        ap.error("give at least one --store N URL")
    console = Console()
    console.print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
                  f"{platform.python_version()}; {'dry run' if args.dry_run else 'logged run'}; "
                  f"backend {args.backend}, path {args.path}, blocks of {args.block:,} customers")
    results: list[tuple[str, dict[str, Any]]] = []
    for n, url in args.store:
        cmd = [sys.executable, __file__, "--one", n, url, "--out", str(args.out), "--backend", args.backend,
               "--path", args.path, "--block", str(args.block)]
        if args.dry_run:
            cmd.append("--dry-run")
        if args.limit is not None:
            cmd += ["--limit", str(args.limit)]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
        if done.returncode != 0:
            console.print(f"[red]{n} customers: the run failed (exit {done.returncode})[/red]", markup=True)
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        results.append((n, r))
        console.print(f"{int(n):,} customers ({r['customers']:,} in the audience): {r['wall']:.1f} s wall, "
                      f"{r['cpu']:.1f} s CPU, peak RSS {r['peak_rss_mib']:,.0f} MiB, load "
                      f"{r['load_before'][0]:.1f} -> {r['load_after'][0]:.1f}; {r['decisions']:,} decisions, "
                      f"{r['queued']:,} queued, verdicts {r['by_verdict']}", markup=False, highlight=False)
        for name, sec in r["seconds"].items():
            used = r.get("cpu_steps", {}).get(name)
            tail = f", {used:8.1f} s CPU" if used is not None else ""
            console.print(f"    {name:<48} {sec:9.1f} s wall{tail}", markup=False, highlight=False)
    if not results:
        return
    header = "| step: wall / CPU (s) | " + " | ".join(f"{int(n):,}" for n, _ in results) + " |"
    console.print("\n" + header, markup=False, highlight=False)
    console.print("|---|" + "---:|" * len(results), markup=False, highlight=False)
    names = list(STEPS) + [k for _, r in results for k in r["seconds"] if k not in STEPS]
    for name in dict.fromkeys(names):
        cells = []
        for _, r in results:
            wall_s, cpu_s = r["seconds"].get(name), r.get("cpu_steps", {}).get(name)
            tail = "" if cpu_s is None else f" / {cpu_s:.1f}"
            cells.append("" if wall_s is None else f"{wall_s:.1f}{tail}")
        console.print(f"| {name} | " + " | ".join(cells) + " |", markup=False, highlight=False)
    for label, key, fmt in (("wall (s)", "wall", "{:.1f}"), ("CPU (s)", "cpu", "{:.1f}"),
                            ("peak RSS (MiB)", "peak_rss_mib", "{:,.0f}"), ("decisions", "decisions", "{:,}"),
                            ("messages queued", "queued", "{:,}")):
        cells = [fmt.format(r[key]) for _, r in results]
        console.print(f"| {label} | " + " | ".join(cells) + " |", markup=False, highlight=False)
    cells = [f"{r['load_before'][0]:.1f} / {r['load_after'][0]:.1f}" for _, r in results]
    console.print("| load average before / after | " + " | ".join(cells) + " |", markup=False,
                  highlight=False)


if __name__ == "__main__":
    main()
