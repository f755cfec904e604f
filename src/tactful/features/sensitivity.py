"""Family **sensitivity and inference**: what the touch uses, shows or reveals that is sensitive, and
whether the customer licensed it (declared it herself, opted in to profiling) or it is our guess."""

from __future__ import annotations

from datetime import timedelta

from tactful import vocab
from tactful.features.context import (
    Derivation,
    is_inference,
    normalise_label,
    told_by_customer,
)
from tactful.model import ScenarioFact
from tactful.vocab import Channel, Trigger


def produce(d: Derivation) -> None:
    """shows_sensitive, uses_sensitive, sender_sensitive, uses_inferred_sensitive,
    uses_unlicensed_sensitive, uses_forbidden_identifier, shows_undeclared_sensitive. Reads
    touch_personalizes and profiling_opt_in (consent)."""
    s, v, ev, keys, touch, now = d.settings, d.values, d.facts, d.keys, d.touch, d.now
    personalizes: bool = v["touch_personalizes"]
    profiling: bool = v["profiling_opt_in"]
    declared = d.index.declared
    used, shown, both = d.used, d.shown, d.both

    covered_extra: set[str] = set()
    for dk in declared:
        for k, extra in s.declared_covers.items():
            if vocab.covers(k, dk):
                covered_extra.update(extra)

    def is_declared(cat: str, label: str | None = None) -> bool:
        # A declaration covers what it names (issue 7 §2): the same key when that key has no sub-keys,
        # or, under a coarse key (user.health_and_medical), a fact with the same label; a declared
        # allergy does not declare an inferred depression filed under the same key.
        if profiling:
            return True
        if any(cat == x or vocab.covers(x, cat) for x in covered_extra):
            return True
        wanted = normalise_label(label) if label is not None else None
        for dk, dlabels in declared.items():
            if dk == cat and not vocab.has_subkeys(dk):
                return True
            if wanted and wanted in dlabels and (vocab.covers(dk, cat) or vocab.covers(cat, dk)):
                return True
        return False

    def sender_reveals(cat: str) -> bool:
        return any(vocab.covers(k, cat) for k in touch.sender_implies)

    def sens(f: ScenarioFact) -> list[str]:
        # an inference's own and implied categories are inferred: a segment implying drinking is a
        # health-risk inference; a beer purchase implying it is not
        check = s.is_inferred_sensitive if is_inference(f) else s.is_sensitive
        out = [f.category] if check(f.category) else []
        out.extend(k for k in f.implies if check(k))
        return out

    # what the customer said in the very conversation an advisor prompt belongs to is not revealed
    # to anyone new (seed 002: the advisor keeps that conversation's norm)
    advisor_in_conversation = (touch.channel is Channel.ADVISOR
                               and touch.trigger is Trigger.CUSTOMER_REQUEST)
    window = timedelta(minutes=s.conversation_window_minutes)

    def said_in_this_conversation(f: ScenarioFact) -> bool:
        if not (advisor_in_conversation and not is_inference(f) and not f.source.startswith("partner:")
                and d.is_conversation(f)):
            return False
        if touch.conversation is not None or f.conversation is not None:
            return touch.conversation == f.conversation
        return f.at is not None and now - window <= f.at <= now

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
        if is_inference(f):
            guessed = [(k, f.label if k == f.category else None) for k in found]
        else:
            # what a purchase merely implies is an inference only when it drives personalization: a
            # service message about the customer's own order is not targeting (shown items are
            # still checked by shows_sensitive)
            # What the customer told us herself implies nothing we guessed: "I missed the delivery, I
            # was in hospital" reveals her health because she said it (seed 002's inference was a
            # model's).
            guessed = ([(k, None) for k in f.implies if s.is_sensitive(k)]
                       if personalizes and not told_by_customer(f) else [])
            # a sensitive category of the fact's own, however learned (observed, a partner's
            # "declared"): only the customer's own declaration or an explicit opt-in licenses it
            if (f.category in found and not told_by_customer(f)
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
