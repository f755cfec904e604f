"""Family **consent**: whether the touch is marketing or personalizes, and what the customer agreed
to or refused for it."""

from __future__ import annotations

from datetime import datetime

from tactful import vocab
from tactful.features.context import Derivation
from tactful.features.settings import Settings
from tactful.model import ScenarioConsent
from tactful.vocab import Channel, ConsentSource, ConsentStatus, Depth, Trigger


def produce(d: Derivation) -> None:
    """touch_is_marketing, touch_personalizes, answers_request, consent_granted, consent_refused,
    purpose_off_channel, share_consent_granted, profiling_opt_in. Reads safe_aggregate (sharing)."""
    s, v, touch, now = d.settings, d.values, d.touch, d.now
    kind, channel = touch.kind, touch.channel
    consents = d.scenario.consents
    outbound = channel in s.outbound_channels
    v["answers_request"] = (touch.trigger is Trigger.CUSTOMER_REQUEST and outbound
                            and (touch.requested_channel is None or touch.requested_channel is channel))
    # marketing by substance (CAN-SPAM primary purpose, PECR): an outbound touch that promotes is
    # marketing whatever purpose it is filed under; a service reminder that shows nothing is not
    promotes = outbound and kind in s.promotional_kinds and (
        touch.depth is not Depth.NONE or not s.covers("transactional_purposes", touch.purpose))
    marketing_purpose = s.covers("marketing_purposes", touch.purpose)
    marketing = kind in s.marketing_kinds or promotes or marketing_purpose
    v["touch_is_marketing"] = marketing
    v["touch_personalizes"] = (marketing or kind in s.personalization_kinds
                               or s.covers("personalization_purposes", touch.purpose))

    use = s.channel_purposes.get(channel)
    effective = use if use is not None and vocab.covers(touch.purpose, use) else touch.purpose
    if marketing and not marketing_purpose:
        # marketing by substance filed under another purpose is judged on the channel's marketing
        # use (its opt-in and opt-out), or on marketing itself when the channel has none
        effective = use if use is not None else s.marketing_purposes[0]
    granted, refusals = consent_state(consents, effective, channel, s, now, v["safe_aggregate"])
    v["consent_granted"] = granted
    v["consent_refused"] = bool(refusals)
    d.keys["consent_refused"] = tuple(refusals)
    off = off_channel(s, touch.purpose, channel)
    v["purpose_off_channel"] = off
    d.keys["purpose_off_channel"] = (touch.purpose,) if off else ()
    v["share_consent_granted"] = any_granted(consents, s.share_consent_purposes, s.gpc_refuses, now)
    v["profiling_opt_in"] = any_granted(consents, s.profiling_opt_in_purposes, s.gpc_refuses, now)


def _overlaps(a: str, b: str) -> bool:
    return vocab.covers(a, b) or vocab.covers(b, a)


def _is_refusal(c: ScenarioConsent) -> bool:
    return c.status is not ConsentStatus.GRANTED or c.source is ConsentSource.GPC


def _refuses(c: ScenarioConsent, use: str, gpc_refuses: tuple[str, ...]) -> bool:
    """A refusal record applies to ``use``: its purpose overlaps it, or it is a GPC record and one of
    ``gpc_refuses`` overlaps it (a GPC signal means "do not sell or share", whatever it was filed as)."""
    if _overlaps(c.purpose, use):
        return True
    return c.source is ConsentSource.GPC and any(_overlaps(g, use) for g in gpc_refuses)


def _future(c: ScenarioConsent, now: datetime) -> bool:
    return c.at is not None and c.at > now


def _aggregate_exempt(c: ScenarioConsent, settings: Settings) -> bool:
    """A refusal that is about individual-level data (a GPC signal, a refusal of sharing) and so does
    not apply to an aggregate meeting the minimum group size."""
    return c.source is ConsentSource.GPC or any(
        _overlaps(c.purpose, p) for p in (*settings.share_consent_purposes, *settings.gpc_refuses))


def consent_state(consents: tuple[ScenarioConsent, ...], use: str, channel: Channel,
                  settings: Settings, now: datetime, aggregate: bool) -> tuple[bool, list[str]]:
    """(granted, refusals) for a use on a channel.

    A grant applies when its purpose covers the use, its channel is absent or the touch's, and it is
    not dated after ``now`` (a consent given later does not count).
    A refusal (denied, withdrawn, or any GPC record) applies when it refuses the use (see
    :func:`_refuses`) and its channel is absent, the touch's, or one with the same channel purpose
    (a refusal of letters covers postcards), whatever its date (fail closed). Any applicable refusal
    beats every grant: simple, and monotone (withdrawing a consent can only make a decision stricter).
    For an ``aggregate`` that meets the minimum group size, refusals about individual-level data
    (:func:`_aggregate_exempt`) do not apply.
    """
    granted = False
    refusals: list[str] = []
    group = settings.channel_purposes.get(channel)
    for c in consents:
        if _is_refusal(c):
            if c.channel is not None and c.channel is not channel and (
                    group is None or settings.channel_purposes.get(c.channel) != group):
                continue
            if aggregate and _aggregate_exempt(c, settings):
                continue
            if _refuses(c, use, settings.gpc_refuses):
                where = f" on {c.channel.value}" if c.channel is not None else ""
                refusals.append(f"{c.purpose}{where} ({c.status.value}, {c.source.value})")
        elif ((c.channel is None or c.channel is channel) and vocab.covers(c.purpose, use)
              and not _future(c, now)):
            granted = True
    return granted and not refusals, refusals


def any_granted(consents: tuple[ScenarioConsent, ...], purposes: tuple[str, ...],
                gpc_refuses: tuple[str, ...], now: datetime) -> bool:
    """A granted consent (not dated after ``now``) for any of ``purposes`` (or a sub-use of one) and
    no refusal of ANY of them: a refusal of one (profiling) wins over a broader grant of another."""
    ok = any(not _is_refusal(c) and not _future(c, now) and vocab.covers(c.purpose, p)
             for p in purposes for c in consents)
    refused = any(_is_refusal(c) and _refuses(c, p, gpc_refuses) for p in purposes for c in consents)
    return ok and not refused


def off_channel(settings: Settings, purpose: str, channel: Channel) -> bool:
    """The purpose sits under the channel purpose of a channel with another channel purpose."""
    own = settings.channel_purposes.get(channel)
    return any(cp != own and vocab.covers(cp, purpose) for cp in settings.channel_purposes.values())
