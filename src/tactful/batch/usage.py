"""Which facts each candidate touch uses and shows, as Ibis relations, and the three feature families
that read them: **data hygiene**, **provenance and context**, **sensitivity and inference**.

:func:`fact_usage` resolves every candidate's ``uses`` / ``shows`` selectors against the customer's
facts and orders exactly as :mod:`tactful.realtime` builds the scenario (``StoreScenarioBuilder``):

* the *pool* of a customer is every row of the store's ``facts`` plus every order that no purchase fact
  stands for (a purchase fact whose ``value`` is an order id stands for it: the first such fact by
  time, NULL first, then id). An order becomes a purchase fact (observed, purchase history, the
  order's source, context and time) whose implied categories are those of its lines' products; a fact
  that stands for an order takes that order's implied categories too;
* a product's implied categories are its stored ``implies`` united with the sensitivity mapping's
  labels (:class:`tactful.sensitivity.SensitivityMapping`); the mapping runs in Python once per
  distinct (department, category, subcategory, name) of the products table, and the labels join back
  inside the backend;
* a selector matches a pool fact when every field it gives matches (an exact id naming an order a
  purchase fact stands for names that fact; ``category`` covers its sub-keys; ``context`` compares
  normalised contexts; ``within_days`` keeps facts without a time or dated in ``(now - days, now]``);
  ``newest`` keeps the newest N hits (time descending, timeless last, then id descending); an exact
  id that matches nothing and is not in the pool is a dangling reference.

Taxonomy checks against the settings' key lists (sensitive, inferred-sensitive, never-use, live-signal
and birthday categories) are membership in key sets expanded once, in Python, to every vocabulary key
the list covers; a key outside the vocabulary (which the row's ``unknown_vocabulary`` blocks anyway)
falls back to the same string test as :func:`tactful.vocab.covers`, so every cell agrees with
:func:`tactful.features.derive`.

Fail closed: what the Python path refuses to judge (a fact whose ``implies`` is not a JSON list of
strings, a shown product missing from the store, an order that has a fact's id) and what SQL cannot
normalise exactly as Python does (a context or label holding one of the few characters whose
case-folding differs from lower-casing, such as ``ß``) make every feature of these three families
NULL for that candidate, which the compiled evaluator blocks on.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import ibis

from tactful import vocab
from tactful.features import Settings
from tactful.features import families as _registry
from tactful.realtime import PURCHASE_CATEGORY
from tactful.sensitivity import SensitivityMapping, load_mapping
from tactful.vocab import CONTEXT_ALIASES, Channel, Depth, FactKind, Origin, Trigger

_FAMILY = {f.name: f.features for f in _registry.FAMILIES}
HYGIENE = _FAMILY["data hygiene"]
PROVENANCE = _FAMILY["provenance and context"]
SENSITIVITY = _FAMILY["sensitivity and inference"]

# Python's str.split() whitespace (str.isspace), for the label normalisation
_SPACE = "".join(chr(i) for i in range(sys.maxunicode + 1) if chr(i).isspace())


@functools.cache
def _unfoldable() -> str:
    """Characters whose case-folding is not their (one-character) lower case: SQL's lower() cannot
    stand for str.casefold() on them."""
    return "".join(c for c in map(chr, range(sys.maxunicode + 1))
                   if not 0xD800 <= ord(c) < 0xE000 and (c.casefold() != c.lower() or len(c.lower()) != 1))


def _char_class(chars: str) -> str:
    return "[" + "".join(f"\\x{{{ord(c):x}}}" for c in chars) + "]"


def _foldable(col: Any) -> Any:
    """``col`` holds no character SQL's lower() would case-fold differently from Python."""
    return ~col.re_search(_char_class(_unfoldable()))


def normalise_context(col: Any) -> Any:
    """:func:`tactful.vocab.normalise_context` in SQL (NULL when it cannot be exact)."""
    words = col.lower().re_replace("[^0-9a-z]+", "_").re_replace("^_+|_+$", "")
    aliased = words.cases(*sorted(CONTEXT_ALIASES.items()), else_=words)
    return ibis.ifelse(_foldable(col), aliased, ibis.null("string"))


def normalise_label(col: Any) -> Any:
    """:func:`tactful.features._label` in SQL: case-folded, whitespace runs one space, trimmed."""
    space = _char_class(_SPACE)
    words = col.lower().re_replace(f"{space}+", " ").re_replace("^ | $", "")
    return ibis.ifelse(col.isnull(), "", ibis.ifelse(_foldable(col), words, ibis.null("string")))


def _covers(general: Any, specific: Any) -> Any:
    return (specific == general) | specific.startswith(general + ".")


def _any(tests: Iterable[Any]) -> Any:
    items = list(tests)
    return functools.reduce(lambda a, b: a | b, items) if items else ibis.literal(False)


@functools.cache
def _categories() -> tuple[str, ...]:
    return tuple(sorted(vocab.data_categories().terms))


@functools.cache
def _uses() -> tuple[str, ...]:
    return tuple(sorted(vocab.data_uses().terms))


