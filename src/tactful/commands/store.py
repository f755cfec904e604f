"""CLI commands over the store: ``tactful init``, ``tactful customer show|list``, ``tactful imports list``."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tactful.commands.common import DbOption, data_text, safe_json, safe_text
from tactful.commands.common import console as make_console
from tactful.store.bookkeeping import ImportState
from tactful.store.db import incomplete_error, initialise, open_store, store_marks
from tactful.store.repo import (
    CustomerView,
    ImportBatch,
    Provenance,
    customer_ids,
    list_imports,
    read_customer,
)


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


customer_app = typer.Typer(name="customer", help="Read what the store holds about a customer.",
                           no_args_is_help=True)
imports_app = typer.Typer(name="imports", help="The import batches the store has run, with their state.",
                          no_args_is_help=True)
MAX_LIST = 1_000_000  # bounds of --limit / --offset: beyond them a value is a typo, not a page
MAX_ORDERS = 1_000_000


def init(db: DbOption = None) -> None:
    """Create the store, or upgrade it to the newest schema. Says which, and the URL (password hidden).

    SQLite by default (tactful.db in the working directory); PostgreSQL with
    --db postgresql+psycopg://user:password@host:port/dbname (the database must exist).
    """
    result = initialise(db)
    try:
        typer.echo(safe_text(result.describe(), multiline=True))
    finally:
        result.engine.dispose()


@customer_app.command("show")
def show(
    customer_id: Annotated[str, typer.Argument(help="The customer's id, as stored.", show_default=False)],
    db: DbOption = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="text (tables) or json.")] = OutputFormat.TEXT,
    orders: Annotated[int, typer.Option("--orders", min=0, max=MAX_ORDERS,
                                        help="Show the newest N orders; 0 shows all.")] = 20,
) -> None:
    """Everything the store knows about a customer, and where each piece came from.

    Customer, household, contact points, consents, orders with their lines and products (with the
    categories a product implies), facts and touches; each row with the import batch that wrote it
    (kind, origin, source label, format, start) and when. Exit 2 when there is no such customer.
    """
    engine = open_store(db)
    try:
        with engine.connect() as conn:
            view = read_customer(conn, customer_id, max_orders=orders or None)
    finally:
        engine.dispose()
    if fmt is OutputFormat.JSON:
        typer.echo(safe_json(view.to_json_dict()))
    else:
        print_customer(view)


@customer_app.command("list")
def list_customers(
    db: DbOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=MAX_LIST, help="At most this many ids.")] = 50,
    offset: Annotated[int, typer.Option("--offset", min=0, max=2**62,
                                        help="Skip this many ids first.")] = 0,
) -> None:
    """Customer ids in the store, in id order, one per line (page with --limit and --offset)."""
    engine = open_store(db)
    try:
        with engine.connect() as conn:
            ids = customer_ids(conn, limit=limit, offset=offset)
    finally:
        engine.dispose()
    for customer_id in ids:
        typer.echo(safe_text(customer_id))


@imports_app.command("list")
def list_imports_command(
    db: DbOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=MAX_LIST,
                                       help="At most this many, newest first.")] = 50,
    state: Annotated[ImportState | None, typer.Option(
        "--state", help="Only imports in this state.", case_sensitive=False)] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="text (a table) or json.")] = \
        OutputFormat.TEXT,
) -> None:
    """Import batches (imports, sample builds, API writes), newest first, with their state.

    running: still writing (its process is alive); finished; failed (with the error); interrupted: its
    process stopped without finishing (killed, crashed). The counts (rows read, imported, quarantined)
    are those of the last batch it committed. Re-running an interrupted or failed import is safe: rows are
    upserted by key.
    """
    engine = open_store(db, allow_incomplete=True)  # the list says what happened to an incomplete store
    try:
        for mark in store_marks(engine):
            error = incomplete_error(engine, mark)
            make_console(stderr=True).print(
                data_text(f"warning: {error.message}\n  fix: {error.hint}", style="yellow", multiline=True),
                soft_wrap=True)
        with engine.connect() as conn:
            batches = list_imports(conn, limit=limit, state=state.value if state else None)
    finally:
        engine.dispose()
    if fmt is OutputFormat.JSON:
        typer.echo(safe_json([b.to_json_dict() for b in batches]))
        return
    print_imports(batches)


_STATE_STYLE = {"running": "cyan", "finished": "green", "failed": "red", "interrupted": "yellow"}


def print_imports(batches: list[ImportBatch], console: Console | None = None) -> None:
    """The import batches as a Rich table (stored text shown as is, never as markup)."""
    if console is None:
        console = make_console()
        if not console.is_terminal:
            console = make_console(width=200)
    if not batches:
        console.print("no imports")
        return
    table = Table(title="Imports, newest first", title_justify="left", title_style="bold")
    for name in ("import", "kind", "state", "origin", "source label", "started", "finished / last batch",
                 "read", "imported", "quarantined", "note"):
        table.add_column(name, overflow="fold", justify="right" if name in (
            "read", "imported", "quarantined") else "left")
    for b in batches:
        note = b.error or (f"quarantine: {b.quarantine_file}" if b.quarantine_file else None)
        table.add_row(_cell(f"#{b.id}"), _cell(b.kind), Text(b.state, style=_STATE_STYLE.get(b.state, "")),
                      _cell(b.origin), _cell(b.source_label), _cell(b.started_at),
                      _cell(b.finished_at or b.heartbeat_at), _cell(f"{b.rows_read:,}"),
                      _cell(f"{b.rows_imported:,}"), _cell(f"{b.rows_quarantined:,}"), _cell(note))
    console.print(table)
    if any(b.state in ("interrupted", "failed") for b in batches):
        console.print(Text("Interrupted or failed imports kept the batches they committed; run the same "
                           "import again to finish (rows are upserted by key).", style="yellow"))


# --------------------------------------------------------------------------- text rendering


def _cell(value: Any) -> Text:
    """A table cell as plain text (never Rich markup, emoji codes or control characters: stored values
    are data, see :func:`tactful.commands.common.data_text`)."""
    if value is None:
        return Text("-", style="dim")
    if isinstance(value, datetime):
        return Text(value.strftime("%Y-%m-%d %H:%M:%S") if value.time() != datetime.min.time()
                    else value.strftime("%Y-%m-%d"))
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, StrEnum):
        return data_text(value.value)
    if isinstance(value, tuple | list):
        return data_text(", ".join(str(v) for v in value)) if value else Text("-", style="dim")
    return data_text(value)


def _prov(p: Provenance) -> list[Text]:
    return [_cell(f"#{p.import_id}" if p.import_id is not None else None), _cell(p.written_at)]


def _table(title: str, columns: list[str]) -> Table:
    table = Table(title=data_text(title), title_justify="left", title_style="bold", show_lines=False,
                  expand=False)
    for name in [*columns, "import", "written"]:
        table.add_column(name, overflow="fold")
    return table


def print_customer(view: CustomerView, console: Console | None = None) -> None:
    """The customer view as Rich tables: one per kind of record, then the import batches they cite."""
    if console is None:
        console = make_console()
        if not console.is_terminal:
            console = make_console(width=200)
    c = view.customer.record
    head = _table(f"Customer {c.id}", ["id", "household", "first name", "last name", "birth date",
                                        "age range", "openness", "deceased"])
    head.add_row(*[_cell(v) for v in (c.id, c.household_id, c.first_name, c.last_name, c.birth_date,
                                      c.age_range, c.openness, c.deceased)], *_prov(view.customer.provenance))
    console.print(head)

    if view.household is not None:
        h = view.household.record
        table = _table("Household", ["id", "size", "composition", "kids", "income", "home ownership"])
        table.add_row(*[_cell(v) for v in (h.id, h.size, h.composition, h.kids_count, h.income,
                                           h.home_ownership)], *_prov(view.household.provenance))
        console.print(table)

    table = _table(f"Contact points ({len(view.contact_points)})",
                   ["id", "kind", "value", "shared with", "verified", "bounced"])
    for scp in view.contact_points:
        cp = scp.record
        table.add_row(*[_cell(v) for v in (cp.id, cp.kind, cp.value, cp.shared_with, cp.verified_at,
                                           cp.bounced)], *_prov(scp.provenance))
    console.print(table)

    table = _table(f"Consents ({len(view.consents)})",
                   ["id", "purpose", "channel", "status", "source", "at", "evidence"])
    for sk in view.consents:
        k = sk.record
        table.add_row(*[_cell(v) for v in (k.id, k.purpose, k.channel or "every channel", k.status,
                                           k.source, k.at, k.evidence)], *_prov(sk.provenance))
    console.print(table)

    shown = len(view.orders)
    title = f"Orders ({shown} of {view.orders_total}, newest first)" if shown < view.orders_total \
        else f"Orders ({shown}, newest first)"
    table = _table(title, ["id", "at", "source", "context", "store", "total", "lines"])
    lines = _table("Order lines", ["order", "line", "product", "name", "category", "quantity", "amount",
                                   "implies"])
    for so in view.orders:
        o = so.order.record
        table.add_row(*[_cell(v) for v in (o.id, o.at, o.source, o.context, o.store_id, o.total,
                                           len(so.lines))], *_prov(so.order.provenance))
        for sl in so.lines:
            ln, p = sl.line.record, sl.product.record
            lines.add_row(*[_cell(v) for v in (o.id, ln.line_no, p.id, p.name, p.category, ln.quantity,
                                               ln.amount, p.implies)], *_prov(sl.line.provenance))
    console.print(table)
    if any(so.lines for so in view.orders):
        console.print(lines)

    table = _table(f"Facts ({len(view.facts)})", ["id", "kind", "category", "implies", "label", "value",
                                                  "origin", "source", "context", "at"])
    for sf in view.facts:
        f = sf.record
        table.add_row(*[_cell(v) for v in (f.id, f.kind, f.category, f.implies, f.label, f.value, f.origin,
                                           f.source, f.context, f.at)], *_prov(sf.provenance))
    console.print(table)

    table = _table(f"Touches ({len(view.touches)}, newest first)",
                   ["id", "at", "kind", "purpose", "channel", "contact point", "campaign"])
    for st in view.touches:
        t = st.record
        table.add_row(*[_cell(v) for v in (t.id, t.at, t.kind, t.purpose, t.channel, t.contact_point_id,
                                           t.campaign)], *_prov(st.provenance))
    console.print(table)

    imports = Table(title="Imports these rows came from", title_justify="left", title_style="bold")
    for name in ("import", "kind", "origin", "source label", "format", "started", "finished", "state"):
        imports.add_column(name, overflow="fold")
    for i in sorted(view.imports):
        b = view.imports[i]
        imports.add_row(*[_cell(v) for v in (f"#{b.id}", b.kind, b.origin, b.source_label, b.format,
                                             b.started_at, b.finished_at)],
                        Text(b.state, style=_STATE_STYLE.get(b.state, "")))
    console.print(imports)


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
    app.command("init")(init)
    app.add_typer(customer_app)
    app.add_typer(imports_app)
