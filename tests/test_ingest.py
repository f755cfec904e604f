"""Importers against a real store (SQLite file and PostgreSQL): round trip, idempotency, provenance,
the broken-input file and its quarantine re-import loop, references, formats."""

from __future__ import annotations

import csv
import json
import re
import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tactful.errors import IngestError
from tactful.ingest import ImportResult, run_import
from tactful.store import tables
from tactful.store.db import init_store

DATA = Path(__file__).parent / "data" / "ingest"

# the order the kinds must be imported in (references first)
BASE = [
    ("households", "households.csv"),
    ("customers", "customers.csv"),
    ("contact-points", "contact_points.csv"),
    ("consents", "consents.csv"),
    ("products", "products.csv"),
    ("orders", "orders.csv"),
    ("facts", "facts.jsonl"),
    ("touches", "touches.jsonl"),
]
EXPECTED_ROWS = {"households": 2, "customers": 4, "contact_points": 4, "consents": 3, "products": 4,
                 "orders": 2, "order_lines": 3, "facts": 3, "touches": 2}


@pytest.fixture()
def work(tmp_path: Path) -> Path:
    """A private copy of the fixtures (imports write quarantine files next to their input)."""
    dest = tmp_path / "in"
    shutil.copytree(DATA, dest)
    return dest


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {name: conn.execute(sa.select(sa.func.count()).select_from(tables.metadata.tables[name]))
                .scalar_one() for name in EXPECTED_ROWS}


def load_base(engine: Engine, work: Path, upto: str | None = None) -> list[ImportResult]:
    out = []
    for kind, name in BASE:
        result = run_import(engine, kind, work / name)
        assert result.rows_quarantined == 0, result.examples
        out.append(result)
        if kind == upto:
            break
    return out


def test_round_trip_and_idempotent_reimport(db_url: str, work: Path) -> None:
    engine = init_store(db_url)
    first = load_base(engine, work)
    assert counts(engine) == EXPECTED_ROWS
    assert [r.rows_read for r in first] == [2, 4, 4, 3, 4, 3, 3, 2]
    assert all(r.rows_imported == r.rows_read for r in first)
    assert not list(work.glob("*.quarantine.*"))

    with engine.connect() as conn:
        c3 = conn.execute(sa.select(tables.customers).where(tables.customers.c.id == "c3")).one()
        assert c3.first_name == 'Cy "CJ"' and c3.openness == "closed" and c3.birth_date is None
        c4 = conn.execute(sa.select(tables.customers).where(tables.customers.c.id == "c4")).one()
        assert c4.deceased is True and c4.household_id is None and c4.openness is None
        cp2 = conn.execute(sa.select(tables.contact_points).where(tables.contact_points.c.id == "cp2")).one()
        assert cp2.value == "12 Elm St\nSpringfield" and cp2.shared_with == "household"
        cp4 = conn.execute(sa.select(tables.contact_points).where(tables.contact_points.c.id == "cp4")).one()
        assert cp4.verified_at.replace(tzinfo=UTC) == datetime(2024, 6, 30, 6, 0, tzinfo=UTC)
        k3 = conn.execute(sa.select(tables.consents).where(tables.consents.c.id == "k3")).one()
        assert (k3.status, k3.channel, k3.source, k3.evidence) == ("withdrawn", None, "gpc", "Sec-GPC: 1")
        o1 = conn.execute(sa.select(tables.orders).where(tables.orders.c.id == "o1")).one()
        assert (o1.customer_id, o1.total, o1.store_id) == ("c1", 7.5, "s1")
        lines = conn.execute(sa.select(tables.order_lines.c.line_no, tables.order_lines.c.product_id)
                             .where(tables.order_lines.c.order_id == "o1")
                             .order_by(tables.order_lines.c.line_no)).all()
        assert [tuple(r) for r in lines] == [(1, "p1"), (2, "p4")]
        f2 = conn.execute(sa.select(tables.facts).where(tables.facts.c.id == "f2")).one()
        assert f2.implies == ["user.health_and_medical.reproductive"] and f2.at is None
        implies = dict(conn.execute(sa.select(tables.products.c.id, tables.products.c.implies)).all())
        assert implies["p3"] == ["user.sexual_life"]  # explicit labels are kept
        assert implies["p2"] == ["user.health_and_medical.reproductive"]  # from the sensitivity mapping
        assert implies["p1"] == [] and implies["p4"] == []
        # provenance: every row names its import, every import says what it read
        stamped = conn.execute(sa.select(tables.customers.c.import_id).distinct()).scalars().all()
        assert stamped == [first[1].import_id]
        imports = conn.execute(sa.select(tables.imports).order_by(tables.imports.c.id)).all()
        assert [i.kind for i in imports] == [k for k, _ in BASE]
        assert all(i.finished_at is not None and i.rows_read == i.rows_imported for i in imports)

    # the same files again: nothing doubles, rows now point at the newer imports
    second = load_base(engine, work)
    assert counts(engine) == EXPECTED_ROWS
    with engine.connect() as conn:
        stamped = conn.execute(sa.select(tables.orders.c.import_id).distinct()).scalars().all()
        assert stamped == [second[5].import_id] and second[5].import_id != first[5].import_id
    engine.dispose()


