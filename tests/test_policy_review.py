"""Findings of the policy-engine review: each test failed before its fix.

Fail-open paths (an error, a missing input or an unknown value ending in allow or a weaker verdict),
seed coverage gaps against docs/domain.md, and the CLI contract (stdin, recursive policy test).
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from pathlib import Path

import pytest
import yaml

from tactful.features import derive
from tactful.policy import evaluate, load_pack, parse_pack
from tactful.policy.evaluate import FAIL_CLOSED_GUARD
from tactful.policy.nodes import Flag, Rule
from tactful.policy.testing import BASE, decide, fact, fired, scenario
from tactful.testing.cli import run_cli
from tactful.vocab import Depth, Verdict

DEFAULT_PACK_FILE = Path(__file__).parents[1] / "src/tactful/policy/packs/default.yaml"


# --------------------------------------------------------------------------- fail closed, whatever the pack


def _minimal_pack(rules: str = "") -> str:
    """A standalone pack (no extends) with the default settings and only the given rules."""
    text = DEFAULT_PACK_FILE.read_text(encoding="utf-8")
    settings = text[text.index("settings:"):text.index("\nrules:")]
    return f"name: bare\nversion: '1'\n{settings}\nrules:\n{rules}"


_HARMLESS_RULE = """\
  - id: no-names
    title: No names
    source: test
    when: named
    verdict: soften
    named: false
    message: "no names"
"""


@pytest.mark.parametrize(("over", "feature"), [
    ({"facts": [fact("f1", category="user.behavior.shoe_size")]}, "unknown_vocabulary"),
    ({"touch": {"uses": ["ghost"]}}, "missing_fact_reference"),
    ({"touch": {"to": None}}, "contact_point_missing"),
    ({"touch": {"purpose": "marketing.communications.sms"}}, "purpose_off_channel"),
])
def test_a_pack_without_the_guard_rules_still_fails_closed(over: dict[str, object], feature: str) -> None:
    pack = parse_pack(_minimal_pack(_HARMLESS_RULE), source="bare.yaml")
    d = evaluate(scenario(**over), pack)
    assert d.verdict is Verdict.BLOCK
    assert d.reasons[-1].rule == FAIL_CLOSED_GUARD
    assert feature.replace("_", " ") in d.reasons[-1].message or feature in d.reasons[-1].message


def test_guard_adds_nothing_when_the_pack_already_blocks_on_it() -> None:
    d = decide(touch={"uses": ["ghost"]})
    assert fired(d) == ["missing-fact-reference"]


def test_an_empty_pack_blocks() -> None:
    pack = dataclasses.replace(load_pack(), rules=())
    d = evaluate(scenario(), pack)
    assert d.verdict is Verdict.BLOCK
    assert "no rules" in d.reasons[0].message


def test_a_guard_rule_weakened_to_soften_does_not_fail_open() -> None:
    rule = """\
  - id: soft-guard
    title: Unknown keys only soften
    source: test
    when: unknown_vocabulary
    verdict: soften
    named: false
    message: "unknown keys"
