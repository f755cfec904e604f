"""The rule tree: typed, immutable nodes, validated when built.

A pack is a tuple of :class:`Rule`; a rule's ``when`` is a condition tree made of :class:`Flag`,
:class:`Compare`, :class:`All`, :class:`AnyOf` and :class:`Not`. Every node checks itself in
``__post_init__`` against the feature and settings vocabulary of :mod:`tactful.features`, so a tree
that exists is a tree both evaluators can run: conditions are per-row computations (booleans, numbers,
comparisons of enum ranks, membership in a set) and nothing else. A consumer that meets a node type
it does not know raises :class:`UnsupportedNode`.

The tree is pure data: nodes hold no caches (an evaluator keeps its own, keyed by the pack), every
condition and rule carries the :class:`SourcePos` of the pack line it was parsed from (so a compiler
can point at it), :meth:`Cond.walk` visits a condition and everything under it, and
:func:`resolve_settings` is the one pass that replaces ``{setting: NAME}`` operands by the pack's
literal values, which both evaluators run before compiling a rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeAlias, cast

from tactful.errors import PolicyError
from tactful.features import FEATURES, SETTINGS, FeatureSpec, FType, Settings, SKind
from tactful.vocab import Channel, Depth, Openness, SharedWith, TouchKind, Verdict


class RuleTreeError(PolicyError):
    """A node was built with a value it cannot hold (an unknown feature, a wrong operand type)."""


class UnsupportedNode(PolicyError):
    """An evaluator or compiler met a node type it does not handle."""


@dataclass(frozen=True, slots=True)
class SourcePos:
    """Where a node was written: the pack file, line and column (1-based)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class Op(StrEnum):
    EQ = "eq"
    NE = "ne"
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"
    IN = "in"
    NOT_IN = "not_in"


ORDER_OPS = frozenset({Op.LT, Op.LE, Op.GT, Op.GE})
SET_OPS = frozenset({Op.IN, Op.NOT_IN})
OP_WORDS: dict[Op, str] = {
    Op.EQ: "is", Op.NE: "is not", Op.LT: "is below", Op.LE: "is at most", Op.GT: "is above",
    Op.GE: "is at least", Op.IN: "is one of", Op.NOT_IN: "is none of",
}

#: Which ops each feature type supports.
TYPE_OPS: dict[FType, frozenset[Op]] = {
    FType.BOOL: frozenset({Op.EQ, Op.NE}),
    FType.INT: frozenset({Op.EQ, Op.NE}) | ORDER_OPS,
    FType.ORDERED: frozenset({Op.EQ, Op.NE}) | ORDER_OPS | SET_OPS,
    FType.CATEGORY: frozenset({Op.EQ, Op.NE}) | SET_OPS,
    FType.TEXT: frozenset({Op.EQ, Op.NE}) | SET_OPS,
}

#: Setting kinds a rule may reference, and what they hold: (is a set?, element type, enum).
SETTING_OPERAND: dict[SKind, tuple[bool, FType, type[StrEnum] | None]] = {
    SKind.OPENNESS: (False, FType.ORDERED, Openness),
    SKind.DEPTH: (False, FType.ORDERED, Depth),
    SKind.SHARED_WITH: (False, FType.ORDERED, SharedWith),
    SKind.INT: (False, FType.INT, None),
    SKind.CHANNELS: (True, FType.CATEGORY, Channel),
    SKind.TOUCH_KINDS: (True, FType.CATEGORY, TouchKind),
    SKind.STRINGS: (True, FType.TEXT, None),
}


def feature_spec(name: str) -> FeatureSpec:
    spec = FEATURES.get(name)
    if spec is None:
        raise RuleTreeError(f"unknown feature {name!r}",
                            hint="see docs/policy-language.md#features for the feature vocabulary")
    return spec