def _bytes(text: str) -> bytes:
    """UTF-8, except that a written-out \\xNN is that raw byte."""
    parts = re.split(r"\\x([0-9a-f]{2})", text)
    return b"".join(bytes([int(p, 16)]) if i % 2 else p.encode("utf-8") for i, p in enumerate(parts))


def fix_quarantine(path: Path) -> None:
    """What a user does by hand: correct the bad values in the quarantine file (the reason column may
    change too; it is ignored on import). The fixes are data: facts_broken.fixes.json."""
    fixes = json.loads((DATA / "facts_broken.fixes.json").read_text(encoding="utf-8"))["fixes"]
    data = path.read_bytes()
    for bad, good in fixes:
        assert _bytes(bad) in data, bad
        data = data.replace(_bytes(bad), _bytes(good))
    path.write_bytes(data)


def test_broken_input_quarantines_each_bad_row_and_loses_none(db_url: str, work: Path) -> None:
    engine = init_store(db_url)
    load_base(engine, work, upto="customers")
    result = run_import(engine, "facts", work / "facts_broken.csv")
    assert result.rows_read == 10
    assert result.rows_imported == 3  # f10, f17 (a quoted label on two lines), f18
    assert result.rows_quarantined == 7
    assert result.rows_imported + result.rows_quarantined == result.rows_read
    assert result.quarantine_file == work / "facts_broken.quarantine.csv"

    raw = result.quarantine_file.read_bytes()
    lines = raw.split(b"\r\n")
    assert lines[0] == (b"_tactful_row,_tactful_reason,id,customer_id,kind,category,implies,label,value,"
                        b"origin,source,context,at")
    with result.quarantine_file.open(encoding="utf-8", errors="replace", newline="") as f:
        quarantined = list(csv.reader(f))[1:]
    reasons = {int(r[0]): r[1] for r in quarantined}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 10]
    assert reasons[2].startswith("row 2 (line 3): at:") and "'2024-13-45'" in reasons[2]
    assert "origin:" in reasons[3] and "'guessed'" in reasons[3]
    assert reasons[4] == "row 4 (line 5): id: Field required"
    assert "expected 11 columns as in the header, got 3" in reasons[5]
    assert "line 7 is not valid utf-8: byte 0xe9" in reasons[6]
    assert "category:" in reasons[7] and "unknown data category 'user.sex_life'" in reasons[7]
    assert "user.sexual_life" in reasons[7]  # the suggestion
    assert "customer_id: 'c99' is not in the store's customers" in reasons[10]
    # the original bytes are kept, invalid ones included
    assert b"f15,c2,preference,user.behavior,,Caf\xe9 au lait," in raw
    assert b",f14,c1,attribute\r\n" in raw

    with engine.connect() as conn:
        ids = sorted(conn.execute(sa.select(tables.facts.c.id)).scalars())
        label = conn.execute(sa.select(tables.facts.c.label).where(tables.facts.c.id == "f17")).scalar_one()
        f18 = conn.execute(sa.select(tables.facts).where(tables.facts.c.id == "f18")).one()
    assert ids == ["f10", "f17", "f18"]
    assert label == "aisle seat,\nplease"
    assert f18.implies == ["user.health_and_medical.reproductive", "user.sexual_life"]

    # fix the quarantine file and import it with the same command: every row comes in
    fix_quarantine(result.quarantine_file)
    again = run_import(engine, "facts", result.quarantine_file)
    assert (again.rows_read, again.rows_imported, again.rows_quarantined) == (7, 7, 0), again.examples
    assert again.quarantine_file is None
    with engine.connect() as conn:
        ids = sorted(conn.execute(sa.select(tables.facts.c.id)).scalars())
        cafe = conn.execute(sa.select(tables.facts.c.label).where(tables.facts.c.id == "f15")).scalar_one()
    assert ids == [f"f{i}" for i in range(10, 20)]
    assert cafe == "Café au lait"
    engine.dispose()


