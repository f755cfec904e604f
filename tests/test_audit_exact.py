"""The decision log's exact bytes, pinned: the hash chain and the stored JSON of a fixed set of
decisions (written before the log's fast path, issue 10 §7), and the rows the fast path writes against
a straightforward rebuild of the documented format; the same for the report read back from the store
and for composed messages. On SQLite and a real PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tactful import compose as compose_module
from tactful.compose import Message, TemplateSet, Withheld, compose, demo_messages, preview
from tactful.model import Decision, PolicyRef, Reason
from tactful.policy import evaluate, load_pack
from tactful.policy.testing import scenario
from tactful.report import ReportRow, RunInfo, Tally, build, from_store, rule_titles
from tactful.store import audit, db, outbox, tables
from tactful.vocab import Channel, Depth, Verdict

AT = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)
POLICY = PolicyRef(name="default", version="1.2")


def _items() -> tuple[list[audit.LoggedDecision], list[audit.LoggedDecision]]:
    soft = Reason(rule="r-soft", verdict=Verdict.SOFTEN, message='Toned down: “bought” ünïcode "quoted"',
                  facts=("f1", "f2"))
    block = Reason(rule="r-block", verdict=Verdict.BLOCK, message="Rule title", facts=())
    d1 = Decision(verdict=Verdict.ALLOW, max_depth=Depth.ITEM, named=True, policy=POLICY)
    d2 = Decision(verdict=Verdict.SOFTEN, max_depth=Depth.CATEGORY, named=False, reasons=(soft,),
                  remedies=("ask first",), policy=POLICY)
    d3 = Decision(verdict=Verdict.BLOCK, max_depth=Depth.NONE, named=False, reasons=(block, soft),
                  policy=POLICY)
    d4 = Decision(verdict=Verdict.SOFTEN, max_depth=Depth.CATEGORY, named=False, policy=POLICY,
                  reasons=(Reason(rule="r-soft", verdict=Verdict.SOFTEN,
                                  message='Toned down: “bought” ünïcode "quoted"', facts=("f1", "f2")),))
    d5 = Decision(verdict=Verdict.BLOCK, max_depth=Depth.NONE, named=False, policy=POLICY,
                  reasons=(block, Reason(rule="r-soft", verdict=Verdict.SOFTEN,
                                         message='Toned down: “bought” ünïcode "quoted"', facts=("f9",))))
    msg = Message(kind="offer", slot="item", depth=Depth.ITEM, named=True, channel=Channel.EMAIL,
                  sender="Corner Shop", subject="Für Sie: “Sourdough” & <more>",
                  body="<p>Dear Jane</p>\nLine\t2 \u2028 end", html=True)
    soft_msg = Message(kind="offer", slot="category", depth=Depth.CATEGORY, named=False,
                       channel=Channel.POSTAL_MAIL, sender="A neutral sender", subject="",
                       body="Hello,\nnew in Bakery", html=False)
    held = Withheld("blocked", "Rule title; Toned down", ("r-block", "r-soft"))
    first = [
        audit.LoggedDecision(customer_id="c1", touch_id="email:offer", channel="email", decision=d1,
                             input_hash="a" * 64, proposed_depth="item", proposed=msg, message=msg),
        audit.LoggedDecision(customer_id="c1", touch_id="postal_mail:offer", channel="postal_mail",
                             decision=d3, input_hash="b" * 64, proposed_depth="item",
                             withheld=held.reason, message=held),
        audit.LoggedDecision(customer_id="c2", touch_id="email:offer", channel="postal_mail", decision=d2,
                             input_hash="c" * 64, proposed_depth="item", proposed=msg, message=soft_msg),
    ]
    second = [
        audit.LoggedDecision(customer_id="c3", touch_id="email:offer", channel="email", decision=d4,
                             input_hash="d" * 64),
        audit.LoggedDecision(customer_id="c4", touch_id="email:offer", channel="email", decision=d5,
                             input_hash="e" * 64, proposed_depth="history", withheld="nothing, \"quoted\"",
                             message=held),
        audit.LoggedDecision(customer_id="c5", touch_id="sms:offer", channel="sms", decision=d2,
                             input_hash="f" * 64, proposed_depth="none", message=soft_msg),
    ]
    return first, second


_MSG = ('{"type": "message", "kind": "offer", "slot": "item", "depth": "item", "named": true, '
        '"channel": "email", "sender": "Corner Shop", "subject": "F\\u00fcr Sie: \\u201cSourdough\\u201d '
        '& <more>", "body": "<p>Dear Jane</p>\\nLine\\t2 \\u2028 end", "html": true}')
_SOFT_MSG = ('{"type": "message", "kind": "offer", "slot": "category", "depth": "category", "named": '
             'false, "channel": "postal_mail", "sender": "A neutral sender", "subject": "", "body": '
             '"Hello,\\nnew in Bakery", "html": false}')
_HELD = ('{"type": "withheld", "code": "blocked", "reason": "Rule title; Toned down", "rules": '
         '["r-block", "r-soft"]}')
_BLOCK = '{"rule": "r-block", "verdict": "block", "message": "Rule title", "facts": []}'
_SOFT = ('{"rule": "r-soft", "verdict": "soften", "message": "Toned down: \\u201cbought\\u201d '
         '\\u00fcn\\u00efcode \\"quoted\\"", "facts": [%s]}')
_F12, _F9 = '"f1", "f2"', '"f9"'
#: (seq, row_hash, reasons, proposed, message as stored): written by the log before its fast path
#: (commit 47ea435); the same bytes on SQLite and PostgreSQL
GOLDEN = [
    (1, "de469e0c1c6a7dd83d6e4c80b6006e0f588a2d0ec3266c53783ba0a7859cf9f3", "[]", _MSG, _MSG),
    (2, "062e34e72fcd78896a7b92fa9e1858390a22ce0b1cbed6024f54668e1a6af648",
     f"[{_BLOCK}, {_SOFT % _F12}]", "null", _HELD),
    (3, "c1a0afe125f01bccda01e2d8b06f1c20998ab75c4e7e1aea2b461f76a79a9f70",
     f"[{_SOFT % _F12}]", _MSG, _SOFT_MSG),
    (4, "f815938f37709ab072d372330aca08777f7f366922e08d8a62e9d1e49e89ea92",
     f"[{_SOFT % _F12}]", "null", "null"),
    (5, "060721c91b86dc182b2eb4f61453740e40011d1a93bec405b04042d428843ec8",
     f"[{_BLOCK}, {_SOFT % _F9}]", "null", _HELD),
    (6, "8b253d4f3085dd164f4d60a7f9f77faa272a62900bafea4fd01ae7e38566c5d7",
     f"[{_SOFT % _F12}]", "null", _SOFT_MSG),
]


@pytest.fixture()
def engine(db_url: str) -> Iterator[Engine]:
    engine = db.init_store(db_url)
    yield engine
    engine.dispose()


def _start(engine: Engine, run_id: str = "golden-run") -> str:
    with engine.begin() as conn:
        return outbox.start_run(conn, campaign="golden", period="2026-11", policy_name="default",
                                policy_version="1.2", run_id=run_id, at=AT)


def _stored(engine: Engine) -> list[tuple[Any, ...]]:
    d = tables.decisions
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(
            d.c.seq, d.c.row_hash, *(sa.cast(d.c[k], sa.Text) for k in ("reasons", "proposed", "message")))
            .order_by(d.c.seq))]


def test_the_chain_and_the_stored_json_are_pinned(engine: Engine) -> None:
    run = _start(engine)
    first, second = _items()
    for part in (first, second):  # two appends: the second links to the first's last row
        with engine.begin() as conn:
            audit.append(conn, run, part, at=AT)
    assert _stored(engine) == GOLDEN
    report = audit.verify_chain(engine)
    assert report.ok and report.rows == 6 and report.head == GOLDEN[-1][1]


def _text(value: Any) -> str:
    """The documented canonical JSON, written out here rather than taken from the module."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _record(item: Message | Withheld | None) -> dict[str, Any] | None:
    if item is None:
        return None
    if isinstance(item, Withheld):
        return {"type": "withheld", "code": item.code, "reason": item.reason, "rules": list(item.rules)}
    return {"type": "message", "kind": item.kind, "slot": item.slot, "depth": item.depth.value,
            "named": item.named, "channel": item.channel.value, "sender": item.sender,
            "subject": item.subject, "body": item.body, "html": item.html}


