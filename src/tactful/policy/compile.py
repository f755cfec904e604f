"""The compiled evaluator: a pack's rule tree as Ibis expressions over a *feature frame*.

The feature frame has one row per (customer, candidate touch) and one column per feature of
:data:`tactful.features.FEATURES` (booleans, integers, and enum values as their strings). The pack
compiles to three projections that any Ibis backend runs in one query:

1. **normalise**: every enum column becomes its rank (an unknown value becomes NULL, so it blocks);
2. **conditions**: one boolean column per rule, settings already resolved to literals by
   :func:`tactful.policy.nodes.resolve_settings`; a rule whose inputs include a NULL is NULL
   (written down here, not left to SQL's three-valued logic);
3. **fold**: :func:`tactful.policy.fold.fold` — the very function the Python evaluator runs — over
   those columns, giving ``verdict``, ``max_depth``, ``named``, ``fired_rules`` and ``failed_rules``
   (rule ids in pack order, comma-separated, ``fail-closed-guard`` last when it blocked) — or, for
   speed, ``fired_mask`` / ``failed_mask`` (int64 bit masks, one bit per rule in pack order) that
   :meth:`CompiledPack.names_from_masks` names once per distinct mask when the decisions are written.

A node type, operand or operator the compiler does not know raises :class:`CompileError` naming the
pack position of the node (``file:line:col``); so does a frame that lacks a feature column the pack
reads, or holds it with the wrong type.
"""

from __future__ import annotations

import functools
import operator
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pyarrow as pa

from tactful.errors import PolicyError
from tactful.features import FAIL_CLOSED_FEATURES, FEATURES, FType
from tactful.policy.fold import FAIL_CLOSED_GUARD, Folded, fold, plan
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
    resolve_settings,
)
from tactful.vocab import DEPTH_ORDER, VERDICT_ORDER, Depth

#: The decision columns the compiled evaluator adds to the frame's key columns.
DECISION_COLUMNS: tuple[str, ...] = ("verdict", "max_depth", "named", "fired_rules", "failed_rules")
#: Separator of the rule ids in ``fired_rules`` / ``failed_rules``.
RULE_SEPARATOR = ","
#: Rules per int64 word of a rule mask (bit 63, the sign, is never used).
MASK_BITS = 63


class CompileError(PolicyError):
    """The pack (or the frame) cannot be compiled; the message names the pack position."""


def feature_dtype(name: str) -> dt.DataType:
    """The frame column type of a feature: boolean, int64, or string (enum values, text)."""
    ftype = FEATURES[name].type
    if ftype is FType.BOOL:
        return dt.boolean
    if ftype is FType.INT:
        return dt.int64
    return dt.string


def feature_schema(names: Sequence[str] | None = None) -> ibis.Schema:
    """The Ibis schema of a feature frame (every feature, or ``names``)."""
    return ibis.schema({n: feature_dtype(n) for n in (names if names is not None else FEATURES)})


def required_features(pack: Pack) -> tuple[str, ...]:
    """Every feature column the compiled pack reads, in catalogue order: the rules' inputs, the input
    guards, the touch's depth and naming."""
    need: set[str] = {"depth", "named", *FAIL_CLOSED_FEATURES}
    for rule in pack.rules:
        need |= _reads(rule)
    return tuple(n for n in FEATURES if n in need)


def _reads(rule: Rule) -> frozenset[str]:
    try:
        return rule.reads()
    except PolicyError as exc:
        raise CompileError(f"{rule.where}: rule {rule.id}: {exc.message}") from None


# --------------------------------------------------------------------------- the Ibis algebra


def _lit(value: bool | int) -> ir.Value:
    return ibis.literal(value, type=dt.boolean if isinstance(value, bool) else dt.int8)