def test_contact_point_for_unknown_customer_is_quarantined_not_a_crash(db_url: str, work: Path) -> None:
    engine = init_store(db_url)
    load_base(engine, work, upto="customers")
    path = work / "cps.csv"
    path.write_text("id,customer_id,kind,value\n"
                    "cpA,c1,email,a@example.org\n"
                    "cpB,ghost,email,b@example.org\n"
                    "cpC,c2,sms,c@example.org\n")
    result = run_import(engine, "contact-points", path, batch_size=2)
    assert (result.rows_read, result.rows_imported, result.rows_quarantined) == (3, 1, 2)
    text = (work / "cps.quarantine.csv").read_text()
    assert "customer_id: 'ghost' is not in the store's customers" in text
    assert "kind: Input should be 'email', 'phone' or 'postal', got 'sms'" in text
    engine.dispose()


def test_orders_reference_customers_and_products(db_url: str, work: Path) -> None:
    engine = init_store(db_url)
    load_base(engine, work, upto="products")
    path = work / "more_orders.csv"
    path.write_text("order_id,customer_id,at,line_no,product_id,quantity\n"
                    "o9,c1,2024-06-01,1,p1,1\n"
                    "o9,c1,2024-06-01,2,nope,1\n"
                    "o9,c1,2024-06-01,3,p2,-1\n"
                    "o8,zz,2024-06-01,1,p1,1\n")
    result = run_import(engine, "orders", path)
    assert (result.rows_read, result.rows_imported, result.rows_quarantined) == (4, 1, 3)
    text = (work / "more_orders.quarantine.csv").read_text()
    assert "product_id: 'nope' is not in the store's products" in text
    assert "quantity: Input should be greater than or equal to 0" in text
    assert "customer_id: 'zz' is not in the store's customers" in text
    with engine.connect() as conn:
        assert conn.execute(sa.select(tables.orders.c.id)).scalars().all() == ["o9"]
        assert conn.execute(sa.select(tables.order_lines.c.line_no)).scalars().all() == [1]
    engine.dispose()


def test_duplicate_ids_in_one_batch_last_row_wins(db_url: str, work: Path) -> None:
    engine = init_store(db_url)
    path = work / "dups.csv"
    path.write_text("id,size\nh1,1\nh1,2\nh2,3\n")
    result = run_import(engine, "households", path)
    assert (result.rows_read, result.rows_imported) == (3, 3)
    with engine.connect() as conn:
        assert dict(conn.execute(sa.select(tables.households.c.id, tables.households.c.size)).all()) == \
            {"h1": 2, "h2": 3}
    engine.dispose()


@pytest.mark.postgres
def test_rows_the_store_refuses_are_quarantined_one_by_one(pg_url: str, work: Path) -> None:
    """PostgreSQL enforces column lengths the models do not know (income is VARCHAR(40))."""
    engine = init_store(pg_url)
    path = work / "hh.csv"
    path.write_text("id,income\nh1,low\nh2," + "x" * 41 + "\nh3,high\n")
    result = run_import(engine, "households", path)
    assert (result.rows_read, result.rows_imported, result.rows_quarantined) == (3, 2, 1)
    assert "the store refused the row" in (work / "hh.quarantine.csv").read_text()
    with engine.connect() as conn:
        assert sorted(conn.execute(sa.select(tables.households.c.id)).scalars()) == ["h1", "h3"]
    engine.dispose()


# --------------------------------------------------------------------------- formats


