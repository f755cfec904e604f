"""Issue 8 §1/§2: only the documented value syntaxes are accepted, and one bad row (of any kind: an
odd value, a JSON line nested thousands deep, a number of thousands of digits, a date-time out of range
once moved to UTC, an integer beyond 64 bits) is quarantined with its reason while the import goes on.

Each bad case comes with its benign twin in the same file: a good row that must still be imported.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tactful.errors import IngestError
from tactful.ingest import run_import
from tactful.ingest.kinds import KINDS, RowError
from tactful.store import tables
from tactful.store.db import init_store


@pytest.fixture()
def store(tmp_path: Path) -> Engine:
    engine = init_store(f"sqlite:///{tmp_path / 'store.db'}")
    (tmp_path / "hh.csv").write_text("id\nh1\n")
    (tmp_path / "c.csv").write_text("id,household_id\nc1,h1\n")
    (tmp_path / "p.csv").write_text("id,implies\np1,\n")
    for kind, name in (("households", "hh.csv"), ("customers", "c.csv"), ("products", "p.csv")):
        assert run_import(engine, kind, tmp_path / name).rows_quarantined == 0
    return engine


def quarantined(path: Path) -> dict[int, str]:
    """Row number → reason, from a quarantine file of either kind."""
    out: dict[int, str] = {}
    if path.suffix == ".jsonl":
        for line in path.read_text(encoding="utf-8").splitlines():
            obj = json.loads(line)
            out[obj["_tactful_row"]] = obj["_tactful_reason"]
    else:
        import csv

        with path.open(newline="", encoding="utf-8") as f:
            for rec in csv.DictReader(f):
                out[int(rec["_tactful_row"])] = rec["_tactful_reason"]
    return out


def ids(engine: Engine, table: sa.Table) -> set[str]:
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(sa.select(table.c.id))}


# --------------------------------------------------------------------------- the value checks alone


def validate(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    items = KINDS[kind].validate(values)
    out: dict[str, Any] = {}
    for _target, item in items:
        out.update(item.model_dump())
    return out


def problems(kind: str, values: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(RowError) as info:
        KINDS[kind].validate(values)
    return info.value.problems


@pytest.mark.parametrize("value", [0, 20240501, -86400, "0", "00000000", "-86400", "20240501", 1.5e9])
def test_a_bare_integer_is_not_a_date(value: Any) -> None:
    (name, message), = problems("customers", {"id": "c1", "birth_date": value})
    assert name == "birth_date" and "YYYY-MM-DD" in message
    (name, message), = problems("consents", {"id": "k", "customer_id": "c1", "purpose": "marketing",
                                             "status": "granted", "source": "form", "at": value})
    assert name == "at" and "ISO 8601" in message


def test_documented_dates_still_pass() -> None:
    got = validate("customers", {"id": "c1", "birth_date": " 1980-02-29 "})
    assert got["birth_date"] == date(1980, 2, 29)
    base = {"id": "k", "customer_id": "c1", "purpose": "marketing", "status": " granted ",
            "source": "form"}
    for text, expected in [("2024-05-31", datetime(2024, 5, 31, tzinfo=UTC)),
                           (" 2024-05-31T09:30:00Z ", datetime(2024, 5, 31, 9, 30, tzinfo=UTC)),
                           ("2024-05-31 09:30+02:00", datetime(2024, 5, 31, 7, 30, tzinfo=UTC)),
                           ("2024-05-31T09:30:00.250", datetime(2024, 5, 31, 9, 30, 0, 250000, tzinfo=UTC))]:
        assert validate("consents", {**base, "at": text})["at"] == expected, text


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "+Infinity", "1e400", float("nan"),
                                   float("inf"), 10**400])
def test_nan_and_infinity_are_not_numbers(value: Any) -> None:
    row = {"order_id": "o1", "customer_id": "c1", "at": "2024-01-01", "line_no": "1", "product_id": "p1"}
    (name, message), = problems("orders", {**row, "quantity": value})
    assert name == "quantity" and "finite number" in message
    assert validate("orders", {**row, "quantity": " 2.5 "})["quantity"] == 2.5


@pytest.mark.parametrize("value", ["2147483648", 2**31, -(2**31) - 1, 2**64, "9" * 5000, 1e30])
def test_an_integer_beyond_its_column_is_a_row_error(value: Any) -> None:
    (name, message), = problems("households", {"id": "h", "kids_count": value})
    assert name == "kids_count" and "from -2147483648 to 2147483647" in message
    assert validate("households", {"id": "h", "kids_count": "2147483647"})["kids_count"] == 2**31 - 1


def test_surrounding_spaces_are_trimmed_for_every_type() -> None:
    got = validate("contact-points", {"id": " cp1 ", "customer_id": "c1", "kind": " email ",
                                      "value": " a@b.c ", "shared_with": "\tprivate ", "bounced": " yes ",
                                      "verified_at": " 2024-01-02 "})
    assert got["id"] == "cp1" and got["kind"].value == "email" and got["shared_with"].value == "private"
    assert got["bounced"] is True and got["verified_at"] == datetime(2024, 1, 2, tzinfo=UTC)


def test_text_with_nul_or_a_lone_surrogate_is_a_row_error() -> None:
    for bad in ("a\x00b", "a\ud800b"):
        (name, _message), = problems("customers", {"id": "c9", "first_name": bad})
        assert name == "first_name"


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:30:00-05:00"])
def test_a_date_time_out_of_range_in_utc_is_a_row_error(value: str) -> None:
    (name, message), = problems("consents", {"id": "k", "customer_id": "c1", "purpose": "marketing",
                                             "status": "granted", "source": "form", "at": value})
    assert name == "at" and "out of range once moved to UTC" in message


# --------------------------------------------------------------------------- whole imports


def test_jsonl_bad_rows_of_every_kind_are_quarantined_and_the_import_goes_on(store: Engine,
                                                                               tmp_path: Path) -> None:
    good = {"customer_id": "c1", "purpose": "marketing", "status": "granted", "source": "form",
            "at": "2024-05-01T00:00:00Z"}
    lines = [
        json.dumps({"id": "k1", **good}),
        '{"id": "k2", "evidence": ' + "[" * 5000 + "]" * 5000 + "}",  # nested thousands deep
        '{"id": "k3", "evidence": ' + "7" * 5000 + "}",  # a number of thousands of digits
        json.dumps({"id": "k4", **good, "at": 20240501}),  # a bare integer
        json.dumps({"id": "k5", **good, "at": "0001-01-01T00:30:00+01:00"}),  # before year 1 in UTC
        '{"id": "k6", "customer_id": "c1", "evidence": "\\ud800"}',  # a lone surrogate
        "   \t  ",  # whitespace only: a blank line, not a row
        json.dumps({"id": "k7", **good, "at": " 2024-05-02 ", "status": " denied "}),
    ]
    path = tmp_path / "consents.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_import(store, "consents", path, batch_size=100)
    assert (result.rows_read, result.rows_imported, result.rows_quarantined) == (7, 2, 5)
    assert ids(store, tables.consents) == {"k1", "k7"}
    reasons = quarantined(path.with_name("consents.quarantine.jsonl"))
    assert sorted(reasons) == [2, 3, 4, 5, 6]
    assert "nested too deeply" in reasons[2]
    assert "4300" in reasons[3] or "digits" in reasons[3]
    assert "at: expected an ISO 8601" in reasons[4] and "20240501" in reasons[4]
    assert "out of range once moved to UTC" in reasons[5]
    assert "surrogate" in reasons[6]


def test_jsonl_duplicate_keys_are_a_row_error(store: Engine, tmp_path: Path) -> None:
    good = {"customer_id": "c1", "purpose": "marketing", "source": "form", "at": "2024-05-01T00:00:00Z"}
    lines = [
        json.dumps({"id": "d1", **good, "status": "denied"}),
        # a refusal that a second "status" would silently turn into a grant if the last key won
        '{"id": "d2", "customer_id": "c1", "purpose": "marketing", "source": "form", '
        '"at": "2024-05-01T00:00:00Z", "status": "denied", "status": "granted"}',
        '{"id": "d3", "customer_id": "c1", "purpose": "marketing", "source": "form", '
        '"at": "2024-05-01T00:00:00Z", "status": "denied", "extra": {"a": 1, "a": 2}}',
        json.dumps({"id": "d4", **good, "status": "granted"}),
    ]
    path = tmp_path / "consents.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_import(store, "consents", path, batch_size=100)
    assert (result.rows_read, result.rows_imported, result.rows_quarantined) == (4, 2, 2)
    assert ids(store, tables.consents) == {"d1", "d4"}
    reasons = quarantined(path.with_name("consents.quarantine.jsonl"))
    assert sorted(reasons) == [2, 3]
    assert "'status' appears twice" in reasons[2]
    assert "'a' appears twice" in reasons[3]


def test_jsonl_integer_beyond_64_bits_and_inf_are_row_errors(store: Engine, tmp_path: Path) -> None:
    row = {"order_id": "o1", "customer_id": "c1", "at": "2024-01-01T10:00:00Z", "product_id": "p1"}
    lines = [json.dumps({**row, "line_no": 1}),
             json.dumps({**row, "line_no": 2**70}),
             json.dumps({**row, "line_no": 3, "quantity": float("inf")}),  # json.dumps writes Infinity
             json.dumps({**row, "line_no": 4, "amount": -1e999})]
    path = tmp_path / "orders.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = run_import(store, "orders", path)
    assert (result.rows_imported, result.rows_quarantined) == (1, 3)
    reasons = quarantined(path.with_name("orders.quarantine.jsonl"))
    assert "line_no: expected an integer from" in reasons[2]
    assert "quantity: expected a finite number" in reasons[3]
    assert "amount: expected a finite number" in reasons[4]


def test_csv_values_trimmed_and_whitespace_lines_are_blank(store: Engine, tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text("  \n id , birth_date , openness , deceased \n"
                    "c2, 1980-01-02 , open , yes \n"
                    "   \n"
                    "\t\n"
                    "c3,00000000,,\n"
                    "c4,0,,\n"
                    "c5,-86400,,\n", encoding="utf-8")
    result = run_import(store, "customers", path)
    assert (result.rows_read, result.rows_imported, result.rows_quarantined) == (4, 1, 3)
    with store.connect() as conn:
        c2 = conn.execute(sa.select(tables.customers).where(tables.customers.c.id == "c2")).one()
    assert c2.birth_date == date(1980, 1, 2) and c2.openness == "open" and c2.deceased is True
    reasons = quarantined(path.with_name("customers.quarantine.csv"))
    assert sorted(reasons) == [2, 3, 4]
    assert all("birth_date: expected a date as YYYY-MM-DD" in r for r in reasons.values())


def test_parquet_with_a_column_twice_is_refused(tmp_path: Path, store: Engine) -> None:
    path = tmp_path / "h.parquet"
    table = pa.Table.from_arrays([pa.array(["h2"]), pa.array([2]), pa.array([3])],
                                 names=["id", "size", "size"])
    pq.write_table(table, path)
    with pytest.raises(IngestError, match=r"h.parquet: column 'size' appears twice"):
        run_import(store, "households", path)
    assert ids(store, tables.households) == {"h1"}


def test_parquet_nan_and_out_of_range_values_are_row_errors(tmp_path: Path, store: Engine) -> None:
    path = tmp_path / "lines.parquet"
    n = 4
    table = pa.table({
        "order_id": ["o1"] * n, "customer_id": ["c1"] * n,
        "at": pa.array([datetime(2024, 1, 1, tzinfo=UTC)] * n, pa.timestamp("us", tz="UTC")),
        "line_no": pa.array([1, 2, 2**40, 4], pa.int64()), "product_id": ["p1"] * n,
        "quantity": pa.array([1.0, float("nan"), 1.0, float("-inf")]),
    })
    pq.write_table(table, path)
    result = run_import(store, "orders", path)
    assert (result.rows_imported, result.rows_quarantined) == (1, 3)
    reasons = quarantined(path.with_name("lines.quarantine.jsonl"))
    assert "quantity: expected a finite number" in reasons[2] and "line_no" in reasons[3]
    assert "quantity" in reasons[4]


def test_parquet_timestamp_beyond_python_is_one_bad_row(tmp_path: Path, store: Engine) -> None:
    path = tmp_path / "consents.parquet"
    big = 300_000_000_000_000_000  # microseconds: about year 11476
    table = pa.table({
        "id": ["k1", "k2"], "customer_id": ["c1", "c1"], "purpose": ["marketing"] * 2,
        "status": ["granted"] * 2, "source": ["form"] * 2,
        "at": pa.array([1_700_000_000_000_000, big], pa.timestamp("us", tz="UTC")),
    })
    pq.write_table(table, path)
    result = run_import(store, "consents", path)
    assert (result.rows_imported, result.rows_quarantined) == (1, 1)
    assert ids(store, tables.consents) == {"k1"}


def test_corrupt_parquet_page_exits_2_naming_the_file(tmp_path: Path, store: Engine) -> None:
    path = tmp_path / "hh.parquet"
    pq.write_table(pa.table({"id": [f"h{i}" for i in range(2, 2000)],
                             "composition": [f"text {i} " * 20 for i in range(2, 2000)]}), path,
                   compression="snappy", use_dictionary=False)
    data = bytearray(path.read_bytes())
    start = len(data) // 3
    data[start:start + 2000] = bytes(2000)  # zeros in the middle of the data pages
    path.write_bytes(bytes(data))
    with pytest.raises(IngestError, match=r"hh.parquet"):
        run_import(store, "households", path)


def test_cli_corrupt_parquet_and_a_column_twice_exit_2(tmp_path: Path, store: Engine) -> None:
    from tactful.testing.cli import run_cli

    url = str(store.url)
    twice = tmp_path / "twice.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array(["h2"]), pa.array(["a"]), pa.array(["b"])],
                                        names=["id", "income", "income"]), twice)
    code, _out, err = run_cli(["import", "households", str(twice), "--db", url])
    assert code == 2 and "twice.parquet" in err and "appears twice" in err and "Traceback" not in err
    broken = tmp_path / "broken.parquet"
    pq.write_table(pa.table({"id": [f"h{i}" for i in range(2, 2000)],
                             "composition": [f"text {i} " * 20 for i in range(2, 2000)]}), broken,
                   use_dictionary=False)
    data = bytearray(broken.read_bytes())
    data[len(data) // 3:len(data) // 3 + 2000] = bytes(2000)
    broken.write_bytes(bytes(data))
    code, _out, err = run_cli(["import", "households", str(broken), "--db", url])
    assert code == 2 and "broken.parquet" in err and "Traceback" not in err
