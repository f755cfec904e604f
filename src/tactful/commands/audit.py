"""``tactful audit verify``: check the decision log's hash chain."""

from __future__ import annotations

import typer

from tactful.commands.common import DbOption, safe_text
from tactful.errors import AuditChainBroken
from tactful.store.audit import verify_chain
from tactful.store.db import open_store

audit_app = typer.Typer(name="audit", help="Check the tamper-evident decision log.", no_args_is_help=True)


@audit_app.command("verify")
def verify(db: DbOption = None) -> None:
    """Recompute the decision log's hash chain and name the first row that does not fit.

    Each logged decision carries the hash of the one before it, so a changed, removed or inserted row
    breaks the chain from that row on. Prints the number of rows checked and the chain's head hash
    (keep it elsewhere: a later verify that prints a different head for the same rows means the whole
    chain was rewritten). Exit 3 when the chain is broken.
    """
    engine = open_store(db)
    try:
        report = verify_chain(engine)
    finally:
        engine.dispose()
    if report.broken is not None:
        b = report.broken
        raise AuditChainBroken(
            f"the decision log is broken at row {b.seq} (run {safe_text(b.run_id)}, customer "
            f"{safe_text(b.customer_id)}, touch {safe_text(b.touch_id)}): {b.problem}; "
            f"{b.seq - 1} row(s) before it verify",
            hint="restore the decision log from a backup and compare; do not trust rows from here on")
    typer.echo(f"decision log verified: {report.rows} row(s), chain head {report.head}")


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app)
