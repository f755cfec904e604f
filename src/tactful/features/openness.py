"""Family **openness and depth**: the customer's openness and the touch's own fields."""

from __future__ import annotations

from tactful.features.context import Derivation


def produce(d: Derivation) -> None:
    """openness, openness_declared, customer_deceased, openness_depth_cap, touch_kind, channel,
    purpose, sender, trigger, depth (its evidence: the shown facts), named."""
    s, v, touch, customer = d.settings, d.values, d.touch, d.scenario.customer
    openness = customer.openness or s.default_openness
    v["openness"] = openness
    v["openness_declared"] = customer.openness is not None
    v["customer_deceased"] = customer.deceased
    v["openness_depth_cap"] = s.openness_max_depth[openness]
    v["touch_kind"] = touch.kind
    v["channel"] = touch.channel
    v["purpose"] = touch.purpose
    v["sender"] = touch.sender
    v["trigger"] = touch.trigger
    v["depth"] = touch.depth
    d.facts["depth"] = tuple(f.id for f in d.shown)
    v["named"] = touch.named
