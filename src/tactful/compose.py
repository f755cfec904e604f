"""Messages at the depth the engine allows: sandboxed templates, one per depth.

A campaign gives one template per *slot*: the depths ``none``, ``segment``, ``category``, ``item``,
``history``, and ``ask`` (the permission request sent instead of the offer when the engine says
``ask``). What a template reveals is **derived from the variables it uses**
(:func:`jinja2.meta.find_undeclared_variables`, mapped through :data:`VARIABLES`), never declared by
hand: a template that uses ``items`` shows items, one that uses ``first_name`` greets by name. A
template that reveals more than its slot, or uses a variable nobody mapped, is refused when it is
loaded (:class:`~tactful.errors.CampaignError`).

:func:`compose` turns an engine decision into what is sent:

* ``allow`` and ``soften``: the deepest template whose derived reveal fits under the decision's
  ``max_depth`` (and the proposed depth), naming the customer only when the decision allows it; a
  softened touch whose sender reveals a sensitive category goes out under the campaign's neutral
  sender (seed 001: a sealed letter from a neutral sender instead of the shop's postcard);
* ``ask``: the ``ask`` template (a permission request) on channels that can carry one, else nothing;
* ``block``: nothing, with the reasons recorded.

Templates run in Jinja2's immutable sandbox without a loader (no include, import or extends), with
strict undefined variables; the data put into them is cleaned (control characters removed, length
and list sizes bounded) and HTML-escaped on HTML channels. Any template error fails closed: the
message is withheld with the error, never sent half-rendered.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tactful.errors import CampaignError
from tactful.model import Decision
from tactful.safeload import CAMPAIGN_LIMITS, DocumentError, load_document, load_yaml
from tactful.vocab import Channel, Depth, Verdict

#: The slots a campaign can fill: one per depth up to ``history``, and the permission request.
DEPTH_SLOTS: tuple[Depth, ...] = (Depth.NONE, Depth.SEGMENT, Depth.CATEGORY, Depth.ITEM, Depth.HISTORY)
ASK_SLOT = "ask"
SLOTS: tuple[str, ...] = (*(d.value for d in DEPTH_SLOTS), ASK_SLOT)

#: What each template variable reveals: a depth, and whether it names the customer.
#: A variable missing here is refused at load time (what it shows cannot be judged).
VARIABLES: dict[str, tuple[Depth, bool, str]] = {
    # shown to everybody: the shop, the offer, a name-safe greeting chosen by the decision
    "shop": (Depth.NONE, False, "the shop's name"),
    "sender": (Depth.NONE, False, "the sender shown (neutral when the decision hides the shop)"),
    "offer": (Depth.NONE, False, "the campaign's offer text"),
    "greeting": (Depth.NONE, False, "\"Dear Jane\" when naming is allowed, else \"Hello\""),
    "channel": (Depth.NONE, False, "the channel the message goes out on"),
    "unsubscribe": (Depth.NONE, False, "how to stop these messages"),
    # a segment: "popular near you"
    "segment": (Depth.SEGMENT, False, "the customer's segment, e.g. \"shoppers near Main Street\""),
    "popular": (Depth.SEGMENT, False, "items popular in the customer's segment (list)"),
    # categories: "new in running gear"
    "category": (Depth.CATEGORY, False, "the first recommended category"),
    "categories": (Depth.CATEGORY, False, "recommended categories (list)"),
    # items chosen for the customer, without saying why
    "item": (Depth.ITEM, False, "the first recommended item"),
    "items": (Depth.ITEM, False, "recommended items (list)"),
    # the buying history: "because you bought X"
    "last_purchase": (Depth.HISTORY, False, "the product the customer bought last"),
    "history": (Depth.HISTORY, False, "products the customer bought (list)"),
    # never appropriate: listed purchases with their dates; no slot allows it
    "purchase_dates": (Depth.DETAILED_HISTORY, False, "purchases with their dates (list)"),
    # greeting by name
    "first_name": (Depth.NONE, True, "the customer's first name"),
    "last_name": (Depth.NONE, True, "the customer's last name"),
    "full_name": (Depth.NONE, True, "the customer's full name"),
}

#: Channels a permission request ("may we use your purchases to suggest ...?") can go out on: the
#: customer can answer there. A postcard is read by anyone, an SMS needs its own opt-in first.
ASK_CHANNELS: frozenset[Channel] = frozenset({Channel.EMAIL, Channel.POSTAL_MAIL, Channel.WEB, Channel.APP})

#: Channels whose messages are HTML (values are HTML-escaped there).
HTML_CHANNELS: frozenset[Channel] = frozenset({Channel.EMAIL, Channel.WEB, Channel.APP})

MAX_VALUE_CHARS = 120  # one value from the data (a name, a product) is cut at this length
MAX_LIST_ITEMS = 10  # a list from the data (items, categories) keeps at most this many entries
MAX_SUBJECT_CHARS = 200
MAX_BODY_CHARS = 20_000  # a runaway loop stops here and the message is withheld

# C0/C1 controls (newlines and tabs too: a value is one line), DEL, and the invisible format characters
# that reorder or hide text (bidi overrides and isolates, zero-width ones, the BOM, soft hyphen)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff"
                      "\ufff9-\ufffb]")


@dataclass(frozen=True)
class Reveal:
    """What a template shows, derived from its variables."""

    depth: Depth
    named: bool
    variables: tuple[str, ...]


@dataclass(frozen=True)
class Template:
    """One slot's template: a subject line (may be empty, e.g. for a letter) and a body."""

    slot: str
    subject: str
    body: str
    reveal: Reveal
    _subject: jinja2.Template = field(repr=False, compare=False)
    _body: jinja2.Template = field(repr=False, compare=False)
    _body_html: jinja2.Template | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Message:
    """A message to send."""

    kind: Literal["offer", "permission_request"]
    slot: str
    depth: Depth  # what the text actually reveals (derived)
    named: bool
    channel: Channel
    sender: str
    subject: str
    body: str
    html: bool