def test_jsonl_bad_lines_are_quarantined_as_jsonl_and_reimport(tmp_path: Path, work: Path) -> None:
    engine = init_store(f"sqlite:///{tmp_path}/t.db")
    load_base(engine, work, upto="customers")
    path = work / "f.jsonl"
    good = {"id": "j1", "customer_id": "c1", "kind": "event", "category": "user.behavior",
            "origin": "observed", "source": "web", "context": "browse"}
    path.write_bytes(b"\n".join([
        json.dumps(good).encode(),
        b'{"id": "j2", "customer_id": "c1", "kind": "event"',  # broken JSON
        b"[1, 2]",  # not an object
        json.dumps({**good, "id": "j4", "colour": "red"}).encode(),  # unknown field
        # invalid UTF-8 (a latin-1 é)
        json.dumps({**good, "id": "j5", "label": "caf\xe9"}, ensure_ascii=False).encode("latin-1"),
        json.dumps({**good, "id": "j6", "implies": ["user.nope"]}).encode(),
    ]) + b"\n")
    result = run_import(engine, "facts", path)
    assert (result.rows_read, result.rows_imported, result.rows_quarantined) == (6, 1, 5)
    qfile = work / "f.quarantine.jsonl"
    assert result.quarantine_file == qfile
    bad = [json.loads(line) for line in qfile.read_text().splitlines()]
    assert [b["_tactful_row"] for b in bad] == [2, 3, 4, 5, 6]
    assert "not valid JSON" in bad[0]["_tactful_reason"]
    assert bad[0]["_tactful_raw"] == '{"id": "j2", "customer_id": "c1", "kind": "event"'
    assert "expected a JSON object" in bad[1]["_tactful_reason"]
    assert "colour: unknown field" in bad[2]["_tactful_reason"] and bad[2]["colour"] == "red"
    assert "not valid UTF-8" in bad[3]["_tactful_reason"]
    assert "implies[0]:" in bad[4]["_tactful_reason"] and bad[4]["implies"] == ["user.nope"]

    fixed = [
        {"_tactful_row": 2, "_tactful_reason": "x", "_tactful_raw": json.dumps({**good, "id": "j2"})},
        {**good, "id": "j3"},
        {k: v for k, v in bad[2].items() if k != "colour"},
        {**good, "id": "j5", "label": "café"},
        {**bad[4], "implies": ["user.sexual_life"]},
    ]
    qfile.write_text("\n".join(json.dumps(f) for f in fixed) + "\n")
    again = run_import(engine, "facts", qfile)
    assert (again.rows_read, again.rows_imported, again.rows_quarantined) == (5, 5, 0), again.examples
    with engine.connect() as conn:
        assert sorted(conn.execute(sa.select(tables.facts.c.id)).scalars()) == \
            ["j1", "j2", "j3", "j4", "j5", "j6"]
    engine.dispose()


def test_parquet_typed_columns_and_quarantine(tmp_path: Path, work: Path) -> None:
    engine = init_store(f"sqlite:///{tmp_path}/t.db")
    load_base(engine, work, upto="customers")
    path = work / "touches.parquet"
    table = pa.table({
        "id": ["t1", "t2", "t3", None],
        "customer_id": ["c1", "c2", "c1", "c1"],
        "kind": ["offer", "reminder", "telegram", "offer"],
        "purpose": ["marketing.communications.email"] * 4,
        "channel": ["email", "sms", "email", "email"],
        "at": pa.array([datetime(2024, 5, 1, 8, tzinfo=UTC)] * 4, pa.timestamp("us", tz="UTC")),
        "campaign": ["may", None, "may", "may"],
    })
    pq.write_table(table, path, row_group_size=2)  # two row groups: read in batches
    result = run_import(engine, "touches", path)
    assert (result.rows_read, result.rows_imported, result.rows_quarantined) == (4, 2, 2)
    qfile = work / "touches.quarantine.jsonl"
    bad = [json.loads(line) for line in qfile.read_text().splitlines()]
    assert [b["_tactful_row"] for b in bad] == [3, 4]
    assert bad[0]["at"] == "2024-05-01T08:00:00+00:00" and "'telegram'" in bad[0]["_tactful_reason"]
    bad[0]["kind"] = "survey"
    bad[1]["id"] = "t4"
    qfile.write_text("\n".join(json.dumps(b) for b in bad) + "\n")
    again = run_import(engine, "touches", qfile)
    assert (again.rows_read, again.rows_imported, again.rows_quarantined) == (2, 2, 0), again.examples
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tables.touches.c.id, tables.touches.c.kind)
                            .order_by(tables.touches.c.id)).all()
    assert [tuple(r) for r in rows] == [("t1", "offer"), ("t2", "reminder"), ("t3", "survey"),
                                        ("t4", "offer")]
    engine.dispose()


