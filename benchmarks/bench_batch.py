"""Benchmark: the compiled policy step on DuckDB against a bare scan and the Python evaluator (not a test).

Builds a feature frame with the Python derivation from every scenario of tests/scenarios plus
``--generated`` scenarios drawn by tests/strategies.py, replicates it to ``--rows`` rows, loads it into
an in-memory DuckDB (Arrow) and measures, best of ``--repeat``:

* the **policy step**: the default pack compiled (tactful.policy.compile) and materialized (a
  ``CREATE TABLE AS`` of the decisions, no transfer to Python);
* a **bare materializing scan** of the same frame (``CREATE TABLE AS SELECT *``), and the ratio;
* the **Python evaluator** one by one (``evaluate`` of already-parsed scenarios: derive + rules +
  reasons) and, for a like-for-like figure, the Python rules and fold alone over derived features;
* the ratios compiled / Python.

Also prints the compiled query plan (EXPLAIN) of the policy step. Cedar: the same rows decided by
cedarpy's
``is_authorized_batch`` with the pack written in Cedar (benchmarks/cedar_pack.py; ``pip install -e
'.[bench]'``), and the ratio compiled / Cedar. The feature frame here is built in Python and
replicated; benchmarks/bench_batch_store.py measures the whole run from the store read in place.

    .venv/bin/python benchmarks/bench_batch.py [--rows 5000000] [--generated 2000] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from tactful.batch.frame import frame_from_scenarios  # noqa: E402
from tactful.features import FEATURES, derive  # noqa: E402
from tactful.model import Scenario, parse_scenario  # noqa: E402
from tactful.policy import evaluate, load_pack  # noqa: E402
from tactful.policy.compile import compile_pack  # noqa: E402
from tactful.policy.evaluate import _compiled, _condition_values  # noqa: E402
from tactful.policy.fold import PY, fold  # noqa: E402


def scenarios(generated: int) -> list[Scenario]:
    out = [parse_scenario(yaml.safe_load(p.read_text(encoding="utf-8")), source=str(p))
           for p in sorted((ROOT / "tests" / "scenarios").rglob("*.yaml"))]
    if generated:
        from hypothesis import HealthCheck, Phase, given, seed, settings
        from hypothesis import strategies as st

        from strategies import scenario_dicts

        docs: list[dict[str, Any]] = []

        @seed(1)
        @settings(max_examples=max(1, generated // 25), database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck), deadline=None)
        @given(st.lists(scenario_dicts(), min_size=25, max_size=25))
        def collect(batch: list[dict[str, Any]]) -> None:
            docs.extend(batch)

        collect()
        out.extend(parse_scenario(d) for d in docs[:generated])
    return out


def cedar_context(row: dict[str, Any]) -> dict[str, Any]:
    """A feature row as a Cedar request context: enum features as their ranks, NULLs left out (the
    Cedar policies forbid a rule's missing inputs explicitly)."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if name in ("row", "customer_id") or value is None:
            continue
        enum = FEATURES[name].enum
        if enum is not None:
            members = [m.value for m in enum]
            if value not in members:
                continue  # outside the vocabulary: missing, as the compiled evaluator treats it
            value = members.index(value)
        out[name] = value
    return out


def measure_cedar(pack: Any, frame: pa.Table, compiled_verdicts: list[str],
                  write: Path | None) -> float | None:
    """Decisions per CPU-second of cedarpy's batch call over the rows of ``frame`` (the pack written
    in Cedar by benchmarks/cedar_pack.py); None when cedarpy is not installed (pip install -e .[bench])."""
    try:
        import cedarpy
    except ImportError:
        print("Cedar: cedarpy is not installed (pip install -e '.[bench]'); not measured")
        return None
    from cedar_pack import DEFAULT_ALLOW, to_cedar

    text, ids = to_cedar(pack)
    if write is not None:
        write.write_text(text, encoding="utf-8")
    policies = cedarpy.PolicySet.from_str(text)
    entities = cedarpy.Entities.from_json_str("[]")
    c0 = time.process_time()
    requests = [{"principal": 'Customer::"c"', "action": 'Action::"touch"', "resource": 'Touch::"t"',
                 "context": cedar_context(r)} for r in frame.to_pylist()]
    c_build = time.process_time() - c0
    c0 = time.process_time()
    results = cedarpy.is_authorized_batch(requests, policies, entities)
    c_call = time.process_time() - c0
    n = len(requests)
    deny = {"ask", "block"}
    wrong = sum((r.decision == cedarpy.Decision.Deny) != (v in deny)
                for r, v in zip(results, compiled_verdicts, strict=True))
    errors = sum(bool(r.diagnostics.errors) for r in results)
    named = {ids[int(p.removeprefix("policy"))] for r in results
             for p in r.diagnostics.reasons} - {DEFAULT_ALLOW}
    from importlib.metadata import version

    print(f"Cedar (cedarpy {version('cedarpy')}, "
          f"{len(ids)} policies for {len(pack.rules)} rules) over {n:,} rows: is_authorized_batch "
          f"{c_call:.2f} s CPU ({n / c_call:,.0f} decisions/s), building the request dicts {c_build:.2f} s "
          f"CPU; allow/deny differs from the compiled verdict on {wrong} rows, {errors} evaluation "
          f"errors, {len(named)} distinct policies named as reasons")
    return n / c_call


def best(fn: Any, repeat: int) -> tuple[float, float]:
    """Best wall-clock and best process CPU time (all DuckDB threads) over ``repeat`` runs; on a
    machine other jobs share, the CPU time is the steadier figure."""
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--generated", type=int, default=2_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--python-rows", type=int, default=2_000)
    ap.add_argument("--cedar-rows", type=int, default=20_000)
    ap.add_argument("--write-cedar", type=Path, default=None,
                    help="also write the Cedar policies to this file (benchmarks/default_pack.cedar)")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    pack = load_pack()
    base = scenarios(args.generated)
    frame = frame_from_scenarios(base, pack.settings)
    reps = -(-args.rows // frame.num_rows)
    big = pa.concat_tables([frame] * reps).slice(0, args.rows)
    big = big.set_column(0, "row", pa.array(range(big.num_rows), type=pa.int64()))
    print(f"feature frame: {big.num_rows:,} rows x {big.num_columns} columns "
          f"({len(base):,} distinct scenarios replicated), {big.nbytes / 2**20:.0f} MiB in Arrow")

    con = ibis.duckdb.connect(threads=args.threads)
    con.con.register("frame_arrow", big)
    con.raw_sql("CREATE TABLE frame AS SELECT * FROM frame_arrow")
    table = con.table("frame")
    compiled = compile_pack(pack)
    sql = ibis.to_sql(compiled.decide(table, keep=["row"], rule_ids="masks"), dialect="duckdb")
    sql_names = ibis.to_sql(compiled.decide(table, keep=["row"]), dialect="duckdb")

    def policy() -> None:
        con.raw_sql(f"CREATE OR REPLACE TEMP TABLE decisions AS {sql}")

    def policy_names() -> None:
        con.raw_sql(f"CREATE OR REPLACE TEMP TABLE decisions_named AS {sql_names}")

    def scan() -> None:
        con.raw_sql("CREATE OR REPLACE TEMP TABLE scanned AS SELECT * FROM frame")

    t_policy, c_policy = best(policy, args.repeat)
    t_scan, c_scan = best(scan, args.repeat)
    t_names, c_names = best(policy_names, args.repeat)
    t0, c0 = time.perf_counter(), time.process_time()
    named = compiled.names_from_masks(con.table("decisions").to_pyarrow())
    t_naming, c_naming = time.perf_counter() - t0, time.process_time() - c0
    n = big.num_rows
    print(f"policy step (compiled, {len(pack.rules)} rules, materialized): {t_policy:.2f} s wall "
          f"({n / t_policy / 1e6:.2f} M decisions/s), {c_policy:.2f} s CPU")
    print(f"  (rule ids as comma-joined strings in the query instead of masks: {t_names:.2f} s wall, "
          f"{c_names:.2f} s CPU)")
    distinct = len(named.column("fired_rules").combine_chunks().dictionary)
    print(f"naming the masks in Arrow when written ({distinct} distinct fired sets): {t_naming:.2f} s "
          f"wall, {c_naming:.2f} s CPU (includes the transfer to Arrow)")
    print(f"bare materializing scan of the frame: {t_scan:.2f} s wall ({n / t_scan / 1e6:.2f} M rows/s), "
          f"{c_scan:.2f} s CPU")
    print(f"policy / scan = {t_policy / t_scan:.2f}x wall, {c_policy / c_scan:.2f}x CPU (target <= 2x)")

    sample = base[: args.python_rows]
    c0 = time.process_time()
    for s in sample:
        evaluate(s, pack)
    per_eval = (time.process_time() - c0) / len(sample)
    comp = _compiled(pack)
    feats = [derive(s, pack.settings) for s in sample]
    c0 = time.process_time()
    for s, f in zip(sample, feats, strict=True):
        conds, _ = _condition_values(comp, f.values)
        fold(comp.plan, conds, f.values.get, lambda name, v=f.values: v[name].rank,
             s.touch.depth.rank, s.touch.named, PY)
    per_rules = (time.process_time() - c0) / len(sample)
    compiled_rate = n / c_policy
    print("decisions per CPU-second (all compared on CPU time, so other jobs on the machine cancel out):")
    print(f"  compiled policy step: {compiled_rate:,.0f}")
    print(f"  Python evaluator one by one (derive + rules + reasons): {1 / per_eval:,.0f}; "
          f"compiled / Python = {compiled_rate * per_eval:,.0f}x (target >= 1,000x)")
    print(f"  Python rules + fold alone over derived features: {1 / per_rules:,.0f}; "
          f"compiled / that = {compiled_rate * per_rules:,.0f}x")
    cedar_frame = big.slice(0, args.cedar_rows)
    verdicts_of = named.sort_by("row").slice(0, cedar_frame.num_rows).column("verdict").to_pylist()
    cedar = measure_cedar(pack, cedar_frame, verdicts_of, args.write_cedar)
    if cedar is not None:
        print(f"  Cedar is_authorized_batch: {cedar:,.0f}; compiled / Cedar = {compiled_rate / cedar:,.0f}x "
              "(target >= 1,000x)")
    verdicts = con.sql("SELECT verdict, count(*) AS n FROM decisions GROUP BY verdict ORDER BY n DESC")
    print("verdicts:", ", ".join(f"{r['verdict']} {r['n']:,}" for r in verdicts.to_pyarrow().to_pylist()))
    print("query plan of the policy step:")
    plan = con.raw_sql(f"EXPLAIN {sql}").fetchall()
    for _, text in plan:
        print(text)


if __name__ == "__main__":
    main()
