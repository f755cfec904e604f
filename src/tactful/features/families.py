"""The feature families of issue 9 §1 and their producers: every feature is in exactly one family,
and each family has one Python producer (a function of :class:`~tactful.features.context.Derivation`
in this package) and, once written, one Ibis producer (named by a dotted ``module:function`` path so
that this registry does not import Ibis; ``tests/test_features_package.py`` resolves every one that
is set).

:data:`FAMILIES` is in derivation order: a producer may read the features of the families before it
(consent reads sharing's ``safe_aggregate``; sensitivity reads consent's ``touch_personalizes`` and
``profiling_opt_in``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from tactful.features import consent, contact, frequency, hygiene, openness, provenance, sensitivity, sharing
from tactful.features.context import Derivation


@dataclass(frozen=True, slots=True)
class Family:
    """One feature family: its features (catalogue names), its Python producer, and the dotted path
    ``module:function`` of its Ibis producer (``None`` until it is written)."""

    name: str
    features: tuple[str, ...]
    python: Callable[[Derivation], None]
    ibis: str | None = None

    @property
    def python_path(self) -> str:
        return f"{self.python.__module__}:{self.python.__qualname__}"


_IBIS = "tactful.batch.producers"

#: Every family, in derivation order.
FAMILIES: tuple[Family, ...] = (
    Family("openness and depth",
           ("openness", "openness_declared", "customer_deceased", "openness_depth_cap", "touch_kind",
            "channel", "purpose", "sender", "trigger", "depth", "named"),
           openness.produce, f"{_IBIS}:openness_features"),
    Family("sharing",
           ("granularity", "group_size", "sender_is_partner", "is_partner_share", "safe_aggregate"),
           sharing.produce, f"{_IBIS}:sharing_features"),
    Family("contact and visibility",
           ("needs_contact_point", "contact_point_missing", "contact_point_bounced",
            "contact_point_verified_after_now", "contact_point_age_days", "seen_by"),
           contact.produce, f"{_IBIS}:contact_features"),
    Family("consent",
           ("touch_is_marketing", "touch_personalizes", "answers_request", "consent_granted",
            "consent_refused", "purpose_off_channel", "share_consent_granted", "profiling_opt_in"),
           consent.produce, f"{_IBIS}:consent_features"),
    Family("data hygiene",
           ("unknown_vocabulary", "missing_fact_reference", "uses_facts"),
           hygiene.produce, f"{_IBIS}:hygiene_features"),
    Family("sensitivity and inference",
           ("shows_sensitive", "uses_sensitive", "sender_sensitive", "uses_inferred_sensitive",
            "uses_unlicensed_sensitive", "uses_forbidden_identifier", "shows_undeclared_sensitive"),
           sensitivity.produce, f"{_IBIS}:sensitivity_features"),
    Family("provenance and context",
           ("generic_in_session", "uses_conversation_fact", "uses_realtime_signal", "uses_payment_fact",
            "uses_partner_fact", "uses_birthday", "birthday_expected", "shows_preference",
            "uses_preference"),
           provenance.produce, f"{_IBIS}:provenance_features"),
    Family("frequency",
           ("recent_marketing_on_channel", "channel_frequency_cap", "recent_surveys"),
           frequency.produce, f"{_IBIS}:frequency_features"),
)

#: feature name -> its family
FAMILY_OF: Mapping[str, Family] = MappingProxyType(
    {name: fam for fam in FAMILIES for name in fam.features})


def resolve(path: str) -> Any:
    """The object a dotted ``module:attribute`` path names (an Ibis producer); raises ImportError or
    AttributeError when it does not exist."""
    module, _, attr = path.partition(":")
    if not module or not attr:
        raise ValueError(f"{path!r}: expected module:attribute")
    return getattr(importlib.import_module(module), attr)
