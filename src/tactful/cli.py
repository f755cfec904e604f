"""The ``tactful`` command line: thin Typer commands over the core.

Each command group lives in ``tactful.commands.<name>`` and registers itself on :data:`app`.
:func:`main` is the one place that turns a :class:`~tactful.errors.TactfulError` into a message on
stderr and the error's exit code.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.text import Text

from tactful import __version__
from tactful.commands import audit, batch, campaign, ingest, policy, sample, scenario, store, vocab
from tactful.commands.common import console, data_text
from tactful.errors import TactfulError

app = typer.Typer(
    name="tactful",
    help="Personalization with tact: decide whether a personalized touch is appropriate, and why.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

err_console = console(stderr=True)


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        typer.echo(f"tactful {__version__}")
        raise typer.Exit(0)


for _module in (store, ingest, sample, policy, scenario, vocab, audit, batch, campaign):
    _module.register(app)


def _print_error(exc: TactfulError) -> None:
    # the message may quote data (an id, a value, a file's line): never markup, emoji or controls
    err_console.print(Text.assemble(("error:", "bold red"), " ", data_text(exc, multiline=True)),
                      highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``tactful`` console script.

    Typer (standalone mode) prints usage errors itself; every TactfulError ends here, printed once
    with its exit code. A database error met after the store was opened (locked, read-only, damaged,
    no rights, connection lost: :func:`tactful.store.failures.store_error`) is a StoreError too, exit 3.
    Anything else is a bug: a one-line internal error, exit 70 (TACTFUL_DEBUG=1 shows the traceback).
    """
    from tactful.store.failures import store_error

    try:
        app(args=argv)
    except TactfulError as exc:
        # a stage's error caused by the store being unusable is the store's error (exit 3)
        shown: TactfulError = store_error(exc, known_only=True) or exc
        _print_error(shown)
        sys.exit(shown.exit_code)
    except Exception as exc:
        translated = store_error(exc)
        if translated is None:
            if os.environ.get("TACTFUL_DEBUG"):
                raise
            # a bug: no traceback for the user, but a message that says so and how to see it
            what = data_text(f"{type(exc).__name__}: {exc}", multiline=True)
            err_console.print(Text.assemble(
                ("internal error:", "bold red"), " ", what,
                "\n  hint: this is a bug in Tactful; run again with TACTFUL_DEBUG=1 to see the traceback"),
                highlight=False, soft_wrap=True)
            sys.exit(70)
        _print_error(translated)
        sys.exit(translated.exit_code)


if __name__ == "__main__":
    main()
