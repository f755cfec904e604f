"""Domain types (no I/O).

Two families live here:

* the **scenario** — the public contract of ``../shared/design/scenario-format.md`` (version 1):
  everything the engine needs to judge one touch for one customer; and the **decision** it returns;
* the **records** the store and the importers hold: Customer, Household, ContactPoint, Consent,
  Product, Order, OrderLine, Fact, TouchRecord.

All models forbid unknown fields and are immutable. Enum values are checked; data categories and data
uses are checked against the vocabulary for records (an import rejects an unknown key), while a
scenario accepts any well-formed key and the evaluator blocks on an unknown one (fail closed, with a
reason), so that one bad fact in a real-time call produces a ``block`` that says why.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from tactful import vocab
from tactful.errors import ScenarioError, VocabularyError
from tactful.vocab import (
    Channel,
    ConsentSource,
    ConsentStatus,
    ContactKind,
    Depth,
    FactKind,
    Granularity,
    Openness,
    Origin,
    SharedWith,
    TouchKind,
    Trigger,
    Verdict,
)

#: The years a date may fall in. A wider range only lets date arithmetic overflow later (``now`` minus
#: a 90-day window in year 1 is not a date), and no customer record predates 1800 or outlives 2999.
MIN_YEAR, MAX_YEAR = 1800, 2999
_DATE_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _out_of_range(value: Any) -> ValueError:
    shown = value.isoformat() if isinstance(value, date) else value
    return ValueError(f"expected a date between the years {MIN_YEAR} and {MAX_YEAR}, got {shown!r}")


def _in_range(moment: datetime, value: Any) -> datetime:
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise _out_of_range(value)
    return moment


def _to_utc(value: Any) -> Any:
    """Dates become midnight UTC; naive datetimes are read as UTC; aware ones are converted.

    Impossible dates (2026-02-30) and dates outside :data:`MIN_YEAR`..:data:`MAX_YEAR` (year 1 or
    9999 with an offset would overflow when moved to UTC) are a ``ValueError`` naming the value, which
    pydantic reports with the field's path."""
    try:
        if isinstance(value, datetime):
            moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
            return _in_range(moment, value)
        if isinstance(value, date):
            return _in_range(datetime.combine(value, time(), tzinfo=UTC), value)
        if isinstance(value, int | float):  # pydantic would read it as Unix seconds: 20240501 -> 1970
            raise ValueError(f"expected an ISO 8601 date or date-time such as 2024-05-31T09:30:00Z, "
                             f"got the number {value!r} (a number is never a date)")
        if isinstance(value, str):
            text = value.strip()
            if text.endswith(("Z", "z")):
                text = text[:-1] + "+00:00"
            try:
                if not _DATE_SHAPE.match(text):  # 20240501, 1700000000, 2024-W01: only YYYY-MM-DD...
                    raise ValueError("not YYYY-MM-DD")
                parsed = datetime.fromisoformat(text)
            except ValueError as exc:
                if _DATE_SHAPE.match(text):  # well-formed but impossible: 2026-02-30, 25:00
                    raise ValueError(f"expected a date and time that exist, got {value!r} ({exc})"
                                     ) from exc
                raise ValueError(f"expected an ISO 8601 date or date-time, got {value!r}") from exc
            moment = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
            return _in_range(moment, value)
    except OverflowError as exc:  # year 1 or 9999 with an offset: not representable in UTC
        raise _out_of_range(value) from exc
    return value


def _key(value: str) -> str:
    if not vocab.KEY_RE.match(value):
        raise ValueError(
            f"expected a dotted lower-case key such as user.behavior.purchase_history, got {value!r}"
        )
    return value


def _context(value: str) -> str:
    words = vocab.normalise_context(value)
    if not words:
        raise ValueError(f"expected a context key such as checkout or support_chat, got {value!r}")
    return words


def _fact_source(value: str) -> str:
    try:
        return vocab.check_fact_source(value)
    except VocabularyError as exc:
        raise ValueError(exc.message) from exc


def _sender(value: str) -> str:
    try:
        return vocab.check_sender(value)
    except VocabularyError as exc:
        raise ValueError(exc.message) from exc


def _known_category(value: str) -> str:
    try:
        return vocab.check_category(value)
    except VocabularyError as exc:
        raise ValueError(str(exc)) from exc


def _known_use(value: str) -> str:
    try:
        return vocab.check_use(value)
    except VocabularyError as exc:
        raise ValueError(str(exc)) from exc


