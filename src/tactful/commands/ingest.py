"""CLI: ``tactful import KIND FILE`` (customers, households, contact-points, products, orders, consents,
facts, touches from CSV, JSON Lines or Parquet)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from tactful.commands.common import DbOption, data_text, safe_text
from tactful.commands.common import console as make_console
from tactful.errors import QuarantineWarning
from tactful.ingest import DEFAULT_BATCH_SIZE, KINDS, ImportResult, run_import
from tactful.store.db import open_store

Kind = StrEnum("Kind", {name.replace("-", "_").upper(): name for name in KINDS})  # type: ignore[misc]


class Format(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"
    PARQUET = "parquet"


def summary_table(result: ImportResult) -> Table:
    table = Table(title=f"import {result.kind} #{result.import_id}", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("file", data_text(result.path))
    table.add_row("format", result.format)
    table.add_row("rows read", f"{result.rows_read:,}")
    table.add_row("imported", f"{result.rows_imported:,}")
    quarantined = f"{result.rows_quarantined:,}"
    table.add_row("quarantined", f"[red]{quarantined}[/]" if result.rows_quarantined else quarantined)
    table.add_row("quarantine file", data_text(result.quarantine_file) if result.quarantine_file else "none")
    rate = result.rows_read / result.seconds if result.seconds > 0 else 0.0
    table.add_row("time", f"{result.seconds:.2f} s ({rate:,.0f} rows/s)")
    return table


def import_command(
    kind: Annotated[Kind, typer.Argument(help="What the file holds.", show_default=False)],
    file: Annotated[Path, typer.Argument(help="The CSV, JSON Lines or Parquet file.", show_default=False)],
    db: DbOption = None,
    mapping: Annotated[Path | None, typer.Option(
        "--mapping", help="Column mapping YAML (our field ← their column; docs/import-formats.md).")]
        = None,
    source: Annotated[str | None, typer.Option(
        "--source", help="A label for this export (kept with the import's provenance).")] = None,
    fmt: Annotated[Format | None, typer.Option(
        "--format", help="File format; by default from the extension.", case_sensitive=False)] = None,
    quarantine: Annotated[Path | None, typer.Option(
        "--quarantine", help="Where bad rows go (default <name>.quarantine.csv or .jsonl next to FILE).")]
        = None,
    sensitivity: Annotated[Path | None, typer.Option(
        "--sensitivity", help="Products only: the product → data category mapping YAML used when a row "
                              "has no implies (default: the packaged one).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=1_000_000,
                                            help="Rows per transaction.")]
        = DEFAULT_BATCH_SIZE,
) -> None:
    """Import a file into the store: validate every row, quarantine bad ones, upsert the good ones.

    Exits 0 when every row was imported, 4 when some were quarantined, 2 when the import could not
    run (missing file, bad mapping, no column for a required field), 3 when the store is not ready.
    """
    console = make_console()
    engine = open_store(db)
    try:
        with Progress(
            TextColumn(f"importing {kind.value}"), BarColumn(),
            MofNCompleteColumn() if (fmt or file.suffix.lower().lstrip(".")) in ("parquet", "pq")
            else DownloadColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), transient=True,
            disable=not Console(stderr=True).is_terminal,
        ) as bar:
            task = bar.add_task("import", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = run_import(
                engine, kind.value, file, mapping_path=mapping, fmt=fmt.value if fmt else None,
                source_label=source, quarantine_path=quarantine, sensitivity_path=sensitivity,
                batch_size=batch_size, progress=advance,
            )
    finally:
        engine.dispose()
    console.print(summary_table(result))
    if result.rows_quarantined:
        for example in result.examples[:3]:
            console.print(Text.assemble("  ", ("✗", "red"), " ", data_text(example)), highlight=False,
                          soft_wrap=True)
        raise QuarantineWarning(
            f"{result.rows_quarantined:,} of {result.rows_read:,} rows were quarantined "
            f"to {safe_text(result.quarantine_file)}",
            hint="fix the rows there and import that file with the same command; the "
                 "_tactful_row and _tactful_reason columns are ignored on import")


def register(app: typer.Typer) -> None:
    """Add ``tactful import`` to the root app."""
    app.command("import", help="Import customers, orders, consents... from CSV, JSON Lines or Parquet.")(
        import_command)
