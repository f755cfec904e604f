"""The store on SQLite and on a real PostgreSQL: init/upgrade, upserts, provenance, read-back, CLI."""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pydantic import BaseModel
from sqlalchemy.engine import Engine

from tactful.errors import NotFoundError, StoreError
from tactful.model import (
    Consent,
    ContactPoint,
    Customer,
    Fact,
    Household,
    Order,
    OrderLine,
    Product,
    TouchRecord,
)
from tactful.store import db, repo, tables
from tactful.testing.cli import run_cli
from tactful.testing.store import seed, temp_store

PREGNANCY = "user.health_and_medical.reproductive"
EMAIL_MARKETING = "marketing.communications.email"
HEAD = db.head_revision()  # the newest migration; the tests below follow it as revisions are added


def world() -> list[BaseModel]:
    """One household, one customer with a bit of everything."""
    return [
        Household(id="h1", size=3, composition="couple with kid", kids_count=1, income="50-74K"),
        Customer(id="c1", household_id="h1", first_name="Jane", last_name="[b]Doe[/b]",
                 birth_date=date(1984, 5, 17), openness="reserved"),
        Customer(id="c2", first_name="Other"),
        ContactPoint(id="cp1", customer_id="c1", kind="email", value="family@example.org",
                     shared_with="household", verified_at="2024-01-05T08:00:00Z"),
        ContactPoint(id="cp2", customer_id="c1", kind="postal", value="PO Box 12", shared_with="private"),
        Consent(id="k1", customer_id="c1", purpose=EMAIL_MARKETING, channel="email", status="granted",
                source="form", at=datetime(2024, 1, 2, 10, 0, tzinfo=timezone(timedelta(hours=2))),
                evidence="signup-form-7"),
        Product(id="p1", name="Pregnancy test", department="pharmacy", implies=(PREGNANCY,)),
        Product(id="p2", name="Sourdough bread", department="bakery"),
        Order(id="o1", customer_id="c1", at="2024-02-01T09:30:00Z", source="pos", context="checkout",
              store_id="s-9", total=14.5),
        Order(id="o2", customer_id="c1", at="2024-03-01T09:30:00Z", source="web", context="checkout",
              total=4.0),
        Order(id="o3", customer_id="c2", at="2024-03-02T09:30:00Z"),
        OrderLine(order_id="o1", line_no=1, product_id="p1", quantity=1, amount=10.5),
        OrderLine(order_id="o1", line_no=2, product_id="p2", quantity=2, amount=4.0),
        OrderLine(order_id="o2", line_no=1, product_id="p2", quantity=1, amount=4.0),
        OrderLine(order_id="o3", line_no=1, product_id="p2", quantity=1, amount=4.0),
        Fact(id="f1", customer_id="c1", kind="inference", category="user.behavior.purchase_history",
             implies=(PREGNANCY,), label="likely expecting", origin="inferred", source="web",
             context="recommendation_model", at="2024-02-03T00:00:00Z"),
        Fact(id="f2", customer_id="c1", kind="preference", category="user.behavior",
             label="aisle seat", value="aisle", origin="declared", source="chat", context="support_chat"),
        TouchRecord(id="t1", customer_id="c1", kind="offer", purpose=EMAIL_MARKETING, channel="email",
                    contact_point_id="cp1", at="2024-03-05T12:00:00Z", campaign="spring"),
    ]


@pytest.fixture()
def store(db_url: str) -> Iterator[Engine]:
    """An initialised, empty store on the parametrized backend."""
    engine = db.init_store(db_url)
    yield engine
    engine.dispose()


@pytest.fixture()
def seeded(store: Engine) -> Engine:
    seed(store, world(), origin="test:world", import_kind="sample")
    return store


