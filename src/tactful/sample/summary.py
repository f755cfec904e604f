"""What is in a sample store: counts and distributions read back from the store, and their Rich rendering."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine

from tactful.commands.common import count_bar, data_text
from tactful.store import tables

COUNTED: tuple[str, ...] = (
    "customers",
    "households",
    "orders",
    "order_lines",
    "products",
    "contact_points",
    "consents",
    "facts",
)


@dataclass
class Summary:
    counts: dict[str, int] = field(default_factory=dict)
    sensitive_products: dict[str, int] = field(default_factory=dict)  # implied category -> products
    consents: dict[tuple[str, str], int] = field(default_factory=dict)  # (source, status) -> rows
    contact_points: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, shared_with) -> rows
    personas: list[tuple[str, str, str, str]] = field(default_factory=list)  # key, customer id, seed, title
    facts: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, source) -> rows


def summarize(engine: Engine) -> Summary:
    s = Summary()
    t = tables
    with engine.connect() as conn:
        for name in COUNTED:
            table = t.metadata.tables[name]
            s.counts[name] = int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
        implies = sa.cast(t.products.c.implies, sa.Text)
        counter: Counter[str] = Counter()
        for (raw,) in conn.execute(sa.select(implies).where(implies != "[]")):
            counter.update(json.loads(raw) if isinstance(raw, str) else raw)
        s.sensitive_products = dict(sorted(counter.items()))
        q = (
            sa.select(t.consents.c.source, t.consents.c.status, sa.func.count())
            .group_by(t.consents.c.source, t.consents.c.status)
            .order_by(t.consents.c.source, t.consents.c.status)
        )
        s.consents = {(str(a), str(b)): int(c) for a, b, c in conn.execute(q)}
        shared = sa.func.coalesce(t.contact_points.c.shared_with, "(unknown)")
        q = (
            sa.select(t.contact_points.c.kind, shared, sa.func.count())
            .group_by(t.contact_points.c.kind, shared)
            .order_by(t.contact_points.c.kind, shared)
        )
        s.contact_points = {(str(a), str(b)): int(c) for a, b, c in conn.execute(q)}
        q = (
            sa.select(t.facts.c.kind, t.facts.c.source, sa.func.count())
            .group_by(t.facts.c.kind, t.facts.c.source)
            .order_by(t.facts.c.kind, t.facts.c.source)
        )
        s.facts = {(str(a), str(b)): int(c) for a, b, c in conn.execute(q)}
        q = sa.select(
            t.personas.c.key, t.personas.c.customer_id, t.personas.c.seed, t.personas.c.title
        ).order_by(t.personas.c.seed, t.personas.c.key)
        s.personas = [(str(a), str(b), str(c), str(d)) for a, b, c, d in conn.execute(q)]
    return s



def _crosstab(title: str, row_label: str, counts: Mapping[tuple[str, str], int]) -> Table:
    """A table of counts: one row per first key, one column per second key."""
    table = Table(title=title)
    columns = sorted({col for _, col in counts})
    table.add_column(row_label)
    for col in columns:
        table.add_column(data_text(col), justify="right")
    for row in sorted({r for r, _ in counts}):
        table.add_row(data_text(row), *[f"{counts.get((row, col), 0):,}" for col in columns])
    return table

def render(summary: Summary, console: Console) -> None:
    counts = Table(title="Sample world", show_header=True)
    counts.add_column("table")
    counts.add_column("rows", justify="right")
    for name in COUNTED:
        counts.add_row(name.replace("_", " "), f"{summary.counts.get(name, 0):,}")
    console.print(counts)

    sens = Table(title="Sensitive products by implied category")
    sens.add_column("data category")
    sens.add_column("products", justify="right")
    sens.add_column("", no_wrap=True, overflow="crop")
    top = max(summary.sensitive_products.values(), default=0)
    for key, n in sorted(summary.sensitive_products.items(), key=lambda kv: (-kv[1], kv[0])):
        sens.add_row(data_text(key), f"{n:,}", count_bar(n, top, style="magenta"))
    console.print(sens)

    console.print(_crosstab("Consents by source and status", "source", summary.consents))
    console.print(_crosstab("Contact points by kind and who else sees them", "kind", summary.contact_points))

    facts = Table(title="Facts by kind and source")
    facts.add_column("kind")
    facts.add_column("source")
    facts.add_column("facts", justify="right")
    for (kind, source), n in summary.facts.items():
        facts.add_row(data_text(kind), data_text(source), f"{n:,}")
    console.print(facts)

    people = Table(title="Seed personas (docs/sample-world.md)")
    people.add_column("seed")
    people.add_column("customer id", style="bold")
    people.add_column("persona")
    people.add_column("key")
    for key, cid, seed, title in summary.personas:
        people.add_row(data_text(seed), data_text(cid), data_text(title), data_text(key))
    console.print(people)
