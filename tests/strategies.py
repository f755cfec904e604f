"""Hypothesis strategies for scenario documents (contract v1) and the transformations the monotonicity
properties of tests/test_policy_properties.py apply to them.

:func:`scenario_dicts` draws a valid scenario *document* (a dict, as loaded from YAML) and
:func:`scenarios` parses it with :func:`tactful.model.parse_scenario`, so every generated Scenario went
through the public entry point. The draws are biased towards the interesting region: the recipient is
usually a contact point of the kind the channel needs, the touch's purpose usually has a consent record,
most facts are ordinary and some are sensitive (by category or by implication), and a small share of
documents carries dangling ids or unknown vocabulary keys, which the engine must block without raising.

Each ``*_pairs`` strategy draws ``(before, after)`` where ``after`` is ``before`` with one change that must
never make the verdict less restrictive (or, for :func:`lower_depth_pairs`, more restrictive).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from tactful.model import (
    Scenario,
    ScenarioConsent,
    ScenarioContactPoint,
    ScenarioFact,
    parse_scenario,
)
from tactful.vocab import (
    CHANNEL_CONTACT_KIND,
    FACT_SOURCES,
    Channel,
    ConsentSource,
    ConsentStatus,
    ContactKind,
    Depth,
    FactKind,
    Granularity,
    Openness,
    Origin,
    SharedWith,
    TouchKind,
    Trigger,
)

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)

#: Ordinary data categories (fideslang keys).
PLAIN_CATEGORIES: tuple[str, ...] = (
    "user.behavior.purchase_history",
    "user.behavior.browsing_history",
    "user.behavior.search_history",
    "user.contact.address.city",
    "user.contact.email",
    "user.account.settings",
    "user.demographic.language",
    "user.demographic.age_range",
    "user.demographic.date_of_birth",
    "user.location.imprecise",
    "user.device.cookie_id",
)
#: Sensitive data categories (GDPR art. 9-like, and the Tactful extensions the seeds need).
SENSITIVE_CATEGORIES: tuple[str, ...] = (
    "user.sexual_life",
    "user.health_and_medical",
    "user.health_and_medical.reproductive",
    "user.demographic.household.baby",
    "user.behavior.substance.alcohol",
    "user.behavior.substance.tobacco",
    "user.financial.hardship",
    "user.demographic.religious_belief",
    "user.demographic.political_opinion",
    "user.demographic.sexual_orientation",
)
#: Well-formed keys that are in no vocabulary (the evaluator must block on them, not raise).
UNKNOWN_CATEGORIES: tuple[str, ...] = ("user.behavior.purchase_history.footwear", "user.mood")
PURPOSES: tuple[str, ...] = (
    "marketing",
    "marketing.communications",
    "marketing.communications.email",
    "marketing.communications.sms",
    "marketing.communications.postal",
    "marketing.communications.push",
    "marketing.advertising.third_party.targeted",
    "essential.service",
    "essential.service.notifications",
    "essential.service.notifications.email",
    "essential.service.operations",
    "essential.service.operations.support",
    "personalize.content",
    "functional.service.improve",
    "third_party_sharing",
    "analytics.reporting",
)
UNKNOWN_PURPOSES: tuple[str, ...] = ("marketing.communications.carrier_pigeon",)
#: The natural purpose for each channel's marketing, so that consents often match the touch.
CHANNEL_MARKETING: dict[Channel, str] = {
    Channel.EMAIL: "marketing.communications.email",
    Channel.SMS: "marketing.communications.sms",
    Channel.POSTAL_MAIL: "marketing.communications.postal",
    Channel.POSTCARD: "marketing.communications.postal",
    Channel.PUSH: "marketing.communications.push",
    Channel.PHONE: "marketing.communications",
    Channel.WEB: "personalize.content",
    Channel.APP: "personalize.content",
    Channel.ADVISOR: "essential.service.operations.support",
    Channel.PARTNER_EXPORT: "third_party_sharing",
}
CONTEXTS: tuple[str, ...] = (
    "checkout", "support", "signup", "payment", "browse", "birthday_club", "preference_center",
    "propensity_model", "account_settings", "loyalty_program",
)
FACT_SOURCE_VALUES: tuple[str, ...] = (*FACT_SOURCES, "partner:petpooja", "partner:acme-data")
SENDERS: tuple[str, ...] = ("first_party", "first_party", "first_party", "partner:paytm")
#: Labels are cosmetic (reasons quote them), so they follow the kind instead of costing a draw.
LABELS: dict[FactKind, str] = {
    FactKind.PURCHASE: "Order #1042", FactKind.ATTRIBUTE: "Date of birth 1988-11-27",
    FactKind.PREFERENCE: "Prefers an aisle seat", FactKind.EVENT: "Viewed trail shoes",
    FactKind.INFERENCE: "Propensity score 0.87",
}

#: Who sees a contact point, as a rank; absent counts as household (the contract's default).
SHARED_RANK: dict[SharedWith | None, int] = {
    SharedWith.PRIVATE: 0, None: 1, SharedWith.HOUSEHOLD: 1, SharedWith.OTHERS: 2,
}


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# Drawing is the slow part of a property run, so every choice is ONE draw from a strategy built once
# (a module constant): a sampled_from over the values, None included where the field is optional.
#
# Most random scenarios are blocked for several reasons at once, and a monotonicity property says
# little about a scenario that is already blocked. So each document is drawn in one of two modes:
# *wild* (every value equally likely) or, three times in four, *tidy* (each field takes its harmless
# value about 9 times in 10: a granted consent, a private verified address, an ordinary first-party
# fact, ...), so that a good share of documents are allowed or softened and one change can make a
# difference. Every pair below is ``(wild, tidy)``, indexed by the mode; harmless values come first,
# so shrinking leads towards them.


def _pick(values: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from(tuple(values))


def _modes(harmless: Any, others: Any, weight: int = 9) -> tuple[st.SearchStrategy[Any], ...]:
    """(wild, tidy): wild picks any value uniformly; tidy picks one of ``harmless`` ~``weight`` times
    in ``weight + 1``."""
    harmless, others = tuple(harmless), tuple(others)
    everything = harmless + tuple(v for v in others if v not in harmless)
    tidy = harmless * max(1, weight * len(everything) // len(harmless)) + everything
    return _pick(everything), _pick(tidy)


def _ago(max_days: int, min_minutes: int = 0) -> tuple[str, ...]:
    """A spread of moments before NOW, from ``min_minutes`` to ``max_days`` days ago."""
    minutes = sorted({min_minutes, 5, 8, 30, 90, 6 * 60, *(d * 1440 for d in (
        1, 2, 6, 13, 20, 27, 29, 31, 35, 45, 60, 89, 91, 119, 180, 364, 366, 700, 730, 1000, 1095,
        1500, 1826, 2000, 2600, 3650))})
    return tuple(_iso(NOW - timedelta(minutes=m)) for m in minutes if min_minutes <= m <= max_days * 1440)


def _values(enum: Any) -> tuple[str, ...]:
    return tuple(m.value for m in enum)


BOOL = st.booleans()
COUNT_0_2 = st.integers(0, 2)
COUNT_0_3 = st.integers(0, 3)
COUNT_0_5 = st.integers(0, 5)
ONE_IN_4 = st.integers(0, 3)
ONE_IN_10 = st.integers(0, 9)
ONE_IN_20 = st.integers(0, 19)
_INDEX = tuple(st.integers(0, n - 1) for n in range(1, 33))
_COUNT = (st.just(0), st.integers(0, 1), COUNT_0_2, COUNT_0_3)
#: (wild, tidy) "is this risky option taken?" — tidy takes it once in ten.
RISK = (BOOL, st.integers(0, 9).map(lambda n: n == 0))

CONTACT_KIND = _pick(ContactKind)
SHARED_WITH_OPT = _modes(["private"], [None, *_values(SharedWith)])
VERIFIED_AT_OPT = _modes(_ago(300, 60), [None, *_ago(3650)])
BOUNCED_OPT = _modes([False, None], [True])
PURPOSE = _pick(PURPOSES)
PURPOSE_OR_UNKNOWN = _modes(PURPOSES, UNKNOWN_PURPOSES, weight=30)
CHANNEL = _pick(Channel)
CHANNEL_VALUE_OPT = _pick((None, *_values(Channel)))
CONSENT_STATUS = _modes(["granted"], _values(ConsentStatus))
CONSENT_SOURCE = _modes(["form", "portal"], _values(ConsentSource))
CONSENT_AT_OPT = _pick((None, *_ago(2000)))
FACT_KIND = _modes([FactKind.PURCHASE, FactKind.ATTRIBUTE, FactKind.EVENT], FactKind)
ORIGIN = _modes(["observed", "declared"], _values(Origin))
CATEGORY = _modes(PLAIN_CATEGORIES, SENSITIVE_CATEGORIES + UNKNOWN_CATEGORIES, weight=4)
SENSITIVE = _pick(SENSITIVE_CATEGORIES)
FACT_SOURCE = _modes(["web", "pos", "app", "store", "loyalty"], FACT_SOURCE_VALUES)
CONTEXT = _modes(["checkout", "signup", "preference_center"], CONTEXTS)
FACT_AT_OPT = _pick((None, *_ago(3650)))
RECENT_AT = _modes(_ago(120, 60 * 24 * 45), _ago(120, min_minutes=1))
TOUCH_KIND = _modes([TouchKind.OFFER, TouchKind.RECOMMENDATION, TouchKind.REMINDER], TouchKind, weight=3)
TOUCH_KIND_VALUE_OPT = _pick((None, *_values(TouchKind)))
GRANULARITY_OPT = _modes([None], _values(Granularity))
SENDER = _modes(["first_party"], SENDERS)
DEPTH_OPT = _modes([None, "none", "segment", "category", "item"], _values(Depth), weight=3)
NAMED_OPT = _modes([None, False], [True], weight=3)
TRIGGER_OPT = _modes([None, "scheduled", "event", "customer_request"], _values(Trigger))
GROUP_SIZE_OPT = _modes([None, 100, 2400], [0, 1, 3, 9, 10, 11, 49, 50])
OPENNESS_OPT = _pick((None, *_values(Openness)))
DECEASED_OPT = _modes([None, False], [True])


def _choose(draw: st.DrawFn, values: list[Any]) -> Any:
    """One of ``values`` (at most 32), drawn through a prebuilt strategy; shrinks to the first."""
    return values[draw(_INDEX[len(values) - 1])]


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def _sample(draw: st.DrawFn, values: list[Any], max_size: int) -> list[Any]:
    """Up to ``max_size`` distinct values, in draw order (one draw per element)."""
    out: list[Any] = []
    if not values:
        return out
    for _ in range(draw(_COUNT[max_size])):
        value = _choose(draw, values)
        if value not in out:
            out.append(value)
    return out


def _sensitive_list(draw: st.DrawFn, max_size: int, tidy: bool) -> list[str] | None:
    if not draw(RISK[tidy]):
        return None
    out: list[str] = []
    for _ in range(draw(_COUNT[max_size])):
        value = draw(SENSITIVE)
        if value not in out:
            out.append(value)
    return out or None


def contact_point_dict(draw: st.DrawFn, cp_id: str, kind: ContactKind | None = None,
                       tidy: bool = False) -> dict[str, Any]:
    return _drop_none({
        "id": cp_id,
        "kind": (kind or draw(CONTACT_KIND)).value,
        "shared_with": draw(SHARED_WITH_OPT[tidy]),
        "verified_at": draw(VERIFIED_AT_OPT[tidy]),
        "bounced": draw(BOUNCED_OPT[tidy]),
    })


def consent_dict(draw: st.DrawFn, purpose: str | None = None, channel: Channel | None = None,
                 tidy: bool = False) -> dict[str, Any]:
    if channel is None:  # noqa: SIM108 - two kinds of draw, clearer apart
        channel_value = draw(CHANNEL_VALUE_OPT)
    else:
        channel_value = channel.value if draw(BOOL) else None
    return _drop_none({
        "purpose": purpose or draw(PURPOSE),
        "channel": channel_value,
        "status": draw(CONSENT_STATUS[tidy]),
        "source": draw(CONSENT_SOURCE[tidy]),
        "at": draw(CONSENT_AT_OPT),
    })


def fact_dict(draw: st.DrawFn, fact_id: str, tidy: bool = False) -> dict[str, Any]:
    kind = draw(FACT_KIND[tidy])
    return _drop_none({
        "id": fact_id,
        "kind": kind.value,
        "category": draw(CATEGORY[tidy]),
        "implies": _sensitive_list(draw, 2, tidy),
        "label": LABELS[kind],
        "origin": Origin.INFERRED.value if kind is FactKind.INFERENCE else draw(ORIGIN[tidy]),
        "source": draw(FACT_SOURCE[tidy]),
        "context": draw(CONTEXT[tidy]),
        "at": draw(FACT_AT_OPT),
    })


def recent_touch_dict(draw: st.DrawFn, tidy: bool = False) -> dict[str, Any]:
    channel = draw(CHANNEL)
    return _drop_none({
        "channel": channel.value,
        "purpose": CHANNEL_MARKETING[channel] if draw(BOOL) else draw(PURPOSE),
        "at": draw(RECENT_AT[tidy]),
        "kind": draw(TOUCH_KIND_VALUE_OPT),
    })


@st.composite
def scenario_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """A valid scenario document (as loaded from YAML): every optional part present or absent."""
    tidy = draw(ONE_IN_4) > 0  # three documents in four are tidy
    channel = draw(CHANNEL)
    contact_kind = CHANNEL_CONTACT_KIND[channel]
    purpose = CHANNEL_MARKETING[channel] if draw(BOOL) else draw(PURPOSE_OR_UNKNOWN[tidy])

    # Contact points: usually one of the kind the channel needs (the recipient), plus others.
    cps: list[dict[str, Any]] = []
    if contact_kind is not None and not draw(RISK[tidy]):
        cps.append(contact_point_dict(draw, "cp0", contact_kind, tidy))
    for i in range(len(cps), len(cps) + draw(COUNT_0_2)):
        cps.append(contact_point_dict(draw, f"cp{i}", None, tidy))
    ids = [cp["id"] for cp in cps]
    if not draw(RISK[tidy]):
        to = ids[0] if contact_kind is not None and ids else None
    else:
        to = _choose(draw, [None, *ids, "cp-missing"])

    # Consents: usually a record for the touch's own purpose, plus arbitrary ones.
    consents: list[dict[str, Any]] = []
    if not draw(RISK[tidy]):
        consents.append(consent_dict(draw, purpose, channel, tidy))
    consents += [consent_dict(draw, None, None, tidy) for _ in range(draw(COUNT_0_2))]

    facts = [fact_dict(draw, f"f{i}", tidy) for i in range(draw(COUNT_0_5))]
    fact_ids = [f["id"] for f in facts]
    refs = [*fact_ids, "f-missing"] if draw(RISK[tidy]) else fact_ids
    uses = _sample(draw, refs, 3)
    shows = _sample(draw, refs, 3)

    kind = draw(TOUCH_KIND[tidy])
    granularity = draw(GRANULARITY_OPT[tidy])
    if kind is TouchKind.SHARE and granularity is None and draw(BOOL):
        granularity = Granularity.AGGREGATE.value
    touch = _drop_none({
        "kind": kind.value,
        "purpose": purpose,
        "channel": channel.value,
        "to": to,
        "sender": draw(SENDER[tidy]),
        "sender_implies": _sensitive_list(draw, 1, tidy),
        "uses": uses or None,
        "shows": shows or None,
        "shows_implies": _sensitive_list(draw, 2, tidy),
        "depth": draw(DEPTH_OPT[tidy]),
        "named": draw(NAMED_OPT[tidy]),
        "trigger": draw(TRIGGER_OPT[tidy]),
        "granularity": granularity,
        "group_size": draw(GROUP_SIZE_OPT[tidy]),
    })
    customer = _drop_none({
        "id": "cust-10482",
        "openness": draw(OPENNESS_OPT),
        "deceased": draw(DECEASED_OPT[tidy]),
    })
    doc: dict[str, Any] = {"version": 1, "now": _iso(NOW), "customer": customer, "touch": touch}
    empty_list_spelled_out: bool = draw(BOOL)
    if cps or empty_list_spelled_out:
        doc["contact_points"] = cps
    if consents:
        doc["consents"] = consents
    if facts:
        doc["facts"] = facts
    recent = [recent_touch_dict(draw, tidy) for _ in range(draw(COUNT_0_3))]
    if recent:
        doc["recent_touches"] = recent
    return doc


def scenarios() -> st.SearchStrategy[Scenario]:
    """Valid :class:`Scenario` objects, parsed from :func:`scenario_dicts` by the public entry point."""
    return scenario_dicts().map(lambda d: parse_scenario(d, source="<hypothesis>"))


# --------------------------------------------------------------------------- transformations


def with_consent_status(scenario: Scenario, index: int, status: ConsentStatus) -> Scenario:
    consents = list(scenario.consents)
    consents[index] = consents[index].model_copy(update={"status": status})
    return scenario.model_copy(update={"consents": tuple(consents)})


def with_recipient_shared_with(scenario: Scenario, shared_with: SharedWith | None) -> Scenario:
    cps = tuple(
        cp.model_copy(update={"shared_with": shared_with}) if cp.id == scenario.touch.to else cp
        for cp in scenario.contact_points
    )
    return scenario.model_copy(update={"contact_points": cps})


def with_implication(scenario: Scenario, fact_id: str, category: str) -> Scenario:
    facts = tuple(
        f.model_copy(update={"implies": (*f.implies, category)}) if f.id == fact_id else f
        for f in scenario.facts
    )
    return scenario.model_copy(update={"facts": facts})


def with_openness(scenario: Scenario, openness: Openness | None) -> Scenario:
    customer = scenario.customer.model_copy(update={"openness": openness})
    return scenario.model_copy(update={"customer": customer})


def with_depth(scenario: Scenario, depth: Depth) -> Scenario:
    return scenario.model_copy(update={"touch": scenario.touch.model_copy(update={"depth": depth})})


def openness_rank(openness: Openness | None, default: Openness) -> int:
    """closed 0 < reserved 1 < balanced 2 < open 3; absent counts as the pack's default."""
    return (openness or default).rank


