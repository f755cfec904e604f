from __future__ import annotations

import pytest

from tactful import vocab
from tactful.errors import ScenarioError, VocabularyError
from tactful.model import parse_scenario


def test_taxonomy_has_fideslang_and_extensions() -> None:
    cats = vocab.data_categories()
    assert "user.behavior.purchase_history" in cats
    assert cats.terms["user.sexual_life"].extension
    assert cats.terms["user.health_and_medical.reproductive"].extension
    assert cats.ancestors("user.demographic.household.baby")[-1] == "user"
    assert "marketing.communications.email" in vocab.data_uses()


def test_unknown_category_is_an_error_with_suggestions() -> None:
    with pytest.raises(VocabularyError) as info:
        vocab.check_category("user.sex_life")
    assert "user.sexual_life" in str(info.value)


def test_scenario_errors_name_the_field_path() -> None:
    doc = {
        "version": 1,
        "customer": {"id": "x", "openness": "wide"},
        "facts": [{"id": "f", "kind": "buy", "category": "user", "origin": "observed",
                   "source": "web", "context": "checkout"}],
        "touch": {"kind": "offer", "purpose": "marketing", "channel": "email", "bogus": 1},
    }
    with pytest.raises(ScenarioError) as info:
        parse_scenario(doc, source="s.yaml")
    paths = [p for p, _ in info.value.errors]
    assert paths == ["customer.openness", "facts[0].kind", "touch.bogus"]
    assert "'wide'" in str(info.value)


def test_own_validator_messages_are_not_doubled() -> None:
    doc = {
        "version": 1,
        "now": "yesterday",
        "customer": {"id": "x"},
        "touch": {"kind": "offer", "purpose": "marketing", "channel": "email", "sender": "someone"},
    }
    with pytest.raises(ScenarioError) as info:
        parse_scenario(doc)
    messages = dict(info.value.errors)
    assert messages["now"] == "expected an ISO 8601 date or date-time, got 'yesterday'"
    assert messages["touch.sender"] == "unknown sender 'someone': expected first_party or partner:<name>"
