"""Real time: build the scenario of one customer and one touch from the store, and decide it.

A *touch file* (docs/realtime.md) describes the proposed touch the way a campaign or a page knows it:
the scenario's ``touch`` section, except that

* ``to`` may be a contact-point id or a selector ``{kind: email}`` (the customer's best contact point
  of that kind),
* ``uses`` and ``shows`` hold fact *selectors* — a fact or order id, or a mapping such as
  ``{kind: purchase, within_days: 60}`` — resolved against this customer's facts and orders,
* ``shows_items`` names the products the touch shows; their implied categories (the products'
  stored labels plus the sensitivity mapping, :mod:`tactful.sensitivity`) become ``shows_implies``.

:class:`StoreScenarioBuilder` reads the store with at most three indexed queries per customer (the
profile — customer, contact points, consents, facts, recent touches — in one UNION ALL round trip; the
orders the touch can reach with their products; the shown products) and returns the
:class:`~tactful.model.Scenario` that is judged — validated like any scenario file, so that
``tactful scenario export`` writes exactly the document ``tactful decide FILE`` replays.

Fail closed: a selector never silently drops a matching fact (reads are bounded by the selectors' and
the policy's windows, and a customer over the hard ceilings is an error, not a truncated history);
an exact fact id that is not found stays in the touch, so the evaluator blocks on it
(``missing-fact-reference``); a contact point that cannot be found leaves ``to`` empty (the channel's
``missing-contact-point`` block); a shown product that is not in the store, an unknown customer or a
store row that is not valid is an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import sqlalchemy as sa
from pydantic import Field, TypeAdapter, ValidationError, field_validator
from sqlalchemy.engine import Connection

from tactful import vocab
from tactful.errors import NotFoundError, ScenarioError, StoreError
from tactful.model import (
    Frozen,
    Id,
    Key,
    Scenario,
    TouchFields,
    UTCDateTime,
    validation_errors,
)
from tactful.policy import Pack
from tactful.safeload import TOUCH_LIMITS, DocumentError, load_document
from tactful.sensitivity import SensitivityMapping, load_mapping
from tactful.store import tables as t
from tactful.vocab import (
    Channel,
    ContactKind,
    FactKind,
    Origin,
    TouchKind,
)

PURCHASE_CATEGORY = "user.behavior.purchase_history"
#: the ``since`` of the orders query when the touch reaches orders only by id: no order is after it (the
#: 1970 epoch used before read every order of the customer, then dropped the ones not named)
_NO_WINDOW = datetime(9999, 12, 31, tzinfo=UTC)
#: Hard ceilings per customer and decision. Above them the decision is refused (an error, fail closed)
#: rather than made on a truncated history. Selectors with ``within_days`` keep real reads far below.
MAX_FACTS = 10_000
MAX_ORDER_LINES = 20_000
MAX_RECENT_TOUCHES = 10_000
MAX_SHOWN_ITEMS = 1_000
#: How many product names an order's label lists.
LABEL_ITEMS = 5


# --------------------------------------------------------------------------- the touch file


class FactSelector(Frozen):
    """Which of the customer's facts and orders a touch uses or shows. Every field given must match;
    a selector with no field matches every fact and every order (within the ceilings)."""

    id: Id | None = None
    kind: FactKind | None = None
    category: Key | None = None  # covers its sub-keys
    origin: Origin | None = None
    source: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    context: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    within_days: Annotated[int, Field(ge=0, le=36_600)] | None = None
    newest: Annotated[int, Field(ge=1, le=MAX_FACTS)] | None = None  # only the newest N that match

    def can_match_orders(self) -> bool:
        """Could an order (a purchase fact: observed, purchase history) match this selector?"""
        return (self.kind in (None, FactKind.PURCHASE) and self.origin in (None, Origin.OBSERVED)
                and (self.category is None or vocab.covers(self.category, PURCHASE_CATEGORY)))


class ContactSelector(Frozen):
    """The customer's contact point of this kind: not bounced first, then the most recently verified,
    then the smallest id (documented in docs/realtime.md)."""

    kind: ContactKind


def _selectors(value: Any) -> Any:
    """A bare id (``persona-shoes-f1``) is shorthand for ``{id: ...}``; ints are ids too."""
    if isinstance(value, list | tuple):
        return [{"id": str(v)} if isinstance(v, str | int) and not isinstance(v, bool) else v for v in value]
    return value


class TouchSpec(TouchFields[Id | ContactSelector, FactSelector]):
    """The ``touch`` section of a touch file: the scenario's touch (the same fields), with selectors in
    ``to``, ``uses`` and ``shows``, and the products it shows (docs/realtime.md)."""

    shows_items: tuple[Id, ...] = ()

    @field_validator("uses", "shows", mode="before")
    @classmethod
    def _fact_selectors(cls, value: Any) -> Any:
        return _selectors(value)

    @field_validator("shows_items", mode="before")
    @classmethod
    def _item_ids(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return value


class TouchFile(Frozen):
    """A touch file: an optional evaluation time and the touch."""

    version: Annotated[int, Field(ge=1, le=1)] = 1
    now: UTCDateTime | None = None
    touch: TouchSpec


def parse_touch(data: Any, *, source: str = "<touch>") -> TouchFile:
    """Validate a touch document (already loaded); errors name the file and the field path."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: a touch file is a mapping with a `touch` section "
                            "(see docs/realtime.md)", source=source)
    try:
        return TouchFile.model_validate(data)
    except ValidationError as exc:
        errors = validation_errors(exc)
        errors = [(p, "unknown field (not in the touch file format; see docs/realtime.md)"
                   if m.startswith("unknown field") else m) for p, m in errors]
        lines = "\n".join(f"  {path}: {msg}" for path, msg in errors)
        raise ScenarioError(f"{source}: invalid touch file\n{lines}", errors=errors, source=source) from None


