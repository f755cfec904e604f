"""`tactful policy explain`: every rule of a pack in plain language — what triggers it, what it does,
the story it rests on and why."""

from __future__ import annotations

import re
import textwrap
from enum import Enum
from typing import Any

from tactful.features import FEATURE_LIST, FEATURES
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

#: How a true boolean feature reads in a sentence (the catalogue's plain phrases).
PHRASES: dict[str, str] = {f.name: f.phrase for f in FEATURE_LIST if f.phrase}

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
