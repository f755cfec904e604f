"""Build the sample world into a store: the Complete Journey one (default) or a synthetic one of N customers.

Everything generated is a pure function of the seed (NumPy generators seeded per component or per
chunk), so two builds with the same seed write identical rows; only the provenance (``written_at``, the
``imports`` row's times) records when it happened.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tactful.errors import SampleUsageError
from tactful.sample import completejourney as cj
from tactful.sample import synthetic
from tactful.sample.people import PeopleSpec, generate_people, inference_facts
from tactful.sample.personas import PERSONAS, persona_chunks
from tactful.sample.writer import Chunk, bulk_writer
from tactful.sensitivity import SensitivityMapping, load_mapping
from tactful.store import tables
from tactful.store.bookkeeping import INCOMPLETE, Heartbeat, clear_mark, fail_import, set_mark
from tactful.store.db import begin_import, finish_import, init_store

#: The world's "today": generated dates are relative to it, Complete Journey baskets are shifted to end
#: just before it.
AS_OF = np.datetime64("2026-11-01T00:00:00", "s")
LOADED_TABLES: tuple[str, ...] = (
    "households",
    "customers",
    "contact_points",
    "consents",
    "products",
    "orders",
    "order_lines",
    "facts",
)
CJ_STREAM = 0xC0FFEE  # the Complete Journey world's people draw from default_rng([seed, CJ_STREAM])

Progress = Callable[[str, int, int], None]


@dataclass
class BuildResult:
    """What a build wrote and how long it took."""

    url: str
    world: str  # completejourney | synthetic
    seed: int
    import_id: int
    customers: int
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    generate_seconds: float = 0.0
    write_seconds: float = 0.0  # writing, index creation included
    index_seconds: float = 0.0  # PostgreSQL: foreign keys re-added (validated) and ANALYZE included
    personas: dict[str, str] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def _quiet(_phase: str, _done: int, _total: int) -> None:
    return None


def _store_is_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        for name in ("customers", "products", "personas"):
            if conn.execute(
                sa.select(sa.literal(1)).select_from(tables.metadata.tables[name]).limit(1)
            ).first():
                return False
    return True


def clear_store(engine: Engine) -> None:
    """Delete every row of every Tactful table (for ``--replace``)."""
    with engine.begin() as conn:
        for table in reversed(tables.metadata.sorted_tables):
            conn.execute(table.delete())


_WORKER_MARKET: synthetic.Market | None = None


def _init_worker(mk: synthetic.Market) -> None:
    global _WORKER_MARKET
    _WORKER_MARKET = mk


def _work(seed: int, index: int, start: int, stop: int) -> list[Chunk]:
    assert _WORKER_MARKET is not None, "worker not initialised"
    return synthetic.generate_chunk(seed, index, start, stop, AS_OF, _WORKER_MARKET)


def default_jobs() -> int:
    """Generator processes for a large synthetic world: one per core beyond the writer's, at least one."""
    return max(1, min(4, (os.cpu_count() or 1) - 1))


def synthetic_chunks(
    n: int,
    seed: int,
    mk: synthetic.Market | None = None,
    mapping: SensitivityMapping | None = None,
    jobs: int = 0,
) -> Iterator[tuple[int, list[Chunk]]]:
    """The synthetic world's chunks in order, with the number of customers in each (no store needed).

    ``jobs`` > 0 generates in that many worker processes (chunks are independent: chunk ``i`` depends
    only on the seed and ``i``, so the rows are the same as with ``jobs=0``), at most ``jobs + 1``
    chunks ahead of the consumer so memory stays bounded.
    """
    if n < 1 or n > synthetic.MAX_CUSTOMERS:
        raise SampleUsageError(f"--synthetic must be between 1 and {synthetic.MAX_CUSTOMERS:,}, got {n}")
    market = mk or synthetic.market(mapping or load_mapping())
    bounds = synthetic.chunk_bounds(n)
    if jobs <= 0 or len(bounds) < 2:
        for index, (start, stop) in enumerate(bounds):
            yield stop - start, synthetic.generate_chunk(seed, index, start, stop, AS_OF, market)
        return
    # fork: the workers inherit the market without pickling and need no importable __main__
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker, initargs=(market,)) as pool:
        pending: deque[tuple[int, Future[list[Chunk]]]] = deque()
        todo = iter(enumerate(bounds))

        def submit() -> None:
            nxt = next(todo, None)
            if nxt is not None:
                index, (start, stop) = nxt
                pending.append((stop - start, pool.submit(_work, seed, index, start, stop)))

        for _ in range(jobs + 1):
            submit()
        while pending:
            size, future = pending.popleft()
            chunks = future.result()
            submit()
            yield size, chunks


def completejourney_chunks(seed: int, mapping: SensitivityMapping) -> tuple[cj.Catalogue, list[Chunk], int]:
    """The Complete Journey world (without the personas): catalogue, chunks in foreign-key order, shift."""
    b = cj.baskets(AS_OF)
    cat = cj.catalogue(mapping, extra_ids=np.unique(b.line_product))
    rng = np.random.default_rng([seed, CJ_STREAM])
    spec = PeopleSpec(
        b.household_ids, np.arange(len(b.household_ids)), b.household_ids, b.household_size, b.age_range
    )
    categories, implies = synthetic.browse_space(mapping, cat)
    customers, contact_points, consents, events = generate_people(rng, spec, AS_OF, categories, implies)
    baby = np.array(["user.demographic.household.baby" in j for j in cat.implies_json.tolist()])
    baby_lines = np.bincount(
        b.line_customer, weights=baby[cat.index_of(b.line_product)], minlength=len(b.household_ids)
    ).astype(np.int64)
    inferred = inference_facts(b.household_ids, baby_lines, b.last_order_at, threshold=8)
    chunks = [
        cat.chunk,
        b.households,
        customers,
        contact_points,
        consents,
        b.orders,
        b.order_lines,
        events,
        inferred,
    ]
    return cat, chunks, b.shift_weeks


