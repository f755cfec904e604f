"""The sample world: determinism, personas, shape, provenance, PostgreSQL, the CLI (synthetic worlds)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from tactful.cli import app, main
from tactful.errors import SampleError
from tactful.sample import AS_OF, PERSONA_IDS, PERSONAS, build_sample
from tactful.sample.build import synthetic_chunks
from tactful.sample.personas import verify_personas
from tactful.sample.writer import format_dates, format_timestamps, to_pylist
from tactful.store import tables
from tactful.store.db import make_engine

DATA_TABLES = (
    "households",
    "customers",
    "contact_points",
    "consents",
    "products",
    "orders",
    "order_lines",
    "facts",
    "personas",
)
AS_OF_DT = datetime(2026, 11, 1)


def _norm(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, list):
        return tuple(value)
    return value


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every data table, provenance time left out, sorted: comparable across backends."""
    engine = make_engine(url)
    out: dict[str, list[tuple[Any, ...]]] = {}
    try:
        with engine.connect() as conn:
            for name in DATA_TABLES:
                table = tables.metadata.tables[name]
                cols = [c for c in table.c if c.name != "written_at"]
                rows = [tuple(_norm(v) for v in r) for r in conn.execute(sa.select(*cols))]
                out[name] = sorted(rows, key=repr)
    finally:
        engine.dispose()
    return out


@pytest.fixture(scope="module")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('world') / 'small.db'}"
    build_sample(url, seed=7, synthetic_n=400)
    yield url


@pytest.fixture()
def small_engine(small_world: str) -> Iterator[sa.Engine]:
    engine = make_engine(small_world)
    yield engine
    engine.dispose()


def test_same_seed_same_rows_different_seed_different_rows(small_world: str, tmp_path: Path) -> None:
    again = f"sqlite:///{tmp_path / 'again.db'}"
    other = f"sqlite:///{tmp_path / 'other.db'}"
    build_sample(again, seed=7, synthetic_n=400)
    build_sample(other, seed=8, synthetic_n=400)
    first, second, third = dump(small_world), dump(again), dump(other)
    for name in DATA_TABLES:
        assert first[name] == second[name], name
    assert first["customers"] != third["customers"]
    assert first["orders"] != third["orders"]
    assert first["products"] == third["products"]  # the real catalogue does not depend on the seed
    assert first["personas"] == third["personas"]


def test_parallel_generation_gives_the_same_chunks() -> None:
    serial = list(synthetic_chunks(60_000, 3, jobs=0))
    parallel = list(synthetic_chunks(60_000, 3, jobs=2))
    assert [n for n, _ in serial] == [n for n, _ in parallel] == [50_000, 10_000]
    for (_, a), (_, b) in zip(serial, parallel, strict=True):
        assert [c.table for c in a] == [c.table for c in b]
        for ca, cb in zip(a, b, strict=True):
            assert list(ca.columns) == list(cb.columns)
            for name in ca.columns:
                assert to_pylist(ca.column(name)) == to_pylist(cb.column(name)), (ca.table, name)


def test_every_persona_is_findable_with_its_planted_data(small_engine: sa.Engine) -> None:
    assert verify_personas(small_engine) == []
    with small_engine.connect() as conn:
        keys = {r.key: r.customer_id for r in conn.execute(sa.select(tables.personas))}
        assert keys == PERSONA_IDS
        assert len(PERSONAS) == 8
        dob = conn.execute(
            sa.select(tables.facts).where(tables.facts.c.customer_id == "persona-birthday")
        ).one()
        assert (dob.category, dob.origin, dob.source, dob.context) == (
            "user.demographic.date_of_birth",
            "declared",
            "web",
            "account_security",
        )
        diner = conn.execute(
            sa.select(tables.facts).where(tables.facts.c.customer_id == "persona-diner")
        ).one()
        assert (diner.source, diner.context, diner.origin) == ("partner:tablepay", "payment", "observed")
        consents = (
            conn.execute(
                sa.select(tables.consents.c.purpose).where(tables.consents.c.customer_id == "persona-diner")
            )
            .scalars()
            .all()
        )
        assert consents == ["marketing.communications.email"]  # no SMS, no third-party sharing
        teen = conn.execute(sa.select(tables.facts).where(tables.facts.c.id == "persona-teen-inf-baby")).one()
        assert teen.implies == ["user.demographic.household.baby"]
        shoes = conn.execute(
            sa.select(sa.func.count())
            .select_from(tables.orders)
            .where(tables.orders.c.customer_id == "persona-shoes")
        ).scalar_one()
        assert shoes == 3


