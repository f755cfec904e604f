"""The seed personas: hand-planted customers whose data reproduces each seed story.

Each persona has a stable customer id (``persona-...``) and a row in the ``personas`` table; every
row it owns has an id that starts with the customer id. docs/sample-world.md says, per persona, what to
look at and what the default policy should do. The products are real Complete Journey products, picked
by subcategory (the lowest product id of that subcategory), so the sensitivity labels are the real ones.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tactful.errors import SampleError
from tactful.sample.completejourney import Catalogue
from tactful.sample.writer import Chunk

DAY = np.timedelta64(86_400, "s")


@dataclass(frozen=True, slots=True)
class Persona:
    key: str
    customer_id: str
    title: str
    seed: str
    description: str


PERSONAS: tuple[Persona, ...] = (
    Persona(
        "adult-shop-postcard",
        "persona-postcard",
        "The adult-shop postcard",
        "001",
        "Ordered condoms on the web, shipped to her PO box; her home address is seen by the household. "
        "A postcard to the home address that shows or reveals the purchase must be softened to a sealed, "
        "neutral letter (or to the PO box) or blocked.",
    ),
    Persona(
        "pregnancy-family-email",
        "persona-teen",
        "The teenager and the family email",
        "002",
        "A 17-year-old bought a pregnancy test and baby goods; a loyalty model inferred a baby in the "
        "household. Her only email is the family address her father reads (seed 004). The inference may "
        "not drive targeting, and nothing revealing it may go to the shared email.",
    ),
    Persona(
        "diner-partner-sms",
        "persona-diner",
        "The diner and the point-of-sale vendor",
        "000",
        "A restaurant order reached a payments company through the restaurant's point-of-sale vendor "
        "(fact source partner:tablepay, context payment). No third-party-sharing consent, no SMS opt-in: "
        "no SMS marketing about it, no individual export.",
    ),
    Persona(
        "birthday-not-for-marketing",
        "persona-birthday",
        "The birthday given for account security",
        "004",
        "Gave a date of birth to secure the account, never for marketing; the birthday is ten days away. "
        "A birthday greeting or offer must ask first.",
    ),
    Persona(
        "deceased",
        "persona-deceased",
        "The deceased customer",
        "004",
        "Marked deceased; an old imported postal consent and a health purchase remain. Every marketing "
        "touch is suppressed.",
    ),
    Persona(
        "shoe-buyer",
        "persona-shoes",
        "The shoe buyer",
        "004",
        "An open customer who bought three pairs of shoes in five weeks. 'Based on your buying history, "
        "you might like these shoes' is fine; listing each shoe and when is softened.",
    ),
    Persona(
        "aisle-seat",
        "persona-aisle",
        "The aisle-seat preference",
        "002",
        "Declared that she prefers an aisle seat at the store's cooking classes. Apply it quietly in "
        "service touches; never announce it in marketing.",
    ),
    Persona(
        "support-chat-disclosure",
        "persona-chat",
        "The support-chat disclosure",
        "002",
        "Said in a support chat that she missed a delivery because she was in hospital. The fact keeps the "
        "norms of the chat: no later marketing or advisor prompt may use or show it.",
    ),
)
PERSONA_IDS: dict[str, str] = {p.key: p.customer_id for p in PERSONAS}


class _Rows:
    """Row-wise collection turned into column chunks (datetime64 values become datetime columns)."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {}

    def add(self, table: str, **row: Any) -> None:
        self.rows.setdefault(table, []).append(row)

    def chunk(self, table: str) -> Chunk:
        rows = self.rows.get(table, [])
        cols: dict[str, Any] = {}
        names: list[str] = []
        for row in rows:
            names.extend(k for k in row if k not in names)
        for name in names:
            values = [r.get(name) for r in rows]
            present = [v for v in values if v is not None]
            if present and all(isinstance(v, np.datetime64) for v in present):
                unit = "D" if all(np.datetime_data(v.dtype)[0] == "D" for v in present) else "s"
                cols[name] = np.array(
                    [np.datetime64("NaT") if v is None else v for v in values], dtype=f"datetime64[{unit}]"
                )
            elif present and all(isinstance(v, bool) for v in present) and len(present) == len(values):
                cols[name] = np.array(values, dtype=bool)
            else:
                arr = np.empty(len(values), dtype=object)
                arr[:] = values
                cols[name] = arr
        return Chunk(table, cols)


