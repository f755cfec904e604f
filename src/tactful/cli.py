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
from tactful.commands import ingest, policy, sample, scenario, store, vocab
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


for _module in (store, ingest, sample, policy, scenario, vocab):
    _module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``tactful`` console script.

    Typer (standalone mode) prints usage errors itself; every TactfulError ends here, printed once
    with its exit code. A database error met after the store was opened (locked, read-only, damaged,
    no rights, connection lost: :func:`tactful.store.failures.store_error`) is a StoreError too, exit 3.
    Anything else is a bug and keeps its traceback.
    """
    from tactful.store.failures import store_error

    try:
        app(args=argv)
    except TactfulError as exc:
        # a stage's error caused by the store being unusable is the store's error (exit 3)
        shown: TactfulError = store_error(exc, known_only=True) or exc
        err_console.print(f"[bold red]error:[/] {escape(str(shown))}", highlight=False, soft_wrap=True)
        sys.exit(shown.exit_code)
    except Exception as exc:
        translated = store_error(exc)
        if translated is None:
            raise
        err_console.print(f"[bold red]error:[/] {escape(str(translated))}", highlight=False, soft_wrap=True)
        sys.exit(translated.exit_code)


if __name__ == "__main__":
    main()
