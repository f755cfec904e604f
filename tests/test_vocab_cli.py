from __future__ import annotations

import json

from tactful.testing.cli import run_cli


def test_vocab_lists_categories_under_a_prefix() -> None:
    result = run_cli(["vocab", "categories", "user.health_and_medical", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    keys = {r["key"] for r in rows}
    assert "user.health_and_medical.reproductive" in keys
    assert all(k.startswith("user.health_and_medical") for k in keys)


def test_vocab_extensions_only_and_text() -> None:
    result = run_cli(["vocab", "uses", "--extensions"])
    assert result.exit_code == 0, result.stderr
    assert "marketing.communications.postal" in result.stdout
    assert "marketing.communications.email" not in result.stdout
    assert run_cli(["vocab", "uses", "--format", "xml"]).exit_code == 2