@functools.cache
def _parents() -> tuple[str, ...]:
    return tuple(sorted({t.parent for t in vocab.data_categories().terms.values() if t.parent}))


def key_in(col: Any, keys: Iterable[str]) -> Any:
    """``col`` is one of ``keys`` or sits under one: membership in the set of vocabulary keys they
    cover (expanded once), and for a key outside the vocabulary the string test of vocab.covers."""
    listed = tuple(keys)
    expanded = sorted(k for k in _categories() if any(vocab.covers(x, k) for x in listed))
    inside = col.isin(expanded) if expanded else ibis.literal(False)
    outside = ~col.isin(list(_categories())) & _any(_covers(ibis.literal(x), col) for x in listed)
    return inside | outside


def _in(col: Any, values: Iterable[str]) -> Any:
    items = sorted(values)
    return col.isin(items) if items else ibis.literal(False)


def _context_in(ctx: Any, contexts: Iterable[str]) -> Any:
    """Settings.context_in on a normalised context column: a listed context is the whole context or
    a whole ``_``-separated word run of it."""
    padded = "_" + ctx + "_"
    return _any(padded.contains(f"_{vocab.normalise_context(c)}_") for c in sorted(contexts))


def _context_exactly(ctx: Any, contexts: Iterable[str]) -> Any:
    return _in(ctx, {vocab.normalise_context(c) for c in contexts})


def _json_keys(col: Any) -> Any:
    """A JSON text list of keys as an array (NULL when it is not a JSON array; a NULL element where
    an element is not a string)."""
    return col.try_cast("json").array.map(lambda x: x.str)


def _bad_keys(arr: Any) -> Any:
    """The array is NULL or holds a NULL."""
    return arr.isnull() | (arr.filter(lambda k: k.isnull()).length() > 0)


# --------------------------------------------------------------------------- the pool of facts


def product_keys(store: Any, mapping: SensitivityMapping) -> tuple[Any, Any]:
    """(``product_id``, ``key``) for every category a product implies (stored label united with the
    mapping's), and (``product_id``, ``bad``) for every product (``bad``: its stored ``implies`` is
    not a JSON list of strings). The mapping runs once per distinct (department, category,
    subcategory, name), in Python, on values read from the backend."""
    p = store.table("products")
    fields = ("department", "category", "subcategory", "name")
    combos = p.select(*(p[f].fill_null("").name(f) for f in fields)).distinct().to_pyarrow().to_pylist()
    labels = [{**c, "key": k} for c in combos for k in mapping.implies(*(c[f] for f in fields))]
    lab = ibis.memtable(labels, schema={"department": "string", "category": "string",
                                        "subcategory": "string", "name": "string", "key": "string"})
    norm = p.select("id", *(p[f].fill_null("").name(f) for f in fields))
    mapped = norm.join(lab, list(fields)).select(product_id=norm.id, key=lab.key)
    arr = p.select(product_id=p.id, keys=_json_keys(p.implies))
    stored = arr.filter(arr.keys.notnull()).select("product_id", key=arr.keys.unnest())
    keys = mapped.union(stored.filter(stored.key.notnull()), distinct=True)
    bad = arr.select("product_id", bad=_bad_keys(arr.keys))
    return keys, bad


def _kept(store: Any, t: Any, *, materialize: bool) -> Any:
    """``t`` run once into a table of the store's connection (the steps that follow share it), or,
    without ``materialize``, left a lazy expression."""
    from tactful.batch.store import materialize as into_table

    return into_table(store.con, t) if materialize else t


@dataclass(frozen=True)
class Pool:
    """The customers' pools of facts (``facts``: one row per fact, ``keys``: its category and implied
    categories, one row each) and which facts stand for which order id (``stands``)."""

    facts: Any  # customer_id, fid, kind, category, label, origin, source, context (normalised), at,
    #             from_order, bad
    keys: Any  # customer_id, fid, key, implied, category (the fact's own), label: facts-table rows
    stands: Any  # customer_id, order_id, fid (the fact an exact order id selects)
    told: Any  # customer_id, d_cat, d_label: what the customer declared herself
    product_keys: Any  # product_id, key
    product_bad: Any  # product_id, bad
    order_keys: Any  # customer_id, order_id, key: what an order's products imply