def load_touch_file(path: Path) -> TouchFile:
    """Read and validate a touch file (YAML or JSON) through the bounded loader (tactful.safeload:
    size, depth, aliases, tags, duplicate keys, UTF-8). Exit 2 errors name the file, line or field."""
    try:
        data = load_document(path, TOUCH_LIMITS, source=str(path))
    except DocumentError as exc:
        raise ScenarioError(str(exc), source=str(path)) from None
    return parse_touch(data, source=str(path))


# --------------------------------------------------------------------------- reading the store


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; the store writes UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _db_time(value: datetime) -> datetime:
    """A bound parameter for a time column: UTC (naive for SQLite, which stores UTC text)."""
    return value.astimezone(UTC)


def _json_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):  # a driver that hands back JSON text
        try:
            value = json.loads(value)
        except ValueError:
            raise StoreError(f"{where}: implies is not a JSON list: {value!r}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise StoreError(f"{where}: implies is not a list of data categories: {value!r}",
                         hint="correct the row (re-import it) and retry")
    return value


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A fact or an order, as a scenario fact (a dict) plus what selectors look at."""

    doc: dict[str, Any]
    from_order: bool

    @property
    def id(self) -> str:
        return str(self.doc["id"])

    @property
    def at(self) -> datetime | None:
        at: datetime | None = self.doc.get("at")
        return at


def _matches(sel: FactSelector, c: _Candidate, now: datetime) -> bool:
    d = c.doc
    if sel.id is not None and d["id"] != sel.id:
        return False
    if sel.kind is not None and d["kind"] != sel.kind.value:
        return False
    if sel.category is not None and not vocab.covers(sel.category, d["category"]):
        return False
    if sel.origin is not None and d["origin"] != sel.origin.value:
        return False
    if sel.source is not None and d["source"] != sel.source:
        return False
    if sel.context is not None and (vocab.normalise_context(d["context"])
                                    != vocab.normalise_context(sel.context)):
        return False
    # a fact without a time may be recent: it is selected (using more never loosens a decision)
    return sel.within_days is None or c.at is None or now - timedelta(days=sel.within_days) < c.at <= now


def _select(selectors: Sequence[FactSelector], pool: Sequence[_Candidate], now: datetime,
            by_order: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """(selected candidate ids, exact ids that matched nothing) in selector order, deduplicated.
    An exact id naming an order that a purchase fact stands for selects that fact."""
    out: dict[str, None] = {}
    missing: list[str] = []
    for sel in selectors:
        if sel.id is not None and sel.id in by_order:
            sel = sel.model_copy(update={"id": by_order[sel.id]})
        hits = [c for c in pool if _matches(sel, c, now)]
        if sel.newest is not None:
            hits.sort(key=lambda c: (c.at is not None, c.at or datetime.min.replace(tzinfo=UTC), c.id),
                      reverse=True)
            hits = hits[:sel.newest]
        if not hits and sel.id is not None and not any(c.id == sel.id for c in pool):
            missing.append(sel.id)  # not found at all (one that other fields filtered out is not missing)
        out.update(dict.fromkeys(c.id for c in hits))
    return list(out), missing


class OrderRead(NamedTuple):
    """One order read by :meth:`StoreScenarioBuilder.orders_by_id`."""

    customer_id: str
    rows: int  # its rows in the orders query (one per line; one for an order without lines)
    position: int  # its place in the store's ordering (at, id) among the orders read with it
    entry: dict[str, Any]  # as StoreScenarioBuilder.order_entries makes it


class StoreScenarioBuilder:
    """Builds scenarios from the store for one policy pack (its windows bound what is read).

    One builder serves many customers; it keeps the prepared statements and a per-product cache of
    the sensitivity mapping's labels. Not thread-safe (the cache); use one per thread.
    """

    def __init__(self, pack: Pack, mapping: SensitivityMapping | None = None) -> None:
        self.pack = pack
        self.mapping = mapping if mapping is not None else load_mapping()
        s = pack.settings
        self.touch_window_days = max([c.days for c in s.frequency_caps] + [s.survey_window_days])
        self._labels: dict[tuple[str | None, ...], tuple[str, ...]] = {}
        self._statements()

    def _statements(self) -> None:
        cid: sa.BindParameter[str] = sa.bindparam("cid", type_=t.customers.c.id.type)
        self._q_profile = self._profile_statement(cid)
        p = t.products.c
        self._product_cols = (p.id.label("product_id"), p.name, p.department, p.category, p.subcategory,
                              p.implies)
        self._q_products = sa.select(*self._product_cols).where(
            p.id.in_(sa.bindparam("ids", expanding=True, type_=p.id.type)))
        self._orders_statements()

    def _profile_statement(self, cid: sa.BindParameter[str]) -> sa.Select[Any]:
        """The customer, contact points, consents, facts and recent touches in ONE round trip: a UNION
        ALL of five indexed selects on a common set of typed columns (``tag`` says which part a row
        belongs to), each part bounded by its own LIMIT (one more than the ceiling, to detect it)."""
        str_ = sa.String()

        def none(type_: Any = str_) -> Any:
            return sa.cast(sa.null(), type_)

        time_type = t.facts.c.at.type
        cu, cp, cs, f, tc = (t.customers.c, t.contact_points.c, t.consents.c, t.facts.c, t.touches.c)

        def part(tag: str, id_: Any, a: Any, b: Any, c: Any, d: Any, e: Any, f_: Any, g: Any, at: Any,
                 flag: Any, implies: Any, where: Any, limit: int | None) -> Any:
            sel = sa.select(sa.literal(tag, str_).label("tag"), sa.cast(id_, str_).label("id"),
                            a.label("a"), b.label("b"), c.label("c"), d.label("d"), e.label("e"),
                            f_.label("f"), g.label("g"), at.label("at"), flag.label("flag"),
                            implies.label("implies")).where(*where)
            if limit is not None:
                sel = sel.limit(limit)
            return sa.select(*sel.subquery(f"p_{tag}").c)

        parts = [
            part("customer", cu.id, sa.cast(cu.openness, str_), none(), none(), none(), none(), none(),
                 none(), none(time_type), cu.deceased, none(t.facts.c.implies.type), [cu.id == cid], None),
            part("contact", cp.id, sa.cast(cp.kind, str_), sa.cast(cp.shared_with, str_), none(), none(),
                 none(), none(), none(), cp.verified_at, cp.bounced, none(t.facts.c.implies.type),
                 [cp.customer_id == cid], MAX_FACTS + 1),
            part("consent", cs.id, sa.cast(cs.purpose, str_), sa.cast(cs.channel, str_),
                 sa.cast(cs.status, str_), sa.cast(cs.source, str_), none(), none(), none(), cs.at,
                 none(sa.Boolean()), none(t.facts.c.implies.type), [cs.customer_id == cid], MAX_FACTS + 1),
            part("fact", f.id, sa.cast(f.kind, str_), sa.cast(f.category, str_), sa.cast(f.label, str_),
                 sa.cast(f.value, str_), sa.cast(f.origin, str_), sa.cast(f.source, str_),
                 sa.cast(f.context, str_), f.at, none(sa.Boolean()), f.implies, [f.customer_id == cid],
                 MAX_FACTS + 1),
            part("touch", tc.id, sa.cast(tc.channel, str_), sa.cast(tc.purpose, str_), sa.cast(tc.kind, str_),
                 none(), none(), none(), none(), tc.at, none(sa.Boolean()), none(t.facts.c.implies.type),
                 [tc.customer_id == cid, tc.at > sa.bindparam("since", type_=time_type),
                  tc.at <= sa.bindparam("now", type_=time_type)], MAX_RECENT_TOUCHES + 1),
        ]
        union = sa.union_all(*parts).subquery("profile")
        return sa.select(*union.c).order_by(union.c.tag, union.c.at.nulls_first(), union.c.id)

    # ---- products

    def product_implies(self, row: Any) -> tuple[str, ...]:
        """A product's implied categories: its stored label united with the sensitivity mapping's
        (both can only add: a product is never less sensitive than either says)."""
        stored = _json_list(row.implies, f"products row {row.product_id!r}")
        key = (row.department, row.category, row.subcategory, row.name)
        mapped = self._labels.get(key)
        if mapped is None:
            if len(self._labels) > 200_000:
                self._labels.clear()
            mapped = self.mapping.implies(*key)
            self._labels[key] = mapped
        if not stored:
            return mapped
        return tuple(sorted({*stored, *mapped}))

    def orders_query(self, customer_id: str, since: datetime | None, all_orders: bool,
                     ids: Iterable[str]) -> tuple[sa.Select[Any], dict[str, Any]] | None:
        """The one query (prepared once) that reads the orders a touch can reach — all of them, or
        those after ``since`` — plus those named in ``ids``, with their lines and products; and its
        parameters. None when nothing can be reached."""
        wanted = sorted(set(ids))
        if not all_orders and since is None and not wanted:
            return None
        params = {"cid": customer_id, "ids": wanted,
                  "since": _db_time(since) if since is not None else _NO_WINDOW}
        return (self._q_orders_all if all_orders else self._q_orders), params

    def _orders_statements(self) -> None:
        o, ln = t.orders.c, t.order_lines.c
        base = (sa.select(o.id.label("order_id"), o.at, o.source, o.context, ln.line_no, *self._product_cols)
                .select_from(t.orders.outerjoin(t.order_lines, ln.order_id == o.id)
                             .outerjoin(t.products, t.products.c.id == ln.product_id))
                .order_by(o.at, o.id, ln.line_no).limit(MAX_ORDER_LINES + 1))
        cid = sa.bindparam("cid", type_=o.customer_id.type)
        ids = sa.bindparam("ids", expanding=True, type_=o.id.type)
        self._q_orders_by_id = (
            sa.select(o.customer_id, o.id.label("order_id"), o.at, o.source, o.context, ln.line_no,
                      *self._product_cols)
            .select_from(t.orders.outerjoin(t.order_lines, ln.order_id == o.id)
                         .outerjoin(t.products, t.products.c.id == ln.product_id))
            .where(o.id.in_(ids)).order_by(o.at, o.id, ln.line_no))
        self._q_orders_all = base.where(o.customer_id == cid)
        self._q_orders = base.where(o.customer_id == cid,
                                    sa.or_(o.at > sa.bindparam("since", type_=o.at.type), o.id.in_(ids)))

    def _orders(self, conn: Connection, customer_id: str, since: datetime | None, all_orders: bool,
                ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Orders of the customer (those after ``since``, every one with ``all_orders``, and those named
        in ``ids``) with their lines' products: order id -> {order row, names, implies}."""
        prepared = self.orders_query(customer_id, since, all_orders, ids)
        if prepared is None:
            return {}
        query, params = prepared
        rows = conn.execute(query, params).all()
        if len(rows) > MAX_ORDER_LINES:
            raise too_many_lines(customer_id)
        return self.order_entries(rows)

    def orders_by_id(self, conn: Connection, order_ids: Iterable[str], *,
                     chunk: int = 2_000) -> dict[str, OrderRead]:
        """Many customers' orders named by id in a few queries (``chunk`` ids each), with their lines
        and products; an id that names no order is left out."""
        wanted = sorted(set(order_ids))
        out: dict[str, OrderRead] = {}
        position = 0
        for start in range(0, len(wanted), chunk):
            rows: dict[str, list[Any]] = {}
            for r in conn.execute(self._q_orders_by_id, {"ids": wanted[start:start + chunk]}):
                rows.setdefault(r.order_id, []).append(r)
            for oid, group in rows.items():
                position += 1
                out[oid] = OrderRead(group[0].customer_id, len(group), position,
                                     self.order_entries(group)[oid])
        return out

    def order_entries(self, rows: Iterable[Any]) -> dict[str, dict[str, Any]]:
        """Order rows with their lines (as the orders query returns them, in its order) -> order id ->
        {at, source, context, names, implies}."""
        out: dict[str, dict[str, Any]] = {}
        for r in rows:
            entry = out.get(r.order_id)
            if entry is None:
                entry = out[r.order_id] = {"at": _utc(r.at), "source": r.source, "context": r.context,
                                           "names": [], "implies": set()}
            if r.line_no is None:
                continue
            if r.product_id is None:  # pragma: no cover - the foreign key prevents it
                raise StoreError(f"order {r.order_id!r} line {r.line_no} names a product that is not in "
                                 "the store")
            entry["implies"].update(self.product_implies(r))
            entry["names"].append(r.name or str(r.product_id))
        return out

    def _product_rows(self, conn: Connection, ids: Sequence[str]) -> dict[str, Any]:
        """The products rows of ``ids`` that exist, by id."""
        return {r.product_id: r for r in conn.execute(self._q_products, {"ids": list(ids)})}

    def shown_items(self, conn: Connection, items: Sequence[str]) -> tuple[str, ...]:
        """The implied categories of the shown products; an unknown product is an error (exit 2)."""
        if not items:
            return ()
        if len(items) > MAX_SHOWN_ITEMS:
            raise ScenarioError(f"touch.shows_items: {len(items)} products; at most {MAX_SHOWN_ITEMS}")
        wanted = list(dict.fromkeys(items))
        rows = self._product_rows(conn, wanted)
        unknown = [i for i in wanted if i not in rows]
        if unknown:
            raise NotFoundError(f"touch.shows_items: no product {', '.join(repr(u) for u in unknown)} "
                                "in the store", hint="name products by the id the store holds")
        found: set[str] = set()
        for i in wanted:
            found.update(self.product_implies(rows[i]))
        return tuple(sorted(found))

    # ---- the scenario

    def document(self, conn: Connection, customer_id: str, spec: TouchFile | None,
                 now: datetime | None = None) -> dict[str, Any]:
        """The scenario document (a dict of Python values) for ``customer_id`` and the touch.

        ``now`` wins over the touch file's ``now``, which wins over the current time. Without a touch
        file the touch is a placeholder (a generic web service message that uses nothing)."""
        when = now or (spec.now if spec is not None else None) or datetime.now(UTC)
        when = when.astimezone(UTC)
        touch = spec.touch if spec is not None else TouchSpec(
            kind=TouchKind.SERVICE, purpose="essential.service", channel=Channel.WEB)
        try:
            return self._document(conn, customer_id, touch, when)
        except sa.exc.SQLAlchemyError as exc:
            detail = " ".join(str(getattr(exc, "orig", None) or exc).split())
            raise StoreError(f"cannot read customer {customer_id!r} from the store: {detail}",
                             hint="check the store URL and that `tactful init` was run on it") from exc

    def _profile(self, conn: Connection, customer_id: str, since: datetime, now: datetime) -> Sequence[Any]:
        """The profile query's rows (customer, contact points, consents, facts, touches after ``since``)."""
        return conn.execute(self._q_profile, {"cid": customer_id, "since": _db_time(since),
                                              "now": _db_time(now)}).all()

    def _document(self, conn: Connection, customer_id: str, touch: TouchSpec,
                  now: datetime) -> dict[str, Any]:
        since_touch = now - timedelta(days=self.touch_window_days)
        parts: dict[str, list[Any]] = {"customer": [], "contact": [], "consent": [], "fact": [], "touch": []}
        for row in self._profile(conn, customer_id, since_touch, now):
            parts[row.tag].append(row)
        if not parts["customer"]:
            raise NotFoundError(f"no customer {customer_id!r} in the store",
                                hint="check the id; `tactful customer list` prints the ids the store holds")
        cust = parts["customer"][0]
        doc: dict[str, Any] = {"version": 1, "now": now}
        customer: dict[str, Any] = {"id": cust.id, "deceased": bool(cust.flag)}
        if cust.a is not None:
            customer["openness"] = cust.a
        doc["customer"] = customer

        for what, rows, ceiling in (("contact points", parts["contact"], MAX_FACTS),
                                    ("consents", parts["consent"], MAX_FACTS),
                                    ("facts", parts["fact"], MAX_FACTS)):
            if len(rows) > ceiling:
                raise StoreError(f"customer {customer_id!r} has more than {ceiling} {what}; a real-time "
                                 "decision refuses to judge a truncated profile",
                                 hint="archive old records, or decide this customer in batch")
        if len(parts["touch"]) > MAX_RECENT_TOUCHES:
            raise StoreError(f"customer {customer_id!r} has more than {MAX_RECENT_TOUCHES} touches in the "
                             f"policy's {self.touch_window_days}-day window; refusing to judge a truncated "
                             "history")
        contacts = sorted(parts["contact"], key=lambda r: r.id)
        doc["contact_points"] = [
            {"id": r.id, "kind": r.a, "shared_with": r.b, "verified_at": _utc(r.at), "bounced": bool(r.flag)}
            for r in contacts]
        doc["consents"] = [
            {"purpose": r.a, "channel": r.b, "status": r.c, "source": r.d, "at": _utc(r.at)}
            for r in parts["consent"]]

        # facts of the facts table: all of them (few per customer; the declared ones widen what the
        # customer told us, every one is checked against the vocabulary)
        pool: list[_Candidate] = []
        stands_for: dict[str, str] = {}  # order id -> the purchase fact that stands for it
        for r in parts["fact"]:
            implies = _json_list(r.implies, f"facts row {r.id!r}")
            pool.append(_Candidate({
                "id": r.id, "kind": r.a, "category": r.b, "implies": implies, "label": r.c,
                "origin": r.e, "source": r.f, "context": r.g, "at": _utc(r.at)}, False))
            if r.a == FactKind.PURCHASE.value and r.d:
                stands_for.setdefault(str(r.d), r.id)

        # orders: only those a selector can reach (its window), those a purchase fact stands for, and
        # those named by id
        selectors = (*touch.uses, *touch.shows)
        order_sels = [s for s in selectors if s.id is None and s.can_match_orders()]
        fact_ids = {c.id for c in pool}
        named = [s.id for s in selectors if s.id is not None and s.id not in fact_ids]
        all_orders = any(s.within_days is None for s in order_sels)
        since = (now - timedelta(days=max(s.within_days or 0 for s in order_sels))) if order_sels else None
        orders = self._orders(conn, customer_id, since, all_orders, [*stands_for, *named])
        facts_by_id = {c.id: c for c in pool}
        for oid, entry in orders.items():
            standing = stands_for.get(oid)
            if standing is not None:
                # the fact stands for the order: it reveals at least what the order's products imply
                fact = facts_by_id[standing].doc
                fact["implies"] = sorted({*fact["implies"], *entry["implies"]})
                continue
            if oid in facts_by_id:
                raise StoreError(f"customer {customer_id!r}: order {oid!r} has the id of a fact; "
                                 "a touch could not say which one it uses",
                                 hint="give the fact another id (re-import it)")
            names = entry["names"]
            shown = ", ".join(names[:LABEL_ITEMS]) + (f" and {len(names) - LABEL_ITEMS} more"
                                                       if len(names) > LABEL_ITEMS else "")
            pool.append(_Candidate({
                "id": oid, "kind": FactKind.PURCHASE.value, "category": PURCHASE_CATEGORY,
                "implies": sorted(entry["implies"]),
                "label": f"Order {oid}" + (f": {shown}" if shown else ""),
                "origin": Origin.OBSERVED.value, "source": entry["source"], "context": entry["context"],
                "at": entry["at"]}, True))
        by_order = {oid: fid for oid, fid in stands_for.items() if fid in facts_by_id}
        uses, missing_uses = _select(touch.uses, pool, now, by_order)
        shows, missing_shows = _select(touch.shows, pool, now, by_order)
        chosen = set(uses) | set(shows)
        # the scenario holds every fact of the facts table, and the orders the touch uses or shows
        doc["facts"] = [c.doc for c in pool if not c.from_order or c.id in chosen]

        doc["recent_touches"] = [{"channel": r.a, "purpose": r.b, "at": _utc(r.at), "kind": r.c}
                                 for r in parts["touch"]]

        out: dict[str, Any] = {"kind": touch.kind, "purpose": touch.purpose, "channel": touch.channel}
        to = self._recipient(touch, doc["contact_points"])
        if to is not None:
            out["to"] = to
        out["sender"] = touch.sender
        out["sender_implies"] = list(touch.sender_implies)
        # exact ids that matched nothing stay: the evaluator blocks on a dangling reference
        out["uses"] = [*uses, *missing_uses]
        out["shows"] = [*shows, *missing_shows]
        implied = self.shown_items(conn, touch.shows_items)
        out["shows_implies"] = list(dict.fromkeys((*touch.shows_implies, *implied)))
        out["depth"] = touch.depth
        out["named"] = touch.named
        out["trigger"] = touch.trigger
        if touch.granularity is not None:
            out["granularity"] = touch.granularity
        if touch.group_size is not None:
            out["group_size"] = touch.group_size
        if touch.conversation is not None:
            out["conversation"] = touch.conversation
        if touch.requested_channel is not None:
            out["requested_channel"] = touch.requested_channel
        doc["touch"] = out
        return doc

    @staticmethod
    def _recipient(touch: TouchSpec, contacts: Sequence[Mapping[str, Any]]) -> str | None:
        if touch.to is None:
            return None
        if isinstance(touch.to, str):
            return touch.to  # checked by the evaluator: unknown id -> missing-contact-point
        kind = touch.to.kind.value
        fits = [c for c in contacts if c["kind"] == kind]
        if not fits:
            return None

        def rank(c: Mapping[str, Any]) -> tuple[bool, bool, float, str]:
            verified: datetime | None = c["verified_at"]
            return (bool(c["bounced"]), verified is None, -verified.timestamp() if verified else 0.0,
                    str(c["id"]))

        return str(min(fits, key=rank)["id"])

    def scenario(self, conn: Connection, customer_id: str, spec: TouchFile | None,
                 now: datetime | None = None) -> Scenario:
        """The validated scenario (the same validation as a scenario file)."""
        return to_scenario(self.document(conn, customer_id, spec, now), customer_id)


