"""Running a campaign end to end: the thin orchestration over the building blocks of issue 10.

``tactful campaign run FILE``:

1. **audience**: the customers the campaign file's ``audience`` filter selects (SQL on the store);
2. **candidates**: recommended products per customer (:mod:`tactful.recommend`, Ibis on DuckDB over
   the store's orders read once), each with the data categories its product implies and the orders
   that voted for it; an order holding a product the pack deems sensitive votes for nothing;
3. **decisions**: one proposed touch per customer and channel, which ``uses`` exactly the orders its
   shown products were recommended from, decided by the batch evaluator
   (:func:`tactful.batch.run.decide_candidates`, the compiled policy, with the feature frame built in
   Python; or on the in-backend path, :class:`_Eager`, every proposal of a block decided in one call
   with the frame built in DuckDB from the run's copy of the store, the reasons filled in Python
   afterwards). Channels are tried in the
   campaign's preference order: a customer whose touch on one channel sends nothing is proposed on
   the next. When a touch that shows a product implying a data category is not allowed as proposed,
   those products are swapped for the next acceptable candidates and the touch is decided again; the
   better decision counts (the report counts the swaps);
4. **messages** composed at the allowed depth (:func:`tactful.compose.compose`);
5. **decision log and outbox** (:func:`tactful.store.outbox.record`, one transaction per batch: a
   crash keeps both or neither; the outbox key makes a rerun add no duplicate message);
6. **delivery** through the file adapters (print-shop CSV, .eml files), each run into its own
   owner-only directory;
7. **report**: the HTML page (:mod:`tactful.report`), its path printed.

Fail closed: a candidate the engine could not judge is blocked (``evaluation-error``), a template that
cannot be filled withholds its message, and nothing is sent for a customer without a message that fits
the decision.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pyarrow as pa
import sqlalchemy as sa

from tactful.compose import Message, MessageData, Messages, Withheld, compose, preview
from tactful.errors import CampaignError, TactfulError
from tactful.model import Decision, PolicyRef, Reason
from tactful.policy import Pack
from tactful.policy.compile import RULE_SEPARATOR
from tactful.policy.evaluate import EVALUATION_ERROR
from tactful.safeload import CAMPAIGN_LIMITS, DocumentError, load_document, load_yaml
from tactful.store import audit, outbox, tables
from tactful.vocab import Channel, Depth, TouchKind, Verdict

if TYPE_CHECKING:
    from tactful.batch.run import RunScenarioBuilder
    from tactful.batch.store import AttachedStore
    from tactful.realtime import StoreScenarioBuilder

#: the keys of a campaign file (docs/campaign-format.md); anything else is refused
MESSAGE_KEYS = frozenset({"shop", "neutral_sender", "offer", "unsubscribe", "html", "templates"})
RUN_KEYS = frozenset({"name", "description", "purpose", "kind", "audience", "content", "channels",
                      "schedule", "policy", "sender_implies", "from_address"})
AUDIENCE_KEYS = frozenset({"min_orders", "customers", "openness", "limit"})
CONTENT_KEYS = frozenset({"recommendations", "spare"})
PERIODS = ("monthly", "weekly", "daily", "once")
#: which contact point kind a channel needs
CONTACT_KIND: dict[Channel, str] = {Channel.EMAIL: "email", Channel.POSTAL_MAIL: "postal",
                                    Channel.POSTCARD: "postal", Channel.SMS: "phone"}
GUARD = "fail-closed-guard"
MESSAGE_TOUCH = "message"  # the outbox touch id: one message per customer and period, whatever the channel
BATCH = 500  # decisions logged per transaction (a customer's decisions are never split)


@dataclass(frozen=True)
class Campaign:
    """A campaign file, checked."""

    name: str
    messages: Messages
    purpose: str
    kind: TouchKind
    channels: tuple[Channel, ...]
    period: str  # monthly | weekly | daily | once
    policy: str | None  # a pack path (relative to the campaign file) or None for the default pack
    recommendations: int  # products shown per message; 0: a fixed offer, nothing recommended
    spare: int  # extra candidates per customer to replace a refused one
    min_orders: int = 0
    customers: tuple[str, ...] = ()
    openness: tuple[str, ...] = ()
    limit: int | None = None
    sender_implies: tuple[str, ...] = ()
    from_address: str = "no-reply@shop.invalid"
    source: str = "<campaign>"
    digest: str = ""

    @property
    def proposed_depth(self) -> Depth:
        return Depth.ITEM if self.recommendations else Depth.NONE

    def period_key(self, now: datetime) -> str:
        """The outbox period for a run at ``now``: one message per customer and period."""
        now = now.astimezone(UTC)
        if self.period == "monthly":
            return now.strftime("%Y-%m")
        if self.period == "weekly":
            year, week, _ = now.isocalendar()
            return f"{year}-W{week:02d}"
        if self.period == "daily":
            return now.strftime("%Y-%m-%d")
        return "once"


def _text_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise CampaignError(f"{where}: expected a list of texts")
    return tuple(value)


def _int(value: Any, where: str, *, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise CampaignError(f"{where}: expected a whole number from {low} to {high}, got {value!r}")
    return value


def _keys(data: Any, allowed: frozenset[str], where: str) -> Mapping[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise CampaignError(f"{where}: expected a mapping")
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise CampaignError(f"{where}: unknown key(s) {', '.join(unknown)}",
                            hint=f"expected {', '.join(sorted(allowed))} (docs/campaign-format.md)")
    return data


def campaign_from_mapping(data: Any, *, source: str = "<campaign>", digest: str = "") -> Campaign:
    """Check a campaign document; every error names the file and the key."""
    top = _keys(data, MESSAGE_KEYS | RUN_KEYS, source)
    name = top.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise CampaignError(f"{source}: name: expected the campaign's name (1 to 100 characters)")
    messages = Messages.from_mapping({k: v for k, v in top.items() if k in MESSAGE_KEYS}, source=source)
    purpose = top.get("purpose", "marketing")
    if not isinstance(purpose, str) or not purpose:
        raise CampaignError(f"{source}: purpose: expected a purpose key such as marketing")
    try:
        kind = TouchKind(top.get("kind", "recommendation"))
    except ValueError:
        raise CampaignError(f"{source}: kind: unknown touch kind {top.get('kind')!r}",
                            hint=f"expected one of {', '.join(k.value for k in TouchKind)}") from None
    raw_channels = top.get("channels", ["email"])
    if not isinstance(raw_channels, list) or not raw_channels:
        raise CampaignError(f"{source}: channels: expected a list of channels in order of preference")
    channels: list[Channel] = []
    for i, ch in enumerate(raw_channels):
        try:
            channel = Channel(ch)
        except ValueError:
            channel = None
        if channel not in CONTACT_KIND:
            raise CampaignError(f"{source}: channels[{i}]: {ch!r} is not a channel a campaign can send on",
                                hint=f"expected {', '.join(c.value for c in CONTACT_KIND)}")
        if channel in channels:
            raise CampaignError(f"{source}: channels[{i}]: {ch} is listed twice")
        assert channel is not None  # checked above
        channels.append(channel)
    schedule = _keys(top.get("schedule"), frozenset({"period"}), f"{source}: schedule")
    period = schedule.get("period", "monthly")
    if period not in PERIODS:
        raise CampaignError(f"{source}: schedule.period: expected one of {', '.join(PERIODS)}, "
                            f"got {period!r}")
    policy = top.get("policy")
    if policy is not None and (not isinstance(policy, str) or not policy):
        raise CampaignError(f"{source}: policy: expected a pack file path, or default")
    if policy is not None and policy != "default" and source != "demo.yaml":
        p = Path(policy)
        policy = str(p if p.is_absolute() else Path(source).parent / p)
    content = _keys(top.get("content"), CONTENT_KEYS, f"{source}: content")
    audience = _keys(top.get("audience"), AUDIENCE_KEYS, f"{source}: audience")
    limit = audience.get("limit")
    from_address = top.get("from_address", "no-reply@shop.invalid")
    if not isinstance(from_address, str) or "@" not in from_address:
        raise CampaignError(f"{source}: from_address: expected an email address")
    return Campaign(
        name=name.strip(), messages=messages, purpose=purpose, kind=kind, channels=tuple(channels),
        period=str(period), policy=None if policy in (None, "default") else policy,
        recommendations=_int(content.get("recommendations", 3), f"{source}: content.recommendations",
                             low=0, high=10),
        spare=_int(content.get("spare", 10), f"{source}: content.spare", low=0, high=50),
        min_orders=_int(audience.get("min_orders", 0), f"{source}: audience.min_orders", low=0,
                        high=1_000_000),
        customers=_text_list(audience.get("customers"), f"{source}: audience.customers"),
        openness=_text_list(audience.get("openness"), f"{source}: audience.openness"),
        limit=None if limit is None else _int(limit, f"{source}: audience.limit", low=1, high=100_000_000),
        sender_implies=_text_list(top.get("sender_implies"), f"{source}: sender_implies"),
        from_address=from_address, source=source, digest=digest)


def load_campaign(path: str | Path) -> Campaign:
    """Read and check a campaign YAML file (the bounded loader: size, depth, aliases, duplicate keys)."""
    p = Path(path)
    try:
        data = load_document(p, CAMPAIGN_LIMITS, json_only=False, source=str(p))
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
    except DocumentError as exc:
        raise CampaignError(str(exc), hint=exc.hint) from None
    except OSError as exc:
        raise CampaignError(f"{p}: cannot read the campaign ({exc.strerror or exc})") from None
    return campaign_from_mapping(data, source=str(p), digest=digest)


def demo_campaign() -> Campaign:
    """The demo campaign shipped in the package."""
    text = (resources.files("tactful.campaigns") / "demo.yaml").read_text(encoding="utf-8")
    return campaign_from_mapping(load_yaml(text, "demo.yaml", CAMPAIGN_LIMITS), source="demo.yaml",
                                 digest=hashlib.sha256(text.encode()).hexdigest())


# --------------------------------------------------------------------------- the store's data


class Item(NamedTuple):
    """A candidate product for one customer: what it is, the data categories showing it implies (the
    stored label and the sensitivity mapping, as the engine reads them), and the customer's orders
    that voted for it (empty for a popular product): what a touch that shows it uses."""

    product_id: str
    name: str
    category: str | None
    implies: tuple[str, ...]
    seeded_by: tuple[str, ...] = ()


@dataclass
class Customer:
    id: str
    first_name: str | None
    last_name: str | None
    items: list[Item] = field(default_factory=list)
    history: list[str] = field(default_factory=list)
    contacts: dict[str, str] = field(default_factory=dict)  # contact kind -> best contact point id


def _audience(conn: sa.Connection, campaign: Campaign) -> list[str]:
    """The ids of the customers the campaign's audience filter selects, sorted by code point (the
    order the run's blocks follow; ``limit`` keeps the first customers by the store's id order)."""
    c, o = tables.customers, tables.orders
    query = sa.select(c.c.id)
    if campaign.min_orders:
        counts = (sa.select(o.c.customer_id, sa.func.count().label("n")).group_by(o.c.customer_id)
                  .subquery())
        query = query.join(counts, counts.c.customer_id == c.c.id).where(counts.c.n >= campaign.min_orders)
    if campaign.customers:
        query = query.where(c.c.id.in_(campaign.customers))
    if campaign.openness:
        query = query.where(c.c.openness.in_(campaign.openness))
    query = query.order_by(c.c.id)
    if campaign.limit is not None:
        query = query.limit(campaign.limit)
    return sorted(str(r[0]) for r in conn.execute(query))


#: ids per ``IN (...)`` list of the per-block store reads (below every backend's parameter limit)
_IN_CHUNK = 900


def _chunks(ids: Sequence[str], size: int = _IN_CHUNK) -> Iterator[Sequence[str]]:
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def _customers(conn: sa.Connection, ids: Sequence[str]) -> dict[str, Customer]:
    """One block of the audience: each customer's names and best contact point per kind, ranked as
    real time ranks them (docs/realtime.md): not bounced first, then the most recently verified, then
    the smallest id."""
    c, cp = tables.customers, tables.contact_points
    block: dict[str, Customer] = {}
    best: dict[tuple[str, str], tuple[Any, ...]] = {}
    for part in _chunks(ids):
        for who in conn.execute(sa.select(c.c.id, c.c.first_name, c.c.last_name).where(c.c.id.in_(part))):
            block[who.id] = Customer(who.id, who.first_name, who.last_name)
        for r in conn.execute(sa.select(cp.c.id, cp.c.customer_id, cp.c.kind, cp.c.verified_at,
                                        cp.c.bounced).where(cp.c.customer_id.in_(part))):
            verified = r.verified_at
            stamp = verified.replace(tzinfo=verified.tzinfo or UTC).timestamp() if verified else 0.0
            rank = (bool(r.bounced), verified is None, -stamp, r.id)
            key = (r.customer_id, r.kind)
            if key not in best or rank < best[key]:
                best[key] = rank
    for (cid, kind), rank in best.items():
        if cid in block:
            block[cid].contacts[kind] = rank[3]
    return {i: block[i] for i in ids if i in block}  # in the block's order


#: DuckDB's memory for a run (the copy of the store, the recommendations and, on the in-backend path,
#: the feature frames live in a DuckDB file in the run's private work directory; what does not fit
#: spills there)
RUN_MEMORY = "4GB"
#: the store's tables (and their columns; None: all) a run copies for its recommendations
RECOMMEND_TABLES: dict[str, tuple[str, ...] | None] = {
    "orders": ("id", "customer_id", "at"), "order_lines": ("order_id", "product_id"), "products": None}


def open_run_store(url: str | None, workdir: Path, *, frame: bool) -> AttachedStore:
    """The store's tables a run reads, copied once into a DuckDB file under ``workdir`` (the run's
    private work directory; :data:`RUN_MEMORY`): the orders, order lines and products the
    recommendations read, and with ``frame`` every table and column the in-backend feature frame
    reads (:data:`tactful.batch.producers.SCOPED_TABLES`), so that deciding block after block never
    scans the SQLite or PostgreSQL store again. Disconnect ``store.con`` when done."""
    from tactful.batch.producers import SCOPED_TABLES
    from tactful.batch.store import connect, copy_store

    home = workdir / "duckdb"
    home.mkdir(mode=0o700)
    con = connect(workdir=home, memory_limit=RUN_MEMORY)
    try:
        # only what is ordered needs its order (the window functions use less memory without)
        con.raw_sql("SET preserve_insertion_order = false")
        columns: dict[str, tuple[str, ...] | None] = dict(RECOMMEND_TABLES)
        if frame:
            columns.update({name: cols for name, (_, cols) in SCOPED_TABLES.items()})
        return copy_store(con, url, columns)
    except BaseException:
        con.disconnect()
        raise


class Recommender:
    """The recommendations of a run (:mod:`tactful.recommend`, Ibis on DuckDB), from the run's copy of
    the store (:func:`open_run_store`: a DuckDB file in the run's private work directory): the
    baskets (sorted by customer), the shop-wide parts computed once (neighbours, popularity,
    sensitive products), and each block of the audience recommended from its own customers' baskets
    (:meth:`fill`), so that a million-customer store is never recommended in one query (nor held in
    memory). Sensitive purchases (under ``pack``'s settings) vote for nothing and sensitive products
    are never popular."""

    def __init__(self, store: AttachedStore, campaign: Campaign, pack: Pack) -> None:
        import ibis

        from tactful import recommend as rec

        self.campaign = campaign
        self.settings = rec.Settings(k=max(campaign.recommendations, 1))
        #: product -> its Item without orders (None: its label cannot be read, never shown)
        self.bases: dict[str, Item | None] = {}
        self.con = con = store.con
        self.basket = con.create_table("basket", rec.baskets(
            store.table("orders"), store.table("order_lines")).order_by("customer_id"), overwrite=True)
        stored = store.table("products")
        self.products = con.create_table("products", stored.select(
            product_id=stored.id, name=stored.name, department=stored.department,
            category=stored.category, subcategory=stored.subcategory,
            implies=stored.implies.cast("string")), overwrite=True)
        self.exclude = con.create_table("exclude", rec.sensitive_products(
            self.products.rename(id="product_id"), pack.settings.is_sensitive), overwrite=True)
        self.nb = con.create_table("neighbours", rec.neighbours(self.basket, self.settings), overwrite=True)
        self.pop = con.create_table("popularity", rec.popularity(self.basket), overwrite=True)
        top = self.pop.anti_join(self.exclude, "product_id").join(self.products, "product_id")
        self.popular: list[dict[str, Any]] = top.order_by([ibis.desc("customers"), "product_id"]).limit(
            campaign.recommendations + campaign.spare).to_pyarrow().to_pylist()
        #: the five most popular products' names (the segment template)
        self.popular_names = [r["name"] for r in self.popular[:5] if r["name"]]

    def product(self, r: Mapping[str, Any], builder: StoreScenarioBuilder) -> Item | None:
        """A products row (``product_id``, ``name``, ``department``, ``category``, ``subcategory``,
        ``implies``) as an :class:`Item` without orders, remembered for the run; None for a product
        whose label cannot be read (never shown: fail closed)."""
        pid = str(r["product_id"])
        if pid not in self.bases:
            try:  # what the engine will see for a shown product: the stored label and the mapping's
                implies = builder.product_implies(_ProductRow(**{k: r[k] for k in _PRODUCT_COLUMNS}))
                self.bases[pid] = Item(pid, r["name"] or pid, r["category"], implies)
            except TactfulError:
                self.bases[pid] = None
        return self.bases[pid]

    def fill(self, block: Mapping[str, Customer], builder: StoreScenarioBuilder) -> None:
        """Each customer of ``block`` (ids sorted by code point, as DuckDB compares text) gets its
        candidates, each with the data categories its product implies and the orders that voted for
        it, and its recent purchases; one with no purchase history the shop's most popular products."""
        from tactful import recommend as rec

        if not block:
            return
        ids = list(block)
        b = self.basket.filter((self.basket.customer_id >= ids[0]) & (self.basket.customer_id <= ids[-1]))
        seed = self.con.create_table("seed", rec.seeds(b, self.settings, exclude=self.exclude),
                                     temp=True, overwrite=True)
        try:
            co = self.con.create_table("co", rec.co_scores(b, self.settings, exclude=self.exclude, nb=self.nb,
                                                           seed=seed), temp=True, overwrite=True)
            cands = self.con.create_table("cands", rec.recommend(
                b, self.settings, spare=self.campaign.spare, exclude=self.exclude, nb=self.nb, seed=seed,
                pop=self.pop, co=co), temp=True, overwrite=True)
            # the products shown (each labelled once per run), then every candidate by its columns
            # (a block has ~650,000 candidate rows: no dict per row)
            shown = self.products.semi_join(cands.select("product_id"), "product_id")
            for r in shown.to_pyarrow().to_pylist():
                self.product(r, builder)
            voted = cands.left_join(rec.voters(seed, self.nb, cands), ["customer_id", "product_id"]).select(
                "customer_id", "product_id", "rank", "orders").order_by(["customer_id", "rank"]).to_pyarrow()
            for cid, pid, orders in zip(*(voted.column(c).to_pylist() for c in ("customer_id", "product_id",
                                                                                "orders")), strict=True):
                cust = block.get(cid)
                base = self.bases.get(pid)  # absent: not in the products table (never shown either)
                if cust is not None and base is not None:
                    cust.items.append(base._replace(seeded_by=tuple(sorted(set(orders or ())))))
            # the recent purchases a "because you bought" message may name: the most recent seeds,
            # never a sensitive purchase
            recent = seed.filter(seed.h < 3).join(self.products, "product_id").order_by(["customer_id", "h"])
            recent = recent.select("customer_id", "name").to_pyarrow()
            for cid, name in zip(recent.column("customer_id").to_pylist(), recent.column("name").to_pylist(),
                                 strict=True):
                cust = block.get(cid)
                if cust is not None and name:
                    cust.history.append(name)
        finally:
            for name in ("seed", "co", "cands"):
                self.con.drop_table(name, force=True)
        shop_wide = [it for it in (self.product(r, builder) for r in self.popular) if it is not None]
        for cust in block.values():
            if not cust.items:
                cust.items.extend(shop_wide)


_PRODUCT_COLUMNS = ("product_id", "name", "department", "category", "subcategory", "implies")


class _ProductRow(NamedTuple):
    """A products row as :meth:`StoreScenarioBuilder.product_implies` reads it."""

    product_id: str
    name: str | None
    department: str | None
    category: str | None
    subcategory: str | None
    implies: str | None


# --------------------------------------------------------------------------- deciding


@dataclass(frozen=True)
class Proposal:
    customer_id: str
    channel: Channel
    items: tuple[Item, ...]
    contact_point_id: str | None
    swapped: int = 0

    @property
    def touch_id(self) -> str:
        return self.channel.value


@dataclass(frozen=True)
class Judged:
    proposal: Proposal
    decision: Decision
    input_hash: str | None


def _decision(row: Mapping[str, Any], pack: Pack, explained: Sequence[Reason] | None = None) -> Decision:
    """A Decision from a decisions-table row: the fired rules become the reasons, in plain words —
    the rules' messages filled from the customer's facts (``explained``, what the engine tells a person),
    or for a rule without one its title."""
    reasons: list[Reason] = []
    remedies: list[str] = []
    failed = {r for r in (row.get("failed_rules") or "").split(RULE_SEPARATOR) if r}
    filled = {r.rule: r for r in explained or ()}
    for rule_id in (r for r in (row.get("fired_rules") or "").split(RULE_SEPARATOR) if r):
        if rule_id in filled:
            reasons.append(filled[rule_id])
            with_remedies = pack.rule(rule_id).remedies if rule_id not in failed else ()
            remedies.extend(with_remedies)
            continue
        if rule_id == EVALUATION_ERROR:
            reasons.append(Reason(rule=rule_id, verdict=Verdict.BLOCK,
                                  message=f"the touch could not be judged ({row.get('error')}); "
                                          "blocked to fail closed"))
            continue
        if rule_id == GUARD:
            reasons.append(Reason(rule=rule_id, verdict=Verdict.BLOCK,
                                  message="an input the policy needs is missing or unknown; blocked to "
                                          "fail closed"))
            continue
        try:
            rule = pack.rule(rule_id)
        except KeyError:
            reasons.append(Reason(rule=rule_id, verdict=Verdict.BLOCK, message=f"rule {rule_id}"))
            continue
        verdict = Verdict.BLOCK if rule_id in failed else rule.verdict
        extra = " (its inputs were missing: blocked to fail closed)" if rule_id in failed else ""
        reasons.append(Reason(rule=rule_id, verdict=verdict, message=rule.title + extra))
        remedies.extend(rule.remedies)
    return Decision(verdict=Verdict(row["verdict"]), max_depth=Depth(row["max_depth"]),
                    named=bool(row["named"]), remedies=tuple(dict.fromkeys(remedies)),
                    reasons=tuple(reasons), policy=PolicyRef(name=pack.name, version=pack.version))


def _decide(proposals: Sequence[Proposal], campaign: Campaign, pack: Pack, *, db: str | None,
            backend: str, now: datetime, builder: RunScenarioBuilder,
            split: dict[str, float] | None = None) -> list[Judged]:
    """Decide the proposals on the reference path of the batch evaluator (an Arrow candidates table;
    each touch's scenario built from the store and its features derived in Python, with the reasons
    in plain words; the compiled policy run by ``backend``). ``split`` receives the batch evaluator's
    own step times (wall), summed over calls. (The in-backend path: :class:`_Eager`.)"""
    from tactful.batch.run import decide_candidates

    if not proposals:
        return []
    rows = [_candidate(campaign, p) for p in proposals]
    result = decide_candidates(pa.Table.from_pylist(rows), pack, db=db, backend=backend, now=now,
                               builder=builder, explain=True, reference=True,
                               source=f"{campaign.source}: {proposals[0].channel.value} proposals")
    if split is not None:
        for name, sec in result.seconds.items():
            split[name] = split.get(name, 0.0) + sec
    out = result.decisions.to_pylist()
    # the decision log keeps the input hash of what was judged: the feature row's SHA-256, which both
    # paths compute the same way (docs/batch.md), so a run logs the same hashes whichever path decided
    explained = result.reasons or [None] * len(out)
    return [Judged(p, _decision(r, pack, e), r["input_hash"])
            for p, r, e in zip(proposals, out, explained, strict=True)]


def _candidate(campaign: Campaign, p: Proposal) -> dict[str, Any]:
    """A proposal as a row of the batch evaluator's candidates table (docs/batch.md)."""
    used = _used(p.items)
    return {
        "customer_id": p.customer_id, "touch_id": p.touch_id, "kind": campaign.kind.value,
        "purpose": campaign.purpose, "channel": p.channel.value,
        "to": p.contact_point_id, "to_kind": None if p.contact_point_id else CONTACT_KIND[p.channel],
        "sender_implies": ";".join(campaign.sender_implies) or None,
        # exactly the purchases the shown products were recommended from (none for popular ones)
        "uses": json.dumps([{"id": o} for o in used]) if used else None,
        "shows_items": ";".join(i[0] for i in p.items) or None,
        "depth": campaign.proposed_depth.value, "named": "true",
    }


def _fits_id(value: str) -> bool:
    """Whether ``value`` is an id a touch file accepts as it is (:data:`tactful.model.Id`: 1 to 200
    characters, no surrounding white space, which the touch model would strip)."""
    return 1 <= len(value) <= 200 and value == value.strip()


class _TypedRows:
    """A campaign's proposals as rows of the typed candidates table the in-backend frame reads
    (:data:`tactful.batch.producers.CANDIDATE_SCHEMA`), without validating each one as a touch: the
    proposals of a run differ only in the customer, the contact point, the orders used and the
    products shown, so one touch per channel (and recipient form) is validated
    (:func:`tactful.realtime.parse_touch`) and typed, and each proposal's row is that row with its own
    ids. A proposal whose ids a touch would not take as they are goes through the validating path
    (:meth:`table` leaves it out). tests/test_campaign_typed.py checks that every row equals the
    validating path's."""

    def __init__(self, campaign: Campaign, now: datetime) -> None:
        self.campaign, self.now = campaign, now
        self.templates: dict[tuple[Channel, bool], tuple[dict[str, Any], dict[str, Any]]] = {}

    def _template(self, channel: Channel, to: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        from tactful.batch.candidates import touch_document
        from tactful.batch.producers import candidate_row
        from tactful.realtime import parse_touch

        key = (channel, to)
        if key not in self.templates:
            probe = Proposal("c", channel, (Item("p", "p", None, (), ("o",)),), "cp" if to else None)
            touch = parse_touch(touch_document(_candidate(self.campaign, probe)),
                                source=f"{self.campaign.source}: {channel.value} proposals")
            row = candidate_row(0, "c", touch.touch, self.now)
            self.templates[key] = (row, row["uses"][0])
        return self.templates[key]

    @staticmethod
    def _ids(p: Proposal) -> tuple[list[str], list[str]] | None:
        """The proposal's orders used and products shown, None when a touch would not take one of
        its ids as it is."""
        used = _used(p.items)
        shown = [i[0] for i in p.items]
        if not all(_fits_id(x) for x in (*used, *shown, p.contact_point_id or "-")):
            return None
        return used, shown

    def table(self, proposals: Sequence[Proposal]) -> tuple[pa.Table, list[Proposal], list[Proposal]]:
        """The typed rows of ``proposals`` as one Arrow table (rows numbered from 1), built column by
        column — a block has ~250,000 proposals — equal to what the validating path types
        (tests/test_campaign_typed.py); the proposals it holds, in order; and those it leaves out, in
        order: a touch would not take one of their ids as it is (the caller types them on the
        validating path)."""
        import ibis

        from tactful.batch.producers import CANDIDATE_SCHEMA

        schema = ibis.schema(CANDIDATE_SCHEMA).to_pyarrow()
        keys: dict[tuple[Channel, bool], int] = {}
        which: list[int] = []  # each row's template
        kept: list[Proposal] = []
        refused: list[Proposal] = []
        customers: list[str] = []
        to: list[str | None] = []
        used_at, used_ids, used_of = [0], [], []  # the uses lists, flattened, and each id's template
        shown_at, shown_ids = [0], []
        for p in proposals:
            ids = self._ids(p)
            if ids is None:
                refused.append(p)
                continue
            used, shown = ids
            key = (p.channel, p.contact_point_id is not None)
            t = keys.get(key)
            if t is None:
                self._template(*key)
                t = keys[key] = len(keys)
            which.append(t)
            kept.append(p)
            customers.append(p.customer_id)
            to.append(p.contact_point_id)
            used_ids.extend(used)
            used_of.extend([t] * len(used))
            used_at.append(len(used_ids))
            shown_ids.extend(shown)
            shown_at.append(len(shown_ids))
        templates = [self.templates[key] for key in keys]  # in template-index order
        take = pa.array(which, pa.int32())
        columns: dict[str, pa.Array] = {}
        for name in schema.names:
            kind = schema.field(name).type
            if name == "row":
                columns[name] = pa.array(range(1, len(kept) + 1), kind)
            elif name == "customer_id":
                columns[name] = pa.array(customers, kind)
            elif name == "to":  # the proposal's contact point (none: the template's ``to_kind`` says whose)
                columns[name] = pa.array(to, kind)
            elif name == "uses":
                selector = kind.value_type
                of = pa.array(used_of, pa.int32())
                fields = [pa.array(used_ids, selector.field("id").type) if f.name == "id" else
                          pa.array([s[f.name] for _, s in templates], f.type).take(of) for f in selector]
                columns[name] = pa.ListArray.from_arrays(
                    pa.array(used_at, pa.int32()), pa.StructArray.from_arrays(fields, fields=list(selector)),
                    type=kind)
            elif name == "shows_items":
                columns[name] = pa.ListArray.from_arrays(
                    pa.array(shown_at, pa.int32()), pa.array(shown_ids, kind.value_type), type=kind)
            else:  # the same for every proposal of a channel and recipient form
                columns[name] = pa.array([row[name] for row, _ in templates], kind).take(take)
        return pa.Table.from_arrays(list(columns.values()), schema=schema), kept, refused


def _used(items: Sequence[Item]) -> list[str]:
    """The orders (ids, sorted) whose products voted for the shown ``items``."""
    return sorted({o for i in items for o in i.seeded_by})


def _better(a: Decision, b: Decision) -> bool:
    """Whether decision ``b`` lets more of the touch through than ``a``."""
    if b.verdict.rank != a.verdict.rank:
        return b.verdict.rank < a.verdict.rank
    return b.max_depth.rank > a.max_depth.rank


# --------------------------------------------------------------------------- the run


@dataclass
class Outcome:
    """What happened to one customer: every channel tried, and the message that goes out (if any)."""

    customer: Customer
    tried: list[tuple[Judged, Message | Withheld]] = field(default_factory=list)
    proposed: Message | Withheld | None = None

    @property
    def final(self) -> tuple[Judged, Message | Withheld] | None:
        return self.tried[-1] if self.tried else None


@dataclass
class RunSummary:
    run_id: str
    period: str
    dry_run: bool
    customers: int
    decisions: int
    queued: int  # new outbox messages
    swaps: int
    by_verdict: dict[str, int]
    by_channel: dict[str, int]  # messages composed per channel
    delivery: dict[str, int]
    report: Path | None
    out_dir: Path | None
    seconds: dict[str, float]
    #: the process's CPU time per step, the same keys as ``seconds`` (benchmarks/bench_campaign.py)
    cpu: dict[str, float] = field(default_factory=dict)


StepCallback = Callable[[str, int | None], Callable[[int], None]]


def _no_progress(step: str, total: int | None) -> Callable[[int], None]:
    return lambda n: None


def _message_data(campaign: Campaign, cust: Customer, items: Sequence[Item],
                  popular: Sequence[str]) -> MessageData:
    shown = items[: campaign.recommendations]
    categories = list(dict.fromkeys(i[2].title() for i in shown if i[2]))
    return campaign.messages.data(first_name=cust.first_name, last_name=cust.last_name,
                                  segment="shoppers at " + campaign.messages.shop, popular=tuple(popular),
                                  categories=tuple(categories), items=tuple(i[1] for i in shown),
                                  history=tuple(cust.history))


@contextmanager
def _private_tempdir() -> Iterator[Path]:
    from tactful.files import private_workdir

    with private_workdir("tactful-campaign-") as path:  # created 0700; a killed run's is swept
        yield path


#: customers decided, composed and logged together: the run's memory depends on this, not on the
#: audience's size (docs/campaign-format.md, "Large audiences")
BLOCK = 50_000
#: from this audience size on, a run decides with the feature frame built inside the backend and keeps
#: the fact-naming reasons for a sample of each rule's decisions (the others: the rule's title)
LARGE_AUDIENCE = 50_000
#: with sampled reasons: the logged decisions per rule and block whose reasons name the facts
REASON_SAMPLES = 5


class _Clock:
    """Wall and CPU seconds per step, summed over the blocks of a run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - c0


@dataclass
class _Block:
    """What deciding one block of the audience gave."""

    outcomes: dict[str, Outcome]
    swaps: int


def _first(block: Mapping[str, Customer], cid: str, channel: Channel, k: int) -> Proposal:
    """A customer's proposal on ``channel``: its first ``k`` candidates, to its best contact point."""
    cust = block[cid]
    return Proposal(cid, channel, tuple(cust.items[:k]), cust.contacts.get(CONTACT_KIND[channel]))


def _swap(proposal: Proposal, items: Sequence[Item], k: int) -> Proposal | None:
    """The proposal again with its revealing products swapped for the next acceptable candidates (None
    when it shows none, or there are too few clean ones to fill the message)."""
    if not any(i[3] for i in proposal.items):
        return None
    clean = [i for i in items if not i[3]][:k]
    if not clean or len(clean) != min(k, len(items)):
        return None
    swapped = sum(1 for i in proposal.items if i[3])
    return Proposal(proposal.customer_id, proposal.channel, tuple(clean), proposal.contact_point_id, swapped)


Judge = Callable[[Sequence[Proposal]], list[Judged]]


def _compose(campaign: Campaign, cust: Customer, j: Judged, popular: Sequence[str]) -> Message | Withheld:
    return compose(campaign.messages.templates, j.decision,
                   _message_data(campaign, cust, j.proposal.items, popular), channel=j.proposal.channel,
                   proposed_depth=campaign.proposed_depth, sender=campaign.messages.shop,
                   neutral_sender=campaign.messages.neutral_sender,
                   sender_reveals=bool(campaign.sender_implies))


def _decide_block(block: dict[str, Customer], campaign: Campaign, popular: Sequence[str], judge: Judge, *,
                  clock: _Clock) -> _Block:
    """Decide and compose one block of customers, channel by channel in the campaign's order of
    preference (a customer whose touch on one channel sends nothing is proposed on the next), with
    the swap of revealing products (module doc). ``judge`` decides a list of proposals."""
    outcomes = {cid: Outcome(c) for cid, c in block.items()}
    pending_ids = list(block)
    swaps = 0
    k = campaign.recommendations
    for channel in campaign.channels:
        if not pending_ids:
            break
        with clock("candidates"):
            props = [_first(block, cid, channel, k) for cid in pending_ids]
        with clock("features and policy"):
            judged = judge(props)
            # a touch not allowed as proposed that shows revealing products: swap them and try again
            retry = [s for j in judged if j.decision.verdict is not Verdict.ALLOW
                     and (s := _swap(j.proposal, block[j.proposal.customer_id].items, k)) is not None]
            if retry:
                again = {j.proposal.customer_id: j for j in judge(retry)}
                judged = [again[j.proposal.customer_id]
                          if j.proposal.customer_id in again
                          and _better(j.decision, again[j.proposal.customer_id].decision) else j
                          for j in judged]
        with clock("compose"):
            still: list[str] = []
            for j in judged:
                cust = block[j.proposal.customer_id]
                composed = _compose(campaign, cust, j, popular)
                out = outcomes[cust.id]
                if out.proposed is None:
                    out.proposed = preview(campaign.messages.templates,
                                           _message_data(campaign, cust, cust.items, popular),
                                           channel=channel, depth=campaign.proposed_depth, named=True,
                                           sender=campaign.messages.shop)
                out.tried.append((j, composed))
                if isinstance(composed, Message):
                    swaps += j.proposal.swapped
                else:
                    still.append(cust.id)
            pending_ids = still
    return _Block(outcomes, swaps)


#: the cells of a decisions-table row that :func:`_decision` reads (without explained reasons)
_DECISION_CELLS = ("verdict", "max_depth", "named", "fired_rules", "failed_rules", "error")


class _Eager:
    """The in-backend path of a run: every proposal a block may need — each customer on each channel,
    and the swapped variant of each that shows a revealing product — decided in one batch call over
    the run's copy of the store (one feature frame per block, however many channels and swaps), then
    served to :func:`_decide_block` as it asks. Deciding a touch never depends on another touch of the
    same run (nothing is logged as a past touch before delivery), so this gives exactly the decisions
    of one call per channel and swap (tests/test_campaign_run.py), at a ninth of the planning.

    The reasons that name facts are derived afterwards for the decisions the run keeps
    (:meth:`explain`)."""

    def __init__(self, campaign: Campaign, pack: Pack, store: AttachedStore, now: datetime,
                 split: dict[str, float]) -> None:
        from tactful.policy.compile import compile_pack

        self.campaign, self.pack, self.store, self.now, self.split = campaign, pack, store, now, split
        self.compiled = compile_pack(pack)
        self.typed = _TypedRows(campaign, now)
        self.judged: dict[Proposal, Judged] = {}
        self.rows: dict[Proposal, dict[str, Any]] = {}  # its decisions-table row
        self.decisions: dict[tuple[Any, ...], Decision] = {}

    def decide(self, block: Mapping[str, Customer]) -> None:
        """Decide every proposal the block may need, in one batch call."""
        from tactful.batch.candidates import candidates
        from tactful.batch.producers import candidate_row
        from tactful.batch.run import decide_typed_rows

        self.judged.clear()
        self.rows.clear()
        k = self.campaign.recommendations
        props: list[Proposal] = []
        for channel in self.campaign.channels:
            for cid, cust in block.items():
                first = _first(block, cid, channel, k)
                props.append(first)
                if (swapped := _swap(first, cust.items, k)) is not None:
                    props.append(swapped)
        table, kept, refused = self.typed.table(props)
        # a proposal with an id a touch would not take as it is: the validating path says why
        odd: list[dict[str, Any]] = []
        source = f"{self.campaign.source}: proposals"
        for p in refused:
            cand = next(candidates(pa.Table.from_pylist([_candidate(self.campaign, p)]), source))
            if cand.touch is None:
                self._store(p, {"verdict": Verdict.BLOCK.value, "max_depth": Depth.NONE.value,
                                "named": False, "fired_rules": EVALUATION_ERROR, "failed_rules": "",
                                "input_hash": None, "error": cand.error})
                continue
            kept.append(p)  # numbered on after the others: rows 1..N in the table's order
            odd.append(candidate_row(len(kept), p.customer_id, cand.touch.touch, self.now))
        if odd:
            table = pa.concat_tables([table, pa.Table.from_pylist(odd, schema=table.schema)])
        if not kept:
            return
        seconds: dict[str, float] = {}
        out = decide_typed_rows(self.store.con, self.store, table, self.pack, self.compiled, seconds,
                                touch_ids=[p.touch_id for p in kept])
        for name, sec in seconds.items():
            self.split[name] = self.split.get(name, 0.0) + sec
        for p, r in zip(kept, out.to_pylist(), strict=True):
            self._store(p, r)

    def _store(self, p: Proposal, row: dict[str, Any]) -> None:
        self.rows[p] = row
        # the decision (with the rules' titles as reasons) depends on these cells only: one frozen
        # object per distinct combination, shared (a block has ~250,000 rows, a few hundred kinds)
        key = tuple(row.get(c) for c in _DECISION_CELLS)
        decision = self.decisions.get(key)
        if decision is None:
            decision = self.decisions[key] = _decision(row, self.pack)
        self.judged[p] = Judged(p, decision, row["input_hash"])

    def judge(self, proposals: Sequence[Proposal]) -> list[Judged]:
        return [self.judged[p] for p in proposals]

    def explain(self, done: _Block, popular: Sequence[str], *, samples: int | None, db: str | None,
                builder: StoreScenarioBuilder) -> None:
        """Fill the fact-naming reasons of the decisions the block keeps (every one where a rule
        fired, or with ``samples`` the first ``samples`` of each rule), in Python from the store, and
        compose their messages again (a withheld message quotes them)."""
        from tactful.batch.candidates import candidates
        from tactful.batch.run import DECISIONS_SCHEMA, explain_candidates

        seen: dict[str, int] = defaultdict(int)
        chosen: list[tuple[Outcome, int]] = []
        for out in done.outcomes.values():
            for n, (j, _) in enumerate(out.tried):
                fired = [reason.rule for reason in j.decision.reasons]
                if not fired or self.rows[j.proposal].get("error"):
                    continue
                if samples is None or any(seen[rule] < samples for rule in fired):
                    chosen.append((out, n))
                    for rule in fired:
                        seen[rule] += 1
        if not chosen:
            return
        props = [out.tried[n][0].proposal for out, n in chosen]
        cands = list(candidates(pa.Table.from_pylist([_candidate(self.campaign, p) for p in props]),
                                f"{self.campaign.source}: proposals"))
        rows = [self.rows[p] for p in props]  # decisions-table rows (a row with an error is not chosen)
        decisions = pa.Table.from_pylist(rows, schema=DECISIONS_SCHEMA)
        reasons = explain_candidates(cands, decisions, self.pack, db=db, now=self.now, builder=builder)
        for (out, n), p, row, why in zip(chosen, props, rows, reasons, strict=True):
            if why is None:  # the scenario could not be rebuilt: the rules' titles stand
                continue
            j = Judged(p, _decision(row, self.pack, why), row["input_hash"])
            out.tried[n] = (j, _compose(self.campaign, out.customer, j, popular))


def _log_batches(outcomes: Mapping[str, Outcome], campaign: Campaign, run_id: str, period: str,
                 log_batch: int) -> list[list[outbox.Decided]]:
    """A block's decisions (and messages to queue) in batches that never split a customer's."""
    batches: list[list[outbox.Decided]] = [[]]
    for out in outcomes.values():
        if len(batches[-1]) >= log_batch:
            batches.append([])
        for n, (j, composed) in enumerate(out.tried):
            logged = audit.LoggedDecision(
                customer_id=out.customer.id, touch_id=j.proposal.touch_id,
                channel=j.proposal.channel.value,
                decision=j.decision, input_hash=j.input_hash or "",
                proposed_depth=campaign.proposed_depth.value,
                withheld=composed.reason if isinstance(composed, Withheld) else None,
                proposed=out.proposed if n == 0 else None, message=composed)
            entry = None
            if isinstance(composed, Message):
                entry = outbox.OutboxEntry(
                    campaign=campaign.name, customer_id=out.customer.id, touch_id=MESSAGE_TOUCH,
                    touch_kind=campaign.kind.value, purpose=campaign.purpose, period=period,
                    run_id=run_id, contact_point_id=j.proposal.contact_point_id, message=composed)
            batches[-1].append(outbox.Decided(logged, entry))
    return [b for b in batches if b]


def _earlier_dirs(engine: sa.Engine, campaign: str, period: str, run_id: str, base: Path) -> list[Path]:
    """The directories under ``base`` of the other runs of ``campaign`` in ``period`` (a killed run's
    delivery may have written messages there that the store still says are pending): the file
    adapters count a message found complete there as delivered (docs/campaign-format.md, "A killed
    delivery")."""
    r = tables.campaign_runs
    with engine.connect() as conn:
        ids = [str(x) for x in conn.execute(sa.select(r.c.id).where(
            r.c.campaign == campaign, r.c.period == period, r.c.id != run_id).order_by(r.c.started_at))
            .scalars()]
    # a run id is one name under ``base`` (an odd one is skipped: nothing outside ``base`` is read)
    return [base / i for i in ids if Path(i).name == i and i not in (".", "..") and (base / i).is_dir()]


def run_campaign(campaign: Campaign, *, db: str | None = None, backend: str = "duckdb",
                 dry_run: bool = False, now: datetime | None = None, out_dir: Path | None = None,
                 resume: str | None = None, deliver: bool = True,
                 step: StepCallback = _no_progress, log_batch: int = BATCH,
                 reference: bool | None = True, block: int = BLOCK,
                 sampled_reasons: bool | None = None) -> RunSummary:
    """Run ``campaign`` on the store at ``db`` (see the module docstring), the audience in blocks of
    ``block`` customers: each block is decided, composed, logged and queued before the next is read,
    so memory does not grow with the audience.

    ``reference=True`` (the default) decides with the batch evaluator's reference path (the feature
    frame built in Python, per customer, the policy compiled in the backend); ``reference=False``
    builds the feature frame inside the backend (DuckDB) instead; ``None`` picks the in-backend path
    from :data:`LARGE_AUDIENCE` customers on. Both give the same decisions (tests/test_campaign_run.py);
    at the demo's size the reference path is about twice as fast (docs/performance.md).

    ``sampled_reasons``: on the in-backend path, the reasons that name the customer's facts are
    derived (in Python, from the store) for the first :data:`REASON_SAMPLES` logged decisions of each
    rule in each block only, the others logging each fired rule's title; ``None`` samples from
    :data:`LARGE_AUDIENCE` customers on. The reference path always logs the fact-naming reasons."""
    from tactful import report as rpt
    from tactful.batch.backends import BACKENDS, check_backend
    from tactful.batch.run import RunScenarioBuilder
    from tactful.delivery import Adapter, EmlDirectory, PrintShopCsv, SmsCsv
    from tactful.delivery import deliver as deliver_outbox
    from tactful.policy import load_pack
    from tactful.sample.personas import PERSONAS
    from tactful.store.db import open_store

    if block < 1:
        raise CampaignError(f"block: expected a positive number of customers, got {block}")
    when = (now or datetime.now(UTC)).astimezone(UTC)
    personas = {p.customer_id: p.title for p in PERSONAS}
    pack = load_pack(campaign.policy)
    check_backend(backend, db=db)
    period = campaign.period_key(when)
    clock = _Clock()
    for name in ("audience", "copy of the store", "recommendations", "candidates", "features and policy",
                 "compose",
                 "decision log and outbox", "delivery", "report"):
        clock.seconds[name] = clock.cpu[name] = 0.0
    engine = open_store(db)
    try:
        with clock("audience"), engine.connect() as conn:
            ids = _audience(conn, campaign)
        large = len(ids) >= LARGE_AUDIENCE
        if reference is None:
            reference = not large
        reference = reference or not BACKENDS[backend].builds_features
        samples = REASON_SAMPLES if not reference and (large if sampled_reasons is None
                                                        else sampled_reasons) else None
        titles = rpt.rule_titles(pack)
        run_id = resume or outbox.new_run_id(campaign.name, when)
        split: dict[str, float] = {}  # the batch evaluator's steps within "features and policy"
        tally = rpt.Tally(titles)
        by_verdict: dict[str, int] = defaultdict(int)
        by_channel: dict[str, int] = defaultdict(int)
        swaps = logged_n = queued = decisions_n = 0
        popular: list[str] = []
        delivery: dict[str, int] = {}
        base = out_dir or Path("campaign-runs")
        run_dir = base / run_id
        with _private_tempdir() as work, ExitStack() as closing:
            recs: Recommender | None = None
            eager: _Eager | None = None
            with clock("copy of the store"):
                if (campaign.recommendations or not reference) and ids:
                    engine.dispose()  # no connection of ours open while DuckDB reads the store (below)
                    copied = open_run_store(db, work, frame=not reference)
                    closing.callback(copied.con.disconnect)  # before the work directory goes
                    if not reference:
                        eager = _Eager(campaign, pack, copied, when, split)
                    # DuckDB read the SQLite store above with its own copy of SQLite; closing its file
                    # handles dropped this process's POSIX locks on the store, including the lock that
                    # tells other processes a connection is open (SQLite's "multiple copies of SQLite"
                    # hazard). A process opening the store now would rebuild the WAL index under our
                    # writes ("database disk image is malformed", found by the kill test). Fresh
                    # connections take their locks again: the pool is emptied after every DuckDB read.
                    engine.dispose()
            with clock("recommendations"):
                if campaign.recommendations and ids:
                    tick = step("recommending", None)
                    recs = Recommender(copied, campaign, pack)
                    popular = recs.popular_names
                    tick(1)
            if not dry_run:
                with engine.begin() as conn:
                    run_id = outbox.start_run(conn, campaign=campaign.name, period=period,
                                              policy_name=pack.name, policy_version=pack.version,
                                              campaign_hash=campaign.digest or None, run_id=run_id,
                                              at=when, rules=titles)
            try:
                decided = step("deciding", len(ids))
                logging = None if dry_run else step("logging decisions", len(ids))
                for start in range(0, len(ids), block):
                    part = ids[start:start + block]
                    builder = RunScenarioBuilder(pack)  # a block's reads; dropped with the block
                    with clock("audience"), engine.connect() as conn:
                        customers = _customers(conn, part)
                    with clock("recommendations"):
                        if recs is not None:
                            recs.fill(customers, builder)
                        if recs is not None and (reference or samples is None):
                            # the orders the touches will name, for the whole block at once, for the
                            # scenarios built in Python (not needed when only a sample of the
                            # in-backend decisions has its scenario built for its reasons)
                            with engine.connect() as conn:
                                builder.prefetch_orders(conn, {o for c in customers.values()
                                                               for i in c.items for o in i.seeded_by})
                    if eager is None:
                        engine.dispose()

                        def judge(props: Sequence[Proposal], builder: RunScenarioBuilder = builder
                                  ) -> list[Judged]:
                            return _decide(props, campaign, pack, db=db, backend=backend, now=when,
                                           builder=builder, split=split)

                        done = _decide_block(customers, campaign, popular, judge, clock=clock)
                        engine.dispose()  # DuckDB read the store: fresh connections (see above)
                    else:
                        with clock("features and policy"):
                            eager.decide(customers)
                        done = _decide_block(customers, campaign, popular, eager.judge, clock=clock)
                        with clock("features and policy"):
                            eager.explain(done, popular, samples=samples, db=db, builder=builder)
                    decided(len(part))
                    swaps += done.swaps
                    with clock("decision log and outbox"):
                        for chunk in ([] if dry_run else
                                      _log_batches(done.outcomes, campaign, run_id, period, log_batch)):
                            with engine.begin() as conn:
                                n, q = outbox.record(conn, run_id, chunk)
                            logged_n += n
                            queued += q
                        if logging is not None:
                            logging(len(part))
                    with clock("report"):
                        for out in done.outcomes.values():
                            decisions_n += len(out.tried)
                            final = out.final
                            if final is None:
                                continue
                            j, composed = final
                            by_verdict[j.decision.verdict.value] += 1
                            if isinstance(composed, Message):
                                by_channel[composed.channel.value] += 1
                            if dry_run:
                                tally.add(rpt.ReportRow(
                                    customer_id=out.customer.id, channel=j.proposal.channel.value,
                                    proposed_depth=campaign.proposed_depth, decision=j.decision,
                                    proposed=out.proposed or composed, final=composed,
                                    persona=personas.get(out.customer.id)))
                clock.seconds.update({f"features and policy: {name}": sec for name, sec in split.items()})

                # delivery: the pending messages of this campaign and period, whichever run queued them
                # (a killed run's queued messages go out with the rerun)
                with clock("delivery"):
                    if not dry_run and deliver:
                        # a killed run of the same campaign and period may have written some of
                        # these messages into its own directory before recording them
                        earlier = _earlier_dirs(engine, campaign.name, period, run_id, base)
                        adapters: list[Adapter] = [
                            PrintShopCsv(run_dir, earlier=earlier), SmsCsv(run_dir, earlier=earlier),
                            EmlDirectory(run_dir / "email", from_address=campaign.from_address,
                                         earlier=[d / "email" for d in earlier])]
                        deliver_outbox(engine, adapters, campaign=campaign.name, period=period)
                        delivery = {**outbox.counts(engine, run_id)}
                with clock("report"):
                    totals = {"customers": len(ids), "decisions": decisions_n, "queued": queued,
                              "logged": logged_n, "swaps": swaps, "by_verdict": dict(by_verdict),
                              "by_channel": dict(by_channel), "delivery": delivery}
                    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                    if dry_run:
                        info = rpt.RunInfo(run_id=run_id, campaign=campaign.name, period=period,
                                           policy_name=pack.name, policy_version=pack.version,
                                           started_at=when, dry_run=True, swaps=swaps, delivery=delivery)
                        html = rpt.build(info, tally, titles)
                    else:
                        # the report is built from the store alone, as `tactful campaign report RUN
                        # --html` rebuilds it later: the page shows what was logged (a resumed run:
                        # both parts)
                        with engine.begin() as conn:
                            outbox.set_summary(conn, run_id, totals)
                        html = rpt.build(*rpt.from_store(engine, run_id))
                    report_path = rpt.write(run_dir / "report.html", html, numbered=True)
                if not dry_run:
                    with engine.begin() as conn:
                        outbox.finish_run(conn, run_id, summary={
                            **totals, "report": str(report_path),
                            "seconds": {k2: round(v, 2) for k2, v in clock.seconds.items()}})
            except BaseException:
                if not dry_run:  # the run says it stopped; what it logged stays and can be resumed
                    with engine.begin() as conn:
                        outbox.finish_run(conn, run_id, status=outbox.RUN_FAILED)
                raise
        return RunSummary(run_id=run_id, period=period, dry_run=dry_run, customers=len(ids),
                          decisions=decisions_n, queued=queued, swaps=swaps, by_verdict=dict(by_verdict),
                          by_channel=dict(by_channel), delivery=delivery, report=report_path,
                          out_dir=run_dir, seconds=clock.seconds, cpu=clock.cpu)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- listing and reports


@dataclass(frozen=True)
class RunRow:
    id: str
    campaign: str
    period: str
    status: str
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None
    policy: str
    summary: Mapping[str, Any]


def list_runs(db: str | None = None, *, limit: int = 50) -> list[RunRow]:
    """The store's campaign runs, newest first."""
    from tactful.store import outbox
    from tactful.store.db import open_store

    r = tables.campaign_runs
    engine = open_store(db)
    try:
        with engine.begin() as conn:
            outbox.mark_interrupted(conn)  # a run killed on this host says so
            rows = conn.execute(sa.select(r).order_by(r.c.started_at.desc(), r.c.id).limit(limit)).all()
    finally:
        engine.dispose()
    return [_run_row(x) for x in rows]


def _run_row(x: Any) -> RunRow:
    summary = x.summary if isinstance(x.summary, Mapping) else {}
    return RunRow(id=x.id, campaign=x.campaign, period=x.period, status=x.status, dry_run=bool(x.dry_run),
                  started_at=x.started_at, finished_at=x.finished_at,
                  policy=f"{x.policy_name} {x.policy_version}", summary=summary)


def run_details(run_id: str, db: str | None = None) -> tuple[RunRow, dict[str, int], dict[str, int]]:
    """One run: its row, its logged decisions by verdict, its outbox messages by status."""
    from tactful.errors import NotFoundError
    from tactful.store import outbox
    from tactful.store.db import open_store

    r, d = tables.campaign_runs, tables.decisions
    engine = open_store(db)
    try:
        with engine.begin() as conn:
            outbox.mark_interrupted(conn)  # a run killed on this host says so
            row = conn.execute(sa.select(r).where(r.c.id == run_id)).first()
            if row is None:
                raise NotFoundError(f"no campaign run {run_id!r} in the store",
                                    hint="tactful campaign list shows the runs")
            verdicts = {str(v): int(n) for v, n in conn.execute(
                sa.select(d.c.verdict, sa.func.count()).where(d.c.run_id == run_id).group_by(d.c.verdict))}
        return _run_row(row), verdicts, outbox.counts(engine, run_id)
    finally:
        engine.dispose()


def rebuild_report(run_id: str, path: Path, db: str | None = None) -> Path:
    """Rebuild a logged run's HTML report from the store alone and write it to the new file ``path``."""
    from tactful import report as rpt
    from tactful.store.db import open_store

    engine = open_store(db)
    try:
        html = rpt.build(*rpt.from_store(engine, run_id))
    finally:
        engine.dispose()
    return rpt.write(path, html)


@dataclass(frozen=True)
class RuleWhy:
    """One rule as a run's log tells it: how many customers' final decision it applied to, the
    verdict it gave, and one logged reason in the words the customer's decision used."""

    rule: str
    title: str
    customers: int
    verdict: str
    example: str


def run_reasons(run_id: str, db: str | None = None) -> list[RuleWhy]:
    """Why a run decided as it did, from its log alone: per rule, the customers whose final decision
    it applied to (most first) and one plain-language reason."""
    from tactful.store.db import open_store

    r, d = tables.campaign_runs, tables.decisions
    engine = open_store(db)
    try:
        with engine.connect() as conn:
            titles = conn.execute(sa.select(r.c.rules).where(r.c.id == run_id)).scalar()
            final: dict[str, Any] = {}
            for row in conn.execution_options(yield_per=5000).execute(
                    sa.select(d.c.customer_id, d.c.reasons).where(d.c.run_id == run_id).order_by(d.c.seq)):
                final[row.customer_id] = row.reasons  # the last channel tried is the final decision
    finally:
        engine.dispose()
    titles = titles if isinstance(titles, Mapping) else {}
    counts: dict[str, int] = defaultdict(int)
    first: dict[str, tuple[str, str]] = {}
    for reasons in final.values():
        for reason in reasons if isinstance(reasons, list) else []:
            if not isinstance(reason, Mapping):
                continue
            rule = str(reason.get("rule", "?"))
            counts[rule] += 1
            first.setdefault(rule, (str(reason.get("verdict", "?")), str(reason.get("message", ""))))
    return [RuleWhy(rule=k, title=str(titles.get(k, k)), customers=n, verdict=first[k][0],
                    example=first[k][1])
            for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


EMAIL_ADAPTERS = ("eml", "mbox", "smtp")


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    starttls: bool = False
    username: str | None = None
    password: str | None = None  # never printed, never stored


def deliver_run(run_id: str, *, db: str | None = None, out_dir: Path | None = None, email: str = "eml",
                smtp: SmtpSettings | None = None, from_address: str = "no-reply@shop.invalid",
                attempts: int = 4, backoff: float = 1.0, show_progress: bool = False) -> tuple[
                    Path, dict[str, int], list[tuple[str, str]]]:
    """Deliver the pending messages of a run's campaign and period (those a killed run of it queued
    too): letters and postcards into the print-shop CSV, text messages into the SMS CSV, email as .eml
    files, one mbox file, or through SMTP. Failures are retried with exponential back-off; bounces mark
    the contact point. Returns the output directory, the outbox of the run by status, and the
    messages that did not go out (customer id, why)."""
    from tactful.delivery import (
        Adapter,
        EmlDirectory,
        Mbox,
        PrintShopCsv,
        RetryPolicy,
        SmsCsv,
        Smtp,
        deliver,
    )
    from tactful.errors import DeliveryError, NotFoundError
    from tactful.store import outbox
    from tactful.store.db import open_store

    if email not in EMAIL_ADAPTERS:
        raise DeliveryError(f"--email: unknown adapter {email!r}",
                            hint=f"expected {', '.join(EMAIL_ADAPTERS)}")
    if email == "smtp" and smtp is None:
        raise DeliveryError("--email smtp needs the SMTP server",
                            hint="give --smtp-host (or TACTFUL_SMTP_HOST)")
    r = tables.campaign_runs
    engine = open_store(db)
    try:
        with engine.begin() as conn:
            outbox.mark_interrupted(conn)
            run = conn.execute(sa.select(r.c.campaign, r.c.period, r.c.status)
                               .where(r.c.id == run_id)).first()
        if run is None:
            raise NotFoundError(f"no campaign run {run_id!r} in the store",
                                hint="tactful campaign list shows the runs")
        if run.status == outbox.RUNNING:
            raise CampaignError(f"run {run_id} is still running; it delivers its messages itself",
                                hint="wait for it to finish (or run it with --no-deliver)")
        directory = out_dir or Path("campaign-runs") / run_id
        adapters: list[Adapter] = [PrintShopCsv(directory), SmsCsv(directory)]
        if email == "eml":
            adapters.append(EmlDirectory(directory / "email", from_address=from_address))
        elif email == "mbox":
            adapters.append(Mbox(directory, from_address=from_address))
        else:
            assert smtp is not None
            adapters.append(Smtp(smtp.host, smtp.port, from_address=from_address, starttls=smtp.starttls,
                                 username=smtp.username, password=smtp.password))
        report = deliver(engine, adapters, campaign=run.campaign, period=run.period,
                         retry=RetryPolicy(attempts=attempts, initial=backoff, maximum=max(backoff, 30.0)),
                         show_progress=show_progress)
        return directory, dict(report.counts), list(report.errors)
    finally:
        engine.dispose()
