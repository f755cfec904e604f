"""The feature vocabulary: what policy rules can speak about, and how a scenario becomes it.

This module is the one place that turns a :class:`~tactful.model.Scenario` into *features*: flat
scalars per (customer, touch) — booleans, integers, enum values — that a rule condition compares.
The Python evaluator (:mod:`tactful.policy.evaluate`) reads them from :func:`derive`; the batch
evaluator computes the same columns over a features frame. Keep every feature something a dataframe
can hold in one column per row.

It also holds the *settings* schema: the thresholds and lists a pack sets (which categories count as
sensitive, the default openness, frequency caps...). Values live in the pack, never in code; this
module only knows their names, types and meaning.

For the Python evaluator only, :class:`Features` also carries *evidence*: for a boolean feature that
is true, the ids of the facts that made it true and the keys (categories, purposes) involved, so that
a reason can name them.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum, StrEnum
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from tactful import vocab
from tactful.model import Scenario, ScenarioConsent, ScenarioFact, ScenarioRecentTouch
from tactful.vocab import (
    CHANNEL_CONTACT_KIND,
    Channel,
    ConsentSource,
    ConsentStatus,
    Depth,
    FactKind,
    Granularity,
    Openness,
    Origin,
    SharedWith,
    TouchKind,
    Trigger,
)

# --------------------------------------------------------------------------- feature types


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

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(m.value for m in self.enum) if self.enum is not None else ()

    @property
    def type_name(self) -> str:
        base: str = self.type.value
        return f"{base} {self.enum.__name__}" if self.enum is not None else base


def _f(name: str, type_: FType, doc: str, enum: type[StrEnum] | None = None,
       evidence: bool = False) -> FeatureSpec:
    return FeatureSpec(name, type_, doc, enum, evidence)


B, N, R, C, T = FType.BOOL, FType.INT, FType.ORDERED, FType.CATEGORY, FType.TEXT

#: Every feature a rule may name, in documentation order.
FEATURE_LIST: tuple[FeatureSpec, ...] = (
    # the customer
    _f("openness", R, "The customer's openness (closed < reserved < balanced < open); absent in the "
       "scenario = the setting default_openness.", Openness),
    _f("openness_declared", B, "The scenario states the customer's openness (not the pack default)."),
    _f("customer_deceased", B, "The customer is recorded as deceased."),
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
    _f("named", B, "The touch greets the customer by name."),
    _f("granularity", C, "For a share: individual or aggregate; a share that does not say is "
       "individual (fail closed). Other touches: individual.", Granularity),
    _f("group_size", N, "For an aggregate share: the smallest group in the export (0 when absent)."),
    _f("touch_is_marketing", B, "Marketing by substance: the purpose is under one of the setting "
       "marketing_purposes, or the kind is one of marketing_kinds, or the touch goes out on one of "
       "outbound_channels and promotes (its kind is one of promotional_kinds and it shows something "
       "(depth above none) or states a purpose outside transactional_purposes) - whatever purpose it "
       "is filed under."),
    _f("touch_personalizes", B, "The touch uses customer data to personalize or market: it is "
       "marketing, or its purpose is under one of personalization_purposes, or its kind is one of "
       "personalization_kinds."),
    _f("answers_request", B, "The touch answers the customer's own request (trigger customer_request) "
       "on an outbound channel (setting outbound_channels) - a callback or a quote she asked for - and, "
       "when the scenario states touch.requested_channel, on the channel she asked for. It needs no "
       "marketing opt-in and counts toward no cap, but keeps every other rule (a support disclosure "
       "is still not marketing material)."),
    _f("generic_in_session", B, "The touch is shown inside the customer's session (setting "
       "in_session_channels) and uses no personal data: no fact used or shown, not named, depth at "
       "most item (a generic banner, a contextual offer for the page being viewed)."),
    _f("safe_aggregate", B, "The touch is an aggregate partner share whose smallest group meets "
       "min_group_size: aggregate information is not personal information (CCPA 1798.140(v)(3))."),
    _f("sender_is_partner", B, "The sender is a partner (partner:<name>), not the first party."),
    _f("is_partner_share", B, "The touch hands data to another party (kind share or channel "
       "partner_export)."),
    # the recipient contact point
    _f("needs_contact_point", B, "The channel delivers to a contact point (email, sms, phone, postal)."),
    _f("contact_point_missing", B, "The channel needs a contact point and the touch names none, names "
       "an unknown one, or one of the wrong kind (an email to a postal address)."),
    _f("contact_point_bounced", B, "The recipient contact point bounces."),
    _f("contact_point_verified_after_now", B, "The recipient contact point's verified_at lies after "
       "`now`: a verification that has not happened yet does not refresh a contact point."),
    _f("contact_point_age_days", N, "Days since the recipient contact point was last verified; -1 when "
       "it was never verified or there is none."),
    _f("seen_by", R, "Who else can see what this touch delivers: the contact point's shared_with "
       "(absent = household), raised to the channel's floor from the setting channel_visibility "
       "(a postcard is seen by others whatever the address).", SharedWith),
    # consent
    _f("consent_granted", B, "A granted consent covers the touch's purpose on this channel and no "
       "refusal applies (see consent_refused). A grant dated after `now` does not count."),
    _f("consent_refused", B, "A denied or withdrawn consent, or any record from a Global Privacy "
       "Control signal (source gpc), overlaps the touch's purpose on this channel (or on a channel with "
       "the same channel purpose: a refusal by letter covers postcards); a GPC record also refuses "
       "every use of the setting gpc_refuses. For a safe_aggregate share, GPC records and refusals "
       "of share_consent_purposes or gpc_refuses do not apply (they are about individual-level "
       "data). Refusals count whatever their date (a refusal dated after `now` still refuses).",
       evidence=True),
    _f("purpose_off_channel", B, "The touch's purpose is (or sits under) the channel purpose of "
       "another channel (setting channel_purposes): an email-marketing purpose on an SMS, an SMS "
       "purpose on a call. Such a touch would be judged against the wrong opt-in."),
    _f("share_consent_granted", B, "A granted consent (not refused, and no GPC record refuses it) for "
       "one of the setting share_consent_purposes: the customer agreed that individual data goes to "
       "third parties."),
    # what the touch uses and shows
    _f("uses_facts", B, "The touch uses or shows at least one fact.", evidence=True),
    _f("shows_sensitive", B, "A shown fact's category or implied category is sensitive (setting "
       "sensitive_categories; an inference's category also inferred_sensitive_categories), or the "
       "touch's shows_implies names a sensitive category. Not counted: what the customer disclosed "
       "in the very conversation an advisor prompt belongs to (channel advisor, trigger "
       "customer_request, a first-party conversation fact that is not an inference, with the same "
       "touch.conversation / fact.conversation id or, without ids, one said within "
       "conversation_window_minutes before `now`): the advisor already heard it.", evidence=True),
    _f("uses_sensitive", B, "A fact the touch uses or shows has a sensitive category or implied "
       "category.", evidence=True),
    _f("sender_sensitive", B, "Receiving anything from this sender reveals a sensitive category "
       "(touch.sender_implies).", evidence=True),
    _f("uses_inferred_sensitive", B, "A used or shown fact that is an inference (origin inferred or "
       "kind inference) has a sensitive category or implied category (an inferred category of "
       "inferred_sensitive_categories counts too: a \"heavy drinker\" segment), or, when the touch "
       "personalizes, any used or shown fact implies a sensitive category (a pregnancy test bought "
       "implies reproductive health), that "
       "the customer has not declared (docs/default-pack.md, declarations), no profiling opt-in "
       "covers, and the "
       "sender does not itself reveal (touch.sender_implies: a specialist shop).", evidence=True),
    _f("uses_unlicensed_sensitive", B, "A used or shown fact that is not an inference has a sensitive "
       "category of its own (health pages browsed, arrears seen, a precise location, a partner's "
       "\"declared\" record) and the customer has not declared it to us (see uses_inferred_sensitive), no "
       "profiling opt-in covers it and the sender does not itself reveal it; only counted when the "
       "touch personalizes (touch_personalizes).", evidence=True),
    _f("uses_forbidden_identifier", B, "A fact of one of never_use_categories (government "
       "identifiers, credentials) is shown by the touch, or used by a touch that personalizes.",
       evidence=True),
    _f("shows_undeclared_sensitive", B, "The items the touch shows reveal (touch.shows_implies) a "
       "sensitive category the customer has not declared and no profiling opt-in covers.",
       evidence=True),
    _f("profiling_opt_in", B, "A granted consent (dated no later than `now`) for one of the setting "
       "profiling_opt_in_purposes, and no refusal that overlaps ANY of them: a refusal of profiling "
       "wins over every broader or older grant (personalize, personalize.content)."),
    _f("uses_conversation_fact", B, "A used or shown fact was disclosed in a conversation: its source "
       "is one of conversation_sources or its context matches one of conversation_contexts (as a "
       "whole word of the normalised context: customer_support matches support).", evidence=True),
    _f("uses_realtime_signal", B, "A used or shown fact is a live observation (origin observed, and "
       "kind event or a category of live_signal_categories such as a location) dated within "
       "realtime_window_minutes before `now`: a geofence, a beacon, an app event, a page view, a "
       "call.", evidence=True),
    _f("uses_payment_fact", B, "A used or shown fact was collected in a payment context (setting "
       "payment_contexts).", evidence=True),
    _f("uses_partner_fact", B, "A used or shown fact came from a partner (source partner:<name>), "
       "whatever origin it is marked with (a broker's \"declared\" is third-party data).",
       evidence=True),
    _f("uses_birthday", B, "A used or shown fact is a birthday (setting birthday_categories).",
       evidence=True),
    _f("birthday_expected", B, "Every birthday fact the touch uses was declared in a context where the "
       "customer was told it would be used (setting birthday_expectation_contexts)."),
    _f("shows_preference", B, "The touch shows (announces) a preference fact.", evidence=True),
    _f("uses_preference", B, "The touch uses a preference fact.", evidence=True),
    _f("unknown_vocabulary", B, "Some data category or data use in the scenario (a fact's category or "
       "implies, the touch's purpose, sender_implies or shows_implies, a consent's purpose, a recent "
       "touch's purpose) is not in the vocabulary.", evidence=True),
    _f("missing_fact_reference", B, "The touch uses or shows a fact id that is not among the facts.",
       evidence=True),
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
NO_CAP = 1_000_000

# --------------------------------------------------------------------------- settings


class SKind(Enum):
    """The type of a setting value."""

    OPENNESS = "openness"
    DEPTH = "depth"
    SHARED_WITH = "shared_with"
    INT = "non-negative integer"
    CATEGORIES = "list of data categories"
    USES = "list of data uses"
    CHANNELS = "list of channels"
    TOUCH_KINDS = "list of touch kinds"
    STRINGS = "list of strings"
    OPENNESS_DEPTHS = "mapping openness -> depth"
    CHANNEL_VISIBILITY = "mapping channel -> shared_with"
    CHANNEL_USES = "mapping channel -> data use"
    CATEGORY_MAP = "mapping data category -> list of data categories"
    FREQUENCY_CAPS = "list of {channels, max, days}"


@dataclass(frozen=True, slots=True)
class SettingSpec:
    name: str
    kind: SKind
    doc: str


@dataclass(frozen=True, slots=True)
class FrequencyCap:
    """At most ``max`` marketing touches on any of ``channels`` within ``days`` days."""

    channels: frozenset[Channel]
    max: int
    days: int


SETTING_LIST: tuple[SettingSpec, ...] = (
    SettingSpec("default_openness", SKind.OPENNESS,
                "The openness of a customer whose scenario does not state one."),
    SettingSpec("openness_max_depth", SKind.OPENNESS_DEPTHS,
                "The highest depth each openness allows (feature openness_depth_cap); every openness "
                "must be listed."),
    SettingSpec("sensitive_categories", SKind.CATEGORIES,
                "Data categories that are sensitive; a key covers every key below it."),
    SettingSpec("inferred_sensitive_categories", SKind.CATEGORIES,
                "Data categories that are sensitive only when inferred (an inferred \"heavy drinker\" or "
                "\"gambler\" segment is a health-risk inference) while an observed purchase of beer "
                "stays ordinary. An empty list turns this off."),
    SettingSpec("never_use_categories", SKind.CATEGORIES,
                "Data categories never used to personalize or market, nor shown on any channel "
                "(government identifiers, account credentials)."),
    SettingSpec("declared_covers", SKind.CATEGORY_MAP,
                "When the customer declared a fact of the key's category, these further sensitive "
                "categories count as declared too (a declared pregnancy covers a baby in the household)."),
    SettingSpec("profiling_opt_in_purposes", SKind.USES,
                "Data uses whose granted consent is the customer's opt-in to personalization from "
                "inferred sensitive attributes (feature profiling_opt_in)."),
    SettingSpec("marketing_purposes", SKind.USES,
                "Data uses that are marketing (feature touch_is_marketing); a key covers its sub-uses."),
    SettingSpec("marketing_kinds", SKind.TOUCH_KINDS,
                "Touch kinds that are marketing whatever purpose they state."),
    SettingSpec("promotional_kinds", SKind.TOUCH_KINDS,
                "Touch kinds that promote when they go out on an outbound channel (a recommendation, an "
                "abandoned-basket reminder, a greeting): marketing whatever purpose they state, unless "
                "they show nothing (depth none) and state a transactional purpose."),
    SettingSpec("transactional_purposes", SKind.USES,
                "Data uses of transactional messages (an order, an account, a service asked for)."),
    SettingSpec("outbound_channels", SKind.CHANNELS,
                "Channels that deliver to the customer outside a session (email, sms, post, push, "
                "phone)."),
    SettingSpec("personalization_purposes", SKind.USES,
                "Data uses that personalize (feature touch_personalizes)."),
    SettingSpec("personalization_kinds", SKind.TOUCH_KINDS,
                "Touch kinds that personalize whatever purpose they state."),
    SettingSpec("channel_purposes", SKind.CHANNEL_USES,
                "The channel-specific data use of a channel (email -> marketing.communications.email). "
                "A touch whose purpose covers its channel's use is judged on that narrower use, so an "
                "SMS refusal does not block an email and an email grant does not allow an SMS."),
    SettingSpec("share_consent_purposes", SKind.USES,
                "Data uses whose granted consent allows individual data to go to a third party."),
    SettingSpec("gpc_refuses", SKind.USES,
                "Data uses that any Global Privacy Control record refuses, whatever purpose it was "
                "recorded under (GPC is a \"do not sell or share\" signal): it refuses the touches whose "
                "purpose overlaps one of them and the share consent."),
    SettingSpec("channel_visibility", SKind.CHANNEL_VISIBILITY,
                "The least visibility of a channel whatever the address (postcard: others; a push on a "
                "lock screen: household). Channels not listed: the contact point decides, and channels "
                "without one count as private."),
    SettingSpec("discreet_channels", SKind.CHANNELS,
                "Channels whose message can be made discreet (a sealed envelope with a neutral sender)."),
    SettingSpec("in_session_channels", SKind.CHANNELS,
                "Channels that answer the customer inside the session they are browsing (web, app)."),
    SettingSpec("transactional_kinds", SKind.TOUCH_KINDS,
                "Touch kinds a closed customer still gets (service messages, low-intrusion surveys)."),
    SettingSpec("conversation_followup_kinds", SKind.TOUCH_KINDS,
                "Touch kinds that may refer to what the customer said in a support conversation "
                "(the service follow-up of that conversation)."),
    SettingSpec("conversation_contexts", SKind.STRINGS,
                "Collection contexts that are conversations (support calls and chats)."),
    SettingSpec("conversation_sources", SKind.STRINGS,
                "Fact sources that are conversations (chat, voice)."),
    SettingSpec("conversation_window_minutes", SKind.INT,
                "Without conversation ids, a fact disclosed this many minutes before `now` counts as "
                "said in the conversation an advisor prompt belongs to."),
    SettingSpec("realtime_window_minutes", SKind.INT,
                "A live observation this recent is a real-time signal (feature uses_realtime_signal)."),
    SettingSpec("live_signal_categories", SKind.CATEGORIES,
                "Data categories whose observed facts are live signals whatever their kind (where the "
                "customer is right now)."),
    SettingSpec("payment_contexts", SKind.STRINGS,
                "Collection contexts that are payment processing."),
    SettingSpec("birthday_categories", SKind.CATEGORIES, "Data categories that are a birthday."),
    SettingSpec("birthday_expectation_contexts", SKind.STRINGS,
                "Collection contexts in which the customer was told the birthday would be used "
                "(a birthday-club signup)."),
    SettingSpec("frequency_caps", SKind.FREQUENCY_CAPS,
                "Per channel group: at most max marketing touches within days days."),
    SettingSpec("survey_window_days", SKind.INT, "The window in which surveys are counted."),
    SettingSpec("survey_max", SKind.INT, "The most surveys a customer gets within survey_window_days."),
    SettingSpec("stale_contact_days", SKind.INT,
                "A contact point last verified more than this many days ago is stale."),
    SettingSpec("min_group_size", SKind.INT,
                "The smallest group an aggregate partner export may contain."),
    SettingSpec("web_greeting_min_openness", SKind.OPENNESS,
                "The least openness at which a web or app greeting may use the customer's name."),
)

SETTINGS: Mapping[str, SettingSpec] = MappingProxyType({s.name: s for s in SETTING_LIST})


@dataclass(frozen=True, slots=True)
class Settings:
    """A pack's settings, typed. Every field must be given by the pack or the pack it extends."""

    default_openness: Openness
    openness_max_depth: Mapping[Openness, Depth]
    sensitive_categories: tuple[str, ...]
    inferred_sensitive_categories: tuple[str, ...]
    never_use_categories: tuple[str, ...]
    declared_covers: Mapping[str, tuple[str, ...]]
    profiling_opt_in_purposes: tuple[str, ...]
    marketing_purposes: tuple[str, ...]
    marketing_kinds: frozenset[TouchKind]
    promotional_kinds: frozenset[TouchKind]
    transactional_purposes: tuple[str, ...]
    outbound_channels: frozenset[Channel]
    personalization_purposes: tuple[str, ...]
    personalization_kinds: frozenset[TouchKind]
    channel_purposes: Mapping[Channel, str]
    share_consent_purposes: tuple[str, ...]
    gpc_refuses: tuple[str, ...]
    channel_visibility: Mapping[Channel, SharedWith]
    discreet_channels: frozenset[Channel]
    in_session_channels: frozenset[Channel]
    transactional_kinds: frozenset[TouchKind]
    conversation_followup_kinds: frozenset[TouchKind]
    conversation_contexts: frozenset[str]
    conversation_sources: frozenset[str]
    conversation_window_minutes: int
    realtime_window_minutes: int
    live_signal_categories: tuple[str, ...]
    payment_contexts: frozenset[str]
    birthday_categories: tuple[str, ...]
    birthday_expectation_contexts: frozenset[str]
    frequency_caps: tuple[FrequencyCap, ...]
    survey_window_days: int
    survey_max: int
    stale_contact_days: int
    min_group_size: int
    web_greeting_min_openness: Openness
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def value(self, name: str) -> Any:
        """A setting by name (what a rule's ``{setting: name}`` reads)."""
        if name not in SETTINGS:
            raise KeyError(name)
        return getattr(self, name)

    def _covered(self, setting: str, key: str) -> bool:
        """Cached per (setting, key): is ``key`` (or an ancestor of it) listed in that key-list setting?"""
        memo: dict[tuple[str, str], bool] = self._cache.setdefault("covered", {})
        hit = memo.get((setting, key))
        if hit is None:
            hit = any(vocab.covers(s, key) for s in self.value(setting))
            memo[(setting, key)] = hit
        return hit

    def is_sensitive(self, category: str) -> bool:
        """Cached per key: is this category (or an ancestor of it) in sensitive_categories?"""
        return self._covered("sensitive_categories", category)

    def is_inferred_sensitive(self, category: str) -> bool:
        """Sensitive when inferred: sensitive_categories or inferred_sensitive_categories."""
        return self.is_sensitive(category) or self._covered("inferred_sensitive_categories", category)

    def is_live_category(self, category: str) -> bool:
        return self._covered("live_signal_categories", category)

    def is_never_use(self, category: str) -> bool:
        return self._covered("never_use_categories", category)

    def context_in(self, setting: str, context: str) -> bool:
        """Does a fact's context match one of the contexts of a (restricting) setting list?

        Both sides are normalised (:func:`tactful.vocab.normalise_context`) and a listed context
        matches when it is the whole context or a whole word of it (``customer_support`` matches
        ``support``; ``support_chat`` matches ``support`` and ``chat``). Used only for lists that make
        a decision stricter (conversations, payments): a loose match can only block more.
        """
        memo: dict[tuple[str, str], bool] = self._cache.setdefault("contexts", {})
        key = (setting, context)
        hit = memo.get(key)
        if hit is None:
            words = vocab.normalise_context(context)
            padded = f"_{words}_"
            hit = any(f"_{vocab.normalise_context(c)}_" in padded for c in self.value(setting))
            memo[key] = hit
        return hit

    def context_exactly(self, setting: str, context: str) -> bool:
        """Exact match after normalisation (for lists that allow more, such as birthday contexts)."""
        memo: dict[tuple[str, str], bool] = self._cache.setdefault("contexts_exact", {})
        key = (setting, context)
        hit = memo.get(key)
        if hit is None:
            words = vocab.normalise_context(context)
            hit = any(vocab.normalise_context(c) == words for c in self.value(setting))
            memo[key] = hit
        return hit

    def is_birthday(self, category: str) -> bool:
        return self._covered("birthday_categories", category)

    def covered_use(self, purposes: tuple[str, ...], use: str) -> bool:
        memo: dict[tuple[tuple[str, ...], str], bool] = self._cache.setdefault("uses", {})
        key = (purposes, use)
        hit = memo.get(key)
        if hit is None:
            hit = any(vocab.covers(p, use) for p in purposes)
            memo[key] = hit
        return hit


