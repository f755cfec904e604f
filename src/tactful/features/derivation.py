"""How a scenario becomes features: :func:`derive` runs every family's Python producer in order.

Derivation is pure: the evaluation time ``now`` is an argument, never read from the clock here. A
caller resolves it (:func:`evaluation_time`): the scenario's own ``now`` when it states one, else the
time of the run, which the entry points (``tactful decide``, the real-time builder, a batch run, the
library's :func:`tactful.policy.evaluate`) read once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tactful.features.context import Derivation
from tactful.features.families import FAMILIES
from tactful.features.settings import Settings
from tactful.model import Scenario


@dataclass(frozen=True, slots=True)
class Features:
    """The features of one (customer, touch): ``values`` (flat scalars) and, for the Python evaluator,
    ``facts`` (feature -> ids of the facts that made it true) and ``keys`` (feature -> the category,
    purpose or consent descriptions involved), plus ``labels`` (fact id -> label or id)."""

    values: Mapping[str, Any]
    facts: Mapping[str, tuple[str, ...]]
    keys: Mapping[str, tuple[str, ...]]
    labels: Mapping[str, str]


_PRODUCERS = tuple(fam.python for fam in FAMILIES)


def evaluation_time(scenario: Scenario, run_time: datetime | None = None) -> datetime:
    """The time a scenario is judged at: its own ``now``, else ``run_time`` (the time of the run,
    which the caller read). Raises ValueError when neither is given (nothing here reads the clock)."""
    if scenario.now is not None:
        return scenario.now
    if run_time is None:
        raise ValueError("the scenario states no `now` and no run time was given")
    return run_time


def derive(scenario: Scenario, settings: Settings, now: datetime | None = None) -> Features:
    """Turn a scenario into the feature vocabulary at the evaluation time: the scenario's own ``now``
    when it states one (``now``, if given too, must be the same), else ``now``, which the caller
    resolved (:func:`evaluation_time`; timezone-aware). Without either it raises: derivation never
    reads the clock. Pure; fails loudly (the evaluator turns any exception into a block)."""
    if now is not None and scenario.now is not None and now != scenario.now:
        raise ValueError(f"now {now.isoformat()} is not the scenario's own now "
                         f"{scenario.now.isoformat()}")
    when = evaluation_time(scenario, now)
    if when.utcoffset() is None:
        raise ValueError(f"now {when.isoformat()} has no timezone")
    d = Derivation(scenario, settings, when)
    for produce in _PRODUCERS:
        produce(d)
    return Features(values=d.values, facts=d.facts, keys=d.keys, labels=d.labels)
