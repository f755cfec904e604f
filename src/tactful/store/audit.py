"""The decision log: every decision a campaign run made, in a tamper-evident hash chain.

Each row of ``decisions`` carries ``prev_hash`` (the previous row's ``row_hash``, or 64 zeros for the
first row) and ``row_hash`` = SHA-256 over the previous hash and the row's content in a canonical JSON
form. The ``proposed`` and ``message`` columns (schema 0004: the message the campaign proposed and
what the decision composed) are covered when present; rows logged before 0004 have neither and hash
exactly as they did. Changing a row changes its hash; removing or inserting a row breaks the link of
the next one.
:func:`verify_chain` recomputes the chain in ``seq`` order and names the first row that does not fit.

Appends are serialised: on PostgreSQL with a transaction-scoped advisory lock, on SQLite by taking the
write lock before the last hash is read. A decision already logged for the same (run, customer, touch)
is not logged again, so a rerun of the same run never duplicates a decision.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tactful.compose import Message, Withheld
from tactful.model import Decision, Scenario
from tactful.store import tables

GENESIS = "0" * 64
_LOCK_KEY = 0x7AC7F01  # the advisory lock that serialises decision-log appends on PostgreSQL
_HASHED = ("seq", "run_id", "customer_id", "touch_id", "channel", "verdict", "max_depth", "named",
           "policy_name", "policy_version", "input_hash", "proposed_depth", "withheld", "decided_at")
_HASHED_IF_SET = ("proposed", "message")  # schema 0004: hashed when not null (older rows have neither)


#: what ``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)``
#: builds on every call, built once (json.dumps makes a new encoder per call with these arguments)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the same data always gives the same text."""
    return _CANONICAL.encode(value)


def input_hash(scenario: Scenario) -> str:
    """SHA-256 of the scenario that was judged (its canonical JSON): replaying it gives the same hash."""
    return hashlib.sha256(canonical_json(scenario.model_dump(mode="json")).encode()).hexdigest()


def composed_record(item: Message | Withheld | None) -> dict[str, Any] | None:
    """A composed message (or why nothing was sent) as the JSON the decision log stores."""
    if item is None:
        return None
    if isinstance(item, Message):
        return {"type": "message", "kind": item.kind, "slot": item.slot, "depth": item.depth.value,
                "named": item.named, "channel": item.channel.value, "sender": item.sender,
                "subject": item.subject, "body": item.body, "html": item.html}
    return {"type": "withheld", "code": item.code, "reason": item.reason, "rules": list(item.rules)}


def composed_from_record(record: Any) -> Message | Withheld | None:
    """The inverse of :func:`composed_record`; ``None`` for a missing record. A record that is not
    one raises ValueError (the caller names the row)."""
    from tactful.vocab import Channel, Depth

    if record is None:
        return None
    if not isinstance(record, dict):
        raise ValueError(f"expected a message record, got {type(record).__name__}")
    try:
        if record["type"] == "message":
            return Message(kind=record["kind"], slot=str(record["slot"]), depth=Depth(record["depth"]),
                           named=bool(record["named"]), channel=Channel(record["channel"]),
                           sender=str(record["sender"]), subject=str(record["subject"]),
                           body=str(record["body"]), html=bool(record["html"]))
        if record["type"] == "withheld":
            return Withheld(code=record["code"], reason=str(record["reason"]),
                            rules=tuple(str(r) for r in record.get("rules") or ()))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"a message record lacks or garbles {exc}") from None
    raise ValueError(f"unknown message record type {record.get('type')!r}")


def _time(value: datetime) -> str:
    """A timestamp as the chain hashes it: UTC, microseconds, no offset (SQLite returns naive UTC)."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.replace(tzinfo=None).isoformat(timespec="microseconds")


def row_hash(prev_hash: str, row: dict[str, Any], reasons_json: str | None = None) -> str:
    """SHA-256 of the previous hash, the row's fields and its reasons, each in canonical JSON.
    ``reasons_json`` may be given precomputed (many rows share one decision's reasons)."""
    content = {k: (_time(row[k]) if k == "decided_at" else row[k]) for k in _HASHED}
    content["named"] = bool(content["named"])
    content["seq"] = int(content["seq"])
    for k in _HASHED_IF_SET:
        if row.get(k) is not None:
            content[k] = row[k]
    reasons = canonical_json(row["reasons"]) if reasons_json is None else reasons_json
    return _chain_hash(prev_hash, content, reasons)


def _chain_hash(prev_hash: str, content: dict[str, Any], reasons_json: str) -> str:
    return hashlib.sha256(f"{prev_hash}{_CANONICAL.encode(content)}\n{reasons_json}".encode()).hexdigest()


@dataclass(frozen=True)
class LoggedDecision:
    """One decision to log: the engine's decision and what it was about."""

    customer_id: str
    touch_id: str
    channel: str
    decision: Decision
    input_hash: str
    proposed_depth: str | None = None  # the depth the campaign proposed
    withheld: str | None = None  # why nothing was sent, when nothing was
    proposed: Message | Withheld | None = None  # the message the campaign proposed (report)
    message: Message | Withheld | None = None  # what this decision composed (report)


def _lock(conn: Connection, run_id: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))
    else:
        # SQLite: a write takes the database's write lock now, so no other writer can append between
        # reading the last hash and inserting after it.
        conn.execute(tables.campaign_runs.update().where(tables.campaign_runs.c.id == run_id)
                     .values(status=tables.campaign_runs.c.status))