def fact_pool(store: Any, mapping: SensitivityMapping, *, materialize: bool = True) -> Pool:
    """The pool of every customer (see the module doc). Runs the sensitivity mapping over the
    products' distinct (department, category, subcategory, name) once, eagerly."""
    f = store.table("facts")
    o = store.table("orders")
    lines = store.table("order_lines")
    m = functools.partial(_kept, store, materialize=materialize)  # read once, shared by the families

    # the products' implied categories: computed once per run (the blocks of a run share the memo of
    # the store they are scoped from), for this very mapping
    memo: dict[str, Any] | None = getattr(store, "memo", None)
    known = memo.get("product_keys") if memo is not None else None
    if known is not None and known[0] is mapping and known[1] == materialize:
        pkeys, pbad = known[2], known[3]
    else:
        pkeys, pbad = product_keys(store, mapping)
        pkeys, pbad = m(pkeys), m(pbad)  # one row per product (and key): small
        if memo is not None:
            memo["product_keys"] = (mapping, materialize, pkeys, pbad)
    keyed = pkeys.select(k_product="product_id").distinct()
    pinfo = pbad.left_join(keyed, pbad.product_id == keyed.k_product).select(
        i_product=pbad.product_id, i_bad=pbad.bad, i_keyed=keyed.k_product.notnull())
    # the largest table, read once: only the lines that matter are kept, those whose product implies
    # a category, or is bad, or is missing (``bad``)
    marked = lines.left_join(pinfo, lines.product_id == pinfo.i_product)
    lines = m(marked.filter(marked.i_product.isnull() | marked.i_bad | marked.i_keyed).select(
        order_id=marked.order_id, product_id=marked.product_id, bad=marked.i_bad.fill_null(True)))
    raw = f.select(customer_id=f.customer_id, fid=f.id, kind=f.kind, category=f.category, label=f.label,
                   value=f.value, origin=f.origin, source=f.source, ctx_raw=f.context, at=f.at,
                   implies=_json_keys(f.implies))
    raw = m(raw)
    # the purchase fact that stands for an order: the first by (time, NULL first; id)
    standing = raw.filter((raw.kind == FactKind.PURCHASE.value) & raw.value.notnull() & (raw.value != ""))
    standing = standing.mutate(rank=ibis.row_number().over(
        group_by=[standing.customer_id, standing.value],
        order_by=[standing.at.notnull().asc(), standing.at.asc(), standing.fid.asc()]))
    stands = m(standing.filter(standing.rank == 0).select("customer_id", order_id=standing.value, fid="fid"))

    # the orders (materialized once by scoped_store): a projection, not another copy
    own_orders = o.select(o_customer=o.customer_id, order_id=o.id, o_at=o.at, o_source=o.source,
                          o_context=o.context)
    line_keys = lines.join(pkeys, lines.product_id == pkeys.product_id).select(order_id=lines.order_id,
                                                                               key=pkeys.key).distinct()
    order_keys = m(own_orders.join(line_keys, "order_id").select(customer_id="o_customer",
                                                                 order_id="order_id", key="key"))
    # an order with a line whose product's implies cannot be read (or that is missing) is bad
    bad_lines = m(lines.filter(lines.bad).select(b_order=lines.order_id).distinct())
    order_bad = own_orders.left_join(bad_lines, own_orders.order_id == bad_lines.b_order)
    order_bad = order_bad.select(customer_id="o_customer", order_id="order_id",
                                 bad=order_bad.b_order.notnull())  # lazy: one row per order

    # orders no fact stands for become purchase facts
    loose = own_orders.anti_join(stands, [own_orders.o_customer == stands.customer_id,
                                          own_orders.order_id == stands.order_id])
    order_facts = loose.select(
        customer_id="o_customer", fid="order_id", kind=ibis.literal(FactKind.PURCHASE.value),
        category=ibis.literal(PURCHASE_CATEGORY), label=ibis.null("string"),
        origin=ibis.literal(Origin.OBSERVED.value), source="o_source", ctx_raw="o_context", at="o_at",
        from_order=ibis.literal(True))
    # a fact that stands for an order of its customer takes the order's categories and its badness
    stood = stands.join(order_bad, ["customer_id", "order_id"]).select("customer_id", "fid", "bad")
    labelled = raw.origin.isin([Origin.DECLARED.value, Origin.INFERRED.value]) \
        | (raw.kind == FactKind.INFERENCE.value)  # what the customer told or was guessed needs a label
    unlabelled = normalise_label(raw.label).isnull() & labelled
    fact_rows = raw.left_join(stood, ["customer_id", "fid"]).select(
        raw.customer_id, raw.fid, raw.kind, raw.category, raw.label, raw.origin, raw.source, raw.ctx_raw,
        raw.at, from_order=ibis.literal(False),
        extra_bad=stood.bad.fill_null(False) | _bad_keys(raw.implies) | unlabelled)
    # an order with a fact's id cannot be told apart from it (the Python path refuses the customer)
    clash = order_facts.semi_join(raw, [order_facts.customer_id == raw.customer_id,
                                        order_facts.fid == raw.fid]).select("customer_id").distinct()
    # (order ids are the store's keys: the few bad orders join on the id alone)
    order_rows = order_facts.left_join(bad_lines, order_facts.fid == bad_lines.b_order).select(
        order_facts.customer_id, order_facts.fid, order_facts.kind, order_facts.category, order_facts.label,
        order_facts.origin, order_facts.source, order_facts.ctx_raw, order_facts.at, order_facts.from_order,
        extra_bad=bad_lines.b_order.notnull())  # an order has no label: never unlabelled
    rows = fact_rows.union(order_rows)
    # each distinct context normalised once (a few per store), not once per row
    contexts = rows.select(c_raw="ctx_raw").distinct()
    contexts = m(contexts.select("c_raw", c_norm=normalise_context(contexts.c_raw)))
    rc = rows.left_join(contexts, rows.ctx_raw == contexts.c_raw)
    ctx = rc.c_norm
    facts = rc.select("customer_id", "fid", "kind", "category", "label", "origin", "source", "at",
                      "from_order", context=ctx, bad=rc.extra_bad | ctx.isnull() | (ctx == ""))
    cl = clash.select(c_customer="customer_id")
    facts = facts.left_join(cl, facts.customer_id == cl.c_customer)
    facts = m(facts.select(*(c for c in facts.columns if c not in ("bad", "c_customer")),
                           bad=facts.bad | facts.c_customer.notnull()))

    implied = raw.filter(raw.implies.notnull()).select("customer_id", "fid", key=raw.implies.unnest())
    stood_keys = stands.join(order_keys, ["customer_id", "order_id"]).select("customer_id", "fid", "key")
    # every key of a row of the facts table: its category, and what it implies (``implied``: listed in
    # its implies, or implied by the order it stands for); an order's keys are only needed when a
    # touch selects it (:func:`selected_order_keys`)
    listed = implied.filter(implied.key.notnull()).union(stood_keys)
    every = listed.mutate(implied=ibis.literal(True)).union(
        fact_rows.select("customer_id", "fid", key="category", implied=ibis.literal(False)))
    every = every.group_by(["customer_id", "fid", "key"]).aggregate(implied=every.implied.any())
    own = facts.filter(~facts.from_order).select(k_customer="customer_id", k_fid="fid", category="category",
                                                 label="label")
    keys = m(every.join(own, [every.customer_id == own.k_customer, every.fid == own.k_fid]).select(
        "customer_id", "fid", "key", "implied", "category", "label"))

    told = raw.filter((raw.origin == Origin.DECLARED.value) & (raw.kind != FactKind.INFERENCE.value)
                      & ~raw.source.startswith("partner:"))
    told = told.select("customer_id", d_cat="category", d_label=normalise_label(told.label))
    told = m(told)
    return Pool(facts=facts, keys=keys, stands=stands, told=told, product_keys=pkeys, product_bad=pbad,
                order_keys=order_keys)


