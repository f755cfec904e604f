"""The campaign run report: one self-contained HTML page a marketer can read without the code.

What it shows: totals by verdict in plain words (sent as proposed, sent toned down, permission asked,
held back), by rule and by channel; how personal the messages were (depth proposed vs depth sent);
for each rule that fired, a few customers with the proposed and the final message side by side and the
reasons; and the seed personas' outcomes.

Self-contained: the charts are drawn by matplotlib into the page as inline SVG, the styles are inline,
and a Content-Security-Policy forbids the page from loading anything at all, so it opens offline and
never calls out. Every value from the data is HTML-escaped (Jinja2 autoescape).
"""

from __future__ import annotations

import io
import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape
from matplotlib import rc_context
from matplotlib.figure import Figure

from tactful import __version__
from tactful.compose import Message, Withheld, clean_text
from tactful.delivery.base import create_new_private_file, create_private_file
from tactful.model import Decision
from tactful.policy.nodes import Pack
from tactful.vocab import DEPTH_ORDER, Depth, Verdict

#: What each verdict means for the marketer, in the order of the report.
VERDICT_WORDS: dict[Verdict, str] = {
    Verdict.ALLOW: "Sent as proposed",
    Verdict.SOFTEN: "Sent toned down",
    Verdict.ASK: "Permission asked first",
    Verdict.BLOCK: "Held back",
}
VERDICT_COLOURS: dict[Verdict, str] = {
    Verdict.ALLOW: "#2e7d32", Verdict.SOFTEN: "#1565c0", Verdict.ASK: "#ef8f00", Verdict.BLOCK: "#c62828",
}
DEPTH_WORDS: dict[Depth, str] = {
    Depth.NONE: "generic",
    Depth.SEGMENT: "segment (\u201cpopular near you\u201d)",
    Depth.CATEGORY: "category (\u201cnew in running gear\u201d)",
    Depth.ITEM: "items picked for them",
    Depth.HISTORY: "\u201cbecause you bought\u2026\u201d",
    Depth.DETAILED_HISTORY: "lists what was bought when",
}
SAMPLES_PER_RULE = 3


@dataclass(frozen=True)
class ReportRow:
    """One decided touch of a run: what was proposed, what the engine decided, what went out."""

    customer_id: str
    channel: str
    proposed_depth: Depth
    decision: Decision
    proposed: Message | Withheld
    final: Message | Withheld
    persona: str | None = None  # the seed persona's title, when the customer is one


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    campaign: str
    period: str
    policy_name: str
    policy_version: str
    started_at: datetime
    dry_run: bool = False
    swaps: int = 0  # candidates replaced because they revealed too much
    delivery: Mapping[str, int] = field(default_factory=dict)  # outbox status -> count


def rule_titles(pack: Pack) -> dict[str, str]:
    """Rule id -> its title, for the report's plain-language headings."""
    return {rule.id: rule.title for rule in pack.rules}


# --------------------------------------------------------------------------- charts


def _svg(fig: Figure, title: str) -> str:
    buf = io.StringIO()
    # Text stays text (small, selectable); a fixed hash salt and no date make the output reproducible.
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "tactful-report"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Title": title})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    return re.sub(r"<svg ", f'<svg role="img" aria-label="{escape(title)}" ', text,
                  count=1)


def _figure(rows: float) -> tuple[Figure, Any]:
    fig = Figure(figsize=(7.5, max(1.6, 0.42 * rows + 0.8)), dpi=100)
    ax = fig.add_subplot()
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def chart_verdicts(counts: Mapping[Verdict, int]) -> str:
    verdicts = list(VERDICT_WORDS)
    fig, ax = _figure(len(verdicts))
    values = [counts.get(v, 0) for v in verdicts]
    bars = ax.barh([VERDICT_WORDS[v] for v in verdicts], values, color=[VERDICT_COLOURS[v] for v in verdicts])
    ax.bar_label(bars, padding=3)
    ax.invert_yaxis()
    ax.set_xlabel("customers")
    return _svg(fig, "Decisions by outcome")


def chart_channels(by_channel: Mapping[str, Mapping[Verdict, int]]) -> str:
    channels = sorted(by_channel)
    fig, ax = _figure(len(channels))
    left = [0] * len(channels)
    labels = [c.replace("_", " ") for c in channels]
    for v in VERDICT_WORDS:
        values = [by_channel[c].get(v, 0) for c in channels]
        ax.barh(labels, values, left=left, color=VERDICT_COLOURS[v], label=VERDICT_WORDS[v])
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("customers")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    return _svg(fig, "Decisions by channel")