def test_verify_personas_notices_missing_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'broken.db'}"
    build_sample(url, seed=1, synthetic_n=10)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(tables.facts.delete().where(tables.facts.c.customer_id == "persona-aisle"))
            conn.execute(
                tables.customers.update()
                .where(tables.customers.c.id == "persona-deceased")
                .values(deceased=False)
            )
        problems = verify_personas(engine)
    finally:
        engine.dispose()
    assert any(p.startswith("persona-aisle") for p in problems)
    assert any(p.startswith("persona-deceased") for p in problems)
    assert len(problems) == 2


def test_the_world_has_the_promised_shape(small_engine: sa.Engine) -> None:
    t = tables
    with small_engine.connect() as conn:

        def values(col: sa.ColumnElement[Any]) -> set[Any]:
            return set(conn.execute(sa.select(col).distinct()).scalars())

        assert conn.execute(sa.select(sa.func.count()).select_from(t.customers)).scalar_one() == 400 + 9
        assert values(t.consents.c.source) == {"form", "portal", "tcf", "gpc", "import", "advisor"}
        assert values(t.consents.c.status) == {"granted", "denied", "withdrawn"}
        assert {
            "marketing.communications.email",
            "marketing.communications.sms",
            "marketing.communications.postal",
            "personalize.content",
            "third_party_sharing",
        } <= values(t.consents.c.purpose)
        gpc = conn.execute(
            sa.select(t.consents.c.status).distinct().where(t.consents.c.source == "gpc")
        ).scalars()
        assert set(gpc) == {"denied"}
        assert values(t.contact_points.c.shared_with) == {"private", "household", "others", None}
        assert values(t.contact_points.c.kind) == {"email", "phone", "postal"}
        assert values(t.customers.c.openness) == {"closed", "reserved", "balanced", "open", None}
        assert True in values(t.contact_points.c.bounced)
        stale = conn.execute(
            sa.select(sa.func.count())
            .select_from(t.contact_points)
            .where(t.contact_points.c.verified_at < datetime(2022, 11, 1))
        ).scalar_one()
        assert stale > 0
        never = conn.execute(
            sa.select(sa.func.count())
            .select_from(t.contact_points)
            .where(t.contact_points.c.verified_at.is_(None))
        ).scalar_one()
        assert never > 0
        events = set(
            conn.execute(sa.select(t.facts.c.source, t.facts.c.context).where(t.facts.c.kind == "event"))
        )
        assert {("web", "browse"), ("chat", "support"), ("voice", "support_call")} <= events
        # every email value is fictional: reserved example domains only
        domains = {
            v.rsplit("@", 1)[1]
            for v in conn.execute(
                sa.select(t.contact_points.c.value).where(t.contact_points.c.kind == "email")
            ).scalars()
        }
        assert all(d.startswith("example.") or d.endswith(".example") for d in domains)
        # about 20 orders per customer, lines add up to the order total
        n_orders = conn.execute(sa.select(sa.func.count()).select_from(t.orders)).scalar_one()
        assert 15 * 400 < n_orders < 25 * 400
        mismatch = conn.execute(
            sa.text(
                "SELECT count(*) FROM orders o JOIN (SELECT order_id, sum(amount) s FROM order_lines"
                " GROUP BY order_id) l ON l.order_id = o.id WHERE abs(l.s - o.total) > 0.005"
            )
        ).scalar_one()
        assert mismatch == 0
        latest = conn.execute(sa.select(sa.func.max(t.orders.c.at))).scalar_one()
        assert latest < AS_OF_DT
        # households shared by several customers exist, and a family email is shared inside one
        multi = conn.execute(
            sa.text(
                "SELECT count(*) FROM (SELECT household_id FROM customers"
                " GROUP BY household_id HAVING count(*) > 1)"
            )
        ).scalar_one()
        assert multi > 10


