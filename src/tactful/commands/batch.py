"""CLI commands: the ``tactful batch`` group (decide many candidates at once; docs/batch.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from tactful.commands.common import DbOption, console, count_bar, data_text


def register(app: typer.Typer) -> None:
    """Add the ``batch`` group to the root app."""
    group = typer.Typer(help="Decide many candidate touches at once with the compiled policy "
                             "(docs/batch.md).", no_args_is_help=True)
    app.add_typer(group, name="batch")

    @group.command("decide")
    def decide(
        candidates: Annotated[Path, typer.Argument(
            help="The candidates table (.csv, .jsonl or .parquet): customer_id, touch_id and touch "
                 "fields (docs/batch.md).", show_default=False)],
        backend: Annotated[str, typer.Option(
            "--backend", "-b", help="Where the policy runs: duckdb (embedded), pyspark or postgres "
                                    "(the store's server).")] = "duckdb",
        out: Annotated[Path | None, typer.Option(
            "--out", "-o", help="Write the decisions to this new file (.parquet or .csv, owner-only; an "
                                "existing file is refused). Without it only the summary is printed.",
            show_default=False)] = None,
        db: DbOption = None,
        policy: Annotated[str | None, typer.Option(
            "--policy", "-p", help="The policy pack (default: the packaged default pack).",
            show_default=False)] = None,
        now: Annotated[str | None, typer.Option(
            "--now", help="The evaluation time (ISO 8601; UTC when no offset is given). Default: each "
                          "row's now, else the current time.", show_default=False)] = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary.")] = False,
        reference: Annotated[bool | None, typer.Option(
            "--reference/--in-backend", help="Build the feature frame in Python from each candidate's "
            "scenario (the reference path, slow), or inside the backend from the store read in place. "
            "Default: in the backend where it can (duckdb), else the reference path.",
            show_default=False)] = None,
    ) -> None:
        """Decide every candidate touch of CANDIDATES against the store: one decision per row (verdict,
        max depth, naming, fired rules, policy, input hash), a progress bar, and a summary by verdict
        and by rule. A row that cannot be judged is blocked with its error. Exit 2 for an unreadable
        candidates file, an unknown backend or one that does not support the request; 3 when the store
        cannot be read."""
        from tactful.batch.candidates import read_table
        from tactful.batch.run import check_output, decide_candidates, write_decisions
        from tactful.policy import load_pack
        from tactful.realtime import parse_now

        pack = load_pack(policy)
        when = parse_now(now)
        err_console = console(stderr=True)
        if out is not None:
            check_output(out)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err_console, disable=quiet, transient=True) as bar:
            task = bar.add_task("reading candidates" if reference is False or (
                reference is None and backend == "duckdb") else "building features", total=None)

            def advance(n: int) -> None:
                bar.advance(task, n)

            bar.update(task, total=read_table(candidates).num_rows)
            result = decide_candidates(candidates, pack, db=db, backend=backend, now=when,
                                       progress=advance, reference=reference)
        if out is not None:
            write_decisions(result.decisions, out)
        if quiet:
            return
        total = result.decisions.num_rows
        frame = "features in the backend" if result.path == "backend" else "features built in Python"
        table = Table(title=data_text(f"{total} decisions ({pack.name} {pack.version}, "
                                      f"backend {result.backend}, {frame})"))
        table.add_column("verdict")
        table.add_column("count", justify="right")
        table.add_column("")
        for verdict in ("allow", "soften", "ask", "block"):
            count = result.by_verdict.get(verdict, 0)
            table.add_row(verdict, f"{count:,}", count_bar(count, total))
        out_console = console()
        out_console.print(table)
        rules = Table(title="fired rules")
        rules.add_column("rule")
        rules.add_column("rows", justify="right")
        rules.add_column("")
        for rule, count in result.by_rule.most_common():
            rules.add_row(data_text(rule), f"{count:,}", count_bar(count, total))
        if result.by_rule:
            out_console.print(rules)
        errors = result.errors
        if errors:
            out_console.print(Text(f"{len(errors)} candidate(s) could not be judged and are blocked; "
                                   "first:", style="yellow"))
            for e in errors[:5]:
                out_console.print(data_text(e))
        timing = ", ".join(f"{k} {v:.2f} s" for k, v in result.seconds.items())
        out_console.print(Text(f"time: {timing}"))
        if out is not None:
            out_console.print(data_text(f"wrote {out}"))

    @group.command("backends")
    def backends() -> None:
        """List the backends `batch decide --backend` accepts, what each runs on and what it does not
        support."""
        from tactful.batch.backends import BACKENDS

        table = Table(title="batch backends")
        table.add_column("backend")
        table.add_column("runs")
        table.add_column("does not support")
        for b in BACKENDS.values():
            table.add_row(b.name, b.description, "\n".join(b.unsupported) or "-")
        console().print(table)
