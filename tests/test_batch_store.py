"""DuckDB reads the store in place, read-only and offline, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Engine

from tactful.batch.store import attach_store, connect, extension_directory, store_schema
from tactful.errors import StoreError
from tactful.model import Consent, ContactPoint, Customer, Fact, Household, Order, OrderLine, Product
from tactful.store import db, tables
from tactful.testing.store import seed


def world() -> list[BaseModel]:
    return [
        Household(id="h1", size=2),
        Customer(id="c1", household_id="h1", first_name="Ann", openness="reserved"),
        Customer(id="c2", first_name="O'Brien", deceased=True),
        ContactPoint(id="cp1", customer_id="c1", kind="email", value="ann@example.org",
                     shared_with="private", verified_at="2026-06-01T08:00:00Z"),
        ContactPoint(id="cp2", customer_id="c2", kind="postal", value="1 Main St", bounced=True),
        Consent(id="k1", customer_id="c1", purpose="marketing.communications.email", channel="email",
                status="granted", source="form",
                at=datetime(2026, 1, 2, 10, 0, tzinfo=timezone(timedelta(hours=2)))),
        Product(id="p1", name="Test", department="pharmacy", implies=("user.health_and_medical",)),
        Order(id="o1", customer_id="c1", at="2026-02-01T09:30:00Z", total=3.5),
        OrderLine(order_id="o1", line_no=1, product_id="p1", quantity=1, amount=3.5),
        Fact(id="f1", customer_id="c1", kind="preference", category="user.behavior", label="aisle seat",
             origin="declared", source="chat", context="support_chat"),
    ]


@pytest.fixture()
def store(db_url: str) -> Iterator[tuple[str, Engine]]:
    engine = db.init_store(db_url)
    seed(engine, world(), origin="test:batch")
    yield db_url, engine
    engine.dispose()


def test_the_extensions_come_from_the_installed_wheels() -> None:
    found = {p.name for p in extension_directory().rglob("*.duckdb_extension")}
    assert {"sqlite_scanner.duckdb_extension", "postgres_scanner.duckdb_extension"} <= found
    assert ".venv" in str(extension_directory()) or "site-packages" in str(extension_directory())


def test_the_store_reads_in_place_typed_and_read_only(store: tuple[str, Engine]) -> None:
    url, engine = store
    con = connect(threads=1)
    attached = attach_store(con, url)
    for name in ("customers", "contact_points", "consents", "facts", "orders", "order_lines", "products"):
        with engine.connect() as conn:
            expected = conn.execute(sa.select(sa.func.count()).select_from(tables.metadata.tables[name]))
            want = expected.scalar_one()
        t = attached.table(name)
        assert t.count().execute() == want, name
        assert t.schema() == store_schema(tables.metadata.tables[name]), name
    cps = {r["id"]: r for r in attached.table("contact_points").to_pyarrow().to_pylist()}
    assert cps["cp1"]["verified_at"] == datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
    assert cps["cp1"]["bounced"] is False and cps["cp2"]["bounced"] is True
    consent = attached.table("consents").to_pyarrow().to_pylist()[0]
    assert consent["at"] == datetime(2026, 1, 2, 8, 0, tzinfo=UTC)  # stored in UTC whatever the offset
    names = {r["id"]: r["first_name"] for r in attached.table("customers").to_pyarrow().to_pylist()}
    assert names["c2"] == "O'Brien"
    with pytest.raises(Exception, match=r"(?i)read.only"):
        con.raw_sql("DELETE FROM store.customers" if attached.dialect == "sqlite"
                    else "DELETE FROM store.public.customers")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tables.customers)).scalar_one() == 2


def test_a_missing_sqlite_store_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no SQLite store"):
        attach_store(connect(), f"sqlite:///{tmp_path}/nothing.db")
    assert not (tmp_path / "nothing.db").exists()


def test_another_database_is_a_store_error() -> None:
    con: Any = connect()
    with pytest.raises(StoreError, match="SQLite or PostgreSQL"):
        attach_store(con, "mysql://u@localhost/x")