class IbisAlgebra:
    """The fold's primitive operations as Ibis column expressions over ``table``; :meth:`bind` adds a
    projection so that a value the fold reuses is computed once."""

    def __init__(self, table: Any = None) -> None:
        self.table = table
        self._bound = 0

    def bind(self, value: Any) -> Any:
        if self.table is None:
            return value
        name = f"_f{self._bound}"
        self._bound += 1
        self.table = self.table.mutate(**{name: value})
        return self.table[name]

    def const(self, value: bool | int) -> Any:
        return _lit(value)

    def is_null(self, value: Any) -> Any:
        return value.isnull()

    def coalesce(self, value: Any, default: bool | int) -> Any:
        return ibis.coalesce(value, _lit(default))

    def not_(self, value: Any) -> Any:
        return ~value

    def and_(self, values: Sequence[Any]) -> Any:
        return functools.reduce(operator.and_, values) if values else _lit(True)

    def or_(self, values: Sequence[Any]) -> Any:
        return functools.reduce(operator.or_, values) if values else _lit(False)

    def where(self, cond: Any, then: Any, otherwise: Any) -> Any:
        return ibis.ifelse(cond, then, otherwise)

    def greatest(self, values: Sequence[Any]) -> Any:
        return values[0] if len(values) == 1 else ibis.greatest(*values)

    def least(self, values: Sequence[Any]) -> Any:
        return values[0] if len(values) == 1 else ibis.least(*values)

    def ge(self, left: Any, right: Any) -> Any:
        return left >= right


_ANY = IbisAlgebra()


# --------------------------------------------------------------------------- conditions


def _rank(enum: type[StrEnum], value: Any) -> int:
    return list(enum).index(enum(value))


def _ranked(col: ir.StringValue, enum: type[StrEnum]) -> ir.IntegerValue:
    """An enum column as its rank; a value outside the enum becomes NULL (and so blocks)."""
    return col.cases(*((m.value, i) for i, m in enumerate(enum)), else_=None).cast("int8")


_CMP: dict[Op, Callable[[Any, Any], Any]] = {
    Op.EQ: operator.eq, Op.NE: operator.ne, Op.LT: operator.lt, Op.LE: operator.le,
    Op.GT: operator.gt, Op.GE: operator.ge,
}


def compile_condition(cond: Cond, cols: Mapping[str, Any]) -> Any:
    """A resolved condition (no setting references) as a boolean expression over the normalised
    columns ``cols`` (enum features as ranks). Raises :class:`CompileError` at the node's position."""
    if isinstance(cond, Flag):
        return cols[cond.feature]
    if isinstance(cond, Not):
        return ~compile_condition(cond.operand, cols)
    if isinstance(cond, All):
        return functools.reduce(operator.and_, (compile_condition(c, cols) for c in cond.operands))
    if isinstance(cond, AnyOf):
        return functools.reduce(operator.or_, (compile_condition(c, cols) for c in cond.operands))
    if isinstance(cond, Compare):
        return _compare(cond, cols)
    raise CompileError(f"{cond.where}: the batch compiler does not support the condition node "
                       f"{type(cond).__name__}", hint="rewrite the condition with all, any, not, a "
                       "boolean feature or a comparison")


def _compare(cond: Compare, cols: Mapping[str, Any]) -> Any:
    spec = FEATURES[cond.feature]
    left = cols[cond.feature]
    enum = spec.enum
    operand = cond.operand
    if isinstance(operand, FeatureRef):
        if cond.op not in _CMP:
            raise CompileError(f"{cond.where}: {cond.op.value} against a feature is not supported")
        return _CMP[cond.op](left, cols[operand.name])
    if not isinstance(operand, Literal):
        raise CompileError(f"{cond.where}: the batch compiler does not support the operand "
                           f"{type(operand).__name__} (settings must be resolved first)")

    def value(v: Any) -> Any:
        return _rank(enum, v) if enum is not None else v

    if cond.op in (Op.IN, Op.NOT_IN):
        members = sorted((value(v) for v in operand.value), key=str)
        if not members:  # an empty list setting: nothing is in it
            return _lit(cond.op is Op.NOT_IN)
        test = left.isin(members)
        return test if cond.op is Op.IN else ~test
    if cond.op not in _CMP:
        raise CompileError(f"{cond.where}: the batch compiler does not support the operator "
                           f"{cond.op.value}")
    return _CMP[cond.op](left, value(operand.value))


# --------------------------------------------------------------------------- the pack


