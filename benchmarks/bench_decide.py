"""Benchmark: one decision for a customer with a long history (not a test).

Builds, as a dict, the scenario of a customer with 1,000 facts and 100 recent touches (a loyal
customer of a few years: purchases, some with sensitive implications, browsing events, declared
preferences, an inference or two; a mailing history) and a touch that uses 20 of the facts and shows 5.
Then measures separately, with ``time.perf_counter_ns``:

* ``yaml.safe_load`` of the document dumped as YAML (what ``tactful decide FILE`` pays first; the C
  loader too when PyYAML has it; and ``json.loads`` of the same document as JSON, for comparison),
* the same two through Tactful's bounded loader (:mod:`tactful.safeload`: what ``decide`` really runs),
* ``parse_scenario`` of the loaded dict (validation into the model),
* ``evaluate`` of the already-parsed scenario with the default pack,

and prints p50 / p99 / mean per step, plus the machine (CPU count, platform, Python).

    .venv/bin/python benchmarks/bench_decide.py [--iterations 2000] [--yaml-iterations 50]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from tactful.model import parse_scenario
from tactful.policy import evaluate, load_pack
from tactful.safeload import SCENARIO_LIMITS, load_json, load_yaml

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)

PRODUCTS: tuple[tuple[str, list[str]], ...] = (
    ("Trail running shoes", []),
    ("Merino socks", []),
    ("Espresso beans 1 kg", []),
    ("Garden compost 40 l", []),
    ("Red wine, Rioja 2019", ["user.behavior.substance.alcohol"]),
    ("Pregnancy test, 2 pack", ["user.health_and_medical.reproductive"]),
    ("Headlamp 400 lm", []),
    ("Infant formula 800 g", ["user.demographic.household.baby"]),
    ("Paperback novel", []),
    ("Cordless drill 18 V", []),
)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def build_document(n_facts: int = 1000, n_recent: int = 100) -> dict[str, Any]:
    """The scenario document (a plain dict, as loaded from YAML or JSON)."""
    facts: list[dict[str, Any]] = []
    for i in range(n_facts):
        at = _iso(NOW - timedelta(hours=7 * i + 3))
        if i % 10 == 9:
            facts.append(
                {
                    "id": f"b{i}",
                    "kind": "event",
                    "category": "user.behavior.browsing_history",
                    "label": f"Viewed product page #{i}",
                    "origin": "observed",
                    "source": "web",
                    "context": "browse",
                    "at": at,
                }
            )
        elif i % 50 == 7:
            facts.append(
                {
                    "id": f"p{i}",
                    "kind": "preference",
                    "category": "user.account.settings",
                    "label": "Prefers delivery to the locker",
                    "origin": "declared",
                    "source": "app",
                    "context": "preference_center",
                    "at": at,
                }
            )
        elif i % 250 == 11:
            facts.append(
                {
                    "id": f"m{i}",
                    "kind": "inference",
                    "category": "user.demographic.household",
                    "implies": ["user.demographic.household.baby"],
                    "label": "Young family (model)",
                    "origin": "inferred",
                    "source": "loyalty",
                    "context": "propensity_model",
                    "at": at,
                }
            )
        else:
            name, implies = PRODUCTS[i % len(PRODUCTS)]
            fact: dict[str, Any] = {
                "id": f"o{i}",
                "kind": "purchase",
                "category": "user.behavior.purchase_history",
                "label": f"Order #{100000 + i}: {name}",
                "origin": "observed",
                "source": "pos" if i % 3 else "web",
                "context": "checkout",
                "at": at,
            }
            if implies:
                fact["implies"] = implies
            facts.append(fact)
    recent = [
        {
            "channel": ("email", "postal_mail", "sms", "push")[i % 4],
            "purpose": (
                "marketing.communications.email",
                "marketing.communications.postal",
                "marketing.communications.sms",
                "marketing.communications.push",
            )[i % 4],
            "at": _iso(NOW - timedelta(days=3 + 11 * i)),
            "kind": "offer",
        }
        for i in range(n_recent)
    ]
    ordinary = [f["id"] for f in facts if f["kind"] == "purchase" and "implies" not in f]
    return {
        "version": 1,
        "now": _iso(NOW),
        "customer": {"id": "cust-000812", "openness": "balanced"},
        "contact_points": [
            {"id": "email_private", "kind": "email", "shared_with": "private", "verified_at": "2026-09-01"},
            {"id": "home", "kind": "postal", "shared_with": "household", "verified_at": "2026-02-11"},
            {"id": "mobile", "kind": "phone", "shared_with": "private", "verified_at": "2026-05-30"},
        ],
        "consents": [
            {
                "purpose": "marketing.communications.email",
                "channel": "email",
                "status": "granted",
                "source": "form",
                "at": "2023-04-02",
            },
            {
                "purpose": "marketing.communications.postal",
                "status": "granted",
                "source": "form",
                "at": "2023-04-02",
            },
            {
                "purpose": "marketing.communications.sms",
                "channel": "sms",
                "status": "denied",
                "source": "portal",
                "at": "2025-01-12",
            },
            {"purpose": "personalize.content", "status": "granted", "source": "tcf", "at": "2025-06-01"},
        ],
        "facts": facts,
        "recent_touches": recent,
        "touch": {
            "kind": "recommendation",
            "purpose": "marketing.communications.email",
            "channel": "email",
            "to": "email_private",
            "sender": "first_party",
            "uses": ordinary[:20],
            "shows": ordinary[:5],
            "depth": "item",
            "named": True,
            "trigger": "scheduled",
        },
    }


def measure(fn: Callable[[], object], iterations: int, warmup: int = 20) -> list[int]:
    for _ in range(min(warmup, iterations)):
        fn()
    out: list[int] = []
    for _ in range(iterations):
        start = time.perf_counter_ns()
        fn()
        out.append(time.perf_counter_ns() - start)
    return out


def report(name: str, samples: list[int]) -> None:
    ordered = sorted(samples)
    p50 = ordered[len(ordered) // 2] / 1e6
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1e6
    mean = statistics.fmean(ordered) / 1e6
    print(f"{name:<28} n={len(ordered):>5}  p50 {p50:9.3f} ms  p99 {p99:9.3f} ms  mean {mean:9.3f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--iterations", type=int, default=2000, help="for parse and evaluate (default 2000)")
    parser.add_argument(
        "--yaml-iterations", type=int, default=50, help="for the YAML load, which is much slower (default 50)"
    )
    parser.add_argument("--facts", type=int, default=1000)
    parser.add_argument("--recent", type=int, default=100)
    args = parser.parse_args(argv)

    doc = build_document(args.facts, args.recent)
    text = yaml.safe_dump(doc, sort_keys=False)
    loaded = yaml.safe_load(text)
    scenario = parse_scenario(loaded, source="<bench>")
    pack = load_pack()
    decision = evaluate(scenario, pack)

    print(
        f"machine: {os.cpu_count()} CPUs, {platform.platform()}, {platform.machine()}, "
        f"Python {platform.python_version()} ({platform.python_implementation()})"
    )
    print(
        f"scenario: {len(scenario.facts)} facts, {len(scenario.recent_touches)} recent touches, "
        f"touch uses {len(scenario.touch.uses)} and shows {len(scenario.touch.shows)}; "
        f"YAML {len(text) / 1024:.0f} KiB"
    )
    fired = ", ".join(r.rule for r in decision.reasons) or "none"
    print(f"decision: {decision.verdict.value} (max_depth {decision.max_depth.value}; fired: {fired})")

    report("yaml.safe_load", measure(lambda: yaml.safe_load(text), args.yaml_iterations, warmup=3))
    c_loader = getattr(yaml, "CSafeLoader", None)
    if c_loader is not None:
        report(
            "yaml.load (CSafeLoader)",
            measure(lambda: yaml.load(text, Loader=c_loader), args.yaml_iterations, warmup=3),
        )
    report("tactful load_yaml (bounded)",
           measure(lambda: load_yaml(text, "<bench>", SCENARIO_LIMITS), args.yaml_iterations, warmup=3))
    json_text = json.dumps(doc)
    report("json.loads (same document)", measure(lambda: json.loads(json_text), args.iterations))
    report("tactful load_json (bounded)",
           measure(lambda: load_json(json_text, "<bench>", SCENARIO_LIMITS), args.iterations))
    report("parse_scenario", measure(lambda: parse_scenario(loaded, source="<bench>"), args.iterations))
    report("evaluate (default pack)", measure(lambda: evaluate(scenario, pack), args.iterations))
    return 0


if __name__ == "__main__":
    sys.exit(main())
