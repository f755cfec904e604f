"""Family **sharing**: what a touch that hands data to another party hands over."""

from __future__ import annotations

from tactful.features.context import Derivation
from tactful.vocab import Channel, Granularity, TouchKind


def produce(d: Derivation) -> None:
    """granularity, group_size, sender_is_partner, is_partner_share, safe_aggregate."""
    s, v, touch = d.settings, d.values, d.touch
    v["granularity"] = touch.granularity or Granularity.INDIVIDUAL
    v["group_size"] = touch.group_size or 0
    v["sender_is_partner"] = touch.sender != "first_party"
    partner_share = touch.kind is TouchKind.SHARE or touch.channel is Channel.PARTNER_EXPORT
    v["is_partner_share"] = partner_share
    v["safe_aggregate"] = (partner_share and touch.granularity is Granularity.AGGREGATE
                           and (touch.group_size or 0) >= s.min_group_size)
