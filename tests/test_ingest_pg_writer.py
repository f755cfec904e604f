"""The PostgreSQL write path of the importer.

* Each batch goes by binary ``COPY`` when its values allow it (see
  :class:`tactful.ingest.writer._BinaryCopy`): the store must end up exactly as with text ``COPY``, and
  a value the server would refuse as text must still be refused (never wrapped or cut in the client).
* Ids a batch found in the store are not looked up again by the later batches (the foreign keys hold
  them); a row removed in between is still reported as missing, with the usual reason."""

from __future__ import annotations

import json
import random
import shutil
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from psycopg.postgres import types
from psycopg.types.json import Json

from tactful.ingest import run_import, writer
from tactful.ingest.kinds import kind_spec
from tactful.ingest.writer import BatchWriter, TargetPlan, _BinaryCopy
from tactful.store import tables
from tactful.store.db import init_store
from tactful.testing import postgres
from test_ingest import BASE, DATA
from test_ingest_columnar import GOOD, _import_all, _write_files

pytestmark = pytest.mark.postgres

KINDS = ["households", "customers", "contact-points", "consents", "products", "orders", "facts", "touches"]


def _oids(*names: str) -> list[int]:
    return [types[n].oid for n in names]


def test_binary_copy_takes_only_values_it_stores_as_text_copy_would() -> None:
    copy = _BinaryCopy.of(_oids("varchar", "int4", "float8", "date", "timestamptz", "bool", "json"))
    assert copy is not None
    aware = datetime(2024, 5, 1, 12, tzinfo=UTC)
    good = ("a", 1, 1.5, date(2024, 5, 1), aware, True, Json(["x"]))
    assert copy.fits([good, (None,) * 7])
    for column, bad in [
        (1, 2**31),  # beyond int4: psycopg's binary dumper would wrap it (stores 0), text is refused
        (1, -(2**31) - 1),
        (1, True),  # a bool is an int in Python, not in the column
        (1, 1.0),
        (2, 1),  # an int where the column holds floats
        (0, 5),
        (3, aware),  # a datetime is a date in Python: the exact class is required
        (4, datetime(2024, 5, 1, 12)),  # naive: the server decides its zone, as text
        (5, 1),
        (6, ["x"]),
    ]:
        row = list(good)
        row[column] = bad
        assert not copy.fits([good, tuple(row)]), (column, bad)
    assert copy.fits([(None, 2**31 - 1, None, None, None, None, None), (None, -(2**31), *(None,) * 5)])
    # a type it does not know (here numeric) keeps the staging table on text COPY
    assert _BinaryCopy.of(_oids("varchar", "numeric")) is None


def test_every_kind_is_copied_in_binary(pg_url: str) -> None:
    engine = init_store(pg_url)
    try:
        for kind in KINDS:
            plans = [TargetPlan(t, engine.dialect) for t in kind_spec(kind).targets]
            batch_writer = BatchWriter(engine, plans)
            batch_writer.open()
            try:
                assert all(b is not None for b in batch_writer.binary), kind
            finally:
                batch_writer.close()
    finally:
        engine.dispose()


def test_integers_beyond_a_column_are_refused_by_the_store_not_wrapped(pg_url: str) -> None:
    """The models already refuse such integers; the writer does not rely on it."""
    engine = init_store(pg_url)
    plans = [TargetPlan(t, engine.dialect) for t in kind_spec("households").targets]
    batch_writer = BatchWriter(engine, plans)
    batch_writer.open()
    try:
        for size in (2**31, -(2**31) - 1, 2**40):
            cur = batch_writer.begin()
            with pytest.raises(psycopg.errors.NumericValueOutOfRange):
                batch_writer.write(cur, [[("h1", 2, None, None, None, None), ("h2", size, None, None, None,
                                                                               None)]],
                                   None, datetime.now(UTC))
            batch_writer.rollback()
            cur.close()
        cur = batch_writer.begin()
        batch_writer.write(cur, [[("h1", 2**31 - 1, None, None, None, None)]], None, datetime.now(UTC))
        batch_writer.commit()
        cur.close()
    finally:
        batch_writer.close()
    with engine.connect() as conn:
        assert conn.execute(sa.select(tables.households.c.size)).scalar_one() == 2**31 - 1
    engine.dispose()


