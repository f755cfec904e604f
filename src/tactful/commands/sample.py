"""``tactful sample``: build the sample world (The Complete Journey, or a synthetic one) into a store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from tactful.commands.common import DbOption, data_text
from tactful.commands.common import console as make_console

# the CLI does not import the sample world's modules (NumPy, the Complete Journey) until it runs:
# tests/test_store_errors.py keeps this equal to tactful.sample.synthetic.MAX_CUSTOMERS
MAX_CUSTOMERS = 89_999_999
MAX_SEED = 2**63 - 1  # NumPy seeds are non-negative; beyond 63 bits a seed is a typo
MAX_JOBS = 64  # generator processes: more than the cores of any machine this runs on


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
    app.command("sample")(sample)


def sample(
    db: DbOption = None,
    seed: Annotated[
        int, typer.Option("--seed", min=0, max=MAX_SEED,
                          help="Seed of everything generated; same seed, same rows.")
    ] = 42,
    synthetic: Annotated[
        int | None,
        typer.Option(
            "--synthetic",
            min=1,
            max=MAX_CUSTOMERS,
            metavar="N",
            help="Build a synthetic world of N customers (about 20 orders each) "
            "instead of The Complete Journey.",
        ),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Delete everything already in the store first (otherwise a non-empty store is refused).",
        ),
    ] = False,
    sensitivity: Annotated[
        Path | None,
        typer.Option(
            "--sensitivity",
            help="Product sensitivity mapping (default: the packaged one, docs/sensitivity.md).",
            exists=False,
            dir_okay=False,
        ),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            min=0,
            max=MAX_JOBS,
            help="Extra processes generating a synthetic world while this one writes (0: none).",
        ),
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary.")] = False,
) -> None:
    """Build the sample world: The Complete Journey's real households, products and baskets, with generated
    names, contact points, consents, events and the seed personas (docs/sample-world.md)."""
    from tactful.sample.build import build_sample
    from tactful.sample.summary import render, summarize
    from tactful.sensitivity import load_mapping
    from tactful.store.db import make_engine

    mapping = load_mapping(sensitivity)
    console = make_console()
    if quiet:
        result = build_sample(
            db, seed=seed, synthetic_n=synthetic, replace=replace, mapping=mapping, jobs=jobs
        )
    else:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task("starting", total=None)

            def report(phase: str, done: int, total: int) -> None:
                bar.update(task, description=phase, completed=done, total=total or None)

            result = build_sample(
                db,
                seed=seed,
                synthetic_n=synthetic,
                replace=replace,
                mapping=mapping,
                progress=report,
                jobs=jobs,
            )
    rate = result.total_rows / result.seconds if result.seconds else 0.0
    console.print(Text.assemble(
        ("built", "green"),
        f" the {result.world} sample world (seed {seed}) in ",
        data_text(result.url),
        f": {result.customers:,} customers, {result.total_rows:,} rows in {result.seconds:.1f} s "
        f"({rate:,.0f} rows/s), import #{result.import_id}",
    ))
    if not quiet:
        engine = make_engine(db)
        try:
            render(summarize(engine), console)
        finally:
            engine.dispose()