@dataclass(frozen=True, slots=True)
class CompiledPack:
    """A pack ready to decide a feature frame: ``decide(frame, keep=[key columns])``."""

    pack: Pack
    rules: tuple[tuple[Rule, Cond], ...]  # each rule with its resolved condition
    features: tuple[str, ...]

    def check_frame(self, frame: ir.Table) -> None:
        """Every feature the pack reads is a column of ``frame`` of the right type."""
        schema = frame.schema()
        for name in self.features:
            if name not in schema:
                users = [r.where + f" (rule {r.id})" for r, _ in self.rules if name in r.reads()]
                raise CompileError(f"the feature frame has no column {name!r}",
                                   hint="read by " + ("; ".join(users) or "the fold (depth, naming, "
                                                      "input guards)"))
            want, got = feature_dtype(name), schema[name]
            if want.is_integer() and got.is_integer():
                continue
            if type(want) is not type(got):
                raise CompileError(f"the feature frame's column {name!r} is {got}, expected {want}")

    def decide(self, frame: ir.Table, keep: Sequence[str] = (),
               rule_ids: typing.Literal["names", "masks"] = "names") -> ir.Table:
        """The decision columns (:data:`DECISION_COLUMNS`) for every row of ``frame``, after the
        ``keep`` columns (the row's keys).

        ``rule_ids="masks"`` gives the fired and failed rules as int64 bit masks (``fired_mask``,
        ``failed_mask``; one more word per :data:`MASK_BITS` rules) instead of comma-joined strings:
        building two strings per row was half the policy step, and a batch has few distinct masks,
        which :meth:`names_from_masks` names once each when the decisions are written."""
        self.check_frame(frame)
        # 1. normalise: enum columns to ranks
        norm: dict[str, Any] = {}
        for name in self.features:
            spec = FEATURES[name]
            col = frame[name]
            norm[name] = _ranked(col, spec.enum) if spec.enum is not None else col
        t = frame.select(*keep, **norm)
        # 2. one column per rule: NULL when an input is missing (=> block in the fold)
        conds: dict[str, Any] = {}
        for i, (rule, cond) in enumerate(self.rules):
            expr = compile_condition(cond, t)
            missing = _ANY.or_([t[f].isnull() for f in sorted(rule.reads())])
            conds[f"_r{i}"] = ibis.ifelse(missing, ibis.null(dt.boolean), expr)
        t2 = t.mutate(**conds)
        # 3. the fold, shared with the Python evaluator
        names = {rule.id: f"_r{i}" for i, (rule, _) in enumerate(self.rules)}
        alg = IbisAlgebra(t2)
        out: Folded[Any] = fold(plan(self.pack), {rid: t2[c] for rid, c in names.items()},
                                lambda g: t2[g], lambda f: t2[f], t2["depth"], t2["named"], alg)
        t3 = alg.table
        verdict = out.verdict.cases(*((i, v.value) for i, v in enumerate(VERDICT_ORDER)),
                                    else_=None)
        depth = out.max_depth.cases(*((i, d.value) for i, d in enumerate(DEPTH_ORDER)), else_=None)
        fired = [*(out.fired[r.id] for r, _ in self.rules), out.guard]
        failed = [out.failed[r.id] for r, _ in self.rules]
        if rule_ids == "names":
            ids: dict[str, Any] = {"fired_rules": _join(fired, self.fired_ids),
                                   "failed_rules": _join(failed, self.fired_ids)}
        elif rule_ids == "masks":
            ids = {**_masks("fired_mask", fired), **_masks("failed_mask", failed)}
        else:
            raise ValueError(f"rule_ids must be 'names' or 'masks', not {rule_ids!r}")
        return t3.select(
            *keep,
            # NULL => block, once more at the very end (the fold never yields NULL; this says so)
            verdict=ibis.coalesce(verdict, ibis.literal(VERDICT_ORDER[-1].value)),
            max_depth=ibis.coalesce(depth, ibis.literal(Depth.NONE.value)),
            named=ibis.coalesce(out.named, _lit(False)),
            **ids,
        )

    @property
    def fired_ids(self) -> tuple[str, ...]:
        """The rule ids a mask's bits stand for: bit ``i`` is the pack's ``i``-th rule, the bit after
        the last rule is ``fail-closed-guard`` (never set in a failed mask)."""
        return (*(r.id for r, _ in self.rules), FAIL_CLOSED_GUARD)

    def mask_columns(self, prefix: str) -> tuple[str, ...]:
        """The names of the int64 words of a ``fired_mask`` / ``failed_mask`` (one word per
        :data:`MASK_BITS` rules: ``fired_mask``, ``fired_mask_1``, ...)."""
        return _mask_names(prefix, len(self.fired_ids))

    def names_from_masks(self, table: pa.Table) -> pa.Table:
        """``table`` (an Arrow result of ``decide(..., rule_ids="masks")``) with its mask words replaced
        by ``fired_rules`` and ``failed_rules``: the rule ids in pack order, comma-separated, exactly
        as ``rule_ids="names"`` gives them. Each distinct mask is named once (a batch has few), so this
        costs a hash lookup per row; the columns come back dictionary-encoded."""
        out = table
        for prefix, column in (("fired_mask", "fired_rules"), ("failed_mask", "failed_rules")):
            words = self.mask_columns(prefix)
            at = out.schema.get_field_index(words[0])
            named = _names_of(self.fired_ids, [out.column(w) for w in words])
            for w in words:
                out = out.remove_column(out.schema.get_field_index(w))
            out = out.add_column(at, column, named)
        return out


