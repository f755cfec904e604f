"""The feature catalogue: every feature a rule may name, with its type, its documentation and, for a
boolean, the plain phrase `tactful policy explain` reads it as.

A feature is a flat scalar per (customer, touch) - a boolean, an integer, an enum value - that a rule
condition compares; the Python evaluator reads it from :func:`tactful.features.derive`, the batch
evaluator from a column of the feature frame. Which family computes it: :mod:`tactful.features.families`.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from types import MappingProxyType

from tactful.vocab import (
    Channel,
    Depth,
    Granularity,
    Openness,
    SharedWith,
    TouchKind,
    Trigger,
)


class FType(Enum):
    """The type of a feature, which decides what a condition may do with it."""

    BOOL = "boolean"  # used bare as a condition, or compared with eq/ne to true/false
    INT = "integer"  # eq ne lt le gt ge against an integer, an integer setting or another integer feature
    ORDERED = "ordered enum"  # eq ne lt le gt ge by rank (depth, openness, shared_with); in / not_in
    CATEGORY = "enum"  # eq ne in not_in (channel, touch kind, trigger, granularity)
    TEXT = "text"  # eq ne in not_in against strings (purpose, sender)


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """One feature of the vocabulary."""

    name: str
    type: FType
    doc: str
    enum: builtins.type[StrEnum] | None = None
    evidence: bool = False  # carries the fact ids that made it true (Python evaluator only)
    phrase: str = ""  # how a true boolean feature reads in a sentence (`tactful policy explain`)

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(m.value for m in self.enum) if self.enum is not None else ()

    @property
    def type_name(self) -> str:
        base: str = self.type.value
        return f"{base} {self.enum.__name__}" if self.enum is not None else base


def _f(name: str, type_: FType, doc: str, enum: type[StrEnum] | None = None,
       evidence: bool = False, phrase: str = "") -> FeatureSpec:
    return FeatureSpec(name, type_, doc, enum, evidence, phrase)


B, N, R, C, T = FType.BOOL, FType.INT, FType.ORDERED, FType.CATEGORY, FType.TEXT

#: Every feature a rule may name, in documentation order.
FEATURE_LIST: tuple[FeatureSpec, ...] = (
    # the customer
    _f("openness", R, "The customer's openness (closed < reserved < balanced < open); absent in the "
       "scenario = the setting default_openness.", Openness),
    _f("openness_declared", B, "The scenario states the customer's openness (not the pack default).",
       phrase="the customer stated an openness"),
    _f("customer_deceased", B, "The customer is recorded as deceased.",
       phrase="the customer is deceased"),
    _f("openness_depth_cap", R, "The highest depth this customer's openness allows "
       "(setting openness_max_depth looked up with openness).", Depth),
    # the touch
    _f("touch_kind", C, "The touch's kind (offer, greeting, recommendation, reminder, survey, service, "
       "share, advisor_prompt).", TouchKind),
    _f("channel", C, "The touch's channel.", Channel),
    _f("purpose", T, "The touch's purpose (a data use key) as written in the scenario."),
    _f("sender", T, "The touch's sender: first_party or partner:<name>."),
    _f("trigger", C, "What triggers the touch (scheduled, realtime_browse, event, customer_request).",
       Trigger),
    _f("depth", R, "How much the touch shows (none < segment < category < item < history < "
       "detailed_history); its evidence is the shown facts.", Depth, evidence=True),
    _f("named", B, "The touch greets the customer by name.",
       phrase="the touch greets the customer by name"),
    _f("granularity", C, "For a share: individual or aggregate; a share that does not say is "
       "individual (fail closed). Other touches: individual.", Granularity),
    _f("group_size", N, "For an aggregate share: the smallest group in the export (0 when absent)."),
    _f("touch_is_marketing", B, "Marketing by substance: the purpose is under one of the setting "
       "marketing_purposes, or the kind is one of marketing_kinds, or the touch goes out on one of "
       "outbound_channels and promotes (its kind is one of promotional_kinds and it shows something "
       "(depth above none) or states a purpose outside transactional_purposes) - whatever purpose it "
       "is filed under.",
       phrase="the touch is marketing"),
    _f("touch_personalizes", B, "The touch uses customer data to personalize or market: it is "
       "marketing, or its purpose is under one of personalization_purposes, or its kind is one of "
       "personalization_kinds.",
       phrase="the touch personalizes or markets"),
    _f("answers_request", B, "The touch answers the customer's own request (trigger customer_request) "
       "on an outbound channel (setting outbound_channels) - a callback or a quote she asked for - and, "
       "when the scenario states touch.requested_channel, on the channel she asked for. It needs no "
       "marketing opt-in and counts toward no cap, but keeps every other rule (a support disclosure "
       "is still not marketing material).",
       phrase="the touch answers the customer's own request on the channel she asked for"),
    _f("generic_in_session", B, "The touch is shown inside the customer's session (setting "
       "in_session_channels) and uses no personal data: no fact used or shown, not named, depth at "
       "most item (a generic banner, a contextual offer for the page being viewed).",
       phrase="the touch is generic in-session content using no personal data"),
    _f("safe_aggregate", B, "The touch is an aggregate partner share whose smallest group meets "
       "min_group_size: aggregate information is not personal information (CCPA 1798.140(v)(3)).",
       phrase="the touch is an aggregate share meeting the minimum group size"),
    _f("sender_is_partner", B, "The sender is a partner (partner:<name>), not the first party.",
       phrase="the sender is a partner"),
    _f("is_partner_share", B, "The touch hands data to another party (kind share or channel "
       "partner_export).",
       phrase="the touch hands data to another party"),
    # the recipient contact point
    _f("needs_contact_point", B, "The channel delivers to a contact point (email, sms, phone, postal).",
       phrase="the channel needs a contact point"),
    _f("contact_point_missing", B, "The channel needs a contact point and the touch names none, names "
       "an unknown one, or one of the wrong kind (an email to a postal address).",
       phrase="there is no usable contact point for the channel"),
    _f("contact_point_bounced", B, "The recipient contact point bounces.",
       phrase="the contact point bounces"),
    _f("contact_point_verified_after_now", B, "The recipient contact point's verified_at lies after "
       "`now`: a verification that has not happened yet does not refresh a contact point.",
       phrase="the contact point's verification is dated after now"),
    _f("contact_point_age_days", N, "Days since the recipient contact point was last verified; -1 when "
       "it was never verified or there is none."),
    _f("seen_by", R, "Who else can see what this touch delivers: the contact point's shared_with "
       "(absent = household), raised to the channel's floor from the setting channel_visibility "
       "(a postcard is seen by others whatever the address).", SharedWith),
    # consent
    _f("consent_granted", B, "A granted consent covers the touch's purpose on this channel and no "
       "refusal applies (see consent_refused). A grant dated after `now` does not count.",
       phrase="the customer opted in to this purpose on this channel"),
    _f("consent_refused", B, "A denied or withdrawn consent, or any record from a Global Privacy "
       "Control signal (source gpc), overlaps the touch's purpose on this channel (or on a channel with "
       "the same channel purpose: a refusal by letter covers postcards); a GPC record also refuses "
       "every use of the setting gpc_refuses. For a safe_aggregate share, GPC records and refusals "
       "of share_consent_purposes or gpc_refuses do not apply (they are about individual-level "
       "data). Refusals count whatever their date (a refusal dated after `now` still refuses).",
       evidence=True,
       phrase="the customer refused this purpose on this channel (or sent a GPC signal)"),
    _f("purpose_off_channel", B, "The touch's purpose is (or sits under) the channel purpose of "
       "another channel (setting channel_purposes): an email-marketing purpose on an SMS, an SMS "
       "purpose on a call. Such a touch would be judged against the wrong opt-in.",
       phrase="the touch states a purpose meant for another channel"),
    _f("share_consent_granted", B, "A granted consent (not refused, and no GPC record refuses it) for "
       "one of the setting share_consent_purposes: the customer agreed that individual data goes to "
       "third parties.",
       phrase="the customer agreed to sharing with third parties"),
    # what the touch uses and shows
    _f("uses_facts", B, "The touch uses or shows at least one fact.", evidence=True,
       phrase="the touch uses or shows facts"),
    _f("shows_sensitive", B, "A shown fact's category or implied category is sensitive (setting "
       "sensitive_categories; an inference's category also inferred_sensitive_categories), or the "
       "touch's shows_implies names a sensitive category. Not counted: what the customer disclosed "
       "in the very conversation an advisor prompt belongs to (channel advisor, trigger "
       "customer_request, a first-party conversation fact that is not an inference, with the same "
       "touch.conversation / fact.conversation id or, without ids, one said within "
       "conversation_window_minutes before `now`): the advisor already heard it.", evidence=True,
       phrase="the touch shows something sensitive"),
    _f("uses_sensitive", B, "A fact the touch uses or shows has a sensitive category or implied "
       "category.", evidence=True,
       phrase="the touch uses something sensitive"),
    _f("sender_sensitive", B, "Receiving anything from this sender reveals a sensitive category "
       "(touch.sender_implies).", evidence=True,
       phrase="receiving anything from the sender reveals something sensitive"),
    _f("uses_inferred_sensitive", B, "A used or shown fact that is an inference (origin inferred or "
       "kind inference) has a sensitive category or implied category (an inferred category of "
       "inferred_sensitive_categories counts too: a \"heavy drinker\" segment), or, when the touch "
       "personalizes, any used or shown fact implies a sensitive category (a pregnancy test bought "
       "implies reproductive health), that "
       "the customer has not declared (docs/default-pack.md, declarations), no profiling opt-in "
       "covers, and the "
       "sender does not itself reveal (touch.sender_implies: a specialist shop).", evidence=True,
       phrase="the touch relies on an undeclared inferred sensitive attribute"),
    _f("uses_unlicensed_sensitive", B, "A used or shown fact that is not an inference has a sensitive "
       "category of its own (health pages browsed, arrears seen, a precise location, a partner's "
       "\"declared\" record) and the customer has not declared it to us (see uses_inferred_sensitive), no "
       "profiling opt-in covers it and the sender does not itself reveal it; only counted when the "
       "touch personalizes (touch_personalizes).", evidence=True,
       phrase="the touch personalizes with sensitive data the customer never licensed"),
    _f("uses_forbidden_identifier", B, "A fact of one of never_use_categories (government "
       "identifiers, credentials) is shown by the touch, or used by a touch that personalizes.",
       evidence=True,
       phrase="the touch uses or shows a government identifier or credentials"),
    _f("shows_undeclared_sensitive", B, "The items the touch shows reveal (touch.shows_implies) a "
       "sensitive category the customer has not declared and no profiling opt-in covers.",
       evidence=True,
       phrase="the items shown reveal an undeclared sensitive attribute"),
    _f("profiling_opt_in", B, "A granted consent (dated no later than `now`) for one of the setting "
       "profiling_opt_in_purposes, and no refusal that overlaps ANY of them: a refusal of profiling "
       "wins over every broader or older grant (personalize, personalize.content).",
       phrase="the customer opted in to profiling"),
    _f("uses_conversation_fact", B, "A used or shown fact was disclosed in a conversation: its source "
       "is one of conversation_sources or its context matches one of conversation_contexts (as a "
       "whole word of the normalised context: customer_support matches support).", evidence=True,
       phrase="the touch uses something said in a support conversation"),
    _f("uses_realtime_signal", B, "A used or shown fact is a live observation (origin observed, and "
       "kind event or a category of live_signal_categories such as a location) dated within "
       "realtime_window_minutes before `now`: a geofence, a beacon, an app event, a page view, a "
       "call.", evidence=True,
       phrase="the touch uses a live observation made minutes ago"),
    _f("uses_payment_fact", B, "A used or shown fact was collected in a payment context (setting "
       "payment_contexts).", evidence=True,
       phrase="the touch uses payment data"),
    _f("uses_partner_fact", B, "A used or shown fact came from a partner (source partner:<name>), "
       "whatever origin it is marked with (a broker's \"declared\" is third-party data).",
       evidence=True,
       phrase="the touch uses data a partner collected"),
    _f("uses_birthday", B, "A used or shown fact is a birthday (setting birthday_categories).",
       evidence=True,
       phrase="the touch uses the birthday"),
    _f("birthday_expected", B, "Every birthday fact the touch uses was declared in a context where the "
       "customer was told it would be used (setting birthday_expectation_contexts).",
       phrase="the customer was told the birthday would be used"),
    _f("shows_preference", B, "The touch shows (announces) a preference fact.", evidence=True,
       phrase="the touch announces a preference"),
    _f("uses_preference", B, "The touch uses a preference fact.", evidence=True,
       phrase="the touch uses a preference"),
    _f("unknown_vocabulary", B, "Some data category or data use in the scenario (a fact's category or "
       "implies, the touch's purpose, sender_implies or shows_implies, a consent's purpose, a recent "
       "touch's purpose) is not in the vocabulary.", evidence=True,
       phrase="the scenario uses an unknown category or data use"),
    _f("missing_fact_reference", B, "The touch uses or shows a fact id that is not among the facts.",
       evidence=True,
       phrase="the touch refers to facts that are not there"),
    # history
    _f("recent_marketing_on_channel", N, "Marketing touches already sent on this channel's cap group "
       "within that group's window (setting frequency_caps); 0 when the channel has no cap. A recent "
       "touch is marketing when its kind is in marketing_kinds, or in promotional_kinds and either "
       "in personalization_kinds or filed under a purpose outside transactional_purposes, or its "
       "purpose is marketing and its kind not transactional. Touches dated after "
       "`now` count too (fail closed: a send recorded later still happened)."),
    _f("channel_frequency_cap", N, "The most marketing touches the channel's cap group allows in its "
       "window (setting frequency_caps); 1000000 when the channel has no cap."),
    _f("recent_surveys", N, "Surveys already sent (any channel) within survey_window_days, or dated "
       "after `now`; a recent touch counts as a survey when its kind is survey."),
)

FEATURES: Mapping[str, FeatureSpec] = MappingProxyType({f.name: f for f in FEATURE_LIST})

#: Input guards: when one of these is true the touch is blocked whatever the pack says (the evaluator
#: adds a ``fail-closed-guard`` reason when no rule of the pack blocked on it). An unknown key, a
#: dangling fact id, a missing recipient or a purpose meant for another channel cannot be judged.
FAIL_CLOSED_FEATURES: tuple[str, ...] = (
    "unknown_vocabulary", "missing_fact_reference", "contact_point_missing", "purpose_off_channel")
#: channel_frequency_cap of a channel that has no cap.
NO_CAP = 1_000_000