def too_many_lines(customer_id: str) -> StoreError:
    return StoreError(
        f"customer {customer_id!r}: the touch selects more than {MAX_ORDER_LINES} order lines; "
        "a real-time decision refuses to judge a truncated history",
        hint="narrow the touch's purchase selectors with within_days or newest")


def to_scenario(doc: Mapping[str, Any], customer_id: str) -> Scenario:
    """Validate a document built from the store; a row that does not fit the contract is a store error
    that names the element (fail closed: nothing half-understood reaches a decision)."""
    try:
        return Scenario.model_validate(doc)
    except ValidationError as exc:
        problems = []
        for path, msg in validation_errors(exc):
            problems.append(f"  {_name_element(doc, path)}: {msg}")
        raise StoreError(f"customer {customer_id!r}: the store's data does not form a valid scenario\n"
                         + "\n".join(problems),
                         hint="correct the rows named above (re-import them) and retry") from None


def _name_element(doc: Mapping[str, Any], path: str) -> str:
    """``facts[3].kind`` -> ``facts[3] (id persona-x-f1).kind`` so the store row can be found."""
    head, _, rest = path.partition("[")
    if rest and head in ("facts", "contact_points"):
        index = rest.split("]", 1)[0]
        try:
            element = doc[head][int(index)]
        except (KeyError, IndexError, ValueError, TypeError):
            return path
        tail = path[len(head) + len(index) + 2:]
        return f"{head}[{index}] (id {element.get('id')!r}){tail}"
    return path


