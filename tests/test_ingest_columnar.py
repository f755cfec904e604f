"""Issue 8 §7: the column-at-a-time check (tactful.ingest.columnar) is a fast path only.

* On generated values of every field of every kind, a value the fast check accepts is one the record
  model accepts, with the very same database value (SQLite and PostgreSQL forms).
* The same broken files imported both ways (``vectorised=True`` and the per-row reference
  ``vectorised=False``) give the same stores and byte-identical quarantine files, on both stores.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, Engine

from tactful.ingest import run_import
from tactful.ingest.columnar import TargetColumns
from tactful.ingest.kinds import KINDS, RowError
from tactful.ingest.mapping import CsvOptions
from tactful.ingest.readers import CsvChunk, CsvReader
from tactful.ingest.writer import MISSING, TargetPlan, _independent_fields
from tactful.store import tables
from tactful.store.db import init_store

# a valid row of each kind; each field is replaced in turn by the generated value
GOOD: dict[str, dict[str, Any]] = {
    "households": {"id": "h1", "size": "2", "composition": "two", "kids_count": "0", "income": "50K",
                   "home_ownership": "renter"},
    "customers": {"id": "c1", "household_id": "h1", "first_name": "Ann", "last_name": "Lee",
                  "birth_date": "1980-02-03", "age_range": "45-54", "openness": "open", "deceased": "no"},
    "contact-points": {"id": "cp1", "customer_id": "c1", "kind": "email", "value": "a@b.c",
                       "shared_with": "private", "verified_at": "2024-03-01T10:00:00Z", "bounced": "false"},
    "consents": {"id": "k1", "customer_id": "c1", "purpose": "marketing.communications.email",
                 "channel": "email", "status": "granted", "source": "form", "at": "2024-01-01T00:00:00Z",
                 "evidence": "form-3"},
    "orders": {"order_id": "o1", "customer_id": "c1", "at": "2024-05-01T09:30:00Z", "source": "pos",
               "context": "checkout", "store_id": "s1", "total": "7.5", "line_no": "1", "product_id": "p1",
               "quantity": "2", "amount": "3.0"},
    "facts": {"id": "f1", "customer_id": "c1", "kind": "attribute", "category": "user.behavior",
              "label": "x", "value": "y", "origin": "declared", "source": "web", "context": "signup",
              "at": "2024-01-01"},
    "touches": {"id": "t1", "customer_id": "c1", "kind": "offer",
                "purpose": "marketing.communications.email", "channel": "email", "contact_point_id": "cp1",
                "at": "2024-01-01 10:00", "campaign": "spring"},
}

TRICKY = [
    "0", "-0", "00", "007", "1", "-1", "+1", "2147483647", "2147483648", "-2147483648", "999999999",
    "1000000000", "1.5", "-2.25", "1e3", "1E3", ".5", "5.", "1_000", "nan", "inf", "-inf", "Infinity",
    "0.1000000000000000055511151231257827", "12345678901234.5", "123456789012345.123456789012345",
    "2024-02-29", "2023-02-29", "2024-02-30", "2024-13-01", "2024-00-10", "0000-01-01", "0001-01-01",
    "0001-01-02", "9999-12-31", "9998-12-31", "20240501", "2024-5-1", "2024-05-01T", "2024-05-01T09",
    "2024-05-01T09:30", "2024-05-01 09:30", "2024-05-01T09:30:00", "2024-05-01T09:30:00Z",
    "2024-05-01t09:30:00z", "2024-05-01T09:30:00+02:00", "2024-05-01T09:30:00-11:30",
    "2024-05-01T09:30:00+24:00", "2024-05-01T09:30:00+0200", "2024-05-01T24:00:00", "2024-05-01T23:59:60",
    "2024-05-01T09:30:00.5", "2024-05-01T09:30:00.123456Z", "2024-12-31T23:30:00-01:00",
    "0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00", "２０２４-05-01", "2024-05-01T09:30:00 Z",
    " x", "x ", "\tx", "x\u00a0", "\u2003x", "x\x1c", "a\x00b", "é", "ü" * 200, "u" * 200, "u" * 201,
    "c" * 100, "c" * 101, "true", "false", "True", "YES", "y", "n", "on", "off", "t", "f", "2", "email",
    "Email", "postal_mail", "granted", "open", "OPEN", "marketing.communications.email", "marketing",
    "user.behavior", "user.unknown", "web", "partner:acme", "partner:", "pos", "checkout", "x",
]

values = st.one_of(
    st.sampled_from(TRICKY),
    st.text(max_size=12),
    st.from_regex(r"-?[0-9]{1,12}(\.[0-9]{1,6})?", fullmatch=True),
    st.tuples(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
              st.sampled_from("T "), st.sampled_from(["minutes", "seconds"]),
              st.sampled_from(["", "Z", "+02:00", "-11:30"])).map(
        lambda d: d[0].isoformat(sep=d[1], timespec=d[2]) + d[3]),
    st.dates().map(str),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
)

DIALECTS: dict[str, Dialect] = {"sqlite": sqlite.dialect(), "postgresql": postgresql.psycopg.dialect()}


def _plain(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """Database values comparable with ==: psycopg's Json wrapper unwrapped."""
    return tuple(getattr(v, "obj", v) for v in row)


