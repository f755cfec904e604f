"""The Ibis feature producers agree, column by column, with the Python derivation of the scenario the
store gives the same candidate (tactful.realtime), on SQLite and PostgreSQL stores read in place by
DuckDB. A disagreement names the feature, the candidate and both values."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import ibis
import pytest
from pydantic import BaseModel
from sqlalchemy.engine import Engine

from tactful.batch.producers import contact_features, frequency_features
from tactful.batch.store import attach_store, connect
from tactful.features import derive
from tactful.model import ContactPoint, Customer, TouchRecord
from tactful.policy import load_pack
from tactful.realtime import StoreScenarioBuilder, parse_touch
from tactful.store import db
from tactful.testing.store import seed

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
FREQUENCY = ("recent_marketing_on_channel", "channel_frequency_cap", "recent_surveys")
CONTACT = ("needs_contact_point", "contact_point_missing", "contact_point_bounced", "contact_point_age_days",
           "contact_point_verified_after_now", "seen_by")
# (kind, purpose, channel, days before NOW): marketing and not, in and out of each window, after NOW
HISTORY = [
    ("offer", "marketing.communications.email", "email", 1),
    ("offer", "marketing.communications.email", "email", 6.9),
    ("offer", "marketing.communications.email", "email", 7.1),  # outside the 7-day email window
    ("service", "essential.service", "email", 2),  # transactional: never counted
    ("recommendation", "essential.service", "email", 3),  # promotional + personalizing kind
    ("reminder", "essential.service", "email", 3),  # transactional purpose on a reminder
    ("reminder", "marketing.communications.email", "email", 4),
    ("offer", "marketing.communications.postal", "postcard", 20),  # postal group, 28 days
    ("offer", "marketing.communications.postal", "postal_mail", 27.5),
    ("offer", "marketing.communications.postal", "postal_mail", 29),
    ("survey", "analytics.reporting", "email", 10),
    ("survey", "analytics.reporting", "web", 100),
    ("offer", "marketing.communications.email", "email", -1),  # after NOW
    ("offer", "marketing.communications.sms", "sms", 0),  # exactly at NOW
]
CHANNELS = ("email", "postal_mail", "postcard", "sms", "web", "push")


def world() -> list[BaseModel]:
    records: list[BaseModel] = [
        Customer(id="c1", first_name="A"), Customer(id="c2", first_name="B"),
        ContactPoint(id="c1-mail", customer_id="c1", kind="email", value="a@example.org",
                     shared_with="private", verified_at="2026-03-01T08:00:00Z"),
        ContactPoint(id="c1-mail-new", customer_id="c1", kind="email", value="new@example.org",
                     shared_with="household", verified_at="2026-10-01T08:00:00Z", bounced=True),
        ContactPoint(id="c1-mail-old", customer_id="c1", kind="email", value="old@example.org",
                     verified_at="2025-01-01T08:00:00Z"),
        ContactPoint(id="c1-home", customer_id="c1", kind="postal", value="1 Main St",
                     shared_with="household", verified_at="2026-10-20T00:00:00Z"),
        ContactPoint(id="c1-box", customer_id="c1", kind="postal", value="PO Box 1", shared_with="private"),
        ContactPoint(id="c1-phone", customer_id="c1", kind="phone", value="+15550100"),
        ContactPoint(id="c2-mail", customer_id="c2", kind="email", value="b@example.org",
                     shared_with="others", verified_at="2026-12-01T00:00:00Z"),
    ]
    for i, (kind, purpose, channel, days) in enumerate(HISTORY):
        records.append(TouchRecord(id=f"t{i}", customer_id="c1", kind=kind, purpose=purpose, channel=channel,
                                   at=NOW - timedelta(days=days)))
    return records


@pytest.fixture()
def store(db_url: str) -> Iterator[str]:
    engine: Engine = db.init_store(db_url)
    seed(engine, world(), origin="test:producers")
    engine.dispose()
    yield db_url


def _candidates() -> list[dict[str, Any]]:
    rows = []
    for customer in ("c1", "c2"):
        for channel in CHANNELS:
            for now in (NOW, NOW - timedelta(days=5), NOW + timedelta(days=30)):
                rows.append({"row": len(rows), "customer_id": customer, "channel": channel, "now": now})
    return rows


def _python(url: str, cands: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    pack = load_pack()
    builder = StoreScenarioBuilder(pack)
    engine = db.open_store(url)
    out = {}
    try:
        with engine.connect() as conn:
            for c in cands:
                spec = parse_touch({"touch": {"kind": "offer", "purpose": "marketing",
                                              "channel": c["channel"]}})
                scenario = builder.scenario(conn, c["customer_id"], spec, c["now"])
                values = derive(scenario, pack.settings).values
                out[c["row"]] = {f: values[f] for f in FREQUENCY}
    finally:
        engine.dispose()
    return out


def test_frequency_features_agree_with_the_python_derivation(store: str) -> None:
    pack = load_pack()
    cands = _candidates()
    expected = _python(store, cands)
    con = connect(threads=1)
    attached = attach_store(con, store)
    table = ibis.memtable(cands, schema={"row": "int64", "customer_id": "string", "channel": "string",
                                         "now": "timestamp('UTC')"})
    got = {r["row"]: r for r in frequency_features(table, attached.table("touches"), pack.settings)
           .to_pyarrow().to_pylist()}
    assert set(got) == set(expected)
    wrong = [(f, cands[row], expected[row][f], got[row][f]) for row in expected for f in FREQUENCY
             if expected[row][f] != got[row][f]]
    assert not wrong, "feature, candidate, python, ibis: " + "; ".join(map(str, wrong[:5]))
    # not vacuous: the history gives counts above zero and a customer without touches gives zeros
    assert max(v["recent_marketing_on_channel"] for v in expected.values()) >= 3
    assert any(v["recent_surveys"] for v in expected.values())
    assert all(expected[c["row"]]["recent_marketing_on_channel"] == 0
               for c in cands if c["customer_id"] == "c2")


CHANNELS_ALL = ("email", "sms", "phone", "postal_mail", "postcard", "web", "app", "push", "advisor",
                "partner_export")
RECIPIENTS: tuple[tuple[str | None, str | None], ...] = (
    (None, None), (None, "email"), (None, "phone"), (None, "postal"), ("c1-mail", None), ("c1-box", None),
    ("c1-mail-new", None), ("c2-mail", None), ("nowhere", None), ("c1-phone", None))


def _contact_candidates() -> list[dict[str, Any]]:
    rows = []
    for customer in ("c1", "c2"):
        for channel in CHANNELS_ALL:
            for to, to_kind in RECIPIENTS:
                for now in (NOW, NOW + timedelta(days=60)):
                    rows.append({"row": len(rows), "customer_id": customer, "channel": channel, "to": to,
                                 "to_kind": to_kind, "now": now})
    return rows


def test_contact_features_agree_with_the_python_derivation(store: str) -> None:
    pack = load_pack()
    cands = _contact_candidates()
    builder = StoreScenarioBuilder(pack)
    engine = db.open_store(store)
    expected: dict[int, dict[str, Any]] = {}
    try:
        with engine.connect() as conn:
            for c in cands:
                touch: dict[str, Any] = {"kind": "offer", "purpose": "marketing", "channel": c["channel"]}
                if c["to"] is not None:
                    touch["to"] = c["to"]
                elif c["to_kind"] is not None:
                    touch["to"] = {"kind": c["to_kind"]}
                scenario = builder.scenario(conn, c["customer_id"], parse_touch({"touch": touch}), c["now"])
                values = derive(scenario, pack.settings).values
                expected[c["row"]] = {f: getattr(values[f], "value", values[f]) for f in CONTACT}
    finally:
        engine.dispose()
    con = connect(threads=1)
    attached = attach_store(con, store)
    table = ibis.memtable(cands, schema={"row": "int64", "customer_id": "string", "channel": "string",
                                         "to": "string", "to_kind": "string", "now": "timestamp('UTC')"})
    got = {r["row"]: r for r in contact_features(table, attached.table("contact_points"), pack.settings)
           .to_pyarrow().to_pylist()}
    assert set(got) == set(expected)
    wrong = [(f, cands[row], expected[row][f], got[row][f]) for row in expected for f in CONTACT
             if expected[row][f] != got[row][f]]
    assert not wrong, f"{len(wrong)} cells disagree (feature, candidate, python, ibis): " + \
        "; ".join(map(str, wrong[:5]))
    # not vacuous: every outcome occurs
    seen = {f: {e[f] for e in expected.values()} for f in CONTACT}
    assert seen["contact_point_missing"] == {True, False} and seen["contact_point_bounced"] == {True, False}
    assert seen["seen_by"] == {"private", "household", "others"}
    assert seen["contact_point_verified_after_now"] == {True, False}
    assert {-1, 0} < seen["contact_point_age_days"]
