"""The Python evaluator: one scenario, one pack → a :class:`~tactful.model.Decision`.

Each rule's condition is compiled once per pack into a Python predicate over the feature values of
:func:`tactful.features.derive` (settings are resolved at compile time, as the batch compiler does).
The most restrictive fired verdict wins; every fired rule is reported with a plain-language message
that names the facts. :func:`evaluate` never raises: a failure to derive the features, to compile or
to evaluate a rule becomes a ``block`` whose reason says what failed (fail closed, never open).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from enum import StrEnum
from functools import lru_cache
from typing import Any

from tactful.features import FAIL_CLOSED_FEATURES, FEATURES, Features, FType, derive, describe_value
from tactful.features import Settings as _Settings
from tactful.model import Decision, PolicyRef, Reason, Scenario
from tactful.policy.nodes import (
    All,
    AnyOf,
    Compare,
    Cond,
    FeatureRef,
    Flag,
    Literal,
    Not,
    Op,
    Pack,
    Rule,
    SettingRef,
    UnsupportedNode,
)
from tactful.vocab import Depth, Verdict, data_categories

Pred = Callable[[Mapping[str, Any]], bool]

#: Rule id of the reason given when the evaluator itself fails (not a pack rule).
EVALUATION_ERROR = "evaluation-error"
#: Rule id of the reason given when an input guard holds but no rule of the pack blocked on it.
FAIL_CLOSED_GUARD = "fail-closed-guard"

def _rank_of(enum: type[StrEnum]) -> dict[Any, int]:
    return {m: i for i, m in enumerate(enum)}


_CMP: dict[Op, Callable[[Any, Any], bool]] = {
    Op.EQ: lambda a, b: bool(a == b),
    Op.NE: lambda a, b: bool(a != b),
    Op.LT: lambda a, b: bool(a < b),
    Op.LE: lambda a, b: bool(a <= b),
    Op.GT: lambda a, b: bool(a > b),
    Op.GE: lambda a, b: bool(a >= b),
}


def compile_condition(cond: Cond, settings: _Settings) -> Pred:
    """A predicate over feature values. Raises :class:`UnsupportedNode` on a node it does not know."""
    if isinstance(cond, Flag):
        name = cond.feature
        return lambda v: v[name] is True
    if isinstance(cond, Not):
        inner = compile_condition(cond.operand, settings)
        return lambda v: not inner(v)
    if isinstance(cond, All):
        parts = tuple(compile_condition(c, settings) for c in cond.operands)
        return lambda v: all(p(v) for p in parts)
    if isinstance(cond, AnyOf):
        parts = tuple(compile_condition(c, settings) for c in cond.operands)
        return lambda v: any(p(v) for p in parts)
    if isinstance(cond, Compare):
        return _compile_compare(cond, settings)
    raise UnsupportedNode(f"unsupported condition node {type(cond).__name__}")


def _compile_compare(cond: Compare, settings: _Settings) -> Pred:
    spec = FEATURES[cond.feature]
    name = cond.feature
    operand = cond.operand
    if cond.op in (Op.IN, Op.NOT_IN):
        if isinstance(operand, Literal):
            members = frozenset(operand.value)
        elif isinstance(operand, SettingRef):
            members = frozenset(settings.value(operand.name))
        else:
            raise UnsupportedNode(f"{cond.op.value} against {type(operand).__name__}")
        if cond.op is Op.IN:
            return lambda v: v[name] in members
        return lambda v: v[name] not in members
    cmp = _CMP[cond.op]
    ranks = _rank_of(spec.enum) if spec.type is FType.ORDERED and spec.enum is not None else None
    if isinstance(operand, FeatureRef):
        other = operand.name
        if ranks is not None:
            r = ranks
            return lambda v: cmp(r[v[name]], r[v[other]])
        return lambda v: cmp(v[name], v[other])
    if isinstance(operand, Literal):
        value = operand.value
    elif isinstance(operand, SettingRef):
        value = settings.value(operand.name)
    else:
        raise UnsupportedNode(f"unsupported operand {type(operand).__name__}")
    if ranks is not None:
        r, target = ranks, ranks[value]
        return lambda v: cmp(r[v[name]], target)
    return lambda v: cmp(v[name], value)


class _Compiled:
    """A pack's rules with their predicates (or the error compiling them raised)."""

    def __init__(self, pack: Pack) -> None:
        self.rules: list[tuple[Rule, Pred | None, str | None]] = []
        self.any_preds: dict[int, Pred] = {}
        #: rule id -> the fail-closed guard features its condition reads (for the built-in guard)
        self.guards: dict[str, frozenset[str]] = {}
        for rule in pack.rules:
            try:
                self.guards[rule.id] = rule.when.features() & frozenset(FAIL_CLOSED_FEATURES)
            except Exception:
                self.guards[rule.id] = frozenset()
            try:
                pred = compile_condition(rule.when, pack.settings)
                self.rules.append((rule, pred, None))
                self._index_any(rule.when, pack.settings)
            except Exception as exc:
                self.rules.append((rule, None, f"{type(exc).__name__}: {exc}"))

    def _index_any(self, cond: Cond, settings: _Settings) -> None:
        if isinstance(cond, AnyOf):
            for c in cond.operands:
                self.any_preds[id(c)] = compile_condition(c, settings)
        if isinstance(cond, All | AnyOf):
            for c in cond.operands:
                self._index_any(c, settings)