def _straightforward(run_id: str, items: list[audit.LoggedDecision], at: datetime,
                     first_seq: int = 1, prev: str = audit.GENESIS) -> list[dict[str, Any]]:
    """The rows a plain reading of the log's format (module doc of tactful.store.audit) gives."""
    rows = []
    for seq, item in enumerate(items, start=first_seq):
        dec = item.decision
        reasons = [{"rule": r.rule, "verdict": r.verdict.value, "message": r.message, "facts": list(r.facts)}
                   for r in dec.reasons]
        row = {"seq": seq, "run_id": run_id, "customer_id": item.customer_id, "touch_id": item.touch_id,
               "channel": item.channel, "verdict": dec.verdict.value, "max_depth": dec.max_depth.value,
               "named": dec.named, "policy_name": dec.policy.name, "policy_version": dec.policy.version,
               "input_hash": item.input_hash, "proposed_depth": item.proposed_depth,
               "withheld": item.withheld,
               "decided_at": at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")}
        for key, value in (("proposed", _record(item.proposed)), ("message", _record(item.message))):
            if value is not None:
                row[key] = value
        digest = hashlib.sha256(f"{prev}{_text(row)}\n{_text(reasons)}".encode()).hexdigest()
        rows.append({**row, "reasons": reasons, "proposed": _record(item.proposed),
                     "message": _record(item.message), "prev_hash": prev, "row_hash": digest})
        prev = digest
    return rows


def _logged(engine: Engine) -> list[dict[str, Any]]:
    d = tables.decisions
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(d).order_by(d.c.seq)).mappings()]
    for r in rows:
        r["decided_at"] = audit._time(r["decided_at"])
    return rows


