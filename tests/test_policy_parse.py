"""The policy language: every construct parses into the typed tree; errors name file:line:col, the
offending value and what was expected; nodes validate themselves; packs extend and override."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from tactful.errors import PolicyError
from tactful.policy import evaluate, load_pack, parse_pack
from tactful.policy.evaluate import compile_condition
from tactful.policy.nodes import (
    All,
    AnyOf,
    Compare,
    Cond,
    FeatureRef,
    Flag,
    Literal,
    Not,
    Op,
    Rule,
    RuleTreeError,
    SettingRef,
    UnsupportedNode,
)
from tactful.policy.testing import decide, fired, scenario
from tactful.vocab import Channel, Depth, Openness, Verdict


def own(rules: str, *, extra: str = "") -> str:
    """A pack extending the default with the given rules block (YAML, indented by 2)."""
    body = textwrap.indent(textwrap.dedent(rules), "  ")
    return f"name: shop\nversion: 2\nextends: default\n{extra}rules:\n{body}"


def parse(text: str, tmp_path: Path | None = None) -> object:
    return parse_pack(text, source="shop.yaml", base_dir=tmp_path)


def error(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        parse(text)
    return info.value


RULE = """\
- id: r
  title: A rule
  source: a test
  verdict: block
  message: m {facts}
  when: {when}
