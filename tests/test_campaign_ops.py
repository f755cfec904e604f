"""Campaign operations on the real sample world: the decision log's reasons are the engine's plain
words, the report is rebuilt from the store alone, a changed logged message breaks the chain, and the
outbox is delivered from the CLI (files, mbox, SMS CSV, SMTP on loopback)."""

from __future__ import annotations

import json
import mailbox
import re
import socket
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
import yaml
from pyarrow import parquet

from conftest import SampleWorlds
from conftest import query_rows as _all
from tactful.batch.candidates import candidates, read_table
from tactful.batch.run import decide_candidates
from tactful.policy import evaluate, load_pack
from tactful.realtime import StoreScenarioBuilder
from tactful.sample import PERSONA_IDS
from tactful.store import audit, tables
from tactful.store.db import open_store
from tactful.testing.cli import run_cli

NOW = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
NOW_TEXT = "2026-11-01T09:00:00"
PERSONAS = [*PERSONA_IDS.values(), "persona-teen-father"]
DEMO = Path(__file__).parents[1] / "src" / "tactful" / "campaigns" / "demo.yaml"


@pytest.fixture(scope="module")
def world(sample_worlds: SampleWorlds) -> Path:
    """The sample world of these tests (``store``, conftest, copies it); the kill test's too."""
    return sample_worlds.path(seed=7, synthetic_n=40)


@pytest.fixture()
def campaign_file(tmp_path: Path) -> Path:
    doc = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    doc["audience"] = {"customers": [*PERSONAS, *[f"{10000000 + i}" for i in range(1, 30)]]}
    path = tmp_path / "ops.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _run(store: str, campaign_file: Path, out: Path, *extra: str) -> str:
    code, _, err = run_cli(["campaign", "run", str(campaign_file), "--db", store, "--now", NOW_TEXT,
                                  "--out", str(out), "--quiet", *extra])
    assert code == 0, err
    (run_id,) = [r.id for r in _all(store, sa.select(tables.campaign_runs.c.id))]
    return str(run_id)


# --------------------------------------------------------------------------- reasons in plain words


def test_batch_reasons_are_the_engines_filled_messages(world: Path, tmp_path: Path) -> None:
    """decide_candidates(explain=True) gives each decision the reasons the real-time engine gives for
    the same scenario, messages filled from the customer's facts."""
    url = f"sqlite:///{world}"
    products = _all(url, sa.select(tables.products))
    revealing = [p.id for p in products if p.implies][:3]
    pack = load_pack(None)
    path = tmp_path / "c.parquet"
    parquet.write_table(pa.Table.from_pylist([
        {"customer_id": cid, "touch_id": f"t-{channel}", "kind": "recommendation", "purpose": "marketing",
         "channel": channel, "to": None,
         "to_kind": {"postcard": "postal", "email": "email", "sms": "phone"}[channel],
         "sender_implies": None, "uses": json.dumps([{"kind": "purchase"}]),
         "shows_items": ";".join(revealing), "depth": "item", "named": "true"}
        for cid in PERSONAS for channel in ("postcard", "email", "sms")]), path)
    result = decide_candidates(path, pack, db=url, now=NOW, explain=True)
    assert result.reasons is not None and not result.errors
    builder = StoreScenarioBuilder(pack)
    engine = open_store(url)
    explained = 0
    try:
        with engine.connect() as conn:
            for cand, reasons in zip(candidates(read_table(path), str(path)), result.reasons, strict=True):
                assert cand.touch is not None and reasons is not None
                expected = evaluate(builder.scenario(conn, cand.customer_id, cand.touch, NOW), pack)
                assert [r.model_dump() for r in reasons] == [
                    r.model_dump() for r in expected.reasons if r.rule != "fail-closed-guard"]
                explained += len(reasons)
    finally:
        engine.dispose()
    assert explained > 5  # rules did fire
    # and without explain nothing extra is computed
    assert decide_candidates(path, pack, db=url, now=NOW).reasons is None