def _product(cat: Catalogue, subcategory: str, nth: int = 0, category: str | None = None) -> tuple[int, str]:
    """The ``nth`` product (by id) of a subcategory (within ``category`` if given), and its implies JSON."""
    mask = cat.subcategory == subcategory
    if category is not None:
        mask &= cat.category == category
    idx = np.flatnonzero(mask)
    if len(idx) <= nth:
        raise SampleError(
            f"the product catalogue has no product #{nth + 1} in subcategory {subcategory!r}",
            hint="the personas need the Complete Journey products",
        )
    i = idx[np.argsort(cat.ids[idx], kind="stable")][nth]
    return int(cat.ids[i]), str(cat.implies_json[i])


def persona_chunks(cat: Catalogue, as_of: np.datetime64) -> list[Chunk]:
    """Every row of every persona, in foreign-key order, plus the ``personas`` rows."""
    r = _Rows()

    def ago(days: float) -> np.datetime64:
        return as_of - np.timedelta64(int(days * 86_400), "s")

    today = as_of.astype("datetime64[D]")

    def customer(cid: str, hh: str, first: str, last: str, **extra: Any) -> None:
        r.add(
            "customers",
            id=cid,
            household_id=hh,
            first_name=first,
            last_name=last,
            birth_date=extra.get("birth_date"),
            age_range=extra.get("age_range"),
            openness=extra.get("openness"),
            deceased=extra.get("deceased", False),
        )

    def contact(
        cid: str,
        suffix: str,
        kind: str,
        value: str,
        shared: str | None,
        verified_days: float | None,
        bounced: bool = False,
    ) -> str:
        cp = f"{cid}-{suffix}"
        r.add(
            "contact_points",
            id=cp,
            customer_id=cid,
            kind=kind,
            value=value,
            shared_with=shared,
            verified_at=None if verified_days is None else ago(verified_days),
            bounced=bounced,
        )
        return cp

    def consent(
        cid: str,
        short: str,
        purpose: str,
        channel: str | None,
        status: str,
        source: str,
        days: float,
        evidence: str,
    ) -> None:
        r.add(
            "consents",
            id=f"{cid}-consent-{short}",
            customer_id=cid,
            purpose=purpose,
            channel=channel,
            status=status,
            source=source,
            at=ago(days),
            evidence=evidence,
        )

    def order(
        cid: str,
        n: int,
        days: float,
        source: str,
        products: Sequence[tuple[int, float]],
        store: str | None = None,
    ) -> str:
        oid = f"{cid}-o{n}"
        total = round(sum(a for _, a in products), 2)
        r.add(
            "orders",
            id=oid,
            customer_id=cid,
            at=ago(days),
            source=source,
            context="checkout",
            store_id=store,
            total=total,
        )
        for i, (pid, amount) in enumerate(products, start=1):
            r.add("order_lines", order_id=oid, line_no=i, product_id=pid, quantity=1.0, amount=amount)
        return oid

    def fact(
        cid: str,
        suffix: str,
        kind: str,
        category: str,
        origin: str,
        source: str,
        context: str,
        days: float,
        label: str,
        value: str | None = None,
        implies: str = "[]",
    ) -> None:
        r.add(
            "facts",
            id=f"{cid}-{suffix}",
            customer_id=cid,
            kind=kind,
            category=category,
            implies=implies,
            label=label,
            value=value,
            origin=origin,
            source=source,
            context=context,
            at=ago(days),
        )

    def household(hid: str, size: int, comp: str, kids: int) -> None:
        r.add(
            "households",
            id=hid,
            size=size,
            composition=comp,
            kids_count=kids,
            income=None,
            home_ownership=None,
        )

    purchase = "user.behavior.purchase_history"

    # 001 — the adult-shop postcard
    cid = "persona-postcard"
    household("persona-hh-postcard", 3, "2 Adults Kids", 1)
    customer(cid, "persona-hh-postcard", "Dana", "Whitfield", age_range="35-44", openness="reserved")
    contact(cid, "email", "email", "dana.whitfield@example.com", "private", 30)
    contact(cid, "home", "postal", "1187 Maple Grove Avenue, Northville, OH 43215", "household", 200)
    pobox = contact(cid, "pobox", "postal", "PO Box 4471, Northville, OH 43216", "private", 25)
    consent(cid, "email", "marketing.communications.email", "email", "granted", "form", 400, "form:signup")
    consent(
        cid, "postal", "marketing.communications.postal", "postal_mail", "granted", "form", 400, "form:signup"
    )
    pid, implies = _product(cat, "PROPHYLACTICS")
    oid = order(cid, 1, 21, "web", [(pid, 12.99)])
    fact(
        cid,
        "f1",
        "purchase",
        purchase,
        "observed",
        "web",
        "checkout",
        21,
        f"Web order {oid}: {cat_name(cat, pid)} (shipped to the PO box)",
        value=oid,
        implies=implies,
    )
    fact(
        cid,
        "f2",
        "preference",
        "user.contact.address",
        "declared",
        "web",
        "checkout",
        21,
        "Ship orders to the PO box, not home",
        value=pobox,
    )

    # 002/004 — the teenager, the pregnancy prediction and the family email
    cid, dad = "persona-teen", "persona-teen-father"
    household("persona-hh-teen", 3, "2 Adults Kids", 1)
    customer(
        cid,
        "persona-hh-teen",
        "Emma",
        "Hollis",
        birth_date=today - np.timedelta64(17 * 365 + 120, "D"),
        openness="balanced",
    )
    customer(dad, "persona-hh-teen", "Mark", "Hollis", age_range="45-54", openness="balanced")
    contact(cid, "email", "email", "hollis.family@example.net", "household", 60)
    contact(dad, "email", "email", "hollis.family@example.net", "household", 60)
    contact(cid, "home", "postal", "52 Birch Lane, Lake Carter, MN 55414", "household", 300)
    consent(cid, "email", "marketing.communications.email", "email", "granted", "form", 700, "form:signup")
    consent(dad, "email", "marketing.communications.email", "email", "granted", "form", 700, "form:signup")
    test_id, test_implies = _product(cat, "PREGNANCY TEST KITS")
    order(cid, 1, 40, "pos", [(test_id, 9.49)], store="367")
    swabs, _ = _product(cat, "COTTON COTTON SWABS", category="BABY HBC")
    vitamins, _ = _product(cat, "VITAMIN - INDIVIDUAL")
    order(cid, 2, 18, "pos", [(swabs, 3.29), (vitamins, 8.99)], store="367")
    fact(
        cid,
        "f1",
        "purchase",
        purchase,
        "observed",
        "pos",
        "checkout",
        40,
        f"In-store order {cid}-o1: {cat_name(cat, test_id)}",
        value=f"{cid}-o1",
        implies=test_implies,
    )
    baby = json.dumps(["user.demographic.household.baby"])
    fact(
        cid,
        "inf-baby",
        "inference",
        "user.demographic.household.baby",
        "inferred",
        "loyalty",
        "analytics",
        10,
        "Predicted: expecting a baby (pregnancy-prediction model on loyalty purchases)",
        value="score=0.87",
        implies=baby,
    )

    # 000 — the diner whose order reached a payments company through the POS vendor
    cid = "persona-diner"
    household("persona-hh-diner", 1, "1 Adult No Kids", 0)
    customer(cid, "persona-hh-diner", "Ravi", "Menon", age_range="25-34", openness="balanced")
    contact(cid, "mobile", "phone", "+1-415-555-0142", "private", 90)
    contact(cid, "email", "email", "ravi.menon@example.org", "private", 90)
    consent(cid, "email", "marketing.communications.email", "email", "granted", "form", 500, "form:checkout")
    fact(
        cid,
        "f1",
        "purchase",
        purchase,
        "observed",
        "partner:tablepay",
        "payment",
        2,
        "Dinner at a restaurant paid through its point-of-sale vendor: 2 pizzas, 1 tiramisu",
        value="54.20",
    )

    # 004 — the birthday given for account security
    cid = "persona-birthday"
    household("persona-hh-birthday", 2, "2 Adults No Kids", 0)
    born = today + np.timedelta64(10, "D") - np.timedelta64(41 * 365 + 10, "D")
    customer(
        cid, "persona-hh-birthday", "Laura", "Brandt", birth_date=born, age_range="35-44", openness="balanced"
    )
    contact(cid, "email", "email", "laura.brandt@example.com", "private", 45)
    consent(
        cid,
        "email",
        "marketing.communications.email",
        "email",
        "granted",
        "portal",
        300,
        "portal:preferences",
    )
    fact(
        cid,
        "dob",
        "attribute",
        "user.demographic.date_of_birth",
        "declared",
        "web",
        "account_security",
        300,
        "Date of birth, asked to secure the account (password recovery)",
        value=str(born),
    )

    # 004 — the deceased customer
    cid = "persona-deceased"
    household("persona-hh-deceased", 1, "1 Adult No Kids", 0)
    customer(cid, "persona-hh-deceased", "Walter", "Greene", age_range="65+", deceased=True, openness=None)
    contact(cid, "home", "postal", "9 Veterans Way, Port Ashby, VA 23601", "household", 6 * 365)
    consent(
        cid,
        "postal",
        "marketing.communications.postal",
        "postal_mail",
        "granted",
        "import",
        7 * 365,
        "import:legacy-crm",
    )
    cane, cane_implies = _product(cat, "CONVALESCENT CARE - CANES")
    oid = order(cid, 1, 400, "pos", [(cane, 24.99)], store="311")
    fact(
        cid,
        "f1",
        "purchase",
        purchase,
        "observed",
        "pos",
        "checkout",
        400,
        f"In-store order {oid}: {cat_name(cat, cane)}",
        value=oid,
        implies=cane_implies,
    )

    # 004 — the shoe buyer
    cid = "persona-shoes"
    household("persona-hh-shoes", 2, "2 Adults No Kids", 0)
    customer(cid, "persona-hh-shoes", "John", "Carter", age_range="45-54", openness="open")
    contact(cid, "email", "email", "john.carter@example.com", "private", 20)
    consent(
        cid,
        "email",
        "marketing.communications.email",
        "email",
        "granted",
        "portal",
        200,
        "portal:preferences",
    )
    consent(cid, "personalize", "personalize.content", None, "granted", "portal", 200, "portal:preferences")
    for n, (days, nth) in enumerate(((35, 0), (14, 1), (7, 2)), start=1):
        shoe, shoe_implies = _product(cat, "SPECIALTY FOOTWEAR", nth)
        oid = order(cid, n, days, "web", [(shoe, 39.99)])
        fact(
            cid,
            f"f{n}",
            "purchase",
            purchase,
            "observed",
            "web",
            "checkout",
            days,
            f"Web order {oid}: {cat_name(cat, shoe)}",
            value=oid,
            implies=shoe_implies,
        )

    # 002 — the aisle-seat preference
    cid = "persona-aisle"
    household("persona-hh-aisle", 1, "1 Adult No Kids", 0)
    customer(cid, "persona-hh-aisle", "Mei", "Tanaka", age_range="25-34", openness="reserved")
    contact(cid, "email", "email", "mei.tanaka@example.org", "private", 60)
    consent(cid, "email", "marketing.communications.email", "email", "granted", "form", 250, "form:signup")
    fact(
        cid,
        "pref-seat",
        "preference",
        "user.account.settings",
        "declared",
        "web",
        "account_settings",
        90,
        "Seat preference for cooking-class bookings",
        value="aisle",
    )

    # 002 — the support-chat disclosure
    cid = "persona-chat"
    household("persona-hh-chat", 2, "2 Adults No Kids", 0)
    customer(cid, "persona-hh-chat", "Sofia", "Alvarez", age_range="55-64", openness="balanced")
    contact(cid, "email", "email", "sofia.alvarez@example.com", "private", 100)
    consent(
        cid,
        "email",
        "marketing.communications.email",
        "email",
        "granted",
        "advisor",
        150,
        "advisor:call-note",
    )
    fact(
        cid,
        "chat-hospital",
        "attribute",
        "user.content.private",
        "declared",
        "chat",
        "support",
        12,
        "Said in a support chat that she missed a delivery because she was in hospital",
        implies=json.dumps(["user.health_and_medical"]),
    )

    for p in PERSONAS:
        r.add(
            "personas",
            key=p.key,
            customer_id=p.customer_id,
            title=p.title,
            seed=p.seed,
            description=p.description,
        )
    order_of = (
        "households",
        "customers",
        "contact_points",
        "consents",
        "orders",
        "order_lines",
        "facts",
        "personas",
    )
    return [r.chunk(t) for t in order_of]