UTCDateTime = Annotated[datetime, BeforeValidator(_to_utc)]
Key = Annotated[str, AfterValidator(_key)]
CategoryKey = Annotated[str, AfterValidator(_known_category)]
UseKey = Annotated[str, AfterValidator(_known_use)]
FactSource = Annotated[str, AfterValidator(_fact_source)]
Sender = Annotated[str, AfterValidator(_sender)]
Id = Annotated[str, Field(min_length=1, max_length=200)]


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False, str_strip_whitespace=True)


# --------------------------------------------------------------------------- the scenario (contract v1)


class ScenarioCustomer(Frozen):
    id: Id
    openness: Openness | None = None
    deceased: bool = False


class ScenarioContactPoint(Frozen):
    id: Id
    kind: ContactKind
    shared_with: SharedWith | None = None  # absent = unknown, treated as household
    verified_at: UTCDateTime | None = None
    bounced: bool = False


class ScenarioConsent(Frozen):
    purpose: Key
    channel: Channel | None = None  # absent = every channel
    status: ConsentStatus
    source: ConsentSource
    at: UTCDateTime | None = None


class ScenarioFact(Frozen):
    id: Id
    kind: FactKind
    category: Key
    implies: tuple[Key, ...] = ()
    label: str | None = None
    origin: Origin
    source: FactSource
    # normalised (case, separators, documented aliases): `Support Chat` is support_chat
    context: Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_context)]
    at: UTCDateTime | None = None
    conversation: Id | None = None  # optional Tactful addition: the conversation it was said in


class ScenarioRecentTouch(Frozen):
    channel: Channel
    purpose: Key
    at: UTCDateTime
    kind: TouchKind | None = None  # optional Tactful addition


#: what a touch's ``to`` holds, and what its ``uses`` and ``shows`` hold (see :class:`TouchFields`)
To = TypeVar("To")
Ref = TypeVar("Ref")


class TouchFields(Frozen, Generic[To, Ref]):
    """The fields of a proposed touch, in the contract's order, shared by the scenario's touch
    (:class:`ScenarioTouch`: ``to`` a contact-point id, ``uses``/``shows`` fact ids) and the touch
    file's (``tactful.realtime.TouchSpec``: a contact-point selector, fact selectors), so the two
    cannot drift apart."""

    kind: TouchKind
    purpose: Key
    channel: Channel
    to: To | None = None
    sender: Sender = "first_party"
    sender_implies: tuple[Key, ...] = ()
    uses: tuple[Ref, ...] = ()
    shows: tuple[Ref, ...] = ()
    shows_implies: tuple[Key, ...] = ()
    depth: Depth = Depth.NONE
    named: bool = False
    trigger: Trigger = Trigger.SCHEDULED
    granularity: Granularity | None = None
    group_size: Annotated[int, Field(ge=0)] | None = None
    conversation: Id | None = None  # optional Tactful addition: the conversation an advisor prompt is in
    requested_channel: Channel | None = None  # optional Tactful addition: the channel the customer asked for


class ScenarioTouch(TouchFields[Id, Id]):
    """The scenario's ``touch``: the recipient and the facts by id."""


class Expectation(Frozen):
    verdict: Verdict
    max_depth: Depth | None = None  # optional Tactful addition: also check the allowed depth
    named: bool | None = None  # optional Tactful addition
    rules: tuple[str, ...] | None = None  # optional Tactful addition: exactly these rules fire


def _unique_ids(section: str) -> Any:
    """An after-validator for a list of records with ``id``: each id at most once. Two facts (or two
    contact points) with one id would let one hide the other (a sensitive fact, a shared address), so
    the scenario is invalid; the message names both positions."""

    def check(items: tuple[Any, ...]) -> tuple[Any, ...]:
        first: dict[str, int] = {}
        for i, item in enumerate(items):
            if item.id in first:
                raise ValueError(f"duplicate id {item.id!r}: {section}[{first[item.id]}] and "
                                 f"{section}[{i}] both use it (ids must be unique within {section})")
            first[item.id] = i
        return items

    return AfterValidator(check)


class Scenario(Frozen):
    version: Literal[1]
    now: UTCDateTime | None = None
    customer: ScenarioCustomer
    contact_points: Annotated[tuple[ScenarioContactPoint, ...], _unique_ids("contact_points")] = ()
    consents: tuple[ScenarioConsent, ...] = ()
    facts: Annotated[tuple[ScenarioFact, ...], _unique_ids("facts")] = ()
    recent_touches: tuple[ScenarioRecentTouch, ...] = ()
    touch: ScenarioTouch
    expect: Expectation | None = None


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(document)"