def test_the_fast_path_writes_the_rows_a_straightforward_path_writes(engine: Engine) -> None:
    """Real decisions of the default pack, each its own object (as a campaign builds them), some
    sharing a decision object, some with equal reasons, with and without messages, in several
    batches: every stored column and every hash is what the plain reading of the format gives."""
    pack, msgs = load_pack(), demo_messages()
    variants = [scenario(), scenario(customer={"openness": "reserved"}, touch={"depth": "history"}),
                scenario(consents=[]), scenario(customer={"deceased": True}),
                scenario(touch={"channel": "postal_mail", "to": "home",
                                "purpose": "marketing.communications.postal"})]
    decided = [(sc, evaluate(sc, pack)) for sc in variants]
    data = msgs.data(first_name="Zoë", items=["Sourdough \"bread\""], categories=["Bakery"],
                     history=["Rye"], segment="shoppers", popular=["Bananas"])
    items = []
    for i in range(23):
        sc, dec = decided[i % len(decided)]
        own = dec if i % 3 == 0 else Decision.model_validate(dec.model_dump())  # shared, or its own
        composed = compose(msgs.templates, own, data, channel=sc.touch.channel, proposed_depth=sc.touch.depth,
                           sender=msgs.shop, neutral_sender=msgs.neutral_sender)
        items.append(audit.LoggedDecision(
            customer_id=f"k{i}", touch_id=f"{sc.touch.channel.value}:offer", channel=sc.touch.channel.value,
            decision=own, input_hash=audit.input_hash(sc), proposed_depth=None if i % 4 else "item",
            withheld=composed.reason if isinstance(composed, Withheld) else None,
            proposed=composed if i % 2 else None, message=None if i % 5 == 4 else composed))
    assert {len(d.reasons) for _, d in decided} >= {0, 1}
    run = _start(engine, "fast-run")
    at = datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC)
    for start in range(0, len(items), 10):
        with engine.begin() as conn:
            audit.append(conn, run, items[start:start + 10], at=at)
    expected: list[dict[str, Any]] = []
    for start in range(0, len(items), 10):
        prev = expected[-1]["row_hash"] if expected else audit.GENESIS
        expected += _straightforward(run, items[start:start + 10], at, len(expected) + 1, prev)
    assert _logged(engine) == expected
    assert audit.verify_chain(engine).ok