# --------------------------------------------------------------------------- derivation


@dataclass(frozen=True, slots=True)
class Features:
    """The features of one (customer, touch): ``values`` (flat scalars) and, for the Python evaluator,
    ``facts`` (feature -> ids of the facts that made it true) and ``keys`` (feature -> the category,
    purpose or consent descriptions involved), plus ``labels`` (fact id -> label or id)."""

    values: Mapping[str, Any]
    facts: Mapping[str, tuple[str, ...]]
    keys: Mapping[str, tuple[str, ...]]
    labels: Mapping[str, str]


@lru_cache(maxsize=4096)
def _known_category(key: str) -> bool:
    return key in vocab.data_categories()


@lru_cache(maxsize=4096)
def _known_use(key: str) -> bool:
    return key in vocab.data_uses()


def _overlaps(a: str, b: str) -> bool:
    return vocab.covers(a, b) or vocab.covers(b, a)


def _is_refusal(c: ScenarioConsent) -> bool:
    return c.status is not ConsentStatus.GRANTED or c.source is ConsentSource.GPC


def _refuses(c: ScenarioConsent, use: str, gpc_refuses: tuple[str, ...]) -> bool:
    """A refusal record applies to ``use``: its purpose overlaps it, or it is a GPC record and one of
    ``gpc_refuses`` overlaps it (a GPC signal means "do not sell or share", whatever it was filed as)."""
    if _overlaps(c.purpose, use):
        return True
    return c.source is ConsentSource.GPC and any(_overlaps(g, use) for g in gpc_refuses)


