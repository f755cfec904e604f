"""`tactful campaign run` killed with a real kill -9 while it logs its decisions, then run again.

The campaign runs in its own process (the real CLI) on the sample world. Once it has committed some of
its decisions it is killed with SIGKILL: no handler runs, whatever it had not committed is lost. Then:

* the run is shown ``interrupted`` (its process is gone), not ``running`` for ever;
* what it committed is whole: every logged decision that sends a message has its outbox row;
* resuming it (``--resume RUN``) or running the campaign again (a new run) logs every audience customer's
  decisions once per run, queues no second message for anyone (the outbox key), delivers the messages
  the killed run had queued, and finishes; ``tactful audit verify`` passes;
* the outcome equals that of a run that was never killed (same decisions, same messages);
* every message that went out is in the run's files (an .eml file, a print-shop or SMS CSV row) once.

And a delivery killed with SIGKILL between writing a batch of messages into the files and recording
them as sent, then delivered again into the same directory (`tactful campaign deliver`): no message is
written twice, none is lost.

On SQLite and on a real PostgreSQL.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import SampleWorlds, copy_world
from conftest import query_rows as _all
from tactful.sample import build_sample
from tactful.store import tables
from tactful.store.db import open_store
from tactful.testing import postgres
from tactful.testing.cli import run_cli

NOW = "2026-11-01T09:00:00"  # the sample world's "as of" day (the run's period: 2026-11)
WORLD = {"seed": 7, "synthetic_n": 40}  # the world of test_campaign_ops.py too: built once for both
Outcome = tuple[Counter[tuple[str, str, str]], dict[str, tuple[str, str]]]
CLI = [sys.executable, "-c", "from tactful.cli import main; main()"]


@pytest.fixture(scope="module")
def world(sample_worlds: SampleWorlds) -> Path:
    return sample_worlds.path(**WORLD)


@pytest.fixture()
def sqlite_store(world: Path, tmp_path: Path) -> str:
    """A fresh copy of the sample world in a SQLite file."""
    return copy_world(world, tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh sample world, in a SQLite file or a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_store"))
    url = postgres.create_database(request.getfixturevalue("pg_server_url"),
                                   f"t_kill_{os.getpid()}_{time.monotonic_ns() % 10**9}")
    build_sample(url, **WORLD)
    return url


def _scalar(url: str, query: Any) -> Any:
    engine = open_store(url)
    try:
        with engine.connect() as conn:
            return conn.execute(query).scalar()
    finally:
        engine.dispose()


def _run_cmd(url: str, out: Path, *extra: str) -> list[str]:
    return [*CLI, "campaign", "run", "demo", "--db", url, "--now", NOW, "--out", str(out), "--quiet",
            *extra]


def _kill_mid_log(url: str, out: Path) -> tuple[str, int]:
    """Start the demo campaign, kill -9 it once some decisions are committed; (run id, rows logged)."""
    d = tables.decisions
    proc = subprocess.Popen(_run_cmd(url, out, "--log-batch", "1"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    engine = open_store(url)  # one reader, polling the log as another process would
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            with engine.connect() as conn:
                logged = conn.execute(sa.select(sa.func.count()).select_from(d)).scalar_one()
            if logged >= 5:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.005)
        proc.wait(timeout=60)
    finally:
        engine.dispose()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill: {proc.stderr}"
    runs = _all(url, sa.select(tables.campaign_runs.c.id, tables.campaign_runs.c.status))
    assert len(runs) == 1 and runs[0].status == "running"  # nothing could say otherwise: it was killed
    return str(runs[0].id), int(_scalar(url, sa.select(sa.func.count()).select_from(d)))


def _outcome(url: str, run_id: str) -> Outcome:
    """The run's decisions (customer, channel, verdict: each once) and the outbox (customer ->
    channel, body) of the period."""
    d, o = tables.decisions, tables.outbox
    decided = Counter((r.customer_id, r.channel, r.verdict) for r in _all(
        url, sa.select(d.c.customer_id, d.c.channel, d.c.verdict).where(d.c.run_id == run_id)))
    messages = _all(url, sa.select(o.c.customer_id, o.c.channel, o.c.body))
    by_customer = Counter(m.customer_id for m in messages)
    assert max(by_customer.values(), default=1) == 1, "a customer got a second message"
    return decided, {m.customer_id: (m.channel, m.body) for m in messages}


@pytest.fixture(scope="module")
def reference(world: Path, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """The same campaign on a fresh copy of the world, never killed."""
    tmp = tmp_path_factory.mktemp("reference")
    url = copy_world(world, tmp, name="reference.db")
    code, _, err = run_cli(["campaign", "run", "demo", "--db", url, "--now", NOW,
                            "--out", str(tmp / "runs"), "--quiet"])
    assert code == 0, err
    (run_id,) = [r.id for r in _all(url, sa.select(tables.campaign_runs.c.id))]
    return _outcome(url, run_id)


def _consistent_after_kill(url: str, run_id: str, logged: int) -> None:
    d, o = tables.decisions, tables.outbox
    # what the killed run committed is whole: each committed decision that sends has its message
    sending = {r.customer_id for r in _all(url, sa.select(d.c.customer_id).where(
        d.c.run_id == run_id, d.c.message["type"].as_string() == "message"))}
    queued = {r.customer_id for r in _all(url, sa.select(o.c.customer_id).where(o.c.run_id == run_id))}
    assert sending == queued
    assert logged > 0
    # `campaign list` tells the truth: the run was interrupted
    code, out, err = run_cli(["campaign", "list", "--db", url])
    assert code == 0, err
    line = next(x for x in out.splitlines() if run_id[:20] in x)
    assert "interrupted" in line
    status = _scalar(url, sa.select(tables.campaign_runs.c.status).where(tables.campaign_runs.c.id == run_id))
    assert status == "interrupted"


def _delivered_once(url: str, *directories: Path) -> Counter[str]:
    """The outbox keys in the run directories' files (an .eml file each, a row of the print-shop and SMS
    CSVs, however many files a resumed delivery made): each message that went out is there exactly
    once, and nothing else is. Returns the keys by channel's file kind."""
    found: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    emls = [e for d in directories for e in (d / "email").glob("*.eml")]
    sheets = [s for d in directories for s in [*d.glob("print-shop*.csv"), *d.glob("sms*.csv")]]
    for eml in emls:
        header = eml.read_text(encoding="utf-8").split("\n\n", 1)[0]
        assert f"Message-ID: <{eml.stem}@tactful.invalid>" in header
        found[eml.stem] += 1
        kinds["eml"] += 1
    for sheet in sheets:
        with sheet.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                found[row["outbox_key"]] += 1
                kinds[sheet.name.split("-")[0].split(".")[0]] += 1
    twice = sorted(k for k, n in found.items() if n > 1)
    assert not twice, f"{len(twice)} message(s) written twice, e.g. {twice[0]}"
    o = tables.outbox
    sent = {r.idempotency_key for r in _all(url, sa.select(o.c.idempotency_key).where(o.c.status == "sent"))}
    assert set(found) == sent, (f"in the files, not sent: {sorted(set(found) - sent)[:3]}; "
                                f"sent, not in the files: {sorted(sent - set(found))[:3]}")
    touches = _scalar(url, sa.select(sa.func.count()).select_from(tables.touches).where(
        tables.touches.c.id.like("outbox-%")))
    assert touches == len(sent)  # each sent message is one past touch
    return kinds


