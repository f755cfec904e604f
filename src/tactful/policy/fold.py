"""The decision fold: how the rules that fired become one decision — written once, run by both
evaluators.

The Python evaluator (:mod:`tactful.policy.evaluate`) folds one row of plain Python values; the compiled
evaluator (:mod:`tactful.policy.compile`) folds whole columns of Ibis expressions. Both call
:func:`fold` with their own :class:`Algebra` (a handful of primitive operations: and, or, not, if,
greatest, least, is-null...), so the semantics below exist in exactly one place:

1. **A missing value or an error blocks.** A rule whose condition is missing (NULL in a frame, ``None``
   in Python: a feature it reads is missing, the condition raised, or it could not be compiled) counts
   as *fired* and *failed*: it contributes ``block`` whatever its own verdict, and none of its soften
   effects. A missing touch depth or naming blocks the row. The result is never NULL.
2. **The most restrictive fired verdict wins** (allow < soften < ask < block).
3. **Depth caps:** every soften rule that fired (and did not fail) caps the depth at its ``max_depth``
   (a depth, or the depth held by a feature); the touch keeps the lowest cap, never more than it asked.
4. **Naming:** a fired soften rule with ``named: false`` takes the name away.
5. **Guards:** for every input guard feature (:data:`tactful.features.FAIL_CLOSED_FEATURES`) that holds
   or is missing, and that no fired *block* rule (or failed rule) reading it covers, the built-in
   ``fail-closed-guard`` blocks — so a pack that lacks or weakens the guard rules cannot fail open.
6. **ask and block show nothing:** the depth becomes ``none`` and the name is dropped.

Verdicts and depths are folded as their ranks (integers), which every backend orders the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from tactful.features import FAIL_CLOSED_FEATURES
from tactful.policy.nodes import FeatureRef, Pack, Rule
from tactful.vocab import Depth, Verdict

V = TypeVar("V")

#: Rule id of the reason given when an input guard holds but no rule of the pack blocked on it.
FAIL_CLOSED_GUARD = "fail-closed-guard"
#: The verdict a missing value or an error gets (written down, never implicit).
ON_MISSING = Verdict.BLOCK


class Algebra(Protocol[V]):
    """The primitive operations the fold needs, over one backend's values (booleans and integers).

    ``value`` may be missing (NULL / None) only where a method says so; the fold guards every other
    place with :meth:`is_null` and :meth:`coalesce` first."""

    def const(self, value: bool | int) -> V: ...

    def is_null(self, value: V) -> V: ...

    def coalesce(self, value: V, default: bool | int) -> V: ...

    def not_(self, value: V) -> V: ...

    def and_(self, values: Sequence[V]) -> V: ...

    def or_(self, values: Sequence[V]) -> V: ...

    def where(self, cond: V, then: V, otherwise: V) -> V: ...

    def greatest(self, values: Sequence[V]) -> V: ...

    def least(self, values: Sequence[V]) -> V: ...

    def ge(self, left: V, right: V) -> V: ...

    def bind(self, value: V) -> V:
        """``value`` computed once and reused wherever the result is used (a column of an
        intermediate projection in a query; the value itself in Python)."""
        ...


class PyAlgebra:
    """The algebra over plain Python values of one row (``None`` is missing)."""

    def const(self, value: bool | int) -> Any:
        return value

    def is_null(self, value: Any) -> Any:
        return value is None

    def coalesce(self, value: Any, default: bool | int) -> Any:
        return default if value is None else value

    def not_(self, value: Any) -> Any:
        return not value

    def and_(self, values: Sequence[Any]) -> Any:
        return all(values)

    def or_(self, values: Sequence[Any]) -> Any:
        return any(values)

    def where(self, cond: Any, then: Any, otherwise: Any) -> Any:
        return then if cond else otherwise

    def greatest(self, values: Sequence[Any]) -> Any:
        return max(values)

    def least(self, values: Sequence[Any]) -> Any:
        return min(values)

    def ge(self, left: Any, right: Any) -> Any:
        return left >= right

    def bind(self, value: Any) -> Any:
        return value


PY = PyAlgebra()


@dataclass(frozen=True, slots=True)
class RulePlan:
    """What one rule contributes to the fold, precomputed from the pack."""

    id: str
    verdict: Verdict
    cap: Depth | str | None  # soften: a depth, or the name of a depth feature
    drop_name: bool
    guards: frozenset[str]  # the input guard features its condition reads


@dataclass(frozen=True, slots=True)
class FoldPlan:
    rules: tuple[RulePlan, ...]
    guards: tuple[str, ...]


def plan_rule(rule: Rule) -> RulePlan:
    cap: Depth | str | None = None
    if rule.verdict is Verdict.SOFTEN:
        cap = rule.max_depth.name if isinstance(rule.max_depth, FeatureRef) else rule.max_depth
    try:
        guards = rule.when.features() & frozenset(FAIL_CLOSED_FEATURES)
    except Exception:  # a node no one knows: the rule fails when evaluated; it guards nothing
        guards = frozenset()
    return RulePlan(rule.id, rule.verdict, cap, rule.drop_name and rule.verdict is Verdict.SOFTEN, guards)


def plan(pack: Pack) -> FoldPlan:
    return FoldPlan(tuple(plan_rule(r) for r in pack.rules), FAIL_CLOSED_FEATURES)


@dataclass(frozen=True, slots=True)
class Folded(Generic[V]):
    """The fold's result, in the backend's values: ranks for verdict and depth."""

    verdict: V  # rank of Verdict
    max_depth: V  # rank of Depth
    named: V
    fired: Mapping[str, V]  # rule id -> it fired (a failed rule fired)
    failed: Mapping[str, V]  # rule id -> its condition was missing or raised
    guard: V  # the built-in fail-closed guard blocks
    guard_held: Mapping[str, V]  # guard feature -> it holds (or is missing) and no block rule covers it


def fold(p: FoldPlan, conditions: Mapping[str, V], feature: Callable[[str], V],
         depth_rank: Callable[[str], V], touch_depth: V, touch_named: V, alg: Algebra[V]) -> Folded[V]:
    """Fold the rules' condition values (``conditions[rule id]``, possibly missing) into a decision.

    ``feature(name)`` gives a guard feature's value (possibly missing), ``depth_rank(name)`` a depth
    feature's rank (for ``max_depth: {feature: ...}``; a rule that reads it fails when it is missing,
    see :meth:`tactful.policy.nodes.Rule.reads`); ``touch_depth`` is the rank of the depth the touch
    asks for and ``touch_named`` whether it greets by name (either missing: block)."""
    c = alg.const
    fired: dict[str, V] = {}
    failed: dict[str, V] = {}
    verdicts: list[V] = [c(Verdict.ALLOW.rank)]
    depth_caps: list[V] = []
    unnamed: list[V] = []
    for r in p.rules:
        value = conditions[r.id]
        failed[r.id] = fail = alg.is_null(value)
        fired[r.id] = fire = alg.coalesce(value, True)  # NULL => fired (and failed)
        if r.verdict is ON_MISSING:
            verdicts.append(alg.where(fire, c(ON_MISSING.rank), c(Verdict.ALLOW.rank)))
        else:
            verdicts.append(alg.where(fire, alg.where(fail, c(ON_MISSING.rank), c(r.verdict.rank)),
                                      c(Verdict.ALLOW.rank)))
        if r.verdict is Verdict.SOFTEN:
            applies = alg.and_([fire, alg.not_(fail)])
            if r.cap is not None:
                cap = c(r.cap.rank) if isinstance(r.cap, Depth) else depth_rank(r.cap)
                depth_caps.append(alg.where(applies, cap, c(Depth.DETAILED_HISTORY.rank)))
            if r.drop_name:
                unnamed.append(applies)
    guard_held: dict[str, V] = {}
    for g in p.guards:
        covering = [fired[r.id] if r.verdict is Verdict.BLOCK else failed[r.id]
                    for r in p.rules if g in r.guards]
        held = alg.coalesce(feature(g), True)  # a missing guard feature holds
        guard_held[g] = alg.and_([held, alg.not_(alg.or_(covering))]) if covering else held
    guard = alg.bind(alg.or_(list(guard_held.values())))
    touch_missing = alg.or_([alg.is_null(touch_depth), alg.is_null(touch_named)])
    verdict = alg.bind(alg.where(alg.or_([guard, touch_missing]), c(ON_MISSING.rank),
                                 alg.greatest(verdicts)))
    strict = alg.ge(verdict, c(Verdict.ASK.rank))
    depth = alg.least([alg.coalesce(touch_depth, Depth.NONE.rank), *depth_caps])
    named = alg.and_([alg.coalesce(touch_named, False), alg.not_(alg.or_(unnamed))]) if unnamed \
        else alg.coalesce(touch_named, False)
    return Folded(verdict=verdict, max_depth=alg.where(strict, c(Depth.NONE.rank), depth),
                  named=alg.where(strict, c(False), named), fired=fired, failed=failed, guard=guard,
                  guard_held=guard_held)