def test_parquet_dates_and_numbers(tmp_path: Path) -> None:
    engine = init_store(f"sqlite:///{tmp_path}/t.db")
    run_import(engine, "households", DATA / "households.csv")
    path = tmp_path / "customers.parquet"
    pq.write_table(pa.table({
        "id": ["p1", "p2"], "household_id": ["h1", None],
        "birth_date": pa.array([date(1970, 1, 2), None], pa.date32()),
        "deceased": [False, True],
    }), path)
    result = run_import(engine, "customers", path)
    assert result.rows_imported == 2 and result.format == "parquet"
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.select(tables.customers.c.id, tables.customers.c.birth_date)).all())
    assert rows == {"p1": date(1970, 1, 2), "p2": None}
    engine.dispose()


def test_format_from_option_and_extension(tmp_path: Path) -> None:
    engine = init_store(f"sqlite:///{tmp_path}/t.db")
    odd = tmp_path / "households.export"
    odd.write_text('{"id": "h7", "size": 2}\n')
    with pytest.raises(IngestError, match="cannot tell the format"):
        run_import(engine, "households", odd)
    result = run_import(engine, "households", odd, fmt="jsonl")
    assert result.rows_imported == 1 and result.format == "jsonl"
    with pytest.raises(IngestError, match="does not exist"):
        run_import(engine, "households", tmp_path / "missing.csv")
    engine.dispose()


def test_stale_quarantine_file_is_removed_when_the_rows_are_fixed(tmp_path: Path) -> None:
    engine = init_store(f"sqlite:///{tmp_path}/t.db")
    path = tmp_path / "hh.csv"
    path.write_text("id,size\nh1,zero\n")
    assert run_import(engine, "households", path).rows_quarantined == 1
    assert (tmp_path / "hh.quarantine.csv").exists()
    path.write_text("id,size\nh1,1\n")
    assert run_import(engine, "households", path).rows_quarantined == 0
    assert not (tmp_path / "hh.quarantine.csv").exists()
    engine.dispose()


def test_products_use_the_sensitivity_file_when_given(tmp_path: Path) -> None:
    engine = init_store(f"sqlite:///{tmp_path}/t.db")
    rules = tmp_path / "sens.yaml"
    rules.write_text("version: 1\nrules:\n  - id: shoes\n    when:\n      category: [SHOES]\n"
                     "    implies: [user.behavior]\n")
    result = run_import(engine, "products", DATA / "products.csv", sensitivity_path=rules,
                        quarantine_path=tmp_path / "q.csv")
    assert result.rows_imported == 4
    with engine.connect() as conn:
        implies: dict[str, Any] = {
            r[0]: r[1] for r in conn.execute(sa.select(tables.products.c.id, tables.products.c.implies))}
    assert implies == {"p1": [], "p2": [], "p3": ["user.sexual_life"], "p4": ["user.behavior"]}
    with pytest.raises(IngestError, match="products only"):
        run_import(engine, "households", DATA / "households.csv", sensitivity_path=rules)
    engine.dispose()


def test_values_seen_in_good_rows_are_reused_and_bad_rows_keep_their_reasons(tmp_path: Path,
                                                                             work: Path) -> None:
    """A row made of values that already validated is taken without validating again; a row with one
    new value is validated in full and quarantined with the same reason as on its own."""
    engine = init_store(f"sqlite:///{tmp_path}/t.db")
    load_base(engine, work, upto="products")
    header = "order_id,customer_id,at,source,context,store_id,total,line_no,product_id,quantity,amount\n"
    good = "o1,c1,2024-05-01T09:30:00Z,pos,checkout,s1,7.5,1,p1,2,3.0\n"
    bad = "o1,c1,2024-05-01T09:30:00Z,pos,checkout,s1,7.5,2,p1,-2,3.0\n"
    alone = tmp_path / "alone.csv"
    alone.write_text(header + bad)
    after = tmp_path / "after.csv"
    after.write_text(header + good + good.replace(",1,p1,", ",3,p1,") + bad)
    first = run_import(engine, "orders", alone)
    second = run_import(engine, "orders", after)
    assert (second.rows_read, second.rows_imported, second.rows_quarantined) == (3, 2, 1)
    assert first.examples == [second.examples[0].replace("row 3 (line 4)", "row 1 (line 2)")]
    assert "quantity" in first.examples[0]
    with engine.connect() as conn:
        lines = conn.execute(sa.select(tables.order_lines.c.line_no, tables.order_lines.c.quantity)
                             .where(tables.order_lines.c.order_id == "o1")).all()
        at = conn.execute(sa.select(tables.orders.c.at).where(tables.orders.c.id == "o1")).scalar_one()
    assert sorted(lines) == [(1, 2.0), (3, 2.0)]
    assert at.replace(tzinfo=UTC) == datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    engine.dispose()