def _everything(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = sa.create_engine(url)
    out = {}
    with engine.connect() as conn:
        for name in ("households", "customers", "contact_points", "consents", "products", "orders",
                     "order_lines", "facts", "touches"):
            table = tables.metadata.tables[name]
            cols = [c for c in table.c if c.name not in ("import_id", "written_at")]
            out[name] = sorted(conn.execute(sa.select(*cols)).all(), key=repr)
    engine.dispose()
    return out


def test_binary_and_text_copy_give_the_same_store(pg_server_url: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The fixture world (every kind) and the tricky, broken files of the columnar tests, imported
    with binary COPY and again with text COPY only: same rows, same quarantine files."""
    results = []
    for binary in (True, False):
        if not binary:
            monkeypatch.setattr(writer._BinaryCopy, "of", classmethod(lambda cls, oids: None))
        work = tmp_path / f"binary-{binary}"
        shutil.copytree(DATA, work)
        url = postgres.create_database(pg_server_url, f"t_copy_{random.getrandbits(40):x}")
        engine = init_store(url)
        for kind, name in BASE:
            assert run_import(engine, kind, work / name).rows_quarantined == 0
        engine.dispose()
        world = _everything(url)
        tricky_dir = tmp_path / f"tricky-{binary}"
        tricky_dir.mkdir()
        files = _write_files(tricky_dir, random.Random(8))
        url = postgres.create_database(pg_server_url, f"t_copy_{random.getrandbits(40):x}")
        tricky = _import_all(url, files, True, tricky_dir)
        results.append((world, tricky))
    (world_b, tricky_b), (world_t, tricky_t) = results
    assert world_b == world_t
    assert all(world_b.values())
    assert tricky_b == tricky_t


def test_a_customer_removed_during_an_import_is_reported_missing(pg_url: str, tmp_path: Path) -> None:
    engine = init_store(pg_url)
    (tmp_path / "hh.csv").write_text("id\nh1\n")
    (tmp_path / "c.csv").write_text("id,household_id\nc1,h1\nc2,h1\n")
    run_import(engine, "households", tmp_path / "hh.csv")
    run_import(engine, "customers", tmp_path / "c.csv")
    consents = tmp_path / "consents.jsonl"
    consents.write_text("".join(json.dumps({**GOOD["consents"], "id": f"k{i}", "customer_id": c}) + "\n"
                                for i, c in enumerate(["c1", "c2", "c1", "c2"], start=1)))
    removed = []

    def progress(done: int, total: int) -> None:
        # after the first batch (k1, which found c1) is committed: remove k1 and c1, as another process
        # could; the third row names c1 again
        if removed:
            return
        deadline = time.monotonic() + 60
        count = sa.select(sa.func.count()).select_from(tables.consents)
        while True:
            with engine.connect() as conn:
                if conn.execute(count).scalar_one() >= 1:
                    break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with engine.begin() as conn:
            conn.execute(tables.consents.delete().where(tables.consents.c.id == "k1"))
            conn.execute(tables.customers.delete().where(tables.customers.c.id == "c1"))
        removed.append(True)

    result = run_import(engine, "consents", consents, batch_size=1, progress=progress)
    assert removed
    assert (result.rows_read, result.rows_imported, result.rows_quarantined) == (4, 3, 1)
    quarantine = (tmp_path / "consents.quarantine.jsonl").read_text()
    assert "row 3 (line 3): customer_id: 'c1' is not in the store's customers" in quarantine, quarantine
    assert "store refused" not in quarantine
    with engine.connect() as conn:
        assert sorted(conn.execute(sa.select(tables.consents.c.id)).scalars()) == ["k2", "k4"]
    engine.dispose()
