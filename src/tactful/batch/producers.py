"""Ibis feature producers: feature columns computed inside the backend from the store read in place.

Issue 9 §1 gives every feature family one Python producer (``tactful.features``) and one Ibis producer.
Each Ibis producer takes the typed candidates (:data:`CANDIDATE_SCHEMA`: ``row``, ``customer_id``, the
touch's columns, ``now`` as a UTC timestamp), the store's typed tables
(:func:`tactful.batch.store.attach_store`) and the pack's settings (as literals), and returns ``row``
plus its family's feature columns. :func:`feature_frame` joins them all on ``row``: the whole feature
frame, the entry point of ``tactful batch decide``.

Every feature belongs to exactly one family (:data:`FAMILIES`, the same table as
``tactful.features.families``) and every family has its Ibis producer (:data:`IBIS_PRODUCERS`):
**openness and depth**, **sharing**, **contact and visibility**, **consent** and **frequency** here;
**data hygiene**, **provenance and context** and **sensitivity and inference** in
:mod:`tactful.batch.usage`, over the relation of the facts each candidate uses and shows.
``tests/test_batch_producers.py`` checks each column, and the whole frame, against the Python
derivation of the scenario the store gives the same candidate.

The candidates these producers read are *typed*: touch fields as text (enum values), ``named`` a
boolean, ``group_size`` an integer, absent fields NULL (the producers apply the touch file's
defaults). A value outside its vocabulary becomes NULL, which the compiled evaluator blocks on (the
Python path rejects such a row as an evaluation error: both fail closed).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import ibis

from tactful import vocab
from tactful.batch.usage import fact_usage, hygiene_features, provenance_features, sensitivity_features
from tactful.features import FEATURES, NO_CAP, Settings
from tactful.features import families as _registry
from tactful.vocab import (
    CHANNEL_CONTACT_KIND,
    SHARED_WITH_ORDER,
    Channel,
    ConsentSource,
    ConsentStatus,
    Depth,
    Granularity,
    Openness,
    SharedWith,
    TouchKind,
    Trigger,
)

#: The feature families of issue 9 §1 (the registry :data:`tactful.features.families.FAMILIES`):
#: family -> its features, every feature in exactly one.
FAMILIES: dict[str, tuple[str, ...]] = {f.name: f.features for f in _registry.FAMILIES}

#: Each family's Ibis producer: its function's name in this module (the registry's dotted paths).
IBIS_PRODUCERS: dict[str, str] = {f.name: f.ibis.partition(":")[2] for f in _registry.FAMILIES
                                  if f.ibis is not None and f.ibis.startswith(f"{__name__}:")}


def features_without_ibis_producer() -> list[str]:
    """The features (catalogue order) whose family has no Ibis producer (none now: a test keeps it so)."""
    done = {f for fam in IBIS_PRODUCERS for f in FAMILIES[fam]}
    return [name for name in FEATURES if name not in done]


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
    by_kind = ibis.ifelse(candidates.to.isnull(), candidates.to_kind, ibis.null("string"))
    c = candidates.select("row", "customer_id", "channel", "now", "to", needed=needed, by_kind=by_kind)
    # the named contact point, or the best-ranked one of the asked kind (at most one matches): two
    # equi-joins (one join on "id or kind" would be a predicate of both sides, which an outer join
    # can only test pair by pair: a nested loop over candidates x contact points)
    fields = ("cp_id", "cp_kind", "cp_shared", "cp_verified", "cp_bounced")
    named = ranked.select(n_customer="cp_customer", **{f"n_{f}": f for f in fields})
    best = ranked.filter(ranked.cp_rank == 0)
    best = best.select(b_customer="cp_customer", **{f"b_{f}": f for f in fields})
    j = c.left_join(named, [c.customer_id == named.n_customer, c.to == named.n_cp_id])
    j = j.left_join(best, [j.customer_id == best.b_customer, j.by_kind == best.b_cp_kind])
    j = j.select("row", "channel", "now", "needed",
                 **{f: ibis.ifelse(j.to.notnull(), j[f"n_{f}"], j[f"b_{f}"]) for f in fields})
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


def _member(col: Any, enum: Iterable[Any]) -> Any:
    """``col`` when it is a value of ``enum``, else NULL (fail closed: the evaluator blocks on it)."""
    values = sorted(str(m.value) for m in enum)
    return ibis.ifelse(col.isin(values), col, ibis.null("string"))


def openness_features(candidates: Any, customers: Any, s: Settings) -> Any:
    """``row`` and the openness and depth family of every candidate (``row``, ``customer_id``, ``kind``,
    ``purpose``, ``channel``, ``sender``, ``trigger``, ``depth``, ``named``): the customer's openness
    from the store's customers table (absent: the setting ``default_openness``), whether it is
    declared, whether the customer is deceased, the depth cap the openness allows, and the touch's own
    fields with the touch file's defaults. A customer missing from the store gives NULLs (blocked)."""
    cu = customers.select(cu_id="id", cu_openness="openness", cu_deceased="deceased")
    j = candidates.left_join(cu, candidates.customer_id == cu.cu_id)
    known = j.cu_id.notnull()
    openness = ibis.ifelse(known, _member(j.cu_openness.fill_null(s.default_openness.value), Openness),
                           ibis.null("string"))
    caps = [(o.value, d.value) for o, d in s.openness_max_depth.items()]
    return j.select(
        "row",
        openness=openness,
        openness_declared=ibis.ifelse(known, j.cu_openness.notnull(), ibis.null("boolean")),
        customer_deceased=ibis.ifelse(known, j.cu_deceased.cast("boolean"), ibis.null("boolean")),
        openness_depth_cap=openness.cases(*caps, else_=None) if caps else ibis.null("string"),
        touch_kind=_member(j.kind, TouchKind),
        channel=_member(j.channel, Channel),
        purpose=j.purpose,
        sender=j.sender.fill_null("first_party"),
        trigger=_member(j.trigger.fill_null(Trigger.SCHEDULED.value), Trigger),
        depth=_member(j.depth.fill_null(Depth.NONE.value), Depth),
        named=j.named.fill_null(False),
    )


