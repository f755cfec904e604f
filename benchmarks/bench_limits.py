"""Benchmark: a scenario at the loader's size limits (not a test).

Builds the long-history scenario of ``bench_decide.py`` with enough facts to come close to the YAML
limit (4 MiB) and the JSON limit (32 MiB) of ``tactful.safeload.SCENARIO_LIMITS``, and, in a fresh
child process for each, reads it the way ``tactful decide FILE`` does (bounded read, load, validate,
evaluate with the default pack). Prints the file size, the seconds of each step and the child's peak
RSS, so the documented limits can be checked against what they cost on this machine.

    .venv/bin/python benchmarks/bench_limits.py [--yaml-mib 4] [--json-mib 32]
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
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))

from bench_decide import build_document

CHILD = """
import resource, sys, time
from pathlib import Path
from tactful.safeload import SCENARIO_LIMITS, load_document
from tactful.model import parse_scenario
from tactful.policy import evaluate, load_pack
path = Path(sys.argv[1])
pack = load_pack()
t0 = time.perf_counter()
data = load_document(path, SCENARIO_LIMITS)
t1 = time.perf_counter()
scenario = parse_scenario(data, source=str(path))
t2 = time.perf_counter()
decision = evaluate(scenario, pack)
t3 = time.perf_counter()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{t1 - t0:.2f} {t2 - t1:.2f} {t3 - t2:.3f} {rss:.0f} {len(scenario.facts)} {decision.verdict.value}")
"""


def _facts_for(target_bytes: int, as_json: bool) -> int:
    probe = build_document(1000, 100)
    size = len(json.dumps(probe)) if as_json else len(yaml.safe_dump(probe, sort_keys=False))
    return max(1000, int(1000 * target_bytes * 0.97 / size))


def _run(path: Path) -> str:
    done = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        return f"failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
    load, parse, evaluate, rss, facts, verdict = done.stdout.split()
    return (f"{int(facts):>7,} facts  load {load:>6} s  validate {parse:>6} s  evaluate {evaluate:>6} s  "
            f"peak RSS {int(rss):>6,} MiB  ({verdict})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--yaml-mib", type=float, default=4.0)
    parser.add_argument("--json-mib", type=float, default=32.0)
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}; "
          f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        for as_json, mib in ((False, args.yaml_mib), (True, args.json_mib)):
            n = _facts_for(int(mib * 1024 * 1024), as_json)
            doc = build_document(n, 100)
            path = Path(tmp) / ("big.json" if as_json else "big.yaml")
            started = time.perf_counter()
            path.write_text(json.dumps(doc) if as_json else yaml.safe_dump(doc, sort_keys=False),
                            encoding="utf-8")
            del doc
            size = path.stat().st_size / 1024 / 1024
            print(f"{'JSON' if as_json else 'YAML'} {size:6.1f} MiB (written in "
                  f"{time.perf_counter() - started:.0f} s): {_run(path)}")
    print(f"(this process: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