def test_integrity_indexes_and_provenance(small_engine: sa.Engine) -> None:
    with small_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
        names = set(conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'").scalars())
        for table in tables.metadata.sorted_tables:
            for index in table.indexes:
                assert index.name in names, index.name
        batch = conn.execute(sa.select(tables.imports)).one()
        assert (batch.kind, batch.origin, batch.source_label) == ("sample", "sample:synthetic", "seed=7")
        assert batch.finished_at is not None and batch.rows_imported == batch.rows_read > 0
        assert batch.mapping["seed"] == 7 and batch.mapping["customers"] == 400
        total = 0
        for name in DATA_TABLES:
            table = tables.metadata.tables[name]
            if "import_id" in table.c:
                missing = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(table)
                    .where(
                        sa.or_(
                            table.c.import_id.is_(None),
                            table.c.import_id != batch.id,
                            table.c.written_at.is_(None),
                        )
                    )
                ).scalar_one()
                assert missing == 0, name
            total += conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
        assert total == batch.rows_imported  # every row written, personas included


def test_types_read_back_through_sqlalchemy(small_engine: sa.Engine) -> None:
    with small_engine.connect() as conn:
        c = conn.execute(
            sa.select(tables.customers).where(tables.customers.c.birth_date.is_not(None)).limit(1)
        ).one()
        assert isinstance(c.birth_date, date) and isinstance(c.id, str) and isinstance(c.deceased, bool)
        o = conn.execute(sa.select(tables.orders).where(tables.orders.c.id.like("1%")).limit(1)).one()
        assert isinstance(o.at, datetime) and isinstance(o.id, str) and len(o.id) == 11
        line = conn.execute(sa.select(tables.order_lines).limit(1)).one()
        assert isinstance(line.quantity, float) and isinstance(line.product_id, str)
        p = conn.execute(
            sa.select(tables.products).where(tables.products.c.category == "FAMILY PLANNING").limit(1)
        ).one()
        assert "user.health_and_medical.reproductive" in p.implies


def test_a_non_empty_store_is_refused_unless_replace(small_world: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'twice.db'}"
    build_sample(url, seed=7, synthetic_n=20)
    with pytest.raises(SampleError, match="already holds data"):
        build_sample(url, seed=7, synthetic_n=20)
    result = build_sample(url, seed=7, synthetic_n=30, replace=True)
    assert result.customers == 39
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(tables.customers)).scalar_one() == 39
            assert conn.execute(sa.select(sa.func.count()).select_from(tables.imports)).scalar_one() == 1
    finally:
        engine.dispose()


def test_invalid_sizes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SampleError, match="between 1 and"):
        build_sample(f"sqlite:///{tmp_path / 'x.db'}", synthetic_n=0)


def test_timestamp_and_date_formatting_matches_sqlalchemy() -> None:
    values = np.array(["2026-11-01T00:00:00", "NaT", "1999-12-31T23:59:59"], dtype="datetime64[s]")
    assert format_timestamps(values) == ["2026-11-01 00:00:00.000000", None, "1999-12-31 23:59:59.000000"]
    assert format_timestamps(np.array(["NaT"], dtype="datetime64[s]")) == [None]
    assert format_dates(np.array(["2009-07-08", "NaT"], dtype="datetime64[D]")) == ["2009-07-08", None]
    assert to_pylist(np.array([1.5, np.nan])) == [1.5, None]
    assert str(AS_OF) == "2026-11-01T00:00:00"


