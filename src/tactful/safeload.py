"""One bounded loader for every YAML or JSON document Tactful reads: scenarios, policy packs, column
mappings, sensitivity mappings, touch files and campaigns (docs/scenario-format.md, "Limits").

Input is hostile until proven otherwise. Every document is

* read as bytes, at most :attr:`Limits.max_bytes` of them (a file or standard input), and decoded as
  strict UTF-8 (a byte-order mark is allowed; NUL bytes mean binary input and are refused);
* parsed by PyYAML's *safe* loader (libyaml's ``CSafeLoader`` when PyYAML has it: it is several times
  faster on large profiles) or by :mod:`json`;
* checked before anything walks it: nesting depth (:attr:`Limits.max_depth`); the number of values
  once every YAML alias is expanded (:attr:`Limits.max_nodes`) and the text they hold (no more than
  :attr:`Limits.max_bytes`), so a few hundred bytes of nested aliases cannot grow into gigabytes;
  recursive aliases; explicit YAML tags other than the plain standard ones (no ``!!python/...``,
  ``!!binary``, ``!!set`` or custom ``!tag``); duplicate keys in one mapping (the last one would
  silently win); integers beyond 64 bits, numbers that are not finite, impossible dates.

Every problem is a :class:`DocumentError` naming the file, the line and column where known, and the
path of the field (``customer.facts[3].id``); callers turn it into their stage's error (exit 2).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tactful.errors import TactfulError

__all__ = [
    "CAMPAIGN_LIMITS",
    "MAPPING_LIMITS",
    "PACK_LIMITS",
    "SCENARIO_LIMITS",
    "SENSITIVITY_LIMITS",
    "STDIN",
    "TOUCH_LIMITS",
    "DocumentError",
    "Limits",
    "compose_yaml",
    "decode",
    "load_document",
    "load_json",
    "load_yaml",
    "read_bytes",
]

STDIN = "-"
MIB = 1024 * 1024
#: integers are at most signed 64-bit (what every store column and every counter holds)
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
#: a longer integer literal is refused before Python converts it (conversion is quadratic)
_MAX_INT_CHARS = 80

_STD = "tag:yaml.org,2002:"
#: the only tags a node may carry: the implicit ones of plain YAML (and ``<<`` merge keys)
ALLOWED_TAGS = frozenset(_STD + t for t in ("str", "int", "float", "bool", "null", "map", "seq",
                                            "timestamp", "merge"))
_MERGE = _STD + "merge"


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on one kind of document."""

    #: what the document is, for messages ("scenario", "policy pack", ...)
    what: str
    #: size of the file in bytes
    max_bytes: int
    #: YAML files larger than this are refused with a hint to use JSON (None: same as max_bytes)
    max_yaml_bytes: int | None = None
    #: mappings and lists inside each other
    max_depth: int = 64
    #: nodes (scalars, mappings, lists) once every alias is expanded
    max_nodes: int = 2_000_000

    @property
    def yaml_bytes(self) -> int:
        return self.max_yaml_bytes if self.max_yaml_bytes is not None else self.max_bytes


#: a scenario: a customer's whole profile may be large; YAML is ~10x slower to parse than JSON
#: (benchmarks/bench_limits.py: at these sizes load + validate take seconds and a few hundred MiB)
SCENARIO_LIMITS = Limits("scenario", max_bytes=32 * MIB, max_yaml_bytes=4 * MIB, max_depth=64,
                         max_nodes=4_000_000)
#: a policy pack (conditions nest: allow more depth)
PACK_LIMITS = Limits("policy pack", max_bytes=1 * MIB, max_depth=128, max_nodes=200_000)
#: a column mapping for ``tactful import`` (also stored with the import in ``imports.mapping``)
MAPPING_LIMITS = Limits("mapping", max_bytes=256 * 1024, max_depth=16, max_nodes=20_000)
#: a product sensitivity mapping
SENSITIVITY_LIMITS = Limits("sensitivity mapping", max_bytes=4 * MIB, max_depth=16, max_nodes=500_000)
#: a touch file (``decide --customer ID --touch FILE``, ``scenario export``)
TOUCH_LIMITS = Limits("touch file", max_bytes=1 * MIB, max_depth=32, max_nodes=100_000)
#: a campaign file (its messages and templates)
CAMPAIGN_LIMITS = Limits("campaign", max_bytes=1 * MIB, max_depth=32, max_nodes=200_000)


