"""Real time: scenarios built from the store (tactful.realtime), `decide --customer`, `scenario export`.

The seed personas of the sample world are decided from a real store (SQLite and PostgreSQL) with
touches that match their seed stories; hand-made stores check the selectors, the windows and the
fail-closed paths.
"""

from __future__ import annotations

import fcntl
import json
import stat
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from realtime_cases import PERSONA_CASES
from tactful.errors import NotFoundError, ScenarioError, StoreError
from tactful.model import Consent, ContactPoint, Customer, Fact, Order, OrderLine, Product, TouchRecord
from tactful.policy import default_pack, evaluate
from tactful.realtime import StoreScenarioBuilder, parse_touch, scenario_document
from tactful.sample import build_sample
from tactful.store import tables
from tactful.store.db import make_engine
from tactful.testing import postgres
from tactful.testing.cli import run_cli
from tactful.testing.store import init_temp_store

AS_OF = "2026-11-01T00:00:00Z"
NOW = datetime(2026, 11, 1, tzinfo=UTC)
PACK = default_pack()
EXAMPLES = Path(__file__).parent.parent / "docs" / "examples" / "touches"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> str:
    """A small synthetic sample world (20 customers and the personas) per backend, built once per test
    session: pytest-xdist workers share it (a lock file in the session's shared temporary directory)."""
    backend = str(request.param)
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent  # the session's directory, shared by its workers
    marker = shared / f"realtime-world-{backend}.url"
    with open(shared / f"realtime-world-{backend}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return marker.read_text(encoding="utf-8")
        if backend == "sqlite":
            url = f"sqlite:///{shared}/realtime-world.db"
        else:
            server = request.getfixturevalue("pg_server_url")
            url = postgres.create_database(server, f"t_realtime_{uuid.uuid4().hex[:10]}")
        build_sample(url, synthetic_n=20, jobs=0)
        marker.write_text(url, encoding="utf-8")
        return url


@pytest.fixture(scope="module")
def baby_product(world: str) -> str:
    """A product of persona-teen's second order that implies a baby in the household."""
    engine = make_engine(world)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(tables.products.c.id, tables.products.c.implies).join(
                tables.order_lines, tables.order_lines.c.product_id == tables.products.c.id).where(
                tables.order_lines.c.order_id == "persona-teen-o2")).all()
    finally:
        engine.dispose()
    return next(r.id for r in rows if "user.demographic.household.baby" in r.implies)


def _decide(url: str, customer: str, touch: dict[str, Any]) -> Any:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            scenario = StoreScenarioBuilder(PACK).scenario(conn, customer, parse_touch(
                {"now": AS_OF, "touch": touch}))
    finally:
        engine.dispose()
    return scenario, evaluate(scenario, PACK)


@pytest.mark.parametrize("case", PERSONA_CASES, ids=[c[0] for c in PERSONA_CASES])
def test_personas_decided_from_the_store(world: str, baby_product: str,
                                         case: tuple[str, str, dict[str, Any], set[str], set[str]]) -> None:
    _name, customer, touch, verdicts, rules = case
    if touch.get("shows_items") == ["BABY"]:
        touch = {**touch, "shows_items": [baby_product]}
    _scenario, decision = _decide(world, customer, touch)
    fired = {r.rule for r in decision.reasons}
    assert "evaluation-error" not in fired
    assert decision.verdict.value in verdicts, decision.reasons
    assert rules <= fired, decision.reasons


def test_shoe_buyer_scenario_reads_the_selected_purchases(world: str) -> None:
    """The shoe buyer's facts stand for her orders: the selector takes the three facts, not six."""
    scenario, _ = _decide(world, "persona-shoes", {
        "kind": "recommendation", "purpose": "marketing.communications.email", "channel": "email",
        "to": {"kind": "email"}, "uses": [{"kind": "purchase", "within_days": 20}], "depth": "history"})
    assert scenario.touch.uses == ("persona-shoes-f2", "persona-shoes-f3")  # 14 and 7 days ago
    assert scenario.touch.to == "persona-shoes-email"
    assert scenario.now == NOW
    assert {f.id for f in scenario.facts} == {"persona-shoes-f1", "persona-shoes-f2", "persona-shoes-f3"}
    scenario, _ = _decide(world, "persona-shoes", {
        "kind": "recommendation", "purpose": "marketing.communications.email", "channel": "email",
        "to": {"kind": "email"}, "uses": [{"kind": "purchase", "newest": 1}], "depth": "history"})
    assert scenario.touch.uses == ("persona-shoes-f3",)