# --------------------------------------------------------------------------- (before, after) pairs
# Each pair strategy builds its precondition into the draw (instead of filtering), so that every
# generated example exercises the property.


@st.composite
def consent_withdrawal_pairs(draw: st.DrawFn) -> tuple[Scenario, Scenario]:
    """A granted consent becomes withdrawn or denied."""
    before = draw(scenarios())
    granted = [i for i, c in enumerate(before.consents) if c.status is ConsentStatus.GRANTED]
    if not granted:  # give the touch's own purpose a grant, so that there is one to withdraw
        grant = ScenarioConsent(purpose=before.touch.purpose, status=ConsentStatus.GRANTED,
                                source=ConsentSource.PORTAL, at=NOW - timedelta(days=30))
        before = before.model_copy(update={"consents": (*before.consents, grant)})
        granted = [len(before.consents) - 1]
    index = _choose(draw, granted)
    status = ConsentStatus.WITHDRAWN if draw(BOOL) else ConsentStatus.DENIED
    return before, with_consent_status(before, index, status)


@st.composite
def widen_recipient_pairs(draw: st.DrawFn) -> tuple[Scenario, Scenario]:
    """The recipient contact point is seen by at least as many people (private < household = absent <
    others)."""
    before = draw(scenarios())
    recipient = next((cp for cp in before.contact_points if cp.id == before.touch.to), None)
    if recipient is None:  # address the touch to a (new) contact point of the kind its channel needs
        kind = CHANNEL_CONTACT_KIND[before.touch.channel] or ContactKind.EMAIL
        recipient = ScenarioContactPoint(id="cp-recipient", kind=kind, shared_with=draw(SHARED_WITH_OPT[1]),
                                         verified_at=NOW - timedelta(days=60))
        touch = before.touch.model_copy(update={"to": recipient.id})
        before = before.model_copy(update={"contact_points": (*before.contact_points, recipient),
                                           "touch": touch})
    current = recipient.shared_with
    wider = [w for w in (*SharedWith, None) if SHARED_RANK[w] >= SHARED_RANK[current] and w != current]
    if not wider:  # already seen by others: the same again must not change anything
        wider = [current]
    return before, with_recipient_shared_with(before, _choose(draw, wider))