"""


def cond(when: str) -> Cond:
    pack = parse(own(RULE.replace("{when}", when)))
    return pack.rule("r").when  # type: ignore[attr-defined, no-any-return]


# --------------------------------------------------------------------------- constructs


def test_default_pack_loads_and_is_immutable() -> None:
    pack = load_pack()
    assert pack.name == "default" and pack.version == "1"
    assert len(pack.rules) >= 24
    assert pack.settings.default_openness is Openness.BALANCED
    with pytest.raises(dataclasses.FrozenInstanceError):
        pack.name = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        pack.rules[0].verdict = Verdict.ALLOW  # type: ignore[misc]
    with pytest.raises(TypeError):
        pack.settings.openness_max_depth[Openness.OPEN] = Depth.DETAILED_HISTORY  # type: ignore[index]


def test_flag() -> None:
    assert cond("named") == Flag("named")


def test_all_any_not() -> None:
    c = cond("{all: [named, {any: [touch_is_marketing, {not: consent_granted}]}]}")
    assert c == All((Flag("named"), AnyOf((Flag("touch_is_marketing"), Not(Flag("consent_granted"))))))


@pytest.mark.parametrize("op", ["eq", "ne", "lt", "le", "gt", "ge"])
def test_ordered_comparisons(op: str) -> None:
    assert cond(f"{{depth: {{{op}: item}}}}") == Compare("depth", Op(op), Literal(Depth.ITEM))


def test_shorthands() -> None:
    assert cond("{openness: closed}") == Compare("openness", Op.EQ, Literal(Openness.CLOSED))
    assert cond("{channel: [email, sms]}") == Compare("channel", Op.IN,
                                                      Literal(frozenset({Channel.EMAIL, Channel.SMS})))


def test_in_not_in_setting_and_feature_refs() -> None:
    assert cond("{channel: {not_in: {setting: in_session_channels}}}") == Compare(
        "channel", Op.NOT_IN, SettingRef("in_session_channels"))
    assert cond("{depth: {gt: {feature: openness_depth_cap}}}") == Compare(
        "depth", Op.GT, FeatureRef("openness_depth_cap"))
    assert cond("{group_size: {lt: {setting: min_group_size}}}") == Compare(
        "group_size", Op.LT, SettingRef("min_group_size"))


def test_several_operators_are_anded() -> None:
    c = cond("{group_size: {ge: 1, lt: 5}}")
    assert c == All((Compare("group_size", Op.GE, Literal(1)), Compare("group_size", Op.LT, Literal(5))))


def test_soften_fields() -> None:
    text = own("""\
    - id: r
      title: t
      source: s
      when: named
      verdict: soften
      max_depth: segment
      named: false
      remedy: [one, "two {channel}"]
    """.replace("      verdict: soften", "      verdict: soften\n      message: m"))
    rule = parse(text).rule("r")  # type: ignore[attr-defined]
    assert rule.max_depth is Depth.SEGMENT and rule.drop_name and rule.remedies == ("one", "two {channel}")


# --------------------------------------------------------------------------- errors with positions


def test_unknown_feature_points_at_it() -> None:
    err = error(own(RULE.replace("{when}", "{all: [named, depht]}")))
    assert err.file == "shop.yaml" and (err.line, err.column) == (10, 25)
    assert "unknown feature 'depht'" in str(err)
    assert "did you mean 'depth'" in str(err)


def test_unknown_enum_value_lists_expected_values() -> None:
    err = error(own(RULE.replace("{when}", "{openness: {lt: reservd}}")))
    assert (err.line, err.column) == (10, 27)
    assert "'reservd'" in str(err) and "closed, reserved, balanced, open" in str(err)
    assert str(err).startswith("shop.yaml:10:27: ")


def test_unknown_verdict() -> None:
    err = error(own(RULE.replace("verdict: block", "verdict: forbid").replace("{when}", "named")))
    assert (err.line, err.column) == (8, 14)
    assert "'forbid'" in str(err) and "allow, soften, ask, block" in str(err)


def test_unknown_setting_in_condition_and_in_settings() -> None:
    err = error(own(RULE.replace("{when}", "{group_size: {lt: {setting: min_groupsize}}}")))
    assert "unknown setting 'min_groupsize'" in str(err) and (err.line, err.column) == (10, 39)
    err = error("name: shop\nversion: 1\nextends: default\nsettings:\n  min_group: 5\n")
    assert (err.line, err.column) == (5, 3) and "unknown setting 'min_group'" in str(err)


def test_bad_setting_value() -> None:
    err = error("name: shop\nversion: 1\nextends: default\nsettings:\n  min_group_size: many\n")
    assert (err.line, err.column) == (5, 19) and "'many'" in str(err) and "integer" in str(err)
    err = error("name: s\nversion: 1\nextends: default\nsettings:\n  sensitive_categories: [user.sex]\n")
    assert "unknown data category 'user.sex'" in str(err) and err.line == 5


def test_operator_type_errors() -> None:
    err = error(own(RULE.replace("{when}", "{channel: {lt: email}}")))
    assert "operator 'lt' does not apply to channel" in str(err) and (err.line, err.column) == (10, 22)
    assert "expected one of eq, in, ne, not_in" in str(err)
    err = error(own(RULE.replace("{when}", "depth")))
    assert "not a boolean" in str(err)
    err = error(own(RULE.replace("{when}", "{depth: {gt: {setting: min_group_size}}}")))
    assert "cannot be compared" in str(err)
    err = error(own(RULE.replace("{when}", "{group_size: {lt: ten}}")))
    assert "'ten' is not an integer" in str(err)


def test_unknown_operator_and_keys() -> None:
    err = error(own(RULE.replace("{when}", "{depth: {above: item}}")))
    assert "unknown operator 'above'" in str(err)
    err = error(own(RULE.replace("{when}", "named").replace("title:", "titel:")))
    assert "unknown key 'titel'" in str(err) and (err.line, err.column) == (6, 5)
    err = error("name: s\nversion: 1\nrulez: []\n")
    assert "unknown key 'rulez'" in str(err) and (err.line, err.column) == (3, 1)


def test_missing_rule_field() -> None:
    err = error(own(RULE.replace("  message: m {facts}\n", "").replace("{when}", "named")))
    assert "missing 'message'" in str(err)


def test_message_placeholders_are_checked() -> None:
    err = error(own(RULE.replace("m {facts}", "m {fact}").replace("{when}", "named")))
    assert "unknown placeholder {fact}" in str(err)


def test_yaml_syntax_error_has_position() -> None:
    err = error("name: s\nversion: 1\nrules: [\n  - id: x\n")
    assert err.file == "shop.yaml" and err.line is not None and err.column is not None


def test_allow_rule_is_refused() -> None:
    err = error(own(RULE.replace("verdict: block", "verdict: allow").replace("{when}", "named")))
    assert "never changes a decision" in str(err)


def test_standalone_pack_must_give_every_setting() -> None:
    err = error("name: s\nversion: 1\nsettings:\n  min_group_size: 5\nrules: []\n")
    assert "settings: missing" in str(err) and "default_openness" in str(err)


# --------------------------------------------------------------------------- nodes validate themselves


def test_nodes_validate_when_built() -> None:
    with pytest.raises(RuleTreeError):
        Flag("nope")
    with pytest.raises(RuleTreeError):
        Flag("depth")
    with pytest.raises(RuleTreeError):
        Compare("depth", Op.GT, Literal(Openness.OPEN))
    with pytest.raises(RuleTreeError):
        Compare("named", Op.LT, Literal(True))
    with pytest.raises(RuleTreeError):
        All(())
    with pytest.raises(RuleTreeError):
        SettingRef("frequency_caps")  # a structured setting cannot be read by a condition
    with pytest.raises(RuleTreeError):
        Rule(id="x", title="t", source="s", when=Flag("named"), verdict=Verdict.BLOCK, message="m",
             max_depth=Depth.NONE)
    with pytest.raises(RuleTreeError):
        Rule(id="x", title="t", source="s", when=Flag("named"), verdict=Verdict.SOFTEN, message="m")


def test_unsupported_node_is_a_named_error() -> None:
    class Strange(Cond):
        __slots__ = ()

    with pytest.raises(UnsupportedNode):
        compile_condition(Strange(), load_pack().settings)


# --------------------------------------------------------------------------- extends and override


def test_override_setting_tightens_the_default() -> None:
    pack = parse("name: shop\nversion: 1\nextends: default\nsettings:\n  default_openness: reserved\n")
    s = scenario(customer={"openness": None}, touch={"depth": "item"})
    assert evaluate(s, load_pack()).verdict is Verdict.ALLOW
    d = evaluate(s, pack)  # type: ignore[arg-type]
    assert d.verdict is Verdict.SOFTEN and d.max_depth is Depth.CATEGORY
    assert d.policy.name == "shop" and d.policy.version == "1"
    assert load_pack().settings.default_openness is Openness.BALANCED  # the default is untouched


def test_add_replace_disable() -> None:
    text = own("""\
    - id: no-sms-on-sunday
      title: New rule
      source: shop policy
      when: {channel: sms}
      verdict: ask
      message: ask first
    - id: web-greeting-by-name
      replace: true
      title: Never greet by name on the web
      source: shop policy
      when: {all: [named, {channel: [web, app]}]}
      verdict: soften
      named: false
      message: no names
    """, extra="disable: [realtime-browse-trigger]\n")
    pack = parse(text)
    ids = [r.id for r in pack.rules]  # type: ignore[attr-defined]
    assert "realtime-browse-trigger" not in ids and ids[-1] == "no-sms-on-sunday"
    default_ids = [r.id for r in load_pack().rules]
    assert ids.index("web-greeting-by-name") == default_ids.index("web-greeting-by-name")
    web = {"channel": "web", "to": None, "kind": "greeting", "purpose": "personalize.content", "named": True}
    d = evaluate(scenario(customer={"openness": "open"}, touch=web), pack)  # type: ignore[arg-type]
    assert d.named is False and [r.message for r in d.reasons] == ["no names"]
    d = evaluate(scenario(touch={"trigger": "realtime_browse"}), pack)  # type: ignore[arg-type]
    assert d.verdict is Verdict.ALLOW
    assert fired(decide(touch={"trigger": "realtime_browse"})) == ["realtime-browse-trigger"]


def test_redefining_without_replace_is_an_error() -> None:
    err = error(own(RULE.replace("id: r", "id: deceased-customer").replace("{when}", "named")))
    assert "already exists in default" in str(err) and "replace: true" in str(err)
    assert (err.line, err.column) == (5, 9)


def test_replace_or_disable_unknown_rule() -> None:
    err = error(own(RULE.replace("id: r", "id: r\n  replace: true").replace("{when}", "named")))
    assert "no rule 'r' to replace" in str(err)
    err = error("name: s\nversion: 1\nextends: default\ndisable: [deceased-customr]\n")
    assert "no rule 'deceased-customr'" in str(err) and "did you mean 'deceased-customer'" in str(err)


def test_locked_rules_cannot_be_disabled_or_replaced() -> None:
    err = error("name: s\nversion: 1\nextends: default\ndisable: [unknown-vocabulary]\n")
    assert "locked" in str(err)
    err = error(own(RULE.replace("id: r", "id: missing-contact-point\n  replace: true")
                    .replace("{when}", "named")))
    assert "locked" in str(err)


def test_extends_a_file_relative_to_the_pack(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("name: base\nversion: 1\nextends: default\n"
                                        "settings:\n  min_group_size: 50\n")
    (tmp_path / "shop.yaml").write_text("name: shop\nversion: 1\nextends: base.yaml\n"
                                        "settings:\n  survey_max: 2\n")
    pack = load_pack(tmp_path / "shop.yaml")
    assert pack.settings.min_group_size == 50 and pack.settings.survey_max == 2


def test_extends_cycle_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: a\nversion: 1\nextends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("name: b\nversion: 1\nextends: a.yaml\n")
    with pytest.raises(PolicyError, match="cycle"):
        load_pack(tmp_path / "a.yaml")


# --------------------------------------------------------------------------- guards cannot be disarmed


def test_an_extending_pack_cannot_empty_the_settings_a_guard_reads() -> None:
    # channel_purposes: {} would keep the locked purpose-off-channel rule and make it never fire
    err = error("name: shop\nversion: 1\nextends: default\nsettings:\n  channel_purposes: {}\n")
    assert err.file == "shop.yaml" and err.line == 5 and err.column == 21
    assert "setting channel_purposes: the locked rule purpose-off-channel" in err.message
    assert "email: marketing.communications.email" in err.message


def test_an_extending_pack_cannot_change_an_inherited_channel_purpose() -> None:
    err = error("name: shop\nversion: 1\nextends: default\nsettings:\n  channel_purposes:\n"
                "    email: marketing.communications.email\n    sms: marketing.communications\n"
                "    postal_mail: marketing.communications.postal\n"
                "    postcard: marketing.communications.postal\n    push: marketing.communications.push\n")
    assert "(sms: marketing.communications.sms)" in err.message


def test_the_guard_still_blocks_under_a_pack_that_adds_channel_purposes(tmp_path: Path) -> None:
    text = ("name: shop\nversion: 1\nextends: default\nsettings:\n  channel_purposes:\n"
            "    email: marketing.communications.email\n    sms: marketing.communications.sms\n"
            "    postal_mail: marketing.communications.postal\n"
            "    postcard: marketing.communications.postal\n    push: marketing.communications.push\n"
            "    app: marketing.communications.push\n")
    pack = parse_pack(text, source="shop.yaml")
    sms_with_email_purpose = scenario(
        consents=[{"purpose": "marketing.communications.email", "status": "granted", "source": "form",
                   "at": "2025-01-01"}],
        touch={"channel": "sms", "to": "mobile", "purpose": "marketing.communications.email"})
    assert fired(evaluate(sms_with_email_purpose, pack)) == ["purpose-off-channel"]


# --------------------------------------------------------------------------- lint: weakened consent


def _lint(tmp_path: Path, text: str) -> list[str]:
    from tactful.policy.lint import lint_pack

    path = tmp_path / "shop.yaml"
    path.write_text(text, encoding="utf-8")
    return lint_pack(path)


def test_lint_warns_when_a_pack_disables_or_softens_consent_rules(tmp_path: Path) -> None:
    warnings = _lint(tmp_path, own("""\
        - id: consent-refused
          replace: true
          title: Refusals only ask
          source: shop
          when: consent_refused
          verdict: ask
          message: m
          remedy: r
        - id: individual-share-needs-consent
          replace: true
          title: Shares need consent only by SMS
          source: shop
          when: {all: [is_partner_share, {channel: sms}, {not: share_consent_granted}]}
          verdict: block
          message: m
          remedy: r
        """, extra="disable: [marketing-needs-opt-in, survey-frequency-cap]\n"))
    assert warnings == [
        "rule consent-refused: replaces a consent rule with a weaker verdict (block -> ask)",
        "disables the consent rule marketing-needs-opt-in (Marketing is opt-in, per channel)",
        "rule individual-share-needs-consent: replaces a consent rule with another condition; make sure "
        "it blocks at least what the inherited rule blocked",
    ]


def test_lint_warns_when_settings_weaken_consent(tmp_path: Path) -> None:
    warnings = _lint(tmp_path, "name: shop\nversion: 1\nextends: default\nsettings:\n"
                     "  marketing_purposes: [marketing.communications]\n"
                     "  marketing_kinds: []\n"
                     "  gpc_refuses: [third_party_sharing]\n"
                     "  share_consent_purposes: [third_party_sharing, personalize]\n"
                     "  profiling_opt_in_purposes: [personalize]\n"
                     "  transactional_kinds: [service, survey, reminder]\n"
                     "  min_group_size: 3\n"
                     "  promotional_kinds: [greeting]\n"
                     "  outbound_channels: [email, sms, postal_mail, postcard, push]\n"
                     "  transactional_purposes: [essential, marketing.communications.email]\n"
                     "  in_session_channels: [web, app, email]\n"
                     "  never_use_categories: [user.authorization.credentials]\n"
                     "  sensitive_categories: [user.biometric]\n"
                     "  frequency_caps:\n"
                     "    - {channels: [postal_mail, postcard], max: 1, days: 14}\n"
                     "    - {channels: [email], max: 3, days: 7}\n"
                     "    - {channels: [sms], max: 2, days: 60}\n"
                     "    - {channels: [push], max: 4, days: 7}\n")
    text = "\n".join(warnings)
    for expected in ("marketing_purposes drops marketing:", "marketing_kinds drops offer:",
                     "gpc_refuses drops marketing.advertising.third_party:",
                     "share_consent_purposes adds personalize:",
                     "profiling_opt_in_purposes adds personalize:",
                     "transactional_kinds adds reminder:",
                     "sensitive_categories drops user.health_and_medical,",
                     "frequency_caps: postal_mail allows 1 in 14 days (was 1 in 28 days)",
                     "frequency_caps: postcard allows 1 in 14 days",
                     "frequency_caps: push allows 4 in 7 days",
                     "min_group_size lowers the smallest aggregate from 10 to 3",
                     "promotional_kinds drops recommendation, reminder:",
                     "outbound_channels drops phone:",
                     "transactional_purposes adds marketing.communications.email:",
                     "in_session_channels adds email:",
                     "never_use_categories drops user.government_id, user.authorization:"):
        assert expected in text, (expected, warnings)
    assert "email allows" not in text and "sms allows" not in text  # same or stricter
    assert len(warnings) == 16, warnings


def test_lint_is_quiet_for_a_stricter_pack(tmp_path: Path) -> None:
    assert _lint(tmp_path, "name: shop\nversion: 1\nextends: default\nsettings:\n"
                 "  marketing_purposes: [marketing, personalize.content.profiled]\n"
                 "  min_group_size: 50\n"
                 "  frequency_caps:\n    - {channels: [postal_mail, postcard], max: 1, days: 56}\n"
                 "    - {channels: [email], max: 1, days: 7}\n    - {channels: [sms], max: 1, days: 30}\n"
                 "    - {channels: [push], max: 3, days: 7}\n    - {channels: [phone], max: 1, days: 90}\n"
                 "disable: [web-greeting-by-name]\n") == []


def test_lint_warns_when_a_root_pack_reads_no_consent(tmp_path: Path) -> None:
    default = (Path(__file__).parents[1] / "src/tactful/policy/packs/default.yaml").read_text(
        encoding="utf-8")
    head = default.split("\nrules:\n")[0].replace("name: default", "name: mine")
    text = head + ("\nrules:\n  - {id: dead, title: t, source: s, when: customer_deceased, verdict: block, "
                   "message: m, remedy: r}\n")
    assert _lint(tmp_path, text) == [
        "no rule reads the customer's consent (consent_granted, consent_refused, profiling_opt_in, "
        "share_consent_granted): opt-ins and refusals are not checked"]


@pytest.mark.parametrize(("setting", "value", "maximum"), [
    ("survey_window_days", "100000000", 36500),   # now minus that many days is before year 1
    ("stale_contact_days", "36501", 36500),
    ("min_group_size", "10000000000000", 1_000_000),
])
def test_integer_settings_are_bounded(setting: str, value: str, maximum: int) -> None:
    err = error(f"name: shop\nversion: 1\nextends: default\nsettings:\n  {setting}: {value}\n")
    assert err.line == 5 and f"setting {setting}: {value} is more than {maximum}" in err.message


def test_frequency_cap_windows_are_bounded() -> None:
    err = error("name: shop\nversion: 1\nextends: default\nsettings:\n  frequency_caps:\n"
                "    - {channels: [email], max: 3, days: 1000000}\n")
    assert "frequency_caps[0].days: 1000000 is more than 36500" in err.message
    assert parse("name: shop\nversion: 1\nextends: default\nsettings:\n  frequency_caps:\n"
                 "    - {channels: [email], max: 3, days: 36500}\n") is not None
