"""Product sensitivity: which data categories a purchase of a product reveals.

A purchase is ``user.behavior.purchase_history``, but some purchases say more: a pregnancy test implies
reproductive health, condoms imply sex life, infant formula implies a baby in the household (seed 002,
seed 004), a bottle of whisky implies alcohol use. The mapping from a product's department, category,
subcategory and name to the data categories it implies is a documented, editable YAML file
(``sensitivity.yaml`` next to this module is the default; docs/sensitivity.md describes the format).

Matching is case-insensitive. A rule fires when every field it names matches (``department``,
``category``, ``subcategory`` compare whole values; ``keywords`` are whole words or phrases found in the
product name) and none of its ``unless`` fields does. A product implies the union of the categories of
all rules that fire, sorted and deduplicated.

Every data category is checked against the vocabulary (:func:`tactful.vocab.check_category`); a
mapping with an unknown key, an unknown field or a malformed entry is refused with an error that names
the file and the entry (fail closed: a mapping that cannot be read never labels products "harmless").
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from tactful.errors import VocabularyError
from tactful.safeload import SENSITIVITY_LIMITS, DocumentError, load_document, load_yaml
from tactful.vocab import check_category

DEFAULT_MAPPING_NAME = "sensitivity.yaml"
MATCH_FIELDS: tuple[str, ...] = ("department", "category", "subcategory", "keywords")
RULE_FIELDS: tuple[str, ...] = ("id", "description", "seed", "when", "unless", "implies")
TOP_FIELDS: tuple[str, ...] = ("version", "rules")


class SensitivityError(VocabularyError):
    """The sensitivity mapping cannot be read: names the file, the entry and the offending key."""


def _norm(value: str | None) -> str:
    """Case- and whitespace-insensitive form of a value (``"Baby  Foods "`` → ``"baby foods"``)."""
    if value is None:
        return ""
    return " ".join(str(value).split()).casefold()


@dataclass(frozen=True, slots=True)
class Condition:
    """One ``when`` or ``unless`` block: every named field must match (OR within a field's list)."""

    department: frozenset[str] = frozenset()
    category: frozenset[str] = frozenset()
    subcategory: frozenset[str] = frozenset()
    keywords: tuple[str, ...] = ()
    keyword_re: re.Pattern[str] | None = None

    @property
    def empty(self) -> bool:
        return not (self.department or self.category or self.subcategory or self.keywords)

    def matches(self, department: str, category: str, subcategory: str, name: str) -> bool:
        """All arguments already normalised with :func:`_norm`."""
        if self.empty:
            return False
        if self.department and department not in self.department:
            return False
        if self.category and category not in self.category:
            return False
        if self.subcategory and subcategory not in self.subcategory:
            return False
        return not (self.keyword_re is not None and not self.keyword_re.search(name))


@dataclass(frozen=True, slots=True)
class Rule:
    """One entry of the mapping."""

    id: str
    implies: tuple[str, ...]
    when: Condition
    unless: Condition = field(default_factory=Condition)
    description: str = ""
    seed: str | None = None

    def fires(self, department: str, category: str, subcategory: str, name: str) -> bool:
        if not self.when.matches(department, category, subcategory, name):
            return False
        return not self.unless.matches(department, category, subcategory, name)


@dataclass(frozen=True, slots=True)
class SensitivityMapping:
    """The rules of a sensitivity file, and where they came from."""

    rules: tuple[Rule, ...]
    source: str = DEFAULT_MAPPING_NAME

    @property
    def categories(self) -> tuple[str, ...]:
        """Every data category some rule can imply, sorted."""
        return tuple(sorted({c for r in self.rules for c in r.implies}))

    def implies(
        self, department: str | None, category: str | None, subcategory: str | None, name: str | None = None
    ) -> tuple[str, ...]:
        """The data categories a purchase of this product reveals (sorted, deduplicated; may be empty)."""
        d, c, s, n = _norm(department), _norm(category), _norm(subcategory), _norm(name)
        found: set[str] = set()
        for rule in self.rules:
            if rule.fires(d, c, s, n):
                found.update(rule.implies)
        return tuple(sorted(found))

    def matching_rules(
        self, department: str | None, category: str | None, subcategory: str | None, name: str | None = None
    ) -> tuple[str, ...]:
        """The ids of the rules that fire for this product (to explain a label)."""
        d, c, s, n = _norm(department), _norm(category), _norm(subcategory), _norm(name)
        return tuple(r.id for r in self.rules if r.fires(d, c, s, n))

    def label_frame(
        self,
        frame: Any,
        *,
        department: str = "department",
        category: str = "category",
        subcategory: str = "subcategory",
        name: str | None = "name",
    ) -> Any:
        """Label a whole pandas product frame at once: a Series (same index) of sorted tuples of categories.

        Column arguments name the frame's columns; a column that is missing (or ``name=None``) counts
        as empty for every row. The rules run once per distinct combination of values, not per row.
        """
        pd: Any = importlib.import_module("pandas")  # pandas ships no type stubs here
        cols: dict[str, Any] = {}
        for key, col in (("d", department), ("c", category), ("s", subcategory), ("n", name)):
            if col is not None and col in frame.columns:
                cols[key] = frame[col].astype("object").where(frame[col].notna(), "").astype(str)
            else:
                cols[key] = pd.Series([""] * len(frame), index=frame.index, dtype="object")
        keys = pd.DataFrame(cols, index=frame.index)
        codes, uniques = pd.MultiIndex.from_frame(keys).factorize()
        labels = [self.implies(d, c, s, n) for d, c, s, n in uniques]
        return pd.Series([labels[i] for i in codes], index=frame.index, dtype="object")


def _as_list(value: object, where: str, key: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
        return list(value)
    raise SensitivityError(f"{where}: {key!r} must be a non-empty string or list of strings, got {value!r}")


def _keyword_re(words: Sequence[str]) -> re.Pattern[str]:
    """Whole words or phrases, any whitespace between the words of a phrase."""
    parts = [r"\s+".join(re.escape(w) for w in _norm(k).split()) for k in words]
    return re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)")


def _condition(raw: object, where: str) -> Condition:
    if not isinstance(raw, Mapping):
        raise SensitivityError(f"{where}: expected a mapping of {', '.join(MATCH_FIELDS)}, got {raw!r}")
    unknown = [k for k in raw if k not in MATCH_FIELDS]
    if unknown:
        raise SensitivityError(
            f"{where}: unknown key {unknown[0]!r}", hint=f"allowed keys: {', '.join(MATCH_FIELDS)}"
        )
    values = {k: _as_list(v, where, str(k)) for k, v in raw.items()}
    keywords = tuple(values.get("keywords", []))
    cond = Condition(
        department=frozenset(_norm(v) for v in values.get("department", [])),
        category=frozenset(_norm(v) for v in values.get("category", [])),
        subcategory=frozenset(_norm(v) for v in values.get("subcategory", [])),
        keywords=keywords,
        keyword_re=_keyword_re(keywords) if keywords else None,
    )
    if cond.empty:
        raise SensitivityError(
            f"{where}: names no field to match", hint=f"give at least one of {', '.join(MATCH_FIELDS)}"
        )
    return cond


def parse_mapping(data: object, source: str) -> SensitivityMapping:
    """Build a mapping from already-parsed YAML; ``source`` names the file in errors."""
    if not isinstance(data, Mapping):
        raise SensitivityError(f"{source}: expected a mapping with 'version' and 'rules'")
    unknown = [k for k in data if k not in TOP_FIELDS]
    if unknown:
        raise SensitivityError(f"{source}: unknown key {unknown[0]!r}", hint="allowed keys: version, rules")
    if data.get("version", 1) != 1:
        raise SensitivityError(f"{source}: unsupported version {data.get('version')!r} (expected 1)")
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise SensitivityError(f"{source}: 'rules' must be a non-empty list")
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_rules, start=1):
        label = raw.get("id") if isinstance(raw, Mapping) else None
        where = f"{source}: rule #{i}" + (f" ({label!r})" if label else "")
        if not isinstance(raw, Mapping):
            raise SensitivityError(f"{where}: expected a mapping, got {raw!r}")
        bad = [k for k in raw if k not in RULE_FIELDS]
        if bad:
            raise SensitivityError(
                f"{where}: unknown key {bad[0]!r}", hint=f"allowed keys: {', '.join(RULE_FIELDS)}"
            )
        rule_id = raw.get("id")
        if not isinstance(rule_id, str) or not rule_id.strip():
            raise SensitivityError(f"{where}: 'id' is required (a short unique name)")
        if rule_id in seen:
            raise SensitivityError(f"{where}: duplicate id {rule_id!r}")
        seen.add(rule_id)
        if "when" not in raw:
            raise SensitivityError(f"{where}: 'when' is required")
        if "implies" not in raw:
            raise SensitivityError(f"{where}: 'implies' is required")
        implied = _as_list(raw["implies"], where, "implies")
        for key in implied:
            try:
                check_category(key)
            except VocabularyError as exc:
                raise SensitivityError(
                    f"{where}: unknown data category {key!r} in 'implies'", hint=exc.hint
                ) from exc
        seed = raw.get("seed")
        rules.append(
            Rule(
                id=rule_id,
                implies=tuple(sorted(set(implied))),
                when=_condition(raw["when"], f"{where} when"),
                unless=_condition(raw["unless"], f"{where} unless") if "unless" in raw else Condition(),
                description=str(raw.get("description") or ""),
                seed=None if seed is None else str(seed),
            )
        )
    return SensitivityMapping(rules=tuple(rules), source=source)


