"""Family **frequency**: what the customer already received, against the pack's caps."""

from __future__ import annotations

from datetime import timedelta

from tactful.features.catalogue import NO_CAP
from tactful.features.context import Derivation
from tactful.features.settings import Settings
from tactful.model import ScenarioRecentTouch
from tactful.vocab import TouchKind


def produce(d: Derivation) -> None:
    """recent_marketing_on_channel, channel_frequency_cap, recent_surveys. Touches dated after `now`
    count: a send recorded later still happened."""
    s, v, now, channel = d.settings, d.values, d.now, d.touch.channel
    recent = d.scenario.recent_touches
    cap = next((c for c in s.frequency_caps if channel in c.channels), None)
    count = 0
    if cap is not None:
        since = now - timedelta(days=cap.days)
        for t in recent:
            if t.channel in cap.channels and since < t.at and was_marketing(t, s):
                count += 1
    v["recent_marketing_on_channel"] = count
    v["channel_frequency_cap"] = cap.max if cap is not None else NO_CAP
    survey_since = now - timedelta(days=s.survey_window_days)
    v["recent_surveys"] = sum(1 for t in recent if t.kind is TouchKind.SURVEY and survey_since < t.at)


def was_marketing(t: ScenarioRecentTouch, s: Settings) -> bool:
    """A recent touch counts as marketing by its kind or by a marketing purpose on a non-transactional
    kind. Its depth is not recorded, so a promotional kind that also personalizes (a recommendation,
    a greeting) counts whatever purpose it was filed under; one that may be transactional (a
    reminder) counts unless its purpose is transactional."""
    if t.kind in s.marketing_kinds:
        return True
    if t.kind in s.promotional_kinds and (
            t.kind in s.personalization_kinds or not s.covers("transactional_purposes", t.purpose)):
        return True
    return s.covers("marketing_purposes", t.purpose) and t.kind not in s.transactional_kinds
