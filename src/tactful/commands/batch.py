"""CLI commands: the ``tactful batch`` group (decide many candidates at once; docs/batch.md)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from tactful.commands.common import DbOption, console, count_bar, data_text

if TYPE_CHECKING:
    from rich.console import Console

    from tactful.batch.run import RunResult
    from tactful.batch.writeback import BatchRun
    from tactful.policy import Pack


#: DuckDB's memory limit as the option takes it: a number and a unit
MEMORY_LIMIT = re.compile(r"\d{1,6}(\.\d{1,3})?\s?(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)


def _memory_limit(value: str | None) -> str | None:
    if value is not None and not MEMORY_LIMIT.fullmatch(value.strip()):
        raise typer.BadParameter(f"expected a size such as 3GB or 500MB, got {value!r}",
                                 param_hint="--memory-limit")
    return value.strip() if value is not None else None


def _decide(candidates: Path, pack: Pack, *, db: str | None, backend: str, now: datetime | None,
            reference: bool | None, quiet: bool, err_console: Console, threads: int | None = None,
            memory_limit: str | None = None) -> RunResult:
    from tactful.batch.candidates import read_table
    from tactful.batch.run import decide_candidates

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console, disable=quiet, transient=True) as bar:
        task = bar.add_task("reading candidates" if reference is False or (
            reference is None and backend == "duckdb") else "building features", total=None)

        def advance(n: int) -> None:
            bar.advance(task, n)

        bar.update(task, total=read_table(candidates).num_rows)
        return decide_candidates(candidates, pack, db=db, backend=backend, now=now, progress=advance,
                                 reference=reference, threads=threads, memory_limit=memory_limit)


def _write_back(db: str | None, run_id: str, result: RunResult, *, quiet: bool,
                err_console: Console) -> None:
    from tactful.batch.writeback import write_run

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console, disable=quiet, transient=True) as bar:
        task = bar.add_task("writing decisions to the store", total=result.decisions.num_rows)
        write_run(db, run_id, result, progress=lambda n: bar.advance(task, n))


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
        to_store: Annotated[bool, typer.Option(
            "--to-store", help="Also write the run and its decisions to the store it reads (--db): "
            "tables batch_runs and batch_decisions, all in one transaction; prints the run id (alone "
            "with --quiet). Read them back with `tactful batch runs` and `tactful batch show`.")] = False,
        threads: Annotated[int | None, typer.Option(
            "--threads", min=1, max=256, help="DuckDB's threads (default: one per core).",
            show_default=False)] = None,
        memory_limit: Annotated[str | None, typer.Option(
            "--memory-limit", help="DuckDB's memory limit, e.g. 3GB (default: DuckDB's, 80% of the "
            "machine's memory). Past it the in-backend path spills to a private temporary directory.",
            show_default=False, callback=_memory_limit)] = None,
    ) -> None:
        """Decide every candidate touch of CANDIDATES against the store: one decision per row (verdict,
        max depth, naming, fired rules, policy, input hash), a progress bar, and a summary by verdict
        and by rule. A row that cannot be judged is blocked with its error. With --to-store the run is
        recorded first (status running) and its decisions written at the end, all or nothing. Exit 2
        for an unreadable candidates file, an unknown backend or one that does not support the
        request; 3 when the store cannot be read or written."""
        from tactful.batch.run import check_output, write_decisions
        from tactful.policy import load_pack
        from tactful.realtime import parse_now

        pack = load_pack(policy)
        when = parse_now(now)
        err_console = console(stderr=True)
        if out is not None:
            check_output(out)
        run_id: str | None = None
        if to_store:
            from tactful.batch.writeback import start_run

            run_id = start_run(db, source=candidates, policy_name=pack.name,
                               policy_version=pack.version, backend=backend, evaluated_at=when)
        try:
            result = _decide(candidates, pack, db=db, backend=backend, now=when, reference=reference,
                             quiet=quiet, err_console=err_console, threads=threads,
                             memory_limit=memory_limit)
            if out is not None:
                write_decisions(result.decisions, out)
            if run_id is not None:
                _write_back(db, run_id, result, quiet=quiet, err_console=err_console)
        except BaseException as exc:
            if run_id is not None:  # says why; nothing when the run was already marked
                from tactful.batch.writeback import FAILED, INTERRUPTED, fail_run

                fail_run(db, run_id, exc, status=INTERRUPTED if isinstance(exc, KeyboardInterrupt)
                         else FAILED)
            raise
        if quiet and run_id is not None:
            console().print(data_text(run_id))
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
        if run_id is not None:
            out_console.print(data_text(f"wrote batch run {run_id} to the store ({total:,} decisions)"))

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

    @group.command("runs")
    def runs(
        db: DbOption = None,
        limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000,
                                           help="Show at most this many runs.")] = 20,
    ) -> None:
        """List the batch runs written to the store with --to-store, newest first: status, policy,
        candidates file, decisions by verdict. A run whose process is gone while it was running is
        shown interrupted. Exit 3 when the store cannot be read."""
        from tactful.batch.writeback import list_runs

        found = list_runs(db, limit=limit)
        if not found:
            console().print(Text("no batch runs in the store (`tactful batch decide ... --to-store` "
                                 "writes one)"))
            return
        table = Table(title="batch runs (tactful batch show RUN for one)")
        table.add_column("run", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("started (UTC)")
        table.add_column("rows", justify="right")
        table.add_column("allow / soften / ask / block", justify="right")
        table.add_column("policy, candidates", overflow="fold")
        for run in found:
            counts = "-" if run.rows is None else "/".join(
                f"{run.by_verdict[v]:,}" for v in ("allow", "soften", "ask", "block"))
            table.add_row(data_text(run.id), data_text(run.status), _when(run.started_at),
                          "-" if run.rows is None else f"{run.rows:,}", counts,
                          data_text(f"{run.policy_name} {run.policy_version}, {Path(run.source).name}"))
        console().print(table)

    @group.command("show")
    def show(
        run_id: Annotated[str, typer.Argument(
            metavar="RUN", help="A run id from `tactful batch runs`, or latest (the newest finished run).",
            show_default=False)],
        customer: Annotated[str | None, typer.Option(
            "--customer", "-c", help="Only this customer's decisions.", show_default=False)] = None,
        limit: Annotated[int, typer.Option(
            "--limit", "-n", min=0, max=1_000_000,
            help="Show at most this many decisions (0: only the counts).")] = 20,
        db: DbOption = None,
    ) -> None:
        """One batch run: what ran (policy, candidates file and its SHA-256, backend, who ran it,
        status and why it failed), its decisions by verdict and by rule, and its decisions in row
        order (of one customer with --customer). Exit 2 for an unknown run, 3 when the store cannot be
        read."""
        from tactful.batch.writeback import FINISHED, count_decisions, get_run, read_decisions

        run = get_run(db, run_id)
        out = console()
        out.print(_run_table(run))
        if run.status != FINISHED:
            out.print(Text(f"run {run.status}: it has no decisions in the store", style="yellow"))
            return
        if customer is None:
            by_verdict, by_rule, total = run.by_verdict, run.by_rule, run.rows or 0
        else:
            by_verdict = count_decisions(db, run.id, customer_id=customer)
            total = sum(by_verdict.values())
            if not total:
                out.print(data_text(f"no decisions for customer {customer} in run {run.id}"))
                return
            rules: dict[str, int] = {}
            for cell in read_decisions(db, run.id, customer_id=customer).column("fired_rules").to_pylist():
                for rule in (cell or "").split(","):
                    if rule:
                        rules[rule] = rules.get(rule, 0) + 1
            by_rule = dict(sorted(rules.items(), key=lambda kv: (-kv[1], kv[0])))
        who = "" if customer is None else f" of customer {customer}"
        counts = Table(title=data_text(f"{total:,} decisions{who}"))
        counts.add_column("verdict")
        counts.add_column("count", justify="right")
        counts.add_column("")
        for verdict in ("allow", "soften", "ask", "block"):
            count = by_verdict.get(verdict, 0)
            counts.add_row(verdict, f"{count:,}", count_bar(count, total))
        out.print(counts)
        if by_rule:
            fired = Table(title="fired rules")
            fired.add_column("rule")
            fired.add_column("rows", justify="right")
            fired.add_column("")
            for rule, count in by_rule.items():
                fired.add_row(data_text(rule), f"{count:,}", count_bar(count, total))
            out.print(fired)
        if limit == 0:
            return
        rows = read_decisions(db, run.id, customer_id=customer, limit=limit).to_pylist()
        shown = Table(title=f"decisions (first {len(rows):,} of {total:,})")
        for name in ("row", "customer", "touch", "verdict", "depth", "named", "fired rules", "error"):
            shown.add_column(name)
        for r in rows:
            shown.add_row(str(r["row"]), data_text(r["customer_id"]), data_text(r["touch_id"]),
                          data_text(r["verdict"]), data_text(r["max_depth"]), "yes" if r["named"] else "no",
                          data_text(r["fired_rules"]), data_text(r["error"] or ""))
        out.print(shown)

    @group.command("delete")
    def delete(
        run_ids: Annotated[list[str], typer.Argument(
            metavar="RUN...", help="Run ids from `tactful batch runs`.", show_default=False)],
        db: DbOption = None,
    ) -> None:
        """Delete batch runs and their decisions from the store, all in one transaction (keep the
        store's size in hand: every --to-store run adds one row per candidate). A run still running,
        or an id that is not in the store, refuses the whole command before anything is deleted (exit
        2); 3 when the store cannot be written."""
        from tactful.batch.writeback import delete_runs

        deleted = delete_runs(db, run_ids)
        out = console()
        for run_id, count in deleted.items():
            out.print(data_text(f"deleted batch run {run_id} and its {count:,} decisions"))


def _when(at: datetime | None) -> str:
    if at is None:
        return "-"
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _run_table(run: BatchRun) -> Table:
    table = Table(title=data_text(f"batch run {run.id}"), show_header=False)
    table.add_column("")
    table.add_column("")
    fields: list[tuple[str, object]] = [
        ("status", run.status), ("started", _when(run.started_at)), ("finished", _when(run.finished_at)),
        ("policy", f"{run.policy_name} {run.policy_version}"),
        ("backend", run.backend + (f", features {run.features}" if run.features else "")),
        ("evaluated at", _when(run.evaluated_at) if run.evaluated_at else "each row's now, else the start"),
        ("candidates", run.source), ("candidates SHA-256", run.source_sha256),
        ("decisions", "-" if run.rows is None else f"{run.rows:,}"),
        ("could not be judged", "-" if run.error_count is None else f"{run.error_count:,}"),
        ("ran by", f"pid {run.pid} on {run.host}" if run.pid is not None else run.host or "-"),
        ("tactful", run.tool_version or "-"),
    ]
    if run.error:
        fields.append(("error", run.error))
    for name, value in fields:
        table.add_row(name, data_text(value))
    return table