def cat_name(cat: Catalogue, product_id: int) -> str:
    """A product's display name (derived from its subcategory in the Complete Journey)."""
    idx = cat.index_of(np.array([product_id], dtype=np.int64))[0]
    name = cat.chunk.columns["name"][idx]
    return str(name) if name else str(product_id)


def verify_personas(engine: Any) -> list[str]:
    """Check that every persona is in the store with the data its seed story needs; returns the problems
    (empty when all is well). Used by the tests and handy after editing a store by hand."""
    import sqlalchemy as sa

    from tactful.store import tables as t

    problems: list[str] = []

    def need(ok: bool, persona: str, what: str) -> None:
        if not ok:
            problems.append(f"{persona}: {what}")

    with engine.connect() as conn:
        rows = {r.key: r for r in conn.execute(sa.select(t.personas))}
        for p in PERSONAS:
            row = rows.get(p.key)
            need(
                row is not None and row.customer_id == p.customer_id and row.seed == p.seed,
                p.key,
                "personas row missing or wrong",
            )
            need(
                conn.execute(sa.select(t.customers.c.id).where(t.customers.c.id == p.customer_id)).first()
                is not None,
                p.key,
                f"customer {p.customer_id} missing",
            )

        def facts(cid: str) -> list[Any]:
            return list(conn.execute(sa.select(t.facts).where(t.facts.c.customer_id == cid)))

        def contacts(cid: str) -> list[Any]:
            return list(
                conn.execute(sa.select(t.contact_points).where(t.contact_points.c.customer_id == cid))
            )

        def consents(cid: str) -> list[Any]:
            return list(conn.execute(sa.select(t.consents).where(t.consents.c.customer_id == cid)))

        def bought(cid: str) -> list[Any]:
            q = (
                sa.select(t.orders.c.id, t.orders.c.at, t.products.c.subcategory, t.products.c.implies)
                .select_from(
                    t.orders.join(t.order_lines, t.order_lines.c.order_id == t.orders.c.id).join(
                        t.products, t.products.c.id == t.order_lines.c.product_id
                    )
                )
                .where(t.orders.c.customer_id == cid)
            )
            return list(conn.execute(q))

        cid = PERSONA_IDS["adult-shop-postcard"]
        need(
            any("user.sexual_life" in (r.implies or []) for r in bought(cid)),
            cid,
            "no order of a product implying user.sexual_life",
        )
        cps = contacts(cid)
        need(
            any(
                c.kind == "postal" and c.value.startswith("PO Box") and c.shared_with == "private"
                for c in cps
            ),
            cid,
            "no private PO box",
        )
        need(
            any(c.kind == "postal" and c.shared_with == "household" for c in cps),
            cid,
            "no home address shared with the household",
        )

        cid = PERSONA_IDS["pregnancy-family-email"]
        need(
            any(
                f.kind == "inference"
                and f.origin == "inferred"
                and f.category == "user.demographic.household.baby"
                for f in facts(cid)
            ),
            cid,
            "no inferred baby fact",
        )
        need(
            any("user.health_and_medical.reproductive" in (r.implies or []) for r in bought(cid)),
            cid,
            "no pregnancy-test purchase",
        )
        emails = [c for c in contacts(cid) if c.kind == "email" and c.shared_with == "household"]
        shared_by = 0
        if emails:
            shared_by = int(
                conn.execute(
                    sa.select(sa.func.count(sa.distinct(t.contact_points.c.customer_id))).where(
                        t.contact_points.c.value == emails[0].value
                    )
                ).scalar_one()
            )
        need(shared_by >= 2, cid, "no family email shared with another customer of the household")

        cid = PERSONA_IDS["diner-partner-sms"]
        need(
            any(f.source.startswith("partner:") and f.context == "payment" for f in facts(cid)),
            cid,
            "no partner fact collected in a payment",
        )
        granted = {c.purpose for c in consents(cid) if c.status == "granted"}
        need(not any(g.startswith("third_party_sharing") for g in granted), cid, "has a third-party consent")
        need(
            "marketing.communications.sms" not in granted and "marketing.communications" not in granted,
            cid,
            "has an SMS opt-in",
        )

        cid = PERSONA_IDS["birthday-not-for-marketing"]
        need(
            any(
                f.category == "user.demographic.date_of_birth"
                and f.origin == "declared"
                and f.context == "account_security"
                for f in facts(cid)
            ),
            cid,
            "no declared date of birth",
        )

        cid = PERSONA_IDS["deceased"]
        need(
            conn.execute(sa.select(t.customers.c.deceased).where(t.customers.c.id == cid)).scalar() is True,
            cid,
            "not marked deceased",
        )

        cid = PERSONA_IDS["shoe-buyer"]
        shoes = {r.id for r in bought(cid) if r.subcategory and "FOOTWEAR" in r.subcategory}
        need(len(shoes) >= 3, cid, f"{len(shoes)} shoe orders, expected 3")

        cid = PERSONA_IDS["aisle-seat"]
        need(
            any(f.kind == "preference" and f.origin == "declared" and f.value == "aisle" for f in facts(cid)),
            cid,
            "no declared aisle-seat preference",
        )

        cid = PERSONA_IDS["support-chat-disclosure"]
        need(
            any(f.source == "chat" and f.context == "support" and f.origin == "declared" for f in facts(cid)),
            cid,
            "no support-chat disclosure",
        )
    return problems
