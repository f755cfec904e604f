"""``tactful vocab``: list the data categories and data uses Tactful knows."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from tactful import vocab
from tactful.commands.common import console, data_text

vocab_app = typer.Typer(help="List the data categories and data uses (fideslang + Tactful extensions).",
                        no_args_is_help=True)


def _show(taxonomy: vocab.Taxonomy, title: str, prefix: str | None, extensions_only: bool,
          fmt: str) -> None:
    terms = [t for t in taxonomy.terms.values()
             if (prefix is None or vocab.covers(prefix, t.key)) and (t.extension or not extensions_only)]
    terms.sort(key=lambda t: t.key)
    if fmt == "json":
        typer.echo(json.dumps([{"key": t.key, "parent": t.parent, "name": t.name,
                                "extension": t.extension} for t in terms], indent=2))
        return
    table = Table(title=f"{title} ({len(terms)})")
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("name")
    table.add_column("from")
    for t in terms:
        table.add_row(data_text(t.key), data_text(t.name), "tactful" if t.extension else "fideslang")
    console().print(table)


Prefix = Annotated[str | None, typer.Argument(help="Only keys under this one, e.g. user.health_and_medical.")]
ExtOnly = Annotated[bool, typer.Option("--extensions", help="Only Tactful's extensions.")]
Fmt = Annotated[str, typer.Option("--format", help="text or json.")]


def _check_format(fmt: str) -> str:
    if fmt not in ("text", "json"):
        raise typer.BadParameter(f"expected text or json, got {fmt!r}", param_hint="--format")
    return fmt


@vocab_app.command("categories")
def categories(prefix: Prefix = None, extensions: ExtOnly = False, fmt: Fmt = "text") -> None:
    """List the data categories (what a fact is about, what it implies)."""
    _show(vocab.data_categories(), "data categories", prefix, extensions, _check_format(fmt))


@vocab_app.command("uses")
def uses(prefix: Prefix = None, extensions: ExtOnly = False, fmt: Fmt = "text") -> None:
    """List the data uses (the purposes of consents and touches)."""
    _show(vocab.data_uses(), "data uses", prefix, extensions, _check_format(fmt))


def register(app: typer.Typer) -> None:
    app.add_typer(vocab_app, name="vocab")
