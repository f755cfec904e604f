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

from tactful.batch.producers import (
    FAMILIES,
    IBIS_PRODUCERS,
    consent_features,
    contact_features,
    features_without_ibis_producer,
    frequency_features,
    openness_features,
    sharing_features,
)
from tactful.batch.store import attach_store, connect
from tactful.features import FEATURES, derive
from tactful.model import Consent, ContactPoint, Customer, TouchRecord
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
# (customer, purpose, channel, status, source, days before NOW): grants, refusals, GPC, future grants
CONSENTS: list[tuple[str, str, str | None, str, str, float]] = [
    ("c1", "marketing.communications.email", "email", "granted", "form", 300),
    ("c1", "marketing.communications.postal", "postal_mail", "denied", "portal", 30),  # covers postcards
    ("c1", "personalize", None, "granted", "form", 300),
    ("c1", "marketing.communications.sms", "sms", "granted", "form", -10),  # dated after NOW
    ("c2", "personalize.profiling", None, "granted", "form", -5),  # dated after NOW
    ("c2", "marketing.advertising.third_party", None, "denied", "gpc", 5),  # GPC: refuses sharing too
    ("c2", "third_party_sharing", None, "granted", "form", -10),  # dated after NOW
    ("c2", "marketing", None, "granted", "import", 100),
    ("c3", "personalize.profiling", None, "granted", "form", 200),
    ("c3", "personalize.content.profiling", None, "withdrawn", "portal", 10),  # refusal beats the grant
    ("c3", "marketing.communications", None, "granted", "form", 200),
    ("c3", "marketing.communications.push", "push", "withdrawn", "advisor", 1),
    ("c4", "third_party_sharing", None, "granted", "form", 50),
    ("c4", "personalize.profiling", None, "granted", "tcf", 50),
    ("c4", "marketing.communications.email", None, "granted", "form", 50),
    ("c4", "essential", "email", "denied", "other", 3),
]
CHANNELS = ("email", "postal_mail", "postcard", "sms", "web", "push")


