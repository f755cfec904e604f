"""What every family producer shares: the :class:`Derivation` of one (customer, touch) and the small
rules about facts that several families apply (an inference, a customer's own declaration, a
conversation).

A derivation is given the scenario, the pack's settings and ``now`` - the evaluation time, resolved
by the caller (nothing in :mod:`tactful.features` reads the clock). The producers run in the order of
:data:`tactful.features.families.FAMILIES`; each writes its own family's features and may read the
features of the families before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from tactful.features.settings import Settings
from tactful.model import Scenario, ScenarioFact, ScenarioTouch
from tactful.vocab import FactKind, Origin


@dataclass(frozen=True, slots=True)
class FactIndex:
    """One pass over a scenario's facts: by id, the distinct category keys (own and implied) and what
    the customer declared (category -> normalised labels)."""

    by_id: dict[str, ScenarioFact]
    distinct: set[str]
    declared: dict[str, set[str]]


class Derivation:
    """The work area of one derivation: the inputs, the feature values written so far, and for the
    Python evaluator the evidence (feature -> fact ids, feature -> keys) and the fact labels."""

    def __init__(self, scenario: Scenario, settings: Settings, now: datetime) -> None:
        self.scenario = scenario
        self.settings = settings
        self.touch: ScenarioTouch = scenario.touch
        self.now = now
        self.values: dict[str, Any] = {}
        self.facts: dict[str, tuple[str, ...]] = {}
        self.keys: dict[str, tuple[str, ...]] = {}
        self.labels: dict[str, str] = {}

    @cached_property
    def index(self) -> FactIndex:
        by_id: dict[str, ScenarioFact] = {}
        distinct: set[str] = set()
        declared: dict[str, set[str]] = {}
        for f in self.scenario.facts:
            by_id[f.id] = f
            distinct.add(f.category)
            if f.implies:
                distinct.update(f.implies)
            if told_by_customer(f):
                declared.setdefault(f.category, set()).add(normalise_label(f.label))
        return FactIndex(by_id, distinct, declared)

    @cached_property
    def used(self) -> list[ScenarioFact]:
        """The facts the touch uses (first mention order, unknown ids left out)."""
        by_id = self.index.by_id
        return [by_id[i] for i in dict.fromkeys(self.touch.uses) if i in by_id]

    @cached_property
    def shown(self) -> list[ScenarioFact]:
        """The facts the touch shows."""
        by_id = self.index.by_id
        return [by_id[i] for i in dict.fromkeys(self.touch.shows) if i in by_id]

    @cached_property
    def both(self) -> list[ScenarioFact]:
        """The facts the touch uses or shows, each once."""
        return list({f.id: f for f in (*self.used, *self.shown)}.values())

    def is_conversation(self, f: ScenarioFact) -> bool:
        """The fact was disclosed in a conversation (setting conversation_sources or
        conversation_contexts)."""
        s = self.settings
        return f.source in s.conversation_sources or s.context_in("conversation_contexts", f.context)


def normalise_label(text: str | None) -> str:
    return " ".join((text or "").casefold().split())


def is_inference(f: ScenarioFact) -> bool:
    return f.origin is Origin.INFERRED or f.kind is FactKind.INFERENCE


def told_by_customer(f: ScenarioFact) -> bool:
    """Declared means told to us by the customer on a first-party channel: a partner's or broker's
    record marked declared is third-party data (seed 000)."""
    return f.origin is Origin.DECLARED and f.kind is not FactKind.INFERENCE and not f.source.startswith(
        "partner:")


def days_between(now: datetime, then: datetime) -> float:
    return (now - then).total_seconds() / 86400.0