@pytest.mark.postgres
def test_synthetic_world_on_postgresql_matches_sqlite(pg_url: str, small_world: str) -> None:
    result = build_sample(pg_url, seed=7, synthetic_n=400)
    assert result.customers == 409
    engine = make_engine(pg_url)
    try:
        assert verify_personas(engine) == []
        with engine.connect() as conn:
            idx = set(
                conn.exec_driver_sql("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'").scalars()
            )
            assert "ix_order_lines_product_id" in idx and "ix_orders_customer_id" in idx
            at = conn.execute(
                sa.select(tables.orders.c.at).where(tables.orders.c.id == "10000000000")
            ).scalar_one()
            assert at.tzinfo is not None
    finally:
        engine.dispose()
    pg_rows, sqlite_rows = dump(pg_url), dump(small_world)
    for name in DATA_TABLES:
        assert pg_rows[name] == sqlite_rows[name], name


def test_cli_builds_and_summarises(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = CliRunner().invoke(
        app, ["sample", "--db", url, "--synthetic", "60", "--seed", "5"], env={"COLUMNS": "160"}
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "built the synthetic sample world (seed 5)" in out
    for title in (
        "Sample world",
        "Sensitive products by implied category",
        "Consents by source and status",
        "Contact points by kind",
        "Seed personas",
    ):
        assert title in out
    for cid in PERSONA_IDS.values():
        assert cid in out
    assert "user.sexual_life" in out and "█" in out
    assert "customers" in out and "69" in out  # 60 generated + 9 persona customers


def test_cli_errors_exit_with_their_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    with pytest.raises(SystemExit) as info:
        main(["sample", "--db", url, "--synthetic", "5", "--quiet"])
    assert info.value.code == 0
    assert "built the synthetic sample world" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["sample", "--db", url, "--synthetic", "5", "--quiet"])
    assert info.value.code == 2  # a usage problem: a store that already holds data
    assert "already holds data" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - {id: x, when: {department: X}, implies: [user.nope]}\n", encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        main(
            [
                "sample",
                "--db",
                f"sqlite:///{tmp_path / 'other.db'}",
                "--synthetic",
                "5",
                "--sensitivity",
                str(bad),
            ]
        )
    assert info.value.code == 2
    assert "user.nope" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["sample", "--db", url, "--synthetic", "0"])
    assert info.value.code == 2


