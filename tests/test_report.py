"""The run report, fed with real decisions: every scenario of tests/scenarios decided by the default
pack and composed with the demo campaign's templates. Opened in a real Chromium (Debian's
/usr/bin/chromium through Playwright), offline: it loads, the charts render, no console errors."""

from __future__ import annotations

import io
import stat
from collections import Counter
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest
import yaml

from tactful.compose import Message, MessageData, Messages, Withheld, compose, demo_messages, preview
from tactful.errors import DeliveryError
from tactful.model import Scenario, parse_scenario
from tactful.policy import evaluate, load_pack
from tactful.report import VERDICT_WORDS, ReportRow, RunInfo, build, rule_titles, write
from tactful.vocab import Depth, Verdict

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.yaml"))
# The seed personas of the sample world, each played by the scenario that tells its story.
PERSONAS = {
    "001-adult-shop-postcard-home.yaml": "The adult-shop postcard",
    "004-household-email-pregnancy-offer-to-father.yaml": "The teenager and the family email",
    "000-partner-payment-data-sms.yaml": "The diner and the point-of-sale vendor",
    "004-birthday-without-expectation.yaml": "The birthday given for account security",
    "004-deceased-customer.yaml": "The deceased customer",
    "004-detailed-history.yaml": "The shoe buyer",
    "002-aisle-seat-announced.yaml": "The aisle-seat preference",
    "002-support-chat-disclosure-in-marketing-email.yaml": "The support-chat disclosure",
}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
INFO = RunInfo(run_id="demo-20261122T100000Z-abc123", campaign="demo", period="2026-11",
               policy_name="default", policy_version="1", started_at=datetime(2026, 11, 22, 10, tzinfo=UTC),
               swaps=2, delivery={"sent": 30, "bounced": 1})


def _scenario(path: Path) -> Scenario:
    return parse_scenario(yaml.safe_load(path.read_text(encoding="utf-8")), source=str(path))


def _data(sc: Scenario, customer_id: str | None = None) -> MessageData:
    labels = {f.id: f.label or f.category for f in sc.facts}
    shown = [labels[i] for i in sc.touch.shows if i in labels] or ["Sourdough bread", "Oat milk"]
    used = [labels[i] for i in sc.touch.uses if i in labels] or ["Rye crackers"]
    return _messages().data(first_name="Alex", segment="shoppers near Main Street",
                                popular=["Bananas", "Fresh bread"], categories=["bakery", "dairy"],
                                items=shown, history=used)


@cache
def _messages() -> Messages:
    return demo_messages()


def _row(path: Path, customer_id: str | None = None) -> ReportRow:
    sc = _scenario(path)
    m = _messages()
    decision = evaluate(sc, load_pack())
    assert decision.reasons == () or all(r.rule != "evaluation-error" for r in decision.reasons)
    data = _data(sc)
    final = compose(m.templates, decision, data, channel=sc.touch.channel, proposed_depth=sc.touch.depth,
                    sender=m.shop, neutral_sender=m.neutral_sender,
                    sender_reveals=bool(sc.touch.sender_implies))
    proposed = preview(m.templates, data, channel=sc.touch.channel, depth=sc.touch.depth,
                       named=sc.touch.named, sender=m.shop)
    return ReportRow(customer_id=customer_id or sc.customer.id, channel=sc.touch.channel.value,
                     proposed_depth=sc.touch.depth, decision=decision, proposed=proposed, final=final,
                     persona=PERSONAS.get(path.name))


@cache
def _rows() -> tuple[ReportRow, ...]:
    return tuple(_row(p) for p in SCENARIOS)


@cache
def _page() -> str:
    return build(INFO, _rows(), rule_titles(load_pack()))


def test_totals_are_the_real_decisions() -> None:
    rows = _rows()
    assert len(rows) == len(SCENARIOS) >= 40
    counts = Counter(r.decision.verdict for r in rows)
    assert set(counts) == set(Verdict)  # the library exercises every verdict
    html = _page()
    for verdict, words in VERDICT_WORDS.items():
        assert f'data-verdict="{verdict.value}"><span class="n">{counts[verdict]}</span>{words}' in html
    held = sum(1 for r in rows if isinstance(r.final, Withheld))
    assert f"{held} held back" in html
    assert "2 recommended products were" in html and "30 sent, 1 bounced" in html


def test_every_rule_that_fired_has_a_section_with_examples_side_by_side() -> None:
    titles = rule_titles(load_pack())
    fired = {r.rule for row in _rows() for r in row.decision.reasons}
    assert "sensitive-sender-on-shared-channel" in fired and "openness-depth-cap" in fired
    html = _page()
    for rule in fired:
        assert f'id="rule-{rule}"' in html
        assert titles[rule].replace('"', "&#34;") in html
    # the reserved customer: the history email is sent toned down, both versions shown
    assert '<div class="msg proposed"><h4>Proposed</h4>' in html
    assert "Sent: offer by email" in html