@st.composite
def sensitive_implication_pairs(draw: st.DrawFn) -> tuple[Scenario, Scenario]:
    """A fact the touch uses or shows gains a sensitive implication."""
    before = draw(scenarios())
    known = {f.id for f in before.facts}
    referenced = sorted(known & (set(before.touch.uses) | set(before.touch.shows)))
    if not referenced:  # make the touch use (or show) one of its facts, adding one if there is none
        if not before.facts:
            fact = ScenarioFact.model_validate(fact_dict(draw, "f-added", tidy=True))
            before = before.model_copy(update={"facts": (fact,)})
        fact_id = _choose(draw, [f.id for f in before.facts])
        field = "uses" if draw(BOOL) else "shows"
        touch = before.touch.model_copy(update={field: (*getattr(before.touch, field), fact_id)})
        before = before.model_copy(update={"touch": touch})
        referenced = [fact_id]
    fact_id = _choose(draw, referenced)
    return before, with_implication(before, fact_id, draw(SENSITIVE))


@st.composite
def lower_openness_pairs(draw: st.DrawFn, default: Openness) -> tuple[Scenario, Scenario]:
    """The customer's openness is lowered or kept (open > balanced > reserved > closed; absent =
    ``default``, so absent and the default are interchangeable)."""
    before = draw(scenarios())
    rank = openness_rank(before.customer.openness, default)
    lower = [o for o in (*Openness, None)
             if openness_rank(o, default) <= rank and o != before.customer.openness]
    if not lower:  # already closed and explicit: closed again must not change anything
        lower = [before.customer.openness]
    return before, with_openness(before, _choose(draw, lower))