def build_sample(
    url: str | None = None,
    *,
    seed: int = 42,
    synthetic_n: int | None = None,
    replace: bool = False,
    mapping: SensitivityMapping | None = None,
    progress: Progress | None = None,
    jobs: int | None = None,
) -> BuildResult:
    """Create (or upgrade) the store at ``url`` and fill it with the sample world.

    ``jobs``: generator processes for a synthetic world (None: :func:`default_jobs`; 0: generate in
    this process). The rows do not depend on it.
    """
    report = progress or _quiet
    mapping = mapping or load_mapping()
    if synthetic_n is not None and (synthetic_n < 1 or synthetic_n > synthetic.MAX_CUSTOMERS):
        raise SampleUsageError(
            f"--synthetic must be between 1 and {synthetic.MAX_CUSTOMERS:,}, got {synthetic_n}"
        )
    started = time.perf_counter()
    engine = init_store(url)
    try:
        if not _store_is_empty(engine):
            if not replace:
                raise SampleUsageError(
                    f"store {engine.url.render_as_string()} already holds data",
                    hint="use a new --db, or --replace to delete everything in it first",
                )
            report("clearing the store", 0, 1)
            clear_store(engine)
        world = "completejourney" if synthetic_n is None else "synthetic"
        meta: dict[str, Any] = {"seed": seed, "as_of": str(AS_OF) + "Z", "mapping": mapping.source}
        if synthetic_n is not None:
            meta["customers"] = synthetic_n
        with engine.begin() as conn:
            import_id = begin_import(
                conn, kind="sample", origin=f"sample:{world}", source_label=f"seed={seed}", mapping=meta
            )
            # cleared in the transaction that records the end of the build: a build killed or failed
            # half-way (partial rows; on SQLite without its secondary indexes) leaves the mark, and every
            # command that opens the store refuses it and names the fix
            set_mark(conn, INCOMPLETE,
                     reason=f"the sample build (import #{import_id}) that started writing it did not finish, "
                            "so it may hold part of the world and lack its indexes",
                     fix="rebuild it: tactful sample --replace (with the same --db and options)")
        beat = Heartbeat(engine, import_id)

        def report_and_beat(phase: str, done: int, total: int) -> None:
            beat()  # the imports row stays "running" for other hosts while the build goes on
            report(phase, done, total)

        try:
            return _build(engine, report_and_beat, world=world, seed=seed, synthetic_n=synthetic_n,
                          mapping=mapping, jobs=jobs, meta=meta, import_id=import_id, started=started)
        except BaseException as exc:
            fail_import(engine, import_id, exc)
            raise
    finally:
        engine.dispose()


def _build(engine: Engine, report: Progress, *, world: str, seed: int, synthetic_n: int | None,
           mapping: SensitivityMapping, jobs: int | None, meta: dict[str, Any], import_id: int,
           started: float) -> BuildResult:
    """Write the world (the import batch and the incomplete mark are already in place)."""
    written_at = datetime.now(UTC)
    result = BuildResult(
        url=engine.url.render_as_string(),
        world=world,
        seed=seed,
        import_id=import_id,
        customers=0,
        personas={p.key: p.customer_id for p in PERSONAS},
    )
    gen = 0.0
    with bulk_writer(
        engine,
        import_id=import_id,
        written_at=written_at,
        defer_indexes=True,
        tables_loaded=LOADED_TABLES,
    ) as writer:
        if synthetic_n is None:
            report("reading the Complete Journey", 0, 1)
            t0 = time.perf_counter()
            cat, chunks, shift = completejourney_chunks(seed, mapping)
            chunks += persona_chunks(cat, AS_OF)
            gen += time.perf_counter() - t0
            meta["timestamp_shift_weeks"] = shift
            total = sum(len(c) for c in chunks)
            done = 0
            for chunk in chunks:
                report(f"writing {chunk.table}", done, total)
                done += writer.write(chunk)
            report("writing", done, total)
        else:
            report("preparing products", 0, synthetic_n)
            t0 = time.perf_counter()
            mk = synthetic.market(mapping)
            gen += time.perf_counter() - t0
            writer.write(mk.catalogue.chunk)
            for chunk in persona_chunks(mk.catalogue, AS_OF):
                writer.write(chunk)
            done = 0
            t0 = time.perf_counter()
            workers = default_jobs() if jobs is None else jobs
            for n, chunks in synthetic_chunks(synthetic_n, seed, mk, jobs=workers):
                gen += time.perf_counter() - t0
                for chunk in chunks:
                    writer.write(chunk)
                done += n
                report("customers", done, synthetic_n)
                t0 = time.perf_counter()
        # SQLite: the deferred indexes; PostgreSQL: the indexes and foreign keys (validated), ANALYZE
        report("creating indexes", 0, 1)
    result.rows = dict(writer.stats.rows)
    result.index_seconds = writer.index_seconds
    result.customers = result.rows.get("customers", 0)
    with engine.begin() as conn:
        finish_import(
            conn,
            import_id,
            rows_read=writer.stats.total,
            rows_imported=writer.stats.total,
            rows_quarantined=0,
        )
        conn.execute(tables.imports.update().where(tables.imports.c.id == import_id).values(mapping=meta))
        clear_mark(conn, INCOMPLETE)  # the world is whole, its indexes in place
    result.seconds = time.perf_counter() - started
    result.generate_seconds = gen
    result.write_seconds = result.seconds - gen
    return result
