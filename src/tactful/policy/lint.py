"""`tactful policy lint`: parse a pack (errors name file:line:col, the bad value and what was
expected), then look for what parses but is probably a mistake (warnings)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tactful import vocab
from tactful.features import FAIL_CLOSED_FEATURES
from tactful.policy.evaluate import FAIL_CLOSED_GUARD
from tactful.policy.nodes import FeatureRef, Pack, Rule
from tactful.policy.parse import DEFAULT_PACK, load_pack
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


#: Features that speak about the customer's consent: a rule reading one of them is a consent rule.
CONSENT_FEATURES = frozenset({"consent_granted", "consent_refused", "share_consent_granted",
                              "profiling_opt_in"})


def is_consent_rule(rule: Rule) -> bool:
    return bool(rule.when.features() & CONSENT_FEATURES)


def _uncovered(keys: Iterable[str], by: Iterable[str]) -> list[str]:
    """The keys of ``keys`` that no key of ``by`` covers (itself or an ancestor)."""
    by = tuple(by)
    return [k for k in keys if not any(vocab.covers(b, k) for b in by)]


def _names(values: Iterable[object]) -> str:
    return ", ".join(sorted(str(getattr(v, "value", v)) for v in values))


#: Settings whose change lets more touches past the consent rules: (setting, the direction that weakens
#: -- "drops" an entry of the parent's list or "adds" one --, whether entries are taxonomy keys (a key
#: covers its sub-keys) or plain values, and what the change means).
_WEAKENING: tuple[tuple[str, str, bool, str], ...] = (
    ("marketing_purposes", "drops", True, "touches with these purposes no longer count as marketing, so "
     "they escape opt-in and caps"),
    ("marketing_kinds", "drops", False, "such touches no longer count as marketing, so they escape opt-in "
     "and caps"),
    ("promotional_kinds", "drops", False, "such touches filed under a service purpose no longer count as "
     "marketing, so they escape opt-in and caps"),
    ("outbound_channels", "drops", False, "promotional touches on these channels filed under a service "
     "purpose escape opt-in and caps"),
    ("transactional_purposes", "adds", True, "promotional touches filed under these purposes no longer "
     "count as marketing"),
    ("in_session_channels", "adds", False, "generic touches on these channels no longer need a marketing "
     "opt-in"),
    ("never_use_categories", "drops", True, "facts of these categories may be used to personalize or "
     "market again"),
    ("gpc_refuses", "drops", True, "a Global Privacy Control signal no longer refuses them"),
    ("share_consent_purposes", "adds", True, "a grant of these now lets individual data go to third "
     "parties"),
    ("profiling_opt_in_purposes", "adds", True, "a grant of these now counts as the opt-in to targeting "
     "on inferred sensitive attributes"),
    ("transactional_kinds", "adds", False, "closed customers get these too, and the openness cap no "
     "longer limits them"),
    ("sensitive_categories", "drops", True, "facts of these categories are no longer checked as "
     "sensitive"),
)


def _weaker_settings(pack: Pack, parent: Pack) -> list[str]:
    """Settings of ``pack`` that let more touches past the consent rules than ``parent``'s."""
    mine, theirs = pack.settings, parent.settings
    out: list[str] = []
    for name, direction, keys, meaning in _WEAKENING:
        old, new = getattr(theirs, name), getattr(mine, name)
        before, after = (old, new) if direction == "drops" else (new, old)
        if keys:
            changed = ", ".join(_uncovered(before, after))
        else:
            changed = _names(set(before) - set(after)) if set(before) - set(after) else ""
        if changed:
            out.append(f"setting {name} {direction} {changed}: {meaning}")
    if mine.min_group_size < theirs.min_group_size:
        out.append(f"setting min_group_size lowers the smallest aggregate from {theirs.min_group_size} to "
                   f"{mine.min_group_size}: smaller groups go to partners without the customers' consent")
    for old in theirs.frequency_caps:
        for channel in sorted(old.channels, key=lambda c: c.value):
            new = next((c for c in mine.frequency_caps if channel in c.channels), None)
            if new is None:
                out.append(f"setting frequency_caps: marketing on {channel.value} is no longer capped "
                           f"(was {old.max} in {old.days} days)")
            elif new.max * old.days > old.max * new.days or new.max > old.max:
                out.append(f"setting frequency_caps: {channel.value} allows {new.max} in {new.days} days "
                           f"(was {old.max} in {old.days} days)")
    return out


def consent_warnings(pack: Pack, parent: Pack | None) -> list[str]:
    """Warnings for a pack that disables or weakens the consent rules of the pack it extends (or, with
    no parent, has none at all)."""
    if parent is None:
        if not any(is_consent_rule(r) for r in pack.rules):
            return [f"no rule reads the customer's consent ({', '.join(sorted(CONSENT_FEATURES))}): "
                    "opt-ins and refusals are not checked"]
        return []
    out: list[str] = []
    for rule in parent.rules:
        if not is_consent_rule(rule):
            continue
        if rule.id in pack.disabled:
            out.append(f"disables the consent rule {rule.id} ({rule.title})")
            continue
        mine = next((r for r in pack.rules if r.id == rule.id), None)
        if mine is None or mine == rule:
            continue
        if mine.verdict.rank < rule.verdict.rank:
            out.append(f"rule {rule.id}: replaces a consent rule with a weaker verdict "
                       f"({rule.verdict.value} -> {mine.verdict.value})")
        elif mine.when != rule.when:
            out.append(f"rule {rule.id}: replaces a consent rule with another condition; make sure it "
                       "blocks at least what the inherited rule blocked")
    return out + _weaker_settings(pack, parent)


def parent_pack(pack: Pack) -> Pack | None:
    """The pack ``pack`` extends, loaded again (``None`` when it extends nothing)."""
    if pack.extends is None:
        return None
    if pack.extends == DEFAULT_PACK:
        return load_pack(DEFAULT_PACK)
    return load_pack(Path(pack.source).parent / pack.extends)


def lint_pack(path: Path | str) -> list[str]:
    """Raise :class:`~tactful.errors.PolicyError` on the first error; return the warnings."""
    pack = load_pack(path)
    return pack_warnings(pack) + consent_warnings(pack, parent_pack(pack))
