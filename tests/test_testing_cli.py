from __future__ import annotations

from tactful import __version__
from tactful.testing.cli import run_cli


def test_run_cli_captures_output_and_exit_code() -> None:
    ok = run_cli(["--version"])
    assert (ok.exit_code, ok.stdout.strip()) == (0, f"tactful {__version__}")
    bad = run_cli(["no-such-command"])
    assert bad.exit_code == 2
    assert "No such command" in bad.stderr