class DocumentError(TactfulError):
    """A document could not be read or is outside the bounds; the message names file, line, field."""

    exit_code = 2
    http_status = 422

    def __init__(self, problem: str, *, source: str, line: int | None = None, column: int | None = None,
                 path: str | None = None, hint: str | None = None) -> None:
        where = source
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        field = f" {path}:" if path else ""
        super().__init__(f"{where}:{field} {problem}", hint=hint)
        self.source = source
        self.line = line
        self.column = column
        self.path = path
        self.problem = problem


# --------------------------------------------------------------------------- bytes and text


def _too_big(limits: Limits, source: str, size: int | None, *, yaml_only: bool) -> DocumentError:
    limit = limits.yaml_bytes if yaml_only else limits.max_bytes
    got = f"{size:,} bytes" if size is not None else "more"
    hint = None
    if yaml_only and limits.yaml_bytes < limits.max_bytes:
        hint = (f"write large {limits.what}s as JSON (a .json file, up to {limits.max_bytes // MIB} MiB): "
                "it parses about ten times faster than YAML")
    return DocumentError(f"the {limits.what} is too large ({got}; at most {limit:,} bytes)",
                         source=source, hint=hint)


def read_bytes(path: Path | str, limits: Limits, *, source: str | None = None) -> bytes:
    """The bytes of ``path`` (``-``: standard input), refusing more than ``limits.max_bytes``."""
    name = source or ("<stdin>" if str(path) == STDIN else str(path))
    cap = limits.max_bytes
    try:
        if str(path) == STDIN:
            raw = getattr(sys.stdin, "buffer", None)
            if raw is not None:
                data = bytes(raw.read(cap + 1))
            else:  # a text stream stands in for stdin (an embedding program, an in-process test)
                data = sys.stdin.read(cap + 1).encode("utf-8", "surrogateescape")
        else:
            with open(path, "rb") as handle:
                data = handle.read(cap + 1)
    except FileNotFoundError:
        raise DocumentError(f"cannot read {limits.what} file: no such file", source=name) from None
    except IsADirectoryError:
        raise DocumentError(f"cannot read {limits.what} file: it is a directory", source=name) from None
    except OSError as exc:
        raise DocumentError(f"cannot read {limits.what} file: {exc.strerror or exc}", source=name) from None
    if len(data) > cap:
        raise _too_big(limits, name, None, yaml_only=False)
    return data


def decode(data: bytes, source: str, what: str = "document") -> str:
    """Strict UTF-8 text (a leading byte-order mark is dropped); binary input is refused."""
    if b"\x00" in data:
        offset = data.index(b"\x00")
        raise DocumentError(f"binary data (a NUL byte at offset {offset}), not a UTF-8 text {what}",
                            source=source, line=data.count(b"\n", 0, offset) + 1)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = exc.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        raise DocumentError(f"not UTF-8 text: invalid byte 0x{data[start]:02x} at offset {start}",
                            source=source, line=data.count(b"\n", 0, start) + 1,
                            hint=f"save the {what} as UTF-8") from None


# --------------------------------------------------------------------------- YAML


