"""`tactful policy explain`: every rule of a pack in plain language — what triggers it, what it does,
the story it rests on and why."""

from __future__ import annotations

import re
import textwrap
from enum import Enum
from typing import Any

from tactful.features import FEATURES
from tactful.policy.nodes import (
    OP_WORDS,
    All,
    AnyOf,
    Compare,
    Cond,
    FeatureRef,
    Flag,
    Literal,
    Not,
    Pack,
    Rule,
    SettingRef,
    UnsupportedNode,
)
from tactful.vocab import Verdict

#: How a true boolean feature reads in a sentence.
PHRASES: dict[str, str] = {
    "openness_declared": "the customer stated an openness",
    "customer_deceased": "the customer is deceased",
    "named": "the touch greets the customer by name",
    "touch_is_marketing": "the touch is marketing",
    "sender_is_partner": "the sender is a partner",
    "is_partner_share": "the touch hands data to another party",
    "needs_contact_point": "the channel needs a contact point",
    "contact_point_missing": "there is no usable contact point for the channel",
    "contact_point_bounced": "the contact point bounces",
    "consent_granted": "the customer opted in to this purpose on this channel",
    "consent_refused": "the customer refused this purpose on this channel (or sent a GPC signal)",
    "purpose_off_channel": "the touch states a purpose meant for another channel",
    "share_consent_granted": "the customer agreed to sharing with third parties",
    "uses_facts": "the touch uses or shows facts",
    "shows_sensitive": "the touch shows something sensitive",
    "uses_sensitive": "the touch uses something sensitive",
    "sender_sensitive": "receiving anything from the sender reveals something sensitive",
    "uses_inferred_sensitive": "the touch relies on an undeclared inferred sensitive attribute",
    "shows_undeclared_sensitive": "the items shown reveal an undeclared sensitive attribute",
    "profiling_opt_in": "the customer opted in to profiling",
    "uses_conversation_fact": "the touch uses something said in a support conversation",
    "uses_payment_fact": "the touch uses payment data",
    "uses_partner_fact": "the touch uses data a partner collected",
    "uses_birthday": "the touch uses the birthday",
    "birthday_expected": "the customer was told the birthday would be used",
    "shows_preference": "the touch announces a preference",
    "uses_preference": "the touch uses a preference",
    "unknown_vocabulary": "the scenario uses an unknown category or data use",
    "missing_fact_reference": "the touch refers to facts that are not there",
    "touch_personalizes": "the touch personalizes or markets",
    "answers_request": "the touch answers the customer's own request on the channel she asked for",
    "generic_in_session": "the touch is generic in-session content using no personal data",
    "safe_aggregate": "the touch is an aggregate share meeting the minimum group size",
    "contact_point_verified_after_now": "the contact point's verification is dated after now",
    "uses_unlicensed_sensitive": "the touch personalizes with sensitive data the customer never licensed",
    "uses_forbidden_identifier": "the touch uses or shows a government identifier or credentials",
    "uses_realtime_signal": "the touch uses a live observation made minutes ago",
}

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")

VERDICT_WORDS: dict[Verdict, str] = {
    Verdict.ALLOW: "allow",
    Verdict.SOFTEN: "soften the touch",
    Verdict.ASK: "ask the customer first (do not send yet)",
    Verdict.BLOCK: "block the touch",
}


def _words(name: str) -> str:
    return name.replace("_", " ")


def _value(value: Any) -> str:
    if isinstance(value, frozenset):
        return ", ".join(sorted(_value(v) for v in value))
    if isinstance(value, Enum):
        return _words(str(value.value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _operand(operand: object, pack: Pack) -> str:
    if isinstance(operand, Literal):
        return _value(operand.value)
    if isinstance(operand, SettingRef):
        return f"{_value(pack.settings.value(operand.name))} (setting {operand.name})"
    if isinstance(operand, FeatureRef):
        return f"the {_words(operand.name)}"
    raise UnsupportedNode(f"unsupported operand {type(operand).__name__}")


def explain_condition(cond: Cond, pack: Pack) -> str:
    """A condition as an English phrase."""
    if isinstance(cond, Flag):
        return PHRASES.get(cond.feature, f"{_words(cond.feature)} is true")
    if isinstance(cond, Not):
        inner = cond.operand
        if isinstance(inner, Flag):
            return f"not ({PHRASES.get(inner.feature, _words(inner.feature))})"
        return f"not ({explain_condition(inner, pack)})"
    if isinstance(cond, All):
        return " and ".join(_group(c, pack) for c in cond.operands)
    if isinstance(cond, AnyOf):
        return " or ".join(_group(c, pack) for c in cond.operands)
    if isinstance(cond, Compare):
        return f"the {_words(cond.feature)} {OP_WORDS[cond.op]} {_operand(cond.operand, pack)}"
    raise UnsupportedNode(f"unsupported condition node {type(cond).__name__}")


def _group(cond: Cond, pack: Pack) -> str:
    text = explain_condition(cond, pack)
    return f"({text})" if isinstance(cond, All | AnyOf) else text


def explain_rule(rule: Rule, pack: Pack) -> str:
    """One rule: title, trigger, effect, source, rationale, remedies."""
    effect = VERDICT_WORDS[rule.verdict]
    lowers: list[str] = []
    if rule.max_depth is not None:
        cap = (f"the {_words(rule.max_depth.name)}" if isinstance(rule.max_depth, FeatureRef)
               else _words(rule.max_depth.value))
        lowers.append(f"at most {cap} depth")
    if rule.drop_name:
        lowers.append("no greeting by name")
    if lowers:
        effect += f" to {' and '.join(lowers)}"
    lines = [
        f"{rule.id} — {rule.title}" + ("  [locked]" if rule.locked else ""),
        f"  When {explain_condition(rule.when, pack)}: {effect}.",
        f"  Source: {rule.source}",
    ]
    if rule.rationale:
        lines.append(textwrap.fill(f"Why: {rule.rationale}", width=100, initial_indent="  ",
                                   subsequent_indent="    "))
    for remedy in rule.remedies:
        lines.append(f"  Remedy: {_PLACEHOLDER.sub(lambda m: 'the ' + _words(m.group(1)), remedy)}")
    return "\n".join(lines)


def explain_pack(pack: Pack) -> str:
    """The whole pack: a header, then every rule."""
    head = f"Policy pack {pack.name} (version {pack.version})"
    if pack.extends:
        head += f", extends {pack.extends}"
    parts = [head]
    if pack.description:
        parts.append(textwrap.fill(pack.description, width=100))
    if pack.disabled:
        parts.append(f"Disabled rules: {', '.join(pack.disabled)}")
    parts.append("The most restrictive verdict of the rules that fire wins (allow < soften < ask < block).")
    parts.extend(explain_rule(r, pack) for r in pack.rules)
    return "\n\n".join(parts)


def undocumented_phrases() -> list[str]:
    """Boolean features without a plain-language phrase (kept empty by a test)."""
    return [n for n, f in FEATURES.items() if f.type.value == "boolean" and n not in PHRASES]
