"""Benchmark: the campaign building blocks after the decision (not a test).

For N customers (default 100,000) with real decisions of the default pack (ten scenario variants:
allowed, softened, asked, blocked, decided once each and reused, since the evaluators have their own
benchmarks), measures on a fresh store:

* compose: choosing and rendering the template for each decision (messages/s),
* decision log: appending the hash-chained rows in batches of 10,000 (rows/s), and verifying the chain,
* outbox: queueing the messages in batches (rows/s), and queueing them all again (the idempotent no-op),
* delivery to .eml files and to the print-shop CSV for the first --deliver messages (messages/s, each
  recorded as sent with its past touch),
* the run report for all N rows (seconds, page size).

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

from tactful.compose import Message, compose, demo_messages, preview
from tactful.delivery import EmlDirectory, PrintShopCsv, RetryPolicy, deliver
from tactful.policy import evaluate, load_pack
from tactful.policy.testing import fact, scenario
from tactful.report import ReportRow, RunInfo, build, rule_titles
from tactful.store import audit, db, outbox, tables
from tactful.vocab import Channel

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
        t0 = time.perf_counter()
        result = deliver(engine, [EmlDirectory(tmp / "eml"), PrintShopCsv(tmp / "print")], run_id=run,
                         retry=RetryPolicy(attempts=1))
        t_del = time.perf_counter() - t0
        print(f"delivery to files: {result.total:,} messages in {t_del:.2f} s "
              f"({_rate(result.total, t_del)}); {dict(result.counts)}")

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
        engine.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)



if __name__ == "__main__":
    main()