def test_the_seed_personas_come_out_as_their_stories_say() -> None:
    by_persona = {r.persona: r for r in _rows() if r.persona}
    assert len(by_persona) == len(PERSONAS)
    assert isinstance(by_persona["The adult-shop postcard"].final, Withheld)
    assert isinstance(by_persona["The teenager and the family email"].final, Withheld)
    assert isinstance(by_persona["The diner and the point-of-sale vendor"].final, Withheld)
    birthday = by_persona["The birthday given for account security"].final
    assert isinstance(birthday, Message) and birthday.kind == "permission_request"
    shoes = by_persona["The shoe buyer"].final
    assert isinstance(shoes, Message) and shoes.depth is Depth.HISTORY  # warm, not the dated list
    html = _page()
    for title in PERSONAS.values():
        assert title in html


def test_values_from_the_data_are_escaped() -> None:
    rows = [_row(SCENARIOS[0], customer_id='<img src=x onerror="alert(1)">')]
    html = build(INFO, rows, {})
    assert "<img src=x" not in html and "&lt;img src=x onerror=" in html


def test_the_page_loads_nothing_from_outside() -> None:
    html = _page()
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert 'http-equiv="Content-Security-Policy" content="default-src \'none\'' in html
    for attr in ("src=", "href="):
        assert f'{attr}"http' not in html


def test_the_charts_are_inline_svg() -> None:
    html = _page()
    for chart in ("verdicts", "channels", "depths", "rules"):
        start = html.index(f'id="chart-{chart}"')
        assert html[start:start + 200].count("<svg") == 1


def test_an_empty_run_still_makes_a_page() -> None:
    html = build(INFO, [], {})
    assert "No messages were proposed" in html and "No seed persona" in html


def test_the_report_file_is_owner_only_and_never_overwritten(tmp_path: Path) -> None:
    path = write(tmp_path / "reports" / "run.html", _page())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(DeliveryError, match="will not be overwritten"):
        write(path, "<p>other</p>")
    assert path.read_text(encoding="utf-8") == _page()


def test_the_report_in_a_real_browser_offline(tmp_path: Path) -> None:
    from matplotlib.image import imread
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "scripts/system-deps.sh installs Debian's chromium"
    path = write(tmp_path / "report.html", _page())
    problems: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(offline=True)
            page = context.new_page()
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(path.as_uri(), wait_until="load")
            assert page.title() == "Campaign demo — run report"
            assert "Held back" in page.inner_text("#totals")
            charts = page.locator("figure.chart svg")
            assert charts.count() == 4
            for i in range(4):
                svg = charts.nth(i)
                box = svg.bounding_box()
                assert box is not None and box["width"] > 200 and box["height"] > 60
                assert svg.locator("path").count() > 3
                rgb = imread(io.BytesIO(svg.screenshot()), format="png")[..., :3]
                # the bars are drawn in colour; axes and labels are black and grey
                coloured = (rgb.max(axis=-1) - rgb.min(axis=-1)) > 0.3
                assert coloured.mean() > 0.02, f"chart {i} has no bars on screen"
            # the examples show the proposed and the final message side by side
            pair = page.locator(".pair").first.bounding_box()
            proposed = page.locator(".pair .msg.proposed").first.bounding_box()
            final = page.locator(".pair .msg.final").first.bounding_box()
            assert pair and proposed and final and final["x"] > proposed["x"] + 100
            assert page.locator("#personas tbody tr").count() == len(PERSONAS)
        finally:
            browser.close()
    assert problems == []
    assert requests == [path.as_uri()]


def test_a_rules_samples_prefer_reasons_that_name_facts_over_the_bare_title() -> None:
    """A large run logs the fact-naming reason for a few decisions per rule and the rule's title for
    the others: the report's samples of a rule take the fact-naming ones even when titled ones come
    first, and keep titled ones only while nothing better came; the counts are the same either way."""
    import dataclasses

    from tactful.model import Reason
    from tactful.report import SAMPLES_PER_RULE, Tally

    titles = rule_titles(load_pack())
    fired = next(r for r in _rows() if r.decision.reasons and r.decision.reasons[0].message != titles.get(
        r.decision.reasons[0].rule))
    rule = fired.decision.reasons[0].rule

    def titled(n: int) -> ReportRow:
        bare = tuple(Reason(rule=x.rule, verdict=x.verdict, message=titles.get(x.rule, x.message))
                     for x in fired.decision.reasons)
        return dataclasses.replace(fired, customer_id=f"titled-{n}",
                                   decision=fired.decision.model_copy(update={"reasons": bare}))

    tally = Tally(titles)
    for n in range(SAMPLES_PER_RULE + 2):
        tally.add(titled(n))
    assert [r.customer_id for r in tally.samples[rule]] == [f"titled-{n}" for n in range(SAMPLES_PER_RULE)]
    tally.add(dataclasses.replace(fired, customer_id="named"))
    kept = [r.customer_id for r in tally.samples[rule]]
    assert "named" in kept and len(kept) == SAMPLES_PER_RULE
    assert tally.rule_count[rule] == SAMPLES_PER_RULE + 3
