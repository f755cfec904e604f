"""Campaign runs and the outbox: messages approved for sending, idempotent by key.

The idempotency key of a message is SHA-256 of (campaign, customer, touch, period): the same campaign
sends one message per customer, touch and period however often it runs, and a crash between writing
and sending never turns into a second row (``INSERT ... ON CONFLICT DO NOTHING`` on the unique key).

Delivery (``tactful.delivery``) reads pending rows with the recipient's contact point, and records the
result here: a sent message becomes a past touch (``touches``), so the frequency caps of the next run
see it; a bounce marks the contact point ``bounced``, so the next run's decision blocks it.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tactful import __version__
from tactful.compose import Message
from tactful.errors import CampaignError, NotFoundError
from tactful.store import audit, bookkeeping, tables
from tactful.store.db import conflict_insert

PENDING, SENT, BOUNCED, FAILED = "pending", "sent", "bounced", "failed"
#: a run's status: running, finished, failed (it stopped on an error), interrupted (its process is gone:
#: killed, or the machine stopped, while it ran)
RUNNING, FINISHED, RUN_FAILED, INTERRUPTED = "running", "finished", "failed", "interrupted"


def mark_interrupted(conn: Connection) -> list[str]:
    """Runs still ``running`` whose process on this host is gone are marked ``interrupted`` (a kill -9
    or a crash of the machine leaves no chance to say so). Runs of other hosts are left as they are:
    this host cannot see their processes. Returns the ids marked."""
    r = tables.campaign_runs
    here = bookkeeping.this_host()
    gone = [row.id for row in conn.execute(sa.select(r.c.id, r.c.host, r.c.pid).where(r.c.status == RUNNING)
                                           .order_by(r.c.id))
            if row.host == here and row.pid is not None
            and not bookkeeping.owner_alive(int(row.pid), row.host, None)]
    if gone:
        conn.execute(r.update().where(r.c.id.in_(gone), r.c.status == RUNNING).values(status=INTERRUPTED))
    return gone


def idempotency_key(campaign: str, customer_id: str, touch_id: str, period: str) -> str:
    """The outbox key: one message per (campaign, customer, touch, period)."""
    text = "\x1f".join((campaign, customer_id, touch_id, period))
    return hashlib.sha256(text.encode()).hexdigest()


def new_run_id(campaign: str, at: datetime | None = None) -> str:
    when = (at or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    slug = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in campaign)[:50]
    return f"{slug}-{when}-{secrets.token_hex(3)}"


def start_run(conn: Connection, *, campaign: str, period: str, policy_name: str, policy_version: str,
              campaign_hash: str | None = None, dry_run: bool = False, run_id: str | None = None,
              at: datetime | None = None, rules: dict[str, str] | None = None) -> str:
    """Record a new campaign run (status ``running``); returns its id.

    Given the ``run_id`` of an unfinished run of the same campaign and period (one that was killed), the
    run is resumed: its decisions and messages so far are kept and will not be written twice. A run
    still running in a live process is not resumed. The run records this host and process, so a run
    killed later is recognised as interrupted (:func:`mark_interrupted`); ``rules`` are the pack's
    rule titles, kept for the report."""
    rid = run_id or new_run_id(campaign, at)
    mark_interrupted(conn)
    me = bookkeeping.owner()
    if run_id is not None:
        old = conn.execute(sa.select(tables.campaign_runs).where(tables.campaign_runs.c.id == run_id)).first()
        if old is not None:
            if (old.campaign, old.period) != (campaign, period):
                raise CampaignError(f"run {run_id} belongs to campaign {old.campaign!r}, period "
                                    f"{old.period}, not {campaign!r}, {period}",
                                    hint="start a new run instead")
            if old.status == RUNNING:
                raise CampaignError(f"run {run_id} is still running (process {old.pid} on {old.host})",
                                    hint="wait for it to finish, or resume it once it was interrupted")
            if old.status == FINISHED:
                raise CampaignError(f"run {run_id} has finished; there is nothing to resume",
                                    hint="run the campaign again without --resume (the outbox key "
                                         "keeps it from sending anyone a second message this period)")
            conn.execute(tables.campaign_runs.update().where(tables.campaign_runs.c.id == run_id)
                         .values(status=RUNNING, finished_at=None, rules=rules, **me))
            return run_id
    conn.execute(tables.campaign_runs.insert().values(
        id=rid, campaign=campaign, campaign_hash=campaign_hash, period=period, policy_name=policy_name,
        policy_version=policy_version, dry_run=dry_run, status="running",
        started_at=at or datetime.now(UTC), tool_version=__version__, rules=rules, **me))
    return rid


def set_summary(conn: Connection, run_id: str, summary: dict[str, Any]) -> None:
    """Record a run's totals before it finishes (the report reads them from the store)."""
    conn.execute(tables.campaign_runs.update().where(tables.campaign_runs.c.id == run_id)
                 .values(summary=summary))