@cache
def _default_mapping() -> SensitivityMapping:
    text = resources.files("tactful").joinpath(DEFAULT_MAPPING_NAME).read_text(encoding="utf-8")
    source = f"<packaged {DEFAULT_MAPPING_NAME}>"
    return parse_mapping(load_yaml(text, source, SENSITIVITY_LIMITS), source)


def load_mapping(path: Path | None = None) -> SensitivityMapping:
    """Read a sensitivity mapping; ``None`` gives the packaged default (``tactful/sensitivity.yaml``)."""
    if path is None:
        return _default_mapping()
    try:  # the bounded loader: size, depth, aliases, tags, duplicate keys (tactful.safeload)
        data = load_document(Path(path), SENSITIVITY_LIMITS, json_only=False, source=str(path))
    except DocumentError as exc:
        raise SensitivityError(str(exc), hint=exc.hint) from None
    return parse_mapping(data, str(path))


def implied_categories(
    products: Iterable[Mapping[str, Any]], mapping: SensitivityMapping | None = None
) -> list[tuple[str, ...]]:
    """Label product dicts (keys department, category, subcategory, name); one tuple per product."""
    m = mapping or load_mapping()
    return [
        m.implies(p.get("department"), p.get("category"), p.get("subcategory"), p.get("name"))
        for p in products
    ]
