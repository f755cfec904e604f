"""The Python evaluator: one scenario, one pack → a :class:`~tactful.model.Decision`.

Each rule's condition is compiled once per pack into a Python predicate over the feature values of
:func:`tactful.features.derive` (settings resolved to literals first by
:func:`tactful.policy.nodes.resolve_settings`, the pass the batch compiler runs too). The fired rules
become a decision through :func:`tactful.policy.fold.fold`, the same fold the compiled evaluator runs
over columns; every fired rule is reported with a plain-language message that names the facts.
:func:`evaluate` never raises: a failure to derive the features, a missing feature, a failure to
compile or to evaluate a rule becomes a ``block`` whose reason says what failed (fail closed).

The compiled predicates live in this module's cache, keyed by the pack object (the pack itself holds
no cache) and dropped when the pack is.
"""

from __future__ import annotations

import string
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from tactful.features import FEATURES, Features, FType, derive, describe_value, evaluation_time
from tactful.features import Settings as _Settings
from tactful.model import Decision, PolicyRef, Reason, Scenario
from tactful.policy.fold import FAIL_CLOSED_GUARD, PY, FoldPlan, fold, plan
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
    UnsupportedNode,
    resolve_settings,
)
from tactful.vocab import DEPTH_ORDER, VERDICT_ORDER, Depth, Verdict, data_categories

Pred = Callable[[Mapping[str, Any]], bool]

#: Rule id of the reason given when the evaluator itself fails (not a pack rule).
EVALUATION_ERROR = "evaluation-error"
__all__ = ["EVALUATION_ERROR", "FAIL_CLOSED_GUARD", "compile_condition", "evaluate", "render_message"]


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
    """A predicate over feature values, settings resolved first. Raises :class:`UnsupportedNode` on a
    node it does not know."""
    return _compile(resolve_settings(cond, settings))


def _compile(cond: Cond) -> Pred:
    if isinstance(cond, Flag):
        name = cond.feature
        return lambda v: v[name] is True
    if isinstance(cond, Not):
        inner = _compile(cond.operand)
        return lambda v: not inner(v)
    if isinstance(cond, All):
        parts = tuple(_compile(c) for c in cond.operands)
        return lambda v: all(p(v) for p in parts)
    if isinstance(cond, AnyOf):
        parts = tuple(_compile(c) for c in cond.operands)
        return lambda v: any(p(v) for p in parts)
    if isinstance(cond, Compare):
        return _compile_compare(cond)
    raise UnsupportedNode(f"unsupported condition node {type(cond).__name__} at {cond.where}")


def _compile_compare(cond: Compare) -> Pred:
    spec = FEATURES[cond.feature]
    name = cond.feature
    operand = cond.operand
    if cond.op in (Op.IN, Op.NOT_IN):
        if not isinstance(operand, Literal):
            raise UnsupportedNode(f"{cond.op.value} against {type(operand).__name__} at {cond.where}")
        members = frozenset(operand.value)
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
    if not isinstance(operand, Literal):
        raise UnsupportedNode(f"unsupported operand {type(operand).__name__} at {cond.where}")
    value = operand.value
    if ranks is not None:
        r, target = ranks, ranks[value]
        return lambda v: cmp(r[v[name]], target)
    return lambda v: cmp(v[name], value)


class _Compiled:
    """A pack's rules with their predicates (or the error compiling them raised), the features each
    rule reads, and the fold plan."""

    def __init__(self, pack: Pack) -> None:
        self.rules: list[tuple[Rule, Pred | None, str | None, tuple[str, ...]]] = []
        self.any_preds: dict[int, Pred] = {}
        self.plan: FoldPlan = plan(pack)
        for rule in pack.rules:
            try:
                reads = tuple(sorted(rule.reads()))
            except Exception:
                reads = ()
            try:
                pred = compile_condition(rule.when, pack.settings)
                self.rules.append((rule, pred, None, reads))
                self._index_any(rule.when, pack.settings)
            except Exception as exc:
                self.rules.append((rule, None, f"{type(exc).__name__}: {exc}", reads))

    def _index_any(self, cond: Cond, settings: _Settings) -> None:
        for node in cond.walk():
            if isinstance(node, AnyOf):
                for c in node.operands:
                    self.any_preds[id(c)] = compile_condition(c, settings)


_CACHE: dict[int, _Compiled] = {}
_CACHE_LOCK = threading.Lock()


def _compiled(pack: Pack) -> _Compiled:
    """The compiled rules of ``pack``, cached while the pack object lives."""
    key = id(pack)
    hit = _CACHE.get(key)
    if hit is None:
        hit = _Compiled(pack)
        with _CACHE_LOCK:
            if key not in _CACHE:
                _CACHE[key] = hit
                weakref.finalize(pack, _CACHE.pop, key, None)
            hit = _CACHE[key]
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


def _rule_reasons(comp: _Compiled, feats: Features, fired: Iterable[str],
                  failed: Mapping[str, str]) -> tuple[list[Reason], dict[str, None]]:
    """The reasons (their messages filled from the features) and remedies of the rules that fired, in
    the pack's order; a rule in ``failed`` (rule id -> why) blocks and says so."""
    fired_ids = set(fired)
    values = feats.values
    reasons: list[Reason] = []
    remedies: dict[str, None] = {}
    for rule, _, _, _ in comp.rules:
        if rule.id not in fired_ids:
            continue
        if rule.id in failed:
            reasons.append(Reason(rule=rule.id, verdict=Verdict.BLOCK,
                                  message=f"rule {rule.id} could not be evaluated ({failed[rule.id]}); "
                                          "blocked to fail closed"))
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
    return reasons, remedies