def _compiled(pack: Pack) -> _Compiled:
    hit = pack._memo.get("compiled")
    if hit is None:
        hit = _Compiled(pack)
        pack._memo["compiled"] = hit
    assert isinstance(hit, _Compiled)
    return hit


def _collect(cond: Cond, values: Mapping[str, Any], feats: Features, comp: _Compiled,
             facts: dict[str, None], keys: dict[str, None]) -> None:
    if isinstance(cond, Flag):
        for f in feats.facts.get(cond.feature, ()):
            facts[f] = None
        for k in feats.keys.get(cond.feature, ()):
            keys[k] = None
    elif isinstance(cond, Compare):
        for f in feats.facts.get(cond.feature, ()):
            facts[f] = None
    elif isinstance(cond, All):
        for c in cond.operands:
            _collect(c, values, feats, comp, facts, keys)
    elif isinstance(cond, AnyOf):
        for c in cond.operands:
            pred = comp.any_preds.get(id(c))
            if pred is None or pred(values):
                _collect(c, values, feats, comp, facts, keys)


@lru_cache(maxsize=1024)
def _key_words(key: str) -> str:
    """A data category in words (``user.sexual_life`` -> ``sex life``); other keys as they are."""
    term = data_categories().terms.get(key)
    return term.name.lower() if term is not None else key


def render_message(template: str, values: Mapping[str, Any], facts: list[str], keys: list[str],
                   labels: Mapping[str, str]) -> str:
    """Fill a rule message: {facts} (labels, else ids), {keys}, {<feature>}."""
    fields: dict[str, str] = {
        "facts": ", ".join(f"“{labels.get(f, f)}”" for f in facts) or "no specific fact",
        "keys": ", ".join(_key_words(k) for k in keys) or "none",
    }
    for _, name, _, _ in string.Formatter().parse(template):
        if name and name not in fields:
            fields[name] = describe_value(values.get(name, "?"))
    return template.format_map(fields)


def _block(pack: Pack, rule: str, message: str) -> Decision:
    return Decision(verdict=Verdict.BLOCK, max_depth=Depth.NONE, named=False,
                    remedies=("fix the input or the policy, then decide again",),
                    reasons=(Reason(rule=rule, verdict=Verdict.BLOCK, message=message),),
                    policy=PolicyRef(name=pack.name, version=pack.version))


def evaluate(scenario: Scenario, pack: Pack) -> Decision:
    """Decide one scenario with one pack. Never raises; fails closed."""
    try:
        return _evaluate(scenario, pack)
    except Exception as exc:
        try:
            return _block(pack, EVALUATION_ERROR,
                          f"the decision could not be made ({type(exc).__name__}: {exc}); "
                          "blocked to fail closed")
        except Exception:
            return Decision(verdict=Verdict.BLOCK, max_depth=Depth.NONE, named=False,
                            reasons=(Reason(rule=EVALUATION_ERROR, verdict=Verdict.BLOCK,
                                            message=f"the decision could not be made ({exc})"),),
                            policy=PolicyRef(name="unknown", version="unknown"))


