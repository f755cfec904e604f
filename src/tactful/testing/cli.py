"""Run the ``tactful`` command line in-process, as a test would: exit code, stdout and stderr.

    from tactful.testing.cli import run_cli
    result = run_cli(["decide", "scenario.yaml", "--format", "json"])
    assert result.exit_code == 0, result.stderr
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass


@dataclass(frozen=True)
class CliResult:
    """What a run printed and how it exited; unpacks as ``code, out, err = run_cli([...])``."""

    exit_code: int
    stdout: str
    stderr: str

    def __iter__(self) -> Iterator[int | str]:
        return iter((self.exit_code, self.stdout, self.stderr))


def run_cli(argv: list[str], *, env: dict[str, str] | None = None) -> CliResult:
    """Call :func:`tactful.cli.main` with ``argv``; never raises SystemExit."""
    from tactful.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    old_columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "200"  # Rich wraps at the terminal width; keep output on one line
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if old_columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old_columns
    return CliResult(code, out.getvalue(), err.getvalue())
