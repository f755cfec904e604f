"""CLI commands: the ``tactful campaign`` group (run a campaign, list runs, show a run's report;
docs/campaign-format.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from tactful.commands.common import DbOption, console, data_text

DEMO = "demo"


def register(app: typer.Typer) -> None:
    """Add the ``campaign`` group to the root app."""
    group = typer.Typer(help="Run a campaign end to end: recommendations, decisions, messages, outbox, "
                             "delivery, report (docs/campaign-format.md).", no_args_is_help=True)
    app.add_typer(group, name="campaign")

    @group.command("run")
    def run(
        file: Annotated[str, typer.Argument(
            help="The campaign file (YAML, docs/campaign-format.md), or 'demo' for the packaged demo "
                 "campaign.", show_default=False)],
        db: DbOption = None,
        backend: Annotated[str, typer.Option(
            "--backend", "-b", help="Where the policy runs: duckdb (embedded), pyspark or postgres "
                                    "(the store's server).")] = "duckdb",
        dry_run: Annotated[bool, typer.Option(
            "--dry-run", help="Decide and compose, write the report, but log nothing, queue nothing and "
                              "send nothing.")] = False,
        out: Annotated[Path, typer.Option(
            "--out", "-o", help="Directory for the run's files: one owner-only subdirectory per run "
                                "(print-shop CSV, .eml files, report.html).")] = Path("campaign-runs"),
        now: Annotated[str | None, typer.Option(
            "--now", help="The evaluation time (ISO 8601; UTC when no offset is given); it also sets the "
                          "period of the outbox key. Default: the current time.",
            show_default=False)] = None,
        resume: Annotated[str | None, typer.Option(
            "--resume", help="The id of a run that was killed: resume it (what it logged is kept, "
                             "nothing is written twice).", show_default=False)] = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars and no summary; "
                                                                  "only the report's path.")] = False,
        deliver: Annotated[bool, typer.Option(
            "--deliver/--no-deliver",
            help="Deliver the queued messages into the run's files (print-shop CSV, SMS CSV, .eml); "
                 "--no-deliver leaves them pending for `tactful campaign deliver`.")] = True,
        log_batch: Annotated[int, typer.Option(
            "--log-batch", min=1, max=100_000,
            help="Decisions logged (with their messages) per transaction; a customer's decisions are "
                 "never split. A killed run keeps every batch it committed.")] = 500,
        in_backend: Annotated[bool | None, typer.Option(
            "--in-backend/--reference",
            help="--in-backend builds the feature frame inside DuckDB from the run's copy of the "
                 "store, every proposal of a block at once; --reference builds it in Python per "
                 "customer. Same decisions. "
                 "Default: the Python frame below 50,000 customers (faster at the demo's size), the "
                 "in-backend frame from 50,000 on (then only a sample of each rule's decisions gets "
                 "reasons naming the customer's facts; the others the rule's title).",
            show_default=False)] = None,
        block: Annotated[int, typer.Option(
            "--block-size", min=1, max=10_000_000,
            help="Customers decided, composed and logged together; the run's memory grows with "
                 "this, not with the audience.")] = 50_000,
    ) -> None:
        """Run the campaign FILE over its audience: recommended candidates with their implied
        categories, one decision per customer and channel (the batch evaluator), messages at the
        allowed depth, the decision log and the idempotent outbox, delivery into files, and the HTML
        report, whose path is printed. Exit 2 for a bad campaign file or backend, 3 for store
        problems."""
        from tactful.campaign import demo_campaign, load_campaign, run_campaign
        from tactful.realtime import parse_now

        campaign = demo_campaign() if file == DEMO else load_campaign(file)
        when = parse_now(now)
        err = console(stderr=True)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err, disable=quiet, transient=True) as bar:

            def step(name: str, total: int | None) -> Callable[[int], None]:
                task = bar.add_task(name, total=total)

                def advance(n: int) -> None:
                    bar.advance(task, n)
                return advance

            summary = run_campaign(campaign, db=db, backend=backend, dry_run=dry_run, now=when,
                                   out_dir=out, resume=resume, step=step, log_batch=log_batch,
                                   deliver=deliver,
                                   reference=None if in_backend is None else not in_backend,
                                   block=block)
        out_console = console()
        if not quiet:
            title = f"campaign {campaign.name}, run {summary.run_id}, period {summary.period}"
            table = Table(title=data_text(title + (" (dry run: nothing logged or sent)"
                                                   if summary.dry_run else "")))
            table.add_column("outcome per customer")
            table.add_column("customers", justify="right")
            words = {"allow": "sent as proposed", "soften": "sent toned down",
                     "ask": "permission asked first", "block": "held back"}
            for verdict, label in words.items():
                table.add_row(label, f"{summary.by_verdict.get(verdict, 0):,}")
            out_console.print(table)
            channels = ", ".join(f"{c.replace('_', ' ')} {n:,}"
                                 for c, n in sorted(summary.by_channel.items()))
            out_console.print(Text(f"messages by channel: {channels or 'none'}"))
            out_console.print(Text(f"{summary.decisions:,} decisions for {summary.customers:,} customers; "
                                   f"{summary.queued:,} new message(s) queued; "
                                   f"{summary.swaps:,} product(s) swapped"))
            if summary.delivery:
                out_console.print(Text("outbox: " + ", ".join(f"{k} {v:,}" for k, v in
                                                                sorted(summary.delivery.items()))))
            out_console.print(Text("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in
                                                         summary.seconds.items())))
        out_console.print(data_text(f"report: {summary.report}"), soft_wrap=True)

    @group.command("list")
    def list_(
        db: DbOption = None,
        limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000,
                                            help="Show at most this many runs.")] = 50,
    ) -> None:
        """List the store's campaign runs, newest first: id, campaign, period, status, decisions and
        messages."""
        from tactful.campaign import list_runs

        runs = list_runs(db, limit=limit)
        table = Table(title=f"{len(runs)} campaign run(s)")
        for col in ("run", "campaign", "period", "status", "started", "decisions", "queued"):
            table.add_column(col, justify="right" if col in ("decisions", "queued") else "left")
        for r in runs:
            status = r.status + (" (dry run)" if r.dry_run else "")
            table.add_row(data_text(r.id), data_text(r.campaign), data_text(r.period), data_text(status),
                          r.started_at.strftime("%Y-%m-%d %H:%M"), str(r.summary.get("decisions", "-")),
                          str(r.summary.get("queued", "-")))
        console().print(table)

    @group.command("report")
    def report(
        run_id: Annotated[str, typer.Argument(help="The run's id (tactful campaign list).",
                                              show_default=False)],
        db: DbOption = None,
        html: Annotated[Path | None, typer.Option(
            "--html", help="Rebuild the run's HTML report from the store alone and write it to this new "
                           "file (owner-only; an existing file is never replaced).",
            show_default=False)] = None,
    ) -> None:
        """Show one run: its status, decisions by verdict, outbox messages by status, and the path of
        its HTML report; with --html, rebuild that report from the store into a new file. Exit 2 when
        the run is not in the store (or was logged before the store kept messages) or the file
        exists, 3 when the store cannot be read."""
        from tactful.campaign import rebuild_report, run_details, run_reasons

        row, verdicts, statuses = run_details(run_id, db)
        if html is not None:
            written = rebuild_report(run_id, html, db)
            console().print(data_text(f"report rebuilt from the store: {written}"), soft_wrap=True)
            return
        out_console = console()
        table = Table(title=data_text(f"run {row.id}: campaign {row.campaign}, period {row.period}, "
                                      f"{row.status}, policy {row.policy}"))
        table.add_column("")
        table.add_column("count", justify="right")
        for verdict in ("allow", "soften", "ask", "block"):
            table.add_row(f"decisions: {verdict}", f"{verdicts.get(verdict, 0):,}")
        for status in sorted(statuses):
            table.add_row(data_text(f"outbox: {status}"), f"{statuses[status]:,}")
        out_console.print(table)
        why = run_reasons(run_id, db)
        if why:
            rules = Table(title="why: the rules behind the final decisions, with one logged reason each")
            rules.add_column("rule")
            rules.add_column("customers", justify="right")
            rules.add_column("verdict")
            rules.add_column("for example")
            for w in why[:15]:
                rules.add_row(data_text(w.title), f"{w.customers:,}", data_text(w.verdict),
                              data_text(w.example))
            out_console.print(rules)
        path = row.summary.get("report")
        out_console.print(data_text(f"report: {path}" if path else "report: none (the run did not finish)"),
                          soft_wrap=True)

    @group.command("deliver")
    def deliver(
        run_id: Annotated[str, typer.Argument(help="The run's id (tactful campaign list).",
                                              show_default=False)],
        db: DbOption = None,
        out: Annotated[Path | None, typer.Option(
            "--out", "-o", help="Directory for the files (print-shop CSV, SMS CSV, .eml files or the "
                                "mbox); created owner-only. Default: campaign-runs/RUN.",
            show_default=False)] = None,
        email: Annotated[str, typer.Option(
            "--email", help="How email goes out: eml (one file per message), mbox (one mailbox file) "
                            "or smtp (a mail server).")] = "eml",
        smtp_host: Annotated[str | None, typer.Option(
            "--smtp-host", envvar="TACTFUL_SMTP_HOST", help="SMTP server (with --email smtp).",
            show_default=False)] = None,
        smtp_port: Annotated[int, typer.Option("--smtp-port", envvar="TACTFUL_SMTP_PORT", min=1,
                                               max=65535, help="SMTP port.")] = 25,
        starttls: Annotated[bool, typer.Option("--starttls", envvar="TACTFUL_SMTP_STARTTLS",
                                               help="Upgrade the SMTP connection with STARTTLS.")] = False,
        smtp_user: Annotated[str | None, typer.Option(
            "--smtp-user", envvar="TACTFUL_SMTP_USER", help="SMTP login name.", show_default=False)] = None,
        smtp_password: Annotated[str | None, typer.Option(
            "--smtp-password", envvar="TACTFUL_SMTP_PASSWORD", show_default=False,
            help="SMTP password; better set TACTFUL_SMTP_PASSWORD than type it on the command line. "
                 "Never printed.")] = None,
        from_address: Annotated[str, typer.Option(
            "--from", help="The sender address of email.")] = "no-reply@shop.invalid",
        attempts: Annotated[int, typer.Option("--attempts", min=1, max=20,
                                              help="Tries per message before it is marked failed.")] = 4,
        backoff: Annotated[float, typer.Option(
            "--backoff", min=0.0, max=600.0,
            help="Seconds before the first retry; doubled at each retry (at most 30 s).")] = 1.0,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    ) -> None:
        """Deliver the pending messages of run RUN's campaign and period (a killed run's too) through
        the chosen adapters: letters and postcards into the print-shop CSV, text messages into an SMS
        gateway CSV, email as .eml files, an mbox file or SMTP. Temporary failures are retried with
        back-off; a bounce marks the contact point so the next run knows. Files are owner-only and
        never replace an existing file. Exit 0 when delivery ran (failed and bounced messages are
        counted and kept on their outbox rows), 2 for bad options or an unknown run, 3 for store
        problems."""
        from tactful.campaign import SmtpSettings, deliver_run

        smtp = (SmtpSettings(host=smtp_host, port=smtp_port, starttls=starttls, username=smtp_user,
                             password=smtp_password) if smtp_host else None)
        directory, counts, errors = deliver_run(
            run_id, db=db, out_dir=out, email=email, smtp=smtp, from_address=from_address,
            attempts=attempts, backoff=backoff, show_progress=not quiet)
        out_console = console()
        table = Table(title=data_text(f"delivery of run {run_id}'s campaign and period"))
        table.add_column("outcome")
        table.add_column("messages", justify="right")
        for outcome in ("sent", "bounced", "failed", "no-adapter"):
            table.add_row(outcome, f"{counts.get(outcome, 0):,}")
        out_console.print(table)
        for customer, why in errors[:20]:
            out_console.print(data_text(f"customer {customer}: {why}"), soft_wrap=True)
        if len(errors) > 20:
            out_console.print(Text(f"... and {len(errors) - 20:,} more (their outbox rows keep the error)"))
        out_console.print(data_text(f"files: {directory}"), soft_wrap=True)