def _join(flags: Sequence[Any], ids: Sequence[str]) -> Any:
    """Comma-join the ids whose flag holds (empty string when none)."""
    parts = [ibis.ifelse(f, ibis.literal(i), ibis.null(dt.string)) for f, i in zip(flags, ids, strict=False)]
    return ibis.coalesce(ibis.literal(RULE_SEPARATOR).join(parts), ibis.literal(""))


def _mask_names(prefix: str, bits: int) -> tuple[str, ...]:
    words = max(1, -(-bits // MASK_BITS))
    return (prefix, *(f"{prefix}_{w}" for w in range(1, words)))


def _masks(prefix: str, flags: Sequence[Any]) -> dict[str, Any]:
    """The flags as int64 words: bit ``i % MASK_BITS`` of word ``i // MASK_BITS`` is set when flag
    ``i`` holds (a NULL flag sets no bit; the fold never yields one)."""
    names = _mask_names(prefix, len(flags))
    out: dict[str, Any] = {}
    for w, name in enumerate(names):
        chunk = flags[w * MASK_BITS:(w + 1) * MASK_BITS]
        terms = [ibis.ifelse(f, ibis.literal(1 << b, type=dt.int64), ibis.literal(0, type=dt.int64))
                 for b, f in enumerate(chunk)]
        out[name] = functools.reduce(operator.add, terms) if terms else ibis.literal(0, type=dt.int64)
    return out


def mask_to_names(ids: Sequence[str], words: Sequence[int]) -> str:
    """The comma-joined ids of the bits set in ``words`` (see :meth:`CompiledPack.names_from_masks`)."""
    return RULE_SEPARATOR.join(rid for i, rid in enumerate(ids)
                               if (words[i // MASK_BITS] >> (i % MASK_BITS)) & 1)


def _names_of(ids: Sequence[str], words: Sequence[pa.ChunkedArray]) -> pa.DictionaryArray:
    import numpy as np
    import pyarrow.compute as pc

    if len(words) == 1:
        col = words[0].combine_chunks() if isinstance(words[0], pa.ChunkedArray) else words[0]
        distinct = pc.unique(col)
        index = pc.index_in(col, value_set=distinct)
        names = [mask_to_names(ids, [int(m)]) for m in distinct.to_pylist()]
    else:
        stacked = np.stack([w.to_numpy() for w in words], axis=1)
        uniq, inverse = np.unique(stacked, axis=0, return_inverse=True)
        index = pa.array(inverse.reshape(-1).astype(np.int32))
        names = [mask_to_names(ids, [int(x) for x in row]) for row in uniq]
    return pa.DictionaryArray.from_arrays(index.cast(pa.int32()), pa.array(names, type=pa.string()))


def compile_pack(pack: Pack) -> CompiledPack:
    """Resolve the pack's settings and check that every rule compiles; raises :class:`CompileError`
    naming the pack line of the first node the compiler cannot handle."""
    if not pack.rules:
        raise CompileError(f"the policy pack {pack.name} has no rules; nothing could be checked")
    rules: list[tuple[Rule, Cond]] = []
    probe = ibis.table({n: feature_dtype(n) if FEATURES[n].enum is None else dt.int8 for n in FEATURES},
                       name="features")
    for rule in pack.rules:
        try:
            resolved = resolve_settings(rule.when, pack.settings)
        except PolicyError as exc:  # names the node's position
            raise CompileError(f"{exc.message} (rule {rule.id} at {rule.where})",
                               hint="the batch compiler supports all, any, not, boolean features and "
                                    "comparisons") from None
        compile_condition(resolved, probe)  # raises at the node's position
        rules.append((rule, resolved))
    return CompiledPack(pack, tuple(rules), required_features(pack))
