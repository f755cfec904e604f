"""The in-backend campaign path types its proposals without validating each as a touch
(``tactful.campaign._TypedRows``): every row must be exactly what the validating path gives."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from tactful.batch.candidates import candidates
from tactful.batch.run import typed_candidates
from tactful.campaign import Item, Proposal, _candidate, _TypedRows, campaign_from_mapping, demo_campaign
from tactful.vocab import Channel

NOW = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
DEMO = Path(str(resources.files("tactful") / "campaigns" / "demo.yaml"))


def _validated_table(campaign: Any, proposals: list[Proposal]) -> pa.Table:
    """The proposals typed on the validating path: each one a touch document, parsed and typed."""
    table = pa.Table.from_pylist([_candidate(campaign, p) for p in proposals])
    cands = list(candidates(table, "test"))
    assert all(c.touch is not None for c in cands), [c.error for c in cands]
    return typed_candidates([(c, NOW) for c in cands])


def _validated(campaign: Any, proposals: list[Proposal]) -> list[dict[str, Any]]:
    return _validated_table(campaign, proposals).to_pylist()


def _proposals() -> list[Proposal]:
    plain = Item("p-1", "Bread", "bakery", ())
    seeded = Item("p-2", "Butter", "dairy", (), ("o-1", "o-0"))
    revealing = Item("p-3", "Nappies", "baby", ("user.demographic.household.baby",), ("o-2",))
    out = []
    for channel in (Channel.POSTCARD, Channel.POSTAL_MAIL, Channel.EMAIL, Channel.SMS):
        out += [
            Proposal("c-1", channel, (plain, seeded), "cp-1"),  # to a contact point, orders used
            Proposal("c-2", channel, (revealing, plain), None),  # no contact point: its kind
            Proposal("c-3", channel, (), None),  # nothing shown, nothing used
            Proposal("c-4", channel, (plain,), "cp-4", swapped=1),  # popular only: no orders
        ]
    return out


@pytest.mark.parametrize("sender_implies", [False, True])
def test_fast_typed_rows_equal_the_validated_ones(sender_implies: bool) -> None:
    campaign = demo_campaign()
    if sender_implies:  # a campaign whose sender reveals a category, other purpose and depth
        doc = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
        doc.update({"purpose": "marketing.advertising", "channels": ["email", "postal_mail"],
                    "sender_implies": ["user.sexual_life"], "content": {"recommendations": 2}})
        campaign = campaign_from_mapping(doc, source="t.yaml")
    proposals = _proposals()
    fast = _TypedRows(campaign, NOW)
    table, kept, refused = fast.table(proposals)
    assert kept == proposals and refused == []
    rows = table.to_pylist()
    assert rows == _validated(campaign, proposals)
    assert {r["to_kind"] for r in rows} >= {"postal", "email", "phone"}


def test_an_id_a_touch_would_not_take_goes_through_the_validating_path() -> None:
    fast = _TypedRows(demo_campaign(), NOW)

    def refused(p: Proposal) -> bool:
        table, kept, left_out = fast.table([p])
        assert (table.num_rows, kept, left_out) in ((0, [], [p]), (1, [p], []))
        return left_out == [p]

    for bad in (Item(" p-1", "x", None, ()), Item("p" * 201, "x", None, ()),
                Item("p-1", "x", None, (), ("",))):
        assert refused(Proposal("c-1", Channel.EMAIL, (bad,), None))
    assert refused(Proposal("c-1", Channel.EMAIL, (), " cp"))
    assert not refused(Proposal("c-1", Channel.EMAIL, (Item("p" * 200, "x", None, ()),), None))


@pytest.mark.parametrize("sender_implies", [False, True])
def test_the_columnar_table_equals_the_validated_one(sender_implies: bool) -> None:
    """A block's proposals are typed column by column (``_TypedRows.table``): the table must equal the
    validating path's, schema and all, and leave out (in order) exactly the proposals whose ids a
    touch would not take as they are."""
    campaign = demo_campaign()
    if sender_implies:
        doc = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
        doc.update({"purpose": "marketing.advertising", "channels": ["email", "postal_mail"],
                    "sender_implies": ["user.sexual_life"], "content": {"recommendations": 2}})
        campaign = campaign_from_mapping(doc, source="t.yaml")
    odd = Proposal("c-9", Channel.EMAIL, (Item(" p-1", "x", None, ()),), None)
    proposals = _proposals()
    proposals = [*proposals[:3], odd, *proposals[3:]]
    fast = _TypedRows(campaign, NOW)
    table, kept, refused = fast.table(proposals)
    assert kept == [p for p in proposals if p is not odd] and refused == [odd]
    expected = _validated_table(campaign, kept)
    assert table.schema == expected.schema
    assert table.to_pylist() == expected.to_pylist()
    assert table.equals(expected)
    empty, none, neither = fast.table([])
    assert none == neither == [] and empty.num_rows == 0 and empty.schema == expected.schema