def explain_fired(pack: Pack, feats: Features, fired: Iterable[str],
                  failed: Mapping[str, str] | None = None) -> tuple[tuple[Reason, ...], tuple[str, ...]]:
    """What the engine tells a person about a decision another evaluator made (the batch's compiled
    policy gives the ids of the rules that fired): each fired rule's message filled from ``feats``
    exactly as :func:`evaluate` fills it, and the remedies. Unknown ids are skipped (the caller knows
    what else it fired, e.g. the fail-closed guard)."""
    reasons, remedies = _rule_reasons(_compiled(pack), feats, fired, failed or {})
    return tuple(reasons), tuple(remedies)


def _block(pack: Pack, rule: str, message: str) -> Decision:
    return Decision(verdict=Verdict.BLOCK, max_depth=Depth.NONE, named=False,
                    remedies=("fix the input or the policy, then decide again",),
                    reasons=(Reason(rule=rule, verdict=Verdict.BLOCK, message=message),),
                    policy=PolicyRef(name=pack.name, version=pack.version))


def evaluate(scenario: Scenario, pack: Pack, run_time: datetime | None = None) -> Decision:
    """Decide one scenario with one pack. Never raises; fails closed.

    The scenario is judged at its own ``now``; one that states none is judged at ``run_time``, the
    time of the run (a caller deciding many scenarios reads the clock once and passes it), or when
    that is not given either, at the time of this call."""
    try:
        if scenario.now is None and run_time is None:
            run_time = datetime.now(UTC)  # the library's default: the time of this call
        return _evaluate(scenario, pack, evaluation_time(scenario, run_time))
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


def _guard_reason(held: list[str], feats: Features) -> Reason:
    """The built-in fail-closed guard's reason: which input guard held (or was missing) without a block
    rule of the pack covering it."""
    parts = []
    facts: dict[str, None] = {}
    for g in held:
        keys = feats.keys.get(g, ())
        parts.append(g.replace("_", " ") + (f" ({', '.join(keys)})" if keys else ""))
        facts.update(dict.fromkeys(feats.facts.get(g, ())))
    return Reason(rule=FAIL_CLOSED_GUARD, verdict=Verdict.BLOCK, facts=tuple(facts),
                  message=f"the input cannot be judged: {'; '.join(parts)}; blocked to fail closed "
                          "whatever the policy says")


def _condition_values(comp: _Compiled, values: Mapping[str, Any]) -> tuple[dict[str, bool | None],
                                                                            dict[str, str]]:
    """Each rule's condition value; ``None`` (and a failure text) when it cannot be evaluated: it did
    not compile, a feature it reads is missing, or it raised."""
    conds: dict[str, bool | None] = {}
    failures: dict[str, str] = {}
    for rule, pred, error, reads in comp.rules:
        if pred is None:
            conds[rule.id], failures[rule.id] = None, error or "it could not be compiled"
            continue
        missing = [f for f in reads if values.get(f) is None]
        if missing:
            conds[rule.id], failures[rule.id] = None, f"missing value of {', '.join(missing)}"
            continue
        try:
            conds[rule.id] = bool(pred(values))
        except Exception as exc:
            conds[rule.id], failures[rule.id] = None, f"{type(exc).__name__}: {exc}"
    return conds, failures


def _evaluate(scenario: Scenario, pack: Pack, now: datetime) -> Decision:
    if not pack.rules:
        return _block(pack, EVALUATION_ERROR, "the policy pack has no rules, so nothing could be "
                      "checked; blocked to fail closed")
    comp = _compiled(pack)
    try:
        feats = derive(scenario, pack.settings, now)
    except Exception as exc:
        return _block(pack, EVALUATION_ERROR,
                      f"the scenario's features could not be derived ({type(exc).__name__}: {exc}); "
                      "blocked to fail closed")
    values = feats.values
    touch = scenario.touch
    conds, failures = _condition_values(comp, values)

    def depth_rank(name: str) -> Any:
        value = values.get(name)
        return value.rank if isinstance(value, Depth) else None

    out = fold(comp.plan, conds, values.get, depth_rank, touch.depth.rank, touch.named, PY)
    reasons, remedies = _rule_reasons(
        comp, feats, [rule.id for rule, _, _, _ in comp.rules if out.fired[rule.id]],
        {rid: failures.get(rid, "its inputs were missing") for rid, bad in out.failed.items() if bad})
    if out.guard:
        reasons.append(_guard_reason([g for g, held in out.guard_held.items() if held], feats))
        remedies["fix the input or the policy, then decide again"] = None
    return Decision(verdict=VERDICT_ORDER[out.verdict], max_depth=DEPTH_ORDER[out.max_depth],
                    named=bool(out.named), remedies=tuple(remedies), reasons=tuple(reasons),
                    policy=PolicyRef(name=pack.name, version=pack.version))