_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _path(parts: tuple[str | int, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    if len(out) > 160:  # a path through a very deep document: its start and its end
        out = f"{out[:80]}...{out[-60:]}"
    return out or "(document)"


def _node_path(root: Node, target: Node, key_of: Callable[[Node], Any]) -> tuple[str | int, ...]:
    """The field path of ``target`` in the graph under ``root`` (only run to report an error)."""
    seen: set[int] = set()
    stack: list[tuple[Node, tuple[str | int, ...]]] = [(root, ())]
    while stack:
        node, parts = stack.pop()
        if node is target:
            return parts
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            stack.extend((child, (*parts, i)) for i, child in enumerate(node.value))
        elif isinstance(node, MappingNode):
            for k, v in node.value:
                if k.tag == _MERGE:
                    stack.append((v, parts))
                    continue
                key = key_of(k)
                name: str | int = key if isinstance(key, str | int) and not isinstance(key, bool) \
                    else str(key)
                stack.append((v, (*parts, name)))
                stack.append((k, (*parts, name)))
    return ()


def _check_nodes(root: Node, limits: Limits, source: str, key_of: Callable[[Node], Any]) -> None:
    """Depth, alias expansion, cycles, tags and duplicate keys of a composed node graph.

    Iterative (a deep document cannot exhaust the Python stack) and linear in the distinct nodes:
    the expanded size of a node shared through aliases is computed once and reused. Paths are only
    worked out for the error message.
    """
    expanded: dict[int, int] = {}  # id(node) -> nodes once aliases are expanded (capped)
    chars: dict[int, int] = {}  # id(node) -> characters of its scalars once aliases are expanded (capped)
    open_: set[int] = set()
    cap, char_cap, max_depth = limits.max_nodes + 1, limits.max_bytes + 1, limits.max_depth
    allowed = ALLOWED_TAGS

    def fail(node: Node, problem: str, hint: str | None = None) -> None:
        line, column = _mark(node)
        parts = _node_path(root, node, key_of)
        raise DocumentError(problem, source=source, line=line, column=column,
                            path=_path(parts) if parts else None, hint=hint)

    # stack entries: (node, depth, children-already-pushed)
    stack: list[tuple[Node, int, bool]] = [(root, 0, False)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth, done = pop()
        ident = id(node)
        if done:
            open_.discard(ident)
            if type(node) is MappingNode:
                size = sum(expanded[id(k)] + expanded[id(v)] for k, v in node.value)
                text = sum(chars[id(k)] + chars[id(v)] for k, v in node.value)
            else:
                size = sum(expanded[id(k)] for k in node.value)
                text = sum(chars[id(k)] for k in node.value)
            expanded[ident] = min(1 + size, cap)
            chars[ident] = min(text, char_cap)
            if size >= cap:
                fail(node, f"the {limits.what} expands to more than {limits.max_nodes:,} values "
                     "(YAML aliases repeating nested content?)")
            if text >= char_cap:
                fail(node, f"the {limits.what} expands to more than {limits.max_bytes:,} characters "
                     "(YAML aliases repeating long content?)")
            continue
        if ident in expanded:  # shared through an alias and already measured
            continue
        if node.tag not in allowed:
            fail(node, f"the YAML tag {node.tag!r} is not allowed",
                 hint="plain YAML only: strings, numbers, booleans, null, dates, mappings, lists")
        cls = type(node)
        if cls is ScalarNode:
            expanded[ident] = 1
            chars[ident] = len(node.value)
            continue
        if ident in open_:
            fail(node, "a recursive alias (a value that contains itself)")
        if depth >= max_depth:
            fail(node, f"nested more than {max_depth} levels deep")
        open_.add(ident)
        push((node, depth, True))
        depth += 1
        if cls is MappingNode:
            seen: set[Any] = set()
            for k, v in node.value:
                push((v, depth, False))
                push((k, depth, False))
                if k.tag == _MERGE:
                    continue
                key = key_of(k)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable (complex) key: the constructor refuses it
                    duplicate = False
                if duplicate:
                    name = key if isinstance(key, str | int) and not isinstance(key, bool) else str(key)
                    fail(k, f"duplicate key {name!r} (each key may appear once in a mapping)")
        else:
            for child in node.value:
                push((child, depth, False))


def _scalar_key(node: Node) -> Any:
    if isinstance(node, ScalarNode):
        return (node.tag, node.value) if node.tag != _STD + "str" else node.value
    return ("<complex>", id(node))


class _BoundedLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """The safe loader with the checks of :func:`_check_nodes` and checked scalars."""

    limits: Limits = SCENARIO_LIMITS
    source: str = "<document>"

    def _key(self, node: Node) -> Any:
        if isinstance(node, ScalarNode):
            try:
                return self.construct_object(node, deep=True)
            except yaml.YAMLError:
                return _scalar_key(node)
        return _scalar_key(node)

    def construct_document(self, node: Node) -> Any:
        _check_nodes(node, self.limits, self.source, self._key)
        return super().construct_document(node)

    def construct_yaml_int(self, node: ScalarNode) -> int:
        if len(node.value) > _MAX_INT_CHARS:
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {len(node.value)} characters (at most 64-bit integers)",
                node.start_mark)
        value: int = super().construct_yaml_int(node)
        if not INT_MIN <= value <= INT_MAX:
            raise yaml.constructor.ConstructorError(
                None, None, f"the integer {node.value} is out of range (at most 64-bit integers)",
                node.start_mark)
        return value

    def construct_yaml_float(self, node: ScalarNode) -> float:
        value: float = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} is not a finite number", node.start_mark)
        return value

    def construct_yaml_timestamp(self, node: ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except (ValueError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} is not a valid date or date-time ({exc})",
                node.start_mark) from None


for _tag, _method in (("int", _BoundedLoader.construct_yaml_int),
                      ("float", _BoundedLoader.construct_yaml_float),
                      ("timestamp", _BoundedLoader.construct_yaml_timestamp)):
    _BoundedLoader.add_constructor(_STD + _tag, _method)


class _TextBooleanLoader(_BoundedLoader):
    """YAML without implicit booleans: ``yes``/``no``/``on`` stay text (mappings of their values)."""


_TextBooleanLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _STD + "bool"]
    for first, resolvers in _BoundedLoader.yaml_implicit_resolvers.items()
}