def test_reasons_that_differ_only_in_their_facts_are_logged_apart(engine: Engine) -> None:
    policy = PolicyRef(name="p", version="1")
    a = Decision(verdict=Verdict.SOFTEN, max_depth=Depth.CATEGORY, named=False, policy=policy,
                 reasons=(Reason(rule="r", verdict=Verdict.SOFTEN, message="m", facts=("f1",)),))
    b = Decision(verdict=Verdict.SOFTEN, max_depth=Depth.CATEGORY, named=False, policy=policy,
                 reasons=(Reason(rule="r", verdict=Verdict.SOFTEN, message="m", facts=("f2",)),))
    run = _start(engine)
    with engine.begin() as conn:
        audit.append(conn, run, [audit.LoggedDecision("c1", "t", "email", a, "x"),
                                 audit.LoggedDecision("c2", "t", "email", b, "x")], at=AT)
    assert [r["reasons"][0]["facts"] for r in _logged(engine)] == [["f1"], ["f2"]]


def test_the_report_read_back_is_the_report_of_the_logged_rows(engine: Engine) -> None:
    """from_store (the logged JSON decoded only where the page needs it, one checked Decision per
    distinct logged decision) builds the page a plain reading of every logged row builds."""
    pack = load_pack()
    run = _start(engine)
    first, second = _items()
    with engine.begin() as conn:
        conn.execute(tables.campaign_runs.update().values(rules=rule_titles(pack) | {"r-soft": "Soft"}))
    for part in (first, second[1:]):  # not c3: logged without a message, as before schema 0004
        with engine.begin() as conn:
            audit.append(conn, run, part, at=AT)
    info, tally, titles = from_store(engine, run)
    d = tables.decisions
    plain = Tally(titles)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(d).where(d.c.run_id == run).order_by(d.c.seq)).all()
    by_customer: dict[str, list[Any]] = {}
    for r in rows:
        by_customer.setdefault(r.customer_id, []).append(r)
    for cid, tried in by_customer.items():
        last = tried[-1]
        final = audit.composed_from_record(last.message)
        assert final is not None
        proposed = next((p for p in (audit.composed_from_record(t.proposed) for t in tried) if p), None)
        plain.add(ReportRow(
            customer_id=cid, channel=last.channel, proposed_depth=Depth(last.proposed_depth or "none"),
            decision=Decision(verdict=Verdict(last.verdict), max_depth=Depth(last.max_depth),
                              named=bool(last.named),
                              reasons=tuple(Reason.model_validate(x) for x in last.reasons),
                              policy=PolicyRef(name=last.policy_name, version=last.policy_version)),
            proposed=proposed or final, final=final))
    assert tally.total == plain.total == 4
    # the same customers kept as samples, with the same decisions (facts too: not on the page)
    def kept(t: Tally) -> dict[str, list[tuple[Any, ...]]]:
        return {k: [(r.customer_id, r.decision, r.proposed, r.final) for r in v]
                for k, v in t.samples.items()}

    assert kept(tally) == kept(plain)
    assert build(info, tally, titles) == build(info, plain, titles)
    info2 = RunInfo(run_id=run, campaign="golden", period="2026-11", policy_name="default",
                    policy_version="1.2", started_at=AT)
    assert build(info2, tally, titles) == build(info2, plain, titles)