# --------------------------------------------------------------------------- operands


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant: a bool, an int, a string, an enum member, or a frozenset of those (for in/not_in).

    ``setting`` names the pack setting the value was resolved from (:func:`resolve_settings`), if any;
    a list setting may be empty, a written list may not."""

    value: Any
    setting: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class SettingRef:
    """The value of a pack setting, resolved when the pack is loaded."""

    name: str

    def __post_init__(self) -> None:
        spec = SETTINGS.get(self.name)
        if spec is None:
            raise RuleTreeError(f"unknown setting {self.name!r}",
                                hint="see docs/policy-language.md#settings")
        if spec.kind not in SETTING_OPERAND:
            raise RuleTreeError(f"setting {self.name!r} ({spec.kind.value}) cannot be used in a condition",
                                hint="conditions can read settings that are a single value or a list")


@dataclass(frozen=True, slots=True)
class FeatureRef:
    """The value of another feature of the same row."""

    name: str

    def __post_init__(self) -> None:
        feature_spec(self.name)


Operand: TypeAlias = Literal | SettingRef | FeatureRef


# --------------------------------------------------------------------------- conditions


class Cond:
    """Base of condition nodes."""

    __slots__ = ()

    def features(self) -> frozenset[str]:
        """Every feature this condition reads."""
        raise UnsupportedNode(f"unsupported condition node {type(self).__name__}")

    def children(self) -> tuple[Cond, ...]:
        """The conditions directly under this one (none for a leaf)."""
        return ()

    def walk(self) -> Iterator[Cond]:
        """This condition and every condition under it, depth first, parents before children."""
        stack: list[Cond] = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children()))

    @property
    def where(self) -> str:
        """The pack position of this node (``file:line:col``), or ``<unknown position>``."""
        pos = getattr(self, "pos", None)
        return str(pos) if pos is not None else "<unknown position>"


@dataclass(frozen=True, slots=True)
class Flag(Cond):
    """A boolean feature is true."""

    feature: str
    pos: SourcePos | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        spec = feature_spec(self.feature)
        if spec.type is not FType.BOOL:
            raise RuleTreeError(
                f"feature {self.feature!r} is {spec.type_name}, not a boolean; compare it instead",
                hint=f"for example {{{self.feature}: {{eq: ...}}}}")

    def features(self) -> frozenset[str]:
        return frozenset({self.feature})


@dataclass(frozen=True, slots=True)
class Not(Cond):
    operand: Cond
    pos: SourcePos | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.operand, Cond):
            raise RuleTreeError("not: expects one condition")

    def features(self) -> frozenset[str]:
        return self.operand.features()

    def children(self) -> tuple[Cond, ...]:
        return (self.operand,)


@dataclass(frozen=True, slots=True)
class All(Cond):
    operands: tuple[Cond, ...]
    pos: SourcePos | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.operands or not all(isinstance(o, Cond) for o in self.operands):
            raise RuleTreeError("all: expects a non-empty list of conditions")

    def features(self) -> frozenset[str]:
        return frozenset().union(*(o.features() for o in self.operands))

    def children(self) -> tuple[Cond, ...]:
        return self.operands


@dataclass(frozen=True, slots=True)
class AnyOf(Cond):
    operands: tuple[Cond, ...]
    pos: SourcePos | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.operands or not all(isinstance(o, Cond) for o in self.operands):
            raise RuleTreeError("any: expects a non-empty list of conditions")

    def features(self) -> frozenset[str]:
        return frozenset().union(*(o.features() for o in self.operands))

    def children(self) -> tuple[Cond, ...]:
        return self.operands


def _check_literal_element(spec: FeatureSpec, value: Any) -> None:
    if spec.type is FType.BOOL:
        ok = isinstance(value, bool)
    elif spec.type is FType.INT:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif spec.enum is not None:
        ok = isinstance(value, spec.enum)
    else:
        ok = isinstance(value, str)
    if not ok:
        expected = f"one of {', '.join(spec.values)}" if spec.enum is not None else f"a {spec.type.value}"
        raise RuleTreeError(f"{spec.name}: {value!r} is not {expected}")


@dataclass(frozen=True, slots=True)
class Compare(Cond):
    """``feature op operand``. Ordered enums compare by rank; in/not_in test set membership."""

    feature: str
    op: Op
    operand: Operand
    pos: SourcePos | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        spec = feature_spec(self.feature)
        if self.op not in TYPE_OPS[spec.type]:
            allowed = ", ".join(sorted(o.value for o in TYPE_OPS[spec.type]))
            raise RuleTreeError(f"operator {self.op.value!r} does not apply to {self.feature} "
                                f"({spec.type_name})", hint=f"expected one of {allowed}")
        is_set = self.op in SET_OPS
        operand = self.operand
        if isinstance(operand, Literal):
            if is_set:
                if not isinstance(operand.value, frozenset) or (
                        not operand.value and operand.setting is None):
                    raise RuleTreeError(f"{self.op.value} expects a non-empty list")
                for item in operand.value:
                    _check_literal_element(spec, item)
            else:
                _check_literal_element(spec, operand.value)
        elif isinstance(operand, SettingRef):
            sset, stype, senum = SETTING_OPERAND[SETTINGS[operand.name].kind]
            if is_set:
                ok = sset and ((spec.enum is not None and senum is spec.enum)
                               or (spec.type is FType.TEXT and stype is FType.TEXT))
            else:
                ok = not sset and stype is spec.type and senum is spec.enum
            if not ok:
                raise RuleTreeError(
                    f"setting {operand.name!r} ({SETTINGS[operand.name].kind.value}) cannot be "
                    f"compared with {self.feature} ({spec.type_name}) using {self.op.value}")
        elif isinstance(operand, FeatureRef):
            other = feature_spec(operand.name)
            if is_set:
                raise RuleTreeError(f"{self.op.value} expects a list or a list setting, not a feature")
            if other.type is not spec.type or other.enum is not spec.enum:
                raise RuleTreeError(f"feature {operand.name} ({other.type_name}) cannot be compared with "
                                    f"{self.feature} ({spec.type_name})")
        else:
            raise UnsupportedNode(f"unsupported operand {type(operand).__name__}")

    def features(self) -> frozenset[str]:
        extra = {self.operand.name} if isinstance(self.operand, FeatureRef) else set()
        return frozenset({self.feature, *extra})


# --------------------------------------------------------------------------- rules and packs

DepthSpec: TypeAlias = Depth | FeatureRef


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of a pack: when ``when`` holds, the touch gets ``verdict`` and ``message``."""

    id: str
    title: str
    source: str
    when: Cond
    verdict: Verdict
    message: str
    rationale: str = ""
    remedies: tuple[str, ...] = ()
    max_depth: DepthSpec | None = None  # soften only: the highest depth the touch may keep
    drop_name: bool = False  # soften only: the touch may not greet by name
    locked: bool = False  # an extending pack may not disable or replace it
    pos: SourcePos | None = field(default=None, compare=False)  # where the rule starts in its pack

    def reads(self) -> frozenset[str]:
        """Every feature the rule reads: its condition's, and the depth-cap feature of a soften."""
        extra = {self.max_depth.name} if isinstance(self.max_depth, FeatureRef) else set()
        return self.when.features() | extra

    @property
    def where(self) -> str:
        return str(self.pos) if self.pos is not None else "<unknown position>"

    def __post_init__(self) -> None:
        if not self.id or not isinstance(self.id, str):
            raise RuleTreeError("a rule needs an id")
        if self.verdict is Verdict.ALLOW:
            raise RuleTreeError(f"rule {self.id}: verdict allow never changes a decision",
                                hint="expected one of soften, ask, block")
        if not isinstance(self.when, Cond):
            raise RuleTreeError(f"rule {self.id}: 'when' must be a condition")
        if self.verdict is not Verdict.SOFTEN and (self.max_depth is not None or self.drop_name):
            raise RuleTreeError(f"rule {self.id}: max_depth and named apply only to soften rules")
        if self.verdict is Verdict.SOFTEN and self.max_depth is None and not self.drop_name \
                and not self.remedies:
            raise RuleTreeError(f"rule {self.id}: a soften rule must say what to lower",
                                hint="give max_depth, named: false, or a remedy")
        if isinstance(self.max_depth, FeatureRef):
            spec = feature_spec(self.max_depth.name)
            if spec.enum is not Depth:
                raise RuleTreeError(f"rule {self.id}: max_depth feature {spec.name} is not a depth")
        elif self.max_depth is not None and not isinstance(self.max_depth, Depth):
            raise RuleTreeError(f"rule {self.id}: max_depth must be a depth or a depth feature")


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Pack:
    """A loaded policy pack: its own rules merged with those of the pack it extends."""

    name: str
    version: str
    rules: tuple[Rule, ...]
    settings: Settings
    description: str = ""
    extends: str | None = None
    source: str = "<pack>"
    disabled: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise RuleTreeError(f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)