def sharing_features(candidates: Any, s: Settings) -> Any:
    """``row`` and the sharing family of every candidate (``row``, ``kind``, ``channel``, ``sender``,
    ``granularity``, ``group_size``): a touch that does not state its granularity is individual (fail
    closed), an absent group size is 0; a safe aggregate is an aggregate partner share whose smallest
    group meets ``min_group_size``."""
    c = candidates
    granularity = _member(c.granularity.fill_null(Granularity.INDIVIDUAL.value), Granularity)
    size = c.group_size.fill_null(0).cast("int64")
    partner_share = (c.kind == TouchKind.SHARE.value) | (c.channel == Channel.PARTNER_EXPORT.value)
    return c.select(
        "row",
        granularity=granularity,
        group_size=size,
        sender_is_partner=c.sender.fill_null("first_party") != "first_party",
        is_partner_share=partner_share,
        safe_aggregate=partner_share & (granularity == Granularity.AGGREGATE.value)
        & (size >= s.min_group_size),
    )


def _covers(general: Any, specific: Any) -> Any:
    """vocab.covers between two string expressions (either may be a column)."""
    return (specific == general) | specific.startswith(general + ".")


def _overlaps(a: Any, b: Any) -> Any:
    return _covers(a, b) | _covers(b, a)


def _any(tests: Iterable[Any]) -> Any:
    items = list(tests)
    return functools.reduce(operator.or_, items) if items else ibis.literal(False)


def _channel_purpose(channel: Any, s: Settings) -> Any:
    pairs = [(ch.value, p) for ch, p in s.channel_purposes.items()]
    return channel.cases(*pairs, else_=None) if pairs else ibis.null("string")


