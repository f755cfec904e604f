"""`tactful decide` and `tactful policy test|lint|explain` through the real entry point (exit codes
included)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tactful.policy import load_pack
from tactful.policy.testing import BASE
from tactful.testing.cli import run_cli

DEFAULT_PACK = Path(__file__).parents[1] / "src/tactful/policy/packs/default.yaml"


def write(path: Path, doc: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def test_decide_json_has_exactly_the_contract_keys(tmp_path: Path) -> None:
    doc = {**BASE, "customer": {"id": "c1", "openness": "reserved"},
           "touch": {**BASE["touch"], "depth": "history", "shows": ["f1"]}}
    code, out, _ = run_cli(["decide", str(write(tmp_path / "s.yaml", doc)), "--format", "json"])
    assert code == 0
    data = json.loads(out)
    assert list(data) == ["verdict", "max_depth", "named", "remedies", "reasons", "policy"]
    assert data["verdict"] == "soften" and data["max_depth"] == "category" and data["named"] is False
    assert set(data["reasons"][0]) == {"rule", "verdict", "message", "facts"}
    assert data["reasons"][0]["facts"] == ["f1"]
    assert data["policy"] == {"name": "default", "version": "1"}
    assert all(isinstance(r, str) for r in data["remedies"])


def test_decide_text_and_block_exits_zero(tmp_path: Path) -> None:
    doc = {**BASE, "consents": []}
    code, out, _ = run_cli(["decide", str(write(tmp_path / "s.yaml", doc))])
    assert code == 0
    assert out.startswith("verdict: block")
    assert "marketing-needs-opt-in" in out and "policy: default 1" in out


def test_decide_json_scenario_file(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(BASE), encoding="utf-8")
    code, out, _ = run_cli(["decide", str(path), "-f", "json"])
    assert code == 0 and json.loads(out)["verdict"] == "allow"


def test_decide_invalid_scenario_exits_2_with_field_path(tmp_path: Path) -> None:
    doc = {**BASE, "touch": {**BASE["touch"], "channel": "pigeon"}}
    code, _, err = run_cli(["decide", str(write(tmp_path / "s.yaml", doc))])
    assert code == 2
    assert "touch.channel" in err


def test_decide_yaml_syntax_error_exits_2_with_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("version: 1\ncustomer: {id: c1\ntouch: [\n", encoding="utf-8")
    code, _, err = run_cli(["decide", str(path)])
    assert code == 2
    assert "broken.yaml:" in err and "not valid YAML" in err
    assert any(part.isdigit() for part in err.split("broken.yaml:")[1].split(":")[:2])


def test_decide_with_a_pack(tmp_path: Path) -> None:
    pack = tmp_path / "shop.yaml"
    pack.write_text("name: shop\nversion: 3\nextends: default\nsettings:\n  default_openness: reserved\n")
    doc = {**BASE, "customer": {"id": "c1"}}
    code, out, _ = run_cli(["decide", str(write(tmp_path / "s.yaml", doc)), "--policy", str(pack),
                            "--format", "json"])
    data = json.loads(out)
    assert code == 0 and data["verdict"] == "soften" and data["policy"] == {"name": "shop", "version": "3"}


def test_decide_bad_pack_exits_2(tmp_path: Path) -> None:
    pack = tmp_path / "shop.yaml"
    pack.write_text("name: shop\nversion: 1\nextends: default\nsettings:\n  default_openness: chatty\n")
    code, _, err = run_cli(["decide", str(write(tmp_path / "s.yaml", BASE)), "--policy", str(pack)])
    assert code == 2 and "shop.yaml:5:21" in err and "chatty" in err


def _expecting(tmp_path: Path, name: str, expect: dict[str, object]) -> Path:
    return write(tmp_path / name, {**BASE, "expect": expect})


def test_policy_test_passes_and_fails(tmp_path: Path) -> None:
    _expecting(tmp_path, "a.yaml", {"verdict": "allow", "max_depth": "item", "named": False, "rules": []})
    write(tmp_path / "no-expect.yaml", BASE)
    code, out, _ = run_cli(["policy", "test", str(tmp_path)])
    assert code == 0
    assert "ok    a.yaml" in out and "1 passed, 0 failed, 1 without expect" in out

    _expecting(tmp_path, "b.yaml", {"verdict": "block"})
    _expecting(tmp_path, "c.yaml", {"verdict": "allow", "max_depth": "history"})
    _expecting(tmp_path, "d.yaml", {"verdict": "allow", "rules": ["deceased-customer"]})
    code, out, _ = run_cli(["policy", "test", str(tmp_path)])
    assert code == 1
    lines = out.splitlines()
    assert len([ln for ln in lines if ln.endswith(".yaml") or ".yaml:" in ln]) == 4  # one line per file
    assert any(ln.startswith("FAIL  b.yaml: verdict allow, expected block") for ln in lines)
    assert any(ln.startswith("FAIL  c.yaml: max_depth item, expected history") for ln in lines)
    assert any(ln.startswith("FAIL  d.yaml: rules [], expected [deceased-customer]") for ln in lines)


def test_policy_test_invalid_file_counts_as_failure(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("version: 2\n", encoding="utf-8")
    code, out, _ = run_cli(["policy", "test", str(tmp_path)])
    assert code == 1 and "ERROR bad.yaml" in out


def test_repository_scenarios_pass(tmp_path: Path) -> None:
    scenarios = Path(__file__).parent / "scenarios"
    if not any(scenarios.glob("*.yaml")):
        pytest.skip("no scenario files yet")
    code, out, _ = run_cli(["policy", "test", str(scenarios)])
    assert code == 0, out


def test_lint_default_pack_is_clean() -> None:
    code, out, _ = run_cli(["policy", "lint", str(DEFAULT_PACK), "--strict"])
    assert code == 0 and out.strip().endswith(": ok")


def test_lint_error_names_file_line_column_value_and_expected(tmp_path: Path) -> None:
    shutil.copy(DEFAULT_PACK, tmp_path / "p.yaml")
    text = (tmp_path / "p.yaml").read_text().replace("default_openness: balanced", "default_openness: warm")
    (tmp_path / "p.yaml").write_text(text)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "default_openness: warm" in ln)
    code, _, err = run_cli(["policy", "lint", str(tmp_path / "p.yaml")])
    assert code == 2
    assert f"p.yaml:{line}:21: setting default_openness: unknown value 'warm'" in err
    assert "expected one of closed, reserved, balanced, open" in err


def test_lint_warnings(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "name: p\nversion: 1\nextends: default\nrules:\n"
        "  - {id: twin, title: t, source: s, when: customer_deceased, verdict: block, message: m}\n")
    code, out, _ = run_cli(["policy", "lint", str(tmp_path / "p.yaml")])
    assert code == 0 and "same condition as rule deceased-customer" in out and "without a remedy" in out
    code, _, _ = run_cli(["policy", "lint", str(tmp_path / "p.yaml"), "--strict"])
    assert code == 1


def test_explain_prints_every_rule_in_plain_language() -> None:
    code, out, _ = run_cli(["policy", "explain"])
    assert code == 0
    for rule in load_pack().rules:
        assert f"{rule.id} — {rule.title}" in out
        assert f"Source: {rule.source}" in out
    assert "When the touch is marketing and not (the customer opted in to this purpose on this channel) " \
           "and not (the touch is generic in-session content using no personal data)" in out
    assert "{" not in out.split("The most restrictive")[1]