def selected_order_keys(pool: Pool, both: Any) -> Any:
    """The keys (as :attr:`Pool.keys` has them) of the orders that ``both`` selects as facts: the
    purchase category, and what the order's products imply."""
    orders = pool.facts.filter(pool.facts.from_order).select(o_customer="customer_id", o_fid="fid")
    chosen = both.select(c_customer="customer_id", c_fid="fid").distinct()
    chosen = chosen.semi_join(orders, [chosen.c_customer == orders.o_customer,
                                       chosen.c_fid == orders.o_fid])
    ok = pool.order_keys
    listed = ok.join(chosen, [ok.customer_id == chosen.c_customer, ok.order_id == chosen.c_fid]).select(
        customer_id=ok.customer_id, fid=ok.order_id, key=ok.key, implied=ibis.literal(True))
    own = chosen.select(customer_id="c_customer", fid="c_fid", key=ibis.literal(PURCHASE_CATEGORY),
                        implied=ibis.literal(False))
    every = listed.union(own)
    every = every.group_by(["customer_id", "fid", "key"]).aggregate(implied=every.implied.any())
    return every.select("customer_id", "fid", "key", "implied", category=ibis.literal(PURCHASE_CATEGORY),
                        label=ibis.null("string"))


# --------------------------------------------------------------------------- the selection


@dataclass(frozen=True)
class Usage:
    """What each candidate uses and shows.

    ``both``: (row, customer_id, now, fid, used, shown) one row per selected fact; ``missing``: rows
    with a dangling exact id (row, role); ``selected``: (row, role) with at least one selector that
    selected or dangles; ``undetermined``: (row) whose selection or store rows cannot be judged
    exactly (the features are NULL); ``shown_keys``: (row, key) the touch's shows_implies and the
    implied categories of its shown items; ``pool``: the facts."""

    pool: Pool
    both: Any
    missing: Any
    selected: Any
    undetermined: Any
    shown_keys: Any
    keys: Any  # the pool's keys of the facts-table rows and of the selected orders


def _selectors(candidates: Any, role: str) -> Any:
    u = candidates.select("row", "customer_id", "now", sel=candidates[role]).unnest("sel", offset="pos")
    sel = u.sel
    return u.select("row", "customer_id", "now", "pos", role=ibis.literal(role), sid=sel.id, skind=sel.kind,
                    scat=sel.category, sorigin=sel.origin, ssource=sel.source, sctx=sel.context,
                    snctx=normalise_context(sel.context),
                    swithin=sel.within_days, snewest=sel.newest,
                    # the window's start, once per selector (not once per selector x fact)
                    ssince=u.now - sel.within_days.as_interval("D"))


