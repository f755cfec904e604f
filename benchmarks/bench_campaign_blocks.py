"""Benchmark: the campaign building blocks after the decision (not a test).

For N customers (default 100,000) with real decisions of the default pack (ten scenario variants:
allowed, softened, asked, blocked, decided once each and reused, since the evaluators have their own
benchmarks), measures on a fresh store:

* compose: choosing and rendering the template for each decision (messages/s),
* decision log: appending the hash-chained rows in batches of 10,000 (rows/s), and verifying the chain,
* outbox: queueing the messages in batches (rows/s), and queueing them all again (the idempotent no-op),
* delivery to .eml files and to the print-shop CSV for the first --deliver messages (messages/s and
  CPU seconds of this process, user and system, each recorded as sent with its past touch),
* the run report for all N rows (seconds, page size),
* as a campaign run writes and reads them (``tactful campaign run``): compose with each customer's own
  message data (and the proposed message's preview), the decision log and outbox together
  (``outbox.record``, batches of 500 decisions, each decision its own object, the proposed and composed
  messages logged with it), and the report rebuilt from the store (``report.from_store`` + ``build``).

    .venv/bin/python benchmarks/bench_campaign_blocks.py [--n 100000] [--deliver 5000] [--db URL]

Without --db a temporary SQLite file is used; --db postgresql+psycopg://... measures PostgreSQL (the
database must exist and be empty).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from tactful.compose import Message, Messages, Withheld, compose, demo_messages, preview
from tactful.delivery import EmlDirectory, PrintShopCsv, RetryPolicy, deliver
from tactful.model import Decision, Scenario
from tactful.policy import Pack, evaluate, load_pack
from tactful.policy.testing import fact, scenario
from tactful.report import ReportRow, RunInfo, build, from_store, rule_titles
from tactful.store import audit, db, outbox, tables
from tactful.vocab import Channel, Depth

VARIANTS: list[dict[str, object]] = [
    {},  # allowed: items by private email
    {"customer": {"openness": "reserved"}, "touch": {"depth": "history"}},  # softened to category
    {"customer": {"openness": "open"}, "touch": {"depth": "history", "named": True}},  # warm, named
    {"consents": []},  # blocked: no opt-in
    {"touch": {"channel": "postal_mail", "to": "home", "purpose": "marketing.communications.postal"}},
    {"touch": {"channel": "postal_mail", "to": "home", "purpose": "marketing.communications.postal",
               "sender_implies": ["user.sexual_life"]}},  # sealed letter, neutral sender
    {"customer": {"deceased": True}},  # blocked
    {"customer": {"openness": "open"},
     "facts": [fact("dob", kind="attribute", category="user.demographic.date_of_birth", origin="declared",
                    context="signup")],
     "touch": {"uses": ["dob"], "shows": ["dob"], "depth": "category"}},  # ask
    {"touch": {"depth": "segment"}},
    {"customer": {"openness": "closed"}},  # blocked: transactional only
]


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s" if seconds > 0 else "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--deliver", type=int, default=5_000)
    ap.add_argument("--db", default=None)
    args = ap.parse_args()
    n: int = args.n
    tmp = Path(tempfile.mkdtemp(prefix="tactful-bench-campaign-"))
    url = args.db or f"sqlite:///{tmp / 'bench.db'}"
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}")
    print(f"store: {db.redact_url(url)}; {n:,} customers")
    try:
        engine = db.init_store(url)
        pack, msgs = load_pack(), demo_messages()
        scenarios = [scenario(**v) for v in VARIANTS]  # type: ignore[arg-type]
        decisions = [evaluate(s, pack) for s in scenarios]
        hashes = [audit.input_hash(s) for s in scenarios]
        data = msgs.data(first_name="Alex", segment="shoppers near Main Street", popular=["Bananas"],
                         categories=["bakery", "dairy"], history=["Rye bread"],
                         items=["Sourdough bread", "Oat milk", "Rye crackers"])

        t0 = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(tables.customers.insert(), [{"id": f"c{i}", "first_name": "Alex", "deceased": False}
                                                     for i in range(n)])
            conn.execute(tables.contact_points.insert(), [
                {"id": f"m{i}", "customer_id": f"c{i}", "kind": "email", "value": f"c{i}@example.org",
                 "shared_with": "private", "bounced": False} for i in range(n)] + [
                {"id": f"p{i}", "customer_id": f"c{i}", "kind": "postal", "value": f"{i} Main St",
                 "shared_with": "household", "bounced": False} for i in range(n)])
        print(f"setup (customers and contact points, bulk insert): {time.perf_counter() - t0:.1f} s")

        t0 = time.perf_counter()
        composed = []
        for i in range(n):
            v = i % len(VARIANTS)
            sc = scenarios[v]
            composed.append(compose(msgs.templates, decisions[v], data, channel=sc.touch.channel,
                                    proposed_depth=sc.touch.depth, sender=msgs.shop,
                                    neutral_sender=msgs.neutral_sender,
                                    sender_reveals=bool(sc.touch.sender_implies)))
        t_compose = time.perf_counter() - t0
        sent = sum(isinstance(c, Message) for c in composed)
        print(f"compose: {n:,} decisions in {t_compose:.2f} s ({_rate(n, t_compose)}); {sent:,} messages")

        with engine.begin() as conn:
            run = outbox.start_run(conn, campaign="bench", period="2026-11", policy_name=pack.name,
                                   policy_version=pack.version)
        batch = 10_000
        t0 = time.perf_counter()
        seqs: dict[tuple[str, str], int] = {}
        for start in range(0, n, batch):
            items = []
            for i in range(start, min(n, start + batch)):
                v = i % len(VARIANTS)
                c = composed[i]
                items.append(audit.LoggedDecision(
                    customer_id=f"c{i}", touch_id="offer", channel=scenarios[v].touch.channel.value,
                    decision=decisions[v], input_hash=hashes[v],
                    proposed_depth=scenarios[v].touch.depth.value,
                    withheld=None if isinstance(c, Message) else c.reason))
            with engine.begin() as conn:
                seqs.update(audit.append(conn, run, items))
        t_log = time.perf_counter() - t0
        print(f"decision log: {n:,} rows appended in {t_log:.2f} s ({_rate(n, t_log)})")
        t0 = time.perf_counter()
        report = audit.verify_chain(engine)
        t_verify = time.perf_counter() - t0
        assert report.ok and report.rows == n
        print(f"audit verify: {n:,} rows in {t_verify:.2f} s ({_rate(n, t_verify)})")

        entries = []
        for i, c in enumerate(composed):
            if isinstance(c, Message):
                entries.append(outbox.OutboxEntry(
                    campaign="bench", customer_id=f"c{i}", touch_id="offer", touch_kind="offer",
                    purpose=scenarios[i % len(VARIANTS)].touch.purpose, period="2026-11", run_id=run,
                    contact_point_id=f"p{i}" if c.channel is Channel.POSTAL_MAIL else f"m{i}", message=c,
                    decision_seq=seqs[(f"c{i}", "offer")]))
        for label in ("queue", "queue again (idempotent)"):
            t0 = time.perf_counter()
            new = 0
            for start in range(0, len(entries), batch):
                with engine.begin() as conn:
                    new += outbox.enqueue(conn, entries[start:start + batch])
            t_q = time.perf_counter() - t0
            print(f"outbox {label}: {len(entries):,} messages in {t_q:.2f} s ({_rate(len(entries), t_q)}); "
                  f"{new:,} new")

        with engine.begin() as conn:  # deliver only the first --deliver messages: park the rest
            conn.execute(tables.outbox.update().where(tables.outbox.c.id > args.deliver)
                         .values(status="parked"))
        t0, c0, r0 = time.perf_counter(), time.process_time(), os.times()
        result = deliver(engine, [EmlDirectory(tmp / "eml"), PrintShopCsv(tmp / "print")], run_id=run,
                         retry=RetryPolicy(attempts=1))
        t_del, c_del, r1 = time.perf_counter() - t0, time.process_time() - c0, os.times()
        per = f"{c_del / result.total * 1000:.2f} ms CPU per message" if result.total else ""
        print(f"delivery to files: {result.total:,} messages in {t_del:.2f} s "
              f"({_rate(result.total, t_del)}); CPU {c_del:.2f} s (user {r1.user - r0.user:.2f} s, "
              f"system {r1.system - r0.system:.2f} s), {per}; {dict(result.counts)}")

        t0 = time.perf_counter()
        rows = []
        for i, c in enumerate(composed):
            v = i % len(VARIANTS)
            sc = scenarios[v]
            proposed = preview(msgs.templates, data, channel=sc.touch.channel, depth=sc.touch.depth,
                               named=sc.touch.named, sender=msgs.shop) if i < len(VARIANTS) else c
            rows.append(ReportRow(customer_id=f"c{i}", channel=sc.touch.channel.value,
                                  proposed_depth=sc.touch.depth, decision=decisions[v], proposed=proposed,
                                  final=c))
        t_rows = time.perf_counter() - t0
        t0 = time.perf_counter()
        page = build(RunInfo(run_id=run, campaign="bench", period="2026-11", policy_name=pack.name,
                             policy_version=pack.version, started_at=datetime.now(UTC)),
                     rows, rule_titles(pack))
        t_report = time.perf_counter() - t0
        print(f"report: {n:,} rows in {t_report:.2f} s (+{t_rows:.2f} s to assemble the rows); "
              f"page {len(page) / 1024:,.0f} KiB")
        with engine.connect() as conn:
            touches = conn.execute(sa.select(sa.func.count()).select_from(tables.touches)).scalar_one()
        print(f"past touches recorded: {touches:,}")
        _campaign_shaped(engine, n, pack, msgs, scenarios, decisions, hashes)
        engine.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


PRODUCTS = [f"Product {k} ({'organic' if k % 3 else 'local'})" for k in range(500)]


def _campaign_shaped(engine: sa.Engine, n: int, pack: Pack, msgs: Messages, scenarios: list[Scenario],
                     decisions: list[Decision], hashes: list[str]) -> None:
    """The same blocks as a campaign run uses them (module doc): CPU seconds per step as well."""
    print("as a campaign run (each customer its own data and decision objects):")
    # each row its own Decision (the campaign builds one per decided touch): no sharing to exploit
    own = [Decision.model_validate(decisions[i % len(VARIANTS)].model_dump()) for i in range(n)]
    c0, t0 = time.process_time(), time.perf_counter()
    composed: list[tuple[Message | Withheld, Message | Withheld]] = []
    for i in range(n):
        sc = scenarios[i % len(VARIANTS)]
        shown = [PRODUCTS[(i * 7 + k) % len(PRODUCTS)] for k in range(3)]
        data = msgs.data(first_name=f"Alex{i % 997}", last_name="Doe", segment=f"shoppers at {msgs.shop}",
                         popular=("Bananas",), categories=("Bakery", "Dairy"), items=tuple(shown),
                         history=("Rye bread",))
        final = compose(msgs.templates, own[i], data, channel=sc.touch.channel,
                        proposed_depth=sc.touch.depth, sender=msgs.shop,
                        neutral_sender=msgs.neutral_sender, sender_reveals=bool(sc.touch.sender_implies))
        proposed = preview(msgs.templates, data, channel=sc.touch.channel, depth=Depth.ITEM, named=True,
                           sender=msgs.shop)
        composed.append((proposed, final))
    t_c, c_c = time.perf_counter() - t0, time.process_time() - c0
    print(f"  compose and preview: {n:,} customers in {t_c:.2f} s wall / {c_c:.2f} s CPU "
          f"({_rate(n, t_c)})")
    with engine.begin() as conn:
        run = outbox.start_run(conn, campaign="bench-run", period="2026-11", policy_name=pack.name,
                               policy_version=pack.version, rules=rule_titles(pack))
    c0, t0 = time.process_time(), time.perf_counter()
    logged = queued = 0
    batch: list[outbox.Decided] = []
    for i in range(n):
        sc = scenarios[i % len(VARIANTS)]
        proposed, final = composed[i]
        item = audit.LoggedDecision(
            customer_id=f"c{i}", touch_id=f"{sc.touch.channel.value}:offer", channel=sc.touch.channel.value,
            decision=own[i], input_hash=hashes[i % len(VARIANTS)], proposed_depth="item",
            withheld=final.reason if isinstance(final, Withheld) else None, proposed=proposed, message=final)
        entry = None if not isinstance(final, Message) else outbox.OutboxEntry(
            campaign="bench-run", customer_id=f"c{i}", touch_id="message", touch_kind="recommendation",
            purpose=sc.touch.purpose, period="2026-11", run_id=run,
            contact_point_id=f"p{i}" if final.channel is Channel.POSTAL_MAIL else f"m{i}", message=final)
        batch.append(outbox.Decided(item, entry))
        if len(batch) == 500 or i == n - 1:
            with engine.begin() as conn:
                a, b = outbox.record(conn, run, batch)
            logged, queued, batch = logged + a, queued + b, []
    t_r, c_r = time.perf_counter() - t0, time.process_time() - c0
    print(f"  decision log and outbox (outbox.record, batches of 500): {logged:,} decisions, {queued:,} "
          f"messages in {t_r:.2f} s wall / {c_r:.2f} s CPU ({_rate(logged, t_r)})")
    c0, t0 = time.process_time(), time.perf_counter()
    page = build(*from_store(engine, run))
    t_p, c_p = time.perf_counter() - t0, time.process_time() - c0
    print(f"  report rebuilt from the store: {n:,} decisions in {t_p:.2f} s wall / {c_p:.2f} s CPU; "
          f"page {len(page) / 1024:,.0f} KiB")
    t0 = time.perf_counter()
    report = audit.verify_chain(engine)
    assert report.ok, report.broken
    print(f"  audit verify of the whole log: {report.rows:,} rows in {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
