"""The default sample world: The Complete Journey built into SQLite (one build per test session)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tactful.sample import PERSONA_IDS, BuildResult, build_sample
from tactful.sample import completejourney as cj
from tactful.sample.personas import verify_personas
from tactful.store import tables
from tactful.store.db import make_engine

pytestmark = pytest.mark.slow

AS_OF = datetime(2026, 11, 1)


@pytest.fixture(scope="session")
def cj_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BuildResult, sa.Engine]]:
    path: Path = tmp_path_factory.mktemp("cj") / "completejourney.db"
    result = build_sample(f"sqlite:///{path}", seed=42)
    engine = make_engine(f"sqlite:///{path}")
    yield result, engine
    engine.dispose()


def count(engine: sa.Engine, name: str) -> int:
    with engine.connect() as conn:
        table = tables.metadata.tables[name]
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_every_household_basket_and_product_is_in_the_store(cj_world: tuple[BuildResult, sa.Engine]) -> None:
    result, engine = cj_world
    tx = cj.raw_transactions()
    products = cj.raw_products()
    households = tx["household_id"].nunique()
    baskets = tx["basket_id"].nunique()
    missing_products = len(set(tx["product_id"].unique()) - set(products["product_id"]))
    personas = len(PERSONA_IDS) + 1  # the teenager's father is a customer too
    assert result.world == "completejourney"
    assert count(engine, "customers") == households + personas
    assert count(engine, "households") == households + len(PERSONA_IDS)
    assert count(engine, "orders") == baskets + 7
    assert count(engine, "order_lines") == len(tx) + 8
    assert count(engine, "products") == len(products) + missing_products
    assert result.rows["order_lines"] == len(tx) + 8
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
        with_income = conn.execute(
            sa.select(sa.func.count())
            .select_from(tables.households)
            .where(tables.households.c.income.is_not(None))
        ).scalar_one()
        assert with_income == len(cj.raw_demographics())


def test_baskets_keep_their_totals_and_are_shifted_by_whole_weeks(
    cj_world: tuple[BuildResult, sa.Engine],
) -> None:
    _, engine = cj_world
    tx = cj.raw_transactions()
    basket = tx[tx["basket_id"] == tx["basket_id"].iloc[1000]]
    first = basket["transaction_timestamp"].min().to_pydatetime()
    with engine.connect() as conn:
        order = conn.execute(
            sa.select(tables.orders).where(tables.orders.c.id == str(basket["basket_id"].iloc[0]))
        ).one()
        lines = conn.execute(
            sa.select(tables.order_lines).where(tables.order_lines.c.order_id == order.id).order_by("line_no")
        ).all()
        shift = conn.execute(sa.select(tables.imports.c.mapping)).scalar_one()["timestamp_shift_weeks"]
        latest = conn.execute(sa.select(sa.func.max(tables.orders.c.at))).scalar_one()
    assert order.customer_id == str(basket["household_id"].iloc[0])
    assert order.store_id == str(basket["store_id"].iloc[0])
    assert len(lines) == len(basket)
    assert [ln.line_no for ln in lines] == list(range(1, len(basket) + 1))
    assert order.total == pytest.approx(basket["sales_value"].sum(), abs=0.011)
    assert order.at - first == timedelta(weeks=shift)
    assert order.at.weekday() == first.weekday()
    assert AS_OF - timedelta(days=8) < latest < AS_OF


def test_products_are_labelled_and_personas_planted(cj_world: tuple[BuildResult, sa.Engine]) -> None:
    _, engine = cj_world
    assert verify_personas(engine) == []
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tables.products.c.subcategory, tables.products.c.implies)).all()
        inferred = conn.execute(
            sa.select(sa.func.count()).select_from(tables.facts).where(tables.facts.c.kind == "inference")
        ).scalar_one()
    by_sub = {sub: implies for sub, implies in rows if sub}
    assert "user.health_and_medical.reproductive" in by_sub["PREGNANCY TEST KITS"]
    assert "user.sexual_life" in by_sub["PROPHYLACTICS"]
    assert by_sub["BABY DIAPERS"] == ["user.demographic.household.baby"]
    labelled = sum(1 for _, implies in rows if implies)
    assert 5_000 < labelled < 12_000
    assert 50 < inferred < 1_000  # the loyalty model's baby predictions, from real purchases


def test_same_seed_gives_the_same_generated_identities(cj_world: tuple[BuildResult, sa.Engine]) -> None:
    """The generated part of the Complete Journey world is a pure function of the seed (no store needed)."""
    from tactful.sample.build import completejourney_chunks
    from tactful.sensitivity import load_mapping

    _, engine = cj_world
    _, chunks, _ = completejourney_chunks(42, load_mapping())
    contact = next(c for c in chunks if c.table == "contact_points")
    with engine.connect() as conn:
        stored = dict(
            conn.execute(
                sa.select(tables.contact_points.c.id, tables.contact_points.c.value).where(
                    tables.contact_points.c.customer_id.not_like("persona-%")
                )
            ).all()
        )
    generated = dict(zip(contact.column("id").tolist(), contact.column("value").tolist(), strict=True))
    assert stored == generated