def world() -> list[BaseModel]:
    records: list[BaseModel] = [
        Customer(id="c1", first_name="A"), Customer(id="c2", first_name="B"),
        Customer(id="c3", first_name="C", openness="closed", deceased=True),
        Customer(id="c4", first_name="D", openness="open"),
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
    for i, (customer, purpose, channel, status, source, days) in enumerate(CONSENTS):
        records.append(Consent(id=f"k{i}", customer_id=customer, purpose=purpose, channel=channel,
                               status=status, source=source, at=NOW - timedelta(days=days)))
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


# the touch columns of a typed candidates table, as the Ibis producers read them
TOUCH_SCHEMA = {"row": "int64", "customer_id": "string", "kind": "string", "purpose": "string",
                "channel": "string", "sender": "string", "trigger": "string", "depth": "string",
                "named": "boolean", "granularity": "string", "group_size": "int64", "now": "timestamp('UTC')"}


def _derived(url: str, cands: list[dict[str, Any]], features: tuple[str, ...]) -> dict[int, dict[str, Any]]:
    """The Python derivation of the scenario the store gives each candidate (its non-NULL touch fields)."""
    pack = load_pack()
    builder = StoreScenarioBuilder(pack)
    engine = db.open_store(url)
    out: dict[int, dict[str, Any]] = {}
    try:
        with engine.connect() as conn:
            for c in cands:
                touch = {k: v for k, v in c.items()
                         if k not in ("row", "customer_id", "now") and v is not None}
                scenario = builder.scenario(conn, c["customer_id"], parse_touch({"touch": touch}), c["now"])
                values = derive(scenario, pack.settings).values
                out[c["row"]] = {f: getattr(values[f], "value", values[f]) for f in features}
    finally:
        engine.dispose()
    return out


def _disagreements(expected: dict[int, dict[str, Any]], got: dict[int, dict[str, Any]],
                   cands: list[dict[str, Any]], features: tuple[str, ...]) -> list[Any]:
    assert set(got) == set(expected)
    return [(f, cands[row], expected[row][f], got[row][f]) for row in expected for f in features
            if expected[row][f] != got[row][f] or type(expected[row][f]) is not type(got[row][f])]


def _touch_candidates() -> list[dict[str, Any]]:
    """Every customer x touches that vary each field of the touch (and leave it out)."""
    touches: list[dict[str, Any]] = [
        {"kind": "offer", "purpose": "marketing", "channel": "email"},
        {"kind": "greeting", "purpose": "marketing.communications.email", "channel": "web",
         "trigger": "realtime_browse", "depth": "item", "named": True},
        {"kind": "service", "purpose": "essential.service", "channel": "postcard", "depth": "none",
         "named": False, "trigger": "customer_request"},
        {"kind": "recommendation", "purpose": "personalize", "channel": "app", "depth": "detailed_history",
         "sender": "partner:acme"},
        {"kind": "share", "purpose": "third_party_sharing", "channel": "partner_export",
         "granularity": "aggregate", "group_size": 500, "sender": "first_party"},
        {"kind": "share", "purpose": "third_party_sharing", "channel": "partner_export",
         "granularity": "aggregate", "group_size": 3},
        {"kind": "share", "purpose": "third_party_sharing", "channel": "partner_export",
         "granularity": "aggregate"},
        # the default pack's min_group_size is 10: at it and just below
        {"kind": "share", "purpose": "third_party_sharing", "channel": "partner_export",
         "granularity": "aggregate", "group_size": 10},
        {"kind": "share", "purpose": "third_party_sharing", "channel": "partner_export",
         "granularity": "aggregate", "group_size": 9},
        {"kind": "offer", "purpose": "marketing", "channel": "partner_export", "granularity": "individual",
         "group_size": 0},
        {"kind": "share", "purpose": "third_party_sharing", "channel": "email", "granularity": "aggregate",
         "group_size": 1000},
        {"kind": "survey", "purpose": "analytics.reporting", "channel": "sms", "trigger": "event",
         "depth": "segment", "sender": "partner:survey-co"},
    ]
    rows: list[dict[str, Any]] = []
    for customer in ("c1", "c2", "c3", "c4"):
        for touch in touches:
            row: dict[str, Any] = dict.fromkeys(TOUCH_SCHEMA)
            row.update(touch, row=len(rows), customer_id=customer, now=NOW)
            rows.append(row)
    return rows


def _ibis_rows(table: Any) -> dict[int, dict[str, Any]]:
    return {r["row"]: r for r in table.to_pyarrow().to_pylist()}


def test_openness_and_depth_features_agree_with_the_python_derivation(store: str) -> None:
    pack = load_pack()
    features = FAMILIES["openness and depth"]
    cands = _touch_candidates()
    expected = _derived(store, cands, features)
    attached = attach_store(connect(threads=1), store)
    got = _ibis_rows(openness_features(ibis.memtable(cands, schema=TOUCH_SCHEMA), attached.table("customers"),
                                       pack.settings))
    wrong = _disagreements(expected, got, cands, features)
    assert not wrong, f"{len(wrong)} cells disagree (feature, candidate, python, ibis): " + \
        "; ".join(map(str, wrong[:5]))
    seen = {f: {e[f] for e in expected.values()} for f in features}
    assert {"closed", "open", pack.settings.default_openness.value} <= seen["openness"]
    assert seen["openness_declared"] == seen["customer_deceased"] == seen["named"] == {True, False}
    assert len(seen["openness_depth_cap"]) >= 2 and len(seen["depth"]) >= 4 and len(seen["trigger"]) >= 3


def test_openness_of_a_customer_missing_from_the_store_is_null(store: str) -> None:
    """Fail closed: the Python path refuses an unknown customer; the Ibis frame holds NULLs (blocked)."""
    pack = load_pack()
    row = dict.fromkeys(TOUCH_SCHEMA) | {"row": 0, "customer_id": "ghost", "kind": "offer",
                                         "purpose": "marketing", "channel": "email", "now": NOW}
    attached = attach_store(connect(threads=1), store)
    got = _ibis_rows(openness_features(ibis.memtable([row], schema=TOUCH_SCHEMA), attached.table("customers"),
                                       pack.settings))[0]
    assert got["openness"] is got["openness_declared"] is got["customer_deceased"] is None
    assert got["openness_depth_cap"] is None


def test_sharing_features_agree_with_the_python_derivation(store: str) -> None:
    pack = load_pack()
    features = FAMILIES["sharing"]
    cands = _touch_candidates()
    expected = _derived(store, cands, features)
    got = _ibis_rows(sharing_features(ibis.memtable(cands, schema=TOUCH_SCHEMA), pack.settings))
    wrong = _disagreements(expected, got, cands, features)
    assert not wrong, f"{len(wrong)} cells disagree (feature, candidate, python, ibis): " + \
        "; ".join(map(str, wrong[:5]))
    seen = {f: {e[f] for e in expected.values()} for f in features}
    assert seen["safe_aggregate"] == seen["is_partner_share"] == seen["sender_is_partner"] == {True, False}
    assert seen["granularity"] == {"individual", "aggregate"} and {0, 3, 500} <= seen["group_size"]


def test_every_feature_has_exactly_one_producer_per_backend(store: str) -> None:
    """Issue 9 §1: every feature is in exactly one family; each family has one Ibis producer, whose
    frame holds exactly the family's features; the Python derivation produces every feature."""
    from tactful.batch.producers import candidates_table, family_frames

    counted = [f for names in FAMILIES.values() for f in names]
    twice = sorted({f for f in counted if counted.count(f) > 1})
    assert not twice, f"features in more than one family: {twice}"
    assert not set(counted) - set(FEATURES), "families name features the catalogue does not have"
    assert set(counted) == set(FEATURES), f"features in no family: {sorted(set(FEATURES) - set(counted))}"
    import tactful.batch.producers as producers

    assert set(IBIS_PRODUCERS) == set(FAMILIES), "a family without an Ibis producer"
    assert len(set(IBIS_PRODUCERS.values())) == len(IBIS_PRODUCERS), "one Ibis producer per family"
    assert all(callable(getattr(producers, name)) for name in IBIS_PRODUCERS.values())
    assert features_without_ibis_producer() == []
    # the Ibis side: each family's frame holds its features and nothing else
    pack = load_pack()
    attached = attach_store(connect(threads=1), store)
    frames = family_frames(candidates_table([]), attached, pack.settings)
    assert set(frames) == set(FAMILIES)
    for family, frame in frames.items():
        assert sorted(frame.columns) == sorted(("row", *FAMILIES[family])), family
    # the Python side: derive produces every feature, once
    engine = db.open_store(store)
    try:
        with engine.connect() as conn:
            scenario = StoreScenarioBuilder(pack).scenario(conn, "c1", None, NOW)
    finally:
        engine.dispose()
    assert sorted(derive(scenario, pack.settings).values) == sorted(FEATURES)


CONSENT_FEATURES = FAMILIES["consent"]


def _consent_candidates() -> list[dict[str, Any]]:
    """Every customer x touches on each channel and purpose the consents speak about, at NOW and later."""
    touches: list[dict[str, Any]] = [
        {"kind": "reminder", "purpose": "essential.service", "channel": "email"},  # transactional
        {"kind": "reminder", "purpose": "essential.service", "channel": "email", "depth": "item"},  # promotes
        {"kind": "reminder", "purpose": "essential.service", "channel": "web", "depth": "item"},
        {"kind": "service", "purpose": "essential", "channel": "email", "trigger": "customer_request"},
        {"kind": "service", "purpose": "essential.service", "channel": "web", "trigger": "customer_request"},
        {"kind": "greeting", "purpose": "personalize.content", "channel": "app", "depth": "segment"},
        {"kind": "survey", "purpose": "analytics.reporting", "channel": "web"},
        {"kind": "share", "purpose": "third_party_sharing", "channel": "partner_export",
         "granularity": "aggregate", "group_size": 500},
        {"kind": "share", "purpose": "third_party_sharing", "channel": "partner_export"},
        # an email-marketing purpose on an SMS: off channel
        {"kind": "recommendation", "purpose": "marketing.communications.email", "channel": "sms"},
        {"kind": "offer", "purpose": "marketing.communications", "channel": "web"},
        # a channel's own purpose is not off channel; a postal purpose on a postcard shares the group
        {"kind": "offer", "purpose": "marketing.communications.email", "channel": "email"},
        {"kind": "offer", "purpose": "marketing.communications.postal", "channel": "postcard"},
    ]
    for channel in ("email", "sms", "postal_mail", "postcard", "push", "phone", "web"):
        touches.append({"kind": "offer", "purpose": "marketing", "channel": channel})
    rows: list[dict[str, Any]] = []
    for customer in ("c1", "c2", "c3", "c4"):
        for touch in touches:
            for now in (NOW, NOW + timedelta(days=30)):
                row: dict[str, Any] = dict.fromkeys(TOUCH_SCHEMA)
                row.update(touch, row=len(rows), customer_id=customer, now=now)
                rows.append(row)
    return rows


def test_consent_features_agree_with_the_python_derivation(store: str) -> None:
    pack = load_pack()
    cands = _consent_candidates()
    expected = _derived(store, cands, CONSENT_FEATURES)
    attached = attach_store(connect(threads=1), store)
    got = _ibis_rows(consent_features(ibis.memtable(cands, schema=TOUCH_SCHEMA), attached.table("consents"),
                                      pack.settings))
    wrong = _disagreements(expected, got, cands, CONSENT_FEATURES)
    assert not wrong, f"{len(wrong)} cells disagree (feature, candidate, python, ibis): " + \
        "; ".join(map(str, wrong[:5]))
    # not vacuous: every feature takes both values
    for f in CONSENT_FEATURES:
        assert {e[f] for e in expected.values()} == {True, False}, f


# --------------------------------------------------------------------------- the facts a touch uses and shows

def fact_world() -> list[BaseModel]:
    """Products, orders and facts for the families that read what a touch uses and shows."""
    from tactful.model import Fact, Order, OrderLine, Product

    def ago(**kw: float) -> datetime:
        return NOW - timedelta(**kw)

    products = [
        Product(id="p-test", name="Pregnancy Test 2pk", department="PHARMACY"),  # mapping: reproductive
        Product(id="p-beer", name="Craft Beer  LAGER"),  # mapping: alcohol
        Product(id="p-bread", name="Bread"),
        Product(id="p-lab", name="Widget", implies=("user.sexual_life",)),  # stored label only
        Product(id="p-id", name="Passport photo", implies=("user.government_id.passport_number",)),
    ]
    orders: list[BaseModel] = []
    for oid, customer, at, items, context in (
            ("o1", "c1", ago(days=3), ["p-test", "p-bread"], "checkout"),
            ("o2", "c1", ago(days=40), ["p-bread"], "checkout"),
            ("o3", "c1", ago(days=-2), ["p-beer"], "checkout"),  # after NOW
            ("o4", "c1", ago(days=10), ["p-beer"], "checkout"),  # a purchase fact stands for it
            ("o5", "c2", ago(days=1), ["p-lab"], "Payment-Processing"),
            ("o6", "c2", ago(days=100), [], "checkout"),  # no lines
            ("o7", "c4", ago(days=5), ["p-id"], "checkout")):
        orders.append(Order(id=oid, customer_id=customer, at=at, context=context))
        orders.extend(OrderLine(order_id=oid, line_no=i + 1, product_id=p) for i, p in enumerate(items))

    def fact(fid: str, customer: str, kind: str, category: str, origin: str, source: str = "web",
             context: str = "account", at: datetime | None = None, **kw: Any) -> Fact:
        return Fact(id=fid, customer_id=customer, kind=kind, category=category, origin=origin, source=source,
                    context=context, at=at, **kw)

    facts = [
        fact("c1-preg", "c1", "attribute", "user.health_and_medical.reproductive", "declared",
             label="Pregnant", at=ago(days=50)),
        fact("c1-bday", "c1", "attribute", "user.demographic.date_of_birth", "declared",
             context="Birthday Club", at=ago(days=300)),
        fact("c1-chat", "c1", "attribute", "user.health_and_medical", "declared", source="chat",
             context="Support Chat", label="was in hospital", at=ago(minutes=30)),
        fact("c1-chat-old", "c1", "attribute", "user.health_and_medical.mental", "declared", source="chat",
             context="support", at=ago(hours=5)),
        fact("c1-loc", "c1", "event", "user.location.precise", "observed", source="app", context="geofence",
             at=ago(minutes=10)),
        fact("c1-loc-old", "c1", "attribute", "user.location.precise", "observed", source="app",
             context="geofence", at=ago(hours=2)),
        fact("c1-gamble", "c1", "inference", "user.behavior.gambling", "inferred", source="web",
             label="Gambler", at=ago(days=2)),
        fact("c1-pref", "c1", "preference", "user.behavior.purchase_history", "declared", label="likes tea",
             at=ago(days=20)),
        fact("c1-buy", "c1", "purchase", "user.behavior.purchase_history", "observed", source="pos",
             context="checkout", value="o4", at=ago(days=10)),
        fact("c1-partner", "c1", "attribute", "user.health_and_medical.genetic", "declared",
             source="partner:acme", context="import", label="genetic risk", at=ago(days=7)),
        fact("c1-future", "c1", "event", "user.behavior.browsing_history", "observed", at=ago(days=-1)),
        fact("c1-timeless", "c1", "attribute", "user.demographic.household", "observed",
             implies=("user.demographic.household.baby",)),
        fact("c2-mood", "c2", "inference", "user.health_and_medical.mental", "inferred", source="web",
             label="  Depression ", at=ago(days=3)),
        fact("c2-told", "c2", "attribute", "user.health_and_medical", "declared", label="depression",
             at=ago(days=30)),
        fact("c2-bday", "c2", "attribute", "user.demographic.date_of_birth", "observed", context="checkout"),
        fact("c2-card", "c2", "attribute", "user.financial.credit_card", "observed", source="pos",
             context="payment", at=ago(days=1)),
        fact("c2-drink", "c2", "inference", "user.behavior.substance.alcohol", "observed",
             label="heavy drinker", at=ago(days=4)),
        fact("c4-passport", "c4", "attribute", "user.government_id.passport_number", "declared",
             context="kyc", at=ago(days=9)),
        fact("c4-health", "c4", "attribute", "user.health_and_medical.mental", "observed",
             source="web", context="browsing", at=ago(days=2)),
        fact("c4-buy", "c4", "purchase", "user.behavior.purchase_history", "observed", source="pos",
             context="checkout", value="o7", at=ago(days=5)),
        fact("c4-buy-2", "c4", "purchase", "user.behavior.purchase_history", "observed",
             source="partner:shop", context="checkout", value="o7", at=ago(days=4)),  # not the one for o7
        fact("c1-help", "c1", "attribute", "user.demographic.profile", "declared", context="Help Desk",
             at=ago(days=1)),  # an alias of support: a conversation
        # c2 has no profiling opt-in: a partner's "declared" genetic record does not license her own
        fact("c2-gene", "c2", "attribute", "user.health_and_medical.genetic", "observed", at=ago(days=1)),
        fact("c2-partner", "c2", "attribute", "user.health_and_medical.genetic", "declared",
             source="partner:acme", context="import", at=ago(days=7)),
        fact("c2-flu", "c2", "attribute", "user.health_and_medical", "observed", label="flu", at=ago(days=1)),
        fact("c2-refund", "c2", "attribute", "user.financial", "observed", context="payment refund",
             at=ago(days=1)),
        fact("c4-bday", "c4", "attribute", "user.demographic.date_of_birth", "observed",
             context="birthday_club"),
    ]
    return [*products, *orders, *facts]


def _raw_rows(engine: Engine) -> None:
    """Rows the import would refuse but a store may hold (written before a vocabulary change, or by
    hand): keys outside the vocabulary (customer c5) and implies that are not a list of keys (a fact
    of c6, the product of an order of c7)."""
    from tactful.model import Customer as C
    from tactful.store import tables as tb

    seed(engine, [C(id="c5", first_name="E"), C(id="c6", first_name="F"), C(id="c7", first_name="G")],
         origin="test:raw")
    base = {"label": None, "value": None, "origin": "observed", "source": "web", "context": "account",
            "at": NOW - timedelta(days=1)}
    with engine.begin() as conn:
        conn.execute(tb.products.insert(), [
            {"id": "p-odd", "name": "Odd", "implies": ["user.unheard_of"]},
            {"id": "p-broken", "name": "Broken", "implies": "user.sexual_life"}])
        conn.execute(tb.orders.insert(), [
            {"id": "o8", "customer_id": "c5", "at": NOW - timedelta(days=2), "source": "pos",
             "context": "checkout"},
            {"id": "o9", "customer_id": "c7", "at": NOW - timedelta(days=2), "source": "pos",
             "context": "checkout"}])
        conn.execute(tb.order_lines.insert(), [{"order_id": "o8", "line_no": 1, "product_id": "p-odd"},
                                               {"order_id": "o9", "line_no": 1, "product_id": "p-broken"}])
        conn.execute(tb.facts.insert(), [
            base | {"id": "c5-odd", "customer_id": "c5", "kind": "attribute",
                    "category": "user.health_and_medical.made_up", "implies": ["user.gov_id_ish"]},
            base | {"id": "c5-odd-inf", "customer_id": "c5", "kind": "inference", "origin": "inferred",
                    "category": "user.behavior.gambling.online", "implies": [], "label": "gambler"},
            base | {"id": "c5-id", "customer_id": "c5", "kind": "attribute",
                    "category": "user.government_id.passport_number.scan", "implies": []},
            base | {"id": "c6-bad", "customer_id": "c6", "kind": "attribute", "category": "user.location",
                    "implies": "user.location"}])
        conn.execute(tb.consents.insert(), [
            {"id": "k-odd", "customer_id": "c5", "purpose": "marketing.unheard_of", "channel": None,
             "status": "granted", "source": "form", "at": NOW - timedelta(days=3)}])
        conn.execute(tb.touches.insert(), [
            {"id": "t-odd", "customer_id": "c5", "kind": "offer", "purpose": "made_up.use",
             "channel": "email", "at": NOW - timedelta(days=2)},
            {"id": "t-odd-later", "customer_id": "c4", "kind": "offer", "purpose": "made_up.later",
             "channel": "email", "at": NOW + timedelta(days=1)}])  # in the window of a later `now` only


@pytest.fixture()
def fact_store(db_url: str) -> Iterator[str]:
    engine: Engine = db.init_store(db_url)
    seed(engine, [*world(), *fact_world()], origin="test:producers")
    _raw_rows(engine)
    engine.dispose()
    yield db_url


#: touches that exercise the selectors, the provenance contexts and the sensitivity rules
FACT_TOUCHES: list[dict[str, Any]] = [
    {"kind": "offer", "purpose": "marketing", "channel": "email",
     "uses": [{"kind": "purchase", "within_days": 60}]},
    {"kind": "offer", "purpose": "marketing", "channel": "email", "uses": [{"kind": "purchase"}]},
    {"kind": "service", "purpose": "essential.service", "channel": "email", "shows": ["o1"]},
    {"kind": "recommendation", "purpose": "marketing", "channel": "email", "uses": ["o1", "o4"]},
    {"kind": "service", "purpose": "essential.service", "channel": "email", "uses": ["o4", "o7"]},
    {"kind": "offer", "purpose": "marketing", "channel": "email", "uses": ["nope"], "shows": ["o3", "o8"]},
    {"kind": "service", "purpose": "essential.service", "channel": "email", "shows": [{"category": "user"}]},
    {"kind": "offer", "purpose": "made_up.purpose", "channel": "web"},
    {"kind": "offer", "purpose": "marketing", "channel": "web", "sender": "partner:odd",
     "sender_implies": ["user.health_and_medical.made_up"], "shows_implies": ["user.sexual_life.made_up"]},
    {"kind": "offer", "purpose": "marketing", "channel": "app",
     "uses": [{"category": "user.location", "newest": 1}]},
    {"kind": "offer", "purpose": "marketing", "channel": "app", "uses": [{"category": "user.location"}]},
    {"kind": "greeting", "purpose": "marketing", "channel": "email", "shows": [{"origin": "declared"}]},
    {"kind": "greeting", "purpose": "marketing", "channel": "email",
     "uses": [{"category": "user.demographic.date_of_birth"}]},
    {"kind": "service", "purpose": "essential.service", "channel": "email",
     "uses": [{"context": "support-chat"}]},
    {"kind": "advisor_prompt", "purpose": "essential.service", "channel": "advisor",
     "trigger": "customer_request", "shows": [{"source": "chat"}]},
    {"kind": "advisor_prompt", "purpose": "essential.service", "channel": "advisor",
     "shows": [{"source": "chat"}]},
    {"kind": "offer", "purpose": "marketing", "channel": "web", "shows_items": ["p-test"]},
    {"kind": "offer", "purpose": "marketing", "channel": "web", "shows_items": ["p-bread"],
     "shows_implies": ["user.demographic.household.baby"], "sender": "partner:babyshop",
     "sender_implies": ["user.demographic.household"]},
    {"kind": "offer", "purpose": "marketing", "channel": "email", "sender": "partner:adult",
     "sender_implies": ["user.sexual_life"], "uses": [{"kind": "purchase", "newest": 2}]},
    {"kind": "recommendation", "purpose": "personalize", "channel": "app",
     "uses": [{"kind": "inference"}, {"origin": "inferred"}]},
    {"kind": "recommendation", "purpose": "personalize", "channel": "app",
     "uses": [{"category": "user.health_and_medical"}, {"category": "user.government_id"}]},
    {"kind": "service", "purpose": "essential.service", "channel": "email",
     "shows": [{"category": "user.government_id"}]},
    {"kind": "offer", "purpose": "marketing", "channel": "web"},  # generic in session
    {"kind": "offer", "purpose": "marketing", "channel": "web", "depth": "history"},
    {"kind": "offer", "purpose": "marketing", "channel": "web", "named": True},
    {"kind": "offer", "purpose": "marketing", "channel": "web", "uses": ["nope"]},
    {"kind": "offer", "purpose": "marketing", "channel": "web",
     "uses": [{"id": "c1-pref", "kind": "event"}]},  # in the pool but filtered out: not dangling
    {"kind": "advisor_prompt", "purpose": "essential.service", "channel": "advisor",
     "trigger": "customer_request", "shows": ["c1-chat"]},
    {"kind": "service", "purpose": "essential.service", "channel": "email", "trigger": "customer_request",
     "shows": ["c1-chat"]},
    {"kind": "recommendation", "purpose": "personalize", "channel": "app",
     "uses": ["c1-help", "c2-flu", "c2-refund"]},
    {"kind": "recommendation", "purpose": "personalize", "channel": "app", "uses": ["c2-gene"]},
    {"kind": "service", "purpose": "essential.service", "channel": "email", "uses": [{"context": "payment"}]},
    {"kind": "offer", "purpose": "marketing", "channel": "email", "uses": [{"source": "partner:acme"}],
     "shows": [{"kind": "preference"}]},
    {"kind": "offer", "purpose": "marketing", "channel": "email", "uses": [{"kind": "preference"}],
     "shows_implies": ["user.health_and_medical.reproductive"]},
    {"kind": "offer", "purpose": "marketing", "channel": "email",
     "uses": [{"within_days": 1}, {"kind": "event", "within_days": 3}]},
]
FACT_NOWS = (NOW, NOW + timedelta(days=3), NOW - timedelta(hours=1))


def _fact_candidates() -> list[dict[str, Any]]:
    from tactful.batch.producers import candidate_row

    rows: list[dict[str, Any]] = []
    for customer in ("c1", "c2", "c3", "c4", "c5"):
        for touch in FACT_TOUCHES:
            for now in FACT_NOWS:
                spec = parse_touch({"touch": touch})
                rows.append(candidate_row(len(rows), customer, spec.touch, now) | {"_touch": touch})
    return rows


def _python_values(url: str, cands: list[dict[str, Any]], pack: Any) -> dict[int, Any]:
    """The Python derivation's feature values of every fact candidate, by row, from the store at
    ``url`` (the reference both agreement tests compare the Ibis frames against)."""
    builder = StoreScenarioBuilder(pack)
    engine = db.open_store(url)
    try:
        with engine.connect() as conn:
            return {c["row"]: derive(builder.scenario(conn, c["customer_id"],
                                                      parse_touch({"touch": c["_touch"]}), c["now"]),
                                     pack.settings).values
                    for c in cands}
    finally:
        engine.dispose()


def _fact_agreement(url: str, family: str) -> dict[int, dict[str, Any]]:
    """Both derivations of ``family`` on every fact candidate; asserts they agree cell by cell and
    returns the Python values."""
    from tactful.batch.producers import candidates_table, family_frames

    pack = load_pack()
    features = FAMILIES[family]
    cands = _fact_candidates()
    expected = {row: {f: values[f] for f in features}
                for row, values in _python_values(url, cands, pack).items()}
    attached = attach_store(connect(threads=1), url)
    table = candidates_table({k: v for k, v in c.items() if k != "_touch"} for c in cands)
    got = _ibis_rows(family_frames(table, attached, pack.settings)[family])
    wrong = _disagreements(expected, got, [c["_touch"] | {"customer": c["customer_id"], "now": str(c["now"])}
                                           for c in cands], features)
    assert not wrong, f"{len(wrong)} cells disagree (feature, candidate, python, ibis): " + \
        "; ".join(map(str, wrong[:5]))
    return expected


def test_data_hygiene_features_agree_with_the_python_derivation(fact_store: str) -> None:
    expected = _fact_agreement(fact_store, "data hygiene")
    for f in FAMILIES["data hygiene"]:
        assert {e[f] for e in expected.values()} == {True, False}, f


def test_provenance_features_agree_with_the_python_derivation(fact_store: str) -> None:
    expected = _fact_agreement(fact_store, "provenance and context")
    for f in FAMILIES["provenance and context"]:
        assert {e[f] for e in expected.values()} == {True, False}, f


def test_sensitivity_features_agree_with_the_python_derivation(fact_store: str) -> None:
    expected = _fact_agreement(fact_store, "sensitivity and inference")
    for f in FAMILIES["sensitivity and inference"]:
        assert {e[f] for e in expected.values()} == {True, False}, f


def test_the_whole_feature_frame_agrees_with_the_python_derivation(fact_store: str) -> None:
    """feature_frame (every family joined on row) against derive, every feature of every candidate."""
    from tactful.batch.frame import arrow_schema
    from tactful.batch.producers import candidates_table, feature_frame

    pack = load_pack()
    cands = _fact_candidates()
    expected = {row: {f: getattr(values[f], "value", values[f]) for f in FEATURES}
                for row, values in _python_values(fact_store, cands, pack).items()}
    attached = attach_store(connect(threads=1), fact_store)
    table = candidates_table({k: v for k, v in c.items() if k != "_touch"} for c in cands)
    frame = feature_frame(table, attached, pack.settings).to_pyarrow()
    # one lazy expression (materialize=False, for a query plan) gives the same frame
    lazy = feature_frame(table, attached, pack.settings, materialize=False).to_pyarrow()
    assert lazy.sort_by("row").equals(frame.sort_by("row"))
    assert frame.schema.equals(arrow_schema()), (frame.schema, arrow_schema())
    assert frame.num_rows == len(cands)
    got = {r["row"]: r for r in frame.to_pylist()}
    wrong = _disagreements(expected, got, [c["_touch"] | {"customer": c["customer_id"], "now": str(c["now"])}
                                           for c in cands], tuple(FEATURES))
    assert not wrong, f"{len(wrong)} cells disagree (feature, candidate, python, ibis): " + \
        "; ".join(map(str, wrong[:5]))


def test_what_the_python_path_refuses_to_judge_is_null_in_the_ibis_frame(fact_store: str) -> None:
    """Fail closed: a fact whose implies is not a list (c6), a shown product whose implies is not a
    list or that is not in the store, a context SQL cannot case-fold as Python does, a customer missing
    from the store: the Python path refuses the scenario; the Ibis families are NULL (blocked)."""
    from tactful.batch.producers import candidate_row, candidates_table, family_frames
    from tactful.errors import TactfulError

    pack = load_pack()
    engine = db.open_store(fact_store)
    with engine.begin() as conn:
        from tactful.store import tables as tb

        conn.execute(tb.facts.insert(), [{
            "id": "c4-strasse", "customer_id": "c4", "kind": "attribute", "category": "user.location",
            "implies": [], "origin": "observed", "source": "web", "context": "STRASSE-ß", "at": NOW}])
    plain = {"kind": "offer", "purpose": "marketing", "channel": "web"}
    refused = [("c6", plain), ("c7", plain | {"uses": [{"kind": "purchase"}]}),
               ("c1", plain | {"shows_items": ["p-broken"]}),
               ("c1", plain | {"shows_items": ["p-nowhere"]}), ("ghost", plain)]
    # Python judges these (str.casefold makes ß "ss"); SQL's lower() cannot, so Ibis gives NULL
    beyond_sql = [("c4", plain), ("c1", plain | {"uses": [{"context": "Straße"}]})]
    cases = [*refused, *beyond_sql]
    builder = StoreScenarioBuilder(pack)
    try:
        with engine.connect() as conn:
            for customer, touch in refused:
                with pytest.raises(TactfulError):
                    builder.scenario(conn, customer, parse_touch({"touch": touch}), NOW)
    finally:
        engine.dispose()
    rows = [candidate_row(i, customer, parse_touch({"touch": touch}).touch, NOW)
            for i, (customer, touch) in enumerate([*cases, ("c1", plain)])]
    attached = attach_store(connect(threads=1), fact_store)
    frames = family_frames(candidates_table(rows), attached, pack.settings)
    for family in ("data hygiene", "provenance and context", "sensitivity and inference"):
        got = _ibis_rows(frames[family])
        for i, (customer, touch) in enumerate(cases):
            assert all(got[i][f] is None for f in FAMILIES[family]), (family, customer, touch, got[i])
        # and the plain candidate of a customer without such rows is judged
        assert all(got[len(cases)][f] is not None for f in FAMILIES[family]), family


def test_sql_lower_case_folds_as_python_outside_the_guarded_characters() -> None:
    """The Ibis producers normalise contexts and labels with SQL's lower(); they return NULL for the
    characters whose str.casefold() differs (usage._unfoldable). On every other character DuckDB's
    lower() must be Python's str.lower() = str.casefold(), or the agreement would not hold."""
    import sys

    from tactful.batch.usage import _unfoldable, normalise_context, normalise_label

    guarded = set(_unfoldable())
    assert {"ß", "ﬁ", "İ", "ς"} <= guarded
    chars = [chr(i) for i in range(sys.maxunicode + 1)
             if not 0xD800 <= i < 0xE000 and chr(i) not in guarded]
    con = connect(threads=1)
    t = ibis.memtable({"c": chars})
    lowered = con.to_pyarrow(t.select(l=t.c.lower())).column("l").to_pylist()
    wrong = [(c, low) for c, low in zip(chars, lowered, strict=True) if low != c.casefold()]
    assert not wrong, f"{len(wrong)} characters lower-case differently: {wrong[:5]}"
    # and the guard works: a guarded character gives NULL, an ordinary context its normal form
    texts = ["Support Chat", "  Help--Desk ", "Straße", "Ünïcode", "a\u00a0 b"]
    s = ibis.memtable({"x": texts})
    got = con.to_pyarrow(s.select(c=normalise_context(s.x), l=normalise_label(s.x))).to_pylist()
    assert [g["c"] for g in got] == ["support_chat", "support", None, "n_code", "a_b"]
    assert [g["l"] for g in got] == ["support chat", "help--desk", None, "ünïcode", "a b"]
