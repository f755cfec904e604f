"""The feature vocabulary: what policy rules can speak about, and how a scenario becomes it.

A package of four parts (docs/architecture.md, "Features"):

* :mod:`~tactful.features.catalogue` - every feature (type, doc, plain phrase), the input guards;
* :mod:`~tactful.features.settings` - the settings schema a pack fills in, with the key-list settings
  expanded once into plain sets;
* :mod:`~tactful.features.families` - the eight feature families, each with one Python producer (a
  module of this package: ``openness``, ``sharing``, ``contact``, ``consent``, ``hygiene``,
  ``sensitivity``, ``provenance``, ``frequency``) and its Ibis producer in
  :mod:`tactful.batch.producers`;
* :mod:`~tactful.features.derivation` - :func:`derive`, which runs the Python producers at an
  evaluation time the caller passes in (nothing in this package reads the clock), and
  :mod:`~tactful.features.display` for how a value reads in a message.

For the Python evaluator only, :class:`Features` also carries *evidence*: for a boolean feature that
is true, the ids of the facts that made it true and the keys (categories, purposes) involved, so that
a reason can name them.
"""

from __future__ import annotations

from tactful.features.catalogue import (
    FAIL_CLOSED_FEATURES,
    FEATURE_LIST,
    FEATURES,
    NO_CAP,
    FeatureSpec,
    FType,
)
from tactful.features.derivation import Features, derive, evaluation_time
from tactful.features.display import describe_value
from tactful.features.families import FAMILIES, FAMILY_OF, Family
from tactful.features.settings import (
    SETTING_LIST,
    SETTINGS,
    FrequencyCap,
    Settings,
    SettingSpec,
    SKind,
)

__all__ = [
    "FAIL_CLOSED_FEATURES",
    "FAMILIES",
    "FAMILY_OF",
    "FEATURES",
    "FEATURE_LIST",
    "NO_CAP",
    "SETTINGS",
    "SETTING_LIST",
    "FType",
    "Family",
    "FeatureSpec",
    "Features",
    "FrequencyCap",
    "SKind",
    "SettingSpec",
    "Settings",
    "derive",
    "describe_value",
    "evaluation_time",
]
