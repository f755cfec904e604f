"""Docs compare with code, not only mention it (issue 7 §6):

* docs/cli.md is exactly what scripts/cli_reference.py generates from the commands;
* each rule section of docs/default-pack.md matches the pack: id, title, verdict, source, locked;
  and the scenario files it says trigger the rule do fire it (and its ``-benign`` twins are allowed);
* the YAML examples of docs/policy-language.md parse, and behave as the text around them says.
"""

from __future__ import annotations

import importlib.util
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from tactful.model import parse_scenario
from tactful.policy import evaluate, load_pack, parse_pack
from tactful.policy.nodes import Pack, Rule
from tactful.policy.testing import decide, fired, scenario
from tactful.vocab import Verdict

ROOT = Path(__file__).resolve().parents[1]
CLI_DOC = ROOT / "docs" / "cli.md"
PACK_DOC = ROOT / "docs" / "default-pack.md"
LANGUAGE_DOC = ROOT / "docs" / "policy-language.md"
SCENARIOS = ROOT / "tests" / "scenarios"
RULES = list(load_pack().rules)


# --------------------------------------------------------------------------- docs/cli.md


def test_cli_reference_is_exactly_the_generated_one() -> None:
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "scripts" / "cli_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generated = module.render().rstrip("\n")
    on_disk = CLI_DOC.read_text(encoding="utf-8").rstrip("\n")
    assert on_disk == generated, ("docs/cli.md differs from the commands; regenerate it: "
                                  ".venv/bin/python scripts/cli_reference.py > docs/cli.md")


# --------------------------------------------------------------------------- docs/default-pack.md

VERDICT_PHRASE = {Verdict.BLOCK: "block the touch", Verdict.SOFTEN: "soften the touch",
                  Verdict.ASK: "ask the customer"}


def _section(rule_id: str) -> tuple[str, str]:
    """(title, body) of the rule's section."""
    text = PACK_DOC.read_text(encoding="utf-8")
    match = re.search(rf"^### `{re.escape(rule_id)}` — (.+?)\n(.+?)(?=^#{{2,3}} |\Z)", text,
                      flags=re.M | re.S)
    assert match, f"rule {rule_id} has no section in docs/default-pack.md"
    return match.group(1).strip(), match.group(2)


def _item(body: str, name: str) -> str:
    match = re.search(rf"^\* \*\*{name}\*\*: (.+)$", body, flags=re.M)
    assert match, f"no **{name}** line"
    return match.group(1)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_each_documented_rule_matches_the_pack(rule: Rule) -> None:
    title, body = _section(rule.id)
    assert title == rule.title, f"{rule.id}: documented title {title!r}, the pack says {rule.title!r}"
    does = _item(body, "Does")
    phrases = [v for v, phrase in VERDICT_PHRASE.items() if f": {phrase}" in does]
    assert phrases == [rule.verdict], (
        f"{rule.id}: **Does** says {[v.value for v in phrases]}, the pack's verdict is {rule.verdict.value}")
    assert _item(body, "Source") == rule.source, f"{rule.id}: **Source** differs from the pack"
    assert ("*Locked*" in does) is rule.locked, (
        f"{rule.id}: the pack says locked={rule.locked}; **Does** must say *Locked* exactly then")


def test_the_documented_rules_are_the_pack_in_order() -> None:
    documented = re.findall(r"^### `([a-z0-9-]+)` — ", PACK_DOC.read_text(encoding="utf-8"), flags=re.M)
    assert documented == [r.id for r in RULES], "docs/default-pack.md lists other rules, or in another order"


def _expectation(name: str) -> Any:
    path = SCENARIOS / name
    assert path.is_file(), f"docs/default-pack.md names {name}, which does not exist"
    return parse_scenario(yaml.safe_load(path.read_text(encoding="utf-8")), source=str(path)).expect


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_the_scenarios_said_to_trigger_a_rule_do(rule: Rule) -> None:
    _, body = _section(rule.id)
    names = re.findall(r"`([\w/.-]+\.yaml)`", _item(body, "Triggered by"))
    for name in names:
        expect = _expectation(name)
        if name.endswith("-benign.yaml"):
            assert expect.verdict is Verdict.ALLOW, f"{rule.id}: twin {name} is not an allow"
        else:
            assert expect.rules and rule.id in expect.rules, (
                f"{rule.id}: docs/default-pack.md says {name} triggers it, but its expect.rules is "
                f"{expect.rules}")


# --------------------------------------------------------------------------- docs/policy-language.md


