"""Messages at the allowed depth (tactful.compose): the reveal of a template is derived from its
variables; the engine's real decisions (default pack) pick the template; blocked touches send nothing;
values from data are cleaned, bounded and escaped; template errors withhold the message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tactful.compose import (
    MAX_BODY_CHARS,
    MAX_LIST_ITEMS,
    MAX_VALUE_CHARS,
    Message,
    Messages,
    TemplateSet,
    Withheld,
    compose,
    demo_messages,
    load_messages,
    preview,
)
from tactful.errors import CampaignError
from tactful.model import Decision
from tactful.policy.testing import decide, fact, fired
from tactful.vocab import Channel, Depth, Verdict

SHOES = ["Trail running shoes", "Running socks (3 pairs)", "Sports drink"]


def _msgs() -> Messages:
    return demo_messages()


def _data(**over: Any) -> Any:
    base: dict[str, Any] = {"first_name": "Jane", "last_name": "Doe", "segment": "shoppers near Main Street",
                            "popular": ["Bananas", "Fresh bread"], "categories": ["running gear", "snacks"],
                            "items": SHOES, "history": ["Road running shoes"]}
    base.update(over)
    return _msgs().data(**base)


def _compose(decision: Decision, *, channel: Channel = Channel.EMAIL, proposed: Depth = Depth.ITEM,
             sender_reveals: bool = False, messages: Messages | None = None,
             **data: Any) -> Message | Withheld:
    m = messages or _msgs()
    return compose(m.templates, decision, _data(**data), channel=channel, proposed_depth=proposed,
                   sender=m.shop, neutral_sender=m.neutral_sender, sender_reveals=sender_reveals)


def _load(templates: dict[str, Any], html: bool = False) -> TemplateSet:
    return TemplateSet.load(templates, html=html, source="test.yaml")


# --------------------------------------------------------------------------- reveal is derived


def test_reveal_is_derived_from_the_variables_used() -> None:
    ts = _load({"none": "Hello from {{ shop }}", "item": "{{ greeting }}: {{ categories|join(',') }}",
                "history": {"subject": "Hi {{ first_name }}", "body": "You bought {{ last_purchase }}"}})
    assert ts.templates["none"].reveal.depth is Depth.NONE
    # an item slot whose text only uses categories reveals only category depth
    assert ts.templates["item"].reveal.depth is Depth.CATEGORY
    hist = ts.templates["history"].reveal
    assert (hist.depth, hist.named) == (Depth.HISTORY, True)
    assert hist.variables == ("first_name", "last_purchase")


def test_loop_and_set_variables_are_not_mistaken_for_data() -> None:
    ts = _load({"category": "{% set n = 2 %}{% for c in categories %}{{ loop.index }} {{ c }} {{ n }}"
                            "{% endfor %}"})
    assert ts.templates["category"].reveal.variables == ("categories",)


@pytest.mark.parametrize(("slot", "text", "says"), [
    ("category", "New for you: {{ items|join(', ') }}", "uses items"),
    ("item", "Because you bought {{ last_purchase }}", "uses last_purchase"),
    ("history", "{% for p in purchase_dates %}{{ p }}{% endfor %}", "detailed_history depth"),
    ("ask", "Dear {{ first_name }}, may we ...?", "no name"),
    ("ask", "May we use {{ categories|join(',') }}?", "uses categories"),
])
def test_a_template_that_reveals_more_than_its_slot_is_refused(slot: str, text: str, says: str) -> None:
    with pytest.raises(CampaignError) as info:
        _load({"none": "Hi", slot: text})
    assert f"templates.{slot}" in info.value.message and "test.yaml" in info.value.message
    assert says in info.value.message


def test_the_same_template_in_a_deep_enough_slot_loads() -> None:  # benign twin of the refusals
    ts = _load({"none": "Hi", "item": "New for you: {{ items|join(', ') }}",
                "history": "Because you bought {{ last_purchase }}"})
    assert ts.templates["item"].reveal.depth is Depth.ITEM


@pytest.mark.parametrize(("templates", "says"), [
    ({"none": "Hi {{ loyalty_score }}"}, "unknown template variable(s) loyalty_score"),
    ({"none": "{% include 'other.txt' %}"}, "may not include"),
    ({"none": "{% extends 'base' %}"}, "may not include"),
    ({"none": "{% import 'm' as m %}{{ m.x }}"}, "may not include"),
    ({"none": "Hi\n{{ shop "}, "syntax error on line 2"),
    ({"detailed_history": "x"}, "unknown slot 'detailed_history'"),
    ({"ask": "May we?"}, "at least one depth slot"),
    ({"none": 42}, "expected a body text"),
    ({"none": {"subject": "x"}}, "expected a body text"),
    ([], "must be a mapping"),
])
def test_bad_templates_are_refused_with_the_slot_named(templates: Any, says: str) -> None:
    with pytest.raises(CampaignError) as info:
        TemplateSet.load(templates, html=False, source="test.yaml")
    assert says in info.value.message
    assert "test.yaml" in info.value.message


def test_load_messages_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("shop: S\ntemplates:\n  item: '{{ history }}'\n", encoding="utf-8")
    with pytest.raises(CampaignError) as info:
        load_messages(bad)
    assert str(bad) in info.value.message and "templates.item" in info.value.message
    with pytest.raises(CampaignError, match="cannot read campaign"):
        load_messages(tmp_path / "missing.yaml")
    bad.write_text("shop: [\n", encoding="utf-8")
    with pytest.raises(CampaignError, match="not valid YAML"):
        load_messages(bad)
    bad.write_text("templates: {none: x}\n", encoding="utf-8")
    with pytest.raises(CampaignError, match="missing 'shop'"):
        load_messages(bad)


# --------------------------------------------------------------------------- the decision picks the template


def test_allow_sends_the_proposed_depth() -> None:
    d = decide()  # balanced customer, item depth by private email: allowed
    assert d.verdict is Verdict.ALLOW
    msg = _compose(d)
    assert isinstance(msg, Message)
    assert (msg.slot, msg.depth, msg.kind) == ("item", Depth.ITEM, "offer")
    assert all(item in msg.body for item in SHOES)
    assert msg.body.startswith("Hello,")  # not named: the touch did not propose a name
    assert msg.sender == "Corner Grocery"


def test_allow_never_goes_deeper_than_proposed() -> None:
    d = decide(touch={"depth": "category"})
    assert d.verdict is Verdict.ALLOW
    msg = _compose(d, proposed=Depth.CATEGORY)
    assert isinstance(msg, Message) and msg.slot == "category"
    assert "running gear" in msg.body and SHOES[0] not in msg.body


def test_soften_sends_the_toned_down_message() -> None:
    # seed 003/004: a reserved customer gets "new in running gear", not "because you bought the shoes"
    d = decide(customer={"openness": "reserved"}, touch={"depth": "history"})
    assert d.verdict is Verdict.SOFTEN and d.max_depth is Depth.CATEGORY
    msg = _compose(d, proposed=Depth.HISTORY)
    assert isinstance(msg, Message)
    assert msg.slot == "category" and msg.depth is Depth.CATEGORY
    assert "New this month in running gear" in msg.body
    assert "Road running shoes" not in msg.body and "bought" not in msg.body.lower()
    # its benign twin: an open customer may get the warm introduction
    open_d = decide(customer={"openness": "open"}, touch={"depth": "history"})
    assert open_d.verdict is Verdict.ALLOW
    warm = _compose(open_d, proposed=Depth.HISTORY)
    assert isinstance(warm, Message) and warm.slot == "history"
    assert warm.subject == "Because you bought Road running shoes"


def test_a_name_goes_in_only_when_the_decision_allows_it() -> None:
    named = decide(customer={"openness": "open"}, touch={"named": True})
    assert named.named
    msg = _compose(named)
    assert isinstance(msg, Message) and msg.body.startswith("Dear Jane,") and msg.named is False
    # seed 001: 41% don't want "Welcome, Jane" on the web: the decision drops the name
    web = decide(touch={"channel": "web", "to": None, "named": True, "purpose": "marketing.communications"})
    assert "web-greeting-by-name" in fired(web) and not web.named
    msg = _compose(web, channel=Channel.WEB)
    assert isinstance(msg, Message) and msg.body.startswith("Hello,") and "Jane" not in msg.body


def test_a_template_using_the_name_is_skipped_when_naming_is_not_allowed() -> None:
    ts = _load({"none": "Hello", "category": "New in {{ category }}",
                "item": "{{ first_name }}, for you: {{ items|join(', ') }}"})
    m = Messages(shop="S", templates=ts)
    unnamed = decide()
    msg = _compose(unnamed, messages=m)
    assert isinstance(msg, Message) and msg.slot == "category" and "Jane" not in msg.body
    named = decide(customer={"openness": "open"}, touch={"named": True})
    msg = _compose(named, messages=m)
    assert isinstance(msg, Message) and msg.slot == "item" and msg.named and msg.body.startswith("Jane,")


def test_block_sends_nothing_and_says_why() -> None:
    d = decide(consents=[])  # marketing without an opt-in (seed 000)
    assert d.verdict is Verdict.BLOCK
    out = _compose(d)
    assert isinstance(out, Withheld) and out.code == "blocked"
    assert "marketing-needs-opt-in" in out.rules
    assert out.reason  # the plain-language reason travels with it


def test_ask_sends_a_permission_request_where_the_channel_allows() -> None:
    birthday = {"facts": [fact("dob", kind="attribute", category="user.demographic.date_of_birth",
                                origin="declared", context="signup")],
                "touch": {"uses": ["dob"], "shows": ["dob"], "depth": "category", "named": True}}
    d = decide(customer={"openness": "open"}, **birthday)
    assert d.verdict is Verdict.ASK
    msg = _compose(d, proposed=Depth.CATEGORY)
    assert isinstance(msg, Message) and msg.kind == "permission_request" and msg.slot == "ask"
    assert "May we use your purchases" in msg.body and "Jane" not in msg.body
    # a postcard cannot carry the question: nothing is sent, and the reason says so
    out = _compose(d, channel=Channel.POSTCARD, proposed=Depth.CATEGORY)
    assert isinstance(out, Withheld) and out.code == "ask-not-on-channel"
    assert "birthday-needs-expectation" in out.rules
    # a campaign without an ask template sends nothing either
    no_ask = Messages(shop="S", templates=_load({"none": "Hi"}))
    out = _compose(d, messages=no_ask)
    assert isinstance(out, Withheld) and out.code == "no-template"


def test_a_revealing_sender_softened_goes_under_the_neutral_sender() -> None:
    # seed 001: the adult shop's mail to a household address: a sealed letter from a neutral sender
    d = decide(touch={"channel": "postal_mail", "to": "home", "purpose": "marketing.communications.postal",
                      "sender_implies": ["user.sexual_life"], "depth": "item"})
    assert d.verdict is Verdict.SOFTEN and "sensitive-sender-discreet" in fired(d)
    msg = _compose(d, channel=Channel.POSTAL_MAIL, sender_reveals=True)
    assert isinstance(msg, Message)
    assert msg.sender == "CG Services" and msg.depth.rank <= Depth.SEGMENT.rank and not msg.named
    assert "CG Services" in msg.body
    # without a neutral sender to hide behind, nothing goes out
    bare = Messages(shop="S", templates=_msgs().templates)
    out = _compose(d, channel=Channel.POSTAL_MAIL, sender_reveals=True, messages=bare)
    assert isinstance(out, Withheld) and "neutral sender" in out.reason
    # benign twin: a sender that reveals nothing keeps its name on a softened touch
    plain = decide(customer={"openness": "reserved"})
    msg = _compose(plain)
    assert isinstance(msg, Message) and msg.sender == "Corner Grocery"


def test_the_postcard_itself_is_blocked() -> None:
    d = decide(touch={"channel": "postcard", "to": "home", "purpose": "marketing.communications.postal",
                      "sender_implies": ["user.sexual_life"], "named": True})
    out = _compose(d, channel=Channel.POSTCARD, sender_reveals=True)
    assert isinstance(out, Withheld) and out.code == "blocked"
    assert "sensitive-sender-on-shared-channel" in out.rules


def test_no_template_fits() -> None:
    ts = _load({"item": "{{ items|join(', ') }}"})
    d = decide(customer={"openness": "reserved"})
    out = _compose(d, messages=Messages(shop="S", templates=ts))
    assert isinstance(out, Withheld) and out.code == "no-template" and "category depth" in out.reason


def test_preview_renders_what_was_proposed() -> None:
    m = _msgs()
    msg = preview(m.templates, _data(), channel=Channel.EMAIL, depth=Depth.HISTORY, named=True, sender=m.shop)
    assert isinstance(msg, Message) and msg.slot == "history" and msg.body.startswith("Dear Jane,")


# --------------------------------------------------------------------------- data is escaped and bounded


def test_values_from_data_are_escaped_on_html_channels() -> None:
    ts = _load({"none": "Hi", "item": "<ul>{% for i in items %}<li>{{ i }}</li>{% endfor %}</ul>"}, html=True)
    m = Messages(shop="S", templates=ts)
    evil = '<script>alert("x")</script>'
    msg = _compose(decide(), messages=m, items=[evil])
    assert isinstance(msg, Message) and msg.html
    assert "<script>" not in msg.body and "&lt;script&gt;" in msg.body and msg.body.startswith("<ul><li>")
    # the same template on a letter is plain text: nothing to escape, nothing escaped
    letter = decide(touch={"channel": "postal_mail", "to": "home",
                           "purpose": "marketing.communications.postal"})
    msg = _compose(letter, channel=Channel.POSTAL_MAIL, messages=m, items=["Fish & chips"])
    assert isinstance(msg, Message) and not msg.html and "Fish & chips" in msg.body


def test_values_from_data_are_cleaned_and_bounded() -> None:
    long_name = "x" * 500
    items = [f"item {n}\x1b[31m\u202e" for n in range(25)]
    msg = _compose(decide(), items=[long_name, *items])
    assert isinstance(msg, Message)
    assert "\x1b" not in msg.body and "\u202e" not in msg.body
    lines = [ln for ln in msg.body.splitlines() if ln.strip().startswith("- ")]
    assert len(lines) == MAX_LIST_ITEMS
    assert max(len(ln.strip()) for ln in lines) <= MAX_VALUE_CHARS + 2
    assert lines[0].strip().endswith("…")


# --------------------------------------------------------------------------- errors fail closed


@pytest.mark.parametrize(("body", "says"), [
    ("{{ items[40] }}", "UndefinedError"),
    ("{{ 1 // 0 }}", "ZeroDivisionError"),
    ("{{ items.__class__.__mro__ }}", "template failed"),
    ("{{ ''.__class__.__subclasses__() }}", "template failed"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}xx{% endfor %}{% endfor %}",
     f"longer than {MAX_BODY_CHARS}"),
])
def test_template_errors_withhold_the_message(body: str, says: str) -> None:
    ts = _load({"item": body})
    out = _compose(decide(), messages=Messages(shop="S", templates=ts))
    assert isinstance(out, Withheld) and out.code == "template-error"
    assert says in out.reason


def test_a_customer_without_the_data_a_template_needs_gets_nothing() -> None:
    out = _compose(decide(), items=[])
    assert isinstance(out, Withheld) and out.code == "template-error" and "needs items" in out.reason
    # benign twin: with the items, the same decision sends
    assert isinstance(_compose(decide()), Message)


def test_a_sandboxed_template_cannot_change_its_data() -> None:
    ts = _load({"item": "{% set _ = items.append('x') %}{{ items|length }}"})
    out = _compose(decide(), messages=Messages(shop="S", templates=ts), items=["a"])
    assert isinstance(out, Withheld) and out.code == "template-error"
