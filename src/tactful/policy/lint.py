"""`tactful policy lint`: parse a pack (errors name file:line:col, the bad value and what was
expected), then look for what parses but is probably a mistake (warnings)."""

from __future__ import annotations

from pathlib import Path

from tactful.features import FAIL_CLOSED_FEATURES
from tactful.policy.evaluate import FAIL_CLOSED_GUARD
from tactful.policy.nodes import FeatureRef, Pack
from tactful.policy.parse import load_pack
from tactful.vocab import Depth, Verdict


def pack_warnings(pack: Pack) -> list[str]:
    """Things that are legal but likely wrong (empty: none)."""
    out: list[str] = []
    seen: dict[object, str] = {}
    guards = set(FAIL_CLOSED_FEATURES)
    for rule in pack.rules:
        read = rule.when.features() & guards
        if read and rule.verdict is not Verdict.BLOCK:
            out.append(f"rule {rule.id}: reads the fail-closed guard feature(s) "
                       f"{', '.join(sorted(read))} but does not block; the evaluator blocks anyway "
                       f"(reason {FAIL_CLOSED_GUARD})")
        if rule.verdict in (Verdict.BLOCK, Verdict.ASK) and not rule.remedies:
            out.append(f"rule {rule.id}: a {rule.verdict.value} rule without a remedy leaves the user "
                       "without a next step")
        if rule.verdict is Verdict.SOFTEN and rule.max_depth is Depth.DETAILED_HISTORY \
                and not rule.drop_name:
            out.append(f"rule {rule.id}: max_depth detailed_history never lowers anything")
        if isinstance(rule.max_depth, FeatureRef) and rule.max_depth.name not in rule.when.features():
            out.append(f"rule {rule.id}: max_depth reads {rule.max_depth.name}, which the condition "
                       "never compares")
        other = seen.get(rule.when)
        if other is not None:
            out.append(f"rule {rule.id}: same condition as rule {other}")
        else:
            seen[rule.when] = rule.id
    return out


def lint_pack(path: Path | str) -> list[str]:
    """Raise :class:`~tactful.errors.PolicyError` on the first error; return the warnings."""
    return pack_warnings(load_pack(path))
