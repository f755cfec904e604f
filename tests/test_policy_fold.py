"""The decision fold as the Python evaluator runs it: a missing value blocks (the rules that read it
fail), a value no rule reads does not; settings are resolved to literals once; the rule tree keeps no
cache of its own."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import pytest

from tactful.features import Features
from tactful.policy import load_pack
from tactful.policy.fold import PY, fold, plan
from tactful.policy.nodes import Compare, Literal, Op, Pack, SettingRef, resolve_settings
from tactful.policy.testing import fired, scenario
from tactful.vocab import Depth, Verdict


def _without(monkeypatch: pytest.MonkeyPatch, feature: str) -> None:
    ev = importlib.import_module("tactful.policy.evaluate")
    real = ev.derive

    def derive(*args: Any) -> Features:
        feats: Features = real(*args)
        values = {k: v for k, v in feats.values.items() if k != feature}
        return dataclasses.replace(feats, values=values)

    monkeypatch.setattr(ev, "derive", derive)


def test_the_base_scenario_is_allowed() -> None:
    from tactful.policy import evaluate

    assert evaluate(scenario(), load_pack()).verdict is Verdict.ALLOW


@pytest.mark.parametrize("feature", ["consent_granted", "seen_by", "openness_depth_cap"])
def test_a_missing_feature_blocks_through_the_rules_that_read_it(monkeypatch: pytest.MonkeyPatch,
                                                                  feature: str) -> None:
    from tactful.policy import evaluate

    _without(monkeypatch, feature)
    pack = load_pack()
    d = evaluate(scenario(), pack)
    readers = [r.id for r in pack.rules if feature in r.reads()]
    assert d.verdict is Verdict.BLOCK and d.max_depth is Depth.NONE and not d.named
    assert readers and fired(d) == readers
    assert all(f"missing value of {feature}" in r.message for r in d.reasons)


def test_a_missing_feature_no_rule_reads_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from tactful.policy import evaluate

    _without(monkeypatch, "uses_preference")
    assert evaluate(scenario(), load_pack()).verdict is Verdict.ALLOW


def test_a_missing_guard_feature_blocks_through_the_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    from tactful.policy import evaluate

    _without(monkeypatch, "purpose_off_channel")
    d = evaluate(scenario(), load_pack())
    assert d.verdict is Verdict.BLOCK
    assert "fail-closed-guard" in fired(d) or "purpose-off-channel" in fired(d)


def test_the_fold_over_python_values() -> None:
    pack = load_pack()
    p = plan(pack)
    nothing = dict.fromkeys((r.id for r in p.rules), False)
    guards = {"unknown_vocabulary": False, "missing_fact_reference": False, "contact_point_missing": False,
              "purpose_off_channel": False}
    out = fold(p, nothing, guards.get, lambda _: Depth.ITEM.rank, Depth.HISTORY.rank, True, PY)
    assert (out.verdict, out.max_depth, out.named, out.guard) == (Verdict.ALLOW.rank, Depth.HISTORY.rank,
                                                                  True, False)
    soften = next(r for r in pack.rules if r.verdict is Verdict.SOFTEN and isinstance(r.max_depth, Depth))
    out = fold(p, {**nothing, soften.id: True}, guards.get, lambda _: 0, Depth.DETAILED_HISTORY.rank,
               True, PY)
    assert out.verdict == Verdict.SOFTEN.rank and out.max_depth == soften.max_depth.rank  # type: ignore[union-attr]
    # a missing condition fires as a block, never as its own verdict
    out = fold(p, {**nothing, soften.id: None}, guards.get, lambda _: 0, Depth.ITEM.rank, True, PY)
    assert out.verdict == Verdict.BLOCK.rank and out.failed[soften.id] and out.max_depth == 0
    assert not out.named
    # a missing guard feature holds
    out = fold(p, nothing, {**guards, "unknown_vocabulary": None}.get, lambda _: 0, 3, False, PY)
    assert out.guard and out.verdict == Verdict.BLOCK.rank
    # a missing touch depth blocks
    out = fold(p, nothing, guards.get, lambda _: 0, None, False, PY)
    assert out.verdict == Verdict.BLOCK.rank


def test_settings_resolve_to_literals_that_remember_the_setting() -> None:
    pack = load_pack()
    cond = Compare("channel", Op.IN, SettingRef("discreet_channels"))
    resolved = resolve_settings(cond, pack.settings)
    assert isinstance(resolved, Compare) and isinstance(resolved.operand, Literal)
    assert resolved.operand.setting == "discreet_channels"
    assert resolved.operand.value == frozenset(pack.settings.discreet_channels)
    for rule in pack.rules:
        tree = resolve_settings(rule.when, pack.settings)
        assert not any(isinstance(getattr(n, "operand", None), SettingRef) for n in tree.walk())


def test_the_pack_holds_no_cache() -> None:
    assert "_memo" not in {f.name for f in dataclasses.fields(Pack)}
    a, b = load_pack(), dataclasses.replace(load_pack())
    assert a == b