def test_cli_sensitivity_mapping_changes_labels(tmp_path: Path) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "rules:\n  - {id: eggs, when: {category: EGGS}, implies: [user.health_and_medical]}\n",
        encoding="utf-8",
    )
    url = f"sqlite:///{tmp_path / 'm.db'}"
    result = CliRunner().invoke(
        app, ["sample", "--db", url, "--synthetic", "5", "--sensitivity", str(mapping), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            labels = {
                json.dumps(v)
                for v in conn.execute(
                    sa.select(tables.products.c.implies).where(tables.products.c.category == "EGGS")
                ).scalars()
            }
            cond = conn.execute(
                sa.select(tables.products.c.implies)
                .where(tables.products.c.category == "FAMILY PLANNING")
                .limit(1)
            ).scalar_one()
    finally:
        engine.dispose()
    assert labels == {'["user.health_and_medical"]'}
    assert cond == []


def test_copy_text_escapes_and_nulls() -> None:
    from tactful.sample.writer import Const, _copy_text

    values = np.array(["a\tb", "line\nbreak", "back\\slash", None, "plain"], dtype=object)
    assert _copy_text(values, 0, 5) == ["a\\tb", "line\\nbreak", "back\\\\slash", "\\N", "plain"]
    assert _copy_text(np.array([True, False]), 0, 2) == ["t", "f"]
    assert _copy_text(np.array([1.5, np.nan]), 0, 2) == ["1.5", "\\N"]
    assert _copy_text(np.array([3, 10_000_000_001]), 0, 2) == ["3", "10000000001"]
    assert _copy_text(Const("checkout"), 0, 3) == ["checkout"] * 3
    stamps = np.array(["2026-11-01T10:00:00", "NaT"], dtype="datetime64[s]")
    assert _copy_text(stamps, 0, 2) == ["2026-11-01 10:00:00.000000", "\\N"]


def _schema_differences(engine: sa.Engine) -> list[Any]:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(ctx, tables.metadata))


def _foreign_keys_and_indexes(engine: sa.Engine) -> tuple[set[str], set[str]]:
    with engine.connect() as conn:
        fks = set(
            conn.exec_driver_sql(
                "SELECT conname FROM pg_constraint"
                " WHERE contype = 'f' AND connamespace = 'public'::regnamespace"
            ).scalars()
        )
        idx = set(
            conn.exec_driver_sql("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'").scalars()
        )
    return fks, idx


@pytest.mark.postgres
def test_postgresql_load_restores_every_constraint_and_index(pg_url: str) -> None:
    """The load drops the foreign keys and secondary indexes and puts them back: the schema still matches."""
    from tactful.store.db import init_store

    engine = init_store(pg_url)
    try:
        before = _foreign_keys_and_indexes(engine)
        assert "fk_order_lines_product_id_products" in before[0] and "ix_facts_customer_id" in before[1]
    finally:
        engine.dispose()
    result = build_sample(pg_url, seed=7, synthetic_n=150)
    assert result.customers > 150 and result.index_seconds > 0
    engine = make_engine(pg_url)
    try:
        assert _foreign_keys_and_indexes(engine) == before
        assert _schema_differences(engine) == []
        with engine.connect() as conn:
            # every constraint validated (none left NOT VALID) and the loaded tables analysed
            assert not conn.exec_driver_sql("SELECT 1 FROM pg_constraint WHERE NOT convalidated").first()
            analysed = set(
                conn.exec_driver_sql(
                    "SELECT DISTINCT tablename FROM pg_stats WHERE schemaname = 'public'"
                ).scalars()
            )
            assert {"customers", "orders", "order_lines", "facts"} <= analysed
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgresql_load_violating_a_foreign_key_is_rolled_back(pg_url: str) -> None:
    from tactful.sample.writer import BulkWriter, Chunk, bulk_writer
    from tactful.store.db import begin_import, init_store

    engine = init_store(pg_url)
    try:
        before = _foreign_keys_and_indexes(engine)
        with engine.begin() as conn:
            import_id = begin_import(conn, kind="sample", origin="sample:test")
        households = Chunk("households", {"id": np.array(["h1"], dtype=object)})
        orphan = Chunk(
            "customers",
            {
                "id": np.array(["c1", "c2"], dtype=object),
                "household_id": np.array(["h1", "nope"], dtype=object),
                "deceased": np.array([False, False]),
            },
        )
        writer = BulkWriter(
            engine,
            import_id=import_id,
            written_at=datetime.now(UTC),
            defer_indexes=True,
            tables_loaded=("households", "customers"),
        )
        writer.write(households)
        writer.write(orphan)  # accepted: the foreign key is not there during the load
        with pytest.raises(SampleError) as info:
            writer.close()
        assert "fk_customers_household_id_households" in info.value.message
        assert _foreign_keys_and_indexes(engine) == before
        assert _schema_differences(engine) == []
        with engine.connect() as conn:
            for name in ("households", "customers"):
                assert (
                    conn.execute(
                        sa.select(sa.func.count()).select_from(tables.metadata.tables[name])
                    ).scalar_one()
                    == 0
                )

        # an error while writing rolls back too
        with (
            pytest.raises(RuntimeError),
            bulk_writer(
                engine,
                import_id=import_id,
                written_at=datetime.now(UTC),
                defer_indexes=True,
                tables_loaded=("households", "customers"),
            ) as w,
        ):
            w.write(households)
            raise RuntimeError("boom")
        assert _foreign_keys_and_indexes(engine) == before
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(tables.households)).scalar_one() == 0
    finally:
        engine.dispose()