@dataclass(frozen=True)
class Withheld:
    """Nothing is sent; ``reason`` says why in plain words, ``rules`` which rules decided it."""

    code: Literal["blocked", "ask-not-on-channel", "no-template", "template-error"]
    reason: str
    rules: tuple[str, ...] = ()


Composed = Message | Withheld


def _env(html: bool) -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        loader=None,
        autoescape=html,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def _reveal_of(names: set[str]) -> Reveal:
    depth = Depth.NONE
    named = False
    for name in names:
        d, n, _ = VARIABLES[name]
        if d.rank > depth.rank:
            depth = d
        named = named or n
    return Reveal(depth=depth, named=named, variables=tuple(sorted(names)))


def _parse(env: jinja2.Environment, text: str, where: str) -> tuple[jinja2.Template, set[str]]:
    try:
        ast = env.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise CampaignError(f"{where}: template syntax error on line {exc.lineno}: {exc.message}",
                            hint="see docs/campaign-format.md, section Templates") from None
    if list(meta.find_referenced_templates(ast)) or any(
            True for _ in ast.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends))):
        raise CampaignError(f"{where}: templates may not include, import or extend other templates",
                            hint="write each slot's template in full")
    names = set(meta.find_undeclared_variables(ast))
    unknown = sorted(names - VARIABLES.keys())
    if unknown:
        raise CampaignError(
            f"{where}: unknown template variable(s) {', '.join(unknown)}: what they would show cannot "
            "be judged", hint=f"use only {', '.join(sorted(VARIABLES))} (docs/campaign-format.md)")
    try:
        compiled = env.from_string(text)
    except jinja2.TemplateError as exc:  # pragma: no cover - parse succeeded above
        raise CampaignError(f"{where}: template cannot be compiled: {exc}") from None
    return compiled, names


def _cap(slot: str) -> tuple[Depth, bool]:
    """The most a slot's template may reveal: its depth, and whether it may name the customer."""
    if slot == ASK_SLOT:
        return Depth.NONE, False  # an ask decision never allows a name or any depth
    return Depth(slot), True


