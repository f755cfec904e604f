"""Docs are part of the product: every command and option is in docs/cli.md
(regenerate with `.venv/bin/python scripts/cli_reference.py > docs/cli.md`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import typer

from tactful.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _reference() -> object:
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "scripts" / "cli_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_command_and_option_is_documented() -> None:
    doc = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    walk = _reference().walk  # type: ignore[attr-defined]
    missing: list[str] = []
    commands = list(walk(typer.main.get_command(app)))
    assert len(commands) >= 8
    for path, cmd in commands:
        title = f"## `tactful {' '.join(path)}`"
        if title not in doc:
            missing.append(title)
            continue
        section = doc.split(title, 1)[1].split("\n## ", 1)[0]
        for param in cmd.params:
            if param.param_type_name == "option" and param.name != "help":
                missing += [f"{title} {opt}" for opt in param.opts if f"`{opt}`" not in section]
    assert not missing, "docs/cli.md is stale; regenerate it: " + ", ".join(missing)
