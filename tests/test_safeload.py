"""The bounded loader (tactful.safeload) and every parser that uses it: scenarios (decide, policy
test), packs, column mappings, sensitivity mappings. Each hostile input exits 2 with a message
naming the file (and line, field path where known); each has a benign twin that still loads."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tactful.safeload import (
    MAPPING_LIMITS,
    PACK_LIMITS,
    SCENARIO_LIMITS,
    DocumentError,
    Limits,
    compose_yaml,
    load_document,
    load_json,
    load_yaml,
)
from tactful.testing.cli import run_cli

SCENARIOS = Path(__file__).parent / "scenarios"
BENIGN = SCENARIOS / "000-sms-offer-with-opt-in-benign.yaml"
DATA = Path(__file__).parent / "data" / "ingest"


def _alias_bomb(levels: int = 9, width: int = 9, item: str = '"lol"') -> str:
    """A few hundred bytes that expand to width**levels values."""
    lines = ["a0: &a0 [" + ",".join([item] * 9) + "]"]
    for i in range(1, levels):
        refs = ",".join(f"*a{i - 1}" for _ in range(width))
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


def _yaml_error(text: str, limits: Limits = SCENARIO_LIMITS, **kw: Any) -> DocumentError:
    with pytest.raises(DocumentError) as info:
        load_yaml(text, "doc.yaml", limits, **kw)
    return info.value


def _json_error(text: str, limits: Limits = SCENARIO_LIMITS) -> DocumentError:
    with pytest.raises(DocumentError) as info:
        load_json(text, "doc.json", limits)
    return info.value


# --------------------------------------------------------------------------- the loader itself


def test_duplicate_yaml_key_is_an_error_naming_the_path_and_line() -> None:
    err = _yaml_error("customer:\n  id: c1\n  deceased: true\n  deceased: false\n")
    assert err.path == "customer.deceased" and err.line == 4
    assert str(err).startswith("doc.yaml:4:3: customer.deceased: duplicate key 'deceased'")


def test_duplicate_keys_that_are_equal_values_are_caught() -> None:
    # 1 and 0x1 are the same integer key once constructed
    assert "duplicate key" in _yaml_error("m:\n  1: a\n  0x1: b\n").problem


def test_distinct_keys_and_merge_keys_load() -> None:
    data = load_yaml("base: &b {a: 1, b: 2}\nthing:\n  <<: *b\n  b: 3\n", "doc.yaml", SCENARIO_LIMITS)
    assert data["thing"] == {"a": 1, "b": 3}


def test_duplicate_json_key_is_an_error_naming_the_path() -> None:
    err = _json_error('{"customer": {"facts": [{"id": "f1", "id": "f2"}]}}')
    assert err.path == "customer.facts[0].id"
    assert "duplicate key 'id'" in str(err) and str(err).startswith("doc.json:")


def test_alias_bomb_is_refused_quickly() -> None:
    bomb = _alias_bomb()
    assert len(bomb) < 600
    err = _yaml_error(bomb)
    assert "expands to more than" in err.problem
    # empty strings: no text to count, the number of values alone must stop it
    err = _yaml_error(_alias_bomb(item='""'))
    assert "expands to more than 4,000,000 values" in err.problem


def test_modest_aliases_load() -> None:
    data = load_yaml(_alias_bomb(levels=3, width=3), "doc.yaml", SCENARIO_LIMITS)
    assert len(data["a2"]) == 3 and data["a2"][0][0][0] == "lol"


def test_alias_repeating_long_text_is_bounded_by_characters() -> None:
    text = "s: &s " + "x" * 60_000 + "\nl: [" + ", ".join(["*s"] * 10) + "]\n"
    assert "characters" in _yaml_error(text, MAPPING_LIMITS).problem
    assert len(load_yaml(text, "doc.yaml", SCENARIO_LIMITS)["l"]) == 10


def test_recursive_alias_is_refused() -> None:
    assert "recursive alias" in _yaml_error("a: &a [1, *a]\n").problem


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system ['true']", "!custom x", "!!binary aGk=",
                                 "!!set {a, b}", "!!omap [a: 1]"])
def test_yaml_tags_are_refused(tag: str) -> None:
    err = _yaml_error(f"value: {tag}\n")
    assert "tag" in err.problem and err.path == "value" and err.line == 1


def test_plain_explicit_standard_tags_load() -> None:
    assert load_yaml("a: !!str 12\nb: !!int '7'\n", "doc.yaml", SCENARIO_LIMITS) == {"a": "12", "b": 7}


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    for text in ("[" * 10_000 + "]" * 10_000, "".join(" " * i + "a:\n" for i in range(200))):
        err = _yaml_error(text)
        assert "nest" in err.problem.lower(), err
    err = _json_error("[" * 10_000 + "]" * 10_000)
    assert "nested more than" in err.problem
    err = _json_error("[" * 100 + "]" * 100)
    assert err.path is not None and err.path.startswith("[0][0]")


def test_nesting_within_the_bound_loads() -> None:
    assert load_json("[" * 60 + "]" * 60, "doc.json", SCENARIO_LIMITS) is not None
    assert load_yaml("[" * 60 + "]" * 60, "doc.yaml", SCENARIO_LIMITS) is not None


@pytest.mark.parametrize("number", ["9" * 5000, "99999999999999999999", "-9223372036854775809"])
def test_integers_beyond_64_bits_are_refused(number: str) -> None:
    assert "64-bit" in _yaml_error(f"a:\n  b: {number}\n").problem
    err = _json_error(f'{{"a": {{"b": {number}}}}}')
    assert "64-bit" in err.problem and err.path == "a.b"


def test_64_bit_integers_load() -> None:
    assert load_json('{"a": 9223372036854775807, "b": -9223372036854775808}', "x", SCENARIO_LIMITS) \
        == {"a": 2**63 - 1, "b": -(2**63)}
    assert load_yaml("a: 9223372036854775807\n", "x", SCENARIO_LIMITS) == {"a": 2**63 - 1}


@pytest.mark.parametrize(("yaml_value", "json_value"), [(".inf", "Infinity"), (".nan", "NaN"),
                                                        ("-.inf", "1e400")])
def test_numbers_that_are_not_finite_are_refused(yaml_value: str, json_value: str) -> None:
    assert "finite" in _yaml_error(f"q: {yaml_value}\n").problem
    assert _json_error(f'{{"q": {json_value}}}').path == "q"


def test_impossible_dates_are_an_error_with_the_line() -> None:
    err = _yaml_error("a: 1\nat: 2026-02-30\n")
    assert err.line == 2 and "2026-02-30" in err.problem


def test_size_limit_suggests_json_for_yaml(tmp_path: Path) -> None:
    small = Limits("scenario", max_bytes=4000, max_yaml_bytes=1000)
    text = "a: [" + ", ".join(["1"] * 600) + "]\n"
    err = _yaml_error(text, small)
    assert "too large" in err.problem and err.hint is not None and "JSON" in err.hint
    assert load_json(json.dumps({"a": [1] * 600}), "x.json", small)["a"][0] == 1
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"a": [1] * 2000}))
    with pytest.raises(DocumentError, match=r"too large"):
        load_document(big, small)


def test_non_utf8_and_binary_files_are_refused(tmp_path: Path) -> None:
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("a: 1\nname: Jos\xe9\n".encode("latin-1"))
    with pytest.raises(DocumentError, match=r"latin\.yaml:2: not UTF-8 text: invalid byte 0xe9"):
        load_document(latin, SCENARIO_LIMITS)
    binary = tmp_path / "blob.json"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    with pytest.raises(DocumentError, match=r"blob\.json:3: binary data"):
        load_document(binary, SCENARIO_LIMITS)
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbfa: 1\n")
    assert load_document(bom, SCENARIO_LIMITS) == {"a": 1}


def test_compose_for_packs_has_the_same_bounds() -> None:
    with pytest.raises(DocumentError, match="expands to more than"):
        compose_yaml(_alias_bomb(), "pack.yaml", PACK_LIMITS)
    with pytest.raises(DocumentError, match="tag"):
        compose_yaml("name: !!python/name:os.system x\n", "pack.yaml", PACK_LIMITS)


# --------------------------------------------------------------------------- decide and policy test


def _scenario_text() -> str:
    return BENIGN.read_text(encoding="utf-8")


def test_decide_refuses_a_duplicate_key_that_would_hide_deceased(tmp_path: Path) -> None:
    text = _scenario_text().replace("  openness: open\n", "  openness: open\n  deceased: true\n"
                                    "  deceased: false\n")
    path = tmp_path / "dup.yaml"
    path.write_text(text, encoding="utf-8")
    code, out, err = run_cli(["decide", str(path)])
    assert code == 2, (out, err)
    assert f"{path}:" in err and "customer.deceased: duplicate key 'deceased'" in err
    assert "Traceback" not in err


def test_decide_refuses_duplicate_keys_in_json(tmp_path: Path) -> None:
    import yaml

    doc = yaml.safe_load(_scenario_text())
    text = json.dumps(doc, default=str).replace('"openness": "open"',
                                                '"deceased": true, "openness": "open", "deceased": false')
    path = tmp_path / "dup.json"
    path.write_text(text, encoding="utf-8")
    code, _, err = run_cli(["decide", str(path)])
    assert code == 2 and "customer.deceased: duplicate key" in err and str(path) in err


def test_benign_scenario_still_decides(tmp_path: Path) -> None:
    code, out, err = run_cli(["decide", str(BENIGN)])
    assert code == 0, err
    assert "verdict: allow" in out


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("bomb.yaml", _alias_bomb(), "expands to more than"),
    ("deep.yaml", "[" * 10_000 + "]" * 10_000, "nest"),
    ("deep.json", "[" * 10_000 + "]" * 10_000, "nested more than"),
    ("int.json", '{"version": ' + "1" * 5000 + "}", "64-bit"),
    ("tag.yaml", "version: !!python/object/apply:os.system ['echo hi']\n", "tag"),
    ("nan.json", '{"version": NaN}', "not a number JSON allows"),
])
def test_decide_hostile_files_exit_2_naming_the_file(tmp_path: Path, name: str, content: str,
                                                     expected: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    code, out, err = run_cli(["decide", str(path)])
    assert code == 2, (out, err)
    assert str(path) in err and expected in err and "Traceback" not in err


def test_decide_binary_stdin_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    class Stdin(io.TextIOWrapper):
        pass

    fake = Stdin(io.BytesIO(b"version: 1\n\xff\xfe\x00garbage"), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", fake)
    code, _, err = run_cli(["decide", "-"])
    assert code == 2 and "<stdin>" in err and "binary data" in err


def test_decide_non_utf8_stdin_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = io.TextIOWrapper(io.BytesIO("version: 1\nname: Jos\xe9\n".encode("latin-1")), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", fake)
    code, _, err = run_cli(["decide", "-"])
    assert code == 2 and "<stdin>:2: not UTF-8" in err


def test_decide_reads_a_scenario_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = io.TextIOWrapper(io.BytesIO(BENIGN.read_bytes()), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", fake)
    code, out, err = run_cli(["decide", "-"])
    assert code == 0, err
    assert "verdict: allow" in out


def test_policy_test_reports_a_hostile_file_and_goes_on(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(_scenario_text(), encoding="utf-8")
    (tmp_path / "bomb.yaml").write_text(_alias_bomb(), encoding="utf-8")
    code, out, _ = run_cli(["policy", "test", str(tmp_path)])
    assert code == 1
    assert "ERROR bomb.yaml" in out and "expands to more than" in out
    assert "ok    ok.yaml" in out


# --------------------------------------------------------------------------- packs, mappings, sensitivity


def test_pack_alias_bomb_exits_2(tmp_path: Path) -> None:
    pack = tmp_path / "bomb.yaml"
    pack.write_text("name: bomb\nversion: 1\nextends: default\n" + _alias_bomb(), encoding="utf-8")
    assert len(pack.read_bytes()) < 700
    code, _, err = run_cli(["policy", "lint", str(pack)])
    assert code == 2 and str(pack) in err and "expands to more than" in err


def test_pack_with_duplicate_top_key_and_tag_exit_2(tmp_path: Path) -> None:
    pack = tmp_path / "p.yaml"
    pack.write_text("name: a\nname: b\nversion: 1\nextends: default\n", encoding="utf-8")
    code, _, err = run_cli(["policy", "lint", str(pack)])
    assert code == 2 and f"{pack}:2:1" in err and "duplicate key 'name'" in err
    pack.write_text("name: !!python/name:os.system a\nversion: 1\nextends: default\n", encoding="utf-8")
    code, _, err = run_cli(["policy", "lint", str(pack)])
    assert code == 2 and "tag" in err


def test_pack_not_utf8_exits_2(tmp_path: Path) -> None:
    pack = tmp_path / "p.yaml"
    pack.write_bytes(b"name: caf\xe9\nversion: 1\nextends: default\n")
    code, _, err = run_cli(["policy", "lint", str(pack)])
    assert code == 2 and str(pack) in err and "not UTF-8" in err


def test_mapping_alias_bomb_is_refused_before_it_reaches_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    assert run_cli(["init", "--db", url]).exit_code == 0
    mapping = tmp_path / "bomb.yaml"
    long = "x" * 300
    mapping.write_text(f"kind: customers\nx: &x '{long}'\n" + "\n".join(
        f"y{i}: &y{i} [" + ",".join([f"*{'x' if i == 0 else f'y{i - 1}'}"] * 8) + "]" for i in range(5)
    ) + "\nfields: {}\n", encoding="utf-8")
    assert mapping.stat().st_size < 700
    code, _, err = run_cli(["import", "customers", str(DATA / "customers.csv"), "--db", url,
                            "--mapping", str(mapping)])
    assert code == 2 and str(mapping) in err and "expands to more than" in err
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from imports")).scalar() == 0
    engine.dispose()


def test_mapping_duplicate_key_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    assert run_cli(["init", "--db", url]).exit_code == 0
    mapping = tmp_path / "dup.yaml"
    mapping.write_text("kind: customers\nfields:\n  id: id\n  id: household_id\n", encoding="utf-8")
    code, _, err = run_cli(["import", "customers", str(DATA / "customers.csv"), "--db", url,
                            "--mapping", str(mapping)])
    assert code == 2 and f"{mapping}:4:3: fields.id: duplicate key 'id'" in err


def test_mapping_yes_no_stay_text() -> None:
    from tactful.ingest.kinds import kind_spec
    from tactful.ingest.mapping import load_mapping

    path = DATA / "mappings"
    files = sorted(path.glob("*.yaml"))
    assert files
    for file in files:  # the shipped example mappings still load
        kind = load_document(file, MAPPING_LIMITS, booleans=False).get("kind")
        if kind:
            load_mapping(file, kind_spec(kind))
    assert load_yaml("v: {yes: granted, no: denied}\n", "m.yaml", MAPPING_LIMITS, booleans=False) \
        == {"v": {"yes": "granted", "no": "denied"}}


def test_sensitivity_mapping_duplicate_key_and_tag_exit_2(tmp_path: Path) -> None:
    from tactful.errors import TactfulError
    from tactful.sensitivity import load_mapping

    bad = tmp_path / "s.yaml"
    bad.write_text("a: 1\na: 2\n", encoding="utf-8")
    with pytest.raises(TactfulError, match=r"s\.yaml:2:1: a: duplicate key 'a'") as info:
        load_mapping(bad)
    assert info.value.exit_code == 2
    bad.write_text("a: !!python/object:object {}\n", encoding="utf-8")
    with pytest.raises(TactfulError, match="tag"):
        load_mapping(bad)
    load_mapping(None)  # the packaged one loads through the same loader


def test_touch_files_use_the_bounded_loader(tmp_path: Path) -> None:
    from tactful.errors import ScenarioError
    from tactful.realtime import load_touch_file

    touch = tmp_path / "t.yaml"
    touch.write_text("touch:\n  kind: offer\n  kind: service\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"t\.yaml:3:3: touch\.kind: duplicate key 'kind'"):
        load_touch_file(touch)
    touch.write_text(_alias_bomb(), encoding="utf-8")
    with pytest.raises(ScenarioError, match="expands to more than"):
        load_touch_file(touch)
    touch.write_bytes(b"touch: \xff\n")
    with pytest.raises(ScenarioError, match="not UTF-8"):
        load_touch_file(touch)


def test_campaign_files_use_the_bounded_loader(tmp_path: Path) -> None:
    from tactful.compose import demo_messages, load_messages
    from tactful.errors import CampaignError

    campaign = tmp_path / "c.yaml"
    campaign.write_text("shop: A\nshop: B\n", encoding="utf-8")
    with pytest.raises(CampaignError, match="duplicate key 'shop'"):
        load_messages(campaign)
    campaign.write_text("shop: !!python/object/apply:os.system ['true']\n", encoding="utf-8")
    with pytest.raises(CampaignError, match="tag"):
        load_messages(campaign)
    assert demo_messages() is not None


def test_stdin_json_is_read_as_json_and_yaml_flow_still_works(monkeypatch: pytest.MonkeyPatch) -> None:
    small = Limits("scenario", max_bytes=4000, max_yaml_bytes=1000)
    doc = json.dumps({"a": [1] * 600})  # beyond the YAML limit, within the JSON one
    monkeypatch.setattr(sys, "stdin", io.StringIO(doc))
    assert len(load_document("-", small)["a"]) == 600
    monkeypatch.setattr(sys, "stdin", io.StringIO("{a: 1, b: [x]}"))  # YAML, not JSON
    assert load_document("-", small) == {"a": 1, "b": ["x"]}
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"a": 1, "a": 2}'))  # JSON, refused: no YAML retry
    with pytest.raises(DocumentError, match=r"<stdin>: a: duplicate key"):
        load_document("-", small)
