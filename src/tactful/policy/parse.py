"""YAML policy packs → the typed rule tree (:mod:`tactful.policy.nodes`).

The pack is read with ``yaml.compose`` so that every value keeps its position: a syntax or type error
names the pack file, the line and column, the offending value and what was expected.

A pack may ``extends:`` another (``default`` is the packaged default pack; anything else is a path,
relative to the extending file, that must stay under the directory of the pack that was loaded: a
file elsewhere is refused without being read; cycles are errors): it inherits the parent's settings
and rules, overrides settings key by key, replaces a rule by id (``replace: true``), disables rules
(``disable: [id, ...]``) and adds rules. Rules marked ``locked: true`` (the fail-closed guards) can be
neither disabled nor replaced.
"""

from __future__ import annotations

import difflib
import os
import re
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn, TypeVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tactful import vocab
from tactful.errors import PolicyError
from tactful.features import FEATURES, SETTINGS, FrequencyCap, FType, Settings, SKind
from tactful.policy.nodes import (
    All,
    AnyOf,
    Compare,
    Cond,
    DepthSpec,
    FeatureRef,
    Flag,
    Literal,
    Not,
    Op,
    Operand,
    Pack,
    Rule,
    RuleTreeError,
    SettingRef,
    SourcePos,
    at,
)
from tactful.safeload import PACK_LIMITS, DocumentError, compose_yaml, decode, read_bytes
from tactful.vocab import Channel, Depth, Openness, SharedWith, TouchKind, Verdict

DEFAULT_PACK = "default"
#: packs that extend each other, at most (a chain this long is a mistake, not a design)
MAX_EXTENDS = 16
TOP_KEYS = ("name", "version", "description", "extends", "settings", "disable", "rules")
RULE_KEYS = ("id", "title", "source", "rationale", "when", "verdict", "message", "remedy", "max_depth",
             "named", "locked", "replace")
PLACEHOLDERS = ("facts", "keys")
_constructor = yaml.constructor.SafeConstructor()
E = TypeVar("E", bound=StrEnum)
_SUGGESTION = re.compile(r"^(did you mean .*?\? )(.*)$", re.DOTALL)


