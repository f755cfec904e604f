"""Properties of the default policy pack over generated scenarios (tests/strategies.py).

(a) deterministic; (b) total — never raises, always a valid Decision whose verdict is the most
restrictive fired rule (allow when none fired), and an ``allow`` permits the touch as proposed;
(c) monotone — withdrawing or denying a granted consent, widening who sees the recipient contact point,
adding a sensitive implication to a used or shown fact, or lowering the customer's openness never makes
the verdict less restrictive; lowering the proposed depth never makes it more restrictive.

A counterexample found here is kept as a scenario in tests/scenarios/properties/ (with the expectation
the property implies) rather than fixed by weakening the property.
"""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strategies import (
    consent_withdrawal_pairs,
    lower_depth_pairs,
    lower_openness_pairs,
    scenarios,
    sensitive_implication_pairs,
    widen_recipient_pairs,
)
from tactful.model import Decision, Scenario
from tactful.vocab import Openness, Verdict

if TYPE_CHECKING:
    from tactful.policy import Pack

PROPERTY_SETTINGS = settings(
    max_examples=2000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@cache
def _pack() -> Pack:
    from tactful.policy import load_pack

    return load_pack()


def _decide(scenario: Scenario) -> Decision:
    from tactful.policy import evaluate

    return evaluate(scenario, _pack())


def _default_openness() -> Openness:
    value = _pack().settings.default_openness
    assert isinstance(value, Openness)
    return value


def _explain(label: str, scenario: Scenario, decision: Decision) -> str:
    fired = ", ".join(f"{r.rule}={r.verdict.value}" for r in decision.reasons) or "none"
    doc = json.dumps(scenario.model_dump(mode="json", exclude_none=True), sort_keys=True)
    return f"{label}: {decision.verdict.value} ({fired})\n  {doc}"


def _no_less_restrictive(before: Scenario, after: Scenario) -> None:
    d0, d1 = _decide(before), _decide(after)
    assert d1.verdict.rank >= d0.verdict.rank, (
        "the change made the verdict less restrictive\n"
        + _explain("before", before, d0) + "\n" + _explain("after", after, d1)
    )


@PROPERTY_SETTINGS
@given(scenarios())
def test_deterministic_total_and_valid(scenario: Scenario) -> None:
    # (a) and (b) share their examples: generating scenarios costs more than deciding them.
    decision = _decide(scenario)

    # (a) deterministic
    again = _decide(scenario)
    assert again == decision, (
        _explain("first", scenario, decision) + "\n" + _explain("again", scenario, again))
    assert again.to_json_dict() == decision.to_json_dict()

    # (b) total and valid: a Decision (evaluate did not raise), serializable as the contract's JSON
    assert isinstance(decision, Decision)
    assert Decision.model_validate(decision.model_dump()) == decision
    json.dumps(decision.to_json_dict())
    assert decision.policy.name and decision.policy.version
    for reason in decision.reasons:
        assert reason.rule and reason.message, reason
        assert isinstance(reason.verdict, Verdict)
    # the verdict is the most restrictive fired rule, allow when none fired
    expected = max((r.verdict for r in decision.reasons), key=lambda v: v.rank, default=Verdict.ALLOW)
    assert decision.verdict is expected, _explain("decision", scenario, decision)
    if decision.verdict is Verdict.ALLOW:  # "allow — as proposed"
        assert decision.max_depth.rank >= scenario.touch.depth.rank, _explain("allow", scenario, decision)
        assert decision.named or not scenario.touch.named, _explain("allow", scenario, decision)


@PROPERTY_SETTINGS
@given(consent_withdrawal_pairs())
def test_withdrawing_a_consent_is_never_less_restrictive(pair: tuple[Scenario, Scenario]) -> None:
    _no_less_restrictive(*pair)


@PROPERTY_SETTINGS
@given(widen_recipient_pairs())
def test_widening_the_recipient_is_never_less_restrictive(pair: tuple[Scenario, Scenario]) -> None:
    _no_less_restrictive(*pair)


@PROPERTY_SETTINGS
@given(sensitive_implication_pairs())
def test_a_sensitive_implication_is_never_less_restrictive(pair: tuple[Scenario, Scenario]) -> None:
    _no_less_restrictive(*pair)


@PROPERTY_SETTINGS
@given(st.data())
def test_lowering_openness_is_never_less_restrictive(data: st.DataObject) -> None:
    # drawn inside the test: "absent" means the pack's default_openness, known only once it is loaded
    before, after = data.draw(lower_openness_pairs(_default_openness()))
    _no_less_restrictive(before, after)


@PROPERTY_SETTINGS
@given(lower_depth_pairs())
def test_lowering_depth_is_never_more_restrictive(pair: tuple[Scenario, Scenario]) -> None:
    before, after = pair
    d0, d1 = _decide(before), _decide(after)
    assert d1.verdict.rank <= d0.verdict.rank, (
        "a lower depth made the verdict more restrictive\n"
        + _explain("before", before, d0) + "\n" + _explain("after", after, d1)
    )