def append(conn: Connection, run_id: str, items: Sequence[LoggedDecision],
           at: datetime | None = None, *, fresh: set[tuple[str, str]] | None = None
           ) -> dict[tuple[str, str], int]:
    """Log ``items`` for ``run_id`` (inside the caller's transaction); returns their seq numbers,
    including those of decisions this run had already logged (which are not logged twice). ``fresh``,
    when given, receives the (customer, touch) keys logged by this call."""
    if not items:
        return {}
    d = tables.decisions
    _lock(conn, run_id)
    keys = {(i.customer_id, i.touch_id) for i in items}
    customers = sorted({c for c, _ in keys})
    seqs: dict[tuple[str, str], int] = {}
    for start in range(0, len(customers), 500):
        chunk = customers[start:start + 500]
        for cid, tid, seq in conn.execute(sa.select(d.c.customer_id, d.c.touch_id, d.c.seq).where(
                d.c.run_id == run_id, d.c.customer_id.in_(chunk))):
            if (cid, tid) in keys:
                seqs[(cid, tid)] = int(seq)
    last = conn.execute(sa.select(d.c.seq, d.c.row_hash).order_by(d.c.seq.desc()).limit(1)).first()
    seq, prev = (int(last[0]), str(last[1])) if last else (0, GENESIS)
    when = at or datetime.now(UTC)
    when_text = _time(when)  # the hashed form of decided_at: one per call
    rows: list[dict[str, Any]] = []
    # the reasons dumped once per distinct decision object, and once per distinct reasons: decisions
    # built apart from one another often give equal reasons (a rule's title); equal fields (the
    # frozen models' values, their types) dump to equal JSON
    dumped: dict[int, tuple[list[dict[str, Any]], str]] = {}
    by_value: dict[tuple[Any, ...], tuple[list[dict[str, Any]], str]] = {}
    for item in items:
        key = (item.customer_id, item.touch_id)
        if key in seqs:
            continue
        seq += 1
        dec = item.decision
        if id(dec) not in dumped:
            value = tuple((type(r), *r.__dict__.values()) for r in dec.reasons)
            if value not in by_value:
                dumps = [r.model_dump(mode="json") for r in dec.reasons]
                by_value[value] = (dumps, canonical_json(dumps))
            dumped[id(dec)] = by_value[value]
        reasons, reasons_json = dumped[id(dec)]
        proposed, message = composed_record(item.proposed), composed_record(item.message)
        verdict, max_depth = dec.verdict.value, dec.max_depth.value
        policy_name, policy_version = dec.policy.name, dec.policy.version
        # what row_hash hashes for this row (tests/test_audit_exact.py pins that the two agree)
        content: dict[str, Any] = {
            "seq": int(seq), "run_id": run_id, "customer_id": item.customer_id, "touch_id": item.touch_id,
            "channel": item.channel, "verdict": verdict, "max_depth": max_depth, "named": bool(dec.named),
            "policy_name": policy_name, "policy_version": policy_version, "input_hash": item.input_hash,
            "proposed_depth": item.proposed_depth, "withheld": item.withheld, "decided_at": when_text,
        }
        if proposed is not None:
            content["proposed"] = proposed
        if message is not None:
            content["message"] = message
        digest = _chain_hash(prev, content, reasons_json)
        rows.append({
            "seq": seq, "run_id": run_id, "customer_id": item.customer_id, "touch_id": item.touch_id,
            "channel": item.channel, "verdict": verdict, "max_depth": max_depth,
            "named": dec.named, "reasons": reasons,
            "policy_name": policy_name, "policy_version": policy_version,
            "input_hash": item.input_hash, "proposed_depth": item.proposed_depth,
            "withheld": item.withheld, "decided_at": when,
            "proposed": proposed, "message": message, "prev_hash": prev, "row_hash": digest,
        })
        prev = digest
        seqs[key] = seq
        if fresh is not None:
            fresh.add(key)
    if rows:
        conn.execute(d.insert(), rows)
    return seqs


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    run_id: str
    customer_id: str
    touch_id: str
    problem: str


@dataclass(frozen=True)
class ChainReport:
    rows: int
    head: str  # the last row's hash (or GENESIS for an empty log)
    broken: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.broken is None


def _rows(engine: Engine, batch: int) -> Iterator[dict[str, Any]]:
    d = tables.decisions
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=batch).execute(
            sa.select(d).order_by(d.c.seq))
        for row in result.mappings():
            yield dict(row)


def verify_chain(engine: Engine, *, batch: int = 5000) -> ChainReport:
    """Recompute the chain in seq order; the first row whose link or content does not fit is named."""
    prev = GENESIS
    expected_seq = 1
    count = 0
    for row in _rows(engine, batch):
        count += 1
        where = (int(row["seq"]), str(row["run_id"]), str(row["customer_id"]), str(row["touch_id"]))
        if int(row["seq"]) != expected_seq:
            return ChainReport(count, prev, ChainBreak(*where, problem=(
                f"expected row {expected_seq} next, found row {row['seq']}: rows are missing before it")))
        if row["prev_hash"] != prev:
            return ChainReport(count, prev, ChainBreak(*where, problem=(
                "its link to the previous row does not match: the previous row was changed, removed "
                "or a row was inserted before it")))
        if row_hash(prev, row) != row["row_hash"]:
            return ChainReport(count, prev, ChainBreak(*where, problem=(
                "its content does not match its hash: the row was changed after it was logged")))
        prev = str(row["row_hash"])
        expected_seq += 1
    return ChainReport(count, prev, None)
