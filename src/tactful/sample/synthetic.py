"""A synthetic world of any size with the shape of the Complete Journey one (for benchmarks).

Customers are generated in chunks of :data:`CHUNK` with NumPy; chunk ``i`` draws from
``default_rng([seed, i])``, so a world is a pure function of (seed, size) whatever order or process
builds its chunks. Products are the real Complete Journey products (labelled); which product a line
buys follows the products' real popularity and average price in the Complete Journey transactions.

Ids: customer ``10000000 + i``; household = the id of its first member; order
``customer * 1000 + k`` (k-th order of the customer, oldest first); all the same width, so they ascend
as text too and the primary-key indexes are filled in order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from tactful.sample.completejourney import Catalogue, catalogue, raw_transactions
from tactful.sample.people import PeopleSpec, choice_p, generate_people, inference_facts, sample_age_ranges
from tactful.sample.writer import Chunk, Const
from tactful.sensitivity import SensitivityMapping

CHUNK = 50_000
CUSTOMER_BASE = 10_000_000
MAX_CUSTOMERS = 89_999_999
ORDERS_MEAN = 20
LINES_EXTRA_MEAN = 1.3  # lines per order = 1 + Poisson(1.3)
STORES = 400
DAY_S = 86_400
DRAW_BITS = 20
DRAW_TABLE = 1 << DRAW_BITS  # product popularity is quantised to 1/2**20


def _quantile_table(values: np.ndarray, p: np.ndarray, size: int) -> np.ndarray:
    """``size`` values at the quantiles of a discrete distribution: one integer draw + one lookup."""
    cdf = np.cumsum(p) / np.sum(p)
    table: np.ndarray = values[
        np.minimum(np.searchsorted(cdf, (np.arange(size) + 0.5) / size, side="right"), len(values) - 1)
    ].astype(np.int32)
    return table


def _poisson_p(lam: float, upto: int) -> np.ndarray:
    k = np.arange(upto + 1)
    logp = k * np.log(lam) - lam - np.array([np.sum(np.log(np.arange(1, i + 1))) for i in k])
    p: np.ndarray = np.exp(logp)
    return p


#: lines per order: 1 + Poisson(1.3), quantised to 1/4096; quantity: 80% one, 15% two, 5% three
LINES_TABLE = 1 + _quantile_table(np.arange(13), _poisson_p(LINES_EXTRA_MEAN, 12), 4096)
QTY_TABLE = np.array([1] * 3277 + [2] * 614 + [3] * 205, dtype=np.int32)  # 4096 entries
#: 128 entries: 96 pos, 25 web, 7 app (75 / 19.5 / 5.5 %)
SOURCE_TABLE = np.array(["pos"] * 96 + ["web"] * 25 + ["app"] * 7, dtype=object)

HH_COMPOSITION = np.array(
    ["1 Adult No Kids", "2 Adults No Kids", "2 Adults Kids", "1 Adult Kids"], dtype=object
)
INCOME = np.array(
    [
        "Under 15K",
        "15-24K",
        "25-34K",
        "35-49K",
        "50-74K",
        "75-99K",
        "100-124K",
        "125-149K",
        "150-174K",
        "175-199K",
        "200-249K",
        "250K+",
    ],
    dtype=object,
)
INCOME_P = np.array([0.07, 0.09, 0.1, 0.21, 0.24, 0.12, 0.05, 0.05, 0.03, 0.02, 0.01, 0.01])
OWNERSHIP = np.array(["Homeowner", "Probable Homeowner", "Renter", "Probable Renter", None], dtype=object)
OWNERSHIP_P = np.array([0.5, 0.02, 0.05, 0.02, 0.41])


@dataclass(frozen=True, slots=True)
class Market:
    """The products and how customers buy them."""

    catalogue: Catalogue
    popularity: np.ndarray  # probability per catalogue row
    draw_table: np.ndarray  # 2**20 catalogue rows at the popularity's quantiles: a draw is one lookup
    price_cents: np.ndarray  # average unit price per catalogue row, in cents
    baby: np.ndarray  # bool per catalogue row: implies a baby in the household
    browse_categories: np.ndarray
    browse_implies: np.ndarray


def market(mapping: SensitivityMapping) -> Market:
    tx = raw_transactions()
    cat = catalogue(mapping, extra_ids=np.unique(tx["product_id"].to_numpy(dtype=np.int64)))
    idx = cat.index_of(tx["product_id"].to_numpy(dtype=np.int64))
    counts = np.bincount(idx, minlength=len(cat.ids)).astype(np.float64)
    qty = np.maximum(tx["quantity"].to_numpy(dtype=np.float64), 1.0)
    unit = tx["sales_value"].to_numpy(dtype=np.float64) / qty
    sums = np.bincount(idx, weights=unit, minlength=len(cat.ids))
    price = np.where(counts > 0, sums / np.maximum(counts, 1), 2.99)
    price_cents = np.clip(np.round(price * 100), 10, 50_000).astype(np.int32)
    popularity = counts / counts.sum()
    quantiles = (np.arange(DRAW_TABLE) + 0.5) / DRAW_TABLE
    draw_table = np.minimum(
        np.searchsorted(np.cumsum(popularity), quantiles, side="right"), len(popularity) - 1
    ).astype(np.int32)
    baby = np.array(["user.demographic.household.baby" in j for j in cat.implies_json.tolist()])
    return Market(cat, popularity, draw_table, price_cents, baby, *browse_space(mapping, cat))


def browse_space(mapping: SensitivityMapping, cat: Catalogue) -> tuple[np.ndarray, np.ndarray]:
    """The product categories a web visit can browse, and what viewing each implies (sorted, unique)."""
    names = sorted({c for c in cat.category.tolist() if c})
    implies = np.array([json.dumps(list(mapping.implies(None, c, None))) for c in names], dtype=object)
    return np.array(names, dtype=object), implies


def _known_only(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``values`` where ``known``, NULL elsewhere (an object array)."""
    out = np.asarray(values).astype(object)
    out[~known] = None
    return out


