"""The Python evaluator with the default pack: one test (or more) per rule, the composition of
verdicts, depth and naming, consent resolution, and fail-closed behaviour."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from tactful.features import derive
from tactful.model import Decision
from tactful.policy import evaluate, load_pack
from tactful.policy.nodes import All, Cond, Flag, Not, Rule
from tactful.policy.testing import BASE, decide, fact, fired, scenario
from tactful.vocab import Depth, Verdict


def test_benign_base_is_allowed() -> None:
    d = decide()
    assert d.verdict is Verdict.ALLOW
    assert d.reasons == ()
    assert d.max_depth is Depth.ITEM
    assert d.named is False
    assert d.policy.name == "default"


# --------------------------------------------------------------------------- consent


def test_marketing_needs_opt_in() -> None:
    d = decide(consents=[])
    assert d.verdict is Verdict.BLOCK
    assert fired(d) == ["marketing-needs-opt-in"]


def test_consent_is_per_channel() -> None:
    grant_sms = [{"purpose": "marketing.communications.sms", "channel": "sms", "status": "granted",
                  "source": "form"}]
    assert fired(decide(consents=grant_sms)) == ["marketing-needs-opt-in"]
    on_sms = {"channel": "sms", "to": "mobile", "purpose": "marketing.communications"}
    assert decide(consents=grant_sms, touch=on_sms).verdict is Verdict.ALLOW


def test_withdrawn_consent_beats_grant_and_is_named() -> None:
    consents = [*BASE["consents"], {"purpose": "marketing.communications.email", "channel": "email",
                                    "status": "withdrawn", "source": "portal"}]
    d = decide(consents=consents)
    assert d.verdict is Verdict.BLOCK
    assert "consent-refused" in fired(d)
    msg = next(r.message for r in d.reasons if r.rule == "consent-refused")
    assert "withdrawn" in msg and "marketing.communications.email" in msg


def test_refusal_on_another_channel_does_not_block() -> None:
    consents = [*BASE["consents"], {"purpose": "marketing.communications.sms", "status": "denied",
                                    "source": "portal"}]
    assert decide(consents=consents).verdict is Verdict.ALLOW


def test_gpc_record_is_a_refusal_even_if_granted() -> None:
    consents = [*BASE["consents"], {"purpose": "marketing", "status": "granted", "source": "gpc"}]
    assert "consent-refused" in fired(decide(consents=consents))


def test_service_touch_needs_no_opt_in() -> None:
    d = decide(consents=[], touch={"kind": "service", "purpose": "essential.service.notifications"})
    assert d.verdict is Verdict.ALLOW


def test_offer_is_marketing_whatever_its_purpose() -> None:
    d = decide(consents=[], touch={"purpose": "essential.service.notifications"})
    assert "marketing-needs-opt-in" in fired(d)


# --------------------------------------------------------------------------- clean data


def test_deceased_customer_blocks_even_service() -> None:
    d = decide(customer={"deceased": True}, touch={"kind": "service", "purpose": "essential.service"})
    assert fired(d) == ["deceased-customer"]


def test_bounced_contact_point() -> None:
    cps = [{"id": "mail", "kind": "email", "shared_with": "private", "bounced": True}]
    assert fired(decide(contact_points=cps)) == ["bounced-contact-point"]


def test_stale_contact_point_names_the_age() -> None:
    cps = [{"id": "mail", "kind": "email", "shared_with": "private", "verified_at": "2022-01-01"}]
    d = decide(contact_points=cps)
    assert fired(d) == ["stale-contact-point"]
    assert "days ago" in d.reasons[0].message


def test_never_verified_contact_point_is_not_stale() -> None:
    cps = [{"id": "mail", "kind": "email", "shared_with": "private"}]
    assert decide(contact_points=cps).verdict is Verdict.ALLOW


@pytest.mark.parametrize("touch", [
    {"to": None},
    {"to": "nowhere"},
    {"to": "home"},  # an email to a postal address
])
def test_missing_contact_point(touch: dict[str, object]) -> None:
    assert fired(decide(touch=touch)) == ["missing-contact-point"]


# --------------------------------------------------------------------------- fail closed on input


def test_unknown_category_blocks_and_names_key_and_fact() -> None:
    d = decide(facts=[fact("f1", category="user.behavior.shoe_size", label="Shoe size")])
    assert d.verdict is Verdict.BLOCK
    reason = next(r for r in d.reasons if r.rule == "unknown-vocabulary")
    assert "user.behavior.shoe_size" in reason.message
    assert "Shoe size" in reason.message
    assert reason.facts == ("f1",)


def test_unknown_purpose_blocks() -> None:
    d = decide(touch={"purpose": "marketing.carrier_pigeon"})
    assert "unknown-vocabulary" in fired(d)
    assert "marketing.carrier_pigeon" in d.reasons[0].message


def test_unknown_fact_reference_blocks() -> None:
    d = decide(touch={"uses": ["f1", "ghost"]})
    assert fired(d) == ["missing-fact-reference"]
    assert "ghost" in d.reasons[0].message


# --------------------------------------------------------------------------- sensitivity


def _adult(fid: str = "a1") -> dict[str, object]:
    return fact(fid, implies=["user.sexual_life"], label="Order #1042")


def test_sensitive_shown_on_household_channel_blocks_and_names_fact() -> None:
    d = decide(facts=[_adult()], touch={"to": "mail", "uses": ["a1"], "shows": ["a1"]},
               contact_points=[{"id": "mail", "kind": "email", "shared_with": "household"}])
    assert d.verdict is Verdict.BLOCK
    reason = next(r for r in d.reasons if r.rule == "sensitive-on-shared-channel")
    assert reason.facts == ("a1",)
    assert "Order #1042" in reason.message and "sex life" in reason.message


def test_absent_shared_with_counts_as_household() -> None:
    d = decide(facts=[_adult()], touch={"uses": ["a1"], "shows": ["a1"]},
               contact_points=[{"id": "mail", "kind": "email"}])
    assert "sensitive-on-shared-channel" in fired(d)


def test_sensitive_shown_on_private_channel_is_fine() -> None:
    # the adult shop itself (its sender reveals the category) on the customer's private channel
    touch = {"uses": ["a1"], "shows": ["a1"], "sender_implies": ["user.sexual_life"]}
    d = decide(facts=[_adult()], touch=touch)
    assert d.verdict is Verdict.ALLOW


def test_an_implied_sensitive_category_is_an_inference_even_from_an_observed_purchase() -> None:
    # seed 002: a pregnancy test bought at a grocery implies reproductive health; a general retailer
    # that targets on it without a declaration does what Target's model did
    test = fact("p1", implies=["user.health_and_medical.reproductive"], label="Pregnancy test")
    d = decide(facts=[test], touch={"uses": ["p1"]})
    assert d.verdict is Verdict.BLOCK
    reason = next(r for r in d.reasons if r.rule == "inferred-sensitive-without-opt-in")
    assert reason.facts == ("p1",) and "Pregnancy test" in reason.message
    declared = fact("d1", category="user.health_and_medical.reproductive", origin="declared",
                    kind="attribute")
    assert decide(facts=[test, declared], touch={"uses": ["p1"]}).verdict is Verdict.ALLOW


def test_postcard_is_seen_by_others_whatever_the_address() -> None:
    cps = [{"id": "box", "kind": "postal", "shared_with": "private"}]
    touch = {"channel": "postcard", "to": "box", "sender_implies": ["user.sexual_life"],
             "purpose": "marketing.communications"}
    d = decide(contact_points=cps, touch=touch)
    assert fired(d) == ["sensitive-sender-on-shared-channel"]


def test_sensitive_sender_by_letter_is_softened_to_sealed_envelope() -> None:
    touch = {"channel": "postal_mail", "to": "home", "sender_implies": ["user.sexual_life"],
             "purpose": "marketing.communications", "named": True}
    d = decide(touch=touch)
    assert d.verdict is Verdict.SOFTEN
    assert fired(d) == ["sensitive-sender-discreet"]
    assert d.named is False and d.max_depth is Depth.SEGMENT
    assert "send in a sealed envelope without the sender's name" in d.remedies


def _pregnancy() -> dict[str, object]:
    return fact("p1", kind="inference", category="user.health_and_medical.reproductive",
                origin="inferred", source="loyalty", context="model", label="Pregnancy predicted")


def test_inferred_sensitive_without_opt_in_blocks() -> None:
    d = decide(facts=[_pregnancy()], touch={"uses": ["p1"]})
    assert fired(d) == ["inferred-sensitive-without-opt-in"]
    assert d.reasons[0].facts == ("p1",)


def test_inferred_sensitive_with_profiling_opt_in_is_allowed() -> None:
    consents = [*BASE["consents"], {"purpose": "personalize.profiling", "status": "granted",
                                    "source": "portal"}]
    assert decide(facts=[_pregnancy()], touch={"uses": ["p1"]}, consents=consents).verdict is Verdict.ALLOW


def test_declared_pregnancy_covers_baby_items() -> None:
    declared = fact("d1", kind="attribute", category="user.health_and_medical.reproductive",
                    origin="declared", source="web", context="signup")
    touch = {"uses": ["d1"], "shows_implies": ["user.demographic.household.baby"]}
    assert decide(facts=[declared], touch=touch).verdict is Verdict.ALLOW
    assert fired(decide(touch={"shows_implies": ["user.demographic.household.baby"]})) == [
        "shown-items-reveal-inference"]


# --------------------------------------------------------------------------- context and partners


def test_support_chat_disclosure_in_marketing_blocks() -> None:
    chat = fact("c1", kind="attribute", category="user.content.private", source="chat", context="support",
                label="Mentioned a divorce")
    d = decide(facts=[chat], touch={"uses": ["c1"]})
    assert fired(d) == ["out-of-context-use"]
    assert "Mentioned a divorce" in d.reasons[0].message


def test_support_chat_disclosure_in_same_conversation_is_fine() -> None:
    chat = fact("c1", kind="attribute", category="user.content.private", source="chat", context="support")
    touch = {"kind": "advisor_prompt", "channel": "advisor", "to": None, "purpose": "essential.service",
             "uses": ["c1"], "trigger": "customer_request"}
    assert decide(facts=[chat], touch=touch).verdict is Verdict.ALLOW


def test_partner_fact_in_marketing_blocks() -> None:
    pos = fact("x1", source="partner:petpooja", context="payment")
    d = decide(facts=[pos], touch={"uses": ["x1"]})
    assert set(fired(d)) == {"partner-collected-data", "out-of-context-use"}


def test_partner_sender_using_our_facts_needs_share_consent() -> None:
    assert fired(decide(touch={"sender": "partner:paytm"})) == ["partner-collected-data"]
    consents = [*BASE["consents"], {"purpose": "third_party_sharing", "status": "granted", "source": "form"}]
    assert decide(touch={"sender": "partner:paytm"}, consents=consents).verdict is Verdict.ALLOW


def _share(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"kind": "share", "channel": "partner_export", "to": None,
                               "purpose": "third_party_sharing", "depth": "segment"}
    base.update(kw)
    return base


def test_individual_share_needs_consent() -> None:
    assert fired(decide(touch=_share(granularity="individual"))) == ["individual-share-needs-consent"]
    assert fired(decide(touch=_share())) == ["individual-share-needs-consent"]  # absent = individual


def test_aggregate_share_minimum_group_size() -> None:
    assert fired(decide(touch=_share(granularity="aggregate", group_size=4))) == ["aggregate-min-group-size"]
    assert decide(touch=_share(granularity="aggregate", group_size=10)).verdict is Verdict.ALLOW


# --------------------------------------------------------------------------- openness, depth, naming


def test_openness_caps_depth_to_the_pack_table() -> None:
    d = decide(customer={"openness": "reserved"}, touch={"depth": "history", "shows": ["f1"]})
    assert d.verdict is Verdict.SOFTEN
    assert d.max_depth is Depth.CATEGORY
    assert fired(d) == ["openness-depth-cap"]
    assert d.reasons[0].facts == ("f1",)


def test_absent_openness_is_the_pack_default() -> None:
    d = decide(customer={"openness": None}, touch={"depth": "history"})
    assert d.max_depth is Depth.ITEM  # default_openness balanced -> item


def test_open_customer_may_get_history() -> None:
    assert decide(customer={"openness": "open"}, touch={"depth": "history"}).verdict is Verdict.ALLOW


def test_detailed_history_is_always_softened() -> None:
    d = decide(customer={"openness": "open"}, touch={"depth": "detailed_history"})
    assert d.verdict is Verdict.SOFTEN
    assert d.max_depth is Depth.HISTORY
    assert "detailed-history-never" in fired(d)


def test_lowest_cap_wins() -> None:
    d = decide(customer={"openness": "reserved"}, touch={"depth": "detailed_history"})
    assert d.max_depth is Depth.CATEGORY
    assert set(fired(d)) == {"detailed-history-never", "openness-depth-cap"}


def test_closed_customer_gets_transactional_only() -> None:
    d = decide(customer={"openness": "closed"}, touch={"depth": "none"})
    assert fired(d) == ["closed-transactional-only"]
    survey = {"kind": "survey", "purpose": "functional.service.improve", "depth": "none"}
    assert decide(customer={"openness": "closed"}, consents=[], touch=survey).verdict is Verdict.ALLOW


def test_web_greeting_by_name_only_for_open_customers() -> None:
    web = {"channel": "web", "to": None, "kind": "greeting", "purpose": "personalize.content",
           "named": True, "depth": "none"}
    d = decide(touch=web)
    assert d.verdict is Verdict.SOFTEN and d.named is False
    assert "greet without the name" in d.remedies
    d = decide(touch=web, customer={"openness": "open"})
    assert d.verdict is Verdict.ALLOW and d.named is True


def test_announced_preference_is_softened_quiet_one_allowed() -> None:
    pref = fact("s1", kind="preference", category="user.behavior", origin="declared", source="app",
                context="profile", label="Prefers the aisle")
    service = {"kind": "service", "purpose": "essential.service", "uses": ["s1"]}
    assert decide(facts=[pref], touch=service).verdict is Verdict.ALLOW
    d = decide(facts=[pref], touch={**service, "shows": ["s1"]})
    assert fired(d) == ["operational-preference-quietly"]
    assert "apply the preference without mentioning it" in d.remedies


# --------------------------------------------------------------------------- timing


def test_realtime_browse_outreach_blocks_but_on_site_is_fine() -> None:
    assert fired(decide(touch={"trigger": "realtime_browse"})) == ["realtime-browse-trigger"]
    web = {"trigger": "realtime_browse", "channel": "web", "to": None, "kind": "recommendation",
           "purpose": "personalize.content"}
    assert decide(touch=web).verdict is Verdict.ALLOW


def test_birthday_without_expectation_asks() -> None:
    bday = fact("b1", kind="attribute", category="user.demographic.date_of_birth", origin="declared",
                context="checkout", label="Birthday 12 March")
    d = decide(facts=[bday], touch={"uses": ["b1"]})
    assert d.verdict is Verdict.ASK
    assert d.max_depth is Depth.NONE and d.named is False
    bday["context"] = "birthday_club"
    assert decide(facts=[bday], touch={"uses": ["b1"]}).verdict is Verdict.ALLOW


def test_postal_frequency_cap_about_monthly() -> None:
    post = {"channel": "postal_mail", "to": "home", "purpose": "marketing.communications"}
    recent = [{"channel": "postcard", "purpose": "marketing.communications", "at": "2026-11-02"}]
    assert fired(decide(touch=post, recent_touches=recent)) == ["marketing-frequency-cap"]
    recent[0]["at"] = "2026-10-20"
    assert decide(touch=post, recent_touches=recent).verdict is Verdict.ALLOW


def test_service_touches_do_not_count_towards_the_cap() -> None:
    post = {"channel": "postal_mail", "to": "home", "purpose": "marketing.communications"}
    recent = [{"channel": "postal_mail", "purpose": "essential.service", "at": "2026-11-20"},
              {"channel": "postal_mail", "purpose": "marketing.communications", "kind": "service",
               "at": "2026-11-20"}]
    assert decide(touch=post, recent_touches=recent).verdict is Verdict.ALLOW


def test_survey_cap() -> None:
    survey = {"kind": "survey", "purpose": "functional.service.improve", "depth": "none"}
    recent = [{"channel": "email", "purpose": "functional.service.improve", "kind": "survey",
               "at": "2026-10-01"}]
    assert fired(decide(touch=survey, recent_touches=recent)) == ["survey-frequency-cap"]


# --------------------------------------------------------------------------- composition


def test_most_restrictive_wins_and_every_rule_is_reported() -> None:
    d = decide(consents=[], customer={"openness": "reserved"}, touch={"depth": "history"})
    assert d.verdict is Verdict.BLOCK
    assert set(fired(d)) == {"marketing-needs-opt-in", "openness-depth-cap"}
    assert d.max_depth is Depth.NONE  # nothing may be sent
    verdicts = {r.rule: r.verdict for r in d.reasons}
    assert verdicts["openness-depth-cap"] is Verdict.SOFTEN


def test_deterministic() -> None:
    s = scenario(customer={"openness": "reserved"}, touch={"depth": "history"})
    pack = load_pack()
    assert evaluate(s, pack) == evaluate(s, pack)


# --------------------------------------------------------------------------- fail closed


class Boom(Cond):
    """A condition node no evaluator knows."""

    __slots__ = ()


def _with_rule(rule: Rule) -> object:
    pack = load_pack()
    return dataclasses.replace(pack, rules=(*pack.rules, rule))


def test_rule_that_cannot_be_evaluated_blocks() -> None:
    rule = Rule(id="boom", title="t", source="s", when=Flag("named"), verdict=Verdict.SOFTEN,
                message="m", drop_name=True)
    pack = _with_rule(rule)
    object.__setattr__(rule, "when", Boom())  # a tree that slipped past validation
    d = evaluate(scenario(), pack)  # type: ignore[arg-type]
    assert d.verdict is Verdict.BLOCK
    assert d.reasons[-1].rule == "boom" and "could not be evaluated" in d.reasons[-1].message


def test_rule_raising_at_evaluation_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    ev = importlib.import_module("tactful.policy.evaluate")

    pack = _with_rule(Rule(id="raises", title="t", source="s", when=All((Flag("named"), Not(Flag("named")))),
                           verdict=Verdict.BLOCK, message="m", remedies=("r",)))

    def broken(cond: Cond, settings: object) -> object:
        def pred(values: object) -> bool:
            raise ZeroDivisionError("division by zero")
        return pred

    monkeypatch.setattr(ev, "compile_condition", broken)
    d = ev.evaluate(scenario(), pack)  # type: ignore[arg-type]
    assert d.verdict is Verdict.BLOCK
    assert all("could not be evaluated" in r.message for r in d.reasons)


def test_feature_derivation_failure_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    ev = importlib.import_module("tactful.policy.evaluate")

    def broken(*args: object) -> object:
        raise RuntimeError("no features today")

    monkeypatch.setattr(ev, "derive", broken)
    d = ev.evaluate(scenario(), load_pack())
    assert d.verdict is Verdict.BLOCK
    assert d.reasons[0].rule == "evaluation-error"
    assert "no features today" in d.reasons[0].message


def test_evaluate_never_raises_on_garbage() -> None:
    d = evaluate(None, load_pack())  # type: ignore[arg-type]
    assert isinstance(d, Decision) and d.verdict is Verdict.BLOCK


def test_features_are_flat_scalars() -> None:
    feats = derive(scenario(), load_pack().settings)
    for name, value in feats.values.items():
        assert isinstance(value, bool | int | str), name
