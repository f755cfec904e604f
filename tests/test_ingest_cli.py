"""``tactful import``: summary and exit codes (0 ok, 4 quarantined, 2 cannot run, 3 store not ready)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tactful.cli import main
from tactful.store.db import init_store

DATA = Path(__file__).parent / "data" / "ingest"


def fix_quarantine(path: Path) -> None:
    """The same hand fixes as tests/test_ingest.py, from the fixture's fixes file."""
    fixes = json.loads((DATA / "facts_broken.fixes.json").read_text(encoding="utf-8"))["fixes"]
    data = path.read_bytes()
    for bad, good in fixes:
        raw_bad, raw_good = (b"".join(bytes([int(p, 16)]) if i % 2 else p.encode("utf-8")
                                      for i, p in enumerate(re.split(r"\\x([0-9a-f]{2})", t)))
                             for t in (bad, good))
        data = data.replace(raw_bad, raw_good)
    path.write_bytes(data)


def run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(argv)
    code = info.value.code
    return code if isinstance(code, int) else 1


@pytest.fixture()
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/cli.db"
    init_store(url).dispose()
    return url


def test_clean_import_exits_0_with_a_summary(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["import", "households", str(DATA / "households.csv"), "--db", store,
                "--source", "crm"]) == 0
    out = capsys.readouterr().out
    assert "rows read" in out and "imported" in out and "quarantine file" in out and "none" in out
    assert "rows/s" in out


def test_quarantined_rows_exit_4_and_the_fixed_file_exits_0(store: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("households.csv", "customers.csv", "facts_broken.csv"):
        shutil.copy(DATA / name, tmp_path / name)
    assert run(["import", "households", str(tmp_path / "households.csv"), "--db", store]) == 0
    assert run(["import", "customers", str(tmp_path / "customers.csv"), "--db", store]) == 0
    capsys.readouterr()
    qfile = tmp_path / "bad.csv"
    assert run(["import", "facts", str(tmp_path / "facts_broken.csv"), "--db", store,
                "--quarantine", str(qfile), "--batch-size", "3"]) == 4
    captured = capsys.readouterr()
    assert "7 of 10 rows were quarantined" in captured.err
    assert "row 2 (line 3): at:" in captured.out
    fix_quarantine(qfile)
    assert run(["import", "facts", str(qfile), "--db", store]) == 0


def test_import_that_cannot_run_exits_2(store: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["import", "households", str(tmp_path / "nope.csv"), "--db", store]) == 2
    assert "does not exist" in capsys.readouterr().err
    mapping = tmp_path / "m.yaml"
    mapping.write_text("fields: {idd: x}\n")
    assert run(["import", "households", str(DATA / "households.csv"), "--db", store,
                "--mapping", str(mapping)]) == 2
    assert "fields.idd: unknown key" in capsys.readouterr().err
    assert run(["import", "parcels", str(DATA / "households.csv"), "--db", store]) == 2  # usage error
    assert run(["import", "households", str(DATA / "households.csv"), "--db", store,
                "--format", "xlsx"]) == 2


def test_store_not_initialised_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["import", "households", str(DATA / "households.csv"), "--db",
                f"sqlite:///{tmp_path}/new.db"]) == 3
    assert "tactful init" in capsys.readouterr().err


def test_console_script_without_a_tty(store: str, tmp_path: Path) -> None:
    """The real entry point, as a user runs it from a pipe: no progress bar, same exit codes."""
    exe = Path(sys.executable).parent / "tactful"
    env = {**os.environ, "TACTFUL_DB": store}
    done = subprocess.run([str(exe), "import", "households", str(DATA / "households.csv")],
                          capture_output=True, text=True, env=env, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "rows read" in done.stdout and "\x1b[" not in done.stderr
    bad = tmp_path / "hh.csv"
    bad.write_text("id,size\nh9,many\n")
    done = subprocess.run([str(exe), "import", "households", str(bad)],
                          capture_output=True, text=True, env=env, check=False, timeout=120)
    assert done.returncode == 4
    assert (tmp_path / "hh.quarantine.csv").exists()