def test_the_decision_log_holds_the_plain_messages_not_rule_titles(store: str, campaign_file: Path,
                                                                    tmp_path: Path) -> None:
    run_id = _run(store, campaign_file, tmp_path / "runs")
    pack = load_pack(None)
    titles = {r.id: r.title for r in pack.rules}
    templated = {r.id for r in pack.rules if r.message != r.title}
    checked = 0
    for row in _all(store, sa.select(tables.decisions.c.reasons).where(tables.decisions.c.run_id == run_id)):
        for reason in row.reasons:
            if reason["rule"] in templated:
                assert reason["message"] != titles[reason["rule"]]
                assert "{" not in reason["message"]
                checked += 1
    assert checked > 0
    # the persona with the postcard: the reason names what the postcard would show, in words
    code, printed, err = run_cli(["campaign", "report", run_id, "--db", store])
    assert code == 0, err
    assert "why" in printed.lower()


# --------------------------------------------------------------------------- the report from the store


def _section(page: str, name: str) -> str:
    match = re.search(f'<section id="{name}">.*?</section>', page, re.S)
    assert match is not None, name
    return match.group(0)


def test_the_report_is_rebuilt_from_the_store_alone(store: str, campaign_file: Path, tmp_path: Path) -> None:
    # a dry run builds its page from memory, before anything is logged or sent
    code, printed, err = run_cli(["campaign", "run", str(campaign_file), "--db", store, "--now", NOW_TEXT,
                                  "--out", str(tmp_path / "dry"), "--quiet", "--dry-run"])
    assert code == 0, err
    from_memory = Path(printed.strip().removeprefix("report: ")).read_text(encoding="utf-8")
    run_id = _run(store, campaign_file, tmp_path / "runs")
    original = tmp_path / "runs" / run_id / "report.html"
    page = original.read_text(encoding="utf-8")
    original.unlink()
    rebuilt = tmp_path / "again" / "report.html"
    code, printed, err = run_cli(["campaign", "report", run_id, "--db", store, "--html", str(rebuilt)])
    assert code == 0, err
    assert "rebuilt from the store" in printed
    assert rebuilt.read_text(encoding="utf-8") == page
    assert stat.S_IMODE(rebuilt.stat().st_mode) == 0o600
    # the store kept everything the page shows: the same customers, messages proposed and sent,
    # reasons, charts and personas as the page built from memory
    for name in ("channels", "depth", "rules", "personas"):
        assert _section(page, name) == _section(from_memory, name), name
    assert _section(page, "totals").split("<p>")[0] == _section(from_memory, "totals").split("<p>")[0]
    # an existing file is never replaced; an unknown run is exit 2
    code, _, err = run_cli(["campaign", "report", run_id, "--db", store, "--html", str(rebuilt)])
    assert code == 2 and "already exists" in err and "Traceback" not in err
    code, _, err = run_cli(["campaign", "report", "no-such-run", "--db", store, "--html",
                            str(tmp_path / "x.html")])
    assert code == 2 and "no campaign run" in err
    assert not (tmp_path / "x.html").exists()


def test_a_run_logged_without_its_messages_cannot_be_rebuilt(store: str, campaign_file: Path,
                                                             tmp_path: Path) -> None:
    """A run logged before schema 0004 has no messages in its log: saying so beats a page of guesses."""
    run_id = _run(store, campaign_file, tmp_path / "runs", "--no-deliver")
    engine = open_store(store)
    try:
        with engine.begin() as conn:
            conn.execute(tables.decisions.update().values(message=None, proposed=None))
    finally:
        engine.dispose()
    code, _, err = run_cli(["campaign", "report", run_id, "--db", store, "--html", str(tmp_path / "r.html")])
    assert code == 2 and "before the store kept messages" in err and "Traceback" not in err
    assert not (tmp_path / "r.html").exists()