def _yaml_error(exc: yaml.YAMLError, source: str) -> DocumentError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if not isinstance(exc, yaml.constructor.ConstructorError) or "constructor" in problem:
        problem = f"not valid YAML: {problem}"
    return DocumentError(problem, source=source,
                         line=mark.line + 1 if mark is not None else None,
                         column=mark.column + 1 if mark is not None else None)


def _check_yaml_size(text: str, source: str, limits: Limits) -> None:
    if len(text) > limits.yaml_bytes and len(text.encode("utf-8")) > limits.yaml_bytes:
        raise _too_big(limits, source, len(text.encode("utf-8")), yaml_only=True)


def load_yaml(text: str, source: str, limits: Limits, *, booleans: bool = True) -> Any:
    """A YAML document as Python values, within ``limits`` (see the module docstring)."""
    _check_yaml_size(text, source, limits)
    loader = (_BoundedLoader if booleans else _TextBooleanLoader)(text)
    loader.limits = limits
    loader.source = source
    try:
        return loader.get_single_data()
    except DocumentError:
        raise
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    except RecursionError:
        raise DocumentError(f"nested more than {limits.max_depth} levels deep", source=source) from None
    finally:
        loader.dispose()


def compose_yaml(text: str, source: str, limits: Limits) -> Node | None:
    """A YAML document as its node graph (positions kept), within ``limits``. The caller constructs
    scalars itself (policy packs)."""
    _check_yaml_size(text, source, limits)
    loader = _BoundedLoader(text)
    try:
        root: Node | None = loader.get_single_node()
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    except RecursionError:
        raise DocumentError(f"nested more than {limits.max_depth} levels deep", source=source) from None
    finally:
        loader.dispose()
    if root is not None:
        _check_nodes(root, limits, source, _scalar_key)
    return root


# --------------------------------------------------------------------------- JSON


class _Marker:
    """A value json.loads could parse but we refuse; its path is found after parsing."""

    __slots__ = ("problem",)

    def __init__(self, problem: str) -> None:
        self.problem = problem


class _Duplicates(dict[str, Any]):
    """A JSON object that had a key twice (json would keep the last)."""

    duplicate: str = ""


