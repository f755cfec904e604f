"""Generated people: names, contact points, consents, openness and web/chat/call events, vectorised.

Used for both worlds: the Complete Journey households (real purchases, generated identities) and the
synthetic ones. Every draw comes from the NumPy generator passed in, so a world is a pure function of
its seed. Rates are documented in docs/sample-world.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tactful.sample.words import EMAIL_DOMAIN_P, EMAIL_DOMAINS, PLACE_VARIANTS, words
from tactful.sample.writer import Chunk

DAY = np.timedelta64(1, "D")
SECOND = np.timedelta64(1, "s")
YEAR_S = 365 * 86_400

AGE_RANGES = np.array(["19-24", "25-34", "35-44", "45-54", "55-64", "65+"], dtype=object)
AGE_RANGE_P = np.array([0.06, 0.17, 0.24, 0.28, 0.13, 0.12])
AGE_BOUNDS = {
    "19-24": (19, 24),
    "25-34": (25, 34),
    "35-44": (35, 44),
    "45-54": (45, 54),
    "55-64": (55, 64),
    "65+": (65, 88),
}
OPENNESS = np.array(["closed", "reserved", "balanced", "open", None], dtype=object)
OPENNESS_P = np.array([0.08, 0.22, 0.35, 0.15, 0.20])
DECEASED_RATE = 0.003

# (short id, purpose, channel, share of customers with a record, status p (granted, denied,
# withdrawn), sources, source p). Ordered by short id so consent ids ascend within a customer.
CONSENT_PLAN: tuple[
    tuple[str, str, str | None, float, tuple[float, float, float], tuple[str, ...], tuple[float, ...]], ...
] = (
    (
        "email",
        "marketing.communications.email",
        "email",
        0.60,
        (0.75, 0.10, 0.15),
        ("form", "portal", "import", "advisor"),
        (0.5, 0.2, 0.2, 0.1),
    ),
    ("personalize", "personalize.content", None, 0.40, (0.70, 0.30, 0.0), ("tcf", "portal"), (0.6, 0.4)),
    (
        "postal",
        "marketing.communications.postal",
        "postal_mail",
        0.35,
        (0.80, 0.12, 0.08),
        ("form", "import", "portal"),
        (0.4, 0.5, 0.1),
    ),
    ("sharing", "third_party_sharing", None, 0.20, (0.25, 0.75, 0.0), ("gpc", "form"), (0.6, 0.4)),
    (
        "sms",
        "marketing.communications.sms",
        "sms",
        0.30,
        (0.60, 0.30, 0.10),
        ("form", "portal", "advisor"),
        (0.5, 0.3, 0.2),
    ),
)
STATUSES = np.array(["granted", "denied", "withdrawn"], dtype=object)
EVIDENCE = {
    "form": "form:signup",
    "portal": "portal:preferences",
    "tcf": "tcf:CPsample0AAAAAAENAENCQAAAAAAAAAAAAAA",
    "gpc": "Sec-GPC: 1",
    "import": "import:legacy-crm",
    "advisor": "advisor:call-note",
}

CHAT_LABELS = np.array(
    [
        "Support chat about a late delivery",
        "Support chat about a refund",
        "Support chat about a damaged item",
        "Support chat about the loyalty card",
    ],
    dtype=object,
)
CALL_LABELS = np.array(
    [
        "Call to customer service about an order",
        "Call about a price mismatch",
        "Call to update account details",
    ],
    dtype=object,
)


@dataclass(frozen=True, slots=True)
class PeopleSpec:
    """Who to generate: one entry per customer, households given by index."""

    customer_ids: np.ndarray  # int64 or object (str)
    household_index: np.ndarray  # int, index into household_ids
    household_ids: np.ndarray
    household_size: np.ndarray  # per household, >= 1
    age_range: np.ndarray  # per customer, object (str or None)


def id_strings(ids: np.ndarray, suffix: str) -> np.ndarray:
    return np.array([f"{x}{suffix}" for x in ids.tolist()], dtype=object)


def as_text(ids: np.ndarray) -> np.ndarray:
    """Ids as an object array of str (to build derived ids with one C-level concatenation each)."""
    return np.array([str(x) for x in ids.tolist()], dtype=object)


_EVENT_SUFFIX = np.array([f"-ev{j}" for j in range(5)], dtype=object)
_SHARED_BY_FLAG = np.array(["private", "household"], dtype=object)


def choice_p(rng: np.random.Generator, p: Sequence[float] | np.ndarray, n: int) -> np.ndarray:
    """``n`` indices drawn with probabilities ``p`` (one uniform draw each; faster than Generator.choice)."""
    cdf = np.cumsum(np.asarray(p, dtype=np.float64))
    cdf /= cdf[-1]
    r = rng.random(n)
    if len(cdf) <= 6:  # a few comparisons beat a binary search
        out: np.ndarray = np.zeros(n, dtype=np.intp)
        for edge in cdf[:-1].tolist():
            out += r >= edge
        return out
    found: np.ndarray = np.searchsorted(cdf[:-1], r, side="right")
    return found


_NUMBERS = np.array([str(i) for i in range(100)], dtype=object)
_NUMBERS_OR_EMPTY = np.array(["", *[str(i) for i in range(1, 100)]], dtype=object)
_STREET_NUMBERS = np.array([f"{i} " for i in range(10_000)], dtype=object)
_AREA = np.array([f"+1-{a}-555-01" for a in range(201, 990)], dtype=object)
_LINE = np.array([f"{b:02d}" for b in range(100)], dtype=object)


def _phones(rng: np.random.Generator, n: int) -> np.ndarray:
    """Fictional numbers: +1-AAA-555-01XX (the 555-0100..0199 range is reserved for fiction)."""
    numbers: np.ndarray = _AREA[rng.integers(0, len(_AREA), size=n)] + _LINE[rng.integers(0, 100, size=n)]
    return numbers


def _pick(rng: np.random.Generator, values: np.ndarray, p: np.ndarray, n: int) -> np.ndarray:
    picked: np.ndarray = values[choice_p(rng, p, n)]
    return picked


def _ago(rng: np.random.Generator, as_of: np.datetime64, n: int, lo_s: int, hi_s: int) -> np.ndarray:
    return as_of - rng.integers(lo_s, hi_s, size=n).astype("timedelta64[s]")


def _verified(rng: np.random.Generator, as_of: np.datetime64, n: int) -> np.ndarray:
    """Mostly verified within two years; 7% stale (verified 4-9 years ago); 8% never verified."""
    state = rng.random(n)
    out = _ago(rng, as_of, n, 86_400, 2 * YEAR_S)
    stale = state < 0.07
    out[stale] = _ago(rng, as_of, int(stale.sum()), 4 * YEAR_S, 9 * YEAR_S)
    out[(state >= 0.07) & (state < 0.15)] = np.datetime64("NaT")
    return out


def _shared(rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    """Overlay 2% 'others' and 5% unknown (NULL) on a private/household assignment."""
    out = base.copy()
    r = rng.random(len(out))
    out[r < 0.02] = "others"
    out[(r >= 0.02) & (r < 0.07)] = None
    return out


def sample_age_ranges(rng: np.random.Generator, n: int) -> np.ndarray:
    return _pick(rng, AGE_RANGES, AGE_RANGE_P, n)


def generate_people(
    rng: np.random.Generator,
    spec: PeopleSpec,
    as_of: np.datetime64,
    browse_categories: np.ndarray,
    browse_implies: np.ndarray,
) -> list[Chunk]:
    """Customers, contact points, consents and event facts for ``spec``.

    ``browse_categories`` / ``browse_implies`` (JSON text) are the product categories a web visit can
    look at and what viewing them implies (the sensitivity mapping applied to the category).
    """
    w = words()
    n = len(spec.customer_ids)
    cid_text = as_text(spec.customer_ids)
    h = len(spec.household_ids)
    hidx = spec.household_index
    hsize = spec.household_size[hidx]
    as_of_day = as_of.astype("datetime64[D]")

    # --- customers -------------------------------------------------------------------------------
    female = rng.random(n) < 0.5
    fi = choice_p(rng, w.first_female_p, n)
    mi = choice_p(rng, w.first_male_p, n)
    first = np.where(female, w.first_female[fi], w.first_male[mi])
    first_lower = np.where(female, w.first_female_lower[fi], w.first_male_lower[mi])
    hh_li = choice_p(rng, w.last_p, h)
    li = hh_li[hidx]
    own = rng.random(n) < 0.2
    li[own] = choice_p(rng, w.last_p, int(own.sum()))
    last = w.last[li]
    ages = spec.age_range
    lo = np.full(n, 25, dtype=np.int64)
    hi = np.full(n, 75, dtype=np.int64)
    for age_label, (a_lo, a_hi) in AGE_BOUNDS.items():
        match = ages == age_label
        lo[match] = a_lo
        hi[match] = a_hi
    age_days = (rng.integers(lo, hi + 1) * 365.25 + rng.integers(0, 365, size=n)).astype(np.int64)
    birth = as_of_day - age_days.astype("timedelta64[D]")
    birth[rng.random(n) >= 0.4] = np.datetime64("NaT")
    openness = _pick(rng, OPENNESS, OPENNESS_P, n)
    deceased = rng.random(n) < DECEASED_RATE
    customers = Chunk(
        "customers",
        {
            "id": spec.customer_ids,
            "household_id": spec.household_ids[hidx],
            "first_name": first,
            "last_name": last,
            "birth_date": birth,
            "age_range": ages,
            "openness": openness,
            "deceased": deceased,
        },
    )

    # --- contact points ------------------------------------------------------------------------------
    hh_city = choice_p(rng, w.city_p, h)
    hh_place = w.places[hh_city * PLACE_VARIANTS + rng.integers(0, PLACE_VARIANTS, size=h)]
    hh_home = (
        _STREET_NUMBERS[rng.integers(1, len(_STREET_NUMBERS), size=h)] + w.last[choice_p(rng, w.last_p, h)]
    ) + (w.street_suffixes_sep[rng.integers(0, len(w.street_suffixes), size=h)] + hh_place)
    hh_email = (
        (w.last_lower[hh_li] + ".family")
        + (_NUMBERS[rng.integers(1, 100, size=h)] + "@")
        + _pick(rng, EMAIL_DOMAINS, EMAIL_DOMAIN_P, h)
    )
    hh_landline = _phones(rng, h)
    multi = hsize >= 2

    parts: list[dict[str, np.ndarray]] = []
    # email: a personal address, or (in households of two or more) the family's shared one
    has = rng.random(n) < 0.92
    family = has & multi & (rng.random(n) < 0.3)
    num = np.where(rng.random(n) < 0.5, 0, rng.integers(1, 100, size=n))
    dom = _pick(rng, EMAIL_DOMAINS, EMAIL_DOMAIN_P, n)
    value = hh_email[hidx]
    own_mail = np.flatnonzero(has & ~family)
    value[own_mail] = (
        ((first_lower[own_mail] + ".") + w.last_lower[li[own_mail]])
        + (_NUMBERS_OR_EMPTY[num[own_mail]] + "@")
        + dom[own_mail]
    )
    shared = _shared(rng, _SHARED_BY_FLAG[family.astype(np.intp)])
    shared[family] = "household"
    parts.append(_cp(rng, spec.customer_ids, cid_text, has, "-email", "email", value, shared, as_of, 0.03))
    # postal: the household's home address, and for a few a PO box
    has = rng.random(n) < 0.90
    shared = _shared(rng, _SHARED_BY_FLAG[multi.astype(np.intp)])
    parts.append(
        _cp(rng, spec.customer_ids, cid_text, has, "-home", "postal", hh_home[hidx], shared, as_of, 0.01)
    )
    # phone: a mobile, or the household's landline
    has = rng.random(n) < 0.75
    landline = multi & (rng.random(n) < 0.2)
    value = hh_landline[hidx]
    mobile = np.flatnonzero(has & ~landline)
    value[mobile] = _phones(rng, len(mobile))
    shared = _shared(rng, _SHARED_BY_FLAG[landline.astype(np.intp)])
    shared[landline] = "household"
    parts.append(_cp(rng, spec.customer_ids, cid_text, has, "-phone", "phone", value, shared, as_of, 0.02))
    has = rng.random(n) < 0.015
    box = np.full(n, None, dtype=object)
    boxed = np.flatnonzero(has)
    box[boxed] = np.array(
        [
            f"PO Box {b}, {place}"
            for b, place in zip(
                rng.integers(100, 99999, size=len(boxed)).tolist(),
                hh_place[hidx[boxed]].tolist(),
                strict=True,
            )
        ],
        dtype=object,
    )
    parts.append(
        _cp(
            rng,
            spec.customer_ids,
            cid_text,
            has,
            "-pobox",
            "postal",
            box,
            np.full(n, "private", dtype=object),
            as_of,
            0.0,
        )
    )
    contact_points = Chunk("contact_points", _interleave(parts))

    # --- consents -----------------------------------------------------------------------------------
    cparts: list[dict[str, np.ndarray]] = []
    for short, purpose, channel, share, status_p, sources, source_p in CONSENT_PLAN:
        has = rng.random(n) < share
        k = int(has.sum())
        src_idx = choice_p(rng, source_p, k)
        src = np.array(sources, dtype=object)[src_idx]
        evidence = np.array([EVIDENCE[x] for x in sources], dtype=object)
        status = STATUSES[choice_p(rng, status_p, k)]
        status[src == "gpc"] = "denied"  # a Global Privacy Control signal only ever says no
        idx = np.flatnonzero(has)
        cparts.append(
            {
                "_order": idx,
                "id": cid_text[idx] + f"-consent-{short}",
                "customer_id": spec.customer_ids[idx],
                "purpose": np.full(k, purpose, dtype=object),
                "channel": np.full(k, channel, dtype=object),
                "status": status,
                "source": src,
                "at": _ago(rng, as_of, k, 3_600, 3 * YEAR_S),
                "evidence": evidence[src_idx],
            }
        )
    consents = Chunk("consents", _interleave(cparts))

    # --- event facts (web, chat, voice) -----------------------------------------------------------------
    counts = np.minimum(rng.poisson(1.0, size=n), 4)
    total = int(counts.sum())
    cust = np.repeat(np.arange(n), counts)
    starts = np.cumsum(counts) - counts
    k = np.arange(total) - np.repeat(starts, counts)
    kind = choice_p(rng, (0.5, 0.1, 0.2, 0.2), total)
    source = np.array(["web", "web", "chat", "voice"], dtype=object)[kind]
    context = np.array(["browse", "search", "support", "support_call"], dtype=object)[kind]
    category = np.array(
        [
            "user.behavior.browsing_history",
            "user.behavior.search_history",
            "user.content.private",
            "user.content.private",
        ],
        dtype=object,
    )[kind]
    browse_pick = rng.integers(0, len(browse_categories), size=total)
    label = np.empty(total, dtype=object)
    implies = np.full(total, "[]", dtype=object)
    is_browse = kind == 0
    browse_labels = np.array([f"Browsed {c.title()}" for c in browse_categories.tolist()], dtype=object)
    label[is_browse] = browse_labels[browse_pick[is_browse]]
    implies[is_browse] = browse_implies[browse_pick[is_browse]]
    label[kind == 1] = "Searched the shop"
    label[kind == 2] = CHAT_LABELS[rng.integers(0, len(CHAT_LABELS), size=int((kind == 2).sum()))]
    label[kind == 3] = CALL_LABELS[rng.integers(0, len(CALL_LABELS), size=int((kind == 3).sum()))]
    facts = Chunk(
        "facts",
        {
            "id": cid_text[cust] + _EVENT_SUFFIX[k],
            "customer_id": spec.customer_ids[cust],
            "kind": np.full(total, "event", dtype=object),
            "category": category,
            "implies": implies,
            "label": label,
            "value": np.full(total, None, dtype=object),
            "origin": np.full(total, "observed", dtype=object),
            "source": source,
            "context": context,
            "at": _ago(rng, as_of, total, 60, 120 * 86_400),
        },
    )
    return [customers, contact_points, consents, facts]


def _cp(
    rng: np.random.Generator,
    customer_ids: np.ndarray,
    cid_text: np.ndarray,
    has: np.ndarray,
    suffix: str,
    kind: str,
    value: np.ndarray,
    shared: np.ndarray,
    as_of: np.datetime64,
    bounce_rate: float,
) -> dict[str, np.ndarray]:
    idx = np.flatnonzero(has)
    k = len(idx)
    return {
        "_order": idx,
        "id": cid_text[idx] + suffix,
        "customer_id": customer_ids[idx],
        "kind": np.full(k, kind, dtype=object),
        "value": value[idx],
        "shared_with": shared[idx],
        "verified_at": _verified(rng, as_of, k),
        "bounced": rng.random(k) < bounce_rate,
    }


def _interleave(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate per-kind rows (kind by kind; the order of rows does not matter to the store)."""
    keys = [k for k in parts[0] if k != "_order"]
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def inference_facts(
    customer_ids: np.ndarray, baby_lines: np.ndarray, last_seen: np.ndarray, threshold: int = 3
) -> Chunk:
    """A loyalty model's inference: customers with ``threshold`` or more baby-goods purchase lines are
    predicted to have a baby in the household (seed 002). Origin inferred, never declared."""
    idx = np.flatnonzero(baby_lines >= threshold)
    k = len(idx)
    return Chunk(
        "facts",
        {
            "id": id_strings(customer_ids[idx], "-inf-baby"),
            "customer_id": customer_ids[idx],
            "kind": np.full(k, "inference", dtype=object),
            "category": np.full(k, "user.demographic.household.baby", dtype=object),
            "implies": np.full(k, json.dumps(["user.demographic.household.baby"]), dtype=object),
            "label": np.full(k, "Predicted: a baby in the household (loyalty model)", dtype=object),
            "value": np.array(
                [f"score={min(0.99, 0.5 + 0.05 * int(b)):.2f}" for b in baby_lines[idx].tolist()],
                dtype=object,
            ),
            "origin": np.full(k, "inferred", dtype=object),
            "source": np.full(k, "loyalty", dtype=object),
            "context": np.full(k, "analytics", dtype=object),
            "at": last_seen[idx],
        },
    )