def test_a_logged_message_changed_afterwards_breaks_the_chain(store: str, campaign_file: Path,
                                                               tmp_path: Path) -> None:
    run_id = _run(store, campaign_file, tmp_path / "runs", "--no-deliver")
    rows = _all(store, sa.select(tables.decisions.c.seq, tables.decisions.c.message,
                                 tables.decisions.c.proposed).order_by(tables.decisions.c.seq))
    sent = [r for r in rows if r.message and r.message["type"] == "message"]
    assert sent and any(r.proposed for r in rows)
    target = sent[len(sent) // 2]
    code, _, err = run_cli(["audit", "verify", "--db", store])
    assert code == 0, err
    engine = open_store(store)
    try:
        with engine.begin() as conn:
            changed = dict(target.message, body="Something else entirely")
            conn.execute(tables.decisions.update().where(tables.decisions.c.seq == target.seq)
                         .values(message=changed))
    finally:
        engine.dispose()
    code, _, err = run_cli(["audit", "verify", "--db", store])
    assert code == 3 and f"broken at row {target.seq} " in err and "content does not match" in err
    # the proposed text is covered too
    first = next(r for r in rows if r.proposed)
    engine = open_store(store)
    try:
        with engine.begin() as conn:
            conn.execute(tables.decisions.update().where(tables.decisions.c.seq == target.seq)
                         .values(message=target.message))
            conn.execute(tables.decisions.update().where(tables.decisions.c.seq == first.seq)
                         .values(proposed=None))
    finally:
        engine.dispose()
    code, _, err = run_cli(["audit", "verify", "--db", store])
    assert code == 3 and f"broken at row {first.seq} " in err
    assert run_id


def test_messages_round_trip_through_the_log() -> None:
    from tactful.compose import Message, Withheld
    from tactful.vocab import Channel, Depth

    m = Message(kind="offer", slot="category", depth=Depth.CATEGORY, named=False, channel=Channel.EMAIL,
                sender="Shop", subject="New in", body="Hello", html=False)
    w = Withheld(code="blocked", reason="held back", rules=("r1",))
    for item in (m, w):
        assert audit.composed_from_record(json.loads(json.dumps(audit.composed_record(item)))) == item
    with pytest.raises(ValueError, match="unknown message record type"):
        audit.composed_from_record({"type": "poem"})
    with pytest.raises(ValueError):
        audit.composed_from_record({"type": "message", "kind": "offer"})


# --------------------------------------------------------------------------- delivery from the CLI


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class Mailserver:
    """A mail server on loopback that bounces ``bounce``, answers 451 once to ``flaky`` and keeps what
    it accepts."""

    def __init__(self, bounce: str, flaky: str) -> None:
        self.bounce, self.flaky = bounce, flaky
        self.flaky_tries = 0
        self.received: list[tuple[list[str], bytes]] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address == self.bounce:
            return "550 5.1.1 no such user"
        if address == self.flaky:
            self.flaky_tries += 1
            if self.flaky_tries == 1:
                return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pending(store: str) -> list[Any]:
    o, cp = tables.outbox, tables.contact_points
    return _all(store, sa.select(o.c.idempotency_key, o.c.channel, o.c.status, o.c.contact_point_id,
                                 cp.c.value).select_from(o.outerjoin(cp, cp.c.id == o.c.contact_point_id)))


def test_deliver_from_the_cli_through_smtp_and_files(store: str, campaign_file: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from aiosmtpd.controller import Controller

    run_id = _run(store, campaign_file, tmp_path / "runs", "--no-deliver")
    queued = _pending(store)
    assert queued and {q.status for q in queued} == {"pending"}
    emails = [q for q in queued if q.channel == "email"]
    letters = [q for q in queued if q.channel in ("postal_mail", "postcard")]
    texts = [q for q in queued if q.channel == "sms"]
    assert len(emails) >= 3 and letters
    server = Mailserver(bounce=emails[0].value, flaky=emails[1].value)
    port = _free_port()
    controller = Controller(server, hostname="127.0.0.1", port=port)
    controller.start()
    out = tmp_path / "delivery"
    try:
        monkeypatch.setenv("TACTFUL_SMTP_HOST", "127.0.0.1")  # settings from the environment work too
        code, printed, err = run_cli(["campaign", "deliver", run_id, "--db", store, "--email", "smtp",
                                      "--smtp-port", str(port), "--from", "offers@shop.example",
                                      "--backoff", "0.01", "--out", str(out), "--quiet"])
        assert code == 0, err
        # one copy of every accepted email; the flaky address got its message on the second try
        assert sorted(to[0] for to, _ in server.received) == sorted(q.value for q in emails[1:])
        assert server.flaky_tries == 2
        keys = {re.search(rb"Message-ID: <([0-9a-f]{64})@", content).group(1).decode()  # type: ignore[union-attr]
                for _, content in server.received}
        assert keys == {q.idempotency_key for q in emails[1:]}
        # delivering again sends nothing twice
        code, again, err = run_cli(["campaign", "deliver", run_id, "--db", store, "--email", "smtp",
                                    "--smtp-port", str(port), "--out", str(out), "--quiet"])
        assert code == 0, err
        assert len(server.received) == len(emails) - 1
        assert re.search(r"sent\s+│\s+0\b", again)
    finally:
        controller.stop()
    assert re.search(rf"sent\s+│\s+{len(queued) - 1}\b", printed) and re.search(r"bounced\s+│\s+1\b", printed)
    status = {q.idempotency_key: q.status for q in _pending(store)}
    assert status[emails[0].idempotency_key] == "bounced"
    assert all(status[q.idempotency_key] == "sent" for q in queued[1:] if q is not emails[0])
    bounced = _all(store, sa.select(tables.contact_points.c.bounced).where(
        tables.contact_points.c.id == emails[0].contact_point_id))
    assert bounced[0].bounced is True  # the next run knows
    # letters for the print shop and texts for the SMS gateway, owner-only
    shop = (out / "print-shop.csv").read_text(encoding="utf-8")
    assert _mode(out / "print-shop.csv") == 0o600 and _mode(out) == 0o700
    assert sorted(q.idempotency_key for q in letters) == sorted(
        line.split(",")[0] for line in shop.splitlines()[1:] if re.match(r"[0-9a-f]{64},", line))
    if texts:
        sms = (out / "sms.csv").read_text(encoding="utf-8").splitlines()
        assert sms[0] == "outbox_key,customer_id,to,sender,body" and _mode(out / "sms.csv") == 0o600
        assert {line.split(",")[0] for line in sms[1:] if re.match(r"[0-9a-f]{64},", line)} == {
            q.idempotency_key for q in texts}


def test_deliver_into_an_mbox_never_replacing_a_file(store: str, campaign_file: Path, tmp_path: Path) -> None:
    run_id = _run(store, campaign_file, tmp_path / "runs", "--no-deliver")
    emails = [q for q in _pending(store) if q.channel == "email"]
    out = tmp_path / "mbox-out"
    out.mkdir(mode=0o700)
    theirs = out / "email.mbox"
    theirs.write_text("not ours\n", encoding="utf-8")
    code, _, err = run_cli(["campaign", "deliver", run_id, "--db", store, "--email", "mbox",
                            "--out", str(out), "--quiet"])
    assert code == 0, err
    assert theirs.read_text(encoding="utf-8") == "not ours\n"  # left alone: ours is email-2.mbox
    box = mailbox.mbox(out / "email-2.mbox", create=False)
    try:
        ids = sorted(m["Message-ID"] for m in box)
    finally:
        box.close()
    assert ids == sorted(f"<{q.idempotency_key}@tactful.invalid>" for q in emails)
    assert _mode(out / "email-2.mbox") == 0o600


@pytest.mark.parametrize(("args", "says"), [
    (["no-such-run"], "no campaign run"),
    (["RUN", "--email", "pigeon"], "unknown adapter"),
    (["RUN", "--email", "smtp"], "needs the SMTP server"),
])
def test_deliver_refuses_bad_input_with_exit_2(store: str, campaign_file: Path, tmp_path: Path,
                                               args: list[str], says: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TACTFUL_SMTP_HOST", raising=False)
    run_id = _run(store, campaign_file, tmp_path / "runs", "--no-deliver")
    argv = ["campaign", "deliver", *[run_id if a == "RUN" else a for a in args], "--db", store,
            "--out", str(tmp_path / "x"), "--quiet"]
    code, _, err = run_cli(argv)
    assert code == 2 and says in err and "Traceback" not in err
    assert {q.status for q in _pending(store)} == {"pending"}


def test_the_smtp_password_is_never_printed(store: str, campaign_file: Path, tmp_path: Path) -> None:
    from aiosmtpd.controller import Controller

    run_id = _run(store, campaign_file, tmp_path / "runs", "--no-deliver")
    server = Mailserver(bounce="", flaky="")
    port = _free_port()
    controller = Controller(server, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        # this server offers no login: every email fails (after its retries) and says why
        code, printed, err = run_cli(
            ["campaign", "deliver", run_id, "--db", store, "--email", "smtp", "--smtp-host", "127.0.0.1",
             "--smtp-port", str(port), "--smtp-user", "shop", "--attempts", "2", "--backoff", "0.01",
             "--out", str(tmp_path / "x"), "--quiet"], env={"TACTFUL_SMTP_PASSWORD": "s3cret-pw"})
    finally:
        controller.stop()
    assert code == 0, err
    assert server.received == []
    assert "s3cret-pw" not in printed + err
    assert re.search(r"failed\s+│\s+[1-9]", printed)
    errors = _all(store, sa.select(tables.outbox.c.last_error).where(tables.outbox.c.status == "failed"))
    assert errors and all("s3cret-pw" not in (e.last_error or "") for e in errors)