def _count(engine: Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- init, open, migrations


def test_init_creates_every_table_and_second_init_is_up_to_date(db_url: str) -> None:
    first = db.initialise(db_url)
    try:
        assert first.action == "created"
        assert first.from_revision is None
        assert first.to_revision == db.head_revision() == HEAD
        assert first.describe().startswith("created store ")
        names = set(sa.inspect(first.engine).get_table_names())
        assert names == {t.name for t in tables.metadata.sorted_tables} | {"alembic_version"}
        assert db.schema_revision(first.engine) == HEAD
    finally:
        first.engine.dispose()
    second = db.initialise(db_url)
    try:
        assert second.action == "up_to_date"
        assert second.from_revision == second.to_revision == HEAD
        assert f"already up to date (schema {HEAD})" in second.describe()
        # open_store accepts a store that init made
        db.open_store(db_url).dispose()
    finally:
        second.engine.dispose()


def test_migrated_schema_matches_the_tables(store: Engine) -> None:
    """Alembic's autogenerate finds nothing to change: migrations and tables.py agree."""
    with store.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        assert compare_metadata(ctx, tables.metadata) == []


def test_migration_downgrades_to_nothing_and_init_recreates(store: Engine) -> None:
    command.downgrade(db._alembic_config(store), "base")
    assert set(sa.inspect(store).get_table_names()) <= {"alembic_version"}
    assert db.schema_revision(store) is None
    again = db.initialise(str(store.url.render_as_string(hide_password=False)))
    try:
        assert again.action == "created"
    finally:
        again.engine.dispose()


def test_open_store_on_an_uninitialised_store_says_run_init(db_url: str) -> None:
    if db_url.startswith("sqlite"):
        # an existing but empty SQLite file (a missing file has its own message, below)
        sqlite3.connect(db_url.removeprefix("sqlite:///")).close()
    with pytest.raises(StoreError) as info:
        db.open_store(db_url)
    assert "is not initialised" in info.value.message
    assert info.value.hint is not None and "tactful init" in info.value.hint
    assert info.value.exit_code == 3


def test_open_store_does_not_create_a_missing_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    with pytest.raises(StoreError) as info:
        db.open_store(f"sqlite:///{path}")
    assert "does not exist" in info.value.message
    assert info.value.hint is not None and "tactful init" in info.value.hint
    assert not path.exists()


def _migrations_with_a_second_revision(tmp_path: Path) -> str:
    location = tmp_path / "migrations"
    shutil.copytree(db.MIGRATIONS_LOCATION, location, ignore=shutil.ignore_patterns("__pycache__"))
    (location / "versions" / "9999_extra_index.py").write_text(
        '"""extra index (test only)"""\n'
        "from alembic import op\n\n"
        f'revision = "9999"\ndown_revision = "{HEAD}"\nbranch_labels = None\ndepends_on = None\n\n\n'
        "def upgrade() -> None:\n"
        '    op.create_index("ix_test_facts_label", "facts", ["label"])\n\n\n'
        "def downgrade() -> None:\n"
        '    op.drop_index("ix_test_facts_label", table_name="facts")\n'
    )
    return str(location)


def test_init_upgrades_and_says_from_which_revision(db_url: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    db.init_store(db_url).dispose()
    monkeypatch.setattr(db, "MIGRATIONS_LOCATION", _migrations_with_a_second_revision(tmp_path))
    upgraded = db.initialise(db_url)
    try:
        assert (upgraded.action, upgraded.from_revision, upgraded.to_revision) == ("upgraded", HEAD, "9999")
        assert f"from schema {HEAD} to 9999" in upgraded.describe()
        indexes = {ix["name"] for ix in sa.inspect(upgraded.engine).get_indexes("facts")}
        assert "ix_test_facts_label" in indexes
    finally:
        upgraded.engine.dispose()
    again = db.initialise(db_url)
    again.engine.dispose()
    assert again.action == "up_to_date"

    # Back on the real migrations, the store is newer than this Tactful: both commands refuse.
    monkeypatch.setattr(db, "MIGRATIONS_LOCATION", str(Path(db.__file__).parent / "migrations"))
    with pytest.raises(StoreError) as info:
        db.open_store(db_url)
    assert "at schema 9999, which this version of Tactful" in info.value.message
    with pytest.raises(StoreError) as info:
        db.initialise(db_url)
    assert "does not know" in info.value.message


def test_open_store_on_an_older_schema_says_run_init(db_url: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    db.init_store(db_url).dispose()
    monkeypatch.setattr(db, "MIGRATIONS_LOCATION", _migrations_with_a_second_revision(tmp_path))
    with pytest.raises(StoreError) as info:
        db.open_store(db_url)
    assert f"is at schema {HEAD}, not 9999" in info.value.message
    assert info.value.hint is not None and "tactful init" in info.value.hint


# --------------------------------------------------------------------------- URLs and connection errors


@pytest.mark.postgres
def test_postgres_on_a_bad_port_is_a_store_error_without_the_password(pg_server_url: str) -> None:
    url = sa.engine.make_url(pg_server_url).set(port=_free_port(), password="hunter2")
    text = url.render_as_string(hide_password=False)
    for call in (db.initialise, db.open_store):
        with pytest.raises(StoreError) as info:
            call(text)
        message = str(info.value)
        assert "cannot reach store" in message
        assert f"127.0.0.1:{url.port}" in message
        assert "hunter2" not in message and "***" in message
        assert info.value.hint is not None and "PostgreSQL is running" in info.value.hint
        assert info.value.exit_code == 3


@pytest.mark.postgres
def test_postgres_missing_database_hint_says_createdb(pg_server_url: str) -> None:
    url = pg_server_url.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(StoreError) as info:
        db.initialise(url)
    assert info.value.hint is not None and "createdb" in info.value.hint
    assert "no_such_database" in info.value.hint


@pytest.mark.parametrize(("url", "says"), [
    ("postgresql+psycopg://u:secret@localhost:notaport/db", "malformed store URL"),
    ("postgresql+psycopg://u:secret@localhost:70000/db", "port 70000"),
    ("mysql://u:secret@localhost/db", "unsupported store backend 'mysql'"),
    ("postgresql+psycopg://u:secret@localhost:5432/", "names no database"),
    ("not a url://u:secret@x/db", "malformed store URL"),
])
def test_malformed_urls_are_store_errors(url: str, says: str) -> None:
    with pytest.raises(StoreError) as info:
        db.initialise(url)
    assert says in info.value.message
    assert "secret" not in str(info.value)
    assert info.value.hint is not None and "postgresql+psycopg://" in info.value.hint


def test_url_resolution_and_redaction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TACTFUL_DB", raising=False)
    assert db.resolve_url(None) == "sqlite:///tactful.db"
    assert db.resolve_url("data/shop.db") == "sqlite:///data/shop.db"
    assert db.resolve_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    monkeypatch.setenv("TACTFUL_DB", "env.db")
    assert db.resolve_url(None) == "sqlite:///env.db"
    assert db.resolve_url("flag.db") == "sqlite:///flag.db"
    assert db.redact_url("postgresql+psycopg://u:pw@h:5/d") == "postgresql+psycopg://u:***@h:5/d"
    assert db.redact_url("postgresql://u:pw@h:bad/d") == "postgresql://u:***@h:bad/d"


# --------------------------------------------------------------------------- upsert and provenance


def test_upsert_is_idempotent_and_the_last_write_wins(store: Engine) -> None:
    rows = [{"id": f"c{i}", "first_name": f"name{i}", "deceased": False} for i in range(5)]
    with store.begin() as conn:
        assert db.upsert(conn, tables.customers, rows) == 5
    with store.begin() as conn:
        db.upsert(conn, tables.customers, rows)
    assert _count(store, tables.customers) == 5
    changed = [{"id": "c1", "first_name": "renamed", "deceased": True}, {"id": "c9", "first_name": "new",
                                                                         "deceased": False}]
    with store.begin() as conn:
        db.upsert(conn, tables.customers, changed)
        assert db.upsert(conn, tables.customers, []) == 0
    assert _count(store, tables.customers) == 6
    with store.connect() as conn:
        row = conn.execute(sa.select(tables.customers).where(tables.customers.c.id == "c1")).mappings().one()
        assert row["first_name"] == "renamed" and row["deceased"] is True
    # A composite primary key (order_lines: order_id, line_no) upserts too.
    with store.begin() as conn:
        db.upsert(conn, tables.products, [{"id": "p", "implies": []}])
        db.upsert(conn, tables.orders, [{"id": "o", "customer_id": "c1", "at": datetime.now(UTC)}])
        line = {"order_id": "o", "line_no": 1, "product_id": "p", "quantity": 1.0}
        db.upsert(conn, tables.order_lines, [line])
        db.upsert(conn, tables.order_lines, [{**line, "quantity": 3.0}])
    assert _count(store, tables.order_lines) == 1
    with store.connect() as conn:
        assert conn.execute(sa.select(tables.order_lines.c.quantity)).scalar_one() == 3.0


def test_import_provenance_round_trips(store: Engine) -> None:
    written = datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
    with store.begin() as conn:
        batch = db.begin_import(conn, kind="customers", origin="/exports/customers.csv",
                                source_label="shopify", fmt="csv", mapping={"id": "customer_id"})
        rows = db.stamp([{"id": "c1", "first_name": "Jane", "deceased": False}], batch, at=written)
        db.upsert(conn, tables.customers, rows)
        db.finish_import(conn, batch, rows_read=2, rows_imported=1, rows_quarantined=1,
                         quarantine_file="/exports/customers.quarantine.csv")
    with store.connect() as conn:
        view = repo.read_customer(conn, "c1")
        batches = repo.read_imports(conn)
    prov = view.customer.provenance
    assert prov.import_id == batch
    assert (prov.kind, prov.origin, prov.source_label, prov.format) == (
        "customers", "/exports/customers.csv", "shopify", "csv")
    assert prov.written_at == written
    assert prov.started_at is not None and prov.started_at.tzinfo is not None
    assert abs(datetime.now(UTC) - prov.started_at) < timedelta(minutes=5)
    full = batches[batch]
    assert (full.rows_read, full.rows_imported, full.rows_quarantined) == (2, 1, 1)
    assert full.quarantine_file == "/exports/customers.quarantine.csv"
    assert full.finished_at is not None and full.finished_at >= full.started_at
    assert full.tool_version
    assert view.imports == {batch: full}

    # A second import of the same customer takes over its provenance.
    with store.begin() as conn:
        second = db.begin_import(conn, kind="customers", origin="/exports/customers-2.csv", fmt="jsonl")
        db.upsert(conn, tables.customers, db.stamp([{"id": "c1", "first_name": "Janet", "deceased": False}],
                                                    second))
    with store.connect() as conn:
        again = repo.read_customer(conn, "c1")
    assert again.customer.record.first_name == "Janet"
    assert again.customer.provenance.origin == "/exports/customers-2.csv"
    assert again.customer.provenance.format == "jsonl"


# --------------------------------------------------------------------------- reading a customer back


def test_read_customer_returns_everything_with_provenance(seeded: Engine) -> None:
    with seeded.connect() as conn:
        view = repo.read_customer(conn, "c1")
    c = view.customer.record
    assert isinstance(c, Customer)
    assert (c.first_name, c.last_name, c.birth_date, c.openness) == (
        "Jane", "[b]Doe[/b]", date(1984, 5, 17), "reserved")
    assert view.household is not None and view.household.record.kids_count == 1
    assert [cp.record.id for cp in view.contact_points] == ["cp1", "cp2"]
    assert view.contact_points[0].record.verified_at == datetime(2024, 1, 5, 8, tzinfo=UTC)
    consent = view.consents[0].record
    assert consent.at == datetime(2024, 1, 2, 8, 0, tzinfo=UTC)  # stored in UTC, on both backends
    assert consent.channel == "email" and consent.evidence == "signup-form-7"

    assert [o.order.record.id for o in view.orders] == ["o2", "o1"]  # newest first, only c1's
    assert view.orders_total == 2
    o1 = view.orders[1]
    assert o1.order.record.store_id == "s-9" and o1.order.record.total == 14.5
    assert [(ln.line.record.line_no, ln.product.record.id) for ln in o1.lines] == [(1, "p1"), (2, "p2")]
    assert o1.lines[0].product.record.implies == (PREGNANCY,)
    assert o1.lines[1].line.record.quantity == 2

    facts = {f.record.id: f for f in view.facts}
    f1 = facts["f1"].record
    assert (f1.origin, f1.source, f1.context) == ("inferred", "web", "recommendation_model")
    assert f1.at == datetime(2024, 2, 3, tzinfo=UTC) and f1.implies == (PREGNANCY,)
    assert facts["f2"].record.value == "aisle" and facts["f2"].record.at is None
    assert view.touches[0].record.campaign == "spring"

    # Every row carries its batch: one per record kind, all from this origin.
    kinds = {
        "customers": view.customer, "households": view.household, "contact_points": view.contact_points[0],
        "consents": view.consents[0], "orders": view.orders[0].order, "order_lines": o1.lines[0].line,
        "products": o1.lines[0].product, "facts": view.facts[0], "touches": view.touches[0],
    }
    batch_ids = set()
    for stored in kinds.values():
        assert stored is not None
        prov = stored.provenance
        assert prov.origin == "test:world" and prov.kind == "sample"
        assert prov.written_at is not None and prov.written_at.tzinfo is not None
        assert prov.import_id is not None
        batch_ids.add(prov.import_id)
    assert len(batch_ids) == len(kinds)
    assert set(view.imports) == batch_ids


def test_read_customer_limits_orders_but_counts_them_all(seeded: Engine) -> None:
    with seeded.connect() as conn:
        view = repo.read_customer(conn, "c1", max_orders=1)
    assert [o.order.record.id for o in view.orders] == ["o2"]
    assert view.orders_total == 2
    assert [ln.product.record.id for ln in view.orders[0].lines] == ["p2"]


def test_read_customer_json_is_plain_json(seeded: Engine) -> None:
    with seeded.connect() as conn:
        data = repo.read_customer(conn, "c1").to_json_dict()
    text = json.dumps(data)  # no datetimes, enums or tuples left
    back = json.loads(text)
    assert back["customer"]["provenance"]["origin"] == "test:world"
    assert back["consents"][0]["at"] == "2024-01-02T08:00:00Z"
    assert back["orders"][1]["lines"][0]["product"]["implies"] == [PREGNANCY]
    assert back["facts"][0]["provenance"]["written_at"].endswith("Z")


def test_missing_customer_is_not_found(store: Engine) -> None:
    with store.connect() as conn, pytest.raises(NotFoundError) as info:
        repo.read_customer(conn, "nobody")
    assert "'nobody'" in info.value.message
    assert info.value.exit_code == 2 and info.value.http_status == 404
    assert isinstance(info.value, StoreError)


def test_a_stored_row_the_model_rejects_fails_closed(store: Engine) -> None:
    with store.begin() as conn:
        db.upsert(conn, tables.customers, [{"id": "c1", "deceased": False}])
        db.upsert(conn, tables.facts, [{"id": "bad", "customer_id": "c1", "kind": "attribute",
                                        "category": "user.not_a_category", "implies": [],
                                        "origin": "declared", "source": "web", "context": "form"}])
    with store.connect() as conn, pytest.raises(StoreError) as info:
        repo.read_customer(conn, "c1")
    assert "facts row (id='bad')" in info.value.message
    assert "user.not_a_category" in info.value.message


def test_lookups(seeded: Engine) -> None:
    with seeded.connect() as conn:
        assert repo.customer_ids(conn) == ["c1", "c2"]
        assert repo.customer_ids(conn, limit=1, offset=1) == ["c2"]
        assert repo.customer_exists(conn, "c2") and not repo.customer_exists(conn, "c3")
        counts = repo.count_rows(conn)
    assert counts["customers"] == 2 and counts["order_lines"] == 4 and counts["imports"] == 9


# --------------------------------------------------------------------------- single-record writes


def test_write_records_opens_a_batch_and_upserts(seeded: Engine) -> None:
    withdrawn = {"id": "k1", "customer_id": "c1", "purpose": EMAIL_MARKETING, "channel": "email",
                 "status": "withdrawn", "source": "portal", "at": "2024-04-01T00:00:00+02:00"}
    with seeded.begin() as conn:
        result = repo.write_records(conn, "consents", [withdrawn], origin="api:/v1/consents",
                                    source_label="portal")
    assert result.kind == "consents" and result.count == 1
    assert _count(seeded, tables.consents) == 1
    with seeded.connect() as conn:
        view = repo.read_customer(conn, "c1")
    consent = view.consents[0]
    assert consent.record.status == "withdrawn"
    assert consent.record.at == datetime(2024, 3, 31, 22, tzinfo=UTC)
    assert consent.provenance.import_id == result.import_id
    assert (consent.provenance.kind, consent.provenance.origin, consent.provenance.source_label) == (
        "api", "api:/v1/consents", "portal")
    batch = view.imports[result.import_id]
    assert (batch.rows_read, batch.rows_imported) == (1, 1) and batch.finished_at is not None


def test_write_records_refuses_dangling_references_and_writes_nothing(seeded: Engine) -> None:
    before = _count(seeded, tables.imports)
    fact = Fact(id="f9", customer_id="ghost", kind="attribute", category="user.behavior",
                origin="declared", source="web", context="form")
    with pytest.raises(NotFoundError) as info, seeded.begin() as conn:
        repo.write_records(conn, "facts", [fact])
    assert "no customer 'ghost'" in info.value.message
    line = OrderLine(order_id="o1", line_no=9, product_id="p-missing")
    with pytest.raises(NotFoundError) as info, seeded.begin() as conn:
        repo.write_records(conn, "order_lines", [line])
    assert "no product 'p-missing'" in info.value.message
    assert _count(seeded, tables.imports) == before
    assert _count(seeded, tables.facts) == 2


def test_write_records_validates_before_writing(store: Engine) -> None:
    with pytest.raises(StoreError) as info, store.begin() as conn:
        repo.write_records(conn, "customers", [{"id": "c1", "openness": "wide"}])
    assert "customers[0].openness" in info.value.message
    with pytest.raises(StoreError) as info, store.begin() as conn:
        repo.write_records(conn, "customers", [Household(id="h")])
    assert "not a Customer" in info.value.message
    with pytest.raises(StoreError) as info, store.begin() as conn:
        repo.write_records(conn, "people", [])
    assert info.value.hint is not None and "customers" in info.value.hint
    assert _count(store, tables.customers) == 0 and _count(store, tables.imports) == 0


# --------------------------------------------------------------------------- the public test helper


def test_temp_store_is_initialised_seeded_and_removed() -> None:
    with temp_store(world()) as engine:
        path = Path(str(engine.url.database))
        assert path.exists()
        assert db.schema_revision(engine) == db.head_revision()
        with engine.connect() as conn:
            assert repo.read_customer(conn, "c1").orders_total == 2
        db.open_store(str(engine.url)).dispose()
    assert not path.exists() and not path.parent.exists()


# --------------------------------------------------------------------------- the CLI


def test_cli_init_says_what_it_did(db_url: str) -> None:
    code, out, _ = run_cli(["init", "--db", db_url])
    assert code == 0
    assert out.startswith("created store ") and f"schema {HEAD}" in out
    code, out, _ = run_cli(["init", "--db", db_url])
    assert code == 0 and "already up to date" in out


def test_cli_init_hides_the_password_and_reads_tactful_db(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TACTFUL_DB", f"sqlite:///{tmp_path}/from-env.db")
    code, out, _ = run_cli(["init"])
    assert code == 0 and "from-env.db" in out
    assert (tmp_path / "from-env.db").exists()
    bad = f"postgresql://tactful:s3cret@127.0.0.1:{_free_port()}/shop"
    code, _, err = run_cli(["init", "--db", bad])
    assert code == 3
    assert "cannot reach store" in err and "s3cret" not in err and "tactful:***@" in err


def test_cli_customer_show_json_and_text(seeded: Engine) -> None:
    url = seeded.url.render_as_string(hide_password=False)
    code, out, _ = run_cli(["customer", "show", "c1", "--db", url, "--format", "json"])
    assert code == 0
    data = json.loads(out)
    assert data["customer"]["first_name"] == "Jane"
    assert [o["id"] for o in data["orders"]] == ["o2", "o1"]
    assert data["orders"][1]["lines"][0]["product"]["implies"] == [PREGNANCY]
    assert data["facts"][0]["provenance"]["import_kind"] == "sample"

    code, out, _ = run_cli(["customer", "show", "c1", "--db", url, "--orders", "1"])
    assert code == 0
    for heading in ("Customer c1", "Household", "Contact points (2)", "Consents (1)",
                    "Orders (1 of 2, newest first)", "Order lines", "Facts (2)", "Touches (1",
                    "Imports these rows came from"):
        assert heading in out
    assert "[b]Doe[/b]" in out  # stored text is shown as is, never as Rich markup
    assert "test:world" in out and "Sourdough bread" in out
    assert "Pregnancy test" not in out  # that order is beyond --orders 1

    code, out, _ = run_cli(["customer", "list", "--db", url])
    assert code == 0 and out.split() == ["c1", "c2"]


def test_cli_customer_show_errors(store: Engine, tmp_path: Path) -> None:
    url = store.url.render_as_string(hide_password=False)
    code, _, err = run_cli(["customer", "show", "nobody", "--db", url])
    assert code == 2 and "no customer 'nobody'" in err and "tactful customer list" in err
    code, _, err = run_cli(["customer", "show", "c1", "--db", f"sqlite:///{tmp_path}/none.db"])
    assert code == 3 and "does not exist" in err and "tactful init" in err


def test_console_script_reports_a_bad_port_with_exit_code_3(tmp_path: Path) -> None:
    """The installed entry point end to end, in a subprocess."""
    url = f"postgresql+psycopg://postgres:pw@127.0.0.1:{_free_port()}/tactful"
    proc = subprocess.run([sys.executable, "-m", "tactful.cli", "init", "--db", url],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 3
    assert "cannot reach store" in proc.stderr and "hint:" in proc.stderr
    assert ":pw@" not in proc.stderr


def test_db_value_is_one_conversion_for_the_record_writer_and_the_importers() -> None:
    """store.repo.db_value: enums by value, tuples as lists, datetimes in UTC; the importers' batch
    writer (and its column path) use the very same function."""
    from tactful.ingest import columnar, writer
    from tactful.vocab import Channel

    assert writer.db_value is repo.db_value and columnar.db_value is repo.db_value
    assert repo.db_value(Channel.EMAIL) == "email"
    assert repo.db_value((Channel.EMAIL, ("a", Channel.SMS))) == ["email", ["a", "sms"]]
    utc = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert repo.db_value(utc) is utc  # already UTC: kept as it is
    naive = repo.db_value(datetime(2026, 3, 1, 12, 0))
    assert naive == utc and naive.tzinfo is UTC
    shifted = repo.db_value(datetime(2026, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1))))
    assert shifted == utc and shifted.tzinfo is UTC
    assert repo.db_value(date(2026, 3, 1)) == date(2026, 3, 1) and repo.db_value("x") == "x"
