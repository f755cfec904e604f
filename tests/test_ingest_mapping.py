"""Column mapping YAML: applied to real exports, and refused with clear errors when it is wrong."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from tactful.errors import IngestError
from tactful.ingest import run_import
from tactful.ingest.kinds import KINDS
from tactful.ingest.mapping import apply, load_mapping, parse_mapping
from tactful.store import tables
from tactful.store.db import init_store

DATA = Path(__file__).parent / "data" / "ingest"


def test_shopx_consents_with_a_mapping(tmp_path: Path) -> None:
    for name in ("households.csv", "customers.csv", "shopx_consents.csv"):
        shutil.copy(DATA / name, tmp_path / name)
    engine = init_store(f"sqlite:///{tmp_path}/t.db")
    run_import(engine, "households", tmp_path / "households.csv")
    run_import(engine, "customers", tmp_path / "customers.csv")
    mapping = DATA / "mappings" / "shopx_consents.yaml"
    result = run_import(engine, "consents", tmp_path / "shopx_consents.csv", mapping_path=mapping,
                        source_label="shopx-2024-06")
    assert (result.rows_read, result.rows_imported, result.rows_quarantined) == (3, 2, 1)
    reason = (tmp_path / "shopx_consents.quarantine.csv").read_text().splitlines()[1]
    assert reason.startswith("3;")  # the quarantine keeps the input's delimiter
    assert "at (column 'Date'): expected a date in the format '%d.%m.%Y %H:%M', got '31.04.2024 09:00'" \
        in reason
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(tables.consents))}
        imp = conn.execute(sa.select(tables.imports).where(tables.imports.c.id == result.import_id)).one()
    assert set(rows) == {"S-1", "S-2"}
    s1, s2 = rows["S-1"], rows["S-2"]
    assert (s1.customer_id, s1.purpose, s1.channel, s1.status, s1.source, s1.evidence) == \
        ("c1", "marketing.communications.email", "email", "granted", "import", "web form")
    assert (s2.purpose, s2.channel, s2.status, s2.evidence) == \
        ("marketing.communications.postal", "postal_mail", "denied", None)
    assert (s1.at.year, s1.at.month, s1.at.day, s1.at.hour, s1.at.minute) == (2024, 2, 1, 10, 15)
    assert imp.source_label == "shopx-2024-06"
    assert imp.mapping["fields"]["status"]["values"] == {"Y": "granted", "N": "denied", "W": "withdrawn"}
    assert imp.mapping["file"].endswith("shopx_consents.yaml")

    # a value the map does not list passes through and fails validation, naming their column
    (tmp_path / "more.csv").write_text("ConsentNo;CustNo;Topic;Channel;OptIn;Date;Note\n"
                                       "S-4;c1;NEWS;E-Mail;maybe;01.02.2024 10:15;\n")
    more = run_import(engine, "consents", tmp_path / "more.csv", mapping_path=mapping)
    assert more.rows_quarantined == 1
    assert "status (column 'OptIn'): Input should be 'granted', 'denied' or 'withdrawn', got 'maybe'" in \
        more.examples[0]
    engine.dispose()


def test_value_maps_constants_dates_and_lists() -> None:
    kind = KINDS["products"]
    mapping = parse_mapping({
        "list_separator": ";",
        "fields": {"id": "SKU", "implies": "Labels", "brand": {"value": "house"},
                   "department": {"column": "Dept", "values": {"": "NONE", "ADULT": "ADULT SHOP"}}},
    }, kind)
    row = {"SKU": " 42 ", "Labels": "user.sexual_life; user.behavior ;", "Dept": "ADULT"}
    assert apply(mapping, row) == {"id": " 42 ", "implies": ["user.sexual_life", "user.behavior"],
                                   "brand": "house", "department": "ADULT SHOP"}
    # empty cells are left out so the model's defaults apply
    assert apply(mapping, {"SKU": "1", "Labels": "", "Dept": "  "}) == {"id": "1", "brand": "house"}

    customers = parse_mapping({
        "date_format": ["%d/%m/%Y", "%Y%m%d"],
        "fields": {"deceased": {"column": "Dead", "values": {"yes": True, "no": False}},
                   "openness": {"column": "P", "values": {"1": "open", "0": "closed"}}},
    }, KINDS["customers"])
    values = apply(customers, {"id": "c", "birth_date": "19800203", "Dead": "yes", "P": 1})
    assert str(values["birth_date"]) == "1980-02-03" and values["deceased"] is True
    assert values["openness"] == "open"  # non-text values match the map's keys by their text


def bad(tmp_path: Path, text: str, kind: str = "consents") -> str:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(IngestError) as info:
        load_mapping(path, KINDS[kind])
    return str(info.value)


@pytest.mark.parametrize(("text", "expected"), [
    ("fields: {id: X}\ncolumns: {}\n", "m.yaml: columns: unknown key; expected one of kind, format, csv"),
    ("fields: {idd: X}\n", "m.yaml: fields.idd: unknown key; expected one of id, customer_id"),
    ("fields: {status: {column: S, value: granted}}\n", "fields.status: expected exactly one of column"),
    ("fields: {status: {column: S, values: {Y: grant}}}\n",
     "fields.status.values.Y: expected one of granted, denied, withdrawn, got 'grant'"),
    ("fields: {status: {column: S, mapping: {}}}\n", "fields.status.mapping: unknown key"),
    ("fields: {purpose: {value: marketing.spam}}\n",
     "fields.purpose.value: unknown data use 'marketing.spam'"),
    ("fields: {status: [a, b]}\n", "fields.status: expected their column name, or a mapping"),
    ("date_format: dd.mm.yyyy\n", "date_format: expected a strptime format with % directives"),
    ("fields: {evidence: {column: E, date_format: '%d'}}\n", "evidence is a text field, not a date"),
    ("fields: {evidence: {column: E, split: ','}}\n", "fields.evidence.split: expected a separator"),
    ("kind: orders\n", "kind: this mapping is for orders, not consents"),
    ("kind: parcels\n", "kind: expected one of households, customers"),
    ("format: xlsx\n", "format: expected one of csv, jsonl, parquet, got 'xlsx'"),
    ("csv: {delimiter: ab}\n", "csv.delimiter: expected one character"),
    ("csv: {encoding: utf-16}\n", "csv.encoding: expected an ASCII-compatible encoding"),
    ("csv: {encoding: klingon}\n", "csv.encoding: expected an encoding name"),
    ("- id\n- status\n", "(document): expected a mapping with 'fields'"),
    ("fields:\n  id: [unclosed\n", "m.yaml:3:1: not valid YAML"),
])
def test_mapping_errors_name_file_key_and_expectation(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in bad(tmp_path, text)


def test_a_file_that_is_not_a_mapping_is_not_echoed(tmp_path: Path) -> None:
    # `--mapping /etc/passwd` parses as one YAML text: the error names its type, never its content
    message = bad(tmp_path, "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin\n")
    assert "(document): expected a mapping with 'fields'" in message and "got a text" in message
    assert "/bin/bash" not in message and "daemon" not in message


def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    message = bad(tmp_path, "fields: {custmer_id: Cust}\n")
    assert "did you mean 'customer_id'?" in message


def test_missing_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match=r"mapping file .* does not exist"):
        load_mapping(tmp_path / "nope.yaml", KINDS["customers"])


def test_a_mapped_column_missing_from_the_header_stops_the_import(tmp_path: Path) -> None:
    engine = init_store(f"sqlite:///{tmp_path}/t.db")
    mapping = tmp_path / "m.yaml"
    mapping.write_text("fields:\n  id: HouseholdNo\n  size: Persons\n")
    data = tmp_path / "h.csv"
    data.write_text("HouseholdNo,People\nh1,2\n")
    with pytest.raises(IngestError, match=r"fields\.size: column 'Persons' is not in h\.csv") as info:
        run_import(engine, "households", data, mapping_path=mapping)
    assert "HouseholdNo, People" in str(info.value)
    # mapped right, the unnamed extra column is ignored (a mapping says which columns matter)
    mapping.write_text("fields:\n  id: HouseholdNo\n  size: People\n")
    data.write_text("HouseholdNo,People,Colour\nh1,2,red\n")
    assert run_import(engine, "households", data, mapping_path=mapping).rows_imported == 1
    engine.dispose()


def test_mapping_format_is_used_when_the_extension_says_nothing(tmp_path: Path) -> None:
    engine = init_store(f"sqlite:///{tmp_path}/t.db")
    mapping = tmp_path / "m.yaml"
    mapping.write_text("format: jsonl\nfields: {id: hh}\n")
    data = tmp_path / "h.dump"
    data.write_text('{"hh": "h1", "size": 2}\n')
    result = run_import(engine, "households", data, mapping_path=mapping)
    assert (result.format, result.rows_imported) == ("jsonl", 1)
    engine.dispose()
