"""The scenario library (tests/scenarios/**): every file is a valid scenario with an expectation, and the
default policy pack decides each one as expected.

The library holds, for every row of the seed table in ../shared/design/domain.md, the creepy case and
its benign twin (files named ``NNN-<case>.yaml`` by seed number; twins end in ``-benign``), plus
counterexamples the property tests found (``properties/``). One test per file, so a failure names it.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tactful.model import Decision, Scenario
from tactful.policy.evaluate import EVALUATION_ERROR, FAIL_CLOSED_GUARD
from tactful.vocab import Verdict

if TYPE_CHECKING:
    from tactful.policy import Pack

SCENARIO_DIR = Path(__file__).parent / "scenarios"
SCENARIO_FILES: list[Path] = sorted(SCENARIO_DIR.rglob("*.yaml"))
SEED_FILE_RE = re.compile(r"^(\d{3})-[a-z0-9][a-z0-9-]*\.yaml$")
SEEDS = ("000", "001", "002", "003", "004")
NOW = "2026-11-22T10:00:00+00:00"


def _id(path: Path) -> str:
    return str(path.relative_to(SCENARIO_DIR))


def _load(path: Path) -> Scenario:
    """Through the same bounded loader as `tactful decide` (a duplicate key in the library is an error)."""
    from tactful.commands.policy import load_scenario_file

    return load_scenario_file(path)


@cache
def _pack() -> Pack:
    from tactful.policy import load_pack

    return load_pack()


def _evaluate(scenario: Scenario) -> Decision:
    from tactful.policy import evaluate

    return evaluate(scenario, _pack())


def test_library_is_not_empty() -> None:
    assert len(SCENARIO_FILES) >= 40, f"expected the seed library in {SCENARIO_DIR}"


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=_id)
def test_file_parses_and_has_expectation(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#"), f"{_id(path)}: start with a comment: the seed, the case, why"
    scenario = _load(path)
    assert scenario.expect is not None, f"{_id(path)}: no `expect`"
    assert scenario.now is not None and scenario.now.isoformat() == NOW, (
        f"{_id(path)}: `now` must be {NOW} so the decision is deterministic"
    )
    if path.parent == SCENARIO_DIR:
        assert SEED_FILE_RE.match(path.name), f"{path.name}: name it NNN-<case>.yaml by seed number"


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=_id)
def test_default_pack_decides_as_expected(path: Path) -> None:
    scenario = _load(path)
    expect = scenario.expect
    assert expect is not None
    decision = _evaluate(scenario)
    fired_ids = {r.rule for r in decision.reasons}
    if EVALUATION_ERROR in fired_ids and EVALUATION_ERROR not in (expect.rules or ()):
        # fail closed turns a crash into a block; a test must not mistake that for a judgement
        crash = next(r.message for r in decision.reasons if r.rule == EVALUATION_ERROR)
        pytest.fail(f"{_id(path)}: the evaluator crashed (evaluation-error): {crash}")
    got = {"verdict": decision.verdict.value}
    want = {"verdict": expect.verdict.value}
    if expect.max_depth is not None:
        got["max_depth"] = decision.max_depth.value
        want["max_depth"] = expect.max_depth.value
    if expect.named is not None:
        got["named"] = str(decision.named).lower()
        want["named"] = str(expect.named).lower()
    if expect.rules is not None:
        got["rules"] = ",".join(sorted({r.rule for r in decision.reasons}))
        want["rules"] = ",".join(sorted(set(expect.rules)))
    fired = "; ".join(f"{r.rule}={r.verdict.value}: {r.message}" for r in decision.reasons) or "none"
    assert got == want, f"{_id(path)}: expected {want}, got {got}; fired: {fired}"


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=_id)
def test_non_allow_scenarios_name_the_rules_that_must_fire(path: Path) -> None:
    """A verdict alone passes for the wrong reason (a crash, a guard, another rule): every scenario
    that is not ``allow`` lists exactly the rules that must fire, each a rule of the default pack (or
    a reason the evaluator itself gives); an ``allow`` fires no rule, so it lists none."""
    expect = _load(path).expect
    assert expect is not None
    if expect.verdict is Verdict.ALLOW:
        assert not expect.rules, f"{_id(path)}: an allow fires no rule, but expect.rules lists {expect.rules}"
        return
    assert expect.rules, f"{_id(path)}: a {expect.verdict.value} scenario must list `expect.rules`"
    known = {r.id for r in _pack().rules} | {EVALUATION_ERROR, FAIL_CLOSED_GUARD}
    unknown = sorted(set(expect.rules) - known)
    assert not unknown, f"{_id(path)}: expect.rules names rules the default pack does not have: {unknown}"


def test_every_seed_has_a_creepy_and_a_benign_case() -> None:
    verdicts: dict[str, set[bool]] = {seed: set() for seed in SEEDS}
    for path in SCENARIO_FILES:
        match = SEED_FILE_RE.match(path.name)
        if path.parent != SCENARIO_DIR or match is None or match.group(1) not in verdicts:
            continue
        expect = _load(path).expect
        assert expect is not None
        verdicts[match.group(1)].add(expect.verdict is Verdict.ALLOW)
    missing = {seed: sorted({True, False} - seen) for seed, seen in verdicts.items() if seen != {True, False}}
    assert not missing, f"seeds lacking an allow (True) or a non-allow (False) case: {missing}"


def test_benign_files_expect_allow_and_creepy_files_do_not() -> None:
    """The naming convention is the library's index: ``-benign`` twins are the allow cases."""
    wrong = []
    for path in SCENARIO_FILES:
        if path.parent != SCENARIO_DIR:
            continue
        expect = _load(path).expect
        assert expect is not None
        if path.stem.endswith("-benign") != (expect.verdict is Verdict.ALLOW):
            wrong.append(f"{path.name}: {expect.verdict.value}")
    assert not wrong, wrong