def _verify(url: str) -> None:
    code, out, err = run_cli(["audit", "verify", "--db", url])
    assert code == 0, err
    assert "decision log verified" in out


def test_killed_campaign_resumed_loses_nothing_and_duplicates_nothing(
        reference: Outcome, store: str, tmp_path: Path) -> None:
    run_id, logged = _kill_mid_log(store, tmp_path / "runs")
    total_expected, messages_expected = reference
    assert logged < sum(total_expected.values()), "the kill came after every decision was logged"
    _consistent_after_kill(store, run_id, logged)

    done = subprocess.run(_run_cmd(store, tmp_path / "runs", "--resume", run_id), capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    decided, messages = _outcome(store, run_id)
    assert decided == total_expected  # every decision once, as if never killed
    assert max(decided.values()) == 1
    assert messages == messages_expected  # no message twice, none lost
    _verify(store)
    row = _all(store, sa.select(tables.campaign_runs).where(tables.campaign_runs.c.id == run_id))[0]
    assert row.status == "finished" and row.finished_at is not None
    assert row.summary["logged"] == sum(total_expected.values())
    # every queued message went out, those of the killed part included
    statuses = Counter(r.status for r in _all(store, sa.select(tables.outbox.c.status)))
    assert set(statuses) <= {"sent", "failed", "bounced"} and statuses["sent"] > 0
    _delivered_once(store, tmp_path / "runs" / run_id)
    # the report of the resumed run shows every customer, and is rebuilt from the store alike
    report = Path(row.summary["report"])
    rebuilt = tmp_path / "rebuilt.html"
    code, _, err = run_cli(["campaign", "report", run_id, "--db", store, "--html", str(rebuilt)])
    assert code == 0, err
    assert rebuilt.read_text(encoding="utf-8") == report.read_text(encoding="utf-8")


def test_killed_campaign_run_again_as_a_new_run_sends_nobody_a_second_message(
        reference: Outcome, sqlite_store: str, tmp_path: Path) -> None:
    store = sqlite_store  # the same code paths as the resumed run's, which runs on PostgreSQL too
    killed, logged = _kill_mid_log(store, tmp_path / "runs")
    _consistent_after_kill(store, killed, logged)
    pending_of_killed = {r.customer_id for r in _all(store, sa.select(tables.outbox.c.customer_id).where(
        tables.outbox.c.run_id == killed))}

    done = subprocess.run(_run_cmd(store, tmp_path / "runs"), capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr
    runs = {r.id: r for r in _all(store, sa.select(tables.campaign_runs))}
    (rerun,) = [r for r in runs if r != killed]
    assert runs[killed].status == "interrupted" and runs[rerun].status == "finished"
    total_expected, messages_expected = reference
    decided, messages = _outcome(store, rerun)
    assert decided == total_expected  # the new run decided everyone, once
    assert messages == messages_expected  # one message per customer: the killed run's count
    o = tables.outbox
    by_run = Counter(r.run_id for r in _all(store, sa.select(o.c.run_id)))
    assert by_run[killed] == len(pending_of_killed) and by_run[killed] + by_run[rerun] == len(messages)
    # the killed run's queued messages were delivered by the rerun, not stranded
    assert {r.status for r in _all(store, sa.select(o.c.status).where(o.c.run_id == killed))} <= {
        "sent", "failed", "bounced"}
    _delivered_once(store, tmp_path / "runs" / rerun)
    _verify(store)


#: A delivery in its own process, as `tactful campaign deliver` builds it (the run directory's CSVs and
#: .eml files), recording outcomes every 7 messages. The last adapter carries no channel: the loop
#: flushes every adapter before it records a batch, and this one then kills its own process with
#: SIGKILL at the third batch: the files hold the batch, the store does not know it went out.
KILLED_DELIVERY = """
import os, signal, sys
from pathlib import Path
from tactful.delivery import EmlDirectory, PrintShopCsv, SmsCsv, deliver
from tactful.store.db import open_store

class KillBeforeRecording:
    name, channels, idempotent, flushes = "kill", frozenset(), True, 0
    def send(self, message): raise AssertionError("no channel: never sends")
    def flush(self):
        self.flushes += 1
        if self.flushes == 3:
            os.kill(os.getpid(), signal.SIGKILL)
    def close(self): pass

url, run_id, directory, campaign, period = sys.argv[1:6]
out = Path(directory)
deliver(open_store(url), [PrintShopCsv(out), SmsCsv(out), EmlDirectory(out / "email"), KillBeforeRecording()],
        campaign=campaign, period=period, batch=7)
"""


@pytest.mark.parametrize("finish", ["deliver", "new run"])
def test_delivery_killed_between_sending_and_recording_writes_no_message_twice(
        store: str, tmp_path: Path, finish: str) -> None:
    """The killed delivery is finished by `tactful campaign deliver RUN` into its own directory, or by
    a plain new run of the campaign (its own new directory, the killed run's read as ``earlier``)."""
    code, _, err = run_cli(["campaign", "run", "demo", "--db", store, "--now", NOW, "--out",
                            str(tmp_path / "runs"), "--quiet", "--no-deliver"])
    assert code == 0, err
    (run,) = _all(store, sa.select(tables.campaign_runs.c.id, tables.campaign_runs.c.campaign,
                                   tables.campaign_runs.c.period))
    o = tables.outbox
    queued = _scalar(store, sa.select(sa.func.count()).select_from(o).where(o.c.status == "pending"))
    assert queued > 3 * 7, "too few messages for the kill to come mid-delivery"
    directory = tmp_path / "runs" / run.id
    killed = subprocess.run([sys.executable, "-c", KILLED_DELIVERY, store, run.id, str(directory),
                             run.campaign, run.period], capture_output=True, text=True, timeout=300,
                            check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # two batches recorded; the third written into the files but not recorded; the rest not written
    statuses = Counter(r.status for r in _all(store, sa.select(o.c.status)))
    assert statuses["pending"] == queued - 14 and statuses["sent"] > 0
    files = {p.stem for p in (directory / "email").glob("*.eml")}
    with (directory / "print-shop.csv").open(encoding="utf-8", newline="") as fh:
        files |= {row["outbox_key"] for row in csv.DictReader(fh)}
    if (directory / "sms.csv").exists():
        with (directory / "sms.csv").open(encoding="utf-8", newline="") as fh:
            files |= {row["outbox_key"] for row in csv.DictReader(fh)}
    pending = {r.idempotency_key for r in _all(store, sa.select(o.c.idempotency_key).where(
        o.c.status == "pending"))}
    assert files & pending, "the kill did not come between writing and recording"

    if finish == "deliver":
        code, _, err = run_cli(["campaign", "deliver", run.id, "--db", store, "--out", str(directory),
                                  "--quiet"])
        dirs = [directory]
    else:
        code, _, err = run_cli(["campaign", "run", "demo", "--db", store, "--now", NOW, "--out",
                                str(tmp_path / "runs"), "--quiet"])
        dirs = sorted(d for d in (tmp_path / "runs").iterdir() if d.is_dir())
        assert len(dirs) == 2 and directory in dirs
    assert code == 0, err
    statuses = Counter(r.status for r in _all(store, sa.select(o.c.status)))
    assert set(statuses) <= {"sent", "failed", "bounced"}
    kinds = _delivered_once(store, *dirs)
    assert kinds["eml"] > 0 and kinds["print"] > 0