def test_composing_with_warm_caches_gives_what_a_fresh_template_set_gives() -> None:
    """The remembered template choice and cleaned texts change nothing: every decision composed
    through one template set equals the same decision composed by a freshly loaded set, caches cold."""
    pack, msgs = load_pack(), demo_messages()
    variants = [scenario(), scenario(customer={"openness": "reserved"}, touch={"depth": "history"}),
                scenario(customer={"openness": "open"}, touch={"depth": "history", "named": True}),
                scenario(touch={"depth": "segment"}), scenario(consents=[]),
                scenario(touch={"channel": "postal_mail", "to": "home",
                                "purpose": "marketing.communications.postal",
                                "sender_implies": ["user.sexual_life"]})]
    long_name = "Ann\u202e" + "e" * 300
    datas = [msgs.data(first_name=n, items=items, categories=["bakery"], history=["Rye"], segment="s",
                       popular=["Bananas"])
             for n in ("Zoë", long_name, "  Jo\tJo  ") for items in (["Sourdough"], [long_name, "Oat"])]
    warm = msgs.templates
    for sc in variants:
        dec = evaluate(sc, pack)
        for data in datas:
            got = [compose(warm, dec, data, channel=ch, proposed_depth=sc.touch.depth, sender=msgs.shop,
                           neutral_sender=msgs.neutral_sender, sender_reveals=bool(sc.touch.sender_implies))
                   for ch in (Channel.EMAIL, Channel.POSTAL_MAIL, Channel.SMS)]
            got.append(preview(warm, data, channel=Channel.EMAIL, depth=Depth.HISTORY, named=True,
                               sender=msgs.shop))
            compose_module._clean_str.cache_clear()
            cold = demo_messages().templates
            want = [compose(cold, dec, data, channel=ch, proposed_depth=sc.touch.depth, sender=msgs.shop,
                            neutral_sender=msgs.neutral_sender, sender_reveals=bool(sc.touch.sender_implies))
                    for ch in (Channel.EMAIL, Channel.POSTAL_MAIL, Channel.SMS)]
            want.append(preview(cold, data, channel=Channel.EMAIL, depth=Depth.HISTORY, named=True,
                                sender=msgs.shop))
            assert got == want
    # the remembered choice follows the depth and the name: asked in any order, it answers as a
    # set that never answered before
    named_item = {"none": "{{ offer }}", "category": "{{ categories | join(', ') }}",
                  "item": "Dear {{ first_name }}: {{ items | join(', ') }}"}
    asked = [(d, n) for d in (Depth.ITEM, Depth.HISTORY, Depth.CATEGORY, Depth.NONE) for n in (True, False)]
    for order in (asked, asked[::-1]):
        warm_set = TemplateSet.load(named_item, html=False)
        for depth, named in order:
            fresh = TemplateSet.load(named_item, html=False)
            got_t, want_t = warm_set.choose(depth, named), fresh.choose(depth, named)
            assert (got_t and got_t.slot) == (want_t and want_t.slot), (depth, named)
    unnamed = TemplateSet.load(named_item, html=False).choose(Depth.ITEM, False)
    assert unnamed is not None and unnamed.slot == "category"
    # the same text cleaned at two limits is two answers
    assert compose_module.clean_text(long_name, 10) != compose_module.clean_text(long_name, 200)
    assert len(compose_module.clean_text(long_name, 10)) == 10


def test_record_queues_each_message_with_its_decision(engine: Engine) -> None:
    """outbox.record: the message of every freshly logged decision is queued, every column what the
    entry says, with the seq of the decision it was composed for; a rerun of the batch queues none."""
    from tactful.model import Customer
    from tactful.testing.store import seed

    seed(engine, [Customer(id=f"c{i}", first_name="Jo", openness="balanced") for i in range(1, 6)])
    run = _start(engine)
    first, second = _items()
    batch = []
    for item in first + second:
        message = item.message
        entry = outbox.OutboxEntry(
            campaign="golden", customer_id=item.customer_id, touch_id=f"message-{item.touch_id}",
            touch_kind="recommendation", purpose="marketing", period="2026-11", run_id=run,
            contact_point_id=None, message=message) if isinstance(message, Message) else None
        batch.append(outbox.Decided(item, entry))
    with engine.begin() as conn:
        assert outbox.record(conn, run, batch) == (6, 3)
    with engine.begin() as conn:
        assert outbox.record(conn, run, batch) == (6, 0)
    seqs = {(r["customer_id"], r["touch_id"]): r["seq"] for r in _logged(engine)}
    o = tables.outbox
    with engine.connect() as conn:
        got = [dict(r) for r in conn.execute(sa.select(o).order_by(o.c.id)).mappings()]
    want = []
    for d in batch:
        e = d.entry
        if e is None:
            continue
        want.append({
            "idempotency_key": outbox.idempotency_key(e.campaign, e.customer_id, e.touch_id, e.period),
            "campaign": e.campaign, "customer_id": e.customer_id, "touch_id": e.touch_id, "period": e.period,
            "run_id": run, "decision_seq": seqs[(d.logged.customer_id, d.logged.touch_id)],
            "touch_kind": e.touch_kind, "message_kind": e.message.kind, "purpose": e.purpose,
            "channel": e.message.channel.value, "contact_point_id": None, "depth": e.message.depth.value,
            "named": e.message.named, "sender": e.message.sender, "subject": e.message.subject,
            "body": e.message.body, "html": e.message.html, "status": outbox.PENDING, "attempts": 0})
    assert [{k: r[k] for k in want[0]} for r in got] == want
    assert all(r["created_at"] is not None for r in got)