def _suggest(value: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, list(options), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


@dataclass(frozen=True, slots=True)
class _Ctx:
    """Where we are: the file name, for errors."""

    file: str

    def pos(self, node: Node) -> SourcePos:
        """Where ``node`` starts in the pack file (kept on the rule tree for compile errors)."""
        return SourcePos(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def fail(self, node: Node | None, message: str, expected: str | None = None) -> NoReturn:
        line = node.start_mark.line + 1 if node is not None else None
        column = node.start_mark.column + 1 if node is not None else None
        hint = None
        if expected:
            match = _SUGGESTION.match(expected)
            hint = f"{match.group(1)}expected {match.group(2)}" if match else f"expected {expected}"
        raise PolicyError(message, file=self.file, line=line, column=column, hint=hint)

    # -- scalars
    def scalar(self, node: Node) -> Any:
        if not isinstance(node, ScalarNode):
            self.fail(node, f"expected a single value, got a {_kind(node)}")
        return _constructor.construct_object(node, deep=True)

    def text(self, node: Node, what: str) -> str:
        value = self.scalar(node)
        if not isinstance(value, str) or not value.strip():
            self.fail(node, f"{what}: {value!r} is not a non-empty string", "a string")
        return value.strip()

    def boolean(self, node: Node, what: str) -> bool:
        value = self.scalar(node)
        if not isinstance(value, bool):
            self.fail(node, f"{what}: {value!r} is not a boolean", "true or false")
        return value

    def integer(self, node: Node, what: str, maximum: int | None = None) -> int:
        value = self.scalar(node)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            self.fail(node, f"{what}: {value!r} is not a non-negative integer", "an integer such as 10")
        if maximum is not None and value > maximum:
            self.fail(node, f"{what}: {value} is more than {maximum}", f"an integer from 0 to {maximum}")
        return value

    def member(self, node: Node, enum: type[E], what: str) -> E:
        value = self.scalar(node)
        options = [m.value for m in enum]
        if not isinstance(value, str) or value not in options:
            hint = _suggest(str(value), options) if isinstance(value, str) else ""
            self.fail(node, f"{what}: unknown value {value!r}", f"{hint}one of {', '.join(options)}")
        return enum(value)

    # -- collections
    def mapping(self, node: Node, what: str) -> list[tuple[str, ScalarNode, Node]]:
        if not isinstance(node, MappingNode):
            self.fail(node, f"{what}: expected a mapping, got a {_kind(node)}")
        out: list[tuple[str, ScalarNode, Node]] = []
        seen: set[str] = set()
        for k, val in node.value:
            key = self.scalar(k)
            if not isinstance(key, str):
                self.fail(k, f"{what}: keys must be strings, got {key!r}")
            if key in seen:
                self.fail(k, f"{what}: duplicate key {key!r}")
            seen.add(key)
            out.append((key, k, val))
        return out

    def sequence(self, node: Node, what: str) -> list[Node]:
        if not isinstance(node, SequenceNode):
            self.fail(node, f"{what}: expected a list, got a {_kind(node)}")
        return list(node.value)

    def keys_only(self, items: list[tuple[str, ScalarNode, Node]], allowed: Iterable[str], what: str) -> None:
        allowed = list(allowed)
        for key, knode, _ in items:
            if key not in allowed:
                self.fail(knode, f"{what}: unknown key {key!r}",
                          f"{_suggest(key, allowed)}one of {', '.join(allowed)}")

    def category(self, node: Node, what: str) -> str:
        key = self.text(node, what)
        if key not in vocab.data_categories():
            self.fail(node, f"{what}: unknown data category {key!r}",
                      f"{_suggest(key, vocab.data_categories().terms)}a key of the data-category vocabulary")
        return key

    def use(self, node: Node, what: str) -> str:
        key = self.text(node, what)
        if key not in vocab.data_uses():
            self.fail(node, f"{what}: unknown data use {key!r}",
                      f"{_suggest(key, vocab.data_uses().terms)}a key of the data-use vocabulary")
        return key


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "mapping"
    if isinstance(node, SequenceNode):
        return "list"
    return f"value {node.value!r}" if isinstance(node, ScalarNode) else "node"


# --------------------------------------------------------------------------- settings


def _list(ctx: _Ctx, node: Node, what: str, item: Callable[[Node, str], Any]) -> tuple[Any, ...]:
    return tuple(item(n, f"{what}[{i}]") for i, n in enumerate(ctx.sequence(node, what)))


#: Bounds of integer settings. A window reaches back from ``now``: one of a million days would fall
#: before year 1 and make every decision an evaluation error, so a pack that asks for it is invalid.
MAX_DAYS = 36_500  # a century
MAX_COUNT = 1_000_000


def _int_maximum(name: str) -> int:
    if name.endswith("_days"):
        return MAX_DAYS
    if name.endswith("_minutes"):
        return MAX_DAYS * 24 * 60
    return MAX_COUNT


def _setting_value(ctx: _Ctx, name: str, node: Node) -> Any:
    kind = SETTINGS[name].kind
    what = f"setting {name}"
    if kind is SKind.OPENNESS:
        return ctx.member(node, Openness, what)
    if kind is SKind.DEPTH:
        return ctx.member(node, Depth, what)
    if kind is SKind.SHARED_WITH:
        return ctx.member(node, SharedWith, what)
    if kind is SKind.INT:
        return ctx.integer(node, what, _int_maximum(name))
    if kind is SKind.CATEGORIES:
        return _list(ctx, node, what, ctx.category)
    if kind is SKind.USES:
        return _list(ctx, node, what, ctx.use)
    if kind is SKind.CHANNELS:
        return frozenset(_list(ctx, node, what, lambda n, w: ctx.member(n, Channel, w)))
    if kind is SKind.TOUCH_KINDS:
        return frozenset(_list(ctx, node, what, lambda n, w: ctx.member(n, TouchKind, w)))
    if kind is SKind.STRINGS:
        return frozenset(_list(ctx, node, what, ctx.text))
    if kind is SKind.OPENNESS_DEPTHS:
        items = ctx.mapping(node, what)
        out_od: dict[Openness, Depth] = {}
        for key, knode, vnode in items:
            o = ctx.member(knode, Openness, f"{what} key")
            out_od[o] = ctx.member(vnode, Depth, f"{what}.{key}")
        missing = [o.value for o in Openness if o not in out_od]
        if missing:
            ctx.fail(node, f"{what}: no depth for {', '.join(missing)}", "every openness listed")
        return MappingProxyType(out_od)
    if kind is SKind.CHANNEL_VISIBILITY:
        out_cv: dict[Channel, SharedWith] = {}
        for key, knode, vnode in ctx.mapping(node, what):
            out_cv[ctx.member(knode, Channel, f"{what} key")] = ctx.member(vnode, SharedWith, f"{what}.{key}")
        return MappingProxyType(out_cv)
    if kind is SKind.CHANNEL_USES:
        out_cu: dict[Channel, str] = {}
        for key, knode, vnode in ctx.mapping(node, what):
            out_cu[ctx.member(knode, Channel, f"{what} key")] = ctx.use(vnode, f"{what}.{key}")
        return MappingProxyType(out_cu)
    if kind is SKind.CATEGORY_MAP:
        out_cm: dict[str, tuple[str, ...]] = {}
        for key, knode, vnode in ctx.mapping(node, what):
            out_cm[ctx.category(knode, f"{what} key")] = _list(ctx, vnode, f"{what}.{key}", ctx.category)
        return MappingProxyType(out_cm)
    if kind is SKind.FREQUENCY_CAPS:
        caps: list[FrequencyCap] = []
        for i, cnode in enumerate(ctx.sequence(node, what)):
            w = f"{what}[{i}]"
            items = ctx.mapping(cnode, w)
            ctx.keys_only(items, ("channels", "max", "days"), w)
            got = {k: v for k, _, v in items}
            for need in ("channels", "max", "days"):
                if need not in got:
                    ctx.fail(cnode, f"{w}: missing {need!r}", "channels, max and days")
            channels = frozenset(_list(ctx, got["channels"], f"{w}.channels",
                                       lambda n, ww: ctx.member(n, Channel, ww)))
            for c in channels:
                if any(c in other.channels for other in caps):
                    ctx.fail(got["channels"], f"{w}: channel {c.value} is already in another cap group",
                             "each channel in at most one group")
            caps.append(FrequencyCap(channels, ctx.integer(got["max"], f"{w}.max", MAX_COUNT),
                                     ctx.integer(got["days"], f"{w}.days", MAX_DAYS)))
        return tuple(caps)
    raise PolicyError(f"setting kind {kind} has no parser")  # pragma: no cover - every kind is above


#: Settings an input guard reads, and the guard: a pack that extends another may add to them but not
#: drop or change what it inherits, or the locked guard rule would stay in the pack and never fire
#: (``channel_purposes: {}`` would switch purpose-off-channel off).
GUARD_SETTINGS: Mapping[str, str] = MappingProxyType({
    "channel_purposes": "the locked rule purpose-off-channel (feature purpose_off_channel)",
})


def _check_guard_settings(ctx: _Ctx, settings_node: Node, parent: Pack, own: Mapping[str, Any]) -> None:
    for name, guard in GUARD_SETTINGS.items():
        if name not in own:
            continue
        inherited: Mapping[Any, Any] = parent.settings.value(name)
        mine: Mapping[Any, Any] = own[name]
        lost = [f"{getattr(k, 'value', k)}: {v}" for k, v in inherited.items() if mine.get(k) != v]
        if lost:
            where = next((v for k, v in getattr(settings_node, "value", ())
                          if isinstance(k, ScalarNode) and k.value == name), settings_node)
            ctx.fail(where, f"setting {name}: {guard} reads it, so a pack that extends another may add "
                     f"entries but not drop or change inherited ones ({', '.join(lost)})",
                     f"every inherited entry kept, or {name} left out")


def _settings(ctx: _Ctx, node: Node) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, knode, vnode in ctx.mapping(node, "settings"):
        if key not in SETTINGS:
            ctx.fail(knode, f"unknown setting {key!r}",
                     f"{_suggest(key, SETTINGS)}one of {', '.join(SETTINGS)}")
        out[key] = _setting_value(ctx, key, vnode)
    return out


# --------------------------------------------------------------------------- conditions


def _literal(ctx: _Ctx, feature: str, node: Node, is_set: bool) -> Literal:
    spec = FEATURES[feature]

    def one(n: Node, what: str) -> Any:
        if spec.enum is not None:
            return ctx.member(n, spec.enum, what)
        if spec.type is FType.BOOL:
            return ctx.boolean(n, what)
        if spec.type is FType.INT:
            value = ctx.scalar(n)
            if not isinstance(value, int) or isinstance(value, bool):
                ctx.fail(n, f"{what}: {value!r} is not an integer", "an integer")
            return value
        return ctx.text(n, what)

    if is_set:
        items = ctx.sequence(node, feature)
        if not items:
            ctx.fail(node, f"{feature}: an empty list never matches", "a non-empty list")
        return Literal(frozenset(one(n, feature) for n in items))
    return Literal(one(node, feature))


def _operand(ctx: _Ctx, feature: str, op: Op, node: Node) -> Operand:
    if isinstance(node, MappingNode):
        items = ctx.mapping(node, f"{feature} {op.value}")
        if len(items) != 1 or items[0][0] not in ("setting", "feature"):
            ctx.fail(node, f"{feature} {op.value}: a reference is {{setting: NAME}} or {{feature: NAME}}",
                     "a value, a list, {setting: NAME} or {feature: NAME}")
        key, _, vnode = items[0]
        name = ctx.text(vnode, key)
        if key == "setting":
            if name not in SETTINGS:
                ctx.fail(vnode, f"unknown setting {name!r}", f"{_suggest(name, SETTINGS)}one of the settings")
            return SettingRef(name)
        if name not in FEATURES:
            ctx.fail(vnode, f"unknown feature {name!r}", f"{_suggest(name, FEATURES)}one of the features")
        return FeatureRef(name)
    is_set = op in (Op.IN, Op.NOT_IN)
    if is_set and not isinstance(node, SequenceNode):
        ctx.fail(node, f"{feature} {op.value}: expects a list",
                 "a list such as [email, sms] or {setting: NAME}")
    return _literal(ctx, feature, node, is_set)


def _build(ctx: _Ctx, node: Node, make: Callable[[], Cond]) -> Cond:
    try:
        return at(make(), ctx.pos(node))
    except RuleTreeError as exc:
        ctx.fail(node, exc.message, exc.hint[len("expected "):] if exc.hint and exc.hint.startswith(
            "expected ") else exc.hint)


def _compare(ctx: _Ctx, node: Node, feature: str, op: Op, operand: Operand) -> Cond:
    return _build(ctx, node, lambda: Compare(feature, op, operand))


def _condition(ctx: _Ctx, node: Node) -> Cond:
    if isinstance(node, ScalarNode):
        name = ctx.text(node, "condition")
        if name not in FEATURES:
            ctx.fail(node, f"unknown feature {name!r}",
                     f"{_suggest(name, FEATURES)}a boolean feature, all, any, not, "
                     "or {feature: {op: value}}")
        return _build(ctx, node, lambda: Flag(name))
    if isinstance(node, SequenceNode):
        ctx.fail(node, "a condition list needs all: or any: in front", "all: [...] or any: [...]")
    items = ctx.mapping(node, "condition")
    if len(items) != 1:
        conds = [_condition(ctx, MappingNode("tag:yaml.org,2002:map", [(k, v)], k.start_mark, v.end_mark))
                 for _, k, v in items]
        return _build(ctx, node, lambda: All(tuple(conds)))
    key, knode, vnode = items[0]
    if key in ("all", "any"):
        parts = ctx.sequence(vnode, key)
        if not parts:
            ctx.fail(vnode, f"{key}: needs at least one condition", "a non-empty list")
        conds = [_condition(ctx, p) for p in parts]
        return _build(ctx, node, lambda: All(tuple(conds)) if key == "all" else AnyOf(tuple(conds)))
    if key == "not":
        inner = _condition(ctx, vnode)
        return _build(ctx, node, lambda: Not(inner))
    if key not in FEATURES:
        ctx.fail(knode, f"unknown feature {key!r}",
                 f"{_suggest(key, [*FEATURES, 'all', 'any', 'not'])}all, any, not or a feature name")
    if not isinstance(vnode, MappingNode) or any(
            isinstance(k, ScalarNode) and k.value in ("setting", "feature") for k, _ in vnode.value):
        op = Op.IN if isinstance(vnode, SequenceNode) else Op.EQ
        operand = _operand(ctx, key, op, vnode)
        return _build(ctx, vnode, lambda: Compare(key, op, operand))
    comps: list[Cond] = []
    for opname, onode, arg in ctx.mapping(vnode, key):
        if opname not in [o.value for o in Op]:
            ctx.fail(onode, f"{key}: unknown operator {opname!r}",
                     f"{_suggest(opname, [o.value for o in Op])}one of {', '.join(o.value for o in Op)}")
        comps.append(_compare(ctx, onode, key, Op(opname), _operand(ctx, key, Op(opname), arg)))
    if len(comps) == 1:
        return comps[0]
    return _build(ctx, vnode, lambda: All(tuple(comps)))


# --------------------------------------------------------------------------- rules


def _message(ctx: _Ctx, node: Node, what: str = "message") -> str:
    """A reason template: plain text with {facts}, {keys} or {<feature>} placeholders."""
    text = ctx.text(node, what)
    allowed = [*PLACEHOLDERS, *FEATURES]
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        ctx.fail(node, f"message: {exc} (write {{{{ and }}}} for literal braces)", "a valid template")
    for _, f, spec, conv in parsed:
        if f is None:
            continue
        if f not in allowed:
            ctx.fail(node, f"message: unknown placeholder {{{f}}}",
                     f"{_suggest(f, allowed)}{{facts}}, {{keys}} or a feature name")
        if spec or conv:
            ctx.fail(node, f"message: placeholder {{{f}}} may not carry a format or conversion",
                     "{name} alone")
    return text


@dataclass(frozen=True, slots=True)
class _RawRule:
    rule: Rule
    replace: bool
    node: Node


def _rule(ctx: _Ctx, node: Node, index: int) -> _RawRule:
    items = ctx.mapping(node, f"rules[{index}]")
    got = {k: v for k, _, v in items}
    rid_text = ctx.text(got["id"], "id") if "id" in got else None
    where = f"rule {rid_text}" if rid_text else f"rules[{index}]"
    ctx.keys_only(items, RULE_KEYS, where)
    for need in ("id", "title", "source", "when", "verdict", "message"):
        if need not in got:
            ctx.fail(node, f"{where}: missing {need!r}", f"a rule with {', '.join(RULE_KEYS[:7])}")
    rid = ctx.text(got["id"], "id")
    if not vocab.KEY_RE.match(rid.replace("-", "_")):
        ctx.fail(got["id"], f"rule id {rid!r} is not a lower-case-with-dashes name", "an id like my-rule")
    verdict = ctx.member(got["verdict"], Verdict, f"{where} verdict")
    remedies: tuple[str, ...] = ()
    if "remedy" in got:
        r = got["remedy"]
        if isinstance(r, SequenceNode):
            remedies = tuple(_message(ctx, n, f"{where} remedy[{i}]") for i, n in enumerate(r.value))
        else:
            remedies = (_message(ctx, r, f"{where} remedy"),)
    max_depth: DepthSpec | None = None
    if "max_depth" in got:
        mnode = got["max_depth"]
        if isinstance(mnode, MappingNode):
            ref = _operand(ctx, "depth", Op.EQ, mnode)
            if not isinstance(ref, FeatureRef):
                ctx.fail(mnode, f"{where} max_depth: only {{feature: NAME}} may be referenced",
                         "a depth or {feature: openness_depth_cap}")
            max_depth = ref
        else:
            max_depth = ctx.member(mnode, Depth, f"{where} max_depth")
    drop_name = False
    if "named" in got:
        if ctx.boolean(got["named"], f"{where} named"):
            ctx.fail(got["named"], f"{where} named: a rule can only take the name away", "named: false")
        drop_name = True
    when = _condition(ctx, got["when"])
    try:
        rule = Rule(
            id=rid, title=ctx.text(got["title"], "title"), source=ctx.text(got["source"], "source"),
            when=when, verdict=verdict, message=_message(ctx, got["message"]),
            rationale=ctx.text(got["rationale"], "rationale") if "rationale" in got else "",
            remedies=remedies, max_depth=max_depth, drop_name=drop_name,
            locked=ctx.boolean(got["locked"], "locked") if "locked" in got else False,
            pos=ctx.pos(node),
        )
    except RuleTreeError as exc:
        ctx.fail(got.get("verdict", node), exc.message, exc.hint[len("expected "):] if exc.hint
                 and exc.hint.startswith("expected ") else exc.hint)
    replace = ctx.boolean(got["replace"], "replace") if "replace" in got else False
    return _RawRule(rule, replace, got["id"])


# --------------------------------------------------------------------------- packs


def _policy_error(exc: DocumentError) -> PolicyError:
    return PolicyError(exc.problem if not exc.path else f"{exc.path}: {exc.problem}", file=exc.source,
                       line=exc.line, column=exc.column, hint=exc.hint)


def _read(path: Path) -> str:
    """A pack file's text through the bounded reader (size, UTF-8; tactful.safeload)."""
    try:
        return decode(read_bytes(path, PACK_LIMITS), str(path), PACK_LIMITS.what)
    except DocumentError as exc:
        raise _policy_error(exc) from None


def _packaged(name: str) -> str | None:
    """The text of the packaged pack ``name`` (``default`` → packs/default.yaml), if there is one."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        return None
    resource = resources.files("tactful.policy").joinpath("packs", f"{name}.yaml")
    return resource.read_text(encoding="utf-8") if resource.is_file() else None


def _resolve_extends(ctx: _Ctx, node: Node, extends: str, base_dir: Path | None,
                     root_dir: Path | None) -> Path:
    """The file an ``extends`` path names, refused (without being read) unless it lies under the
    directory of the pack that was loaded first (symbolic links resolved)."""
    if root_dir is None or base_dir is None:
        ctx.fail(node, f"extends: {extends!r} is not a packaged pack, and a pack given as text can only "
                 "extend packaged packs", f"'{DEFAULT_PACK}'")
    target = Path(os.path.realpath(base_dir / extends))
    root = Path(os.path.realpath(root_dir))
    if not target.is_relative_to(root):
        ctx.fail(node, f"extends: {extends!r} is outside the pack's directory {root}; it was not read",
                 f"'{DEFAULT_PACK}', another packaged pack, or a pack file under {root}")
    if not target.is_file():
        ctx.fail(node, f"extends: no pack at {target}", f"'{DEFAULT_PACK}' or a path to a pack")
    return target


def parse_pack(text: str, *, source: str = "<pack>", base_dir: Path | None = None,
               root_dir: Path | None = None, _chain: tuple[str, ...] = ()) -> Pack:
    """Parse a pack from YAML text. ``source`` names the file in errors; ``base_dir`` resolves a
    relative ``extends`` path, which must stay under ``root_dir`` (default: ``base_dir``, the
    directory of the first pack). Packaged packs are extended by name (``extends: default``)."""
    ctx = _Ctx(source)
    if root_dir is None:
        root_dir = base_dir
    try:
        root = compose_yaml(text, source, PACK_LIMITS)
    except DocumentError as exc:
        raise _policy_error(exc) from None
    if root is None:
        ctx.fail(None, "the pack is empty", "a mapping with name, version and rules")
    if not isinstance(root, MappingNode):  # a file that is not a pack (-p /etc/passwd): its content
        # is one long value, never echoed into the error
        what = "list" if isinstance(root, SequenceNode) else "text"
        ctx.fail(root, f"pack: expected a mapping, got a {what}", "a mapping with name, version and rules")
    items = ctx.mapping(root, "pack")
    ctx.keys_only(items, TOP_KEYS, "pack")
    got = {k: v for k, _, v in items}
    for need in ("name", "version"):
        if need not in got:
            ctx.fail(root, f"pack: missing {need!r}", "name, version and rules")
    name = ctx.text(got["name"], "name")
    version = str(ctx.scalar(got["version"])).strip()
    description = ctx.text(got["description"], "description") if "description" in got else ""

    parent: Pack | None = None
    extends: str | None = None
    if "extends" in got:
        extends = ctx.text(got["extends"], "extends")
        here = _chain_key(source, base_dir)
        chain = (*_chain, here)
        if extends == DEFAULT_PACK:
            parent = default_pack()
        elif (packaged := _packaged(extends)) is not None:
            key = f"<packaged {extends}.yaml>"
            if key in chain:
                ctx.fail(got["extends"], f"extends: cycle {' -> '.join((*chain, key))}", "no cycle")
            parent = parse_pack(packaged, source=key, _chain=chain)
        else:
            ppath = _resolve_extends(ctx, got["extends"], extends, base_dir, root_dir)
            if str(ppath) in chain:
                ctx.fail(got["extends"], f"extends: cycle {' -> '.join((*chain, str(ppath)))}", "no cycle")
            if len(chain) > MAX_EXTENDS:
                ctx.fail(got["extends"], f"extends: more than {MAX_EXTENDS} packs extend each other",
                         f"at most {MAX_EXTENDS} levels of extends")
            parent = parse_pack(_read(ppath), source=str(ppath), base_dir=ppath.parent, root_dir=root_dir,
                                _chain=chain)

    own_settings = _settings(ctx, got["settings"]) if "settings" in got else {}
    merged: dict[str, Any] = {}
    if parent is not None:
        merged = {n: parent.settings.value(n) for n in SETTINGS}
        _check_guard_settings(ctx, got.get("settings", root), parent, own_settings)
    merged.update(own_settings)
    missing = [n for n in SETTINGS if n not in merged]
    if missing:
        ctx.fail(got.get("settings", root), f"settings: missing {', '.join(missing)}",
                 f"every setting, or extends: {DEFAULT_PACK}")
    settings = Settings(**merged)

    rules: list[Rule] = list(parent.rules) if parent is not None else []
    disabled: list[str] = []
    if "disable" in got:
        if parent is None:
            ctx.fail(got["disable"], "disable: only a pack that extends another can disable rules",
                     f"extends: {DEFAULT_PACK}")
        for dnode in ctx.sequence(got["disable"], "disable"):
            rid = ctx.text(dnode, "disable")
            ids = [r.id for r in rules]
            if rid not in ids:
                ctx.fail(dnode, f"disable: no rule {rid!r} in {extends}",
                         f"{_suggest(rid, ids)}the id of an inherited rule")
            if rules[ids.index(rid)].locked:
                ctx.fail(dnode, f"disable: rule {rid!r} is locked (a fail-closed guard)",
                         "a rule that is not locked")
            rules.pop(ids.index(rid))
            disabled.append(rid)

    raw = [_rule(ctx, r, i) for i, r in enumerate(ctx.sequence(got["rules"], "rules"))] \
        if "rules" in got else []
    for rr in raw:
        ids = [r.id for r in rules]
        if rr.rule.id in disabled:
            ctx.fail(rr.node, f"rule {rr.rule.id!r} is both disabled and redefined", "one or the other")
        if rr.rule.id in ids:
            pos = ids.index(rr.rule.id)
            if parent is None or rules[pos] not in parent.rules:
                ctx.fail(rr.node, f"duplicate rule id {rr.rule.id!r}", "unique rule ids")
            if not rr.replace:
                ctx.fail(rr.node, f"rule {rr.rule.id!r} already exists in {extends}",
                         "replace: true to replace it, or a new id")
            if rules[pos].locked:
                ctx.fail(rr.node, f"rule {rr.rule.id!r} is locked (a fail-closed guard) and cannot be "
                         "replaced", "a new rule id")
            rules[pos] = rr.rule
        else:
            if rr.replace:
                ctx.fail(rr.node, f"replace: no rule {rr.rule.id!r} to replace"
                         + (f" in {extends}" if extends else ""),
                         f"{_suggest(rr.rule.id, ids)}the id of an inherited rule")
            rules.append(rr.rule)
    if not rules:
        ctx.fail(root, "the pack has no rules", "at least one rule")
    return Pack(name=name, version=version, rules=tuple(rules), settings=settings,
                description=description, extends=extends, source=source, disabled=tuple(disabled))


def _default_text() -> str:
    return resources.files("tactful.policy").joinpath("packs/default.yaml").read_text(encoding="utf-8")


@cache
def default_pack() -> Pack:
    """The packaged default pack (parsed once per process)."""
    return parse_pack(_default_text(), source="<packaged default.yaml>")


def load_pack(path: str | Path | None = None) -> Pack:
    """Load a pack file; ``None`` (or ``"default"``) is the packaged default pack."""
    if path is None or str(path) == DEFAULT_PACK:
        return default_pack()
    p = Path(path)
    return parse_pack(_read(p), source=str(p), base_dir=p.parent)


def _chain_key(source: str, base_dir: Path | None) -> str:
    """How a pack is named in the ``extends`` chain: its real path when it is a file."""
    if base_dir is not None and not source.startswith("<"):
        candidate = Path(source)
        if candidate.is_file():
            return os.path.realpath(candidate)
    return source