# --------------------------------------------------------------------------- shared passes


def at(node: Cond, pos: SourcePos | None) -> Cond:
    """``node`` with its source position set (the parser's helper)."""
    if pos is None or not hasattr(node, "pos"):
        return node
    done: Cond = dataclasses.replace(cast(Any, node), pos=pos)
    return done


def resolve_settings(cond: Cond, settings: Settings) -> Cond:
    """``cond`` with every ``{setting: NAME}`` operand replaced by the pack's value as a
    :class:`Literal` (which remembers the setting's name). The one pass both evaluators run before
    compiling, so neither reads settings while evaluating. Raises :class:`UnsupportedNode` on a node
    type it does not know."""
    if isinstance(cond, Flag):
        return cond
    if isinstance(cond, Not):
        return dataclasses.replace(cond, operand=resolve_settings(cond.operand, settings))
    if isinstance(cond, All | AnyOf):
        return dataclasses.replace(cond, operands=tuple(resolve_settings(c, settings)
                                                        for c in cond.operands))
    if isinstance(cond, Compare):
        operand = cond.operand
        if isinstance(operand, SettingRef):
            value = settings.value(operand.name)
            if cond.op in SET_OPS:
                value = frozenset(value)
            return dataclasses.replace(cond, operand=Literal(value, setting=operand.name))
        if isinstance(operand, Literal | FeatureRef):
            return cond
        raise UnsupportedNode(f"{cond.where}: unsupported operand {type(operand).__name__}")
    raise UnsupportedNode(f"{cond.where}: unsupported condition node {type(cond).__name__}")
