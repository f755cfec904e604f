"""Docs are part of the product: every rule of the default pack, every feature and every setting is
documented, and the scenario files the docs name exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tactful.features import FEATURES, SETTINGS
from tactful.policy import load_pack
from tactful.policy.explain import undocumented_phrases

ROOT = Path(__file__).parents[1]
LANGUAGE = ROOT / "docs" / "policy-language.md"
DEFAULT_PACK = ROOT / "docs" / "default-pack.md"


def _table_names(text: str) -> set[str]:
    return set(re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.M))


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_every_feature_is_documented(name: str) -> None:
    assert name in _table_names(LANGUAGE.read_text(encoding="utf-8")), \
        f"feature {name} is missing from the feature table of docs/policy-language.md"


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_every_setting_is_documented(name: str) -> None:
    assert name in _table_names(LANGUAGE.read_text(encoding="utf-8")), \
        f"setting {name} is missing from the settings table of docs/policy-language.md"


@pytest.mark.parametrize("rule_id", [r.id for r in load_pack().rules])
def test_every_default_rule_is_documented(rule_id: str) -> None:
    text = DEFAULT_PACK.read_text(encoding="utf-8")
    match = re.search(rf"^### `{re.escape(rule_id)}` — .+?(?=^### |\Z)", text, flags=re.M | re.S)
    assert match, f"rule {rule_id} has no section in docs/default-pack.md"
    section = match.group(0)
    for part in ("**Does**", "**Source**", "**Triggered by**"):
        assert part in section, f"rule {rule_id}: its section lacks {part}"


def test_no_documented_rule_is_gone() -> None:
    ids = {r.id for r in load_pack().rules}
    documented = set(re.findall(r"^### `([a-z0-9-]+)`", DEFAULT_PACK.read_text(encoding="utf-8"), flags=re.M))
    assert documented <= ids, f"documented but not in the pack: {sorted(documented - ids)}"


def test_named_scenarios_exist() -> None:
    text = DEFAULT_PACK.read_text(encoding="utf-8")
    for name in re.findall(r"`(\d{3}-[a-z0-9-]+\.yaml)`", text):
        assert (ROOT / "tests" / "scenarios" / name).is_file(), f"docs/default-pack.md names missing {name}"


def test_language_constructs_and_commands_are_documented() -> None:
    text = LANGUAGE.read_text(encoding="utf-8")
    for word in ("`all`", "`any`", "`not`", "`eq`", "`ne`", "`lt`", "`le`", "`gt`", "`ge`", "`in`",
                 "`not_in`", "{setting: NAME}", "{feature: NAME}", "extends", "replace: true", "disable",
                 "locked", "tactful decide", "tactful policy test", "tactful policy lint",
                 "tactful policy explain", "`{facts}`", "`{keys}`"):
        assert word in text, f"{word} is not documented in docs/policy-language.md"


def test_every_boolean_feature_reads_in_plain_language() -> None:
    assert undocumented_phrases() == []