def chunk_bounds(n: int, size: int = CHUNK) -> list[tuple[int, int]]:
    return [(start, min(n, start + size)) for start in range(0, n, size)]


def generate_chunk(
    seed: int, index: int, start: int, stop: int, as_of: np.datetime64, mk: Market
) -> list[Chunk]:
    """Every row of customers ``start`` .. ``stop - 1`` of the synthetic world, in foreign-key order."""
    rng = np.random.default_rng([seed, index])
    n = stop - start
    cust = np.arange(CUSTOMER_BASE + start, CUSTOMER_BASE + stop, dtype=np.int64)

    # households: 12% of customers join the previous customer's household
    new_hh = rng.random(n) >= 0.12
    new_hh[0] = True
    hidx = np.cumsum(new_hh) - 1
    hh_ids = cust[new_hh]
    h = len(hh_ids)
    members = np.bincount(hidx, minlength=h)
    size = members + choice_p(rng, (0.55, 0.3, 0.15), h)
    kids = np.where(size > members, rng.integers(0, 3, size=h), 0)
    kids = np.minimum(kids, size - 1)
    comp = np.where(size == 1, 0, np.where(kids > 0, np.where(size - kids >= 2, 2, 3), 1))
    known = rng.random(h) < 0.35  # like the Complete Journey: demographics for about a third
    households = Chunk(
        "households",
        {
            "id": hh_ids,
            "size": _known_only(size, known),
            "composition": _known_only(HH_COMPOSITION[comp], known),
            "kids_count": _known_only(kids, known),
            "income": _known_only(INCOME[choice_p(rng, INCOME_P, h)], known),
            "home_ownership": _known_only(OWNERSHIP[choice_p(rng, OWNERSHIP_P, h)], known),
        },
    )
    ages = _known_only(sample_age_ranges(rng, n), known[hidx])
    spec = PeopleSpec(cust, hidx, hh_ids, size, ages)
    people = generate_people(rng, spec, as_of, mk.browse_categories, mk.browse_implies)

    # orders: Poisson(20) per customer, oldest first, over the last two years
    k = np.minimum(rng.poisson(ORDERS_MEAN, size=n), 999)
    n_orders = int(k.sum())
    ocust = np.repeat(np.arange(n), k)
    ostart = np.cumsum(k) - k
    oseq = np.arange(n_orders) - np.repeat(ostart, k)
    offset = rng.integers(3_600, 730 * DAY_S, size=n_orders)
    # oldest first within a customer: sort on (customer, -offset) packed into one int64 (ocust is sorted,
    # so this sort is nearly linear)
    key = np.sort((ocust.astype(np.int64) << 32) | (np.int64(1 << 31) - offset))
    offset = np.int64(1 << 31) - (key & np.int64(0xFFFFFFFF))
    order_at = as_of - offset.astype("timedelta64[s]")
    order_id = cust[ocust] * 1000 + oseq
    home = rng.integers(1, STORES + 1, size=n)
    # one 32-bit draw per order picks both the store (80% the customer's home store, else any of the
    # STORES: low bits) and the channel (high bits: 75% pos, 20% web, 5% app)
    bits = rng.integers(0, 1 << 32, size=n_orders, dtype=np.uint32)
    away = (bits & np.uint32(0xFFFF)) % np.uint32(5 * STORES)
    store = np.where(away < STORES, away.astype(np.int64) + 1, home[ocust])
    source = SOURCE_TABLE[bits >> np.uint32(25)]

    # lines: 1 + Poisson(1.3) per order, products by real popularity
    m = LINES_TABLE[rng.integers(0, len(LINES_TABLE), size=n_orders, dtype=np.int32)]
    n_lines = int(m.sum())
    lorder = np.repeat(np.arange(n_orders, dtype=np.int32), m)
    line_no = np.ones(n_lines, dtype=np.int32)  # 1, 2, ... within each order: a cumsum with resets
    line_no[np.cumsum(m[:-1])] = 1 - m[:-1]
    line_no = np.cumsum(line_no, dtype=np.int32)
    # one 32-bit draw per line: the product (high 20 bits) and the quantity (low 12 bits)
    bits = rng.integers(0, 1 << 32, size=n_lines, dtype=np.uint32)
    prod = mk.draw_table[bits >> np.uint32(32 - DRAW_BITS)]
    qty = QTY_TABLE[bits & np.uint32(len(QTY_TABLE) - 1)]
    cents = mk.price_cents[prod] * qty  # whole cents: exact sums, no rounding noise
    amount = cents / 100.0
    running = np.cumsum(cents, dtype=np.int64)  # lines are contiguous per order: differences of a running sum
    ends = np.cumsum(m, dtype=np.int64) - 1
    total = np.diff(running[ends], prepend=np.int64(0)) / 100.0

    orders = Chunk(
        "orders",
        {
            "id": order_id,
            "customer_id": cust[ocust],
            "at": order_at,
            "source": source,
            "context": Const("checkout"),
            "store_id": store,
            "total": total,
        },
    )
    lines = Chunk(
        "order_lines",
        {
            "order_id": order_id[lorder],
            "line_no": line_no,
            "product_id": mk.catalogue.ids[prod],
            "quantity": qty,
            "amount": amount,  # an integer in a FLOAT column is stored as a float
        },
    )
    baby_lines = np.bincount(ocust[lorder[np.flatnonzero(mk.baby[prod])]], minlength=n)
    last_seen = np.full(n, as_of, dtype="datetime64[s]")
    has_orders = k > 0
    last_seen[has_orders] = order_at[np.cumsum(k)[has_orders] - 1]
    inferred = inference_facts(cust, baby_lines, last_seen, threshold=6)
    customers, contact_points, consents, events = people
    return [households, customers, contact_points, consents, orders, lines, events, inferred]