def _future(c: ScenarioConsent, now: datetime) -> bool:
    return c.at is not None and c.at > now


def _aggregate_exempt(c: ScenarioConsent, settings: Settings) -> bool:
    """A refusal that is about individual-level data (a GPC signal, a refusal of sharing) and so does
    not apply to an aggregate meeting the minimum group size."""
    return c.source is ConsentSource.GPC or any(
        _overlaps(c.purpose, p) for p in (*settings.share_consent_purposes, *settings.gpc_refuses))


def _consent_state(consents: tuple[ScenarioConsent, ...], use: str, channel: Channel,
                   settings: Settings, now: datetime, aggregate: bool) -> tuple[bool, list[str]]:
    """(granted, refusals) for a use on a channel.

    A grant applies when its purpose covers the use, its channel is absent or the touch's, and it is
    not dated after ``now`` (a consent given later does not count).
    A refusal (denied, withdrawn, or any GPC record) applies when it refuses the use (see
    :func:`_refuses`) and its channel is absent, the touch's, or one with the same channel purpose
    (a refusal of letters covers postcards), whatever its date (fail closed). Any applicable refusal
    beats every grant: simple, and monotone (withdrawing a consent can only make a decision stricter).
    For an ``aggregate`` that meets the minimum group size, refusals about individual-level data
    (:func:`_aggregate_exempt`) do not apply.
    """
    granted = False
    refusals: list[str] = []
    group = settings.channel_purposes.get(channel)
    for c in consents:
        if _is_refusal(c):
            if c.channel is not None and c.channel is not channel and (
                    group is None or settings.channel_purposes.get(c.channel) != group):
                continue
            if aggregate and _aggregate_exempt(c, settings):
                continue
            if _refuses(c, use, settings.gpc_refuses):
                where = f" on {c.channel.value}" if c.channel is not None else ""
                refusals.append(f"{c.purpose}{where} ({c.status.value}, {c.source.value})")
        elif ((c.channel is None or c.channel is channel) and vocab.covers(c.purpose, use)
              and not _future(c, now)):
            granted = True
    return granted and not refusals, refusals


