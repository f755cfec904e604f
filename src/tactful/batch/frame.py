"""Feature frames made by the Python feature derivation (:func:`tactful.features.derive`).

The batch evaluator reads a *feature frame*: one row per (customer, candidate touch), one column per
feature (:func:`tactful.policy.compile.feature_schema`). This module builds one from scenarios with
the Python derivation, which is what the agreement tests compare the compiled evaluator on, and what
``tactful batch decide`` uses for a candidates file of scenario documents.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pyarrow as pa

from tactful.features import FEATURES, FType, Settings, derive, evaluation_time
from tactful.model import Scenario

#: The key columns of a frame built here.
KEY_COLUMNS: tuple[str, ...] = ("row", "customer_id")


def arrow_type(name: str) -> pa.DataType:
    ftype = FEATURES[name].type
    if ftype is FType.BOOL:
        return pa.bool_()
    if ftype is FType.INT:
        return pa.int64()
    return pa.string()


def arrow_schema() -> pa.Schema:
    """The Arrow schema of a feature frame built here: the keys, then every feature."""
    return pa.schema([pa.field("row", pa.int64()), pa.field("customer_id", pa.string()),
                      *(pa.field(n, arrow_type(n)) for n in FEATURES)])


def feature_row(values: Mapping[str, Any]) -> dict[str, Any]:
    """One row of feature values as frame cells: enum members as their values, a missing feature as
    NULL (which the compiled evaluator blocks on)."""
    return {n: (v.value if isinstance(v, Enum) else v) for n in FEATURES
            for v in (values.get(n),)}


def frame_from_values(rows: Iterable[tuple[str, Mapping[str, Any]]]) -> pa.Table:
    """A feature frame from (customer id, feature values) pairs; ``row`` numbers them from 0."""
    cols: dict[str, list[Any]] = {name: [] for name in arrow_schema().names}
    for i, (customer, values) in enumerate(rows):
        cols["row"].append(i)
        cols["customer_id"].append(customer)
        for name, cell in feature_row(values).items():
            cols[name].append(cell)
    return pa.table(cols, schema=arrow_schema())


def frame_from_scenarios(scenarios: Iterable[Scenario], settings: Settings,
                         run_time: datetime | None = None) -> pa.Table:
    """A feature frame from scenarios (each derived with ``settings``; a derivation that raises
    propagates, as the scenario cannot be judged). A scenario that states no ``now`` is judged at
    ``run_time``, by default the time of this call (read once for all of them)."""
    when = run_time if run_time is not None else datetime.now(UTC)
    return frame_from_values((s.customer.id, derive(s, settings, evaluation_time(s, when)).values)
                             for s in scenarios)
