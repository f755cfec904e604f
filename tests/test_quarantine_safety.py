"""The quarantine file never replaces the store, the input or a file that is not a quarantine file of
ours, never follows a symbolic link, and an unwritable path stops the import before any row is
committed. Store and quarantine files are created owner-only (0600)."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from tactful.testing.cli import run_cli

DATA = Path(__file__).parent / "data" / "ingest"


@pytest.fixture()
def work(tmp_path: Path) -> Path:
    for name in ("households.csv", "customers.csv", "facts_broken.csv"):
        shutil.copy(DATA / name, tmp_path / name)
    return tmp_path


@pytest.fixture()
def store(work: Path) -> str:
    url = f"sqlite:///{work}/store.db"
    assert run_cli(["init", "--db", url]).exit_code == 0
    for kind, name in (("households", "households.csv"), ("customers", "customers.csv")):
        code, _, err = run_cli(["import", kind, str(work / name), "--db", url])
        assert code == 0, err
    return url


def _count(url: str, table: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"select count(*) from {table}")).scalar_one())
    finally:
        engine.dispose()


def _import_facts(work: Path, url: str, *extra: str) -> tuple[int, str]:
    code, out, err = run_cli(["import", "facts", str(work / "facts_broken.csv"), "--db", url, *extra])
    return code, out + err


def test_quarantine_naming_the_store_is_refused_and_the_store_is_intact(work: Path, store: str) -> None:
    customers, facts = _count(store, "customers"), _count(store, "facts")
    before = (work / "store.db").read_bytes()[:16]
    code, text = _import_facts(work, store, "--quarantine", str(work / "store.db"))
    assert code == 2, text
    assert "would overwrite the store" in text
    assert (work / "store.db").read_bytes()[:16] == before == b"SQLite format 3\x00"
    assert _count(store, "customers") == customers and _count(store, "facts") == facts
    assert _count(store, "imports") == 2  # the refused import never started


def test_quarantine_naming_the_input_is_refused(work: Path, store: str) -> None:
    data = (work / "facts_broken.csv").read_bytes()
    code, text = _import_facts(work, store, "--quarantine", str(work / "facts_broken.csv"))
    assert code == 2 and "would overwrite the input" in text
    assert (work / "facts_broken.csv").read_bytes() == data


def test_an_existing_file_that_is_not_ours_is_left_alone(work: Path, store: str) -> None:
    other = work / "notes.csv"
    other.write_text("my,own,data\n1,2,3\n", encoding="utf-8")
    code, text = _import_facts(work, store, "--quarantine", str(other))
    assert code == 2 and "not a quarantine file written by tactful" in text
    assert other.read_text(encoding="utf-8") == "my,own,data\n1,2,3\n"
    assert _count(store, "facts") == 0


def test_a_symlink_is_never_followed(work: Path, store: str) -> None:
    target = work / "target.txt"
    target.write_text("keep me\n", encoding="utf-8")
    link = work / "q.csv"
    link.symlink_to(target)
    code, text = _import_facts(work, store, "--quarantine", str(link))
    assert code == 2 and "symbolic link" in text
    assert target.read_text(encoding="utf-8") == "keep me\n" and link.is_symlink()
    dangling = work / "dangling.csv"
    dangling.symlink_to(work / "nowhere" / "x.csv")
    code, text = _import_facts(work, store, "--quarantine", str(dangling))
    assert code == 2 and "symbolic link" in text


@pytest.mark.parametrize("where", ["missing-dir", "under-a-file", "a-directory"])
def test_an_unwritable_path_exits_2_before_any_row_is_committed(work: Path, store: str, where: str) -> None:
    path = {"missing-dir": work / "no" / "such" / "q.csv",
            "under-a-file": work / "customers.csv" / "q.csv",
            "a-directory": work}[where]
    code, text = _import_facts(work, store, "--quarantine", str(path))
    assert code == 2, text
    assert "quarantine file" in text
    assert _count(store, "facts") == 0 and _count(store, "imports") == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_directory_exits_2_before_any_row_is_committed(work: Path, store: str) -> None:
    locked = work / "locked"
    locked.mkdir(mode=0o500)
    code, text = _import_facts(work, store, "--quarantine", str(locked / "q.csv"))
    assert code == 2 and "cannot be written" in text
    assert _count(store, "facts") == 0


def test_a_quarantine_file_of_ours_is_replaced_and_is_owner_only(work: Path, store: str) -> None:
    q = work / "q.csv"
    code, _ = _import_facts(work, store, "--quarantine", str(q))
    assert code == 4
    first = q.read_bytes()
    assert first.startswith(b"_tactful_row,_tactful_reason,")
    assert stat.S_IMODE(q.stat().st_mode) == 0o600
    q.write_bytes(first + b"# an edit\n")
    code, _ = _import_facts(work, store, "--quarantine", str(q))
    assert code == 4
    assert q.read_bytes() == first  # replaced by this run's rows
    assert not list(work.glob(".q.csv.*"))  # no temporary file left behind


def test_a_stale_default_quarantine_file_is_removed_only_when_ours(work: Path, store: str) -> None:
    clean = work / "households.csv"
    stale = work / "households.quarantine.csv"
    stale.write_text("_tactful_row,_tactful_reason,id\n2,old reason,h9\n", encoding="utf-8")
    assert run_cli(["import", "households", str(clean), "--db", store]).exit_code == 0
    assert not stale.exists()
    stale.write_text("somebody's own file\n", encoding="utf-8")
    code, _, err = run_cli(["import", "households", str(clean), "--db", store])
    assert code == 2 and "not a quarantine file" in err
    assert stale.read_text(encoding="utf-8") == "somebody's own file\n"


def test_a_jsonl_quarantine_is_recognised_as_ours(work: Path, store: str) -> None:
    from tactful.ingest.quarantine import is_ours

    q = work / "q.jsonl"
    q.write_text('{"_tactful_row": 3, "_tactful_reason": "x"}\n', encoding="utf-8")
    assert is_ours(q)
    q.write_text('{"id": 3}\n', encoding="utf-8")
    assert not is_ours(q)


def test_a_new_sqlite_store_and_its_wal_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        url = f"sqlite:///{tmp_path}/new.db"
        assert run_cli(["init", "--db", url]).exit_code == 0
        engine = sa.create_engine(url)
        with engine.connect() as conn:  # keep a connection open so the -wal file exists
            conn.execute(sa.text("select 1"))
            files = [p for p in tmp_path.iterdir() if p.name.startswith("new.db")]
            assert files
            for path in files:
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        engine.dispose()
    finally:
        os.umask(old)