def reference(kind: str, dialect: Dialect, values: dict[str, Any]) -> list[tuple[Any, ...]] | None:
    """The row's database values per target as the per-row model gives them; None when refused."""
    spec = KINDS[kind]
    try:
        items = spec.validate(values)
    except RowError:
        return None
    plans = [TargetPlan(t, dialect) for t in spec.targets]
    return [_plain(plan.convert(values, item)) for plan, (_, item) in zip(plans, items, strict=True)]


def _check_fast_against_model(kind: str, dialect: Dialect, field: str, drawn: list[Any]) -> int:
    """Assert that every value of ``drawn`` the fast path accepts (in ``field`` of a good row) is
    accepted by the model with the same database values; the number of values accepted."""
    spec = KINDS[kind]
    columns = [TargetColumns(spec, t, t.model, dialect, _independent_fields(t.model)) for t in spec.targets]
    rows = [{**GOOD[kind], field: v} for v in drawn]
    ways = [[c.rows(rows, MISSING) for c in columns]]  # the list path (JSON Lines, mapped rows)
    if all(isinstance(v, str) and v and "\x00" not in v and "\n" not in v and "\r" not in v for v in drawn):
        import pyarrow as pa  # the Arrow path (CSV chunks)

        table = pa.table({name: pa.array([str(r[name]) for r in rows], pa.string()) for name in rows[0]})
        ways.append([c.arrow_rows(table, {n: n for n in spec.field_names()}) for c in columns])
    accepted = 0
    for way in ways:
        for i, row in enumerate(rows):
            if any(flags[i] for _, flags in way):
                continue
            accepted += 1
            expected = reference(kind, dialect, row)
            assert expected is not None, f"fast path accepted {row[field]!r} for {kind}.{field}"
            got = [_plain(tuple(col[i] for col in cols)) for cols, _ in way]
            assert got == expected, f"{kind}.{field} = {row[field]!r}"
    return accepted


@pytest.mark.parametrize("dialect", list(DIALECTS))
@pytest.mark.parametrize("kind", list(GOOD))
def test_every_tricky_value_in_every_field(kind: str, dialect: str) -> None:
    accepted = 0
    for field in KINDS[kind].field_names():
        accepted += _check_fast_against_model(kind, DIALECTS[dialect], field, TRICKY)
    assert accepted > len(GOOD[kind])  # some values do take the fast path


@pytest.mark.parametrize("dialect", list(DIALECTS))
@pytest.mark.parametrize("kind", list(GOOD))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_fast_check_never_accepts_what_the_model_refuses(kind: str, dialect: str,
                                                             data: st.DataObject) -> None:
    field = data.draw(st.sampled_from(KINDS[kind].field_names()))
    drawn = data.draw(st.lists(values, min_size=1, max_size=6))
    _check_fast_against_model(kind, DIALECTS[dialect], field, drawn)


def test_common_values_take_the_fast_path() -> None:
    """The fast path is not a no-op: a good row of each kind is accepted without the model."""
    for kind, row in GOOD.items():
        spec = KINDS[kind]
        for d in DIALECTS.values():
            for t in spec.targets:
                columns = TargetColumns(spec, t, t.model, d, _independent_fields(t.model))
                _cols, flags = columns.rows([row], MISSING)
                assert not flags.any(), (kind, t.table.name)


# --------------------------------------------------------------------------- whole imports, both ways