@dataclass(frozen=True)
class TemplateSet:
    """The templates of one campaign, checked; :meth:`choose` picks one for a decision."""

    templates: Mapping[str, Template]
    html: bool
    source: str = "<templates>"
    #: :meth:`choose`'s answers by (depth, named), remembered (a campaign asks the same few thousands
    #: of times)
    _chosen: dict[tuple[Depth, bool], Template | None] = field(default_factory=dict, init=False,
                                                                 repr=False, compare=False)

    @classmethod
    def load(cls, data: Mapping[str, Any], *, html: bool, source: str = "<templates>") -> TemplateSet:
        """Check and compile ``{slot: {subject, body}}`` (or ``{slot: body}``); refuse what over-reveals."""
        if not isinstance(data, Mapping) or not data:
            raise CampaignError(f"{source}: templates must be a mapping of slot to template",
                                hint=f"slots: {', '.join(SLOTS)}")
        env, html_env = _env(False), _env(True)
        out: dict[str, Template] = {}
        for slot, spec in data.items():
            where = f"{source}: templates.{slot}"
            if slot not in SLOTS:
                raise CampaignError(f"{where}: unknown slot {slot!r}", hint=f"slots: {', '.join(SLOTS)}")
            if isinstance(spec, str):
                subject, body = "", spec
            elif isinstance(spec, Mapping) and set(spec) <= {"subject", "body"} and "body" in spec:
                subject, body = spec.get("subject") or "", spec["body"]
            else:
                raise CampaignError(f"{where}: expected a body text, or a mapping with body (and subject)")
            if not isinstance(subject, str) or not isinstance(body, str):
                raise CampaignError(f"{where}: subject and body must be text")
            subj_t, subj_names = _parse(env, subject, f"{where}.subject")
            body_t, body_names = _parse(env, body, f"{where}.body")
            reveal = _reveal_of(subj_names | body_names)
            cap_depth, cap_named = _cap(slot)
            if reveal.depth.rank > cap_depth.rank or (reveal.named and not cap_named):
                over = [n for n in reveal.variables
                        if VARIABLES[n][0].rank > cap_depth.rank or (VARIABLES[n][1] and not cap_named)]
                shows = f"{reveal.depth.value} depth" + (" and the customer's name" if reveal.named else "")
                raise CampaignError(
                    f"{where}: the template shows {shows} (it uses {', '.join(over)}), more than the "
                    f"{slot!r} slot allows ({cap_depth.value}{'' if cap_named else ', no name'})",
                    hint="move it to a deeper slot or leave those variables out")
            out[slot] = Template(slot=slot, subject=subject, body=body, reveal=reveal,
                                 _subject=subj_t, _body=body_t,
                                 _body_html=_parse(html_env, body, f"{where}.body")[0] if html else None)
        if not any(s in out for s in (d.value for d in DEPTH_SLOTS)):
            raise CampaignError(f"{source}: templates need at least one depth slot",
                                hint=f"give at least the 'none' slot ({', '.join(SLOTS)})")
        return cls(templates=out, html=html, source=source)

    def choose(self, depth: Depth, named: bool) -> Template | None:
        """The deepest template whose derived reveal fits ``depth`` and ``named``; None if none fits."""
        key = (depth, named)
        if key not in self._chosen:
            self._chosen[key] = self._choose(depth, named)
        return self._chosen[key]

    def _choose(self, depth: Depth, named: bool) -> Template | None:
        best: Template | None = None
        for slot in DEPTH_SLOTS:
            t = self.templates.get(slot.value)
            if t is None or t.reveal.depth.rank > depth.rank or (t.reveal.named and not named):
                continue
            if best is None or (t.reveal.depth.rank, t.reveal.named) >= (best.reveal.depth.rank,
                                                                          best.reveal.named):
                best = t
        return best


# --------------------------------------------------------------------------- values from data


def clean_text(value: object, limit: int = MAX_VALUE_CHARS) -> str:
    """A value from the data as safe, bounded text: control and bidi characters removed, whitespace
    collapsed, cut at ``limit`` characters with an ellipsis."""
    return _clean_str("" if value is None else str(value), limit)


