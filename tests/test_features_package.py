"""tactful.features as a package (issue 9 §1): the catalogue, the settings with their key sets, the eight
feature families each with exactly one Python producer (and its Ibis producer, where written), and a
derivation that takes ``now`` from its caller and never reads the clock."""

from __future__ import annotations

import ast
import importlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

import tactful.features
from tactful import vocab
from tactful.features import (
    FAMILIES,
    FAMILY_OF,
    FEATURE_LIST,
    FEATURES,
    SETTING_LIST,
    FType,
    SKind,
    derive,
    evaluation_time,
)
from tactful.features.context import Derivation
from tactful.features.families import resolve
from tactful.model import Scenario, parse_scenario
from tactful.policy import evaluate, load_pack
from tactful.policy.testing import scenario
from tactful.vocab import Verdict

PACKAGE = Path(tactful.features.__file__).parent
SCENARIO_DIR = Path(__file__).parent / "scenarios"
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


LIBRARY = sorted(SCENARIO_DIR.rglob("*.yaml"))


def load(path: Path) -> Scenario:
    return parse_scenario(yaml.safe_load(path.read_text(encoding="utf-8")), source=str(path))


# --------------------------------------------------------------------------- families


def test_every_feature_is_in_exactly_one_family() -> None:
    listed = [name for fam in FAMILIES for name in fam.features]
    twice = sorted({n for n in listed if listed.count(n) > 1})
    assert not twice, f"features in two families: {twice}"
    assert sorted(listed) == sorted(FEATURES), (
        f"not in any family: {sorted(set(FEATURES) - set(listed))}; "
        f"not in the catalogue: {sorted(set(listed) - set(FEATURES))}")
    assert len(FAMILIES) == 8
    assert all(FAMILY_OF[n].name == fam.name for fam in FAMILIES for n in fam.features)


def test_every_family_has_exactly_one_python_producer_in_the_package() -> None:
    paths = [fam.python_path for fam in FAMILIES]
    assert len(set(paths)) == len(paths), "two families share a Python producer"
    for fam in FAMILIES:
        module, _, attr = fam.python_path.partition(":")
        assert module.startswith("tactful.features."), fam.python_path
        assert getattr(importlib.import_module(module), attr) is fam.python


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.stem)
def test_each_python_producer_writes_exactly_its_own_features(path: Path) -> None:
    """Run the producers in registry order and see which feature values each one adds: its family's,
    all of them, and none of another family's (so one feature has one producer)."""
    sc = load(path)
    d = Derivation(sc, load_pack().settings, evaluation_time(sc, NOW))
    for fam in FAMILIES:
        before = dict(d.values)
        fam.python(d)
        written = {k for k in d.values if k not in before or d.values[k] is not before[k]}
        assert written == set(fam.features), (fam.name, sorted(written ^ set(fam.features)))
    assert set(d.values) == set(FEATURES)


def test_the_ibis_entries_resolve_to_the_batch_producers() -> None:
    with_ibis = [fam for fam in FAMILIES if fam.ibis is not None]
    assert with_ibis, "no family names an Ibis producer"
    for fam in with_ibis:
        assert fam.ibis is not None
        assert callable(resolve(fam.ibis)), fam.ibis
    assert len({fam.ibis for fam in with_ibis}) == len(with_ibis), "two families share an Ibis producer"
    with pytest.raises(AttributeError):
        resolve("tactful.batch.producers:no_such_producer")
    with pytest.raises(ValueError, match="module:attribute"):
        resolve("tactful.batch.producers")


def test_the_registry_agrees_with_the_batch_producers_module() -> None:
    """tactful.batch.producers keeps its own family table (FAMILIES, IBIS_PRODUCERS) while its Ibis
    producers are being written; the two must say the same."""
    producers = importlib.import_module("tactful.batch.producers")
    theirs = getattr(producers, "FAMILIES", None)
    if theirs is not None:
        assert {f.name: set(f.features) for f in FAMILIES} == {k: set(v) for k, v in theirs.items()}
    ibis_names = getattr(producers, "IBIS_PRODUCERS", None)
    if ibis_names is not None:
        ours = {f.name: f.ibis for f in FAMILIES if f.ibis is not None}
        assert ours == {k: f"tactful.batch.producers:{v}" for k, v in ibis_names.items()}


# --------------------------------------------------------------------------- now comes from the caller

CLOCK_CALLS = {"now", "utcnow", "today", "time", "time_ns", "monotonic", "monotonic_ns", "perf_counter",
               "perf_counter_ns", "process_time", "localtime", "gmtime"}


def test_nothing_in_the_package_reads_the_clock() -> None:
    """No call of a clock function (datetime.now, date.today, time.*) and no import of ``time``
    anywhere under tactful/features/."""
    found = []
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) >= 10
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in CLOCK_CALLS:
                found.append(f"{path.name}:{node.lineno} .{node.func.attr}()")
            if isinstance(node, ast.Import) and any(a.name == "time" for a in node.names):
                found.append(f"{path.name}:{node.lineno} imports time")
            if isinstance(node, ast.ImportFrom) and node.module == "time":
                found.append(f"{path.name}:{node.lineno} imports from time")
    assert not found, f"the feature package reads the clock: {found}"


def test_the_clock_guard_sees_a_clock_call() -> None:
    """The AST check above would catch ``datetime.now(UTC)`` written inside a producer."""
    tree = ast.parse("now = scenario.now or datetime.now(UTC)\n")
    calls = [n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Attribute)]
    assert set(calls) & CLOCK_CALLS


