"""docs/import-formats.md stays complete: every KIND and field is documented, every example mapping
in it is valid, and every option of ``tactful import`` is described."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tactful.ingest.kinds import KINDS
from tactful.ingest.mapping import parse_mapping

DOC = Path(__file__).parent.parent / "docs" / "import-formats.md"
TEXT = DOC.read_text(encoding="utf-8")


def section(kind: str) -> str:
    match = re.search(rf"^### {re.escape(kind)}\n(.*?)(?=^##)", TEXT, re.S | re.M)
    assert match, f"no section '### {kind}' in {DOC.name}"
    return match.group(1)


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_field_of_every_kind_is_documented(kind: str) -> None:
    body = section(kind)
    documented = re.findall(r"^\| `([a-z_]+)` \| (yes|no) \|", body, re.M)
    spec = KINDS[kind]
    assert [name for name, _ in documented] == spec.field_names()
    assert {name: req == "yes" for name, req in documented} == {f.name: f.required for f in spec.fields()}
    for info in spec.fields():  # enum values listed where the field is
        row = next(line for line in body.splitlines() if line.startswith(f"| `{info.name}` |"))
        for choice in info.choices:
            assert f"`{choice}`" in row, (kind, info.name, choice)


def test_every_example_mapping_is_valid() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", TEXT, re.S)
    assert len(blocks) >= 5
    for block in blocks:
        document = yaml.safe_load(block)
        parse_mapping(document, KINDS[document["kind"]], source="docs example")


def test_the_shopx_example_is_the_tested_fixture() -> None:
    fixture = (Path(__file__).parent / "data" / "ingest" / "mappings" / "shopx_consents.yaml").read_text()
    assert fixture in TEXT


def test_every_option_is_documented() -> None:
    import typer.main

    from tactful.cli import app

    command = typer.main.get_command(app).commands["import"]  # type: ignore[attr-defined]
    options = [opt for param in command.params for opt in param.opts if opt.startswith("--")]
    assert "--mapping" in options and "--quarantine" in options
    for opt in options:
        assert f"`{opt}`" in TEXT, opt