def consent_features(candidates: Any, consents: Any, s: Settings) -> Any:
    """``row`` and the consent family of every candidate (``row``, ``customer_id``, ``kind``,
    ``purpose``, ``channel``, ``trigger``, ``depth``, ``granularity``, ``group_size``, ``now``): whether
    the touch is marketing by substance and personalizes, whether it answers a request (the candidates
    table has no ``requested_channel``: absent), the consent state of its effective purpose from the
    store's consents (the rules of :func:`tactful.features._consent_state`), whether its purpose is
    another channel's, and the share and profiling opt-ins (:func:`tactful.features._any_granted`)."""
    c = candidates
    kind, channel, purpose = c.kind, c.channel, c.purpose
    depth = c.depth.fill_null(Depth.NONE.value)
    trigger = c.trigger.fill_null(Trigger.SCHEDULED.value)
    outbound = _in(channel, s.outbound_channels)
    promotes = outbound & _in(kind, s.promotional_kinds) & (
        (depth != Depth.NONE.value) | ~_covered(purpose, s.transactional_purposes))
    by_marketing_purpose = _covered(purpose, s.marketing_purposes)
    marketing = _in(kind, s.marketing_kinds) | promotes | by_marketing_purpose
    personalizes = marketing | _in(kind, s.personalization_kinds) \
        | _covered(purpose, s.personalization_purposes)
    answers = (trigger == Trigger.CUSTOMER_REQUEST.value) & outbound
    use = _channel_purpose(channel, s)  # the channel's own marketing use (and its refusal group)
    effective = ibis.ifelse(use.notnull() & _covers(purpose, use).fill_null(False), use, purpose)
    fallback = ibis.literal(s.marketing_purposes[0]) if s.marketing_purposes else ibis.null("string")
    effective = ibis.ifelse(marketing & ~by_marketing_purpose, use.fill_null(fallback), effective)
    partner_share = (kind == TouchKind.SHARE.value) | (channel == Channel.PARTNER_EXPORT.value)
    safe_aggregate = partner_share & (c.granularity.fill_null(Granularity.INDIVIDUAL.value)
                                      == Granularity.AGGREGATE.value) \
        & (c.group_size.fill_null(0) >= s.min_group_size)
    off = _any((_covers(ibis.literal(cp), purpose) & (use.isnull() | (use != cp)))
               for cp in sorted(set(s.channel_purposes.values())))
    base = c.select("row", "customer_id", "channel", "now", effective=effective, group=use,
                    safe_aggregate=safe_aggregate, touch_is_marketing=marketing,
                    touch_personalizes=personalizes, answers_request=answers, purpose_off_channel=off)

    k = consents.select(k_customer="customer_id", k_purpose="purpose", k_channel="channel", k_status="status",
                        k_source="source", k_at="at")
    j = base.left_join(k, base.customer_id == k.k_customer)
    gpc = j.k_source == ConsentSource.GPC.value
    refusal = (j.k_status != ConsentStatus.GRANTED.value) | gpc
    future = j.k_at > j.now
    same_group = j.group.notnull() & (_channel_purpose(j.k_channel, s) == j.group)
    channel_ok = j.k_channel.isnull() | (j.k_channel == j.channel) | same_group.fill_null(False)
    exempt = gpc | _any(_overlaps(j.k_purpose, ibis.literal(p))
                        for p in (*s.share_consent_purposes, *s.gpc_refuses))
    refuses = _overlaps(j.k_purpose, j.effective) | (
        gpc & _any(_overlaps(ibis.literal(g), j.effective) for g in s.gpc_refuses))
    refused_here = refusal & channel_ok & ~(j.safe_aggregate & exempt) & refuses
    granted_here = ~refusal & (j.k_channel.isnull() | (j.k_channel == j.channel)) \
        & _covers(j.k_purpose, j.effective) & ~future.fill_null(False)

    def opt_in(purposes: tuple[str, ...]) -> tuple[Any, Any]:
        ok = ~refusal & ~future.fill_null(False) \
            & _any(_covers(j.k_purpose, ibis.literal(p)) for p in purposes)
        gpc_hit = any(vocab.covers(g, p) or vocab.covers(p, g) for g in s.gpc_refuses for p in purposes)
        refused = refusal & (_any(_overlaps(j.k_purpose, ibis.literal(p)) for p in purposes)
                             | (gpc & ibis.literal(gpc_hit)))
        return ok, refused

    def count(test: Any) -> Any:
        return ibis.ifelse(test.fill_null(False), 1, 0).sum()

    share_ok, share_refused = opt_in(s.share_consent_purposes)
    prof_ok, prof_refused = opt_in(s.profiling_opt_in_purposes)
    keys = ["row", "touch_is_marketing", "touch_personalizes", "answers_request", "purpose_off_channel"]
    agg = j.group_by(keys).aggregate(
        n_granted=count(granted_here), n_refused=count(refused_here), n_share_ok=count(share_ok),
        n_share_refused=count(share_refused), n_prof_ok=count(prof_ok), n_prof_refused=count(prof_refused))
    return agg.select(
        "row", "touch_is_marketing", "touch_personalizes", "answers_request",
        consent_granted=(agg.n_granted > 0) & (agg.n_refused == 0),
        consent_refused=agg.n_refused > 0,
        purpose_off_channel=agg.purpose_off_channel,
        share_consent_granted=(agg.n_share_ok > 0) & (agg.n_share_refused == 0),
        profiling_opt_in=(agg.n_prof_ok > 0) & (agg.n_prof_refused == 0),
    )


