"""The input hash: the canonical text of a feature row, computed the same in Python and in DuckDB."""

from __future__ import annotations

from typing import Any

import ibis

from tactful.batch.frame import frame_from_values
from tactful.batch.run import NULL_TEXT, feature_hash, feature_text, input_hash_expr
from tactful.features import FEATURES

BASE: dict[str, Any] = {"purpose": "marketing", "sender": "first_party", "named": True, "group_size": 3,
                        "channel": "email", "depth": "item"}
#: rows whose texts differ only in the corners of the escaping
ROWS: list[dict[str, Any]] = [
    {},  # every feature NULL
    BASE,
    {**BASE, "purpose": "a\nb"},  # a line break inside a value
    {**BASE, "purpose": "a\\nb"},  # a backslash and an n
    {**BASE, "purpose": "a\\\nb"},  # a backslash, then a line break
    {**BASE, "sender": NULL_TEXT},  # the NULL marker as text
    {**BASE, "sender": None},  # and NULL
    {**BASE, "named": False},
    {**BASE, "group_size": 0},
    {**BASE, "group_size": None},
    {**BASE, "purpose": "ß ünïcode", "sender": "partner:a;b"},
]


def test_python_and_duckdb_hash_the_same_text() -> None:
    frame = frame_from_values(("c", row) for row in ROWS)
    con = ibis.duckdb.connect()
    t = con.create_table("frame", frame)
    got = t.select("row", h=input_hash_expr(t)).order_by("row").to_pyarrow().column("h").to_pylist()
    want = [feature_hash(row) for row in ROWS]
    assert got == want
    assert len(set(want)) == len(ROWS), "two different feature rows hashed alike"


def test_the_text_has_one_line_per_feature() -> None:
    for row in ROWS:
        lines = feature_text(row).split("\n")
        assert len(lines) == len(FEATURES), row
    assert feature_text({}).split("\n") == [NULL_TEXT] * len(FEATURES)
    assert feature_text(ROWS[2]).split("\n") != feature_text(ROWS[3]).split("\n")