@st.composite
def lower_depth_pairs(draw: st.DrawFn) -> tuple[Scenario, Scenario]:
    """The proposed touch shows less (a strictly lower depth)."""
    before = draw(scenarios())
    if before.touch.depth is Depth.NONE:
        before = with_depth(before, Depth.DETAILED_HISTORY if draw(BOOL) else Depth.HISTORY)
    lower = [d for d in Depth if d.rank < before.touch.depth.rank]
    return before, with_depth(before, _choose(draw, lower))


# --------------------------------------------------------------------------- benign by construction
# A world where everything blocks passes every monotonicity property above. These scenarios are
# harmless by construction — every fact ordinary, first party and collected at checkout or signup;
# the recipient private, verified and not bouncing; the touch's purpose granted on its channel;
# nothing sensitive shown or revealed by the sender; the depth within what the customer's openness
# allows; no greeting by name where it is not wanted; caps not reached; a closed customer gets only
# service messages and surveys — so a pack that does not allow them over-blocks.

#: Ordinary categories only (no birthday: its expectation rule is exercised elsewhere).
BENIGN_CATEGORIES: tuple[str, ...] = (
    "user.behavior.purchase_history", "user.demographic.language", "user.account.settings",
    "user.contact.address.city",
)
BENIGN_FACT_KINDS: tuple[str, ...] = ("purchase", "attribute", "event")
#: (origin, source, context) of a fact the first party collected itself, outside any conversation
#: or payment; at least a day old (a fact observed minutes ago is a live signal).
BENIGN_PROVENANCE: tuple[tuple[str, str, str], ...] = (
    ("observed", "web", "checkout"), ("observed", "pos", "checkout"), ("observed", "app", "checkout"),
    ("observed", "loyalty", "checkout"), ("declared", "web", "signup"),
    ("declared", "app", "preference_center"),
)
#: Outbound and in-session channels and the touch kinds that are harmless on them when consented.
BENIGN_MARKETING_KINDS: tuple[str, ...] = ("offer", "recommendation", "reminder")
BENIGN_TRANSACTIONAL: tuple[tuple[str, str], ...] = (
    ("service", "essential.service.notifications"), ("survey", "functional.service.improve"))
