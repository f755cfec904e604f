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


def _weaker_settings(pack: Pack, parent: Pack) -> list[str]:
    """Settings of ``pack`` that let more touches past the consent rules than ``parent``'s."""
    mine, theirs = pack.settings, parent.settings
    out: list[str] = []
    if lost := _uncovered(theirs.marketing_purposes, mine.marketing_purposes):
        out.append(f"setting marketing_purposes drops {', '.join(lost)}: touches with these purposes "
                   "no longer count as marketing, so they escape opt-in and caps")
    if lost_kinds := set(theirs.marketing_kinds) - set(mine.marketing_kinds):
        out.append(f"setting marketing_kinds drops {_names(lost_kinds)}: such touches no longer count as "
                   "marketing, so they escape opt-in and caps")
    if lost_kinds := set(theirs.promotional_kinds) - set(mine.promotional_kinds):
        out.append(f"setting promotional_kinds drops {_names(lost_kinds)}: such touches filed under a "
                   "service purpose no longer count as marketing, so they escape opt-in and caps")
    if lost_channels := set(theirs.outbound_channels) - set(mine.outbound_channels):
        out.append(f"setting outbound_channels drops {_names(lost_channels)}: promotional touches on "
                   "these channels filed under a service purpose escape opt-in and caps")
    if extra := _uncovered(mine.transactional_purposes, theirs.transactional_purposes):
        out.append(f"setting transactional_purposes adds {', '.join(extra)}: promotional touches filed "
                   "under these purposes no longer count as marketing")
    if extra_channels := set(mine.in_session_channels) - set(theirs.in_session_channels):
        out.append(f"setting in_session_channels adds {_names(extra_channels)}: generic touches on these "
                   "channels no longer need a marketing opt-in")
    if lost := _uncovered(theirs.never_use_categories, mine.never_use_categories):
        out.append(f"setting never_use_categories drops {', '.join(lost)}: facts of these categories "
                   "may be used to personalize or market again")
    if lost := _uncovered(theirs.gpc_refuses, mine.gpc_refuses):
        out.append(f"setting gpc_refuses drops {', '.join(lost)}: a Global Privacy Control signal no "
                   "longer refuses them")
    if extra := _uncovered(mine.share_consent_purposes, theirs.share_consent_purposes):
        out.append(f"setting share_consent_purposes adds {', '.join(extra)}: a grant of these now lets "
                   "individual data go to third parties")
    if extra := _uncovered(mine.profiling_opt_in_purposes, theirs.profiling_opt_in_purposes):
        out.append(f"setting profiling_opt_in_purposes adds {', '.join(extra)}: a grant of these now "
                   "counts as the opt-in to targeting on inferred sensitive attributes")
    if extra_kinds := set(mine.transactional_kinds) - set(theirs.transactional_kinds):
        out.append(f"setting transactional_kinds adds {_names(extra_kinds)}: closed customers get these "
                   "too, and the openness cap no longer limits them")
    if lost := _uncovered(theirs.sensitive_categories, mine.sensitive_categories):
        out.append(f"setting sensitive_categories drops {', '.join(lost)}: facts of these categories "
                   "are no longer checked as sensitive")
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
