"""Scenario inputs that must not open the filter or crash it (issue 7 §5): duplicate ids, impossible or
overflowing dates. Each is exit 2 naming the file and the field, never a traceback and never a
decision made on half the data."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tactful.errors import ScenarioError
from tactful.model import parse_scenario
from tactful.policy.testing import BASE, _merge, fact
from tactful.testing.cli import run_cli


def _errors(doc: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(doc, source="s.yaml")
    return dict(info.value.errors)


def _write_json(tmp_path: Path, doc: dict[str, Any], name: str = "s.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc, default=str), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- duplicate ids


def test_duplicate_fact_ids_are_invalid() -> None:
    # the second "f1" is an inference about health: with "last one wins" or "first one wins" one of
    # the two facts silently vanishes from the judgement
    doc = _merge(BASE, {"facts": [*BASE["facts"], fact("f2"),
                                  fact("f1", kind="inference", origin="inferred",
                                       category="user.health_and_medical")]})
    errors = _errors(doc)
    assert errors == {"facts": "duplicate id 'f1': facts[0] and facts[2] both use it "
                               "(ids must be unique within facts)"}


def test_duplicate_contact_point_ids_are_invalid() -> None:
    doc = _merge(BASE, {"contact_points": [
        *BASE["contact_points"],
        {"id": "mail", "kind": "email", "shared_with": "household", "verified_at": "2026-06-01"}]})
    errors = _errors(doc)
    assert list(errors) == ["contact_points"]
    assert "duplicate id 'mail'" in errors["contact_points"]
    assert "contact_points[0] and contact_points[3]" in errors["contact_points"]


def test_the_same_id_in_different_sections_is_fine() -> None:
    doc = _merge(BASE, {"facts": [fact("mail")], "touch": {"uses": ["mail"]}})
    assert parse_scenario(doc).facts[0].id == "mail"


def test_duplicate_ids_exit_2_naming_the_file_and_the_field(tmp_path: Path) -> None:
    doc = _merge(BASE, {"facts": [*BASE["facts"], *BASE["facts"]]})
    code, out, err = run_cli(["decide", str(_write_json(tmp_path, doc, "dup.json"))])
    assert code == 2 and out == ""
    assert "dup.json" in err and "facts: duplicate id 'f1'" in err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- dates


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-02-30", "expected a date and time that exist, got '2026-02-30' (day is out of range for month)"),
    ("2026-02-30T10:00:00Z", "expected a date and time that exist, got '2026-02-30T10:00:00Z'"),
    ("2026-11-22T25:00:00Z", "expected a date and time that exist, got '2026-11-22T25:00:00Z'"),
    ("0001-01-01T00:00:00+01:00", "expected a date between the years 1800 and 2999, "
                                  "got '0001-01-01T00:00:00+01:00'"),
    ("9999-12-31T23:30:00-01:00", "expected a date between the years 1800 and 2999, "
                                  "got '9999-12-31T23:30:00-01:00'"),
    ("9999-12-31", "expected a date between the years 1800 and 2999, got '9999-12-31'"),
    ("0001-01-01", "expected a date between the years 1800 and 2999, got '0001-01-01'"),
    ("yesterday", "expected an ISO 8601 date or date-time, got 'yesterday'"),
])
def test_impossible_and_overflowing_date_strings_name_the_field(value: str, expected: str) -> None:
    doc = _merge(BASE, {"consents": [{"purpose": "marketing.communications", "status": "granted",
                                      "source": "form", "at": value}]})
    errors = _errors(doc)
    assert list(errors) == ["consents[0].at"]
    assert errors["consents[0].at"].startswith(expected)


@pytest.mark.parametrize("value", [20261121, 0, -86400, 1700000000, 1.7e9, "20261121", "1700000000"])
def test_a_number_is_never_a_date(value: object) -> None:
    # pydantic reads a bare number as Unix seconds: a touch sent "20261121" (meant: yesterday) became
    # 1970-08-23 and no longer counted toward the frequency caps; a consent "at: 0" a 1970 grant
    doc = _merge(BASE, {"recent_touches": [{"channel": "email", "purpose": "marketing.communications.email",
                                            "at": value}]})
    errors = _errors(doc)
    assert list(errors) == ["recent_touches[0].at"]
    assert errors["recent_touches[0].at"].startswith("expected an ISO 8601 date or date-time")


def test_a_number_as_now_exits_2_naming_the_field(tmp_path: Path) -> None:
    path = _write_json(tmp_path, _merge(BASE, {"now": 20240501}))
    code, out, err = run_cli(["decide", str(path)])
    assert code == 2, (out, err)
    assert "now: expected an ISO 8601 date or date-time" in err
    assert "a number is never a date" in err
    assert "Traceback" not in out + err


@pytest.mark.parametrize("value", [
    datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),  # before year 1 in UTC
    datetime(9999, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-1))),  # after 9999 in UTC
    date(9999, 12, 31),
    datetime(1, 1, 1),
])
def test_date_objects_that_overflow_name_the_field(value: date) -> None:
    # what a YAML loader builds from an unquoted timestamp
    errors = _errors(_merge(BASE, {"now": value}))
    assert list(errors) == ["now"]
    assert errors["now"].startswith("expected a date between the years 1800 and 2999, got '")


@pytest.mark.parametrize(("field", "doc"), [
    ("now", {"now": "9999-12-31T23:30:00-01:00"}),
    ("facts[0].at", {"facts": [fact("f1", at="2026-02-30T12:00:00Z")]}),
    ("contact_points[0].verified_at", {"contact_points": [
        {"id": "mail", "kind": "email", "shared_with": "private", "verified_at": "0001-01-01T00:00+05:00"}]}),
    ("recent_touches[0].at", {"recent_touches": [
        {"channel": "email", "purpose": "marketing", "at": "2026-04-31"}]}),
])
def test_bad_dates_exit_2_naming_the_file_and_the_field(tmp_path: Path, field: str,
                                                        doc: dict[str, Any]) -> None:
    path = _write_json(tmp_path, _merge(BASE, doc), "dates.json")
    code, out, err = run_cli(["decide", str(path)])
    assert code == 2 and out == ""
    assert "dates.json" in err and f"{field}: expected a date" in err
    assert "Traceback" not in err


def test_an_unquoted_yaml_date_with_an_offset_that_overflows_exits_2(tmp_path: Path) -> None:
    # YAML builds an aware datetime for year 9999 at -01:00; moving it to UTC would overflow
    path = tmp_path / "s.yaml"
    text = json.dumps(BASE).replace('"2026-11-22T10:00:00Z"', "9999-12-31T23:30:00-01:00")
    path.write_text(text, encoding="utf-8")
    code, _, err = run_cli(["decide", str(path)])
    assert code == 2 and "s.yaml" in err and "now: expected a date between the years" in err


def test_dates_in_range_still_parse() -> None:
    doc = _merge(BASE, {"now": "2026-11-22T10:00:00+14:00",
                        "facts": [fact("f1", at="1800-01-01"), fact("f2", at="2999-12-31T12:00:00Z")]})
    scenario = parse_scenario(doc)
    assert scenario.now is not None and scenario.now.isoformat() == "2026-11-21T20:00:00+00:00"


# --------------------------------------------------------------------------- policy test over a directory


def test_policy_test_reports_each_bad_file_and_goes_on(tmp_path: Path) -> None:
    good = {**BASE, "expect": {"verdict": "allow"}}
    (tmp_path / "a-good.json").write_text(json.dumps(good), encoding="utf-8")
    (tmp_path / "b-binary.yaml").write_bytes(b"\x00\x01\xff\xfe\x80 not text")
    (tmp_path / "c-latin1.yaml").write_bytes("customer: {id: Zoë}\n".encode("latin-1"))
    (tmp_path / "d-dup.json").write_text(json.dumps(
        {**good, "facts": [*BASE["facts"], *BASE["facts"]]}), encoding="utf-8")
    (tmp_path / "e-date.json").write_text(json.dumps({**good, "now": "2026-02-30"}), encoding="utf-8")
    (tmp_path / "f-syntax.yaml").write_text("version: 1\ncustomer: {id: c1\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "z-good.json").write_text(json.dumps(good), encoding="utf-8")
    code, out, err = run_cli(["policy", "test", str(tmp_path)])
    assert code == 1, out + err
    assert "Traceback" not in out + err
    lines = out.splitlines()
    assert lines[0].startswith("ok    a-good.json: allow")
    for name in ("b-binary.yaml", "c-latin1.yaml", "d-dup.json", "e-date.json", "f-syntax.yaml"):
        assert any(ln.startswith(f"ERROR {name}: ") for ln in lines), (name, out)
    assert "facts: duplicate id 'f1'" in out
    assert "now: expected a date and time that exist, got '2026-02-30'" in out
    assert any(ln.startswith("ok    sub/z-good.json") for ln in lines), "stopped before the last file"
    assert "2 passed, 5 failed" in out