def scenario_document(scenario: Scenario) -> dict[str, Any]:
    """The scenario as the contract's JSON-able document (what ``scenario export`` writes)."""
    return scenario.model_dump(mode="json", exclude_none=True)


def parse_now(text: str | None) -> datetime | None:
    """``--now``: an ISO 8601 date or date-time (UTC when no offset is given)."""
    if text is None:
        return None
    try:
        return _NOW.validate_python(text)
    except ValidationError as exc:
        msg = "; ".join(m for _p, m in validation_errors(exc))
        raise ScenarioError(f"--now: {msg}") from None


_NOW: TypeAdapter[datetime] = TypeAdapter(UTCDateTime)


def scenario_from_store(url: str | None, customer_id: str, spec: TouchFile | None, pack: Pack, *,
                        now: str | datetime | None = None,
                        mapping: SensitivityMapping | None = None) -> Scenario:
    """Open the store at ``url``, build the scenario of ``customer_id`` and the touch, close the store.
    (A server keeps one engine and one :class:`StoreScenarioBuilder` instead.)"""
    from tactful.store.db import open_store

    when = parse_now(now) if isinstance(now, str) else now
    builder = StoreScenarioBuilder(pack, mapping)
    engine = open_store(url)
    try:
        with engine.connect() as conn:
            return builder.scenario(conn, customer_id, spec, when)
    finally:
        engine.dispose()
