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


def test_every_feature_is_in_exactly_one_family_and_lists_those_without_an_ibis_producer() -> None:
    counted = [f for names in FAMILIES.values() for f in names]
    twice = sorted({f for f in counted if counted.count(f) > 1})
    assert not twice, f"features in more than one family: {twice}"
    assert not set(counted) - set(FEATURES), "families name features the catalogue does not have"
    assert set(counted) == set(FEATURES), f"features in no family: {sorted(set(FEATURES) - set(counted))}"
    import tactful.batch.producers as producers

    assert set(IBIS_PRODUCERS) <= set(FAMILIES)
    assert len(set(IBIS_PRODUCERS.values())) == len(IBIS_PRODUCERS), "one Ibis producer per family"
    assert all(callable(getattr(producers, name)) for name in IBIS_PRODUCERS.values())
    # the features still computed only by the Python derivation (issue 9 §1): this list shrinks as
    # families get their Ibis producer; a new producer must update it (docs/batch.md lists them too)
    assert features_without_ibis_producer() == [
        f for f in FEATURES
        if f in {*FAMILIES["data hygiene"], *FAMILIES["provenance and context"],
                 *FAMILIES["sensitivity and inference"]}]


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


def test_the_whole_feature_frame_names_the_families_without_an_ibis_producer(store: str) -> None:
    from tactful.batch.producers import candidates_table, feature_frame
    from tactful.errors import BatchError

    missing = [fam for fam in FAMILIES if fam not in IBIS_PRODUCERS]
    if not missing:
        pytest.skip("every family has an Ibis producer")
    attached = attach_store(connect(threads=1), store)
    with pytest.raises(BatchError, match=missing[0]):
        feature_frame(candidates_table([]), attached, load_pack().settings)