def finish_run(conn: Connection, run_id: str, *, status: str = FINISHED,
               summary: dict[str, Any] | None = None) -> None:
    values: dict[str, Any] = {"status": status, "finished_at": datetime.now(UTC)}
    if summary is not None:
        values["summary"] = summary
    conn.execute(tables.campaign_runs.update().where(tables.campaign_runs.c.id == run_id).values(**values))


@dataclass(frozen=True)
class OutboxEntry:
    """A composed message for one customer and touch, ready to be queued."""

    campaign: str
    customer_id: str
    touch_id: str
    touch_kind: str
    purpose: str
    period: str
    run_id: str
    contact_point_id: str | None
    message: Message
    decision_seq: int | None = None

    @property
    def key(self) -> str:
        return idempotency_key(self.campaign, self.customer_id, self.touch_id, self.period)


def enqueue(conn: Connection, entries: Sequence[OutboxEntry], at: datetime | None = None) -> int:
    """Queue messages; an entry whose key is already in the outbox is skipped. Returns how many were new."""
    if not entries:
        return 0
    when = at or datetime.now(UTC)
    return _insert_new(conn, [_outbox_row(e, e.decision_seq, when) for e in entries])


def _outbox_row(e: OutboxEntry, decision_seq: int | None, when: datetime) -> dict[str, Any]:
    return {
        "idempotency_key": e.key, "campaign": e.campaign, "customer_id": e.customer_id,
        "touch_id": e.touch_id, "period": e.period, "run_id": e.run_id, "decision_seq": decision_seq,
        "touch_kind": e.touch_kind, "message_kind": e.message.kind, "purpose": e.purpose,
        "channel": e.message.channel.value, "contact_point_id": e.contact_point_id,
        "depth": e.message.depth.value, "named": e.message.named, "sender": e.message.sender,
        "subject": e.message.subject, "body": e.message.body, "html": e.message.html,
        "status": PENDING, "attempts": 0, "created_at": when,
    }