def validation_errors(exc: ValidationError) -> list[tuple[str, str]]:
    """(field path, what was expected) pairs from a pydantic error, e.g. ``('facts[0].kind', ...)``."""
    out: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (not in the scenario format; see docs/scenario-format.md)"
        elif err["type"] == "literal_error" and loc == ("version",):
            msg = "expected version: 1"
        elif err["type"] == "value_error":
            # our own validators already say what they got; drop pydantic's "Value error, " prefix
            msg = msg.removeprefix("Value error, ")
        elif err["type"] != "missing" and "input" in err and not isinstance(err["input"], dict | list):
            msg = f"{msg}, got {err['input']!r}"
        out.append((_loc(loc), msg))
    return out


def parse_scenario(data: Any, *, source: str = "<scenario>") -> Scenario:
    """Validate a scenario document (already loaded from YAML/JSON); errors name the field path."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: a scenario is a mapping with version, customer and touch",
                            source=source)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        errors = validation_errors(exc)
        lines = "\n".join(f"  {path}: {msg}" for path, msg in errors)
        raise ScenarioError(f"{source}: invalid scenario\n{lines}", errors=errors, source=source) from None


# --------------------------------------------------------------------------- the decision (contract v1)


class Reason(Frozen):
    rule: str
    verdict: Verdict
    message: str
    facts: tuple[str, ...] = ()


class PolicyRef(Frozen):
    name: str
    version: str


class Decision(Frozen):
    verdict: Verdict
    max_depth: Depth
    named: bool
    remedies: tuple[str, ...] = ()
    reasons: tuple[Reason, ...] = ()
    policy: PolicyRef

    def to_json_dict(self) -> dict[str, Any]:
        """The decision exactly as the contract's JSON (enum values as strings, lists not tuples)."""
        return self.model_dump(mode="json")


# --------------------------------------------------------------------------- store records


class Household(Frozen):
    id: Id
    size: Annotated[int, Field(ge=1)] | None = None
    composition: str | None = None
    kids_count: Annotated[int, Field(ge=0)] | None = None
    income: str | None = None
    home_ownership: str | None = None


class Customer(Frozen):
    id: Id
    household_id: Id | None = None
    first_name: str | None = None
    last_name: str | None = None
    birth_date: date | None = None
    age_range: str | None = None
    openness: Openness | None = None  # absent = the policy's default
    deceased: bool = False


class ContactPoint(Frozen):
    id: Id
    customer_id: Id
    kind: ContactKind
    value: Annotated[str, Field(min_length=1)]
    shared_with: SharedWith | None = None  # absent = unknown, treated as household
    verified_at: UTCDateTime | None = None
    bounced: bool = False


class Consent(Frozen):
    id: Id
    customer_id: Id
    purpose: UseKey
    channel: Channel | None = None
    status: ConsentStatus
    source: ConsentSource
    at: UTCDateTime
    evidence: str | None = None  # a form id, a TCF string, a GPC header, an advisor's note


class Product(Frozen):
    id: Id
    name: str | None = None
    department: str | None = None
    category: str | None = None
    subcategory: str | None = None
    brand: str | None = None
    implies: tuple[CategoryKey, ...] = ()  # sensitivity labels: data categories a purchase reveals


class Order(Frozen):
    id: Id
    customer_id: Id
    at: UTCDateTime
    source: FactSource = "pos"
    context: str = "checkout"
    store_id: str | None = None
    total: float | None = None


class OrderLine(Frozen):
    order_id: Id
    line_no: Annotated[int, Field(ge=1)]
    product_id: Id
    quantity: Annotated[float, Field(ge=0)] = 1
    amount: float | None = None


class Fact(Frozen):
    id: Id
    customer_id: Id
    kind: FactKind
    category: CategoryKey
    implies: tuple[CategoryKey, ...] = ()
    label: str | None = None
    value: str | None = None
    origin: Origin
    source: FactSource
    context: Annotated[str, Field(min_length=1, max_length=100)]
    at: UTCDateTime | None = None


class TouchRecord(Frozen):
    """A touch that was sent (the history frequency rules read)."""

    id: Id
    customer_id: Id
    kind: TouchKind
    purpose: UseKey
    channel: Channel
    contact_point_id: Id | None = None
    at: UTCDateTime
    campaign: str | None = None