# --------------------------------------------------------------------------- the whole feature frame

#: The typed candidates table every Ibis producer reads (:func:`candidates_table` builds one from
#: parsed touch files). Touch fields are text (enum values), absent ones NULL; the fact selectors of
#: ``uses`` / ``shows`` are lists of structs (an exact id is ``{id: ...}`` with the other fields NULL).
SELECTOR_TYPE = "struct<id: string, kind: string, category: string, origin: string, source: string, " \
    "context: string, within_days: int64, newest: int64>"
CANDIDATE_SCHEMA: dict[str, str] = {
    "row": "int64", "customer_id": "string", "kind": "string", "purpose": "string", "channel": "string",
    "to": "string", "to_kind": "string", "sender": "string", "trigger": "string", "depth": "string",
    "named": "boolean", "granularity": "string", "group_size": "int64", "now": "timestamp('UTC')",
    "sender_implies": "array<string>", "shows_implies": "array<string>", "shows_items": "array<string>",
    "uses": f"array<{SELECTOR_TYPE}>", "shows": f"array<{SELECTOR_TYPE}>",
}
SELECTOR_FIELDS: tuple[str, ...] = ("id", "kind", "category", "origin", "source", "context", "within_days",
                                    "newest")


def candidate_row(row: int, customer_id: str, touch: Any, now: Any) -> dict[str, Any]:
    """One row of the typed candidates table from a parsed touch (:class:`tactful.realtime.TouchSpec`)
    and its evaluation time (an aware datetime)."""
    def value(v: Any) -> Any:
        return getattr(v, "value", v)

    def selector(sel: Any) -> dict[str, Any]:
        return {f: value(getattr(sel, f)) for f in SELECTOR_FIELDS}

    to = touch.to
    return {
        "row": row, "customer_id": customer_id, "kind": value(touch.kind), "purpose": touch.purpose,
        "channel": value(touch.channel), "to": to if isinstance(to, str) else None,
        "to_kind": value(to.kind) if to is not None and not isinstance(to, str) else None,
        "sender": touch.sender, "trigger": value(touch.trigger), "depth": value(touch.depth),
        "named": touch.named, "granularity": value(touch.granularity), "group_size": touch.group_size,
        "now": now, "sender_implies": list(touch.sender_implies), "shows_implies": list(touch.shows_implies),
        "shows_items": list(touch.shows_items), "uses": [selector(s) for s in touch.uses],
        "shows": [selector(s) for s in touch.shows],
    }


def candidates_table(rows: Iterable[dict[str, Any]]) -> Any:
    """The typed candidates table (an Ibis memtable of :data:`CANDIDATE_SCHEMA`) from rows made by
    :func:`candidate_row`."""
    return ibis.memtable(list(rows), schema=CANDIDATE_SCHEMA)


#: The store tables a feature frame reads: the column naming each row's customer, and the columns the
#: producers read (:func:`scoped_store`).
SCOPED_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "customers": ("id", ("id", "openness", "deceased")),
    "contact_points": ("customer_id", ("id", "customer_id", "kind", "shared_with", "verified_at",
                                       "bounced")),
    "consents": ("customer_id", ("customer_id", "purpose", "channel", "status", "source", "at")),
    "touches": ("customer_id", ("customer_id", "kind", "purpose", "channel", "at")),
    "facts": ("customer_id", ("id", "customer_id", "kind", "category", "implies", "label", "value",
                              "origin", "source", "context", "at")),
    "orders": ("customer_id", ("id", "customer_id", "at", "source", "context")),
}


@dataclass(frozen=True)
class ScopedStore:
    """The store's tables cut down to the candidates' customers (``table(name)`` as
    :class:`tactful.batch.store.AttachedStore` has it), on the DuckDB connection ``con``."""

    tables: Mapping[str, Any]
    con: Any
    #: what is computed once per run from tables every block shares (the products' implied
    #: categories), shared by the stores scoped from this one
    memo: dict[str, Any] = field(default_factory=dict)

    def table(self, name: str) -> Any:
        return self.tables[name]


