"""The settings schema: the thresholds and lists a pack sets (which categories count as sensitive, the
default openness, frequency caps...). Values live in the pack, never in code; this module knows their
names, types and meaning.

The key-list settings (data categories, data uses) cover every key below a listed one. Each
:class:`Settings` expands them once over the vocabulary into plain sets (:meth:`Settings.keys_under`),
so that "is this key, or a key above it, listed?" is one set membership in the Python derivation and
an ``isin`` in the batch one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import cache
from types import MappingProxyType
from typing import Any

from tactful import vocab
from tactful.vocab import Channel, Depth, Openness, SharedWith, TouchKind


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
    #: key-list setting -> (every vocabulary key it covers, the vocabulary it was expanded over: every
    #: data category or every data use), computed in ``__post_init__``
    _key_sets: dict[str, tuple[frozenset[str], frozenset[str]]] = field(
        init=False, compare=False, hash=False, repr=False)
    #: memo of the context matches (contexts are free text, so they cannot be expanded in advance)
    _cache: dict[str, Any] = field(default_factory=dict, init=False, compare=False, hash=False,
                                   repr=False)

    def __post_init__(self) -> None:
        sets: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        for spec in SETTING_LIST:
            if spec.kind in _KEY_LISTS:
                listed: tuple[str, ...] = getattr(self, spec.name)
                known = _vocabulary(spec.kind)
                covered = frozenset(k for k in known if any(vocab.covers(x, k) for x in listed))
                sets[spec.name] = (covered, known)
        object.__setattr__(self, "_key_sets", sets)

    def value(self, name: str) -> Any:
        """A setting by name (what a rule's ``{setting: name}`` reads)."""
        if name not in SETTINGS:
            raise KeyError(name)
        return getattr(self, name)

    def keys_under(self, setting: str) -> frozenset[str]:
        """Every vocabulary key that a key-list setting (a list of data categories or data uses)
        covers: the listed keys and every key below them."""
        return self._key_sets[setting][0]

    def covers(self, setting: str, key: str) -> bool:
        """Is ``key`` (or a key above it) listed in the key-list ``setting``? One set membership for a
        key of the vocabulary; a key outside it (which the unknown_vocabulary guard blocks anyway) is
        compared with the listed keys one by one."""
        covered, known = self._key_sets[setting]
        if key in covered:
            return True
        if key in known:
            return False
        return any(vocab.covers(x, key) for x in getattr(self, setting))

    def is_sensitive(self, category: str) -> bool:
        """Is this category (or an ancestor of it) in sensitive_categories?"""
        return self.covers("sensitive_categories", category)

    def is_inferred_sensitive(self, category: str) -> bool:
        """Sensitive when inferred: sensitive_categories or inferred_sensitive_categories."""
        return self.is_sensitive(category) or self.covers("inferred_sensitive_categories", category)

    def is_live_category(self, category: str) -> bool:
        return self.covers("live_signal_categories", category)

    def is_never_use(self, category: str) -> bool:
        return self.covers("never_use_categories", category)

    def is_birthday(self, category: str) -> bool:
        return self.covers("birthday_categories", category)

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


_KEY_LISTS = frozenset({SKind.CATEGORIES, SKind.USES})


@cache
def _vocabulary(kind: SKind) -> frozenset[str]:
    """The keys a key-list setting of this kind is expanded over."""
    taxonomy = vocab.data_categories() if kind is SKind.CATEGORIES else vocab.data_uses()
    return frozenset(taxonomy.terms)
