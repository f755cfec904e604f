"""The two evaluators agree, row by row: the Python evaluator (:func:`tactful.policy.evaluate`) and the
compiled one (:mod:`tactful.policy.compile`) over a feature frame built from the same Python
derivation, on DuckDB (every scenario file and 10,000 hypothesis-generated scenarios) and on Spark
local mode (a smaller set, one session-scoped Spark). Verdict, max depth, naming and the fired rule
ids (in pack order, ``fail-closed-guard`` last) must be identical.

Also here: what the compiled evaluator does with what the Python one never sees (a NULL feature, an
enum value outside the vocabulary, a frame without a column, a node it cannot compile), and the
sqlglot pin (creating a table from in-memory data).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from strategies import scenario_dicts
from tactful.batch.frame import frame_from_scenarios
from tactful.model import Scenario, parse_scenario
from tactful.policy import Pack, evaluate, load_pack, parse_pack
from tactful.policy.compile import MASK_BITS, CompileError, compile_pack, mask_to_names
from tactful.policy.nodes import All, Cond, SourcePos

SCENARIO_DIR = Path(__file__).parent / "scenarios"
#: 4 chunks x 2,500 = 10,000 generated scenarios (chunks let pytest-xdist share them out)
CHUNKS, PER_CHUNK = 4, 2_500
Row = tuple[str, str, bool, str]


@pytest.fixture(scope="module")
def pack() -> Pack:
    return load_pack()


def library() -> list[Scenario]:
    return [parse_scenario(yaml.safe_load(p.read_text(encoding="utf-8")), source=str(p))
            for p in sorted(SCENARIO_DIR.rglob("*.yaml"))]


def generated(chunk: int, count: int) -> list[Scenario]:
    """``count`` scenarios drawn by tests/strategies.py, reproducibly (one seed per chunk)."""
    out: list[dict[str, Any]] = []

    @seed(20261122 + chunk)
    @settings(max_examples=max(1, count // 25), database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), deadline=None)
    @given(st.lists(scenario_dicts(), min_size=25, max_size=25))
    def collect(docs: list[dict[str, Any]]) -> None:
        out.extend(docs)

    collect()
    return [parse_scenario(d) for d in out[:count]]


def python_rows(scenarios: Sequence[Scenario], pack: Pack) -> list[Row]:
    rows = []
    for s in scenarios:
        d = evaluate(s, pack)
        rows.append((d.verdict.value, d.max_depth.value, d.named, ",".join(r.rule for r in d.reasons)))
    return rows


def compiled_rows(con: Any, frame: pa.Table, pack: Pack, name: str = "frame") -> list[Row]:
    """The compiled decisions with the rule ids as masks named afterwards (the batch's path), checked
    against the same decisions with the ids joined as strings inside the backend."""
    table = con.create_table(name, frame, overwrite=True)
    compiled = compile_pack(pack)
    masked = compiled.decide(table, keep=["row"], rule_ids="masks").order_by("row").to_pyarrow()
    out = compiled.names_from_masks(masked).to_pylist()
    joined = compiled.decide(table, keep=["row"]).order_by("row").to_pyarrow().to_pylist()
    assert out == joined, "the rule masks name other rules than the joined strings"
    return [(o["verdict"], o["max_depth"], o["named"], o["fired_rules"]) for o in out]


def assert_agree(scenarios: Sequence[Scenario], con: Any, pack: Pack) -> None:
    py = python_rows(scenarios, pack)
    assert not [r for r in py if "evaluation-error" in r[3]], "the Python evaluator failed on a scenario"
    frame = frame_from_scenarios(scenarios, pack.settings)
    co = compiled_rows(con, frame, pack)
    assert len(co) == len(py)
    wrong = [(i, scenarios[i].customer.id, p, c) for i, (p, c) in enumerate(zip(py, co, strict=True))
             if p != c]
    assert not wrong, f"{len(wrong)} of {len(py)} rows disagree (row, customer, python, compiled): " \
                      + "; ".join(map(str, wrong[:5]))
    # the comparison is not vacuous: the set covers every verdict
    assert {r[0] for r in py} >= {"allow", "soften", "block"}


@pytest.fixture(scope="module")
def duck() -> Any:
    return ibis.duckdb.connect()


def test_scenario_library_agrees_on_duckdb(duck: Any, pack: Pack) -> None:
    scenarios = library()
    assert len(scenarios) >= 40
    assert_agree(scenarios, duck, pack)


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_generated_scenarios_agree_on_duckdb(duck: Any, pack: Pack, chunk: int) -> None:
    scenarios = generated(chunk, PER_CHUNK)
    assert len(scenarios) == PER_CHUNK
    assert_agree(scenarios, duck, pack)


# --------------------------------------------------------------------------- Spark (local mode)


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One Spark local session for the whole test run (it takes 10-14 s to start); its warehouse in a
    temporary directory, never in the working tree."""
    if shutil.which("java") is None:
        pytest.fail("no java on PATH: scripts/system-deps.sh installs openjdk-17-jre-headless")
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("tactful-tests")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
               .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.warehouse.dir", str(tmp_path_factory.mktemp("spark-warehouse")))
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.mark.slow
def test_library_and_generated_scenarios_agree_on_spark(spark: Any, pack: Pack) -> None:
    con = ibis.pyspark.connect(spark)
    scenarios = [*library(), *generated(99, 300)]
    py = python_rows(scenarios, pack)
    frame = frame_from_scenarios(scenarios, pack.settings)
    spark.createDataFrame(frame.to_pandas()).createOrReplaceTempView("frame")
    table = con.table("frame")
    out = compile_pack(pack).decide(table, keep=["row"]).order_by("row").to_pyarrow().to_pylist()
    co = [(o["verdict"], o["max_depth"], o["named"], o["fired_rules"]) for o in out]
    wrong = [(i, p, c) for i, (p, c) in enumerate(zip(py, co, strict=True)) if p != c]
    assert len(co) == len(py) and not wrong, wrong[:5]


# --------------------------------------------------------------------------- what only a frame can hold


def _frame_with(pack: Pack, **cells: Any) -> pa.Table:
    """The frame of the first library scenario that is allowed, with some cells replaced."""
    base = next(s for s in library() if evaluate(s, pack).verdict.value == "allow")
    frame = frame_from_scenarios([base], pack.settings)
    for name, value in cells.items():
        i = frame.schema.get_field_index(name)
        frame = frame.set_column(i, frame.schema.field(i), pa.array([value], type=frame.schema.field(i).type))
    return frame


def _decide(duck: Any, frame: pa.Table, pack: Pack) -> dict[str, Any]:
    table = duck.create_table("cells", frame, overwrite=True)
    rows: list[dict[str, Any]] = compile_pack(pack).decide(table, keep=["row"]).to_pyarrow().to_pylist()
    return rows[0]


def test_the_unchanged_allowed_row_is_allowed(duck: Any, pack: Pack) -> None:
    assert _decide(duck, _frame_with(pack), pack)["verdict"] == "allow"


@pytest.mark.parametrize("feature", ["consent_granted", "uses_inferred_sensitive", "recent_surveys",
                                     "openness", "seen_by"])
def test_a_null_feature_blocks(duck: Any, pack: Pack, feature: str) -> None:
    out = _decide(duck, _frame_with(pack, **{feature: None}), pack)
    assert out["verdict"] == "block" and out["max_depth"] == "none" and out["named"] is False
    readers = [r.id for r in pack.rules if feature in r.reads()]
    assert readers and set(out["failed_rules"].split(",")) == set(readers)


@pytest.mark.parametrize("feature", ["sender", "purpose", "uses_preference"])
def test_a_feature_no_rule_reads_may_be_null_or_absent(duck: Any, pack: Pack, feature: str) -> None:
    """The benign twin: a column the pack never reads cannot block (nor is it required)."""
    assert all(feature not in r.reads() for r in pack.rules)
    assert _decide(duck, _frame_with(pack, **{feature: None}), pack)["verdict"] == "allow"
    assert _decide(duck, _frame_with(pack).drop_columns([feature]), pack)["verdict"] == "allow"


@pytest.mark.parametrize("feature", ["unknown_vocabulary", "contact_point_missing"])
def test_a_null_guard_feature_blocks(duck: Any, pack: Pack, feature: str) -> None:
    out = _decide(duck, _frame_with(pack, **{feature: None}), pack)
    assert out["verdict"] == "block"


@pytest.mark.parametrize(("feature", "value"), [("channel", "carrier_pigeon"), ("depth", "everything"),
                                                ("openness", "very_open")])
def test_an_enum_value_outside_the_vocabulary_blocks(duck: Any, pack: Pack, feature: str,
                                                     value: str) -> None:
    out = _decide(duck, _frame_with(pack, **{feature: value}), pack)
    assert out["verdict"] == "block"


def test_a_frame_without_a_feature_column_is_a_named_error(duck: Any, pack: Pack) -> None:
    frame = _frame_with(pack).drop_columns(["consent_granted"])
    table = duck.create_table("short", frame, overwrite=True)
    with pytest.raises(CompileError) as err:
        compile_pack(pack).decide(table, keep=["row"])
    assert "consent_granted" in err.value.message
    assert err.value.hint is not None and re.search(r"default\.yaml>?:\d+:\d+ \(rule ", err.value.hint)


class Teleport(Cond):
    """A condition node the compiler does not know."""

    __slots__ = ("pos",)

    def __init__(self, pos: SourcePos) -> None:
        self.pos = pos

    def features(self) -> frozenset[str]:
        return frozenset()


PACK_TEXT = """\
name: t
version: "1"
extends: default
rules:
  - id: quiet-partner
    title: t
    source: s
    when:
      all:
        - sender_is_partner
        - channel: [sms, email]
    verdict: soften
    named: false
    message: m
"""


def test_parsed_nodes_carry_their_pack_position() -> None:
    pack = parse_pack(PACK_TEXT, source="mine.yaml")
    rule = pack.rule("quiet-partner")
    assert rule.pos == SourcePos("mine.yaml", 5, 5)
    flag, compare = rule.when.children()
    assert (flag.pos, compare.pos) == (SourcePos("mine.yaml", 10, 11), SourcePos("mine.yaml", 11, 20))
    assert [type(n).__name__ for n in rule.when.walk()] == ["All", "Flag", "Compare"]


def test_an_unsupported_node_is_a_compile_error_at_its_pack_line() -> None:
    pack = parse_pack(PACK_TEXT, source="mine.yaml")
    rule = pack.rule("quiet-partner")
    odd = dataclasses.replace(rule, when=All((rule.when, Teleport(SourcePos("mine.yaml", 12, 11)))))
    broken = dataclasses.replace(pack, rules=tuple(odd if r is rule else r for r in pack.rules))
    with pytest.raises(CompileError) as err:
        compile_pack(broken)
    assert err.value.message.startswith("mine.yaml:12:11: ")
    assert "Teleport" in err.value.message


def test_the_extended_pack_agrees_too(duck: Any) -> None:
    pack = parse_pack(PACK_TEXT, source="mine.yaml")
    assert_agree([*library(), *generated(7, 250)], duck, pack)


def test_creating_a_table_from_memory_works() -> None:
    """Keeps the sqlglot<30.18 pin honest (ibis issues 12101/12124: a nameless DROP on create/drop)."""
    con = ibis.duckdb.connect()
    data = pa.table({"a": [1, 2, 3]})
    con.create_table("mem", data)
    con.create_table("mem", data, overwrite=True)
    assert con.table("mem").count().execute() == 3
    assert ibis.memtable(data).a.sum().execute() == 6
    con.drop_table("mem")
    assert "mem" not in con.list_tables()


def many_rules_pack(extra: int) -> Pack:
    """The default pack plus ``extra`` soften rules (name dropped past a contact point age), so that
    the rule masks need more than one int64 word."""
    rules = "".join(f"""\
  - id: old-address-{i}
    title: t
    source: s
    when:
      contact_point_age_days: {{gt: {i * 15}}}
    verdict: soften
    named: false
    message: m
""" for i in range(extra))
    return parse_pack(PACK_TEXT.split("rules:\n")[0] + "rules:\n" + rules, source="many.yaml")


def test_a_pack_of_more_than_63_rules_agrees_through_two_mask_words(duck: Any) -> None:
    pack = many_rules_pack(40)
    compiled = compile_pack(pack)
    assert len(compiled.fired_ids) > MASK_BITS
    assert compiled.mask_columns("fired_mask") == ("fired_mask", "fired_mask_1")
    scenarios = [*library(), *generated(11, 250)]
    assert_agree(scenarios, duck, pack)
    # not vacuous: rules of the second word fire
    fired = {r for row in python_rows(scenarios, pack) for r in row[3].split(",")}
    assert {rid for rid in compiled.fired_ids[MASK_BITS:]} & fired


def test_mask_words_name_their_bits() -> None:
    ids = [f"r{i}" for i in range(70)]
    assert mask_to_names(ids, [0, 0]) == ""
    assert mask_to_names(ids, [1 | (1 << 62), 1 << 6]) == "r0,r62,r69"