def scoped_store(store: Any, candidates: Any, *, materialize: bool = True,
                 with_lines: bool = False) -> ScopedStore:
    """The rows of the store that the candidates' customers own: each customer table semi-joined to
    the candidates' distinct customers (the columns :data:`SCOPED_TABLES` names), the order lines of
    those customers' orders, and the products as they are. Every producer reads per customer, so the
    frame is the same as over the whole store; a run for 10 k customers of a 1 M-customer store then
    joins and aggregates 10 k customers' rows, not every customer's. ``materialize`` reads each
    customer table once into a table of the connection (eager; the order lines stay a lazy scan, read
    once by :func:`tactful.batch.usage.fact_pool`, unless ``with_lines``: a store scoped once and then
    cut again per block of customers, :func:`tactful.batch.run.decide_typed`)."""
    from tactful.batch.store import materialize as into_table

    con = store.con
    scope = candidates.select(s_customer="customer_id").distinct()
    if materialize:  # on the store's connection (the candidates may be an in-memory table)
        scope = into_table(con, scope)
    tables: dict[str, Any] = {}
    for name, (key, columns) in SCOPED_TABLES.items():
        t = store.table(name)
        t = t.semi_join(scope, t[key] == scope.s_customer).select(*columns)
        tables[name] = into_table(con, t) if materialize else t
    lines = store.table("order_lines")
    orders = tables["orders"].select(l_order="id")
    lines = lines.semi_join(orders, lines.order_id == orders.l_order).select("order_id", "product_id")
    tables["order_lines"] = into_table(con, lines) if materialize and with_lines else lines
    tables["products"] = store.table("products")
    memo = store.memo if isinstance(store, ScopedStore) else {}
    return ScopedStore(tables, con, memo)


def feature_frame(candidates: Any, store: Any, settings: Settings, *, mapping: Any = None,
                  materialize: bool = True) -> Any:
    """The whole feature frame: ``row``, ``customer_id`` and every feature of the catalogue (in
    catalogue order), one row per candidate, each family computed by its Ibis producer from the typed
    ``candidates`` (:data:`CANDIDATE_SCHEMA`) and the ``store`` attached read-only
    (:func:`tactful.batch.store.attach_store`), joined on ``row``. ``mapping`` is the sensitivity
    mapping that labels products (default: the packaged one; it runs eagerly, once per distinct
    product description). ``materialize`` builds the customers' pools of facts as temp tables first
    (:func:`tactful.batch.usage.fact_usage`). Raises :class:`BatchError` while a family has no Ibis
    producer (naming it)."""
    from tactful.errors import BatchError

    missing = [fam for fam in FAMILIES if fam not in IBIS_PRODUCERS]
    if missing:
        raise BatchError("the Ibis feature frame cannot be built: no Ibis producer yet for the "
                         f"feature famil{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)}",
                         hint="build the feature frame in Python (tactful.batch.frame) meanwhile")
    parts = family_frames(candidates, store, settings, mapping=mapping, materialize=materialize)
    frame = candidates.select("row", "customer_id")
    for part in parts.values():
        frame = frame.join(part, "row")
    return frame.select("row", "customer_id", *FEATURES)


def family_frames(candidates: Any, store: Any, settings: Settings, *, mapping: Any = None,
                  materialize: bool = True) -> dict[str, Any]:
    """Each family that has an Ibis producer -> its frame (``row`` and the family's features), over
    the store's rows of the candidates' customers (:func:`scoped_store`)."""
    s = settings
    store = scoped_store(store, candidates, materialize=materialize)
    out: dict[str, Any] = {
        "openness and depth": openness_features(candidates, store.table("customers"), s),
        "sharing": sharing_features(candidates, s),
        "contact and visibility": contact_features(candidates, store.table("contact_points"), s),
        "consent": consent_features(candidates, store.table("consents"), s),
        "frequency": frequency_features(candidates, store.table("touches"), s),
    }
    facts = fact_usage(candidates, store, s, mapping, materialize=materialize)
    out["data hygiene"] = hygiene_features(candidates, facts, store, s)
    out["provenance and context"] = provenance_features(candidates, facts, s)
    out["sensitivity and inference"] = sensitivity_features(candidates, facts, s, out["consent"])
    return out