@functools.lru_cache(maxsize=1 << 16)
def _clean_str(text: str, limit: int) -> str:
    """:func:`clean_text` of a text, remembered: a campaign cleans the same shop, product and first
    names for many customers."""
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub("", text)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _clean(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return tuple(clean_text(v) for v in value[:MAX_LIST_ITEMS] if v is not None)
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return clean_text(value)
    if isinstance(value, Sequence):
        return tuple(clean_text(v) for v in list(value)[:MAX_LIST_ITEMS] if v is not None)
    return clean_text(value)


@dataclass(frozen=True)
class MessageData:
    """What a message may draw on for one customer. Everything is cleaned before a template sees it."""

    shop: str
    offer: str = ""
    unsubscribe: str = ""
    first_name: str | None = None
    last_name: str | None = None
    segment: str | None = None
    popular: Sequence[str] = ()
    categories: Sequence[str] = ()
    items: Sequence[str] = ()
    history: Sequence[str] = ()
    purchase_dates: Sequence[str] = ()

    def variables(self, *, channel: Channel, named: bool, sender: str,
                  names: Sequence[str] | None = None) -> dict[str, object]:
        """The template variables, cleaned (only ``names`` when given: what one template uses)."""
        first = clean_text(self.first_name) if self.first_name else ""
        last = clean_text(self.last_name) if self.last_name else ""
        greeting = f"Dear {first}" if named and first else "Hello"
        values: dict[str, object] = {
            "shop": self.shop, "sender": sender, "offer": self.offer, "greeting": greeting,
            "channel": channel.value.replace("_", " "), "unsubscribe": self.unsubscribe,
            "segment": self.segment, "popular": self.popular,
            "categories": self.categories, "category": self.categories[0] if self.categories else None,
            "items": self.items, "item": self.items[0] if self.items else None,
            "history": self.history, "last_purchase": self.history[0] if self.history else None,
            "purchase_dates": self.purchase_dates,
            "first_name": first or None, "last_name": last or None,
            "full_name": " ".join(p for p in (first, last) if p) or None,
        }
        return {k: _clean(values[k]) for k in (values if names is None else names)}


# --------------------------------------------------------------------------- rendering


def _render(tpl: jinja2.Template, values: Mapping[str, object], limit: int) -> str:
    out: list[str] = []
    size = 0
    for chunk in tpl.generate(values):
        size += len(chunk)
        if size > limit:
            raise CampaignError(f"the rendered text is longer than {limit} characters")
        out.append(chunk)
    return "".join(out).strip()


def render(template: Template, data: MessageData, *, channel: Channel, named: bool, sender: str,
           html: bool, kind: Literal["offer", "permission_request"] = "offer") -> Composed:
    """Render one template; a template error, a missing value or an over-long text withholds it."""
    values = data.variables(channel=channel, named=named, sender=sender, names=template.reveal.variables)
    missing = sorted(n for n in template.reveal.variables if values.get(n) in (None, "", ()))
    if missing:
        return Withheld("template-error", f"the {template.slot} template needs {', '.join(missing)}, which "
                        "this customer's data does not have; nothing was sent")
    try:
        # an empty subject (a letter's) renders to itself
        subject = _render(template._subject, values, MAX_SUBJECT_CHARS) if template.subject else ""
        body_tpl = template._body_html if html and template._body_html is not None else template._body
        body = _render(body_tpl, values, MAX_BODY_CHARS)
    except (jinja2.TemplateError, CampaignError, ArithmeticError, TypeError, ValueError, LookupError,
            AttributeError, RecursionError) as exc:
        return Withheld("template-error", f"the {template.slot} template failed "
                        f"({type(exc).__name__}: {clean_text(exc, 200)}); nothing was sent")
    return Message(kind=kind, slot=template.slot, depth=template.reveal.depth,
                   named=template.reveal.named, channel=channel, sender=sender,
                   subject=" ".join(subject.split()), body=body, html=html)


def compose(templates: TemplateSet, decision: Decision, data: MessageData, *, channel: Channel,
            proposed_depth: Depth, sender: str, neutral_sender: str | None = None,
            sender_reveals: bool = False) -> Composed:
    """What goes out for one decision (see the module docstring). Never raises for data problems."""
    fired = tuple(r.rule for r in decision.reasons)
    if decision.verdict is Verdict.BLOCK:
        why = "; ".join(r.message for r in decision.reasons if r.verdict is Verdict.BLOCK)
        return Withheld("blocked", why or "the engine blocked this touch", fired)
    shown_sender = sender
    if decision.verdict is not Verdict.ALLOW and sender_reveals:
        if not neutral_sender:
            return Withheld("no-template", "the sender reveals a sensitive category and the campaign "
                            "has no neutral sender to send under; nothing was sent", fired)
        shown_sender = neutral_sender
    if decision.verdict is Verdict.ASK:
        ask = templates.templates.get(ASK_SLOT)
        if channel not in ASK_CHANNELS:
            return Withheld("ask-not-on-channel", f"the engine asks to get the customer's permission "
                            f"first, and a {channel.value.replace('_', ' ')} cannot carry a permission "
                            "request; nothing was sent", fired)
        if ask is None:
            return Withheld("no-template", "the engine asks to get the customer's permission first, and "
                            "the campaign has no 'ask' template; nothing was sent", fired)
        return render(ask, data, channel=channel, named=False, sender=shown_sender,
                      html=templates.html and channel in HTML_CHANNELS, kind="permission_request")
    allowed = decision.max_depth if decision.max_depth.rank <= proposed_depth.rank else proposed_depth
    chosen = templates.choose(allowed, decision.named)
    if chosen is None:
        return Withheld("no-template", f"no template fits what the engine allows ({allowed.value} depth"
                        f"{'' if decision.named else ', no name'}); nothing was sent", fired)
    return render(chosen, data, channel=channel, named=decision.named, sender=shown_sender,
                  html=templates.html and channel in HTML_CHANNELS)


def preview(templates: TemplateSet, data: MessageData, *, channel: Channel, depth: Depth, named: bool,
            sender: str) -> Composed:
    """The message as the campaign proposed it, before the engine's decision (for the report)."""
    chosen = templates.choose(depth, named)
    if chosen is None:
        return Withheld("no-template", f"no template for {depth.value} depth")
    return render(chosen, data, channel=channel, named=named, sender=sender,
                  html=templates.html and channel in HTML_CHANNELS)


# --------------------------------------------------------------------------- a campaign's messages


@dataclass(frozen=True)
class Messages:
    """The message part of a campaign definition: the shop, its neutral sender, the offer, the
    templates. Other keys of the campaign file (audience, channels, schedule...) are not read here."""

    shop: str
    templates: TemplateSet
    offer: str = ""
    unsubscribe: str = ""
    neutral_sender: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "<campaign>") -> Messages:
        if not isinstance(data, Mapping):
            raise CampaignError(f"{source}: a campaign is a mapping (see docs/campaign-format.md)")
        for key in ("shop", "templates"):
            if key not in data:
                raise CampaignError(f"{source}: missing {key!r}", hint="see docs/campaign-format.md")
        texts: dict[str, str | None] = {}
        for key in ("shop", "offer", "unsubscribe", "neutral_sender"):
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                raise CampaignError(f"{source}: {key} must be text, got {type(value).__name__}")
            texts[key] = clean_text(value, 500) if value else None
        html = data.get("html", False)
        if not isinstance(html, bool):
            raise CampaignError(f"{source}: html must be true or false, got {html!r}")
        if not texts["shop"]:
            raise CampaignError(f"{source}: shop must not be empty")
        return cls(shop=texts["shop"] or "", offer=texts["offer"] or "",
                   unsubscribe=texts["unsubscribe"] or "", neutral_sender=texts["neutral_sender"],
                   templates=TemplateSet.load(data["templates"], html=html, source=source))

    def data(self, **customer: Any) -> MessageData:
        """The message data for one customer (first_name, items, categories... as keywords)."""
        return MessageData(shop=self.shop, offer=self.offer, unsubscribe=self.unsubscribe, **customer)


def load_messages(path: str | Path) -> Messages:
    """Read the message part of a campaign YAML file; errors name the file and the slot."""
    p = Path(path)
    try:  # the bounded loader: size, depth, aliases, tags, duplicate keys, UTF-8 (tactful.safeload)
        data = load_document(p, CAMPAIGN_LIMITS, json_only=False, source=str(p))
    except DocumentError as exc:
        raise CampaignError(str(exc), hint=exc.hint) from None
    return Messages.from_mapping(data, source=str(p))


def demo_messages() -> Messages:
    """The demo campaign's messages (shipped in the package)."""
    text = (resources.files("tactful.campaigns") / "demo.yaml").read_text(encoding="utf-8")
    return Messages.from_mapping(load_yaml(text, "demo.yaml", CAMPAIGN_LIMITS), source="demo.yaml")
