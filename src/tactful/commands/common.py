"""Options shared by several commands."""

from __future__ import annotations

from typing import Annotated

import typer

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="TACTFUL_DB",
        help="Store URL: sqlite:///path.db (default sqlite:///tactful.db) or postgresql+psycopg://user@host/db.",
        show_default=False,
    ),
]
