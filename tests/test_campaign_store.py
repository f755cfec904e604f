"""Campaign runs, the tamper-evident decision log and the outbox, on SQLite and a real PostgreSQL.

Decisions are real: the default pack decides scenarios built from the benign base of
tactful.policy.testing. Tampering is done with plain SQL, as an intruder with database access would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tactful.compose import Message, compose, demo_messages
from tactful.model import ContactPoint, Customer, Decision, ScenarioRecentTouch
from tactful.policy import evaluate, load_pack
from tactful.policy.testing import scenario
from tactful.store import audit, db, outbox, repo, tables
from tactful.testing.cli import run_cli
from tactful.testing.store import seed
from tactful.vocab import Channel, Depth, Verdict

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
POSTAL = "marketing.communications.postal"


@pytest.fixture()
def store(db_url: str) -> Iterator[Engine]:
    engine = db.init_store(db_url)
    seed(engine, [
        Customer(id="c1", first_name="Jane", openness="balanced"),
        Customer(id="c2", first_name="Omar", openness="open"),
        ContactPoint(id="home", customer_id="c1", kind="postal", value="1 Main St\nSpringfield",
                     shared_with="private", verified_at="2026-06-01"),
        ContactPoint(id="mail", customer_id="c1", kind="email", value="jane@example.org",
                     shared_with="private", verified_at="2026-06-01"),
        ContactPoint(id="mail2", customer_id="c2", kind="email", value="omar@example.org",
                     shared_with="private", verified_at="2026-06-01"),
    ])
    yield engine
    engine.dispose()


def _decisions(n: int, **over: object) -> list[audit.LoggedDecision]:
    pack = load_pack()
    out = []
    for i in range(n):
        sc = scenario(customer={"id": f"c{i % 2 + 1}"}, **over)
        out.append(audit.LoggedDecision(customer_id=sc.customer.id, touch_id=f"t{i}", channel="email",
                                        decision=evaluate(sc, pack), input_hash=audit.input_hash(sc)))
    return out


def _run(engine: Engine, campaign: str = "spring", period: str = "2026-11") -> str:
    with engine.begin() as conn:
        return outbox.start_run(conn, campaign=campaign, period=period, policy_name="default",
                                policy_version="1", at=NOW)


def _log(engine: Engine, run_id: str, items: list[audit.LoggedDecision]) -> dict[tuple[str, str], int]:
    with engine.begin() as conn:
        return audit.append(conn, run_id, items)


# --------------------------------------------------------------------------- the decision log


def test_decisions_are_logged_with_everything_the_audit_needs(store: Engine) -> None:
    run = _run(store)
    items = _decisions(4)
    seqs = _log(store, run, items)
    assert sorted(seqs.values()) == [1, 2, 3, 4]
    with store.connect() as conn:
        row = conn.execute(sa.select(tables.decisions).where(tables.decisions.c.seq == 1)).mappings().one()
    assert (row["run_id"], row["customer_id"], row["touch_id"]) == (run, "c1", "t0")
    assert (row["verdict"], row["max_depth"], row["named"]) == ("allow", "item", False)
    assert (row["policy_name"], row["policy_version"]) == ("default", "1")
    assert row["input_hash"] == items[0].input_hash and len(row["input_hash"]) == 64
    assert row["prev_hash"] == audit.GENESIS
    report = audit.verify_chain(store)
    assert report.ok and report.rows == 4


def test_reasons_are_stored_in_plain_words(store: Engine) -> None:
    run = _run(store)
    _log(store, run, _decisions(1, consents=[]))
    with store.connect() as conn:
        reasons = conn.execute(sa.select(tables.decisions.c.reasons)).scalar_one()
    assert reasons[0]["rule"] == "marketing-needs-opt-in" and reasons[0]["verdict"] == "block"
    assert "opt" in reasons[0]["message"]


def test_logging_the_same_decision_again_adds_nothing(store: Engine) -> None:
    run = _run(store)
    first = _log(store, run, _decisions(3))
    again = _log(store, run, _decisions(5))  # t0..t2 again, t3 and t4 new
    assert {k: again[k] for k in first} == first
    assert sorted(again.values()) == [1, 2, 3, 4, 5]
    # a second run logs its own decisions after the first run's, in the same chain
    later = _log(store, _run(store), _decisions(2))
    assert sorted(later.values()) == [6, 7]
    assert audit.verify_chain(store).rows == 7 and audit.verify_chain(store).ok


def test_the_input_hash_follows_the_scenario() -> None:
    a, b = scenario(), scenario()
    assert audit.input_hash(a) == audit.input_hash(b)
    assert audit.input_hash(a) != audit.input_hash(scenario(customer={"openness": "open"}))


def _break(engine: Engine, stmt: str) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(stmt)


@pytest.mark.parametrize(("tamper", "row", "says"), [
    ("UPDATE decisions SET verdict = 'allow' WHERE seq = 3", 3, "content does not match"),
    ("UPDATE decisions SET reasons = '[]' WHERE seq = 2", 2, "content does not match"),
    ("DELETE FROM decisions WHERE seq = 4", 5, "rows are missing before it"),
    ("DELETE FROM decisions WHERE seq = 6", None, None),  # the last row: see the next test
])
def test_verify_names_the_first_broken_row(store: Engine, tamper: str, row: int | None,
                                           says: str | None) -> None:
    run = _run(store)
    _log(store, run, _decisions(6, consents=[]))
    assert audit.verify_chain(store).ok
    head_before = audit.verify_chain(store).head
    _break(store, tamper)
    report = audit.verify_chain(store)
    if row is None:
        # removing the newest row leaves a valid shorter chain: only the recorded head shows it
        assert report.ok and report.rows == 5 and report.head != head_before
        return
    assert report.broken is not None
    assert report.broken.seq == row and says is not None and says in report.broken.problem
    assert report.broken.run_id == run


def test_a_rewritten_row_with_a_recomputed_hash_breaks_the_next_link(store: Engine) -> None:
    run = _run(store)
    _log(store, run, _decisions(5, consents=[]))
    with store.begin() as conn:
        query = sa.select(tables.decisions).where(tables.decisions.c.seq == 2)
        row = dict(conn.execute(query).mappings().one())
        row["verdict"] = "allow"
        row["reasons"] = []
        new_hash = audit.row_hash(row["prev_hash"], row)
        conn.execute(tables.decisions.update().where(tables.decisions.c.seq == 2).values(
            verdict="allow", reasons=[], row_hash=new_hash))
    report = audit.verify_chain(store)
    assert report.broken is not None and report.broken.seq == 3
    assert "link to the previous row" in report.broken.problem


def test_concurrent_appends_keep_one_chain(store: Engine) -> None:
    run = _run(store)
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            pack = load_pack()
            sc = scenario()
            dec = evaluate(sc, pack)
            for i in range(15):
                item = audit.LoggedDecision(customer_id="c1", touch_id=f"w{offset}-{i}", channel="email",
                                            decision=dec, input_hash=audit.input_hash(sc))
                _log(store, run, [item])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = audit.verify_chain(store)
    assert report.ok and report.rows == 45


def test_cli_audit_verify(store: Engine) -> None:
    url = store.url.render_as_string(hide_password=False)
    code, out, _ = run_cli(["audit", "verify", "--db", url])
    assert code == 0 and "0 row(s)" in out
    run = _run(store)
    _log(store, run, _decisions(3))
    code, out, _ = run_cli(["audit", "verify", "--db", url])
    assert code == 0 and "3 row(s)" in out
    _break(store, "UPDATE decisions SET max_depth = 'history' WHERE seq = 2")
    code, _, err = run_cli(["audit", "verify", "--db", url])
    assert code == 3
    assert "broken at row 2" in err and "customer c2" in err and "touch t1" in err
    assert "1 row(s) before" in err


# --------------------------------------------------------------------------- the outbox


def _message(decision: Decision, channel: Channel = Channel.EMAIL) -> Message:
    m = demo_messages()
    msg = compose(m.templates, decision, m.data(first_name="Jane", items=["Bread"], categories=["bakery"]),
                  channel=channel, proposed_depth=Depth.ITEM, sender=m.shop)
    assert isinstance(msg, Message)
    return msg


def _entry(run: str, *, customer: str = "c1", touch: str = "t0", period: str = "2026-11",
           channel: Channel = Channel.EMAIL, to: str = "mail",
           purpose: str = "marketing.communications.email") -> outbox.OutboxEntry:
    sc = scenario(customer={"id": customer})
    return outbox.OutboxEntry(campaign="spring", customer_id=customer, touch_id=touch, touch_kind="offer",
                              purpose=purpose, period=period, run_id=run, contact_point_id=to,
                              message=_message(evaluate(sc, load_pack()), channel))


def _outbox_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(tables.outbox)).scalar_one())


def test_the_same_outbox_key_twice_never_makes_a_duplicate(store: Engine) -> None:
    run = _run(store)
    with store.begin() as conn:
        assert outbox.enqueue(conn, [_entry(run)]) == 1
    with store.begin() as conn:
        assert outbox.enqueue(conn, [_entry(run), _entry(run)]) == 0
    # a second run of the same campaign in the same period: still one message
    run2 = _run(store)
    with store.begin() as conn:
        assert outbox.enqueue(conn, [_entry(run2)]) == 0
    assert _outbox_rows(store) == 1
    # benign twins: another touch, another customer or the next period are new messages
    with store.begin() as conn:
        assert outbox.enqueue(conn, [_entry(run2, touch="t1"), _entry(run2, customer="c2", to="mail2"),
                                     _entry(run2, period="2026-12")]) == 3
    assert _outbox_rows(store) == 4


def test_a_resumed_run_keeps_what_it_logged_with_a_decision(store: Engine) -> None:
    """A decision already logged without a message (the killed part of a run) is not given a message
    composed again on resume; a decision logged for the first time is queued with its message."""
    run = _run(store)
    held, sent = _decisions(2)
    with store.begin() as conn:
        assert outbox.record(conn, run, [outbox.Decided(held)]) == (1, 0)
    with store.begin() as conn:
        logged, queued = outbox.record(conn, run, [
            outbox.Decided(held, _entry(run, customer=held.customer_id, touch=held.touch_id)),
            outbox.Decided(sent, _entry(run, customer=sent.customer_id, touch=sent.touch_id, to="mail2"))])
    assert (logged, queued) == (2, 1)
    with store.connect() as conn:
        queued_for = conn.execute(sa.select(tables.outbox.c.customer_id, tables.outbox.c.touch_id)).all()
    assert [tuple(r) for r in queued_for] == [(sent.customer_id, sent.touch_id)]


def test_the_key_is_the_campaign_customer_touch_and_period() -> None:
    k = outbox.idempotency_key("spring", "c1", "t0", "2026-11")
    assert k == outbox.idempotency_key("spring", "c1", "t0", "2026-11")
    assert len({k, outbox.idempotency_key("spring2", "c1", "t0", "2026-11"),
                outbox.idempotency_key("spring", "c1", "t0", "2026-12"),
                outbox.idempotency_key("spring", "c1t", "0", "2026-11")}) == 4


def test_pending_messages_carry_the_address(store: Engine) -> None:
    run = _run(store)
    with store.begin() as conn:
        outbox.enqueue(conn, [_entry(run), _entry(run, touch="t1", channel=Channel.POSTAL_MAIL, to="home",
                                                  purpose=POSTAL)])
    got = outbox.pending(store, run_id=run)
    assert [(p.channel, p.address) for p in got] == [("email", "jane@example.org"),
                                                     ("postal_mail", "1 Main St\nSpringfield")]
    assert got[0].first_name == "Jane" and got[0].body and not got[0].address_bounced


def _recent(engine: Engine, customer: str) -> tuple[ScenarioRecentTouch, ...]:
    with engine.connect() as conn:
        view = repo.read_customer(conn, customer)
    return tuple(ScenarioRecentTouch(channel=t.record.channel, purpose=t.record.purpose, at=t.record.at,
                                     kind=t.record.kind) for t in view.touches)


def test_a_sent_message_becomes_a_past_touch_and_the_cap_holds_next_run(store: Engine) -> None:
    letter = {"touch": {"channel": "postal_mail", "to": "home", "purpose": POSTAL},
              "contact_points": [{"id": "home", "kind": "postal", "shared_with": "private",
                                  "verified_at": "2026-06-01"}]}
    first = evaluate(scenario(**letter), load_pack())
    assert first.verdict is Verdict.ALLOW
    run = _run(store)
    with store.begin() as conn:
        outbox.enqueue(conn, [_entry(run, channel=Channel.POSTAL_MAIL, to="home", purpose=POSTAL)])
    (msg,) = outbox.pending(store, run_id=run)
    sent_at = datetime(2026, 11, 20, tzinfo=UTC)
    with store.begin() as conn:
        outbox.mark_sent(conn, msg.id, adapter="print-shop-csv", attempts=1, at=sent_at)
    with store.begin() as conn:  # marking twice records one past touch
        outbox.mark_sent(conn, msg.id, adapter="print-shop-csv", attempts=1, at=sent_at)
    assert outbox.pending(store, run_id=run) == []
    assert outbox.counts(store, run) == {"sent": 1}
    recent = _recent(store, "c1")
    assert [(r.channel, r.purpose) for r in recent] == [(Channel.POSTAL_MAIL, POSTAL)]
    # next month's run reads the store's touches: the monthly postal cap holds
    touches = [r.model_dump(mode="json") for r in recent]
    again = evaluate(scenario(**letter, recent_touches=touches), load_pack())
    assert again.verdict is Verdict.BLOCK
    assert "marketing-frequency-cap" in [r.rule for r in again.reasons]


def test_a_bounce_is_recorded_on_the_contact_point(store: Engine) -> None:
    run = _run(store)
    with store.begin() as conn:
        outbox.enqueue(conn, [_entry(run)])
    (msg,) = outbox.pending(store, run_id=run)
    with store.begin() as conn:
        outbox.mark_bounced(conn, msg.id, adapter="smtp", attempts=1, error="550 no such user")
    with store.connect() as conn:
        bounced = conn.execute(sa.select(tables.contact_points.c.bounced)
                               .where(tables.contact_points.c.id == "mail")).scalar_one()
        status, error = conn.execute(sa.select(tables.outbox.c.status, tables.outbox.c.last_error)).one()
    assert bounced and status == "bounced" and "550" in error
    assert outbox.counts(store, run) == {"bounced": 1}
    # the next run judges the stored contact point: bounced blocks
    d = evaluate(scenario(contact_points=[{"id": "mail", "kind": "email", "shared_with": "private",
                                           "verified_at": "2026-06-01", "bounced": bounced}]), load_pack())
    assert d.verdict is Verdict.BLOCK and "bounced-contact-point" in [r.rule for r in d.reasons]


def test_a_failed_message_keeps_its_error(store: Engine) -> None:
    run = _run(store)
    with store.begin() as conn:
        outbox.enqueue(conn, [_entry(run)])
    (msg,) = outbox.pending(store, run_id=run)
    with store.begin() as conn:
        outbox.mark_failed(conn, msg.id, adapter="smtp", attempts=4, error="connection refused")
    assert outbox.counts(store, run) == {"failed": 1}
    with store.connect() as conn:
        assert conn.execute(sa.select(tables.touches.c.id)).first() is None  # not sent: no past touch


def test_a_batch_of_outcomes_is_recorded_at_once(store: Engine) -> None:
    """Delivery records a batch of outcomes in one transaction (outbox.record_outcomes): each message
    gets its own status, the sent ones their past touch (once, however often recorded), the bounced
    one its contact point marked; messages outside the batch are untouched."""
    run = _run(store)
    with store.begin() as conn:
        outbox.enqueue(conn, [_entry(run, touch="t0"), _entry(run, touch="t1", channel=Channel.POSTAL_MAIL,
                                                                to="home", purpose=POSTAL),
                              _entry(run, customer="c2", touch="t2", to="mail2"), _entry(run, touch="t3"),
                              _entry(run, touch="t4")])
    ids = {m.key: m.id for m in outbox.pending(store, run_id=run)}
    by_touch = {t: ids[outbox.idempotency_key("spring", c, t, "2026-11")]
                for c, t in [("c1", "t0"), ("c1", "t1"), ("c2", "t2"), ("c1", "t3"), ("c1", "t4")]}
    batch = [outbox.Outcome(by_touch["t0"], outbox.SENT, "eml-files", 1),
             outbox.Outcome(by_touch["t1"], outbox.SENT, "print-shop-csv", 2),
             outbox.Outcome(by_touch["t2"], outbox.BOUNCED, "smtp", 1, "550 no such user"),
             outbox.Outcome(by_touch["t3"], outbox.FAILED, "smtp", 4, "connection refused")]
    sent_at = datetime(2026, 11, 20, tzinfo=UTC)
    for _ in range(2):  # recorded twice (a resumed delivery): the same state, one touch per message
        with store.begin() as conn:
            outbox.record_outcomes(conn, batch, at=sent_at)
    o, t, cp = tables.outbox, tables.touches, tables.contact_points
    with store.connect() as conn:
        rows = {r.touch_id: r for r in conn.execute(sa.select(o))}
        touches = conn.execute(sa.select(t.c.id, t.c.customer_id, t.c.channel, t.c.purpose, t.c.at,
                                         t.c.campaign).order_by(t.c.channel)).all()
        bounced = dict(conn.execute(sa.select(cp.c.id, cp.c.bounced)).all())
    assert {k: (r.status, r.attempts, r.adapter, r.last_error) for k, r in rows.items()} == {
        "t0": ("sent", 1, "eml-files", None), "t1": ("sent", 2, "print-shop-csv", None),
        "t2": ("bounced", 1, "smtp", "550 no such user"), "t3": ("failed", 4, "smtp", "connection refused"),
        "t4": ("pending", 0, None, None)}
    assert [(x.customer_id, x.channel, x.purpose, x.campaign) for x in touches] == [
        ("c1", "email", "marketing.communications.email", "spring"), ("c1", "postal_mail", POSTAL, "spring")]
    assert {x.id for x in touches} == {f"outbox-{rows['t0'].idempotency_key}",
                                       f"outbox-{rows['t1'].idempotency_key}"}
    assert all((x.at if x.at.tzinfo else x.at.replace(tzinfo=UTC)) == sent_at for x in touches)
    assert bounced == {"home": False, "mail": False, "mail2": True}
    with pytest.raises(ValueError, match="not a delivery outcome"), store.begin() as conn:
        outbox.record_outcomes(conn, [outbox.Outcome(by_touch["t4"], "pending", "smtp", 0)])


def test_runs_are_recorded(store: Engine) -> None:
    run = _run(store)
    with store.begin() as conn:
        outbox.finish_run(conn, run, summary={"allow": 3})
    with store.connect() as conn:
        row = conn.execute(sa.select(tables.campaign_runs)).mappings().one()
    assert row["id"] == run and run.startswith("spring-20261122T100000Z-")
    assert (row["status"], row["summary"], row["period"]) == ("finished", {"allow": 3}, "2026-11")


# --------------------------------------------------------------------------- crash safety (a real kill -9)

WORKER = r'''
import sys, time
from tactful.compose import Message, compose, demo_messages
from tactful.policy import evaluate, load_pack
from tactful.policy.testing import scenario
from tactful.store import audit, db, outbox
from tactful.vocab import Depth

url, run_id, n, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
engine = db.open_store(url)
with engine.begin() as conn:
    outbox.start_run(conn, campaign="spring", period="2026-11", policy_name="default", policy_version="1",
                     run_id=run_id)
pack, m = load_pack(), demo_messages()
for start in range(0, n, 10):
    batch = []
    for i in range(start, start + 10):
        sc = scenario(customer={"id": f"k{i}"}, **({"consents": []} if i % 3 == 0 else {}))
        d = evaluate(sc, pack)
        out = compose(m.templates, d, m.data(items=["Bread"]), channel=sc.touch.channel,
                      proposed_depth=Depth.ITEM, sender=m.shop)
        sent = isinstance(out, Message)
        logged = audit.LoggedDecision(customer_id=f"k{i}", touch_id="offer", channel="email",
                                      decision=d, input_hash=audit.input_hash(sc), proposed_depth="item",
                                      withheld=None if sent else out.reason)
        entry = outbox.OutboxEntry(campaign="spring", customer_id=f"k{i}", touch_id="offer",
                                   touch_kind="offer", purpose="marketing.communications.email",
                                   period="2026-11", run_id=run_id, contact_point_id=f"mail-{i}",
                                   message=out) if sent else None
        batch.append(outbox.Decided(logged, entry))
    with engine.begin() as conn:
        outbox.record(conn, run_id, batch)
        print(f"batch {start} written", flush=True)
        time.sleep(pause)  # the kill lands here: inside the transaction, before the commit
    print(f"batch {start} committed", flush=True)
print("finished", flush=True)
'''


def test_a_run_killed_with_kill_9_and_rerun_loses_nothing_and_duplicates_nothing(
        db_url: str, tmp_path: Path) -> None:
    n = 60
    engine = db.init_store(db_url)
    try:
        seed(engine, [Customer(id=f"k{i}") for i in range(n)]
             + [ContactPoint(id=f"mail-{i}", customer_id=f"k{i}", kind="email", value=f"k{i}@example.org",
                             shared_with="private", verified_at="2026-06-01") for i in range(n)])
        url = engine.url.render_as_string(hide_password=False)
        script = tmp_path / "worker.py"
        script.write_text(WORKER, encoding="utf-8")
        run_id = "spring-crash-test"
        proc = subprocess.Popen([sys.executable, str(script), url, run_id, str(n), "0.4"],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("batch 30 written"):  # batches 0-20 committed, 30 in flight
                os.kill(proc.pid, signal.SIGKILL)
                break
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        with engine.connect() as conn:
            logged = conn.execute(sa.select(sa.func.count()).select_from(tables.decisions)).scalar_one()
        assert logged == 30  # three batches committed; the one in flight was rolled back whole
        assert _outbox_rows(engine) == 20
        # the rerun resumes the run and completes it; a third run changes nothing
        for _ in range(2):
            done = subprocess.run([sys.executable, str(script), url, run_id, str(n), "0"],
                                  capture_output=True, text=True, timeout=120, check=False)
            assert done.returncode == 0, done.stderr
            assert done.stdout.rstrip().endswith("finished")
        with engine.connect() as conn:
            rows = conn.execute(sa.select(tables.decisions.c.customer_id, tables.decisions.c.withheld)).all()
            keys = conn.execute(sa.select(tables.outbox.c.customer_id)).scalars().all()
        assert sorted(c for c, _ in rows) == sorted(f"k{i}" for i in range(n))  # every decision, once
        assert sum(1 for _, w in rows if w) == n // 3  # the blocked ones say why nothing was sent
        assert sorted(keys) == sorted(f"k{i}" for i in range(n) if i % 3)  # every message, once
        report = audit.verify_chain(engine)
        assert report.ok and report.rows == n
    finally:
        engine.dispose()
