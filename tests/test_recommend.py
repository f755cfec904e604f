"""Recommendations (tactful.recommend) in Ibis on DuckDB, reading a real SQLite store in place:
co-occurrence from baskets, the popularity fallback, nothing already bought, implied categories carried,
and the metrics of the time-split evaluation checked by hand."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ibis
import pytest

from tactful import recommend as rec
from tactful.batch.store import attach_store, connect
from tactful.model import Customer, Order, OrderLine, Product
from tactful.store import db
from tactful.testing.store import seed

START = datetime(2026, 1, 5, 10, tzinfo=UTC)
BABY = "user.demographic.household.baby"


def _world() -> list[Any]:
    """Bread and butter go together; milk is in every basket; nappies imply a baby."""
    records: list[Any] = [Product(id=p, name=p.title()) for p in ("bread", "butter", "jam", "milk", "tea")]
    records.append(Product(id="nappies", name="Nappies", implies=(BABY,)))
    baskets: dict[str, list[list[str]]] = {
        # five regulars buy bread with butter (and jam once in a while)
        **{f"r{i}": [["bread", "butter", "milk"], ["bread", "butter", "jam", "milk"]] for i in range(5)},
        "parent": [["nappies", "milk"], ["nappies", "milk", "butter"]],
        "newbie": [["bread", "milk"]],  # bought bread: butter is its neighbour
        "tea-only": [["tea"]],  # tea has no neighbour with support: popularity fills in
    }
    n = 0
    for cid, orders in baskets.items():
        records.append(Customer(id=cid))
        for j, items in enumerate(orders):
            n += 1
            oid = f"o{n}"
            records.append(Order(id=oid, customer_id=cid, at=START + timedelta(days=7 * j, hours=n)))
            records.extend(OrderLine(order_id=oid, line_no=k + 1, product_id=p) for k, p in enumerate(items))
    return records


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    path: Path = tmp_path_factory.mktemp("rec") / "tactful.db"
    engine = db.init_store(f"sqlite:///{path}")
    seed(engine, _world())
    engine.dispose()
    con = connect(threads=1)
    yield attach_store(con, f"sqlite:///{path}")
    con.disconnect()


SMALL = rec.Settings(k=3, min_support=2, neighbours=5, history=10)


def _recs(store: Any, settings: rec.Settings = SMALL, **kw: Any) -> dict[str, list[tuple[str, str]]]:
    basket = rec.baskets(store.table("orders"), store.table("order_lines"))
    frame = rec.recommend(basket, settings, **kw).to_pandas().sort_values(["customer_id", "rank"])
    out: dict[str, list[tuple[str, str]]] = {}
    for row in frame.itertuples():
        out.setdefault(row.customer_id, []).append((row.product_id, row.source))
    return out


def test_co_occurrence_suggests_what_is_bought_together(store: Any) -> None:
    got = _recs(store)
    assert got["newbie"][0] == ("butter", rec.CO_OCCURRENCE)


def test_nothing_already_bought_is_suggested(store: Any) -> None:
    got = _recs(store, spare=3)
    assert not {"bread", "milk"} & {p for p, _ in got["newbie"]}
    assert all(p not in {"bread", "butter", "jam", "milk"} for p, _ in got["r0"])


def test_popularity_fills_in_when_co_occurrence_has_nothing(store: Any) -> None:
    got = _recs(store)
    tea = got["tea-only"]
    assert [s for _, s in tea] == [rec.POPULAR] * len(tea) and tea[0][0] == "milk"  # the most popular
    assert len(tea) == 3  # topped up to k
    # popularity alone, for the comparison: everyone gets popular products only
    pop = _recs(store, use_co_occurrence=False)
    assert {s for items in pop.values() for _, s in items} == {rec.POPULAR}


def test_each_customer_gets_k_plus_spare_at_most(store: Any) -> None:
    got = _recs(store, spare=2)
    assert max(len(v) for v in got.values()) <= SMALL.k + 2
    assert all(len({p for p, _ in v}) == len(v) for v in got.values())  # no product twice


def test_candidates_carry_the_categories_their_product_implies(store: Any) -> None:
    basket = rec.baskets(store.table("orders"), store.table("order_lines"))
    cands = rec.with_implies(rec.recommend(basket, SMALL, spare=5), store.table("products")).to_pandas()
    nappies = cands[cands.product_id == "nappies"]
    assert not nappies.empty and all(BABY in text for text in nappies.implies)
    assert set(cands[cands.product_id == "butter"].implies) == {"[]"}


def test_the_cutoff_keeps_the_holdout_out_of_training(store: Any) -> None:
    orders = store.table("orders")
    cutoff = rec.holdout_cutoff(orders, weeks=1)
    train = rec.baskets(orders, store.table("order_lines"), before=cutoff).to_pandas()
    assert (train["at"] < cutoff).all() and len(train) > 0


def test_metrics_by_hand() -> None:
    candidates = ibis.memtable({"customer_id": ["a", "a", "a", "b"], "product_id": ["x", "y", "z", "x"],
                                "rank": [0, 1, 2, 0]})
    truth = ibis.memtable({"customer_id": ["a", "a", "b"], "product_id": ["y", "q", "w"]})
    con = connect(threads=1)
    try:
        m = rec.score(con.create_table("c", candidates), con.create_table("t", truth), 10, "test")
    finally:
        con.disconnect()
    # a: one hit at rank 1 -> DCG 1/log2(3); two relevant -> IDCG 1 + 1/log2(3). b: no hit.
    ndcg_a = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert (m.customers, m.hit_rate) == (2, 0.5)
    assert m.ndcg == pytest.approx(ndcg_a / 2)


def test_evaluate_runs_both_methods_on_a_time_split(store: Any) -> None:
    results = rec.evaluate(store.table("orders"), store.table("order_lines"), weeks=1, settings=SMALL)
    assert [r.method for r in results] == ["co-occurrence + popularity fallback", "popularity"]
    for r in results:
        assert r.customers >= 1 and 0 <= r.hit_rate <= 1 and 0 <= r.ndcg <= 1


def _sensitive(key: str) -> bool:
    return key == BABY or key.startswith(BABY + ".")


def test_a_sensitive_purchase_votes_for_nothing_and_is_never_popular(store: Any) -> None:
    basket = rec.baskets(store.table("orders"), store.table("order_lines"))
    exclude = rec.sensitive_products(store.table("products"), _sensitive)
    assert set(exclude.to_pandas().product_id) == {"nappies"}
    seeds = rec.seeds(basket, SMALL, exclude=exclude).to_pandas()
    # both of the parent's orders hold nappies: nothing of them seeds (the butter, the milk neither)
    assert "parent" not in set(seeds.customer_id)
    assert set(seeds[seeds.customer_id == "newbie"].product_id) == {"bread", "milk"}
    got = _recs(store, spare=3, exclude=exclude)
    assert all(s == rec.POPULAR for _, s in got["parent"])  # the fallback only
    assert all(p != "nappies" for items in got.values() for p, s in items if s == rec.POPULAR)
    # benign twin: without the exclusion the parent's orders vote as any other
    assert rec.CO_OCCURRENCE in {s for _, s in _recs(store, spare=3)["parent"]}


def test_voters_name_the_orders_a_candidate_was_recommended_from(store: Any) -> None:
    basket = rec.baskets(store.table("orders"), store.table("order_lines"))
    seed = rec.seeds(basket, SMALL)
    nb = rec.neighbours(basket, SMALL)
    voters = rec.voters(seed, nb).to_pandas()
    butter = voters[(voters.customer_id == "newbie") & (voters.product_id == "butter")]
    newbie_order = basket.filter(basket.customer_id == "newbie").to_pandas().order_id.iloc[0]
    assert [sorted(o) for o in butter.orders] == [[newbie_order]]


@pytest.mark.parametrize(("label", "sensitive"), [
    ('["user.demographic.household.baby"]', True), ('["user.behavior.substance.alcohol"]', False),
    ("[]", False), ("not json", True), ('{"a": 1}', True), ("[1]", True)])
def test_a_label_that_cannot_be_read_counts_as_sensitive(label: str, sensitive: bool) -> None:
    assert rec._sensitive_label(label, _sensitive) is sensitive


def test_the_top_cut_gives_exactly_the_candidates_of_the_full_ranking(sample_worlds: Any) -> None:
    """Each customer's co-occurrence candidates are cut to her best scores (ties included) before they
    are ranked (a top-n aggregate instead of sorting hundreds of voted products per customer): on a
    sample world, the candidates, ranks, scores and sources are exactly those of the full ranking."""
    path = sample_worlds.path(seed=7, synthetic_n=200)
    con = connect(threads=2)
    try:
        store = attach_store(con, f"sqlite:///{path}")
        basket = con.create_table("basket", rec.baskets(store.table("orders"), store.table("order_lines")))
        settings = rec.Settings(k=3)
        got = {}
        for cut in (True, False):
            frame = rec.recommend(basket, settings, spare=2, top_cut=cut).to_pyarrow()
            got[cut] = sorted(zip(*(frame.column(c).to_pylist()
                                    for c in ("customer_id", "rank", "product_id", "score", "source")),
                                  strict=True))
    finally:
        con.disconnect()
    assert got[True] == got[False]
    customers = {r[0] for r in got[True]}
    assert len(customers) > 200 and len(got[True]) == 5 * len(customers)
    assert {r[4] for r in got[True]} == {rec.CO_OCCURRENCE, rec.POPULAR}