def fact_usage(candidates: Any, store: Any, settings: Settings,
               mapping: SensitivityMapping | None = None, *, materialize: bool = True) -> Usage:
    """Resolve every candidate's selectors against its customer's pool (see the module doc).
    ``materialize``: build the pool as temp tables first (each store table read once; eager), or keep
    one lazy expression (to print a query plan)."""
    pool = fact_pool(store, mapping if mapping is not None else load_mapping(), materialize=materialize)
    sels = _selectors(candidates, "uses").union(_selectors(candidates, "shows"))
    # an exact id naming an order that a purchase fact stands for names that fact
    st = pool.stands.select(st_customer="customer_id", st_order="order_id", st_fid="fid")
    sels = sels.left_join(st, [sels.customer_id == st.st_customer, sels.sid == st.st_order])
    sels = sels.select(*(c for c in sels.columns if not c.startswith("st_")),
                       sid2=ibis.ifelse(sels.sid.notnull(), sels.st_fid.fill_null(sels.sid),
                                        ibis.null("string")))
    m = functools.partial(_kept, store, materialize=materialize)

    sels = m(sels)  # read by every step below
    pf = pool.facts
    pp = pf.select(p_customer="customer_id", fid="fid", kind="kind", category="category", origin="origin",
                   source="source", context="context", at="at")

    def matched(selectors: Any) -> Any:
        """Each (selector, pool fact) pair of a customer, narrowed to what the steps below read, and
        whether the fact matches the selector (NULL: it cannot be told)."""
        # a selector naming a fact by id can match only that fact: it is paired with it alone (an
        # equi-join), the others with the customer's whole pool; a pair left out had match FALSE
        ided = selectors.filter(selectors.sid2.notnull())
        free = selectors.filter(selectors.sid2.isnull())
        pairs = ided.join(pp, [ided.customer_id == pp.p_customer, ided.sid2 == pp.fid]).union(
            free.join(pp, free.customer_id == pp.p_customer))
        match = ((pairs.sid2.isnull() | (pairs.fid == pairs.sid2))
                 & (pairs.skind.isnull() | (pairs.kind == pairs.skind))
                 & (pairs.scat.isnull() | _covers(pairs.scat, pairs.category))
                 & (pairs.sorigin.isnull() | (pairs.origin == pairs.sorigin))
                 & (pairs.ssource.isnull() | (pairs.source == pairs.ssource))
                 & (pairs.sctx.isnull() | (pairs.context == pairs.snctx))
                 & (pairs.swithin.isnull() | pairs.at.isnull()
                    | ((pairs.at > pairs.ssince) & (pairs.at <= pairs.now))))
        return pairs.select("row", "customer_id", "now", "role", "pos", "snewest", "fid", "at", match=match)

    # every term of the match is known except the context's (a selector's or a fact's context that
    # cannot be normalised exactly is NULL): only pairs of selectors that give a context can be unknown,
    # so the (large) relation of every pair is streamed once, never kept
    ctx_pairs = matched(sels.filter(sels.sctx.notnull()))
    unknown_match = ctx_pairs.filter(ctx_pairs.match.isnull()).select("row").distinct()
    hits = matched(sels)
    hits = m(hits.filter(hits.match.fill_null(False)).drop("match"))
    # ``newest``: only the hits of selectors that give it are ranked
    newest = hits.filter(hits.snewest.notnull())
    newest = newest.mutate(rank=ibis.row_number().over(
        group_by=[newest.row, newest.role, newest.pos],
        order_by=[newest.at.notnull().desc(), newest.at.desc(), newest.fid.desc()]))
    newest = newest.filter(newest.rank < newest.snewest).drop("rank")
    hits = m(hits.filter(hits.snewest.isnull()).union(newest))
    both = m(hits.group_by(["row", "customer_id", "now", "fid"]).aggregate(
        used=(hits.role == "uses").any(), shown=(hits.role == "shows").any()))
    # an exact id that selected nothing and is not in the pool dangles
    hit_sels = hits.select("row", "role", "pos").distinct()
    id_sels = sels.filter(sels.sid2.notnull())
    dangling = id_sels.anti_join(hit_sels, ["row", "role", "pos"]).anti_join(
        pf, [id_sels.customer_id == pf.customer_id, id_sels.sid2 == pf.fid])
    missing = dangling.select("row", "role").distinct()
    selected = hit_sels.select("row", "role").union(missing, distinct=True)

    # shown items: their products' implied categories; an unknown product cannot be judged
    items = candidates.select("row", item=candidates.shows_items).unnest("item")
    pkeys, pbad = pool.product_keys, pool.product_bad
    known = items.left_join(pbad, items.item == pbad.product_id)
    bad_items = known.filter(known.bad.isnull() | known.bad).select("row").distinct()
    item_keys = items.join(pkeys, items.item == pkeys.product_id).select("row", "key")
    explicit = candidates.select("row", key=candidates.shows_implies).unnest("key")
    shown_keys = explicit.union(item_keys, distinct=True)

    customers = store.table("customers")
    bad_customers = pf.filter(pf.bad).select("customer_id").distinct()
    c = candidates.select("row", "customer_id")
    unknown_customer = c.anti_join(customers, c.customer_id == customers.id).select("row")
    bad_rows = c.semi_join(bad_customers, "customer_id").select("row")
    undetermined = unknown_match.union(bad_items).union(unknown_customer).union(bad_rows, distinct=True)
    keys = pool.keys.union(selected_order_keys(pool, both))
    return Usage(pool=pool, both=both, missing=missing, selected=selected, undetermined=undetermined,
                 shown_keys=shown_keys, keys=keys)