BENIGN_CHANNELS: tuple[Channel, ...] = (
    Channel.EMAIL, Channel.SMS, Channel.POSTAL_MAIL, Channel.POSTCARD, Channel.PUSH, Channel.PHONE,
    Channel.WEB, Channel.APP, Channel.PARTNER_EXPORT,
)
IN_SESSION = (Channel.WEB, Channel.APP)


@st.composite
def benign_scenario_dicts(draw: st.DrawFn, settings: Any) -> dict[str, Any]:
    """A scenario document that is harmless by construction for a pack with ``settings`` (its
    openness depth caps, frequency caps, survey window and minimum group size are respected)."""
    channel = draw(st.sampled_from(BENIGN_CHANNELS))
    openness = draw(st.sampled_from((None, *Openness)))
    effective = openness or settings.default_openness
    cap = settings.openness_max_depth[effective]

    # -- the touch
    if channel is Channel.PARTNER_EXPORT:
        kind, purpose = "share", "third_party_sharing"
    elif effective is Openness.CLOSED or draw(ONE_IN_4) == 0:
        kind, purpose = draw(st.sampled_from(BENIGN_TRANSACTIONAL))
    else:
        kind, purpose = draw(st.sampled_from(BENIGN_MARKETING_KINDS)), CHANNEL_MARKETING[channel]
    transactional = kind in ("service", "survey")
    depths = [d for d in Depth if d is not Depth.DETAILED_HISTORY
              and (transactional or d.rank <= cap.rank)]
    depth = draw(st.sampled_from(depths))
    may_name = channel not in IN_SESSION or effective.rank >= settings.web_greeting_min_openness.rank
    named = bool(may_name and kind != "share" and draw(BOOL))
    trigger = "customer_request" if channel in IN_SESSION else draw(st.sampled_from(("scheduled", "event")))

    # -- the recipient and the consents
    contact_kind = CHANNEL_CONTACT_KIND[channel]
    cps: list[dict[str, Any]] = []
    to = None
    if contact_kind is not None:
        cps.append({"id": "cp-own", "kind": contact_kind.value, "shared_with": "private",
                    "verified_at": draw(st.sampled_from(_ago(700, 60)))})
        to = "cp-own"
    if draw(BOOL):  # another address the touch does not use: irrelevant to the decision
        cps.append({"id": "cp-family", "kind": draw(CONTACT_KIND).value, "shared_with": "household",
                    "verified_at": draw(st.sampled_from(_ago(3650)))})
    grant_at = draw(st.sampled_from(_ago(2000, 60 * 24)))
    consents = [{"purpose": purpose, "status": "granted", "source": draw(st.sampled_from(("form", "portal"))),
                 "at": grant_at, **({"channel": channel.value} if draw(BOOL) else {})}]
    if draw(BOOL):
        consents.append({"purpose": "personalize.content", "status": "granted", "source": "form",
                         "at": grant_at})
    if channel in IN_SESSION and kind in BENIGN_MARKETING_KINDS:
        # an offer is marketing by substance whatever purpose it states: the customer opted in to that
        consents.append({"purpose": "marketing", "status": "granted", "source": "form", "at": grant_at})

    # -- the facts
    facts = []
    for i in range(draw(COUNT_0_3)):
        origin, source, context = draw(st.sampled_from(BENIGN_PROVENANCE))
        fact_kind = draw(st.sampled_from(BENIGN_FACT_KINDS))
        facts.append({"id": f"f{i}", "kind": fact_kind, "category": draw(st.sampled_from(BENIGN_CATEGORIES)),
                      "label": LABELS[FactKind(fact_kind)], "origin": origin, "source": source,
                      "context": context, "at": draw(st.sampled_from(_ago(700, 60 * 24)))})
    ids = [f["id"] for f in facts]
    uses = _sample(draw, ids, 3)
    shows = _sample(draw, ids, 3) if depth.rank >= Depth.ITEM.rank else []

    # -- history: touches well outside every window, and fewer than the cap inside its own
    recent: list[dict[str, Any]] = [
        {"channel": draw(CHANNEL).value, "purpose": "marketing.communications", "kind": "offer",
         "at": draw(st.sampled_from(_ago(3650, 60 * 24 * 400)))} for _ in range(draw(COUNT_0_2))]
    group = next((c for c in settings.frequency_caps if channel in c.channels), None)
    if group is not None and kind != "survey" and group.max > 1:
        for _ in range(draw(st.integers(0, min(group.max - 1, 2)))):
            recent.append({"channel": channel.value, "purpose": CHANNEL_MARKETING[channel], "kind": "offer",
                           "at": draw(st.sampled_from(_ago(max(group.days - 1, 1), 60)))})

    touch: dict[str, Any] = {"kind": kind, "purpose": purpose, "channel": channel.value, "to": to,
                             "sender": "first_party", "uses": uses, "shows": shows,
                             "depth": depth.value, "named": named, "trigger": trigger}
    if kind == "share":
        touch.update(granularity="aggregate", group_size=draw(st.sampled_from(
            (settings.min_group_size, settings.min_group_size + 40, 2400))), named=False)
    doc: dict[str, Any] = {
        "version": 1, "now": _iso(NOW),
        "customer": _drop_none({"id": "cust-benign", "openness": openness.value if openness else None}),
        "contact_points": cps, "consents": consents, "facts": facts, "recent_touches": recent,
        "touch": _drop_none(touch),
    }
    return doc


def benign_scenarios(settings: Any) -> st.SearchStrategy[Scenario]:
    """Harmless-by-construction :class:`Scenario` objects (see :func:`benign_scenario_dicts`)."""
    return benign_scenario_dicts(settings).map(lambda d: parse_scenario(d, source="<hypothesis benign>"))