"""
    pack = parse_pack(_minimal_pack(rule), source="bare.yaml")
    d = evaluate(scenario(facts=[fact("f1", category="user.behavior.shoe_size")]), pack)
    assert d.verdict is Verdict.BLOCK
    assert fired(d) == ["soft-guard", FAIL_CLOSED_GUARD]


def test_unknown_purpose_of_a_recent_touch_blocks() -> None:
    # a typo in the history would silently lower the frequency count
    recent = [{"channel": "email", "purpose": "marketng.communications", "at": "2026-11-20"}]
    d = decide(recent_touches=recent)
    assert d.verdict is Verdict.BLOCK
    assert "unknown-vocabulary" in fired(d)
    assert "marketng.communications" in d.reasons[0].message


@pytest.mark.parametrize(("purpose", "channel", "to"), [
    ("marketing.communications.email", "sms", "mobile"),   # an email opt-in is not an SMS opt-in
    ("marketing.communications.sms", "phone", "mobile"),   # nor a licence for calls
    ("marketing.communications.sms", "email", "mail"),
    ("marketing.communications.push", "app", None),
])
def test_a_purpose_for_another_channel_blocks(purpose: str, channel: str, to: str | None) -> None:
    consents = [{"purpose": purpose, "status": "granted", "source": "form"}]  # no channel: every channel
    d = decide(consents=consents, touch={"purpose": purpose, "channel": channel, "to": to})
    assert d.verdict is Verdict.BLOCK
    assert "purpose-off-channel" in fired(d)


def test_a_purpose_for_its_own_channel_is_fine() -> None:
    d = decide(touch={"purpose": "marketing.communications.email"})
    assert d.verdict is Verdict.ALLOW


def test_a_postal_refusal_covers_postcards() -> None:
    consents = [{"purpose": "marketing.communications", "status": "granted", "source": "form"},
                {"purpose": "marketing.communications.postal", "channel": "postal_mail",
                 "status": "withdrawn", "source": "portal"}]
    touch = {"channel": "postcard", "to": "home", "purpose": "marketing.communications"}
    d = decide(consents=consents, touch=touch)
    assert "consent-refused" in fired(d)


def test_a_postal_grant_does_not_cover_postcards() -> None:
    consents = [{"purpose": "marketing.communications", "channel": "postal_mail", "status": "granted",
                 "source": "form"}]
    touch = {"channel": "postcard", "to": "home", "purpose": "marketing.communications"}
    assert "marketing-needs-opt-in" in fired(decide(consents=consents, touch=touch))


def _share(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"kind": "share", "channel": "partner_export", "to": None,
                               "purpose": "third_party_sharing", "depth": "segment"}
    base.update(kw)
    return base


@pytest.mark.parametrize("gpc_purpose", ["marketing", "marketing.advertising", "personalize"])
def test_a_gpc_signal_refuses_third_party_sharing_whatever_its_purpose(gpc_purpose: str) -> None:
    consents = [{"purpose": "third_party_sharing", "status": "granted", "source": "form"},
                {"purpose": gpc_purpose, "status": "granted", "source": "gpc"}]
    d = decide(consents=consents, touch=_share())
    assert d.verdict is Verdict.BLOCK
    assert "individual-share-needs-consent" in fired(d)
    # a partner sender gets no data either
    assert "partner-collected-data" in fired(decide(consents=consents, touch={"sender": "partner:paytm"}))
    # and a sale-like use (third-party advertising) is refused outright
    ad = {"purpose": "marketing.advertising.third_party.targeted", "kind": "recommendation",
          "channel": "web", "to": None}
    assert "consent-refused" in fired(decide(consents=consents, touch=ad))


def test_without_gpc_the_share_with_consent_is_allowed() -> None:
    consents = [{"purpose": "third_party_sharing", "status": "granted", "source": "form"}]
    assert decide(consents=consents, touch=_share()).verdict is Verdict.ALLOW


# --------------------------------------------------------------------------- seed coverage


def _chat() -> dict[str, object]:
    return fact("c1", kind="attribute", category="user.content.private", source="chat", context="support",
                label="Mentioned a divorce")


@pytest.mark.parametrize("kind", ["offer", "service", "advisor_prompt"])
def test_marketing_never_uses_a_support_disclosure_even_on_request(kind: str) -> None:
    # seed 002: a customer_request trigger is the customer's conversation, not a licence to market
    touch = {"kind": kind, "uses": ["c1"], "trigger": "customer_request",
             "purpose": "marketing.communications.email"}
    d = decide(facts=[_chat()], touch=touch)
    assert "out-of-context-use" in fired(d)
    assert d.verdict is Verdict.BLOCK


def test_advisor_prompt_in_a_sales_call_does_not_see_support_chat() -> None:
    touch = {"kind": "advisor_prompt", "channel": "advisor", "to": None,
             "purpose": "marketing.communications", "uses": ["c1"], "shows": ["c1"],
             "trigger": "customer_request"}
    assert "out-of-context-use" in fired(decide(facts=[_chat()], touch=touch))


def test_closed_customer_gets_no_marketing_dressed_as_service() -> None:
    touch = {"kind": "service", "purpose": "marketing.communications.email"}
    d = decide(customer={"openness": "closed"}, touch=touch)
    assert "closed-transactional-only" in fired(d)
    assert d.verdict is Verdict.BLOCK


def test_closed_customer_gets_a_plain_service_message() -> None:
    touch = {"kind": "service", "purpose": "essential.service.operations"}
    assert decide(customer={"openness": "closed"}, touch=touch).verdict is Verdict.ALLOW


def test_openness_cap_applies_to_marketing_dressed_as_survey() -> None:
    touch = {"kind": "survey", "purpose": "marketing.communications.email", "depth": "history",
             "shows": ["f1"]}
    d = decide(customer={"openness": "reserved"}, touch=touch)
    assert "openness-depth-cap" in fired(d)
    assert d.max_depth is Depth.CATEGORY


@pytest.mark.parametrize("touch", [
    {"sender": "partner:paytm", "uses": [], "named": True},          # the name goes to the partner
    {"sender": "partner:paytm", "uses": [], "depth": "none"},        # the email address goes to it
])
def test_partner_sender_reaching_our_customer_needs_share_consent(touch: dict[str, object]) -> None:
    d = decide(touch=touch)
    assert "partner-collected-data" in fired(d)
    assert d.verdict is Verdict.BLOCK


def test_partner_banner_on_our_site_with_no_data_is_fine() -> None:
    touch: dict[str, object] = {
             "sender": "partner:brand", "uses": [], "channel": "web", "to": None, "kind": "recommendation",
             "purpose": "marketing.advertising.first_party.contextual", "depth": "none"}
    consents = [{"purpose": "marketing", "status": "granted", "source": "form"}]
    assert decide(touch=touch, consents=consents).verdict is Verdict.ALLOW


def test_a_broad_declared_category_does_not_unlock_a_specific_inference() -> None:
    # declaring "I have an allergy" (filed under user.health_and_medical) is not declaring a pregnancy
    allergy = fact("d1", kind="attribute", category="user.health_and_medical", origin="declared",
                   source="web", context="signup", label="Allergy")
    pregnancy = fact("p1", kind="inference", category="user.health_and_medical.reproductive",
                     origin="inferred", source="loyalty", context="model", label="Pregnancy predicted")
    d = decide(facts=[allergy, pregnancy], touch={"uses": ["p1"]})
    assert "inferred-sensitive-without-opt-in" in fired(d)
    shown = decide(facts=[allergy], touch={"shows_implies": ["user.health_and_medical.reproductive"]})
    assert "shown-items-reveal-inference" in fired(shown)


def test_a_specific_declaration_covers_a_broader_inference_only_when_it_names_it() -> None:
    # issue 7 §2: a declaration covers what it names; an inference filed under the coarse key is
    # covered when its label names the same thing, not whatever it says
    declared = fact("d1", kind="attribute", category="user.health_and_medical.reproductive",
                    origin="declared", source="web", context="signup", label="Pregnant, due in May")
    same = fact("p1", kind="inference", category="user.health_and_medical", origin="inferred",
                source="loyalty", context="model", label="pregnant,  due in may")
    other = fact("p1", kind="inference", category="user.health_and_medical", origin="inferred",
                 source="loyalty", context="model", label="Depression")
    assert decide(facts=[declared, same], touch={"uses": ["p1"]}).verdict is Verdict.ALLOW
    d = decide(facts=[declared, other], touch={"uses": ["p1"]})
    assert fired(d) == ["inferred-sensitive-without-opt-in"]


def test_shows_implies_alone_blocks_on_a_household_channel() -> None:
    cps = [{"id": "mail", "kind": "email", "shared_with": "household"}]
    consents = [*BASE["consents"],
                {"purpose": "personalize.profiling", "status": "granted", "source": "portal"}]
    d = decide(contact_points=cps, consents=consents, facts=[],
               touch={"uses": [], "shows_implies": ["user.demographic.household.baby"]})
    assert fired(d) == ["sensitive-on-shared-channel"]


def test_aggregate_share_without_group_size_blocks() -> None:
    assert "aggregate-min-group-size" in fired(decide(touch=_share(granularity="aggregate")))


def test_detailed_history_is_softened_even_for_open_consenting_customers() -> None:
    d = decide(customer={"openness": "open"}, touch={"depth": "detailed_history", "shows": ["f1"]})
    assert d.verdict is Verdict.SOFTEN and d.max_depth is Depth.HISTORY


def test_features_expose_the_new_guard() -> None:
    feats = derive(scenario(touch={"purpose": "marketing.communications.sms"}), load_pack().settings)
    assert feats.values["purpose_off_channel"] is True
    assert feats.keys["purpose_off_channel"] == ("marketing.communications.sms",)


def test_rule_reading_a_guard_feature_but_never_blocking_is_linted() -> None:
    from tactful.policy.lint import pack_warnings

    pack = dataclasses.replace(load_pack(), rules=(Rule(id="x", title="t", source="s",
                               when=Flag("unknown_vocabulary"), verdict=Verdict.SOFTEN, message="m",
                               drop_name=True),))
    assert any("fail-closed guard" in w for w in pack_warnings(pack))


# --------------------------------------------------------------------------- CLI contract


@pytest.mark.parametrize("text", [json.dumps(BASE), yaml.safe_dump(BASE)])
def test_decide_reads_stdin(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    code, out, _ = run_cli(["decide", "-", "--format", "json"])
    assert code == 0, out
    assert json.loads(out)["verdict"] == "allow"


def test_decide_stdin_syntax_error_exits_2_with_position(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("version: 1\ncustomer: [\n"))
    code, out, err = run_cli(["decide", "-"])
    assert code == 2
    assert "<stdin>:" in err + out


def test_decide_json_content_in_a_yaml_named_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps(BASE), encoding="utf-8")
    code, out, _ = run_cli(["decide", str(path), "--format", "json"])
    assert code == 0 and json.loads(out)["verdict"] == "allow"


def test_decide_block_json_has_no_depth_and_no_name(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({**BASE, "consents": [], "touch": {**BASE["touch"], "named": True}}),
                    encoding="utf-8")
    code, out, _ = run_cli(["decide", str(path), "--format", "json"])
    data = json.loads(out)
    assert code == 0
    assert list(data) == ["verdict", "max_depth", "named", "remedies", "reasons", "policy"]
    assert data["verdict"] == "block" and data["max_depth"] == "none" and data["named"] is False


def test_policy_test_recurses_into_subfolders(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    bad = {**BASE, "consents": [], "expect": {"verdict": "allow"}}
    (tmp_path / "sub" / "s.yaml").write_text(yaml.safe_dump(bad), encoding="utf-8")
    code, out, _ = run_cli(["policy", "test", str(tmp_path)])
    assert code == 1
    assert "FAIL  sub/s.yaml" in out


def test_policy_test_with_nothing_to_test_fails(tmp_path: Path) -> None:
    code, out, _ = run_cli(["policy", "test", str(tmp_path)])
    assert code == 1
    assert "no scenario" in out


def test_review_scenarios_named_in_the_docs_exist() -> None:
    root = Path(__file__).parents[1]
    text = (root / "docs" / "default-pack.md").read_text(encoding="utf-8")
    names = re.findall(r"`(review/\d{3}-[a-z0-9-]+\.yaml)`", text)
    assert names
    for name in names:
        assert (root / "tests" / "scenarios" / name).is_file(), name