def test_synthetic_customer_orders_become_purchase_facts(world: str) -> None:
    scenario, decision = _decide(world, "10000003", {
        "kind": "recommendation", "purpose": "marketing.communications.email", "channel": "email",
        "to": {"kind": "email"}, "uses": [{"kind": "purchase", "within_days": 90}], "depth": "item"})
    orders = [f for f in scenario.facts if f.id.startswith("10000003") and f.kind.value == "purchase"]
    assert orders and {f.id for f in orders} == set(scenario.touch.uses)
    assert all(NOW - timedelta(days=90) < f.at <= NOW for f in orders if f.at is not None)
    assert all(f.label and f.label.startswith(f"Order {f.id}") for f in orders)
    assert "evaluation-error" not in {r.rule for r in decision.reasons}


EXPORT_CASES = [("postcard-home-shows-purchase.yaml", "persona-postcard"),
                ("sealed-letter-po-box.yaml", "persona-postcard"),
                ("email-offer-shows-items.yaml", "persona-teen"),
                ("email-recommendation-history.yaml", "10000001")]


def test_every_example_touch_file_is_exported_and_replayed() -> None:
    assert sorted(f for f, _ in EXPORT_CASES) == sorted(p.name for p in EXAMPLES.glob("*.yaml"))


@pytest.mark.parametrize(("touch_file", "customer"), EXPORT_CASES)
def test_export_then_decide_gives_the_same_decision(world: str, tmp_path: Path, touch_file: str,
                                                    customer: str) -> None:
    """What support exports is exactly what was judged: replaying it decides the same."""
    touch = str(EXAMPLES / touch_file)
    code, live, err = run_cli(["decide", "--customer", customer, "--touch", touch, "--db", world,
                               "--format", "json"])
    assert code == 0, err
    out = tmp_path / "judged.yaml"
    code, _, err = run_cli(["scenario", "export", customer, "--touch", touch, "--db", world,
                            "--out", str(out)])
    assert code == 0, err
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    code, replay, err = run_cli(["decide", str(out), "--format", "json"])
    assert code == 0, err
    assert json.loads(replay) == json.loads(live)
    assert "evaluation-error" not in replay
    # the same through JSON on standard output
    code, text, err = run_cli(["scenario", "export", customer, "--touch", touch, "--db", world])
    assert code == 0, err
    assert yaml.safe_load(text) == yaml.safe_load(out.read_text(encoding="utf-8"))


def test_export_refuses_an_existing_file_and_writes_json(world: str, tmp_path: Path) -> None:
    mine = tmp_path / "notes.yaml"
    mine.write_text("keep me\n", encoding="utf-8")
    code, _, err = run_cli(["scenario", "export", "persona-shoes", "--db", world, "--out", str(mine)])
    assert code == 2 and "already exists" in err
    assert mine.read_text(encoding="utf-8") == "keep me\n"
    out = tmp_path / "s.json"
    code, _, err = run_cli(["scenario", "export", "persona-shoes", "--db", world, "--out", str(out),
                            "--now", "2026-11-01"])
    assert code == 0, err
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["customer"] == {"id": "persona-shoes", "openness": "open", "deceased": False}
    assert doc["now"] == AS_OF
    assert doc["touch"]["channel"] == "web"  # the placeholder touch


