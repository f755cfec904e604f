"""The streaming CSV reader: quoting, broken lines, encodings, headers, and the promise that every row
is either imported or quarantined."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tactful.errors import IngestError
from tactful.ingest import run_import
from tactful.ingest.mapping import CsvOptions
from tactful.ingest.readers import CsvReader, RawRecord
from tactful.store import tables
from tactful.store.db import init_store


def read(path: Path, data: bytes, options: CsvOptions | None = None) -> tuple[CsvReader, list[RawRecord]]:
    path.write_bytes(data)
    reader = CsvReader(path, options or CsvOptions())
    try:
        return reader, list(reader)
    finally:
        reader.close()


def test_a_quote_never_closed_spoils_one_row_not_the_rest(tmp_path: Path) -> None:
    data = b'id,size,income\nh1,1,low\nh2,2,"high\nh3,3,low\nh4,4,"mid, upper"\nh5,5,low\n'
    _, records = read(tmp_path / "a.csv", data)
    assert [(r.row, r.line) for r in records] == [(1, 2), (2, 3), (3, 4), (4, 5), (5, 6)]
    assert records[1].values is None and "quoted field opened on line 3 is never closed" in \
        (records[1].problem or "")
    assert records[1].raw == b'h2,2,"high\n'
    assert [r.values["id"] for r in records if r.values] == ["h1", "h3", "h4", "h5"]
    assert records[3].values == {"id": "h4", "size": "4", "income": "mid, upper"}


def test_a_quote_never_closed_at_the_end_of_the_file(tmp_path: Path) -> None:
    _, records = read(tmp_path / "a.csv", b'id,size\nh1,1\nh2,"2\nh3,3\n')
    assert [r.values["id"] if r.values else None for r in records] == ["h1", None, "h3"]


def test_a_multiline_row_with_a_wrong_column_count_is_kept_whole(tmp_path: Path) -> None:
    data = b'id,size,income\nh1,"two\nlines",low,extra\nh2,2,low\n'
    _, records = read(tmp_path / "a.csv", data)
    assert len(records) == 2
    assert records[0].problem == "expected 3 columns as in the header, got 4"
    assert records[0].raw == b'h1,"two\nlines",low,extra\n'
    assert records[1].values == {"id": "h2", "size": "2", "income": "low"}


def test_a_broken_row_whose_next_lines_are_not_rows_is_kept_whole(tmp_path: Path) -> None:
    """A quote inside a multi-line field: the continuation line is no row of its own (it would import
    as a household called 'li"nes"'), so both lines are one bad row."""
    _, records = read(tmp_path / "a.csv", b'id,size\nh1,"two\nli"nes",x\nh2,2\n')
    assert len(records) == 2
    assert records[0].problem is not None and records[0].problem.startswith("lines 2-3 are not valid CSV")
    assert records[0].raw == b'h1,"two\nli"nes",x\n'
    assert records[1].values == {"id": "h2", "size": "2"}


def test_an_oversized_field_is_one_bad_row(tmp_path: Path) -> None:
    huge = b'"' + b"x" * 200_000 + b"\n"
    _, records = read(tmp_path / "a.csv", b"id,size\nh1," + huge + b"h2,2\n")
    assert [r.values["id"] if r.values else None for r in records] == [None, "h2"]
    assert "not valid CSV" in (records[0].problem or "")


def test_bom_blank_lines_crlf_and_no_final_newline(tmp_path: Path) -> None:
    reader, records = read(tmp_path / "a.csv", b"\xef\xbb\xbfid,size\r\n\r\nh1,1\r\n\r\nh2,2")
    assert reader.columns == ["id", "size"]
    assert [(r.row, r.line, r.values) for r in records] == [
        (1, 3, {"id": "h1", "size": "1"}), (2, 5, {"id": "h2", "size": "2"})]
    assert records[0].raw == b"h1,1\r\n"


def test_delimiter_quotechar_and_encoding_options(tmp_path: Path) -> None:
    options = CsvOptions(delimiter=";", quotechar="'", encoding="cp1252")
    _, records = read(tmp_path / "a.csv", b"id;income\nh1;'a;b'\nh2;caf\xe9\n", options)
    assert [r.values for r in records] == [{"id": "h1", "income": "a;b"}, {"id": "h2", "income": "café"}]


@pytest.mark.parametrize(("data", "message"), [
    (b"", "the file is empty"),
    (b"\n\n", "the file is empty"),
    (b"id,id\nh1,h2\n", "column 'id' appears twice"),
    (b"id,,size\n", "column 2 of the header has no name"),
    (b"id,s\xffze\n", "line 1 is not valid utf-8"),
])
def test_header_problems_stop_the_import(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(data)
    with pytest.raises(IngestError, match=message):
        CsvReader(path, CsvOptions())


def test_required_and_unknown_columns_are_checked_before_any_row(tmp_path: Path) -> None:
    engine = init_store(f"sqlite:///{tmp_path}/t.db")
    path = tmp_path / "c.csv"
    path.write_text("household_id,first_name\nh1,Ann\n")
    with pytest.raises(IngestError, match="no column for the required field 'id' of customers"):
        run_import(engine, "customers", path)
    path.write_text("id,first_name,shoe_size\nc1,Ann,38\n")
    with pytest.raises(IngestError, match="'shoe_size' are not fields of customers") as info:
        run_import(engine, "customers", path)
    assert "mapping" in str(info.value)
    with engine.connect() as conn:  # nothing was written, not even an import record
        assert conn.execute(sa.select(sa.func.count()).select_from(tables.imports)).scalar_one() == 0
    engine.dispose()


_PIECES = st.sampled_from(["h", "1", "2", "x", ",", ",", '"', " ", "\xff", "\r", "-3", "\n"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.lists(_PIECES, max_size=8).map("".join), max_size=12))
def test_every_row_is_imported_or_quarantined(tmp_path: Path, lines: list[str]) -> None:
    """Whatever the garbage, rows read == imported + quarantined, and the store holds the ids of
    exactly the rows the importer says it took."""
    db = tmp_path / "prop.db"
    engine = init_store(f"sqlite:///{db}") if not db.exists() else sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(tables.households.delete())
    path = tmp_path / "hh.csv"
    body = "\n".join(f"h{i}{line}" for i, line in enumerate(lines))
    path.write_bytes(b"id,size\n" + body.encode("latin-1") + b"\n")
    result = run_import(engine, "households", path, batch_size=3)
    assert result.rows_read == result.rows_imported + result.rows_quarantined
    with engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(tables.households)).scalar_one()
    assert stored <= result.rows_imported  # equal unless an id repeats (the last row wins)
    if result.rows_quarantined:
        assert result.quarantine_file is not None
        text = result.quarantine_file.read_bytes()
        assert text.startswith(b"_tactful_row,_tactful_reason,id,size\n")
        assert text.count(b"row ") >= result.rows_quarantined
    engine.dispose()


@pytest.mark.parametrize(("block", "max_line"), [(1, 8), (3, 1000), (7, 9), (64, 16)])
def test_block_reading_matches_line_by_line_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    block: int, max_line: int) -> None:
    """Reading the file in blocks splits it into lines exactly as readline(MAX_LINE) would: rows that
    straddle blocks, multi-line fields, invalid bytes, CRLF and very long lines come out the same."""
    from tactful.ingest import readers

    data = (b'\xef\xbb\xbfid,size,income\r\nh1,1,low\r\nh2,2,"two\nlines"\nh3,3,caf\xe9\n\nh4,4,'
            + b"x" * 40 + b'\nh5,5,"never closed\nh6,6,end')
    _, expected = read(tmp_path / "a.csv", data)
    monkeypatch.setattr(readers, "_BLOCK", block)
    _, got = read(tmp_path / "b.csv", data)
    assert [(r.row, r.line, r.values, r.problem, r.raw) for r in got] == \
        [(r.row, r.line, r.values, r.problem, r.raw) for r in expected]
    monkeypatch.setattr(readers, "MAX_LINE", max_line)
    _, pieces = read(tmp_path / "c.csv", b"id,size\n" + b"h7," + b"9" * 30 + b"\nh8,8\n")
    lines = [(r.line, r.raw) for r in pieces]
    assert b"".join(raw or b"" for _, raw in lines) == b"h7," + b"9" * 30 + b"\nh8,8\n"
    assert all(len(raw or b"") <= max(max_line, 8) for _, raw in lines)