def _flagged(candidates: Any, usage: Usage, values: Any, names: tuple[str, ...]) -> Any:
    """``row`` and ``names`` of every candidate from ``values`` (row + names, at most one row each,
    missing rows: False), NULL where the candidate is undetermined."""
    und = usage.undetermined.select(u_row="row", u=ibis.literal(True))
    v = values.rename(v_row="row")
    base = candidates.select("row")
    base = base.left_join(v, base.row == v.v_row)
    base = base.left_join(und, base.row == und.u_row)
    return base.select("row", **{n: ibis.ifelse(base.u.notnull(), ibis.null("boolean"),
                                                base[n].fill_null(False)) for n in names})


def _per_row(rel: Any, **aggs: Any) -> Any:
    return rel.group_by("row").aggregate(**aggs)


# --------------------------------------------------------------------------- data hygiene


def hygiene_features(candidates: Any, usage: Usage, store: Any, settings: Settings) -> Any:
    """``row``, ``unknown_vocabulary``, ``missing_fact_reference`` and ``uses_facts``."""
    s = settings
    cats = list(_categories())
    uses = list(_uses())
    window = max([c.days for c in s.frequency_caps] + [s.survey_window_days])
    c = candidates
    pool = usage.pool
    # facts of the facts table are all in the scenario; orders only when the touch selects them
    pfo = pool.facts.select(f_customer="customer_id", f_fid="fid", from_order="from_order")
    fk = usage.keys.join(pfo, [usage.keys.customer_id == pfo.f_customer, usage.keys.fid == pfo.f_fid])
    bad_fact_keys = fk.filter(~fk.key.isin(cats))
    cust_unknown = bad_fact_keys.filter(~bad_fact_keys.from_order).select("customer_id").distinct()
    order_unknown = usage.both.semi_join(
        bad_fact_keys.filter(bad_fact_keys.from_order),
        [usage.both.customer_id == bad_fact_keys.customer_id, usage.both.fid == bad_fact_keys.fid]
    ).select("row")
    consents = store.table("consents")
    consent_unknown = consents.filter(~consents.purpose.isin(uses)).select(
        k_customer="customer_id").distinct()
    t = store.table("touches")
    cc = c.select("row", "customer_id", "now")
    tt = t.select(t_customer="customer_id", t_purpose="purpose", t_at="at")
    recent = cc.join(tt, cc.customer_id == tt.t_customer)
    recent_unknown = recent.filter((recent.t_at <= recent.now)
                                   & (recent.t_at > recent.now - ibis.interval(days=window))
                                   & ~recent.t_purpose.isin(uses)).select("row")
    sender_keys = c.select("row", key=c.sender_implies).unnest("key")
    key_unknown = sender_keys.union(usage.shown_keys).filter(lambda r: ~r.key.isin(cats)).select("row")
    touch_unknown = c.filter(~c.purpose.isin(uses)).select("row")
    by_customer = c.select("row", "customer_id").semi_join(
        cust_unknown.union(consent_unknown.select(customer_id="k_customer")), "customer_id").select("row")
    unknown = by_customer.union(order_unknown).union(recent_unknown).union(key_unknown).union(
        touch_unknown, distinct=True)
    ux = unknown.select(x_row="row", x=ibis.literal(True)).distinct()
    values = c.select("row")
    values = values.left_join(ux, values.row == ux.x_row)
    values = values.select("row", unknown_vocabulary=values.x.notnull())
    missing = usage.missing.select("row").distinct().mutate(missing_fact_reference=ibis.literal(True))
    facts = usage.both.select("row").distinct().mutate(uses_facts=ibis.literal(True))
    mr = missing.rename(m_row="row")
    out = values.left_join(mr, values.row == mr.m_row)
    out = out.select("row", "unknown_vocabulary", "missing_fact_reference")
    fr = facts.rename(f_row="row")
    out = out.left_join(fr, out.row == fr.f_row).select(
        "row", "unknown_vocabulary", "missing_fact_reference", "uses_facts")
    return _flagged(candidates, usage, out, HYGIENE)


# --------------------------------------------------------------------------- provenance and context