def test_unknown_customer_and_bad_input_exit_2(world: str, tmp_path: Path) -> None:
    touch = str(EXAMPLES / "email-recommendation-history.yaml")
    code, out, err = run_cli(["decide", "--customer", "nobody", "--touch", touch, "--db", world])
    assert code == 2 and "no customer 'nobody'" in err and not out
    code, _, err = run_cli(["scenario", "export", "nobody", "--db", world])
    assert code == 2 and "no customer 'nobody'" in err
    code, _, err = run_cli(["decide", "--customer", "persona-shoes", "--db", world])
    assert code == 2 and "--touch" in err
    code, _, err = run_cli(["decide", touch, "--customer", "persona-shoes", "--touch", touch])
    assert code == 2 and "not both" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("touch:\n  kind: offer\n  purpose: marketing\n  channel: email\n"
                   "  uses: [{kind: purchase, within: 3}]\n  colour: red\n", encoding="utf-8")
    code, _, err = run_cli(["decide", "--customer", "persona-shoes", "--touch", str(bad), "--db", world])
    assert code == 2
    assert "touch.uses[0].within" in err and "touch.colour" in err and "docs/realtime.md" in err
    bad.write_text("touch: [1, 2\n", encoding="utf-8")
    code, _, err = run_cli(["decide", "--customer", "persona-shoes", "--touch", str(bad), "--db", world])
    assert code == 2 and f"{bad}:" in err and "not valid YAML" in err
    code, _, err = run_cli(["decide", "--customer", "persona-shoes", "--touch", touch, "--db", world,
                            "--now", "yesterday"])
    assert code == 2 and "--now" in err
    items = tmp_path / "items.yaml"
    items.write_text("touch: {kind: offer, purpose: marketing.communications.email, channel: email, "
                     "to: {kind: email}, shows_items: [no-such-product]}\n", encoding="utf-8")
    code, _, err = run_cli(["decide", "--customer", "persona-shoes", "--touch", str(items), "--db", world])
    assert code == 2 and "no-such-product" in err and "shows_items" in err


def test_missing_store_exits_3(tmp_path: Path) -> None:
    touch = str(EXAMPLES / "email-recommendation-history.yaml")
    code, _, err = run_cli(["decide", "--customer", "x", "--touch", touch, "--db",
                            f"sqlite:///{tmp_path}/none.db"])
    assert code == 3 and "does not exist" in err


# --------------------------------------------------------------------------- hand-made stores

T0 = NOW - timedelta(days=1)


def _store(url: str, *extra: Any) -> Engine:
    records: list[Any] = [
        Customer(id="c1", openness="open"),
        Customer(id="c2"),
        ContactPoint(id="c1-mail-old", customer_id="c1", kind="email", value="a@example.com",
                     shared_with="household", verified_at=NOW - timedelta(days=400)),
        ContactPoint(id="c1-mail-new", customer_id="c1", kind="email", value="b@example.com",
                     shared_with="private", verified_at=NOW - timedelta(days=10)),
        ContactPoint(id="c1-mail-bounced", customer_id="c1", kind="email", value="c@example.com",
                     shared_with="private", verified_at=NOW - timedelta(days=1), bounced=True),
        Consent(id="c1-email", customer_id="c1", purpose="marketing.communications.email", channel="email",
                status="granted", source="form", at=NOW - timedelta(days=300)),
        Product(id="p-plain", name="Garden hose", department="GARDEN"),
        Product(id="p-adult", name="Prophylactics", department="DRUG GM", category="FAMILY PLANNING",
                subcategory="PROPHYLACTICS"),
        Order(id="c1-o-old", customer_id="c1", at=NOW - timedelta(days=200), source="web"),
        OrderLine(order_id="c1-o-old", line_no=1, product_id="p-adult"),
        Order(id="c1-o-new", customer_id="c1", at=NOW - timedelta(days=5), source="pos"),
        OrderLine(order_id="c1-o-new", line_no=1, product_id="p-plain"),
        *extra,
    ]
    return init_temp_store(url, records)


def _scenario(engine: Engine, touch: dict[str, Any], customer: str = "c1") -> Any:
    with engine.connect() as conn:
        spec = parse_touch({"now": AS_OF, "touch": touch})
        return StoreScenarioBuilder(PACK).scenario(conn, customer, spec)


