"""Ibis feature producers: feature columns computed inside the backend from the store read in place.

Issue 9 §1 moves every feature family to one Python producer (:func:`tactful.features.derive` today)
and one Ibis producer. This module holds the Ibis producers written so far; each takes the candidates
(``row``, ``customer_id``, the touch's columns and ``now`` as a UTC timestamp), the store's typed tables
(:func:`tactful.batch.store.attach_store`) and the pack's settings (as literals), and returns ``row``
plus its feature columns. ``tests/test_batch_producers.py`` checks each column against the Python
derivation of the scenario the store gives the same candidate.

Written so far: the **frequency** family (``recent_marketing_on_channel``, ``channel_frequency_cap``,
``recent_surveys``) and the **contact and visibility** family (``needs_contact_point``,
``contact_point_missing``, ``contact_point_bounced``, ``contact_point_age_days``,
``contact_point_verified_after_now``, ``seen_by``).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable
from typing import Any

import ibis

from tactful.features import NO_CAP, Settings
from tactful.vocab import CHANNEL_CONTACT_KIND, SHARED_WITH_ORDER, SharedWith, TouchKind


def _covered(purpose: Any, keys: Iterable[str]) -> Any:
    """``purpose`` is one of ``keys`` or sits under one (vocab.covers, as plain string tests)."""
    tests = [(purpose == k) | purpose.startswith(k + ".") for k in keys]
    return functools.reduce(operator.or_, tests) if tests else ibis.literal(False)


def _in(col: Any, values: Iterable[str]) -> Any:
    items = sorted(str(v) for v in values)
    return col.isin(items) if items else ibis.literal(False)


def was_marketing(kind: Any, purpose: Any, s: Settings) -> Any:
    """A recent touch counts as marketing (the Python rule :func:`tactful.features._was_marketing`)."""
    promotional = _in(kind, s.promotional_kinds) & (
        _in(kind, s.personalization_kinds) | ~_covered(purpose, s.transactional_purposes))
    by_purpose = _covered(purpose, s.marketing_purposes) & ~_in(kind, s.transactional_kinds)
    return _in(kind, s.marketing_kinds) | promotional | by_purpose


def _cap_group(channel: Any, s: Settings) -> Any:
    """The index of the frequency-cap group a channel belongs to (NULL: no cap)."""
    branches = [(c.value, i) for i, cap in enumerate(s.frequency_caps) for c in sorted(cap.channels)]
    if not branches:
        return ibis.null("int64")
    return channel.cases(*branches, else_=None).cast("int64")


def frequency_features(candidates: Any, touches: Any, s: Settings) -> Any:
    """``row``, ``recent_marketing_on_channel``, ``channel_frequency_cap`` and ``recent_surveys`` of every
    candidate, counted from the store's touches table in the policy's windows (the touches a scenario
    built from the store holds: after ``now`` minus the longest window, at or before ``now``)."""
    window = max([c.days for c in s.frequency_caps] + [s.survey_window_days])
    caps = s.frequency_caps
    group = _cap_group(candidates.channel, s)
    days = (group.cases(*((i, c.days) for i, c in enumerate(caps)), else_=None) if caps
            else ibis.null("int64"))
    cap_max = (group.cases(*((i, c.max) for i, c in enumerate(caps)), else_=NO_CAP) if caps
               else ibis.literal(NO_CAP))
    c = candidates.select("row", "customer_id", "now", group=group, days=days, cap_max=cap_max)
    t = touches.select(t_customer="customer_id", t_kind="kind", t_purpose="purpose", t_channel="channel",
                       t_at="at")
    joined = c.left_join(t, [c.customer_id == t.t_customer, t.t_at <= c.now,
                             t.t_at > c.now - ibis.interval(days=window)])
    in_cap = (_cap_group(joined.t_channel, s) == joined.group) \
        & (joined.t_at > joined.now - joined.days.as_interval("D")) \
        & was_marketing(joined.t_kind, joined.t_purpose, s)
    survey = (joined.t_kind == TouchKind.SURVEY.value) \
        & (joined.t_at > joined.now - ibis.interval(days=s.survey_window_days))
    counted = joined.group_by(["row", "cap_max"]).aggregate(
        recent_marketing_on_channel=ibis.ifelse(in_cap.fill_null(False), 1, 0).sum(),
        recent_surveys=ibis.ifelse(survey.fill_null(False), 1, 0).sum(),
    )
    return counted.select(
        "row",
        recent_marketing_on_channel=counted.recent_marketing_on_channel.fill_null(0).cast("int64"),
        channel_frequency_cap=counted.cap_max.cast("int64"),
        recent_surveys=counted.recent_surveys.fill_null(0).cast("int64"),
    )


def _ranked(col: Any, order: Iterable[SharedWith]) -> Any:
    return col.cases(*((m.value, i) for i, m in enumerate(order)), else_=None)


def contact_features(candidates: Any, contact_points: Any, s: Settings) -> Any:
    """``row`` and the contact and visibility features of every candidate (``row``, ``customer_id``,
    ``channel``, ``to``: a contact point id or NULL, ``to_kind``: email / phone / postal or NULL,
    ``now``). ``to_kind`` picks the customer's contact point of that kind as the real-time path does:
    not bounced first, then the most recently verified, then the smallest id."""
    needed = candidates.channel.cases(
        *((c.value, k.value) for c, k in CHANNEL_CONTACT_KIND.items() if k is not None), else_=None)
    cp = contact_points.select(cp_customer="customer_id", cp_id="id", cp_kind="kind",
                               cp_shared="shared_with", cp_verified="verified_at", cp_bounced="bounced")
    ranked = cp.mutate(cp_rank=ibis.row_number().over(
        group_by=[cp.cp_customer, cp.cp_kind],
        order_by=[cp.cp_bounced.asc(), cp.cp_verified.isnull().asc(), cp.cp_verified.desc(), cp.cp_id.asc()]))
    c = candidates.select("row", "customer_id", "channel", "now", "to", "to_kind", needed=needed)
    # one join: the named contact point, or the best-ranked one of the asked kind (at most one matches)
    j = c.left_join(ranked, [c.customer_id == ranked.cp_customer,
                             ibis.ifelse(c.to.notnull(), ranked.cp_id == c.to,
                                         (ranked.cp_kind == c.to_kind) & (ranked.cp_rank == 0))])
    need = j.needed.notnull()
    missing = need & (j.cp_id.isnull() | (j.cp_kind != j.needed).fill_null(True))
    usable = need & ~missing
    seconds = j.now.epoch_seconds() - j.cp_verified.epoch_seconds()
    age = ibis.ifelse(usable & j.cp_verified.notnull(),
                      ibis.greatest(0, (seconds / 86400).floor()).cast("int64"), -1)
    own = ibis.ifelse(need, _ranked(ibis.ifelse(usable, j.cp_shared, ibis.null("string"))
                                    .fill_null(SharedWith.HOUSEHOLD.value), SHARED_WITH_ORDER),
                      SHARED_WITH_ORDER.index(SharedWith.PRIVATE))
    floors = [(ch.value, SHARED_WITH_ORDER.index(f)) for ch, f in s.channel_visibility.items()]
    floor = j.channel.cases(*floors, else_=0) if floors else ibis.literal(0)
    seen = ibis.greatest(own, floor).cases(*((i, m.value) for i, m in enumerate(SHARED_WITH_ORDER)),
                                           else_=None)
    return j.select(
        "row",
        needs_contact_point=need,
        contact_point_missing=missing,
        contact_point_bounced=(usable & j.cp_bounced).fill_null(False),
        contact_point_age_days=age,
        contact_point_verified_after_now=(usable & (j.cp_verified > j.now)).fill_null(False),
        seen_by=seen,
    )
