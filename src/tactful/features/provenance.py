"""Family **provenance and context**: where and how the facts a touch uses were collected (a
conversation, a payment, a partner, a live signal, a birthday club), preferences, and generic
in-session content."""

from __future__ import annotations

from datetime import timedelta

from tactful.features.context import Derivation
from tactful.vocab import Depth, FactKind, Origin


def produce(d: Derivation) -> None:
    """generic_in_session, uses_conversation_fact, uses_realtime_signal, uses_payment_fact,
    uses_partner_fact, uses_birthday, birthday_expected, shows_preference, uses_preference."""
    s, v, ev, touch, now = d.settings, d.values, d.facts, d.touch, d.now
    used, shown, both = d.used, d.shown, d.both
    v["generic_in_session"] = (touch.channel in s.in_session_channels and not touch.uses
                               and not touch.shows and not touch.named
                               and touch.depth.rank <= Depth.ITEM.rank)

    conv = [f.id for f in both if d.is_conversation(f)]
    v["uses_conversation_fact"] = bool(conv)
    ev["uses_conversation_fact"] = tuple(conv)
    pay = [f.id for f in both if s.context_in("payment_contexts", f.context)]
    v["uses_payment_fact"] = bool(pay)
    ev["uses_payment_fact"] = tuple(pay)
    partner = [f.id for f in both if f.source.startswith("partner:")]
    v["uses_partner_fact"] = bool(partner)
    ev["uses_partner_fact"] = tuple(partner)

    live_since = now - timedelta(minutes=s.realtime_window_minutes)
    live = [f.id for f in both if f.origin is Origin.OBSERVED and f.at is not None
            and live_since <= f.at <= now
            and (f.kind is FactKind.EVENT or s.is_live_category(f.category))]
    v["uses_realtime_signal"] = bool(live)
    ev["uses_realtime_signal"] = tuple(live)

    bday = [f for f in both if s.is_birthday(f.category)]
    v["uses_birthday"] = bool(bday)
    ev["uses_birthday"] = tuple(f.id for f in bday)
    v["birthday_expected"] = bool(bday) and all(
        f.origin is Origin.DECLARED and s.context_exactly("birthday_expectation_contexts", f.context)
        for f in bday)

    shown_pref = [f.id for f in shown if f.kind is FactKind.PREFERENCE]
    v["shows_preference"] = bool(shown_pref)
    ev["shows_preference"] = tuple(shown_pref)
    used_pref = [f.id for f in used if f.kind is FactKind.PREFERENCE]
    v["uses_preference"] = bool(used_pref)
    ev["uses_preference"] = tuple(used_pref)
