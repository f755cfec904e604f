"""``tactful batch decide``: candidates in, decisions out.

1. read the candidates table (:mod:`tactful.batch.candidates`);
2. build each candidate's scenario from the store (:class:`tactful.realtime.StoreScenarioBuilder`) and
   derive its features in Python — the feature frame. (Issue 9 plans Ibis feature producers that
   build this frame inside the backend from the store read in place; until they land the frame is
   built here, row by row, which is where a batch spends its time.);
3. decide the whole frame at once with the compiled policy (:mod:`tactful.policy.compile`) on the
   chosen backend;
4. the decisions table: ``customer_id``, ``touch_id``, ``verdict``, ``max_depth``, ``named``,
   ``fired_rules``, ``failed_rules``, ``policy_name``, ``policy_version``, ``input_hash`` (SHA-256 of
   the judged scenario document, the one ``tactful scenario export`` writes) and ``error``.

Fail closed: a candidate whose touch is invalid or whose scenario cannot be built is decided ``block``
with ``fired_rules = evaluation-error`` and its error, and the run goes on.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import Connection

from tactful.batch.backends import check_backend, open_backend
from tactful.batch.candidates import Candidate, candidates, read_table
from tactful.batch.frame import frame_from_values
from tactful.errors import BatchError, TactfulError
from tactful.features import Features, derive
from tactful.model import Reason
from tactful.policy import Pack
from tactful.policy.compile import RULE_SEPARATOR, compile_pack
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


def decide_candidates(path: Path, pack: Pack, *, db: str | None = None, backend: str = "duckdb",
                      now: datetime | None = None, threads: int | None = None,
                      progress: Callable[[int], None] | None = None,
                      builder: StoreScenarioBuilder | None = None, explain: bool = False) -> RunResult:
    """Decide every candidate of the file at ``path`` (see the module doc). ``builder`` (made for
    ``pack``) lets several calls of one run share what it has read. With ``explain``, the result
    also carries each decision's reasons in plain words (:func:`tactful.policy.evaluate.explain_fired`
    on the features the decision was made from)."""
    from tactful.store.db import open_store

    check_backend(backend, db=db)  # a backend that cannot serve the run fails before any work
    compiled = compile_pack(pack)  # and so does a pack the compiler cannot run
    started = time.perf_counter()
    table = read_table(path)
    rows = list(candidates(table, str(path)))
    seconds: dict[str, float] = {}
    ok: list[tuple[Candidate, str]] = []
    values: list[tuple[str, Any]] = []
    failed: dict[int, str] = {}
    kept: list[Features] = []  # with explain: each judged row's features, to fill its reasons
    builder = builder or StoreScenarioBuilder(pack)
    engine = open_store(db)
    try:
        with engine.connect() as conn:
            for cand in rows:
                if cand.touch is None:
                    failed[cand.row] = cand.error or "invalid candidate"
                else:
                    try:
                        scenario = builder.scenario(conn, cand.customer_id, cand.touch, now)
                        feats = derive(scenario, pack.settings)
                    except TactfulError as exc:
                        failed[cand.row] = f"{path}: row {cand.row}: {' '.join(exc.message.split())}"
                    except Exception as exc:  # fail closed: the row is blocked, the run goes on
                        failed[cand.row] = f"{path}: row {cand.row}: {type(exc).__name__}: {exc}"
                    else:
                        ok.append((cand, input_hash(scenario_document(scenario))))
                        values.append((cand.customer_id, feats.values))
                        if explain:
                            kept.append(feats)
                if progress is not None:
                    progress(1)
    finally:
        engine.dispose()
    seconds["read and features"] = time.perf_counter() - started
    frame = frame_from_values(values)
    started = time.perf_counter()
    decided: dict[int, dict[str, Any]] = {}
    if ok:
        with open_backend(backend, db=db, threads=threads) as session:
            out = compiled.decide(session.table(frame), keep=["row"]).to_pyarrow().to_pylist()
        decided = {r["row"]: r for r in out}
    seconds["policy"] = time.perf_counter() - started
    by_row = {cand.row: (i, digest) for i, (cand, digest) in enumerate(ok)}
    cols: dict[str, list[Any]] = {name: [] for name in DECISIONS_SCHEMA.names}
    reasons: list[tuple[Reason, ...] | None] = []
    for cand in rows:
        cols["customer_id"].append(cand.customer_id)
        cols["touch_id"].append(cand.touch_id)
        cols["policy_name"].append(pack.name)
        cols["policy_version"].append(pack.version)
        hit = by_row.get(cand.row)
        d = decided.get(hit[0]) if hit is not None else None
        if hit is None or d is None:
            cols["verdict"].append(Verdict.BLOCK.value)
            cols["max_depth"].append(Depth.NONE.value)
            cols["named"].append(False)
            cols["fired_rules"].append(EVALUATION_ERROR)
            cols["failed_rules"].append("")
            cols["input_hash"].append(hit[1] if hit is not None else None)
            cols["error"].append(failed.get(cand.row, "no decision came back for this row"))
            reasons.append(None)
            continue
        for name in ("verdict", "max_depth", "named", "fired_rules", "failed_rules"):
            cols[name].append(d[name])
        cols["input_hash"].append(hit[1])
        cols["error"].append(None)
        if explain:
            fired = [r for r in (d["fired_rules"] or "").split(RULE_SEPARATOR) if r]
            bad = {r: "its inputs were missing" for r in (d["failed_rules"] or "").split(RULE_SEPARATOR) if r}
            reasons.append(explain_fired(pack, kept[hit[0]], fired, bad)[0] if fired else ())
    return RunResult(pa.table(cols, schema=DECISIONS_SCHEMA), backend, seconds,
                     reasons if explain else None)


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
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        raise BatchError(f"{out} already exists; batch decide never replaces a file",
                         hint="choose another --out path") from None
    except OSError as exc:
        raise BatchError(f"cannot create {out}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as sink:
        if suffix == ".parquet":
            from pyarrow import parquet

            parquet.write_table(decisions, sink)
        else:
            from pyarrow import csv

            csv.write_csv(decisions, sink)