def _write_files(tmp: Path, rng: random.Random) -> dict[str, Path]:
    """Files with good rows, tricky ones and broken ones, in CSV (simple lines: the Arrow chunks) and
    JSON Lines."""
    def pick(kind: str, field: str) -> str:
        if rng.random() < 0.8:
            return GOOD[kind][field] if field != "id" else ""
        return rng.choice(TRICKY)

    out: dict[str, Path] = {}
    hh = tmp / "households.csv"
    hh.write_text("id,size\nh1,2\nh2,1\n")
    out["households"] = hh
    cust = ["id,household_id,first_name,last_name,birth_date,age_range,openness,deceased"]
    for i in range(600):
        row = [f"c{i}"] + [pick("customers", f) for f in GOOD["customers"] if f != "id"]
        if i % 50 == 7:
            row[1] = "h-unknown"
        cust.append(",".join(v.replace(",", ";").replace('"', "'").replace("\n", " ") for v in row))
    # a quoted field (read record by record) whose id comes again on a simple line just after it, in
    # the same batch: the later row must win, whichever way each was read
    cust.insert(200, '"c205",h1,"Quoted, Name",x,1980-01-01,,,')
    cust.insert(300, "c-short,h1")  # a wrong column count
    cust.insert(301, "   ")  # a blank line
    (tmp / "customers.csv").write_bytes(("\n".join(cust) + "\n").encode("utf-8", "surrogatepass"))
    out["customers"] = tmp / "customers.csv"
    orders = [",".join(GOOD["orders"])]
    for i in range(900):
        row = {f: pick("orders", f) for f in GOOD["orders"]}
        row["order_id"] = f"o{i // 3}"
        row["line_no"] = str(i % 3 + 1) if rng.random() < 0.9 else rng.choice(TRICKY)
        row["customer_id"] = f"c{rng.randrange(650)}"
        row["product_id"] = "p1"
        orders.append(",".join(str(v).replace(",", ";").replace('"', "'").replace("\n", " ")
                               for v in row.values()))
    (tmp / "orders.csv").write_bytes(("\n".join(orders) + "\n").encode("utf-8", "surrogatepass"))
    out["orders"] = tmp / "orders.csv"
    lines = []
    base = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(400):
        row: dict[str, Any] = {f: pick("consents", f) for f in GOOD["consents"]}
        row["id"] = f"k{i}"
        row["customer_id"] = f"c{rng.randrange(600)}"
        if i % 7 == 0:
            row["at"] = (base + timedelta(minutes=i)).isoformat()
        if i % 11 == 0:
            row["at"] = rng.choice([20240501, 0, 1.5, None, True])
        lines.append(json.dumps(row))
    (tmp / "consents.jsonl").write_text("\n".join(lines) + "\n")
    out["consents"] = tmp / "consents.jsonl"
    return out


def _contents(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with engine.connect() as conn:
        for name in ("households", "customers", "orders", "order_lines", "consents"):
            table = tables.metadata.tables[name]
            cols = [c for c in table.c if c.name not in ("import_id", "written_at")]
            out[name] = sorted(conn.execute(sa.select(*cols)).all(), key=repr)
    return out


def _import_all(url: str, files: dict[str, Path], vectorised: bool, qdir: Path) -> dict[str, Any]:
    engine = init_store(url)
    quarantines = {}
    for kind in ("households", "products", "customers", "orders", "consents"):
        if kind == "products":
            (qdir / "p.csv").write_text("id\np1\n")
            run_import(engine, "products", qdir / "p.csv")
            continue
        q = qdir / f"{kind}.quarantine"
        result = run_import(engine, kind, files[kind], quarantine_path=q, batch_size=97,
                            vectorised=vectorised)
        quarantines[kind] = (result.rows_read, result.rows_imported, result.rows_quarantined,
                             q.read_bytes() if q.exists() else b"")
    contents = _contents(engine)
    engine.dispose()
    return {"contents": contents, "quarantines": quarantines}


def test_the_same_broken_files_imported_both_ways_give_the_same_store(tmp_path: Path, db_url: str) -> None:
    files = _write_files(tmp_path, random.Random(8))
    # the CSV files do take the Arrow chunk path (and, around the quoted and broken lines, the other)
    reader = CsvReader(files["customers"], CsvOptions())
    kinds = {type(item).__name__ for item in reader.chunks()}
    reader.close()
    assert kinds == {"CsvChunk", "RawRecord"}
    results = []
    for vectorised in (True, False):
        url = db_url
        if db_url.startswith("sqlite"):
            url = f"sqlite:///{tmp_path / f'store-{vectorised}.db'}"
        else:  # a fresh database per way: drop everything the first way imported
            engine = sa.create_engine(db_url)
            tables.metadata.drop_all(engine)
            with engine.begin() as conn:
                conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
            engine.dispose()
        qdir = tmp_path / f"q-{vectorised}"
        qdir.mkdir()
        results.append(_import_all(url, files, vectorised, qdir))
    fast, slow = results
    for kind in fast["quarantines"]:
        assert fast["quarantines"][kind][:3] == slow["quarantines"][kind][:3], kind
        assert fast["quarantines"][kind][3] == slow["quarantines"][kind][3], kind
    assert fast["contents"] == slow["contents"]
    # the files are broken enough to exercise the quarantine, and good enough to import
    assert all(q[2] > 0 and q[1] > 0 for kind, q in fast["quarantines"].items() if kind != "households")


def test_chunks_and_records_read_the_same_rows(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    rng = random.Random(3)
    lines = ["a,b,c"]
    for i in range(3000):
        lines.append(rng.choice([f"{i},x,y", f"{i},,", f'{i},"q,1",z', "", "  ", f"{i},x", f"{i},é,\t",
                                 f"{i},x,y\r"]))
    path.write_bytes(("\n".join(lines) + "\n").encode())
    one = CsvReader(path, CsvOptions())
    expected = [(r.row, r.line, r.values, r.problem, r.raw) for r in one]
    one.close()
    two = CsvReader(path, CsvOptions())
    got = []
    for item in two.chunks():
        if isinstance(item, CsvChunk):
            got += [(r.row, r.line, r.values, r.problem, r.raw) for r in item.records()]
        else:
            got.append((item.row, item.line, item.values, item.problem, item.raw))
    two.close()
    assert got == expected