def _any_granted(consents: tuple[ScenarioConsent, ...], purposes: tuple[str, ...],
                 gpc_refuses: tuple[str, ...], now: datetime) -> bool:
    """A granted consent (not dated after ``now``) for any of ``purposes`` (or a sub-use of one) and
    no refusal of ANY of them: a refusal of one (profiling) wins over a broader grant of another."""
    ok = any(not _is_refusal(c) and not _future(c, now) and vocab.covers(c.purpose, p)
             for p in purposes for c in consents)
    refused = any(_is_refusal(c) and _refuses(c, p, gpc_refuses) for p in purposes for c in consents)
    return ok and not refused


def _off_channel(settings: Settings, purpose: str, channel: Channel) -> bool:
    """The purpose sits under the channel purpose of a channel with another channel purpose."""
    own = settings.channel_purposes.get(channel)
    return any(cp != own and vocab.covers(cp, purpose) for cp in settings.channel_purposes.values())


def _days(now: datetime, then: datetime) -> float:
    return (now - then).total_seconds() / 86400.0


def _label(text: str | None) -> str:
    return " ".join((text or "").casefold().split())


def _is_inference(f: ScenarioFact) -> bool:
    return f.origin is Origin.INFERRED or f.kind is FactKind.INFERENCE


def _told_by_customer(f: ScenarioFact) -> bool:
    """Declared means told to us by the customer on a first-party channel: a partner's or broker's
    record marked declared is third-party data (seed 000)."""
    return f.origin is Origin.DECLARED and f.kind is not FactKind.INFERENCE and not f.source.startswith(
        "partner:")


