"""Text that came from data is printed, never obeyed: no Rich markup (``oops[/]``, ``[link=...]``), no
emoji codes (``:x:``), no terminal control sequences (window title, screen clear, hidden links,
one-byte CSI, bidi overrides), through every command that prints data and through the error path."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import yaml

from tactful.commands.common import count_bar, data_text, safe_json, safe_text
from tactful.testing.cli import run_cli

SCENARIO = Path(__file__).parent / "scenarios" / "002-pregnancy-inference-targeting.yaml"

#: sets the terminal title, clears the screen, a hidden OSC 8 link, a one-byte CSI, a bidi override
TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J"
LINK = "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\"
C1 = "\x9b31m"
BIDI = "\u202egnp.exe"
HOSTILE = f"{TITLE}{CLEAR}{LINK}{C1}{BIDI}"
MARKUP_ID = "oops[/]"
MARKUP_NAME = "[link=https://evil.example]click me[/link] [bold red]shout[/]"
EMOJI = ":x: :thumbs_up:"
#: anything a terminal would act on
_RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def assert_inert(text: str) -> None:
    found = _RAW.findall(text)
    assert not found, f"raw control characters printed: {found!r}"
    assert "❌" not in text and "👍" not in text


@pytest.fixture()
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/s.db"
    assert run_cli(["init", "--db", url]).exit_code == 0
    path = tmp_path / "customers.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "first_name", "last_name", "openness"])
        writer.writerow([MARKUP_ID, MARKUP_NAME, EMOJI, "open"])
        writer.writerow([f"evil{TITLE}", f"Ann{HOSTILE}", f"Lee{CLEAR}", "open"])
        writer.writerow([f"bidi{C1}{BIDI}", "Zoë", "Ünal", "open"])
    code, out, err = run_cli(["import", "customers", str(path), "--db", url])
    assert code == 0, out + err
    assert_inert(out + err)
    return url


def test_safe_text_makes_controls_visible() -> None:
    assert safe_text("a\x1b[2Jb\x07\n\u202e") == "a\\x1b[2Jb\\x07\\n\\u202e"
    assert safe_text("two\nlines\x1b", multiline=True) == "two\nlines\\x1b"
    assert safe_text("Zoë Ünal 😀 [ok] :x:") == "Zoë Ünal 😀 [ok] :x:"
    assert data_text("[bold]x[/]").plain == "[bold]x[/]"
    assert json.loads(safe_json({"n": "a\x9bb\u202e"})) == {"n": "a\x9bb\u202e"}
    assert "\x9b" not in safe_json({"n": "a\x9bb"})


def test_customer_list_prints_ids_as_text(store: str) -> None:
    code, out, err = run_cli(["customer", "list", "--db", store])
    assert code == 0, err
    assert_inert(out)
    assert MARKUP_ID in out.splitlines()
    assert "evil\\x1b]0;pwned\\x07" in out


def test_customer_show_with_markup_in_the_id_and_names(store: str) -> None:
    code, out, err = run_cli(["customer", "show", MARKUP_ID, "--db", store])
    assert code == 0, err
    assert_inert(out)
    assert f"Customer {MARKUP_ID}" in out
    assert "[link=https://evil.example]click" in out and "[bold red]shout[/]" in out
    assert ":x:" in out and ":thumbs_up:" in out


def test_customer_show_with_control_sequences(store: str) -> None:
    code, out, err = run_cli(["customer", "show", f"evil{TITLE}", "--db", store])
    assert code == 0, err
    assert_inert(out)
    assert "\\x1b]0;pwned\\x07" in out and "\\u202egnp.exe" in out and "\\x9b31m" in out


def test_customer_show_json_escapes_controls(store: str) -> None:
    code, out, err = run_cli(["customer", "show", f"evil{TITLE}", "--db", store, "--format", "json"])
    assert code == 0, err
    assert_inert(out)
    assert json.loads(out)["customer"]["first_name"] == f"Ann{HOSTILE}"


def test_error_messages_quote_data_inertly(store: str) -> None:
    code, out, err = run_cli(["customer", "show", f"nope{CLEAR}[/]{MARKUP_NAME}:x:", "--db", store])
    assert code == 2
    assert_inert(out + err)
    assert "nope" in err and "[/]" in err


def _hostile_scenario(tmp_path: Path, fmt: str) -> Path:
    doc = yaml.safe_load(SCENARIO.read_text(encoding="utf-8"))
    fact = doc["facts"][1]
    fact["id"] = f"model{TITLE}[/]"
    fact["label"] = f"Predicted {HOSTILE} {MARKUP_NAME} {EMOJI}"
    doc["touch"]["uses"] = [fact["id"] if u == "model-pregnancy" else u for u in doc["touch"]["uses"]]
    path = tmp_path / f"s.{fmt}"
    if fmt == "json":
        path.write_text(json.dumps(doc, default=str, ensure_ascii=False), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_decide_prints_fact_ids_and_labels_inertly(tmp_path: Path, fmt: str) -> None:
    path = _hostile_scenario(tmp_path, "json")
    code, out, err = run_cli(["decide", str(path), "--format", fmt])
    assert code == 0, err
    assert_inert(out + err)
    if fmt == "text":
        assert "verdict: block" in out
        assert "model\\x1b]0;pwned\\x07[/]" in out and "\\u202egnp.exe" in out
        assert "[link=https://evil.example]" in out and ":x:" in out
    else:
        decision = json.loads(out)
        assert decision["verdict"] == "block"
        assert any(f"model{TITLE}[/]" in r["facts"] for r in decision["reasons"])


def test_decide_invalid_scenario_error_is_inert(tmp_path: Path) -> None:
    path = tmp_path / f"bad{CLEAR}.yaml"
    path.write_text(f"version: 1\ncustomer: {{id: 'x{C1}'}}\nbogus{BIDI}: 1\n", encoding="utf-8")
    code, out, err = run_cli(["decide", str(path)])
    assert code == 2
    assert_inert(out + err)


def test_policy_commands_print_pack_text_inertly(tmp_path: Path) -> None:
    pack = tmp_path / "p.yaml"
    pack.write_text(yaml.safe_dump({"name": f"evil{TITLE}", "version": f"1{CLEAR}", "extends": "default",
                                    "description": f"{MARKUP_NAME} {EMOJI}"}), encoding="utf-8")
    for argv in (["policy", "lint", str(pack)], ["policy", "explain", str(pack)],
                 ["decide", str(SCENARIO), "--policy", str(pack)]):
        code, out, err = run_cli(argv)
        assert code == 0, (argv, err)
        assert_inert(out + err)
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / f"s{TITLE}.yaml").write_text(SCENARIO.read_text(encoding="utf-8"), encoding="utf-8")
    code, out, err = run_cli(["policy", "test", str(scenarios), "--policy", str(pack)])
    assert code == 0, out + err
    assert_inert(out + err)
    assert "s\\x1b]0;pwned\\x07.yaml" in out


def test_import_summary_and_examples_are_inert(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    assert run_cli(["init", "--db", url]).exit_code == 0
    path = tmp_path / f"in{TITLE}.csv"
    path.write_text(f"id,first_name,openness\nc1,Ann,{HOSTILE}{MARKUP_NAME}\n", encoding="utf-8")
    code, out, err = run_cli(["import", "customers", str(path), "--db", url])
    assert code == 4, out + err
    assert_inert(out + err)


def test_scenario_export_and_decide_from_the_store_are_inert(store: str, tmp_path: Path) -> None:
    touch = tmp_path / "touch.yaml"
    touch.write_text("touch:\n  kind: offer\n  purpose: marketing.communications.email\n  channel: email\n"
                     "  depth: segment\n", encoding="utf-8")
    customer = f"bidi{C1}{BIDI}"
    for argv in (["scenario", "export", customer, "--db", store],
                 ["scenario", "export", customer, "--db", store, "--touch", str(touch)],
                 ["decide", "--customer", customer, "--touch", str(touch), "--db", store],
                 ["decide", "--customer", customer, "--touch", str(touch), "--db", store, "-f", "json"]):
        code, out, err = run_cli(argv)
        assert code == 0, (argv, out, err)
        assert_inert(out + err)
    code, out, _ = run_cli(["scenario", "export", customer, "--db", store])
    exported = yaml.safe_load(out)
    assert exported["customer"]["id"] == customer  # escaped in the text, the same value once read
    path = tmp_path / f"out{BIDI}.json"
    code, out, err = run_cli(["scenario", "export", customer, "--db", store, "--out", str(path)])
    assert code == 0, err
    assert_inert(out + err)
    assert "\u202e" not in path.read_text(encoding="utf-8")
    assert json.loads(path.read_text(encoding="utf-8"))["customer"]["id"] == customer


def test_batch_decide_prints_pack_names_and_customer_ids_inertly(store: str, tmp_path: Path) -> None:
    pack = tmp_path / "p.yaml"
    pack.write_text(yaml.safe_dump({"name": f"oops[/]{TITLE}", "version": "1", "extends": "default"}),
                    encoding="utf-8")
    candidates = tmp_path / "candidates.csv"
    with candidates.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "touch_id", "kind", "purpose", "channel", "depth", "now"])
        writer.writerow([MARKUP_ID, f"t{CLEAR}", "offer", "marketing.communications.email", "email",
                         "segment", "2026-11-01T00:00:00Z"])
        writer.writerow([f"ghost{TITLE}", "t2", "offer", "marketing.communications.email", "email",
                         "segment", "2026-11-01T00:00:00Z"])
    out = tmp_path / f"decisions{BIDI}.parquet"
    code, stdout, stderr = run_cli(["batch", "decide", str(candidates), "--db", store, "--policy", str(pack),
                                    "--out", str(out)])
    assert code in (0, 1), stdout + stderr
    assert_inert(stdout + stderr)
    assert "oops[/]" in stdout


def test_count_bars_scale_to_the_top_and_never_hide_a_nonzero_count() -> None:
    """The one bar helper of the summaries (batch decide, sample summary): ``width`` cells for the
    top count, a sliver for a count too small for one cell, nothing for zero or an empty table."""
    assert count_bar(30, 30).plain == "█" * 30
    assert count_bar(15, 30).plain == "█" * 15
    assert count_bar(1, 1000).plain == "▏"  # tiny but there
    assert count_bar(0, 30).plain == "" and count_bar(0, 0).plain == ""
    assert count_bar(5, 10, width=4).plain == "██"
    assert str(count_bar(3, 3, style="magenta").style) == "magenta"
    assert str(count_bar(3, 3).style) == "cyan"
