"""CLI commands: the ``tactful scenario`` group (export the scenario the store gives a customer)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
import yaml

from tactful.commands.common import DbOption, has_unsafe, safe_json, safe_text
from tactful.errors import ScenarioError
from tactful.files import open_new_private_file

NowOption = Annotated[
    str | None,
    typer.Option("--now", help="The evaluation time (ISO 8601; UTC when no offset is given). Default: "
                               "the touch file's now, else the current time.", show_default=False),
]


SensitivityOption = Annotated[
    Path | None,
    typer.Option("--sensitivity", help="The product sensitivity mapping that labels shown products and "
                                       "purchases, on top of their stored labels (default: the packaged "
                                       "one, docs/sensitivity.md).", show_default=False),
]


def render_document(document: dict[str, object], *, as_json: bool, header: list[str]) -> str:
    """The scenario document as YAML (with a comment header) or JSON, safe to print: control and
    invisible format characters from the data are escaped (``\\u202e``), so they reach no terminal,
    and the document still reads back to exactly the same values."""
    if as_json:
        return safe_json(document) + "\n"  # C1 controls and bidi overrides as \\uXXXX (same values)
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
    if has_unsafe(body):  # YAML would write a bidi override raw: escape all non-ASCII instead (lossless)
        body = yaml.safe_dump(document, sort_keys=False, allow_unicode=False, default_flow_style=False,
                              width=100)
    return "".join(f"# {safe_text(line)}\n" for line in header) + body


def write_new_file(path: Path, text: str) -> None:
    """Create ``path`` owner-only (it holds personal data); an existing file is never replaced."""
    fd = open_new_private_file(path, ScenarioError,
                             exists=f"{path} already exists; scenario export never replaces a file",
                             exists_hint="choose another --out path, or remove the file yourself")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def register(app: typer.Typer) -> None:
    """Add the ``scenario`` group to the root app."""
    group = typer.Typer(help="Scenarios built from the store (docs/realtime.md).", no_args_is_help=True)
    app.add_typer(group, name="scenario")

    @group.command("export")
    def export(
        customer: Annotated[str, typer.Argument(help="The customer's id in the store.")],
        touch: Annotated[Path | None, typer.Option(
            "--touch", help="A touch file (docs/realtime.md). Without it the touch is a placeholder "
                            "(a generic web service message that uses nothing): edit it before deciding.",
            show_default=False)] = None,
        out: Annotated[Path | None, typer.Option(
            "--out", "-o", help="Write to this new file (owner-only; .json writes JSON, anything else "
                                "YAML) instead of standard output. An existing file is refused.",
            show_default=False)] = None,
        db: DbOption = None,
        now: NowOption = None,
        sensitivity: SensitivityOption = None,
        policy: Annotated[str | None, typer.Option(
            "--policy", "-p", help="The policy pack whose windows bound the recent touches read "
                                   "(default: the packaged default pack).", show_default=False)] = None,
    ) -> None:
        """Write the scenario document that `tactful decide --customer ID --touch TOUCH` judges, so it
        can be read and replayed with `tactful decide FILE` (same decision). Exit 2 for an unknown
        customer or an invalid touch file, 3 when the store cannot be read."""
        from tactful.policy import load_pack
        from tactful.realtime import load_touch_file, scenario_document, scenario_from_store
        from tactful.sensitivity import load_mapping
        from tactful.store.db import redact_url, resolve_url

        pack = load_pack(policy)
        spec = load_touch_file(touch) if touch is not None else None
        mapping = load_mapping(sensitivity) if sensitivity is not None else None
        scenario = scenario_from_store(db, customer, spec, pack, now=now, mapping=mapping)
        header = [
            f"Scenario of customer {customer!r} built from the store {redact_url(resolve_url(db))}",
            f"by `tactful scenario export` for policy {pack.name} {pack.version} (docs/realtime.md).",
            f"Touch: {touch}" if touch is not None else
            "Touch: a PLACEHOLDER (no --touch given); edit it before deciding.",
            "Replay: tactful decide THIS_FILE",
        ]
        text = render_document(scenario_document(scenario),
                               as_json=out is not None and out.suffix == ".json",
                               header=header)
        if out is None:
            typer.echo(text, nl=False)
        else:
            write_new_file(out, text)
            typer.echo(f"wrote {safe_text(out)}", err=True)