def _contact_age(now: datetime | None, **over: object) -> object:
    sc = scenario(now=None, **over)
    return derive(sc, load_pack().settings, now).values["contact_point_age_days"]


def test_derive_judges_at_the_now_it_is_given() -> None:
    # the base contact points were verified on 2026-06-01
    assert _contact_age(datetime(2026, 6, 11, tzinfo=UTC)) == 10
    assert _contact_age(datetime(2027, 6, 1, tzinfo=UTC)) == 365


def test_derive_without_any_now_raises_instead_of_reading_the_clock() -> None:
    with pytest.raises(ValueError, match="no `now`"):
        _contact_age(None)


def test_derive_refuses_a_naive_now_and_a_now_other_than_the_scenarios() -> None:
    with pytest.raises(ValueError, match="no timezone"):
        _contact_age(datetime(2026, 6, 11))
    own = scenario()
    assert own.now is not None
    derive(own, load_pack().settings, own.now)  # the same instant is fine
    with pytest.raises(ValueError, match="not the scenario's own now"):
        derive(own, load_pack().settings, own.now + timedelta(days=1))


def test_evaluate_judges_a_scenario_without_now_at_the_run_time() -> None:
    """A consent granted on 2026-12-01 counts for a run after that day and not before it (a grant
    dated after `now` does not count): the caller's run time decides."""
    later_grant = {"consents": [{"purpose": "marketing.communications", "status": "granted",
                                 "source": "form", "at": "2026-12-01"}]}
    sc = scenario(now=None, **later_grant)
    pack = load_pack()
    before = evaluate(sc, pack, run_time=datetime(2026, 11, 22, tzinfo=UTC))
    after = evaluate(sc, pack, run_time=datetime(2026, 12, 2, tzinfo=UTC))
    assert after.verdict is Verdict.ALLOW, after.reasons
    assert before.verdict is not Verdict.ALLOW, before.reasons
    assert "evaluation-error" not in {r.rule for r in (*before.reasons, *after.reasons)}
    # a scenario that states its own now is judged at it, whatever the run time
    own = scenario(now="2026-12-02T00:00:00Z", **later_grant)
    assert evaluate(own, pack, run_time=datetime(2026, 11, 22, tzinfo=UTC)).verdict is Verdict.ALLOW


# --------------------------------------------------------------------------- settings: key sets


def _key_lists() -> list[str]:
    return [s.name for s in SETTING_LIST if s.kind in (SKind.CATEGORIES, SKind.USES)]


@pytest.mark.parametrize("name", _key_lists())
def test_key_sets_hold_exactly_the_keys_a_setting_covers(name: str) -> None:
    settings = load_pack().settings
    kind = next(s.kind for s in SETTING_LIST if s.name == name)
    taxonomy = vocab.data_categories() if kind is SKind.CATEGORIES else vocab.data_uses()
    listed: tuple[str, ...] = settings.value(name)
    expected = {k for k in taxonomy.terms if any(vocab.covers(x, k) for x in listed)}
    assert settings.keys_under(name) == expected
    assert set(listed) <= settings.keys_under(name)
    for key in taxonomy.terms:
        assert settings.covers(name, key) is (key in expected), (name, key)


def test_sensitive_key_sets_cover_sub_keys_and_not_siblings() -> None:
    s = load_pack().settings
    assert "user.health_and_medical" in s.sensitive_categories
    under = [k for k in vocab.data_categories().terms if k.startswith("user.health_and_medical.")]
    assert under, "the vocabulary has keys below user.health_and_medical"
    assert all(s.is_sensitive(k) for k in under)
    assert not s.is_sensitive("user.behavior.purchase_history")  # benign twin
    assert not s.is_sensitive("user")  # a key above a listed one is not covered


def test_a_key_outside_the_vocabulary_is_still_matched_by_prefix() -> None:
    """An unknown key (which the unknown_vocabulary guard blocks anyway) below a sensitive key still
    counts as sensitive, as it did before the sets; one below nothing listed does not."""
    s = load_pack().settings
    assert s.is_sensitive("user.health_and_medical.not_a_real_key")
    assert not s.is_sensitive("user.behavior.not_a_real_key")


# --------------------------------------------------------------------------- catalogue


def test_the_catalogue_gives_every_feature_a_type_and_a_doc_and_booleans_a_phrase_or_words() -> None:
    assert [f.name for f in FEATURE_LIST] == list(FEATURES)
    for f in FEATURE_LIST:
        assert f.doc.strip() and isinstance(f.type, FType), f.name
        if f.phrase:
            assert f.type is FType.BOOL, f"{f.name}: only a boolean reads as a phrase"
    from tactful.policy.explain import PHRASES
    assert {f.name: f.phrase for f in FEATURE_LIST if f.phrase} == PHRASES
    assert PHRASES["consent_refused"].startswith("the customer refused")


def test_old_import_paths_still_work() -> None:
    """What other modules import from tactful.features keeps working from the package."""
    from tactful.features import (  # noqa: F401
        FAIL_CLOSED_FEATURES,
        NO_CAP,
        SETTINGS,
        Features,
        FeatureSpec,
        FrequencyCap,
        Settings,
        describe_value,
    )
    assert tactful.features.derive is derive
    assert set(FAIL_CLOSED_FEATURES) <= set(FEATURES)