def chart_depths(proposed: Mapping[Depth, int], sent: Mapping[Depth, int], not_sent: int) -> str:
    depths = [d for d in DEPTH_ORDER if proposed.get(d) or sent.get(d)]
    labels = [DEPTH_WORDS[d] for d in depths] + ["nothing sent"]
    fig, ax = _figure(len(labels) * 1.4)
    ys = list(range(len(labels)))
    h = 0.38
    ax.barh([y - h / 2 for y in ys], [proposed.get(d, 0) for d in depths] + [0], height=h,
            color="#9e9e9e", label="proposed")
    bars = ax.barh([y + h / 2 for y in ys], [sent.get(d, 0) for d in depths] + [not_sent], height=h,
                   color="#1565c0", label="sent")
    ax.bar_label(bars, padding=3, fontsize="small")
    ax.set_yticks(ys, labels)
    ax.invert_yaxis()
    ax.set_xlabel("customers")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    return _svg(fig, "How personal the messages were")


def chart_rules(counts: Sequence[tuple[str, int, Verdict]]) -> str:
    fig, ax = _figure(len(counts))
    bars = ax.barh([clean_text(t, 60) for t, _, _ in counts], [n for _, n, _ in counts],
                   color=[VERDICT_COLOURS[v] for _, _, v in counts])
    ax.bar_label(bars, padding=3, fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel("customers the rule applied to")
    return _svg(fig, "Which rules applied")


# --------------------------------------------------------------------------- the page


def _text(item: Message | Withheld) -> dict[str, Any]:
    if isinstance(item, Message):
        what = "permission request" if item.kind == "permission_request" else "offer"
        return {"sent": True, "what": f"{what} by {item.channel.value.replace('_', ' ')}, from {item.sender}",
                "subject": item.subject, "body": item.body, "depth": DEPTH_WORDS[item.depth],
                "named": item.named}
    body = "Nothing goes to this customer (the reasons are above)." if item.code == "blocked" else item.reason
    return {"sent": False, "what": "nothing sent", "subject": "", "body": body, "depth": "", "named": False}


class Tally:
    """What the report page shows of a run, gathered one customer at a time (:meth:`add`): the counts
    by verdict, channel, depth and rule, the first :data:`SAMPLES_PER_RULE` customers of each rule
    and the seed personas. Its size does not grow with the run's: a million-customer run's page is
    built from it as a 300-customer one's is."""

    def __init__(self, titles: Mapping[str, str] | None = None) -> None:
        #: the rules' titles: a sample whose reason for a rule is only its title (a large run logs the
        #: fact-naming reasons for a few decisions per rule) gives way to one whose reason names facts
        self.titles = titles or {}
        self.total = 0
        self.verdicts: Counter[Verdict] = Counter()
        self.by_channel: dict[str, Counter[Verdict]] = defaultdict(Counter)
        self.proposed_depth: Counter[Depth] = Counter()
        self.sent_depth: Counter[Depth] = Counter()
        self.not_sent = 0
        self.rule_count: Counter[str] = Counter()
        self.rule_verdict: dict[str, Verdict] = {}
        self.samples: dict[str, list[ReportRow]] = defaultdict(list)
        self.personas: list[ReportRow] = []

    def add(self, row: ReportRow) -> None:
        """Count one customer's final decision (and keep it as a sample while its rules need one)."""
        self.total += 1
        self.verdicts[row.decision.verdict] += 1
        self.by_channel[row.channel][row.decision.verdict] += 1
        self.proposed_depth[row.proposed_depth] += 1
        if isinstance(row.final, Message):
            self.sent_depth[row.final.depth] += 1
        else:
            self.not_sent += 1
        for rule in dict.fromkeys(r.rule for r in row.decision.reasons):
            self.rule_count[rule] += 1
            verdict = next(r.verdict for r in row.decision.reasons if r.rule == rule)
            if rule not in self.rule_verdict or verdict.rank > self.rule_verdict[rule].rank:
                self.rule_verdict[rule] = verdict
            kept = self.samples[rule]
            if len(kept) < SAMPLES_PER_RULE:
                kept.append(row)
            elif not self._titled(row, rule):
                plain = next((i for i, old in enumerate(kept) if self._titled(old, rule)), None)
                if plain is not None:
                    kept[plain] = row
        if row.persona:
            self.personas.append(row)


    def _titled(self, row: ReportRow, rule: str) -> bool:
        """Whether ``row``'s reason for ``rule`` is only the rule's title."""
        title = self.titles.get(rule)
        return title is not None and any(r.rule == rule and r.message == title for r in row.decision.reasons)


def build(info: RunInfo, rows: Sequence[ReportRow] | Tally, titles: Mapping[str, str] | None = None) -> str:
    """The report page for one run, as HTML text, from its rows or their :class:`Tally`."""
    titles = titles or {}
    if isinstance(rows, Tally):
        tally = rows
    else:
        tally = Tally(titles)
        for row in rows:
            tally.add(row)
    verdicts, by_channel, rule_count = tally.verdicts, tally.by_channel, tally.rule_count
    proposed_depth, sent_depth, not_sent = tally.proposed_depth, tally.sent_depth, tally.not_sent
    rule_verdict, samples = tally.rule_verdict, tally.samples
    ordered_rules = sorted(rule_count, key=lambda r: (-rule_count[r], r))
    rule_rows = [(titles.get(r, r), rule_count[r], rule_verdict[r]) for r in ordered_rules]
    charts = {
        "verdicts": chart_verdicts(verdicts),
        "channels": chart_channels(by_channel) if by_channel else "",
        "depths": chart_depths(proposed_depth, sent_depth, not_sent) if tally.total else "",
        "rules": chart_rules(rule_rows) if rule_rows else "",
    }
    rules_view = []
    for rule in ordered_rules:
        examples = []
        for row in samples[rule]:
            reasons = [r.message for r in row.decision.reasons]
            examples.append({"customer": row.customer_id, "persona": row.persona,
                             "channel": row.channel.replace("_", " "), "verdict": row.decision.verdict,
                             "verdict_words": VERDICT_WORDS[row.decision.verdict],
                             "proposed": _text(row.proposed), "final": _text(row.final), "reasons": reasons})
        rules_view.append({"id": rule, "title": titles.get(rule, rule), "count": rule_count[rule],
                           "verdict": rule_verdict[rule], "verdict_words": VERDICT_WORDS[rule_verdict[rule]],
                           "examples": examples})
    personas = [{"title": r.persona, "customer": r.customer_id, "channel": r.channel.replace("_", " "),
                 "verdict": r.decision.verdict, "verdict_words": VERDICT_WORDS[r.decision.verdict],
                 "final": _text(r.final), "reasons": [x.message for x in r.decision.reasons]}
                for r in tally.personas]
    total = tally.total
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    template = env.from_string(
        (resources.files("tactful") / "report.html.j2").read_text(encoding="utf-8"))
    return template.render(
        info=info, total=total, verdicts=[(v, VERDICT_WORDS[v], verdicts.get(v, 0), VERDICT_COLOURS[v])
                                          for v in VERDICT_WORDS],
        sent=total - not_sent, not_sent=not_sent,
        channels=[(c.replace("_", " "), [by_channel[c].get(v, 0) for v in VERDICT_WORDS],
                   sum(by_channel[c].values())) for c in sorted(by_channel)],
        verdict_words=list(VERDICT_WORDS.values()), rules=rules_view, personas=personas,
        charts={k: Markup(v) for k, v in charts.items()},  # drawn by matplotlib, which escapes its text
        version=__version__,
    )


def write(path: str | Path, html: str, *, numbered: bool = False) -> Path:
    """Write the report owner-only (it names customers and quotes their messages); never overwrites.
    With ``numbered``, an existing file makes it ``report-2.html``... instead of an error (a resumed
    run's directory). Returns the path written."""
    p = Path(path)
    p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if numbered:
        p, fd = create_new_private_file(p)
    else:
        fd = create_private_file(p)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(html)
    return p


# --------------------------------------------------------------------------- the report from the store


def from_store(engine: Any, run_id: str) -> tuple[RunInfo, Tally, dict[str, str]]:
    """What :func:`build` needs for a logged run, read from the store alone (schema 0004): the run, its
    decisions in log order (per customer the last channel tried is the final one, the message proposed
    on the first; a customer's decisions are logged together, in one transaction), counted into a
    :class:`Tally` as they stream (a million-customer run is never held in memory), the outbox by
    status, the pack's rule titles kept with the run.

    Raises NotFoundError for an unknown run, CampaignError for a run logged before schema 0004 (its
    messages were not kept) and StoreError for a logged row that cannot be read back."""
    import sqlalchemy as sa

    from tactful.errors import CampaignError, NotFoundError, StoreError
    from tactful.model import PolicyRef, Reason
    from tactful.sample.personas import PERSONAS
    from tactful.store import audit, outbox, tables

    r, d = tables.campaign_runs, tables.decisions
    personas = {p.customer_id: p.title for p in PERSONAS}
    tally = Tally()  # given the rules' titles once the run is read
    # Decisions read back, by what was logged: many customers' decisions log the same reasons (a
    # large run logs most reasons as the rule's title), and a Decision is immutable, so each distinct
    # one is checked (validated) once and shared; bounded, so a run of all-different reasons does not
    # grow it without end.
    decisions: dict[tuple[Any, ...], Decision] = {}

    def json_of(text: str | None) -> Any:
        return None if text is None else json.loads(text)

    def decision_of(last: Any) -> Decision:
        key = (last.verdict, last.max_depth, bool(last.named), last.reasons, last.policy_name,
               last.policy_version)
        decision = decisions.get(key)
        if decision is None:
            reasons = tuple(Reason.model_validate(x) for x in (json_of(last.reasons) or []))
            decision = Decision(verdict=Verdict(last.verdict), max_depth=Depth(last.max_depth),
                                named=bool(last.named), reasons=reasons,
                                policy=PolicyRef(name=last.policy_name, version=last.policy_version))
            if len(decisions) >= 10_000:
                decisions.clear()
            decisions[key] = decision
        return decision

    def add(customer_id: str, tried: list[Any]) -> None:
        last = tried[-1]
        try:
            final = audit.composed_from_record(json_of(last.message))
            proposed = next((p for p in (audit.composed_from_record(json_of(t.proposed)) for t in tried)
                             if p is not None), None)
            decision = decision_of(last)
        except ValueError as exc:  # pydantic's ValidationError and JSONDecodeError are ValueErrors too
            raise StoreError(f"run {run_id}: logged decision {last.seq} (customer {customer_id}) cannot "
                              f"be read back: {' '.join(str(exc).split())[:300]}") from None
        if final is None:
            raise CampaignError(f"run {run_id} was logged before the store kept messages (schema 0004): "
                              "its report cannot be rebuilt from the store",
                              hint="the report written when it ran is in its run directory")
        tally.add(ReportRow(customer_id=customer_id, channel=last.channel,
                            proposed_depth=Depth(last.proposed_depth or Depth.NONE.value),
                            decision=decision, proposed=proposed or final, final=final,
                            persona=personas.get(customer_id)))

    with engine.connect() as conn:
        run = conn.execute(sa.select(r).where(r.c.id == run_id)).first()
        if run is None:
            raise NotFoundError(f"no campaign run {run_id!r} in the store",
                                hint="tactful campaign list shows the runs")
        if isinstance(run.rules, Mapping):
            tally.titles = {str(k): str(v) for k, v in run.rules.items()}
        current: str | None = None
        tried: list[Any] = []
        # the logged JSON as its text, read into Python only where the page needs it (the last
        # decision's reasons and message, the first proposed message), not for every row
        columns = (d.c.seq, d.c.customer_id, d.c.channel, d.c.verdict, d.c.max_depth, d.c.named,
                   d.c.policy_name, d.c.policy_version, d.c.proposed_depth,
                   *(sa.cast(d.c[k], sa.Text).label(k) for k in ("reasons", "proposed", "message")))
        for row in conn.execution_options(yield_per=5000).execute(
                sa.select(*columns).where(d.c.run_id == run_id).order_by(d.c.seq)):
            if row.customer_id != current and tried:
                add(str(current), tried)
                tried = []
            current = row.customer_id
            tried.append(row)
        if tried:
            add(str(current), tried)
    summary = run.summary if isinstance(run.summary, Mapping) else {}
    info = RunInfo(run_id=run.id, campaign=run.campaign, period=run.period, policy_name=run.policy_name,
                   policy_version=run.policy_version, started_at=run.started_at, dry_run=bool(run.dry_run),
                   swaps=int(summary.get("swaps") or 0), delivery=outbox.counts(engine, run_id))
    titles = run.rules if isinstance(run.rules, Mapping) else {}
    return info, tally, {str(k): str(v) for k, v in titles.items()}