def _find(root: Any, target: Any) -> tuple[str | int, ...]:
    """The path of the object ``target`` (by identity) inside ``root`` (only run on an error)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(root, ())]
    while stack:
        value, parts = stack.pop()
        if value is target:
            return parts
        if isinstance(value, dict):
            stack.extend((child, (*parts, key)) for key, child in value.items())
        elif isinstance(value, list):
            stack.extend((child, (*parts, i)) for i, child in enumerate(value))
    return ()


def load_json(text: str, source: str, limits: Limits) -> Any:
    """A JSON document as Python values, within ``limits`` (see the module docstring).

    The hooks only note what they refuse (duplicate keys, integers beyond 64 bits, numbers that are
    not finite); the path of the first one is looked up afterwards, so a clean document pays for a
    cheap breadth-first pass over its containers (depth and size) and nothing else."""
    refused: list[Any] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if len(obj) != len(items):
            seen: set[str] = set()
            marked = _Duplicates(obj)
            marked.duplicate = next(k for k, _ in items if k in seen or seen.add(k))  # type: ignore[func-returns-value]
            refused.append(marked)
            return marked
        return obj

    def integer(digits: str) -> Any:
        if len(digits) <= 18:
            return int(digits)
        if len(digits) <= _MAX_INT_CHARS and INT_MIN <= (value := int(digits)) <= INT_MAX:
            return value
        marker = _Marker(f"an integer of {len(digits.lstrip('-'))} digits (at most 64-bit integers)"
                         if len(digits) > _MAX_INT_CHARS
                         else f"the integer {digits} is out of range (at most 64-bit integers)")
        refused.append(marker)
        return marker

    def number(digits: str) -> Any:
        value = float(digits)
        if math.isfinite(value):
            return value
        marker = _Marker(f"{digits} is not a finite number")
        refused.append(marker)
        return marker

    def constant(name: str) -> Any:
        marker = _Marker(f"{name} is not a number JSON allows")
        refused.append(marker)
        return marker

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_int=integer, parse_float=number,
                          parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"not valid JSON: {exc.msg}", source=source, line=exc.lineno,
                            column=exc.colno) from None
    except RecursionError:
        raise DocumentError(f"nested more than {limits.max_depth} levels deep", source=source) from None
    if refused:
        first = refused[0]
        if isinstance(first, _Duplicates):
            raise DocumentError(f"duplicate key {first.duplicate!r} (each key may appear once in an object)",
                                source=source, path=_path((*_find(data, first), first.duplicate)))
        raise DocumentError(first.problem, source=source, path=_path(_find(data, first)))
    # depth and size, level by level over the containers only
    level = [data] if isinstance(data, dict | list) else []
    depth = count = 0
    while level:
        if depth >= limits.max_depth:
            raise DocumentError(f"nested more than {limits.max_depth} levels deep", source=source,
                                path=_path(_find(data, level[0])))
        count += sum(len(c) for c in level)
        if count > limits.max_nodes:
            raise DocumentError(f"the {limits.what} has more than {limits.max_nodes:,} values",
                                source=source)
        level = [child for c in level for child in (c.values() if type(c) is dict else c)
                 if type(child) is dict or type(child) is list]
        depth += 1
    return data


# --------------------------------------------------------------------------- files


def load_document(path: Path | str, limits: Limits, *, json_only: bool | None = None,
                  booleans: bool = True, source: str | None = None) -> Any:
    """Read, decode and parse ``path`` (``-``: standard input) within ``limits``.

    ``json_only`` None decides by the suffix (``.json`` is JSON; anything else is YAML, which reads
    JSON too but slower and with YAML's bounds). Standard input has no suffix: a document that
    starts with ``{`` is tried as JSON first (with JSON's size limit), then as YAML."""
    name = source or ("<stdin>" if str(path) == STDIN else str(path))
    text = decode(read_bytes(path, limits, source=name), name, limits.what)
    if json_only is None:
        json_only = str(path).lower().endswith(".json")
        if not json_only and str(path) == STDIN and text.lstrip().startswith("{"):
            try:
                return load_json(text, name, limits)
            except DocumentError as exc:
                if not exc.problem.startswith("not valid JSON"):
                    raise  # JSON, but refused: that is the answer
    if json_only:
        return load_json(text, name, limits)
    return load_yaml(text, name, limits, booleans=booleans)
