"""``tactful batch decide``: candidates in, decisions out.

1. **read**: the candidates table (:mod:`tactful.batch.candidates`), each row validated as a touch (a
   bad row is kept aside with its error) and typed (:data:`tactful.batch.producers.CANDIDATE_SCHEMA`);
2. **features**, inside the backend: the typed candidates and the store, attached read-only, go
   through the Ibis feature producers (:func:`tactful.batch.producers.feature_frame`) to the feature
   frame, one row per candidate. The *reference* path (``reference=True``, ``--reference``) builds the
   same frame in Python instead: each candidate's scenario from the store
   (:class:`tactful.realtime.StoreScenarioBuilder`) and its features derived
   (:func:`tactful.features.derive`), row by row;
3. **policy**: the compiled pack (:mod:`tactful.policy.compile`) over the frame, in the same query,
   with the rule ids as bit masks, and the **input hash** of every row (:func:`input_hash_expr`);
4. **decisions**: ``customer_id``, ``touch_id``, ``verdict``, ``max_depth``, ``named``,
   ``fired_rules``, ``failed_rules``, ``policy_name``, ``policy_version``, ``input_hash`` and
   ``error``, in input order; the masks named once per distinct mask.

The input hash is the SHA-256 (hex) of the candidate's feature row in a canonical text
(:func:`feature_text`): what the policy judged, computed in the backend, and equal on both paths
whenever their frames are.

Fail closed: a candidate whose touch is invalid (or, on the reference path, whose scenario cannot be
built) is decided ``block`` with ``fired_rules = evaluation-error`` and its error, and the run goes on;
a feature the backend cannot compute is NULL, and a NULL blocks.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
from sqlalchemy import Connection

from tactful.batch.backends import BACKENDS, check_backend, open_backend
from tactful.batch.candidates import Candidate, candidates, check_columns, read_table
from tactful.batch.frame import frame_from_values
from tactful.batch.producers import CANDIDATE_SCHEMA, candidate_row, feature_frame
from tactful.batch.store import AttachedStore
from tactful.errors import BatchError, TactfulError
from tactful.features import FEATURES, Features, FType, derive
from tactful.files import open_new_private_file
from tactful.model import Reason, Scenario
from tactful.policy import Pack
from tactful.policy.compile import RULE_SEPARATOR, CompiledPack, compile_pack
from tactful.policy.evaluate import EVALUATION_ERROR, explain_fired
from tactful.realtime import (
    MAX_ORDER_LINES,
    OrderRead,
    StoreScenarioBuilder,
    scenario_document,
    too_many_lines,
)
from tactful.vocab import Depth, Verdict

DECISIONS_SCHEMA = pa.schema([
    ("customer_id", pa.string()), ("touch_id", pa.string()), ("verdict", pa.string()),
    ("max_depth", pa.string()), ("named", pa.bool_()), ("fired_rules", pa.string()),
    ("failed_rules", pa.string()), ("policy_name", pa.string()), ("policy_version", pa.string()),
    ("input_hash", pa.string()), ("error", pa.string()),
])


@dataclass
class RunResult:
    decisions: pa.Table
    backend: str
    seconds: dict[str, float] = field(default_factory=dict)
    #: per decision row, the SHA-256 of the judged scenario document (reference path only, else None)
    scenario_hashes: list[str | None] = field(default_factory=list)
    #: "backend" (the frame built inside the backend) or "reference" (built in Python)
    path: str = "backend"
    #: with ``explain``: per decision row, the reasons of the rules that fired with their messages
    #: filled as the real-time engine fills them (None for a row that could not be judged)
    reasons: list[tuple[Reason, ...] | None] | None = None

    @property
    def by_verdict(self) -> Counter[str]:
        return Counter(self.decisions.column("verdict").to_pylist())

    @property
    def by_rule(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for cell in self.decisions.column("fired_rules").to_pylist():
            counts.update(r for r in (cell or "").split(RULE_SEPARATOR) if r)
        return counts

    @property
    def errors(self) -> list[str]:
        return [e for e in self.decisions.column("error").to_pylist() if e]


def input_hash(document: dict[str, Any]) -> str:
    """SHA-256 of the scenario document in canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class RunScenarioBuilder(StoreScenarioBuilder):
    """A scenario builder for several batch calls over a store that does not change meanwhile (one
    campaign run decides each customer once per channel tried): a customer's orders, profile (customer,
    contact points, consents, facts, recent touches) and the shown products are read once and reused,
    since every channel's touch reaches the same rows; :meth:`prefetch_orders` reads the orders the
    run's touches name for all customers at once. Give a new one to each run."""

    def __init__(self, pack: Pack) -> None:
        super().__init__(pack)
        self._orders_seen: dict[tuple[str, datetime | None, bool, tuple[str, ...]],
                                dict[str, dict[str, Any]]] = {}
        self._profiles: dict[tuple[str, datetime, datetime], Sequence[Any]] = {}
        self._by_id: dict[str, OrderRead] = {}
        self._products: dict[str, Any] = {}  # products rows read for shown items (None: not in the store)

    def prefetch_orders(self, conn: Connection, order_ids: Iterable[str]) -> None:
        """Read the orders a run's touches will name by id in a few queries, for all customers at once
        (instead of one query per customer): a touch that names only prefetched orders is served from
        them, exactly as the per-customer query would (the same orders, order and line ceiling)."""
        self._by_id.update(self.orders_by_id(conn, order_ids))

    def _orders(self, conn: Connection, customer_id: str, since: datetime | None, all_orders: bool,
                ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        key = (customer_id, since, all_orders, tuple(sorted(set(ids))))
        hit = self._orders_seen.get(key)
        if hit is None:
            hit = self._prefetched(customer_id, since, all_orders, key[3])
        if hit is None:
            hit = super()._orders(conn, customer_id, since, all_orders, key[3])
        self._orders_seen[key] = hit
        return hit

    def _prefetched(self, customer_id: str, since: datetime | None, all_orders: bool,
                    ids: tuple[str, ...]) -> dict[str, dict[str, Any]] | None:
        if all_orders or since is not None or not ids or any(i not in self._by_id for i in ids):
            return None
        # in the per-customer query's order: time, then the store's order of ids (its position)
        mine = sorted((r.entry["at"], r.position, i) for i in ids
                      if (r := self._by_id[i]).customer_id == customer_id)
        if sum(self._by_id[i].rows for _, _, i in mine) > MAX_ORDER_LINES:
            raise too_many_lines(customer_id)
        return {i: self._by_id[i].entry for _, _, i in mine}

    def _product_rows(self, conn: Connection, ids: Sequence[str]) -> dict[str, Any]:
        missing = [i for i in ids if i not in self._products]
        if missing:
            found = super()._product_rows(conn, missing)
            self._products.update({i: found.get(i) for i in missing})  # None: no such product
        return {i: row for i in ids if (row := self._products[i]) is not None}

    def _profile(self, conn: Connection, customer_id: str, since: datetime, now: datetime) -> Sequence[Any]:
        key = (customer_id, since, now)  # the same for every channel of a run
        hit = self._profiles.get(key)
        if hit is None:
            hit = self._profiles[key] = super()._profile(conn, customer_id, since, now)
        return hit


#: The text of a NULL cell in :func:`feature_text`.
NULL_TEXT = "\\N"


def _escape(text: str) -> str:
    """A free-text value on one line: backslashes doubled, line breaks as ``\\n``."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def feature_text(values: Mapping[str, Any]) -> str:
    """The canonical text of a feature row that :func:`input_hash_expr` hashes: one line per feature
    of the catalogue, in catalogue order, holding its value (booleans ``true``/``false``, integers in
    decimal, enum values as they are, free text — ``purpose``, ``sender`` — with backslashes doubled and
    line breaks written ``\\n``) or ``\\N`` when the value is NULL. The names are not written (the
    catalogue's order says which line is which): the text is a third as long, and DuckDB builds it
    about three times faster."""
    lines = []
    for name, feature in FEATURES.items():
        v = values.get(name)
        v = v.value if isinstance(v, Enum) else v
        if v is None:
            lines.append(NULL_TEXT)
        elif isinstance(v, bool):
            lines.append("true" if v else "false")
        elif feature.type is FType.TEXT:
            lines.append(_escape(str(v)))
        else:
            lines.append(str(v))
    return "\n".join(lines)


def feature_hash(values: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of :func:`feature_text`: the input hash computed in Python."""
    return hashlib.sha256(feature_text(values).encode("utf-8")).hexdigest()


def input_hash_expr(frame: Any) -> Any:
    """The input hash of every row of a feature frame, as an Ibis expression the backend computes:
    SHA-256 of :func:`feature_text` (tests/test_batch_hash.py checks that the two agree)."""
    parts: list[Any] = []
    for name, feature in FEATURES.items():
        col = frame[name]
        if feature.type is FType.TEXT:
            text = col.replace("\\", "\\\\").replace("\n", "\\n")
        else:  # DuckDB writes a boolean as true / false, an integer in decimal
            text = col.cast("string")
        parts.append(text.fill_null(NULL_TEXT))
    # one concat_ws over the lines (none is NULL): a chain of || copies the growing text 52 times
    return ibis.literal("\n").join(parts).hexdigest("sha256")


def resolve_now(cand: Candidate, now: datetime | None, started: datetime) -> datetime:
    """A row's evaluation time: ``--now``, else the row's ``now``, else the start of the run (one
    time for the whole run, so both paths judge the same moment)."""
    return now or (cand.touch.now if cand.touch is not None else None) or started


def decide_candidates(path: Path | pa.Table, pack: Pack, *, db: str | None = None, backend: str = "duckdb",
                      now: datetime | None = None, threads: int | None = None,
                      progress: Callable[[int], None] | None = None,
                      builder: StoreScenarioBuilder | None = None,
                      reference: bool | None = None, explain: bool = False,
                      source: str | None = None, memory_limit: str | None = None) -> RunResult:
    """Decide every candidate of the file at ``path``, or of an Arrow table of the same columns (a
    caller that made the candidates itself hands them over without a file; ``source`` names them in
    errors), see the module doc.

    ``reference`` builds the feature frame in Python (the reference path); by default it is used when
    the backend cannot build the frame itself (:data:`tactful.batch.backends.BACKENDS`) or a
    ``builder`` is given (made for ``pack``: several calls of one run share what it has read).

    With ``explain``, the result also carries each decision's reasons in plain words
    (:func:`tactful.policy.evaluate.explain_fired` on the Python features of the row: the reference
    path keeps those it derived; the in-backend path derives them, with ``builder`` when given, for
    the rows where a rule fired, since the messages name facts the frame does not carry).

    ``threads`` and ``memory_limit`` (e.g. ``"3GB"``) bound DuckDB; the in-backend path works in a
    database file of a private temporary directory and spills there past the limit."""
    check_backend(backend, db=db)  # a backend that cannot serve the run fails before any work
    compiled = compile_pack(pack)  # and so does a pack the compiler cannot run
    if reference is None:
        reference = builder is not None or not BACKENDS[backend].builds_features
    elif not reference and not BACKENDS[backend].builds_features:
        raise BatchError(f"the {backend} backend does not build the feature frame from the store",
                         hint="use --reference (the frame is then built in Python), or --backend duckdb")
    started = time.perf_counter()
    t0 = datetime.now(UTC)
    if isinstance(path, pa.Table):
        table, name = check_columns(path, source or "<candidates>"), source or "<candidates>"
    else:
        table, name = read_table(path), str(path)
    rows = list(candidates(table, name))
    failed: dict[int, str] = {c.row: c.error or "invalid candidate" for c in rows if c.touch is None}
    good = [c for c in rows if c.touch is not None]
    seconds: dict[str, float] = {}
    kept: dict[int, Features] | None = {} if explain else None  # row -> its features
    if reference:
        result, failed_more, scenario_hashes = _reference(name, good, pack, compiled, db, backend, now,
                                                          t0, threads, progress, builder, kept)
        failed.update(failed_more)
        seconds["read, features (Python) and policy"] = time.perf_counter() - started
    else:
        typed = typed_candidates([(c, resolve_now(c, now, t0)) for c in good])
        if progress is not None:
            progress(len(rows))
        seconds["read"] = time.perf_counter() - started
        result = _in_backend(typed, pack, compiled, db, threads, seconds, memory_limit) if good else None
        scenario_hashes = {}
    started = time.perf_counter()
    decisions = assemble(rows, failed, result, compiled, pack)
    seconds["decisions"] = time.perf_counter() - started
    hashes = [scenario_hashes.get(c.row) for c in rows]
    reasons = None
    if kept is not None:
        started = time.perf_counter()
        reasons = _explain(rows, decisions, pack, kept, db, now, t0, builder)
        seconds["reasons"] = time.perf_counter() - started
    return RunResult(decisions, backend, seconds, hashes, "reference" if reference else "backend",
                     reasons)


def _explain(rows: Sequence[Candidate], decisions: pa.Table, pack: Pack,
             kept: dict[int, Features], db: str | None, now: datetime | None, t0: datetime,
             builder: StoreScenarioBuilder | None) -> list[tuple[Reason, ...] | None]:
    """Each decision's reasons in plain words (None for a row that could not be judged). A row whose
    features ``kept`` lacks (the in-backend path) and where a rule fired has them derived here."""

    fired_col = decisions.column("fired_rules").to_pylist()
    failed_col = decisions.column("failed_rules").to_pylist()
    errors = decisions.column("error").to_pylist()
    need = [c for c, f, e in zip(rows, fired_col, errors, strict=True)
            if e is None and f and c.row not in kept and c.touch is not None]
    if need:
        for cand, _, derived in _derived(need, pack, db, now, t0, builder):
            if not isinstance(derived, Exception):  # else the decision stands; its reasons fall
                kept[cand.row] = derived              # back to rule titles
    out: list[tuple[Reason, ...] | None] = []
    for cand, f, bad_cell, e in zip(rows, fired_col, failed_col, errors, strict=True):
        if e is not None:
            out.append(None)
            continue
        fired = [r for r in (f or "").split(RULE_SEPARATOR) if r]
        if not fired:
            out.append(())
            continue
        feats = kept.get(cand.row)
        if feats is None:
            out.append(None)
            continue
        bad = {r: "its inputs were missing" for r in (bad_cell or "").split(RULE_SEPARATOR) if r}
        out.append(explain_fired(pack, feats, fired, bad)[0])
    return out


def typed_candidates(rows: Sequence[tuple[Candidate, datetime]]) -> pa.Table:
    """The valid candidates as the typed table the Ibis producers read (``row`` is the candidate's row
    number in its file)."""
    schema = ibis.schema(CANDIDATE_SCHEMA).to_pyarrow()
    return pa.Table.from_pylist([candidate_row(c.row, c.customer_id, c.touch.touch, when)
                                 for c, when in rows if c.touch is not None], schema=schema)


#: Customers per block of the in-backend frame: the frame is built block by block (each block's
#: customers' rows cut from the store read once), so that a run's memory does not grow with the
#: number of customers (a 1 M-customer frame built whole spilled 19 GB and more to disk).
BLOCK_CUSTOMERS = 200_000


def decide_typed(con: Any, store: AttachedStore, typed: Any, pack: Pack,
                 compiled: CompiledPack | None = None,
                 seconds: dict[str, float] | None = None, *,
                 block_customers: int | None = None) -> pa.Table:
    """Decide the typed candidates ``typed`` (an Ibis table on the DuckDB connection ``con``) against
    the attached ``store``, all inside DuckDB: the feature frame (:func:`build_frame`), then the
    compiled policy and the input hashes over it. Returns ``row``, ``customer_id``, ``input_hash``,
    the decision columns with rule masks and ``customer_known``. ``seconds`` receives the time of each
    step (``read`` and ``features``: see :func:`build_frame`; ``policy``: the decisions, transferred to
    Arrow)."""
    compiled = compiled or compile_pack(pack)
    seconds = seconds if seconds is not None else {}
    frame = build_frame(con, store, typed, pack.settings, seconds, block_customers=block_customers)
    t0 = time.perf_counter()
    # a customer missing from the store has NULL features (so it blocks); say why, as the reference
    # path does
    known = typed.select("row", customer_known=typed.customer_id.isin(store.table("customers").id))
    out: pa.Table = decide_frame(frame, compiled).join(known, "row").to_pyarrow()
    seconds["policy"] = time.perf_counter() - t0
    con.raw_sql("DROP TABLE IF EXISTS tactful_frame")
    return out


def build_frame(con: Any, store: AttachedStore, typed: Any, settings: Any,
                seconds: dict[str, float] | None = None, *, block_customers: int | None = None) -> Any:
    """The feature frame of the typed candidates as the table ``tactful_frame`` of ``con``: the
    store's rows of the candidates' customers read once (:func:`tactful.batch.producers.scoped_store`),
    then the Ibis producers block by block (at most ``block_customers``, default
    :data:`BLOCK_CUSTOMERS`, customers each, numbered in id order). ``seconds`` receives ``read`` (the
    store's rows) and ``features`` (the blocks)."""
    from tactful.batch.producers import scoped_store
    from tactful.batch.store import materialize

    seconds = seconds if seconds is not None else {}
    t0 = time.perf_counter()
    whole = scoped_store(store, typed, with_lines=True)
    size = max(1, block_customers or BLOCK_CUSTOMERS)
    # the candidates' customers numbered in id order: block b holds numbers [b * size, (b + 1) * size)
    ids = typed.select("customer_id").distinct()
    ids = materialize(con, ids.mutate(block=ibis.row_number().over(order_by=ids.customer_id) // size))
    customers = int(ids.count().to_pyarrow().as_py())
    blocks = max(1, -(-customers // size))
    seconds["read"] = seconds.get("read", 0.0) + time.perf_counter() - t0
    t0 = time.perf_counter()
    con.raw_sql("DROP TABLE IF EXISTS tactful_frame")
    frame = None
    for block in range(blocks):
        part = typed if blocks == 1 else materialize(
            con, typed.semi_join(ids.filter(ids.block == block), "customer_id"))
        features = feature_frame(part, whole, settings)
        if frame is None:  # in the run's database file when it has one
            frame = con.create_table("tactful_frame", features)
        else:
            con.insert("tactful_frame", features)
    seconds["features"] = time.perf_counter() - t0
    return frame


def decide_frame(frame: Any, compiled: CompiledPack, *, hashed: bool = True) -> Any:
    """The decisions query over a feature frame (``row``, ``customer_id`` and the features), with the
    input hash of every row computed in the backend unless ``hashed`` is false."""
    if not hashed:
        return compiled.decide(frame, keep=["row", "customer_id"], rule_ids="masks")
    frame = frame.mutate(input_hash=input_hash_expr(frame))
    return compiled.decide(frame, keep=["row", "customer_id", "input_hash"], rule_ids="masks")


def _in_backend(typed: pa.Table, pack: Pack, compiled: CompiledPack, db: str | None,
                threads: int | None, seconds: dict[str, float], memory_limit: str | None = None) -> pa.Table:
    from tactful.batch.store import attach_store, connect
    from tactful.files import private_workdir

    # DuckDB works in a database file of a private directory (owner-only: it holds the customers'
    # rows), so that what the frame materializes can leave memory; removed with the directory (and,
    # when a run was killed, by the next run)
    with private_workdir("tactful-batch-") as work:
        con = connect(threads=threads, memory_limit=memory_limit, workdir=work)
        try:
            store = attach_store(con, db)
            con.con.register("tactful_candidates", typed)
            return decide_typed(con, store, con.table("tactful_candidates"), pack, compiled, seconds)
        finally:
            con.disconnect()


def decide_typed_rows(con: Any, store: AttachedStore, typed: pa.Table, pack: Pack,
                      compiled: CompiledPack | None = None, seconds: dict[str, float] | None = None,
                      *, touch_ids: Sequence[str] | None = None) -> pa.Table:
    """Decide a typed candidates table (:data:`~tactful.batch.producers.CANDIDATE_SCHEMA`, rows
    numbered 1..N in ``row``) on an open DuckDB connection and store — a caller that made the typed
    rows itself from touches it built (a campaign), and reads the store many times (a store copied
    once: :func:`tactful.batch.store.copy_store`). Returns the decisions table in row order, each row's
    ``touch_id`` from ``touch_ids`` (default: the channel). The tables the frame materializes on
    ``con`` are dropped afterwards, so a run can call this block after block on one connection."""
    compiled = compiled or compile_pack(pack)
    before = set(con.list_tables())
    name = f"tactful_typed_{uuid.uuid4().hex}"
    con.con.register(name, typed)
    try:
        decided = decide_typed(con, store, con.table(name), pack, compiled, seconds)
    finally:
        con.con.unregister(name)
        for table in set(con.list_tables()) - before:
            if table.startswith("tactful_"):  # the frame's (Ibis keeps its memtables as views)
                con.drop_table(table, force=True)
    ids = typed.column("customer_id").to_pylist()
    touches = list(touch_ids) if touch_ids is not None else typed.column("channel").to_pylist()
    rows = [Candidate(n, cid, str(t), None, None)
            for n, (cid, t) in enumerate(zip(ids, touches, strict=True), start=1)]
    t0 = time.perf_counter()
    out = assemble(rows, {}, decided, compiled, pack)
    if seconds is not None:
        seconds["decisions"] = seconds.get("decisions", 0.0) + time.perf_counter() - t0
    return out


def explain_candidates(cands: Sequence[Candidate], decisions: pa.Table, pack: Pack, *, db: str | None,
                       now: datetime, builder: StoreScenarioBuilder | None = None,
                       ) -> list[tuple[Reason, ...] | None]:
    """The reasons in plain words of already decided candidates (``decisions`` in the same order):
    each one's scenario built from the store and its features derived in Python, the fired rules'
    messages filled from them; None for a row that could not be judged or rebuilt."""
    return _explain(cands, decisions, pack, {}, db, now, now, builder)


def _derived(cands: Sequence[Candidate], pack: Pack, db: str | None, now: datetime | None, t0: datetime,
             builder: StoreScenarioBuilder | None,
             ) -> Iterator[tuple[Candidate, Scenario | None, Features | Exception]]:
    """Each candidate's scenario from the store (one connection for all) and its features derived in
    Python, or the exception that stopped it: the caller says what a failure means."""
    from tactful.store.db import open_store

    builder = builder or StoreScenarioBuilder(pack)
    engine = open_store(db)
    try:
        with engine.connect() as conn:
            for cand in cands:
                assert cand.touch is not None
                try:
                    when = resolve_now(cand, now, t0)
                    scenario = builder.scenario(conn, cand.customer_id, cand.touch, when)
                    feats = derive(scenario, pack.settings)
                except Exception as exc:
                    yield cand, None, exc
                    continue
                yield cand, scenario, feats
    finally:
        engine.dispose()


def _reference(path: str | Path, good: Sequence[Candidate], pack: Pack, compiled: CompiledPack,
               db: str | None, backend: str, now: datetime | None, t0: datetime, threads: int | None,
               progress: Callable[[int], None] | None, builder: StoreScenarioBuilder | None,
               kept: dict[int, Features] | None = None,
               ) -> tuple[pa.Table | None, dict[int, str], dict[int, str]]:
    """The reference path: every valid candidate's scenario from the store and its features derived in
    Python; the frame then decided by ``backend``. Also the SHA-256 of each judged scenario document
    (what ``tactful scenario export`` writes), for the campaign's decision log."""

    failed: dict[int, str] = {}
    values: list[tuple[int, str, Any]] = []
    scenario_hashes: dict[int, str] = {}
    for cand, scenario, feats in _derived(good, pack, db, now, t0, builder):
        if isinstance(feats, TactfulError):
            failed[cand.row] = f"{path}: row {cand.row}: {' '.join(feats.message.split())}"
        elif isinstance(feats, Exception):  # fail closed: the row is blocked, the run goes on
            failed[cand.row] = f"{path}: row {cand.row}: {type(feats).__name__}: {feats}"
        else:
            assert scenario is not None
            scenario_hashes[cand.row] = input_hash(scenario_document(scenario))
            values.append((cand.row, cand.customer_id, feats.values))
            if kept is not None:
                kept[cand.row] = feats
        if progress is not None:
            progress(1)
    if not values:
        return None, failed, scenario_hashes
    frame = frame_from_values((c, v) for _, c, v in values)
    frame = frame.set_column(0, "row", pa.array([r for r, _, _ in values], type=pa.int64()))
    with open_backend(backend, db=db, threads=threads) as session:
        out: pa.Table = decide_frame(session.table(frame), compiled, hashed=False).to_pyarrow()
    # the input hash of the same feature rows, computed here (SHA-256 is not an Ibis operation on
    # every backend; tests check that feature_hash and input_hash_expr agree)
    digest = {row: feature_hash(v) for row, _, v in values}
    out = out.append_column("input_hash", pa.array([digest[r] for r in out.column("row").to_pylist()],
                                                    type=pa.string()))
    return out, failed, scenario_hashes


def assemble(rows: Sequence[Candidate], failed: Mapping[int, str], decided: pa.Table | None,
             compiled: CompiledPack, pack: Pack) -> pa.Table:
    """The decisions table, one row per candidate in input order: the backend's decisions (masks
    named), and ``block`` / ``evaluation-error`` with the error for every row that has none."""
    n = len(rows)
    index = {c.row: i for i, c in enumerate(rows)}
    verdict: list[Any] = [Verdict.BLOCK.value] * n
    depth: list[Any] = [Depth.NONE.value] * n
    named: list[Any] = [False] * n
    fired: list[Any] = [EVALUATION_ERROR] * n
    failed_rules: list[Any] = [""] * n
    hashes: list[Any] = [None] * n
    errors: list[Any] = [failed.get(c.row, "no decision came back for this row") for c in rows]
    if decided is not None and decided.num_rows:
        named_t = compiled.names_from_masks(decided)
        at = [index[r] for r in named_t.column("row").to_pylist()]
        for name, target in (("verdict", verdict), ("max_depth", depth), ("named", named),
                             ("fired_rules", fired), ("failed_rules", failed_rules),
                             ("input_hash", hashes)):
            for i, v in zip(at, named_t.column(name).to_pylist(), strict=True):
                target[i] = v
        known = (named_t.column("customer_known").to_pylist() if "customer_known" in named_t.column_names
                 else [True] * len(at))
        for i, ok in zip(at, known, strict=True):
            if ok:
                errors[i] = None
            else:  # blocked already (NULL features); named as the reference path names it
                fired[i], failed_rules[i] = EVALUATION_ERROR, ""
                errors[i] = f"row {rows[i].row}: customer {rows[i].customer_id!r} is not in the store"
    cols = {
        "customer_id": [c.customer_id for c in rows], "touch_id": [c.touch_id for c in rows],
        "verdict": verdict, "max_depth": depth, "named": named, "fired_rules": fired,
        "failed_rules": failed_rules, "policy_name": [pack.name] * n, "policy_version": [pack.version] * n,
        "input_hash": hashes, "error": errors,
    }
    return pa.table(cols, schema=DECISIONS_SCHEMA)


def check_output(out: Path) -> None:
    """Refuse, before any work, an output that exists or has an unknown format."""
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise BatchError(f"--out {out}: unknown output format {out.suffix or '(no suffix)'!r}",
                         hint="expected .parquet or .csv")
    if out.exists() or out.is_symlink():
        raise BatchError(f"{out} already exists; batch decide never replaces a file",
                         hint="choose another --out path")


def write_decisions(decisions: pa.Table, out: Path) -> None:
    """Write the decisions to a new file, owner-only (they describe customers): ``.parquet`` or
    ``.csv``. An existing file is never replaced."""
    check_output(out)
    suffix = out.suffix.lower()
    fd = open_new_private_file(out, BatchError,
                             exists=f"{out} already exists; batch decide never replaces a file",
                             exists_hint="choose another --out path")
    with os.fdopen(fd, "wb") as sink:
        if suffix == ".parquet":
            from pyarrow import parquet

            parquet.write_table(decisions, sink)
        else:
            from pyarrow import csv

            csv.write_csv(decisions, sink)
