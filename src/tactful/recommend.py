"""Candidate products per customer: item-to-item co-occurrence from baskets, popularity fallback.

Computed in Ibis over the store's ``orders`` and ``order_lines`` (DuckDB reading the store in place,
:mod:`tactful.batch.store`), never row by row in Python:

1. **baskets**: the distinct products of each order before the cutoff;
2. **neighbours**: for every pair of products bought in the same basket, the number of baskets
   holding both, normalised by the products' own basket counts (cosine: ``n_ab / sqrt(n_a * n_b)``,
   so that milk and bread do not become everyone's neighbour); each product keeps its
   ``neighbours`` best;
3. **scores**: a customer's most recent ``history`` distinct products vote for their neighbours; the
   products the customer already bought are left out (a campaign suggests something new);
4. **fallback**: customers with too few co-occurrence candidates (or none: a short history) are
   topped up with the most popular products they have not bought.

**Sensitive purchases never vote** (``exclude``, :func:`sensitive_products`): an order holding a product
whose implied categories are sensitive under the policy pack's settings (a pregnancy test, an adult
item, a medicine) seeds nothing, and sensitive products never enter the popularity fallback; so a
recommendation never rests on, nor hints at, what a customer would not want inferred. :func:`voters`
says which of the customer's (non-sensitive) orders voted for each candidate: the facts a touch that
shows it really uses. Neighbours are still learnt from every basket (shop-wide counts reveal nothing
about one customer); a sensitive product can therefore be a co-occurrence candidate, and the campaign
lets the engine refuse it and shows the next acceptable one instead.

Each candidate carries the data categories its product implies (``products.implies``, the sensitivity
mapping), so that recommending baby goods counts as showing that inference.

:func:`evaluate` measures hit-rate@k and NDCG@k of this and of popularity alone on a time split: train
on everything before the last weeks, test on what each customer bought (new to them) in those weeks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import ibis
from ibis import _

CO_OCCURRENCE = "co-occurrence"
POPULAR = "popular"


@dataclass(frozen=True)
class Settings:
    k: int = 10  # candidates per customer
    history: int = 30  # most recent distinct products of a customer that vote
    neighbours: int = 30  # neighbours kept per product
    min_support: int = 3  # a product needs this many baskets to have neighbours
    max_basket: int = 60  # larger baskets (a party, a restock) say little about affinity; left out
    #: how much a neighbour's own popularity is discounted: n_ab / (sqrt(n_a) * n_b ** damping).
    #: 0.5 is the cosine; 0 is the plain "bought together" rate, which favours popular neighbours.
    damping: float = 0.0  # measured on the sample world: docs/performance.md
    popular_pool: int = 200  # popular products considered for the fallback


def baskets(orders: Any, order_lines: Any, *, before: datetime | None = None) -> Any:
    """(order_id, customer_id, at, product_id), one row per distinct product of an order."""
    o = orders.select(order_id=orders.id, customer_id=orders.customer_id, at=orders.at)
    if before is not None:
        o = o.filter(o.at < before)
    lines = order_lines.select("order_id", "product_id")
    return lines.join(o, "order_id").select("order_id", "customer_id", "at", "product_id").distinct()


def sensitive_products(products: Any, is_sensitive: Callable[[str], bool]) -> Any:
    """(product_id) of the products whose stored implied categories (``products.implies``, labelled
    with the sensitivity mapping at import) hold one ``is_sensitive`` accepts (the pack's
    ``Settings.is_sensitive``). A label that is not a JSON list of texts counts as sensitive (fail
    closed). Only the few distinct label values are checked in Python; the filter runs in the backend."""
    texts = products.implies.cast("string")
    values = products.select(implies=texts).distinct().to_pyarrow().column("implies").to_pylist()
    bad = [v for v in values if v is not None and _sensitive_label(v, is_sensitive)]
    return products.filter(texts.isin(bad) if bad else ibis.literal(False)).select(product_id=products.id)


def _sensitive_label(text: str, is_sensitive: Callable[[str], bool]) -> bool:
    try:
        keys = json.loads(text)
    except ValueError:
        return True
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        return True
    return any(is_sensitive(k) for k in keys)


def clean(basket: Any, exclude: Any | None) -> Any:
    """The basket lines of the orders that hold no product of ``exclude`` (product_id); all of them when
    ``exclude`` is None."""
    if exclude is None:
        return basket
    tainted = basket.join(exclude, "product_id").select("order_id").distinct()
    return basket.anti_join(tainted, "order_id")


def seeds(basket: Any, settings: Settings = Settings(), *, exclude: Any | None = None) -> Any:
    """(customer_id, product_id, order_id, h): each customer's ``settings.history`` most recently bought
    distinct products (h = 0 the most recent), each with the latest order it was bought in; only orders
    that hold no product of ``exclude`` count."""
    lines = clean(basket, exclude)
    latest = lines.mutate(o=ibis.row_number().over(group_by=["customer_id", "product_id"],
                                                    order_by=[ibis.desc("at"), ibis.desc("order_id")]))
    latest = latest.filter(latest.o == 0)
    ranked = latest.mutate(h=ibis.row_number().over(group_by="customer_id",
                                                    order_by=[ibis.desc("at"), "product_id"]))
    return ranked.filter(ranked.h < settings.history).select("customer_id", "product_id", "order_id", "h")


def voters(seed: Any, nb: Any, candidates: Any | None = None) -> Any:
    """(customer_id, product_id, orders): for every product a customer's seeds vote for (only the
    ``candidates``' (customer_id, product_id) when given), the orders (ids, a list) of the seeds that
    voted: what a touch showing that product uses."""
    votes = seed.join(nb, "product_id").select("customer_id", "order_id", product_id=_.neighbour)
    if candidates is not None:
        votes = votes.semi_join(candidates.select("customer_id", "product_id"), ["customer_id", "product_id"])
    votes = votes.distinct()
    return votes.group_by(["customer_id", "product_id"]).aggregate(orders=_.order_id.collect())


def popularity(basket: Any) -> Any:
    """(product_id, customers): how many customers bought each product."""
    return basket.group_by("product_id").aggregate(customers=_.customer_id.nunique())


def neighbours(basket: Any, settings: Settings = Settings()) -> Any:
    """(product_id, neighbour, similarity) with the ``settings.neighbours`` best per product."""
    sizes = basket.group_by("order_id").aggregate(size=_.count())
    small = basket.join(sizes.filter(sizes.size <= settings.max_basket), "order_id").select(
        "order_id", "product_id")
    support = small.group_by("product_id").aggregate(n=_.count())
    support = support.filter(support.n >= settings.min_support)
    kept = small.join(support.select("product_id"), "product_id")
    a = kept.rename(a="product_id")
    b = kept.rename(b="product_id")
    pairs = a.join(b, "order_id").filter(_.a != _.b).group_by(["a", "b"]).aggregate(n_ab=_.count())
    na = support.rename(a="product_id", n_a="n")
    nb = support.rename(b="product_id", n_b="n")
    scored = pairs.join(na, "a").join(nb, "b")
    n_a, n_b = scored.n_a.cast("float64"), scored.n_b.cast("float64")
    scored = scored.mutate(similarity=scored.n_ab / (n_a.sqrt() * n_b.pow(settings.damping)))
    ranked = scored.mutate(r=ibis.row_number().over(group_by="a",
                                                    order_by=[ibis.desc("similarity"), "b"]))
    return ranked.filter(ranked.r < settings.neighbours).select(
        product_id=_.a, neighbour=_.b, similarity=_.similarity)


def co_scores(basket: Any, settings: Settings = Settings(), *, exclude: Any | None = None,
              nb: Any | None = None, seed: Any | None = None) -> Any:
    """(customer_id, product_id, score): every product a customer's seeds vote for and she has not
    bought, with the sum of the votes' similarities (``nb``, ``seed`` and ``exclude`` as for
    :func:`recommend`)."""
    bought = basket.select("customer_id", "product_id").distinct()
    seed = seed if seed is not None else seeds(basket, settings, exclude=exclude)
    nb = nb if nb is not None else neighbours(basket, settings)
    votes = seed.join(nb, "product_id").select("customer_id", product_id=_.neighbour, similarity=_.similarity)
    # rounded: a float sum's last bits depend on the order DuckDB's threads add in, and the ranking
    # must not (the same store gives the same candidates)
    co = votes.group_by(["customer_id", "product_id"]).aggregate(score=_.similarity.sum().round(9))
    return co.anti_join(bought, ["customer_id", "product_id"])


@ibis.udf.agg.builtin(name="max")  # type: ignore[untyped-decorator]
def _top_values(x: float, n: int) -> list[float]:  # type: ignore[empty-body]
    """The ``n`` largest values of ``x`` (DuckDB's ``max(x, n)``: a top-n aggregate, no sort)."""


def recommend(basket: Any, settings: Settings = Settings(), *, spare: int = 0,
              use_co_occurrence: bool = True, exclude: Any | None = None, nb: Any | None = None,
              seed: Any | None = None, pop: Any | None = None, top_cut: bool = True,
              co: Any | None = None) -> Any:
    """(customer_id, product_id, rank, score, source): ``settings.k + spare`` candidates per customer who
    has a basket, best first (rank 0 first). ``spare`` extra candidates let a campaign replace one the
    policy refuses by the next acceptable one. ``use_co_occurrence=False`` gives popularity alone.
    ``exclude`` (product_id): sensitive products; orders holding one seed nothing, and they are left
    out of the popularity fallback. ``nb`` and ``seed``: :func:`neighbours` and :func:`seeds` already
    computed (and cached) by the caller for the same basket, settings and ``exclude``. ``pop``:
    :func:`popularity` of the whole shop when ``basket`` holds only some customers' baskets (a campaign
    recommends block by block of its audience: the customers' parts read their own baskets, the
    shop-wide parts the whole shop's). ``top_cut`` (DuckDB: its ``max(x, n)``) keeps only each
    customer's best co-occurrence scores before ranking; the candidates are the same without it
    (tests/test_recommend.py), only slower. ``co``: :func:`co_scores` already computed (and kept as a
    table: the cut reads it twice) for the same arguments."""
    want = settings.k + spare
    bought = basket.select("customer_id", "product_id").distinct()
    pop = pop if pop is not None else popularity(basket)
    if exclude is not None:
        pop = pop.anti_join(exclude, "product_id")
    pool = pop.order_by([ibis.desc("customers"), "product_id"]).limit(settings.popular_pool + want)
    pool = pool.mutate(pop_rank=ibis.row_number().over(order_by=[ibis.desc("customers"), "product_id"]))
    # a customer needs at most the first ``want`` popular products not bought: those lie within the
    # first want + (pool products the customer bought); the pool is not crossed with everyone whole
    # (a million customers by 200 products), the same candidates come out
    owned = bought.join(pool.select("product_id"), "product_id").group_by("customer_id").aggregate(
        owned=_.count())
    customers = bought.select("customer_id").distinct().left_join(owned, "customer_id").select(
        "customer_id", reach=want + _.owned.fill_null(0))
    # (a filter on a cross join: DuckDB plans it as an inequality join)
    reach = customers.cross_join(pool.select("product_id", "pop_rank")).filter(_.pop_rank <= _.reach)
    fallback = reach.select("customer_id", "product_id", "pop_rank").anti_join(
        bought, ["customer_id", "product_id"])
    fallback = fallback.select("customer_id", "product_id", priority=ibis.literal(1),
                               score=(-fallback.pop_rank).cast("float64"), source=ibis.literal(POPULAR))
    parts = [fallback]
    if use_co_occurrence:
        co = co if co is not None else co_scores(basket, settings, exclude=exclude, nb=nb, seed=seed)
        if top_cut:
            # only a customer's best ``want`` scores (ties included) can make the final list (every
            # co-occurrence candidate ranks before every popular one): the rest are dropped before the
            # rankings below sort what is left (a customer has hundreds of voted products)
            cut = co.group_by("customer_id").aggregate(best=_top_values(co.score, want))
            cut = cut.select(cut_customer="customer_id", cut=cut.best.mins())
            co = co.join(cut, co.customer_id == cut.cut_customer)
            co = co.filter(co.score >= co.cut).select("customer_id", "product_id", "score")
        parts.insert(0, co.select("customer_id", "product_id", priority=ibis.literal(0), score=_.score,
                                  source=ibis.literal(CO_OCCURRENCE)))
    union = ibis.union(*parts) if len(parts) > 1 else parts[0]
    first = union.mutate(pick=ibis.row_number().over(group_by=["customer_id", "product_id"],
                                                     order_by=["priority", ibis.desc("score")]))
    unique = first.filter(first.pick == 0)
    ranked = unique.mutate(rank=ibis.row_number().over(
        group_by="customer_id", order_by=["priority", ibis.desc("score"), "product_id"]))
    return ranked.filter(ranked.rank < want).select("customer_id", "product_id", "rank", "score", "source")


def with_implies(candidates: Any, products: Any) -> Any:
    """The candidates with their product's name and implied data categories (JSON text)."""
    p = products.select(product_id=products.id, name=products.name, implies=products.implies)
    return candidates.left_join(p, "product_id").select(
        "customer_id", "product_id", "rank", "score", "source", "name", "implies")


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Metrics:
    method: str
    customers: int  # test customers (bought something new to them in the holdout)
    hit_rate: float  # share of them with at least one of their k candidates bought
    ndcg: float  # mean NDCG@k with binary relevance

    def __str__(self) -> str:
        return (f"{self.method}: hit-rate@k {self.hit_rate:.4f}, NDCG@k {self.ndcg:.4f} "
                f"over {self.customers:,} customers")


def holdout_cutoff(orders: Any, weeks: int) -> datetime:
    """The time ``weeks`` before the last order."""
    last = orders.at.max().to_pyarrow().as_py()
    return last - timedelta(weeks=weeks)  # type: ignore[no-any-return]


def score(candidates: Any, truth: Any, k: int, method: str) -> Metrics:
    """hit-rate@k and NDCG@k of ``candidates`` (customer_id, product_id, rank from 0) against ``truth``
    (customer_id, product_id: what each test customer bought)."""
    top = candidates.filter(candidates["rank"] < k)
    hits = top.join(truth, ["customer_id", "product_id"]).group_by("customer_id").aggregate(
        hits=_.count(), dcg=(1.0 / (_["rank"] + 2).cast("float64").log2()).sum())
    per = truth.group_by("customer_id").aggregate(relevant=_.count()).left_join(hits, "customer_id")
    frame = per.select("relevant", hits=per.hits.fill_null(0), dcg=per.dcg.fill_null(0.0)).to_pandas()
    if frame.empty:
        return Metrics(method, 0, 0.0, 0.0)
    ideal = [0.0]
    for i in range(k):
        ideal.append(ideal[-1] + 1.0 / math.log2(i + 2))
    idcg = frame["relevant"].clip(upper=k).map(lambda n: ideal[int(n)])
    hit_rate = float((frame["hits"] > 0).mean())
    return Metrics(method, len(frame), hit_rate, float((frame["dcg"] / idcg).mean()))


def split(orders: Any, order_lines: Any, *, weeks: int = 4) -> tuple[Any, Any]:
    """(training baskets, truth): baskets before the last ``weeks``; and, for customers seen in training,
    the products they bought for the first time in those weeks. Both materialised (cached)."""
    cutoff = holdout_cutoff(orders, weeks)
    everything = baskets(orders, order_lines).cache()
    train = everything.filter(everything.at < cutoff).cache()
    later = everything.filter(everything.at >= cutoff).select("customer_id", "product_id").distinct()
    known = train.select("customer_id").distinct()
    truth = later.join(known, "customer_id").anti_join(
        train.select("customer_id", "product_id").distinct(), ["customer_id", "product_id"]).cache()
    return train, truth


def evaluate(orders: Any, order_lines: Any, *, weeks: int = 4, settings: Settings = Settings(),
             exclude: Any | None = None) -> list[Metrics]:
    """Co-occurrence with fallback vs popularity alone, trained before the last ``weeks`` and tested on
    the products each customer bought for the first time in them; ``exclude`` as for
    :func:`recommend` (both methods)."""
    train, truth = split(orders, order_lines, weeks=weeks)
    return [score(recommend(train, settings, exclude=exclude), truth, settings.k,
                  "co-occurrence + popularity fallback"),
            score(recommend(train, settings, use_co_occurrence=False, exclude=exclude), truth, settings.k,
                  "popularity")]