EMAIL = {"kind": "offer", "purpose": "marketing.communications.email", "channel": "email",
         "to": {"kind": "email"}, "depth": "item"}


def test_contact_selector_picks_the_working_most_recently_verified(db_url: str) -> None:
    engine = _store(db_url)
    try:
        assert _scenario(engine, EMAIL).touch.to == "c1-mail-new"
        assert _scenario(engine, {**EMAIL, "to": "c1-mail-old"}).touch.to == "c1-mail-old"
        # no postal contact point: `to` stays empty and the channel's guard blocks
        s = _scenario(engine, {**EMAIL, "channel": "postal_mail",
                               "purpose": "marketing.communications.postal", "to": {"kind": "postal"}})
        assert s.touch.to is None
        assert "missing-contact-point" in {r.rule for r in evaluate(s, PACK).reasons}
    finally:
        engine.dispose()


def test_windows_select_orders_and_fail_closed_on_dangling_ids(db_url: str) -> None:
    engine = _store(db_url)
    try:
        s = _scenario(engine, {**EMAIL, "uses": [{"kind": "purchase", "within_days": 30}]})
        assert s.touch.uses == ("c1-o-new",)
        assert [f.id for f in s.facts] == ["c1-o-new"]  # the old order is not even read
        assert evaluate(s, PACK).verdict.value == "allow"
        s = _scenario(engine, {**EMAIL, "uses": [{"kind": "purchase"}]})  # no window: every order
        assert set(s.touch.uses) == {"c1-o-old", "c1-o-new"}
        old = next(f for f in s.facts if f.id == "c1-o-old")
        assert "user.sexual_life" in old.implies  # labelled by the sensitivity mapping
        assert evaluate(s, PACK).verdict.value == "block"
        # an exact id reaches an order outside any window; an unknown id stays and blocks
        s = _scenario(engine, {**EMAIL, "uses": ["c1-o-old", "nope"]})
        assert s.touch.uses == ("c1-o-old", "nope")
        fired = {r.rule for r in evaluate(s, PACK).reasons}
        assert "missing-fact-reference" in fired
        # an id that exists but that the selector's other fields filter out selects nothing
        s = _scenario(engine, {**EMAIL, "uses": [{"id": "c1-o-old", "within_days": 30}]})
        assert s.touch.uses == ()
        assert "missing-fact-reference" not in {r.rule for r in evaluate(s, PACK).reasons}
        # contexts compare in their normalised form; the optional touch fields pass through
        s = _scenario(engine, {**EMAIL, "uses": [{"context": "CHECKOUT", "within_days": 30}],
                               "trigger": "customer_request", "requested_channel": "email",
                               "conversation": "chat-1"})
        assert s.touch.uses == ("c1-o-new",)
        assert s.touch.requested_channel == "email" and s.touch.conversation == "chat-1"
        # another customer's order is not this customer's
        s = _scenario(engine, {**EMAIL, "uses": ["c1-o-new"]}, customer="c2")
        assert "missing-fact-reference" in {r.rule for r in evaluate(s, PACK).reasons}
    finally:
        engine.dispose()


def test_a_purchase_fact_stands_for_its_order_and_takes_its_products_labels(db_url: str) -> None:
    """A purchase fact whose value names an order is that order: selected once, and it reveals at least
    what the order's products imply even when the fact itself says nothing (fail closed)."""
    fact = Fact(id="c1-f-old", customer_id="c1", kind="purchase",
                category="user.behavior.purchase_history", label="an old web order", value="c1-o-old",
                origin="observed", source="web", context="checkout", at=NOW - timedelta(days=200))
    engine = _store(db_url, fact)
    try:
        s = _scenario(engine, {**EMAIL, "uses": [{"kind": "purchase"}]})
        assert set(s.touch.uses) == {"c1-f-old", "c1-o-new"}
        merged = next(f for f in s.facts if f.id == "c1-f-old")
        assert "user.sexual_life" in merged.implies
        assert _scenario(engine, {**EMAIL, "uses": ["c1-o-old"]}).touch.uses == ("c1-f-old",)
        # even when no selector reaches purchases, the fact carries its order's labels
        s = _scenario(engine, {**EMAIL, "uses": ["c1-f-old"]})
        assert "user.sexual_life" in next(f for f in s.facts if f.id == "c1-f-old").implies
    finally:
        engine.dispose()