def _yaml_blocks() -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```", LANGUAGE_DOC.read_text(encoding="utf-8"), flags=re.M | re.S)


def _pack_blocks() -> list[str]:
    return [b for b in _yaml_blocks() if re.search(r"^name: ", b, flags=re.M)]


def test_every_yaml_example_is_valid_yaml() -> None:
    blocks = _yaml_blocks()
    assert len(blocks) >= 4
    for block in blocks:
        # a block of alternative `when:` lines repeats the key: read it line by line
        if block.count("\nwhen:") + block.startswith("when:") > 1:
            for part in re.split(r"^(?=when:)", block, flags=re.M):
                if part.strip():
                    yaml.safe_load(part)
        else:
            yaml.safe_load(block)


def _pack_example(keyword: str, tmp_path: Path) -> Pack:
    block = next(b for b in _pack_blocks() if keyword in b)
    return parse_pack(block, source=f"docs/policy-language.md ({keyword})", base_dir=tmp_path)


def test_the_first_pack_example_parses_and_blocks_sms_offers_after_a_complaint(tmp_path: Path) -> None:
    pack = _pack_example("no-sms-after-complaint", tmp_path)
    assert pack.name == "my-shop" and pack.version == "3" and pack.extends == "default"
    assert pack.settings.default_openness.value == "reserved"
    assert "web-greeting-by-name" in pack.disabled
    assert "web-greeting-by-name" not in [r.id for r in pack.rules]
    complaint = {"id": "said", "kind": "event", "category": "user.behavior.purchase_history",
                 "origin": "declared", "source": "chat", "context": "complaint", "at": "2026-11-20"}
    sms = {"channel": "sms", "to": "mobile", "purpose": "marketing.communications.sms", "uses": ["said"],
           "depth": "segment"}
    grant = [{"purpose": "marketing.communications", "status": "granted", "source": "form",
              "at": "2025-01-01"}]
    after = evaluate(scenario(facts=[complaint], touch=sms, consents=grant), pack)
    assert "no-sms-after-complaint" in fired(after) and after.verdict is Verdict.BLOCK
    # the same offer by SMS without the complaint is not this rule's business
    plain = evaluate(scenario(touch={**sms, "uses": ["f1"]}, consents=grant), pack)
    assert "no-sms-after-complaint" not in fired(plain)


def test_the_extending_example_behaves_as_its_comments_say(tmp_path: Path) -> None:
    pack = _pack_example("corner-shop", tmp_path)
    assert pack.extends == "default" and pack.settings.min_group_size == 25
    ids = [r.id for r in pack.rules]
    # "default_openness: reserved — unknown customers get category depth at most"
    unknown = evaluate(scenario(customer={"id": "c9", "openness": None}, touch={"depth": "item"}), pack)
    assert unknown.verdict is Verdict.SOFTEN and unknown.max_depth.value == "category"
    # "disable: [survey-frequency-cap]"
    assert "survey-frequency-cap" not in ids
    # "replace an inherited rule, keeping its place in the order"
    inherited = [r.id for r in load_pack().rules]
    assert [i for i in ids if i in inherited] == [i for i in inherited if i in ids]
    browse_web = evaluate(scenario(touch={"channel": "web", "to": None, "trigger": "realtime_browse",
                                          "purpose": "personalize.content", "kind": "recommendation"},
                                   consents=[{"purpose": "personalize.content", "status": "granted",
                                              "source": "form", "at": "2025-01-01"}]), pack)
    assert fired(browse_web) == ["realtime-browse-trigger"]  # the default only stops off-site outreach
    assert decide(touch={"channel": "web", "to": None, "trigger": "realtime_browse", "kind": "recommendation",
                         "purpose": "personalize.content"},
                  consents=[{"purpose": "personalize.content", "status": "granted", "source": "form",
                             "at": "2025-01-01"}]).verdict is Verdict.ALLOW
    # "add a rule (appended)": no push marketing
    assert ids[-1] == "no-push"
    push = evaluate(scenario(touch={"channel": "push", "to": None,
                                    "purpose": "marketing.communications.push"}), pack)
    assert "no-push" in fired(push) and push.verdict is Verdict.BLOCK


def test_the_condition_examples_parse() -> None:
    block = next(b for b in _yaml_blocks() if b.startswith("when: customer_deceased"))
    parts = [p for p in re.split(r"^(?=when:)", block, flags=re.M) if p.strip()]
    assert len(parts) >= 4
    for i, part in enumerate(parts):
        rule = textwrap.indent(part.rstrip(), "    ")
        text = (f"name: ex\nversion: 1\nextends: default\nrules:\n  - id: example-{i}\n    title: t\n"
                f"    source: docs\n    verdict: block\n    message: m\n    remedy: r\n{rule}\n")
        pack = parse_pack(text, source=f"docs example {i}")
        assert pack.rules[-1].id == f"example-{i}"


def test_the_structured_settings_examples_parse() -> None:
    block = next(b for b in _yaml_blocks() if b.startswith("openness_max_depth:"))
    settings = textwrap.indent(block.rstrip(), "  ")
    channel_purposes = load_pack().settings.channel_purposes
    # the example's channel_purposes is a subset of the default's: an extending pack must keep the
    # inherited entries (the guard setting), so the example is read over a root copy of the default
    text = ("name: ex\nversion: 1\nextends: default\nsettings:\n"
            + settings.replace("  channel_purposes: {email: marketing.communications.email, "
                               "sms: marketing.communications.sms}",
                               "  channel_purposes: {"
                               + ", ".join(f"{c.value}: {u}" for c, u in channel_purposes.items()) + "}")
            + "\n")
    pack = parse_pack(text, source="docs settings example")
    assert pack.settings.openness_max_depth[pack.settings.default_openness].value == "item"
    caps = pack.settings.frequency_caps
    assert len(caps) == 1 and caps[0].max == 1 and caps[0].days == 28
    assert {c.value for c in caps[0].channels} == {"postal_mail", "postcard"}