def _guard(values: Mapping[str, Any], feats: Features, covered: set[str]) -> Reason | None:
    """The built-in fail-closed guard: a block when an input guard feature holds (or is missing) and no
    block rule of the pack reading it fired. Keeps a pack that lacks (or weakens) the guard rules from
    failing open."""
    held = [g for g in FAIL_CLOSED_FEATURES if values.get(g) is not False and g not in covered]
    if not held:
        return None
    parts = []
    facts: dict[str, None] = {}
    for g in held:
        keys = feats.keys.get(g, ())
        parts.append(g.replace("_", " ") + (f" ({', '.join(keys)})" if keys else ""))
        facts.update(dict.fromkeys(feats.facts.get(g, ())))
    return Reason(rule=FAIL_CLOSED_GUARD, verdict=Verdict.BLOCK, facts=tuple(facts),
                  message=f"the input cannot be judged: {'; '.join(parts)}; blocked to fail closed "
                          "whatever the policy says")


def _evaluate(scenario: Scenario, pack: Pack) -> Decision:
    if not pack.rules:
        return _block(pack, EVALUATION_ERROR, "the policy pack has no rules, so nothing could be "
                      "checked; blocked to fail closed")
    comp = _compiled(pack)
    try:
        feats = derive(scenario, pack.settings)
    except Exception as exc:
        return _block(pack, EVALUATION_ERROR,
                      f"the scenario's features could not be derived ({type(exc).__name__}: {exc}); "
                      "blocked to fail closed")
    values = feats.values
    touch = scenario.touch
    verdict = Verdict.ALLOW
    depth = touch.depth
    named = touch.named
    reasons: list[Reason] = []
    remedies: dict[str, None] = {}
    guarded: set[str] = set()
    for rule, pred, error in comp.rules:
        if pred is None:
            fired, failure = True, error
        else:
            try:
                fired, failure = pred(values), None
            except Exception as exc:
                fired, failure = True, f"{type(exc).__name__}: {exc}"
        if not fired:
            continue
        if rule.verdict is Verdict.BLOCK or failure is not None:
            guarded.update(comp.guards.get(rule.id, ()))
        if failure is not None:
            reasons.append(Reason(rule=rule.id, verdict=Verdict.BLOCK,
                                  message=f"rule {rule.id} could not be evaluated ({failure}); "
                                          "blocked to fail closed"))
            verdict = Verdict.BLOCK
            continue
        facts: dict[str, None] = {}
        keys: dict[str, None] = {}
        try:
            _collect(rule.when, values, feats, comp, facts, keys)
            message = render_message(rule.message, values, list(facts), list(keys), feats.labels)
        except Exception as exc:
            message = f"{rule.title} (the message could not be rendered: {exc})"
        reasons.append(Reason(rule=rule.id, verdict=rule.verdict, message=message, facts=tuple(facts)))
        for r in rule.remedies:
            try:
                remedies[render_message(r, values, list(facts), list(keys), feats.labels)] = None
            except Exception:
                remedies[r] = None
        if rule.verdict.rank > verdict.rank:
            verdict = rule.verdict
        if rule.verdict is Verdict.SOFTEN:
            cap = rule.max_depth
            if isinstance(cap, FeatureRef):
                cap = values[cap.name]
            if isinstance(cap, Depth) and cap.rank < depth.rank:
                depth = cap
            if rule.drop_name:
                named = False
    guard = _guard(values, feats, guarded)
    if guard is not None:
        reasons.append(guard)
        remedies["fix the input or the policy, then decide again"] = None
        verdict = Verdict.BLOCK
    if verdict.rank >= Verdict.ASK.rank:
        depth, named = Depth.NONE, False
    return Decision(verdict=verdict, max_depth=depth, named=named, remedies=tuple(remedies),
                    reasons=tuple(reasons), policy=PolicyRef(name=pack.name, version=pack.version))