def test_shown_items_are_labelled_and_recent_touches_read_within_the_policy_window(db_url: str) -> None:
    email = "marketing.communications.email"
    sent = [TouchRecord(id=f"t{i}", customer_id="c1", kind="offer", purpose=email, channel="email",
                        at=NOW - timedelta(days=d)) for i, d in enumerate((1, 2, 3, 400))]
    future = TouchRecord(id="t-future", customer_id="c1", kind="offer", purpose=email, channel="email",
                         at=NOW + timedelta(days=3))
    engine = _store(db_url, *sent, future)
    try:
        s = _scenario(engine, {**EMAIL, "shows_items": ["p-adult"], "shows_implies": ["user.childrens"]})
        assert "user.sexual_life" in s.touch.shows_implies and "user.childrens" in s.touch.shows_implies
        assert len(s.recent_touches) == 3  # 400 days ago is outside every window; the future is not yet
        assert "marketing-frequency-cap" in {r.rule for r in evaluate(s, PACK).reasons}
        s = _scenario(engine, {**EMAIL, "shows_items": ["p-plain"]})
        assert s.touch.shows_implies == ()
    finally:
        engine.dispose()


def test_a_store_row_that_breaks_the_contract_is_a_store_error(db_url: str) -> None:
    engine = _store(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(tables.facts.insert().values(
                id="c1-bad", customer_id="c1", kind="rumour", category="user.behavior.purchase_history",
                implies=[], origin="observed", source="web", context="checkout", at=T0))
        with pytest.raises(StoreError) as info:
            _scenario(engine, EMAIL)
        assert "facts[0] (id 'c1-bad').kind" in str(info.value)
        with pytest.raises(NotFoundError):
            _scenario(engine, EMAIL, customer="nobody")
        with pytest.raises(NotFoundError):
            _scenario(engine, {**EMAIL, "shows_items": ["p-none"]}, customer="c1")
    finally:
        engine.dispose()


def test_touch_file_contract() -> None:
    spec = parse_touch({"touch": {**EMAIL, "uses": ["a", 7, {"kind": "event", "within_days": 3}],
                                  "shows_items": [12, "x"]}})
    assert [s.id for s in spec.touch.uses[:2]] == ["a", "7"]
    assert spec.touch.shows_items == ("12", "x")
    with pytest.raises(ScenarioError) as info:
        parse_touch({"touch": {**EMAIL, "uses": [{"kind": "gossip"}]}})
    assert "touch.uses[0].kind" in str(info.value)
    with pytest.raises(ScenarioError):
        parse_touch(["not", "a", "mapping"])


def test_the_export_document_is_the_contract(world: str) -> None:
    scenario, _ = _decide(world, "persona-teen", {**EMAIL, "uses": [{"kind": "inference"}]})
    doc = scenario_document(scenario)
    assert doc["version"] == 1 and doc["now"] == AS_OF
    assert set(doc) <= {"version", "now", "customer", "contact_points", "consents", "facts",
                        "recent_touches", "touch"}
    assert doc["touch"]["uses"] == ["persona-teen-inf-baby"]


HOSTILE = "Zoë \x1b]0;pwned\x07 [bold red]x[/] :x: \u202eevil\u202c\r\nnext"


def test_hostile_store_text_is_exported_safely_and_replays_exactly(db_url: str, tmp_path: Path) -> None:
    """Text from the store reaches no terminal raw (no control or bidi characters, no markup), and the
    exported document still reads back to the same values and the same decision."""
    fact = Fact(id="c1-evt", customer_id="c1", kind="event", category="user.behavior.browsing_history",
                label=HOSTILE, origin="observed", source="web", context="browse", at=T0)
    engine = _store(db_url, fact)
    engine.dispose()
    touch = tmp_path / "t.yaml"
    touch.write_text(yaml.safe_dump({"now": AS_OF, "touch": {**EMAIL, "uses": [{"kind": "event"}],
                                                             "shows": [{"kind": "event"}]}}),
                     encoding="utf-8")
    code, live, err = run_cli(["decide", "--customer", "c1", "--touch", str(touch), "--db", db_url,
                               "--format", "json"])
    assert code == 0, err
    for fmt, name in (("yaml", "judged.yaml"), ("json", "judged.json")):
        out = tmp_path / name
        code, printed, err = run_cli(["scenario", "export", "c1", "--touch", str(touch), "--db", db_url])
        assert code == 0, err
        code, _, err = run_cli(["scenario", "export", "c1", "--touch", str(touch), "--db", db_url,
                                "--out", str(out)])
        assert code == 0, err
        for text in (printed, out.read_text(encoding="utf-8")):
            assert not any(c in text for c in "\x1b\x07\r\u202e\u202c"), fmt
        code, replay, err = run_cli(["decide", str(out), "--format", "json"])
        assert code == 0, err
        assert json.loads(replay) == json.loads(live)
        loaded = yaml.safe_load(out.read_text(encoding="utf-8"))  # YAML reads JSON too
        assert next(f for f in loaded["facts"] if f["id"] == "c1-evt")["label"] == HOSTILE
    code, text, err = run_cli(["decide", "--customer", "c1", "--touch", str(touch), "--db", db_url])
    assert code == 0, err
    assert not any(c in text for c in "\x1b\x07\r\u202e")


def test_another_sensitivity_mapping_adds_to_the_stored_labels(db_url: str, tmp_path: Path) -> None:
    engine = _store(db_url)
    engine.dispose()
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("version: 1\nrules:\n  - id: garden-health\n    when: {department: [GARDEN]}\n"
                       "    implies: [user.health_and_medical]\n", encoding="utf-8")
    touch = tmp_path / "t.json"
    touch.write_text(json.dumps({"now": AS_OF, "touch": {**EMAIL, "shows_items": ["p-plain"]}}),
                     encoding="utf-8")
    code, out, err = run_cli(["scenario", "export", "c1", "--touch", str(touch), "--db", db_url])
    assert code == 0, err
    assert yaml.safe_load(out)["touch"]["shows_implies"] == []
    code, out, err = run_cli(["scenario", "export", "c1", "--touch", str(touch), "--db", db_url,
                              "--sensitivity", str(mapping)])
    assert code == 0, err
    assert yaml.safe_load(out)["touch"]["shows_implies"] == ["user.health_and_medical"]
    code, out, err = run_cli(["decide", "--customer", "c1", "--touch", str(touch), "--db", db_url,
                              "--sensitivity", str(mapping), "--format", "json"])
    assert code == 0, err
    assert json.loads(out)["verdict"] != "allow"


def test_a_touch_file_has_the_scenarios_touch_fields_in_the_contracts_order() -> None:
    """One set of fields (model.TouchFields) serves the scenario's touch and the touch file's: the
    touch file adds only shows_items, and takes selectors where the scenario takes ids."""
    from tactful.model import ScenarioTouch
    from tactful.realtime import ContactSelector, FactSelector, TouchSpec

    assert [*TouchSpec.model_fields] == [*ScenarioTouch.model_fields, "shows_items"]
    spec = TouchSpec.model_validate({"kind": "offer", "purpose": "marketing", "channel": "email",
                                     "to": {"kind": "email"}, "uses": ["o1", {"kind": "purchase"}]})
    assert spec.to == ContactSelector(kind="email")
    assert spec.uses == (FactSelector(id="o1"), FactSelector(kind="purchase"))
    with pytest.raises(ValidationError):  # the scenario's touch takes ids only
        ScenarioTouch.model_validate({"kind": "offer", "purpose": "marketing", "channel": "email",
                                      "to": {"kind": "email"}})