def _insert_new(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert outbox rows, skipping those whose key is already there; returns how many were new."""
    if not rows:
        return 0
    stmt = conflict_insert(tables.outbox, conn.dialect)
    # RETURNING gives back only the rows actually inserted: an exact count of new messages on both backends
    stmt = stmt.on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(tables.outbox.c.id)
    return len(conn.execute(stmt, rows).all())


@dataclass(frozen=True)
class Pending:
    """An outbox message with what delivery needs: the address and the customer's name."""

    id: int
    key: str
    campaign: str
    run_id: str
    customer_id: str
    channel: str
    message_kind: str
    contact_point_id: str | None
    address: str | None  # the contact point's value (an email address, a postal address, a phone)
    address_bounced: bool
    first_name: str | None
    last_name: str | None
    named: bool
    sender: str
    subject: str
    body: str
    html: bool
    attempts: int


def pending(engine: Engine, *, run_id: str | None = None, limit: int | None = None,
            campaign: str | None = None, period: str | None = None,
            after: int | None = None) -> list[Pending]:
    """Pending messages (of one run, of one campaign and period, or all), oldest first; with ``after``,
    only those queued after the outbox row of that id (a page of a long outbox)."""
    o, cp, c = tables.outbox, tables.contact_points, tables.customers
    query = (sa.select(o.c.id, o.c.idempotency_key, o.c.campaign, o.c.run_id, o.c.customer_id, o.c.channel,
                       o.c.message_kind, o.c.contact_point_id, cp.c.value, cp.c.bounced, c.c.first_name,
                       c.c.last_name, o.c.named, o.c.sender, o.c.subject, o.c.body, o.c.html, o.c.attempts)
             .select_from(o.outerjoin(cp, cp.c.id == o.c.contact_point_id).join(c, c.c.id == o.c.customer_id))
             .where(o.c.status == PENDING).order_by(o.c.id))
    if run_id is not None:
        query = query.where(o.c.run_id == run_id)
    if campaign is not None:
        query = query.where(o.c.campaign == campaign)
    if period is not None:
        query = query.where(o.c.period == period)
    if after is not None:
        query = query.where(o.c.id > after)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        return [Pending(id=int(r[0]), key=r[1], campaign=r[2], run_id=r[3], customer_id=r[4], channel=r[5],
                        message_kind=r[6], contact_point_id=r[7], address=r[8], address_bounced=bool(r[9]),
                        first_name=r[10], last_name=r[11], named=bool(r[12]), sender=r[13],
                        subject=r[14] or "", body=r[15], html=bool(r[16]), attempts=int(r[17]))
                for r in conn.execute(query)]


def _row(conn: Connection, outbox_id: int) -> sa.Row[Any]:
    row = conn.execute(sa.select(tables.outbox).where(tables.outbox.c.id == outbox_id)).first()
    if row is None:
        raise NotFoundError(f"outbox message {outbox_id} is not in the store")
    return row


@dataclass(frozen=True)
class Outcome:
    """What delivery did with one outbox message: ``status`` is :data:`SENT`, :data:`BOUNCED` or
    :data:`FAILED`; ``error`` says why it did not go out."""

    outbox_id: int
    status: str
    adapter: str
    attempts: int
    error: str | None = None


_OUTCOME_UPDATE = (tables.outbox.update().where(tables.outbox.c.id == sa.bindparam("oid"))
                   .values(status=sa.bindparam("st"), adapter=sa.bindparam("ad"), attempts=sa.bindparam("n"),
                           last_error=sa.bindparam("err"), sent_at=sa.bindparam("at")))


#: outbox ids per IN (...) list: well under SQLite's 32,766 bound parameters
_IDS_PER_STATEMENT = 5_000


def record_outcomes(conn: Connection, outcomes: Sequence[Outcome], at: datetime | None = None) -> None:
    """Record what delivery did with a batch of messages, set-wise in the caller's transaction: the
    outbox rows' status (one executemany), the past touch of each sent message (one INSERT ... SELECT
    from the outbox, a touch already there kept), and the contact points of bounced messages (one
    UPDATE). A crash keeps all of the batch or none of it."""
    if not outcomes:
        return
    for out in outcomes:
        if out.status not in (SENT, BOUNCED, FAILED):
            raise ValueError(f"not a delivery outcome: {out.status!r}")
    when = at or datetime.now(UTC)
    o, t = tables.outbox, tables.touches
    conn.execute(_OUTCOME_UPDATE, [
        {"oid": out.outbox_id, "st": out.status, "ad": out.adapter, "n": out.attempts,
         "err": None if out.status == SENT else out.error, "at": when if out.status == SENT else None}
        for out in outcomes])
    sent = sorted({out.outbox_id for out in outcomes if out.status == SENT})
    for i in range(0, len(sent), _IDS_PER_STATEMENT):
        # each sent message becomes a past touch (frequency caps), named by its outbox key: recording a
        # message twice adds one touch; a permission request counts like the touch it asks about
        source = (sa.select((sa.literal("outbox-") + o.c.idempotency_key).label("id"), o.c.customer_id,
                            o.c.touch_kind, o.c.purpose, o.c.channel, o.c.contact_point_id, o.c.sent_at,
                            o.c.campaign, o.c.sent_at.label("written_at"))
                  .where(o.c.id.in_(sent[i:i + _IDS_PER_STATEMENT]), o.c.status == SENT))
        conn.execute(conflict_insert(t, conn.dialect).from_select(
            ["id", "customer_id", "kind", "purpose", "channel", "contact_point_id", "at", "campaign",
             "written_at"], source).on_conflict_do_nothing(index_elements=["id"]))
    bounced = sorted({out.outbox_id for out in outcomes if out.status == BOUNCED})
    for i in range(0, len(bounced), _IDS_PER_STATEMENT):
        points = sa.select(o.c.contact_point_id).where(o.c.id.in_(bounced[i:i + _IDS_PER_STATEMENT]),
                                                       o.c.contact_point_id.is_not(None))
        conn.execute(tables.contact_points.update().where(tables.contact_points.c.id.in_(points))
                     .values(bounced=True, written_at=datetime.now(UTC)))


def mark_sent(conn: Connection, outbox_id: int, *, adapter: str, attempts: int,
              at: datetime | None = None) -> None:
    """The message went out: record it and add it to the customer's past touches (frequency caps)."""
    _row(conn, outbox_id)
    record_outcomes(conn, [Outcome(outbox_id, SENT, adapter, attempts)], at=at)


def mark_bounced(conn: Connection, outbox_id: int, *, adapter: str, attempts: int, error: str) -> None:
    """The address refused the message for good: the contact point is marked bounced for the next run."""
    _row(conn, outbox_id)
    record_outcomes(conn, [Outcome(outbox_id, BOUNCED, adapter, attempts, error)])


def mark_failed(conn: Connection, outbox_id: int, *, adapter: str, attempts: int, error: str) -> None:
    """Delivery gave up after its retries; the message stays in the outbox as ``failed``."""
    _row(conn, outbox_id)
    record_outcomes(conn, [Outcome(outbox_id, FAILED, adapter, attempts, error)])


def count_pending(engine: Engine, *, run_id: str | None = None, campaign: str | None = None,
                  period: str | None = None) -> int:
    """How many messages :func:`pending` would give with the same filters (no ``limit``)."""
    o = tables.outbox
    query = sa.select(sa.func.count()).select_from(o).where(o.c.status == PENDING)
    for column, value in (("run_id", run_id), ("campaign", campaign), ("period", period)):
        if value is not None:
            query = query.where(o.c[column] == value)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def counts(engine: Engine, run_id: str) -> dict[str, int]:
    """Outbox messages of a run by status."""
    o = tables.outbox
    with engine.connect() as conn:
        return {str(s): int(n) for s, n in conn.execute(
            sa.select(o.c.status, sa.func.count()).where(o.c.run_id == run_id).group_by(o.c.status))}


@dataclass(frozen=True)
class Decided:
    """One decided touch of a run: the decision to log, and the message to queue if one goes out."""

    logged: audit.LoggedDecision
    entry: OutboxEntry | None = None


def record(conn: Connection, run_id: str, batch: Sequence[Decided]) -> tuple[int, int]:
    """Log a batch of decisions and queue their messages in the caller's transaction, so that a crash
    keeps both or neither. Returns (decisions logged or already there, new messages queued).

    A decision the run had already logged (a resumed run) keeps what was logged with it: its message
    was queued in the same transaction, or there was none; a message composed again now is not queued
    beside a logged decision that says otherwise."""
    fresh: set[tuple[str, str]] = set()
    seqs = audit.append(conn, run_id, [d.logged for d in batch], fresh=fresh)
    when = datetime.now(UTC)
    rows = []
    for d in batch:  # each message queued with the seq of the decision it was composed for
        key = (d.logged.customer_id, d.logged.touch_id)
        if d.entry is not None and key in fresh:
            rows.append(_outbox_row(d.entry, seqs[key], when))
    return len(seqs), _insert_new(conn, rows)
