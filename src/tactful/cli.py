"""The ``tactful`` command line: thin Typer commands over the core.

Each command group lives in ``tactful.commands.<name>`` and registers itself on :data:`app`.
:func:`main` is the one place that turns a :class:`~tactful.errors.TactfulError` into a message on
stderr and the error's exit code.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from tactful import __version__
from tactful.commands import batch, ingest, policy, sample, scenario, store, vocab
from tactful.errors import TactfulError

app = typer.Typer(
    name="tactful",
    help="Personalization with tact: decide whether a personalized touch is appropriate, and why.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

err_console = Console(stderr=True)


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        typer.echo(f"tactful {__version__}")
        raise typer.Exit(0)


for _module in (store, ingest, sample, policy, scenario, vocab, batch):
    _module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``tactful`` console script.

    Typer (standalone mode) prints usage errors itself; every TactfulError ends here, printed once
    with its exit code. Anything else is a bug and keeps its traceback.
    """
    try:
        app(args=argv)
    except TactfulError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
