"""Write docs/cli.md from the Typer app: every command, its arguments and options, its help text.

    .venv/bin/python scripts/cli_reference.py > docs/cli.md

tests/test_docs_cli.py fails when a command or option is missing from docs/cli.md.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Any

import typer

from tactful.cli import app


def walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Yield (path, click command) for every leaf command, depth first, in name order."""
    subcommands = getattr(command, "commands", None)
    if subcommands:
        for name in sorted(subcommands):
            yield from walk(subcommands[name], (*path, name))
    else:
        yield path, command


def _choices(param: Any) -> list[str] | None:
    """The allowed values of an Enum-typed parameter (Typer keeps the annotation)."""
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [str(m.value) for m in annotation]
    return None


def render() -> str:
    root = typer.main.get_command(app)
    out = [
        "# CLI reference",
        "",
        "Generated from the commands themselves by `scripts/cli_reference.py`; "
        "`tests/test_docs_cli.py` fails when a command or option is missing here.",
        "",
        "Every command that reads or writes the store takes `--db URL` (or the `TACTFUL_DB` "
        "environment variable); the default is `sqlite:///tactful.db` in the working directory.",
        "",
        "Exit codes: 0 success (for `decide`, whatever the verdict); 1 a `policy test` mismatch or an "
        "unexpected failure; 2 invalid input (a scenario, a pack, a mapping, a usage error); 3 the "
        "store cannot be reached or needs `tactful init`; 4 an import quarantined rows.",
        "",
    ]
    for path, cmd in walk(root):
        params = [p for p in cmd.params if p.name != "help"]
        arguments = [p.name.upper() for p in params if p.param_type_name == "argument"]
        usage = " ".join(["tactful", *path, *arguments])
        out += [f"## `tactful {' '.join(path)}`", "", (cmd.help or "").strip(), "", "```", usage, "```", ""]
        rows = []
        for p in params:
            choices = _choices(p)
            one_of = f" One of: {', '.join(f'`{c}`' for c in choices)}." if choices else ""
            if p.param_type_name == "argument":
                rows.append((p.name.upper(), "argument", (getattr(p, "help", None) or "") + one_of))
            else:
                names = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
                shown = p.default not in (None, False, ()) and not callable(p.default)
                default = p.default if shown else None
                text = (getattr(p, "help", None) or "").replace("|", "\\|") + one_of
                if default is not None:
                    text += f" Default: `{default}`."
                if getattr(p, "envvar", None):
                    text += f" Environment: `{p.envvar}`."
                rows.append((names, "option", text))
        if rows:
            out += ["| name | kind | meaning |", "| --- | --- | --- |"]
            out += [f"| {n} | {k} | {t.strip()} |" for n, k, t in rows]
            out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(render())