def derive(scenario: Scenario, settings: Settings) -> Features:
    """Turn a scenario into the feature vocabulary. Pure; fails loudly (the evaluator turns any
    exception into a block)."""
    s = settings
    touch = scenario.touch
    now = scenario.now or datetime.now(UTC)
    v: dict[str, Any] = {}
    ev: dict[str, tuple[str, ...]] = {}
    keys: dict[str, tuple[str, ...]] = {}

    # ---- customer
    openness = scenario.customer.openness or s.default_openness
    v["openness"] = openness
    v["openness_declared"] = scenario.customer.openness is not None
    v["customer_deceased"] = scenario.customer.deceased
    v["openness_depth_cap"] = s.openness_max_depth[openness]

    # ---- touch
    kind = touch.kind
    channel = touch.channel
    v["touch_kind"] = kind
    v["channel"] = channel
    v["purpose"] = touch.purpose
    v["sender"] = touch.sender
    v["trigger"] = touch.trigger
    v["depth"] = touch.depth
    v["named"] = touch.named
    granularity = touch.granularity or Granularity.INDIVIDUAL
    v["granularity"] = granularity
    v["group_size"] = touch.group_size or 0
    outbound = channel in s.outbound_channels
    answers = (touch.trigger is Trigger.CUSTOMER_REQUEST and outbound
               and (touch.requested_channel is None or touch.requested_channel is channel))
    v["answers_request"] = answers
    # marketing by substance (CAN-SPAM primary purpose, PECR): an outbound touch that promotes is
    # marketing whatever purpose it is filed under; a service reminder that shows nothing is not
    promotes = outbound and kind in s.promotional_kinds and (
        touch.depth is not Depth.NONE or not s.covered_use(s.transactional_purposes, touch.purpose))
    marketing = (kind in s.marketing_kinds or promotes
                 or s.covered_use(s.marketing_purposes, touch.purpose))
    v["touch_is_marketing"] = marketing
    personalizes = (marketing or kind in s.personalization_kinds
                    or s.covered_use(s.personalization_purposes, touch.purpose))
    v["touch_personalizes"] = personalizes
    v["sender_is_partner"] = touch.sender != "first_party"
    partner_share = kind is TouchKind.SHARE or channel is Channel.PARTNER_EXPORT
    v["is_partner_share"] = partner_share
    safe_aggregate = (partner_share and touch.granularity is Granularity.AGGREGATE
                      and (touch.group_size or 0) >= s.min_group_size)
    v["safe_aggregate"] = safe_aggregate
    v["generic_in_session"] = (channel in s.in_session_channels and not touch.uses and not touch.shows
                               and not touch.named and touch.depth.rank <= Depth.ITEM.rank)

    # ---- contact point
    needed = CHANNEL_CONTACT_KIND[channel]
    v["needs_contact_point"] = needed is not None
    cp = None
    if touch.to is not None:
        cp = next((c for c in scenario.contact_points if c.id == touch.to), None)
    missing = needed is not None and (cp is None or cp.kind is not needed)
    v["contact_point_missing"] = missing
    usable = cp if needed is not None and not missing else None
    v["contact_point_bounced"] = bool(usable is not None and usable.bounced)
    age = -1
    future_check = False
    if usable is not None and usable.verified_at is not None:
        age = max(0, int(_days(now, usable.verified_at)))
        future_check = usable.verified_at > now
    v["contact_point_age_days"] = age
    v["contact_point_verified_after_now"] = future_check
    seen = SharedWith.PRIVATE
    if needed is not None:
        seen = (usable.shared_with if usable is not None else None) or SharedWith.HOUSEHOLD
    floor = s.channel_visibility.get(channel)
    if floor is not None and floor.rank > seen.rank:
        seen = floor
    v["seen_by"] = seen

    # ---- consent
    use = s.channel_purposes.get(channel)
    effective = use if use is not None and vocab.covers(touch.purpose, use) else touch.purpose
    if marketing and not s.covered_use(s.marketing_purposes, touch.purpose):
        # marketing by substance filed under another purpose is judged on the channel's marketing
        # use (its opt-in and opt-out), or on marketing itself when the channel has none
        effective = use if use is not None else s.marketing_purposes[0]
    granted, refusals = _consent_state(scenario.consents, effective, channel, s, now, safe_aggregate)
    v["consent_granted"] = granted
    v["consent_refused"] = bool(refusals)
    keys["consent_refused"] = tuple(refusals)
    off = _off_channel(s, touch.purpose, channel)
    v["purpose_off_channel"] = off
    keys["purpose_off_channel"] = (touch.purpose,) if off else ()
    v["share_consent_granted"] = _any_granted(scenario.consents, s.share_consent_purposes,
                                              s.gpc_refuses, now)
    profiling = _any_granted(scenario.consents, s.profiling_opt_in_purposes, s.gpc_refuses, now)
    v["profiling_opt_in"] = profiling

    # ---- vocabulary (fail closed on unknown keys)
    # one pass over the facts collects the index, the distinct keys and the customer's declarations;
    # per-fact work again only when some key is unknown
    facts = scenario.facts
    by_id: dict[str, ScenarioFact] = {}
    distinct: set[str] = set()
    declared: dict[str, set[str]] = {}  # category -> labels the customer declared under it
    for f in facts:
        by_id[f.id] = f
        distinct.add(f.category)
        if f.implies:
            distinct.update(f.implies)
        if _told_by_customer(f):
            declared.setdefault(f.category, set()).add(_label(f.label))
    unknown: list[str] = sorted(k for k in distinct if not _known_category(k))
    unknown_facts: list[str] = []
    if unknown:
        bad_keys = set(unknown)
        unknown_facts = [f.id for f in facts if f.category in bad_keys or bad_keys.intersection(f.implies)]
    for k in (*touch.sender_implies, *touch.shows_implies):
        if not _known_category(k):
            unknown.append(k)
    for u in dict.fromkeys((touch.purpose, *(c.purpose for c in scenario.consents),
                            *(t.purpose for t in scenario.recent_touches))):
        if not _known_use(u):
            unknown.append(u)
    v["unknown_vocabulary"] = bool(unknown)
    ev["unknown_vocabulary"] = tuple(unknown_facts)
    keys["unknown_vocabulary"] = tuple(dict.fromkeys(unknown))

    # ---- facts the touch uses and shows
    missing_refs = [i for i in (*touch.uses, *touch.shows) if i not in by_id]
    v["missing_fact_reference"] = bool(missing_refs)
    ev["missing_fact_reference"] = ()
    keys["missing_fact_reference"] = tuple(dict.fromkeys(missing_refs))

    used = [by_id[i] for i in dict.fromkeys(touch.uses) if i in by_id]
    shown = [by_id[i] for i in dict.fromkeys(touch.shows) if i in by_id]
    both = list({f.id: f for f in (*used, *shown)}.values())
    labels = {f.id: (f.label or f.id) for f in both}
    for fid in unknown_facts:
        labels[fid] = by_id[fid].label or fid

    covered_extra: set[str] = set()
    for d in declared:
        for k, extra in s.declared_covers.items():
            if vocab.covers(k, d):
                covered_extra.update(extra)

    def is_declared(cat: str, label: str | None = None) -> bool:
        # A declaration covers what it names (issue 7 §2): the same key when that key has no sub-keys,
        # or, under a coarse key (user.health_and_medical), a fact with the same label; a declared
        # allergy does not declare an inferred depression filed under the same key.
        if profiling:
            return True
        if any(cat == x or vocab.covers(x, cat) for x in covered_extra):
            return True
        wanted = _label(label) if label is not None else None
        for d, dlabels in declared.items():
            if d == cat and not vocab.has_subkeys(d):
                return True
            if wanted and wanted in dlabels and (vocab.covers(d, cat) or vocab.covers(cat, d)):
                return True
        return False

    def sender_reveals(cat: str) -> bool:
        return any(vocab.covers(k, cat) for k in touch.sender_implies)

    def sens(f: ScenarioFact) -> list[str]:
        # an inference's own and implied categories are inferred: a segment implying drinking is a
        # health-risk inference; a beer purchase implying it is not
        check = s.is_inferred_sensitive if _is_inference(f) else s.is_sensitive
        out = [f.category] if check(f.category) else []
        out.extend(k for k in f.implies if check(k))
        return out

    # what the customer said in the very conversation an advisor prompt belongs to is not revealed
    # to anyone new (seed 002: the advisor keeps that conversation's norm)
    advisor_in_conversation = channel is Channel.ADVISOR and touch.trigger is Trigger.CUSTOMER_REQUEST
    window = timedelta(minutes=s.conversation_window_minutes)

    def said_in_this_conversation(f: ScenarioFact) -> bool:
        if not (advisor_in_conversation and not _is_inference(f) and not f.source.startswith("partner:")
                and is_conversation(f)):
            return False
        if touch.conversation is not None or f.conversation is not None:
            return touch.conversation == f.conversation
        return f.at is not None and now - window <= f.at <= now

    def is_conversation(f: ScenarioFact) -> bool:
        return f.source in s.conversation_sources or s.context_in("conversation_contexts", f.context)

    shows_sens: list[str] = []
    shows_keys: list[str] = []
    for f in shown:
        found = sens(f)
        if found and not said_in_this_conversation(f):
            shows_sens.append(f.id)
            shows_keys.extend(found)
    shows_keys.extend(k for k in touch.shows_implies if s.is_sensitive(k))
    v["shows_sensitive"] = bool(shows_sens) or any(s.is_sensitive(k) for k in touch.shows_implies)
    ev["shows_sensitive"] = tuple(shows_sens)
    keys["shows_sensitive"] = tuple(dict.fromkeys(shows_keys))

    uses_sens: list[str] = []
    uses_keys: list[str] = []
    inferred: list[str] = []
    inferred_keys: list[str] = []
    unlicensed: list[str] = []
    unlicensed_keys: list[str] = []
    for f in both:
        found = sens(f)
        if not found:
            continue
        uses_sens.append(f.id)
        uses_keys.extend(found)
        # An inference's own category is inferred; so is every category a fact merely implies
        # (a pregnancy test bought implies reproductive health: seed 002's model did no more).
        # A sender that itself reveals the category (the adult shop) tells the customer nothing new.
        if _is_inference(f):
            guessed = [(k, f.label if k == f.category else None) for k in found]
        else:
            # what a purchase merely implies is an inference only when it drives personalization: a
            # service message about the customer's own order is not targeting (shown items are
            # still checked by shows_sensitive)
            # What the customer told us herself implies nothing we guessed: "I missed the delivery, I was
            # in hospital" reveals her health because she said it (seed 002's inference was a model's).
            guessed = ([(k, None) for k in f.implies if s.is_sensitive(k)]
                       if personalizes and not _told_by_customer(f) else [])
            # a sensitive category of the fact's own, however learned (observed, a partner's
            # "declared"): only the customer's own declaration or an explicit opt-in licenses it
            if (f.category in found and not _told_by_customer(f)
                    and not is_declared(f.category, f.label) and not sender_reveals(f.category)):
                unlicensed.append(f.id)
                unlicensed_keys.append(f.category)
        undeclared = [k for k, lab in guessed if not is_declared(k, lab) and not sender_reveals(k)]
        if undeclared:
            inferred.append(f.id)
            inferred_keys.extend(undeclared)
    v["uses_sensitive"] = bool(uses_sens)
    ev["uses_sensitive"] = tuple(uses_sens)
    keys["uses_sensitive"] = tuple(dict.fromkeys(uses_keys))
    v["uses_inferred_sensitive"] = bool(inferred)
    ev["uses_inferred_sensitive"] = tuple(inferred)
    keys["uses_inferred_sensitive"] = tuple(dict.fromkeys(inferred_keys))
    if not personalizes:
        unlicensed, unlicensed_keys = [], []
    v["uses_unlicensed_sensitive"] = bool(unlicensed)
    ev["uses_unlicensed_sensitive"] = tuple(unlicensed)
    keys["uses_unlicensed_sensitive"] = tuple(dict.fromkeys(unlicensed_keys))

    forbidden = [f for f in (*shown, *(used if personalizes else ()))
                 if s.is_never_use(f.category) or any(s.is_never_use(k) for k in f.implies)]
    forbidden = list({f.id: f for f in forbidden}.values())
    v["uses_forbidden_identifier"] = bool(forbidden)
    ev["uses_forbidden_identifier"] = tuple(f.id for f in forbidden)
    keys["uses_forbidden_identifier"] = tuple(dict.fromkeys(
        k for f in forbidden for k in (f.category, *f.implies) if s.is_never_use(k)))

    reveal_keys = [k for k in touch.shows_implies if s.is_sensitive(k) and not is_declared(k)]
    v["shows_undeclared_sensitive"] = bool(reveal_keys)
    ev["shows_undeclared_sensitive"] = ()
    keys["shows_undeclared_sensitive"] = tuple(dict.fromkeys(reveal_keys))

    sender_keys = [k for k in touch.sender_implies if s.is_sensitive(k)]
    v["sender_sensitive"] = bool(sender_keys)
    ev["sender_sensitive"] = ()
    keys["sender_sensitive"] = tuple(sender_keys)

    ev["depth"] = tuple(f.id for f in shown)
    v["uses_facts"] = bool(both)
    ev["uses_facts"] = tuple(f.id for f in both)

    conv = [f.id for f in both if is_conversation(f)]
    v["uses_conversation_fact"] = bool(conv)
    ev["uses_conversation_fact"] = tuple(conv)
    pay = [f.id for f in both if s.context_in("payment_contexts", f.context)]
    v["uses_payment_fact"] = bool(pay)
    ev["uses_payment_fact"] = tuple(pay)
    partner = [f.id for f in both if f.source.startswith("partner:")]
    v["uses_partner_fact"] = bool(partner)
    ev["uses_partner_fact"] = tuple(partner)

    live_since = now - timedelta(minutes=s.realtime_window_minutes)
    live = [f.id for f in both if f.origin is Origin.OBSERVED and f.at is not None
            and live_since <= f.at <= now
            and (f.kind is FactKind.EVENT or s.is_live_category(f.category))]
    v["uses_realtime_signal"] = bool(live)
    ev["uses_realtime_signal"] = tuple(live)

    bday = [f for f in both if s.is_birthday(f.category)]
    v["uses_birthday"] = bool(bday)
    ev["uses_birthday"] = tuple(f.id for f in bday)
    v["birthday_expected"] = bool(bday) and all(
        f.origin is Origin.DECLARED and s.context_exactly("birthday_expectation_contexts", f.context)
        for f in bday)

    shown_pref = [f.id for f in shown if f.kind is FactKind.PREFERENCE]
    v["shows_preference"] = bool(shown_pref)
    ev["shows_preference"] = tuple(shown_pref)
    used_pref = [f.id for f in used if f.kind is FactKind.PREFERENCE]
    v["uses_preference"] = bool(used_pref)
    ev["uses_preference"] = tuple(used_pref)

    # ---- history (touches dated after `now` count: a send recorded later still happened)
    cap = next((c for c in s.frequency_caps if channel in c.channels), None)
    count = 0
    if cap is not None:
        since = now - timedelta(days=cap.days)
        for t in scenario.recent_touches:
            if t.channel in cap.channels and since < t.at and _was_marketing(t, s):
                count += 1
    v["recent_marketing_on_channel"] = count
    v["channel_frequency_cap"] = cap.max if cap is not None else NO_CAP
    survey_since = now - timedelta(days=s.survey_window_days)
    v["recent_surveys"] = sum(1 for t in scenario.recent_touches
                              if t.kind is TouchKind.SURVEY and survey_since < t.at)

    return Features(values=v, facts=ev, keys=keys, labels=labels)


def _was_marketing(t: ScenarioRecentTouch, s: Settings) -> bool:
    """A recent touch counts as marketing by its kind or by a marketing purpose on a non-transactional
    kind. Its depth is not recorded, so a promotional kind that also personalizes (a recommendation,
    a greeting) counts whatever purpose it was filed under; one that may be transactional (a
    reminder) counts unless its purpose is transactional."""
    if t.kind in s.marketing_kinds:
        return True
    if t.kind in s.promotional_kinds and (
            t.kind in s.personalization_kinds or not s.covered_use(s.transactional_purposes, t.purpose)):
        return True
    return s.covered_use(s.marketing_purposes, t.purpose) and t.kind not in s.transactional_kinds


def describe_value(value: object) -> str:
    """A feature value as a reason message shows it."""
    if isinstance(value, Enum):
        return str(value.value).replace("_", " ")
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
