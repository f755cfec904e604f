"""Public test helpers for policies: a benign scenario to start from, deep-merged with overrides
(``scenario(touch={"channel": "sms"})``), and shortcuts to decide it with the default pack."""

from __future__ import annotations

import copy
from typing import Any

from tactful.model import Decision, Scenario, parse_scenario
from tactful.policy import evaluate, load_pack

BASE: dict[str, Any] = {
    "version": 1,
    "now": "2026-11-22T10:00:00Z",
    "customer": {"id": "c1", "openness": "balanced"},
    "contact_points": [
        {"id": "mail", "kind": "email", "shared_with": "private", "verified_at": "2026-06-01"},
        {"id": "home", "kind": "postal", "shared_with": "household", "verified_at": "2026-06-01"},
        {"id": "mobile", "kind": "phone", "shared_with": "private", "verified_at": "2026-06-01"},
    ],
    "consents": [
        {"purpose": "marketing.communications", "status": "granted", "source": "form", "at": "2025-01-01"},
    ],
    "facts": [
        {"id": "f1", "kind": "purchase", "category": "user.behavior.purchase_history",
         "label": "Running shoes", "origin": "observed", "source": "web", "context": "checkout",
         "at": "2026-10-01T12:00:00Z"},
    ],
    "touch": {
        "kind": "offer", "purpose": "marketing.communications.email", "channel": "email", "to": "mail",
        "sender": "first_party", "uses": ["f1"], "shows": [], "depth": "item", "named": False,
        "trigger": "scheduled",
    },
}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def scenario(**over: Any) -> Scenario:
    """The benign base scenario with top-level sections merged (a None value removes a key)."""
    return parse_scenario(_merge(BASE, over))


def decide(**over: Any) -> Decision:
    return evaluate(scenario(**over), load_pack())


def fired(decision: Decision) -> list[str]:
    return [r.rule for r in decision.reasons]


def fact(fid: str, **kw: Any) -> dict[str, Any]:
    base = {"id": fid, "kind": "purchase", "category": "user.behavior.purchase_history",
            "origin": "observed", "source": "web", "context": "checkout", "at": "2026-10-01T12:00:00Z"}
    base.update(kw)
    return base