def _fact_flags(usage: Usage, s: Settings) -> Any:
    """Every selected fact with its flags (per candidate: ``now`` bounds the live window)."""
    pf = usage.pool.facts
    b = usage.both
    pp = pf.select(p_customer="customer_id", p_fid="fid", kind="kind", category="category", label="label",
                   origin="origin", source="source", context="context", at="at", from_order="from_order")
    j = b.join(pp, [b.customer_id == pp.p_customer, b.fid == pp.p_fid])
    inference = (j.origin == Origin.INFERRED.value) | (j.kind == FactKind.INFERENCE.value)
    partner = j.source.startswith("partner:")
    told = (j.origin == Origin.DECLARED.value) & (j.kind != FactKind.INFERENCE.value) & ~partner
    conv = _in(j.source, s.conversation_sources) | _context_in(j.context, s.conversation_contexts)
    live_since = j.now - ibis.interval(minutes=s.realtime_window_minutes)
    live = (j.origin == Origin.OBSERVED.value) & j.at.notnull() & (j.at >= live_since) & (j.at <= j.now) & (
        (j.kind == FactKind.EVENT.value) | key_in(j.category, s.live_signal_categories))
    bday = key_in(j.category, s.birthday_categories)
    bday_ok = (j.origin == Origin.DECLARED.value) & _context_exactly(j.context,
                                                                     s.birthday_expectation_contexts)
    window = ibis.interval(minutes=s.conversation_window_minutes)
    said_here_if_advisor = ~inference & ~partner & conv & j.at.notnull() & (j.at >= j.now - window) \
        & (j.at <= j.now)
    return j.select("row", "customer_id", "now", "fid", "used", "shown", "kind", "category", "label",
                    inference=inference, partner=partner, told=told, conv=conv,
                    pay=_context_in(j.context, s.payment_contexts), live=live.fill_null(False), bday=bday,
                    bday_ok=bday_ok, pref=j.kind == FactKind.PREFERENCE.value,
                    said_here_if_advisor=said_here_if_advisor.fill_null(False))


def provenance_features(candidates: Any, usage: Usage, settings: Settings) -> Any:
    """``row`` and the provenance and context family."""
    s = settings
    f = _fact_flags(usage, s)
    agg = _per_row(
        f,
        uses_conversation_fact=f.conv.any(), uses_realtime_signal=f.live.any(),
        uses_payment_fact=f.pay.any(), uses_partner_fact=f.partner.any(), uses_birthday=f.bday.any(),
        birthday_expected=f.bday.any() & ~(f.bday & ~f.bday_ok).any(),
        shows_preference=(f.shown & f.pref).any(), uses_preference=(f.used & f.pref).any())
    c = candidates
    small = [d.value for d in Depth if d.rank <= Depth.ITEM.rank]
    sel = usage.selected.select(s_row="row").distinct()
    g = c.left_join(sel, c.row == sel.s_row)
    generic = g.select("row", generic_in_session=_in(g.channel, (ch.value for ch in s.in_session_channels))
                       & g.s_row.isnull() & ~g.named.fill_null(False)
                       & g.depth.fill_null(Depth.NONE.value).isin(small))
    ar = agg.rename(a_row="row")
    values = generic.left_join(ar, generic.row == ar.a_row)
    values = values.select("row", *PROVENANCE)
    return _flagged(candidates, usage, values, PROVENANCE)


# --------------------------------------------------------------------------- sensitivity and inference


def _declared(q: Any, usage: Usage, s: Settings, profiling: Any) -> Any:
    """``q`` (row, customer_id, key, lab: a normalised label or NULL, plus its own columns) with
    ``declared``: :func:`tactful.features.derive`'s is_declared(key, label) for that customer."""
    cols = list(q.columns)
    told = usage.pool.told
    # a declaration covers the key itself when it has no sub-keys, or a key with the same label
    # under or above it
    t = told.select(t_customer="customer_id", d_cat="d_cat", d_label="d_label")
    j = q.left_join(t, q.customer_id == t.t_customer)
    hit = ((j.d_cat == j.key) & ~j.d_cat.isin(list(_parents()))) | (
        j.lab.notnull() & (j.lab != "") & (j.d_label == j.lab)
        & (_covers(j.d_cat, j.key) | _covers(j.key, j.d_cat)))
    q = j.group_by(cols).aggregate(by_told=hit.fill_null(False).any())
    # declared_covers: a declared key widens to further keys
    pairs = [(k, x) for k, extra in sorted(s.declared_covers.items()) for x in extra]
    if pairs:
        p = ibis.memtable([{"p_k": k, "p_x": x} for k, x in pairs])
        dx = told.cross_join(p).filter(lambda r: _covers(r.p_k, r.d_cat)).select(
            x_customer="customer_id", x="p_x").distinct()
        cols2 = list(q.columns)
        # an equi-join, the covering tested on each pair (an outer join on a predicate of both sides
        # is a nested loop over every pair)
        j2 = q.left_join(dx, q.customer_id == dx.x_customer)
        q = j2.group_by(cols2).aggregate(by_extra=_covers(j2.x, j2.key).fill_null(False).any())
    else:
        q = q.mutate(by_extra=ibis.literal(False))
    pr = profiling.select(p_row="row", profiling="profiling_opt_in")
    q = q.join(pr, q.row == pr.p_row)
    return q.select(*cols, declared=q.profiling | q.by_told | q.by_extra)


def _sender_reveals(q: Any, candidates: Any) -> Any:
    cols = list(q.columns)
    sk = candidates.select(s_row="row", skey=candidates.sender_implies).unnest("skey")
    j = q.left_join(sk, q.row == sk.s_row)
    return j.group_by(cols).aggregate(revealed=_covers(j.skey, j.key).fill_null(False).any())


