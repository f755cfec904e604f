"""Family **contact and visibility**: the contact point a touch goes to, and who else sees it."""

from __future__ import annotations

from tactful.features.context import Derivation, days_between
from tactful.vocab import CHANNEL_CONTACT_KIND, SharedWith


def produce(d: Derivation) -> None:
    """needs_contact_point, contact_point_missing, contact_point_bounced,
    contact_point_verified_after_now, contact_point_age_days, seen_by."""
    s, v, touch, now = d.settings, d.values, d.touch, d.now
    channel = touch.channel
    needed = CHANNEL_CONTACT_KIND[channel]
    v["needs_contact_point"] = needed is not None
    cp = None
    if touch.to is not None:
        cp = next((c for c in d.scenario.contact_points if c.id == touch.to), None)
    missing = needed is not None and (cp is None or cp.kind is not needed)
    v["contact_point_missing"] = missing
    usable = cp if needed is not None and not missing else None
    v["contact_point_bounced"] = bool(usable is not None and usable.bounced)
    age = -1
    future_check = False
    if usable is not None and usable.verified_at is not None:
        age = max(0, int(days_between(now, usable.verified_at)))
        future_check = usable.verified_at > now
    v["contact_point_age_days"] = age
    v["contact_point_verified_after_now"] = future_check
    seen = SharedWith.PRIVATE
    if needed is not None:
        seen = (usable.shared_with if usable is not None else None) or SharedWith.HOUSEHOLD
    floor = s.channel_visibility.get(channel)
    if floor is not None and floor.rank > seen.rank:
        seen = floor
    v["seen_by"] = seen