def sensitivity_features(candidates: Any, usage: Usage, settings: Settings, consent: Any) -> Any:
    """``row`` and the sensitivity and inference family. ``consent`` is the consent family's frame
    (its ``touch_personalizes`` and ``profiling_opt_in``)."""
    s = settings
    c = candidates
    f = _fact_flags(usage, s)
    keys = usage.keys.select(k_customer="customer_id", k_fid="fid", key="key", implied="implied")
    fk = f.join(keys, [f.customer_id == keys.k_customer, f.fid == keys.k_fid])
    sensitive = key_in(fk.key, s.sensitive_categories)
    inf_sensitive = sensitive | key_in(fk.key, s.inferred_sensitive_categories)
    fk = fk.mutate(sens=ibis.ifelse(fk.inference, inf_sensitive, sensitive), plain_sens=sensitive,
                   never=key_in(fk.key, s.never_use_categories))
    per_fact = fk.group_by(["row", "fid"]).aggregate(has_sens=fk.sens.any(), forbidden=fk.never.any())
    pers = consent.select(c_row="row", personalizes="touch_personalizes", profiling_opt_in="profiling_opt_in")
    ff = f.join(per_fact, ["row", "fid"])
    ff = ff.join(pers, ff.row == pers.c_row)
    ct = c.select(t_row="row", channel="channel", trigger="trigger")
    ff = ff.join(ct, ff.row == ct.t_row)
    advisor = (ff.channel == Channel.ADVISOR.value) & (
        ff.trigger.fill_null(Trigger.SCHEDULED.value) == Trigger.CUSTOMER_REQUEST.value)
    said_here = advisor & ff.said_here_if_advisor
    forbidden = ff.forbidden & (ff.shown | (ff.used & ff.personalizes))
    by_fact = _per_row(ff, uses_sensitive=ff.has_sens.any(),
                       shows_fact_sensitive=(ff.shown & ff.has_sens & ~said_here).any(),
                       uses_forbidden_identifier=forbidden.any())

    shown = usage.shown_keys
    shown = shown.mutate(sens=key_in(shown.key, s.sensitive_categories))
    shown_any = _per_row(shown, shows_key_sensitive=shown.sens.any())
    sk = c.select("row", key=c.sender_implies).unnest("key")
    sender = _per_row(sk, sender_sensitive=key_in(sk.key, s.sensitive_categories).any())

    # the keys that need a declaration: guessed (inferred) ones, a fact's own sensitive category
    # (unlicensed), and what the shown items reveal
    fkp = fk.join(pers, fk.row == pers.c_row)
    guessed_inf = fkp.filter(fkp.inference & fkp.sens).select(
        "row", "customer_id", "key", part=ibis.literal("inferred"),
        lab=ibis.ifelse(fkp.key == fkp.category, normalise_label(fkp.label), ibis.null("string")))
    guessed_implied = fkp.filter(~fkp.inference & fkp.personalizes & ~fkp.told & fkp.implied
                                 & fkp.plain_sens).select(
        "row", "customer_id", "key", part=ibis.literal("inferred"), lab=ibis.null("string"))
    own = ff.filter(~ff.inference & ~ff.told & ff.personalizes & key_in(ff.category, s.sensitive_categories))
    unlicensed = own.select("row", "customer_id", key="category", part=ibis.literal("unlicensed"),
                            lab=normalise_label(own.label))
    cust = c.select(r_row="row", r_customer="customer_id")
    sens_shown = shown.filter(shown.sens)
    reveal = sens_shown.join(cust, sens_shown.row == cust.r_row).select(
        "row", customer_id="r_customer", key="key", part=ibis.literal("reveal"), lab=ibis.null("string"))
    q = guessed_inf.union(guessed_implied).union(unlicensed).union(reveal, distinct=True)
    q = _sender_reveals(_declared(q, usage, s, consent), c)
    q = q.mutate(hit=~q.declared & ((q.part == "reveal") | ~q.revealed))
    by_key = _per_row(q, uses_inferred_sensitive=(q.hit & (q.part == "inferred")).any(),
                      uses_unlicensed_sensitive=(q.hit & (q.part == "unlicensed")).any(),
                      shows_undeclared_sensitive=(q.hit & (q.part == "reveal")).any())

    out = c.select("row")
    for part, names in ((by_fact, ("uses_sensitive", "shows_fact_sensitive", "uses_forbidden_identifier")),
                        (shown_any, ("shows_key_sensitive",)), (sender, ("sender_sensitive",)),
                        (by_key, ("uses_inferred_sensitive", "uses_unlicensed_sensitive",
                                  "shows_undeclared_sensitive"))):
        r = part.rename(p_row="row")
        out = out.left_join(r, out.row == r.p_row).select(*out.columns, *names)
    out = out.mutate(shows_sensitive=out.shows_fact_sensitive.fill_null(False)
                     | out.shows_key_sensitive.fill_null(False))
    return _flagged(candidates, usage, out.select("row", *SENSITIVITY), SENSITIVITY)
