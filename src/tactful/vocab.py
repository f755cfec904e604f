"""The vocabulary: data categories and data uses (fideslang + documented Tactful extensions),
and the fixed enumerations of the scenario contract (channels, depths, verdicts, ...).

Unknown keys are errors: :func:`check_category` and :func:`check_use` raise :class:`VocabularyError`
naming the key and the closest known keys.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources

import yaml

from tactful.errors import VocabularyError


class Openness(StrEnum):
    """How personal the customer wants the relationship to be (seed 003), lowest first."""

    CLOSED = "closed"
    RESERVED = "reserved"
    BALANCED = "balanced"
    OPEN = "open"

    @property
    def rank(self) -> int:
        return OPENNESS_ORDER.index(self)


OPENNESS_ORDER: tuple[Openness, ...] = tuple(Openness)


class ContactKind(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    POSTAL = "postal"


class SharedWith(StrEnum):
    """Who else can see what arrives at a contact point, most private first."""

    PRIVATE = "private"
    HOUSEHOLD = "household"
    OTHERS = "others"

    @property
    def rank(self) -> int:
        return SHARED_WITH_ORDER.index(self)


SHARED_WITH_ORDER: tuple[SharedWith, ...] = tuple(SharedWith)


class ConsentStatus(StrEnum):
    GRANTED = "granted"
    DENIED = "denied"
    WITHDRAWN = "withdrawn"


class ConsentSource(StrEnum):
    FORM = "form"
    PORTAL = "portal"
    TCF = "tcf"
    GPC = "gpc"
    IMPORT = "import"
    ADVISOR = "advisor"
    OTHER = "other"


class FactKind(StrEnum):
    PURCHASE = "purchase"
    ATTRIBUTE = "attribute"
    PREFERENCE = "preference"
    EVENT = "event"
    INFERENCE = "inference"


class Origin(StrEnum):
    DECLARED = "declared"
    OBSERVED = "observed"
    INFERRED = "inferred"


class TouchKind(StrEnum):
    OFFER = "offer"
    GREETING = "greeting"
    RECOMMENDATION = "recommendation"
    REMINDER = "reminder"
    SURVEY = "survey"
    SERVICE = "service"
    SHARE = "share"
    ADVISOR_PROMPT = "advisor_prompt"


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    POSTAL_MAIL = "postal_mail"
    POSTCARD = "postcard"
    WEB = "web"
    APP = "app"
    PUSH = "push"
    PHONE = "phone"
    ADVISOR = "advisor"
    PARTNER_EXPORT = "partner_export"


#: Which contact-point kind each channel delivers to (None: no contact point is involved).
CHANNEL_CONTACT_KIND: dict[Channel, ContactKind | None] = {
    Channel.EMAIL: ContactKind.EMAIL,
    Channel.SMS: ContactKind.PHONE,
    Channel.PHONE: ContactKind.PHONE,
    Channel.POSTAL_MAIL: ContactKind.POSTAL,
    Channel.POSTCARD: ContactKind.POSTAL,
    Channel.WEB: None,
    Channel.APP: None,
    Channel.PUSH: None,
    Channel.ADVISOR: None,
    Channel.PARTNER_EXPORT: None,
}


class Depth(StrEnum):
    """How much of what is known a touch shows, lowest first (see docs/scenario-format.md)."""

    NONE = "none"
    SEGMENT = "segment"
    CATEGORY = "category"
    ITEM = "item"
    HISTORY = "history"
    DETAILED_HISTORY = "detailed_history"

    @property
    def rank(self) -> int:
        return DEPTH_ORDER.index(self)


DEPTH_ORDER: tuple[Depth, ...] = tuple(Depth)


class Verdict(StrEnum):
    """Least restrictive first; the most restrictive fired verdict wins."""

    ALLOW = "allow"
    SOFTEN = "soften"
    ASK = "ask"
    BLOCK = "block"

    @property
    def rank(self) -> int:
        return VERDICT_ORDER.index(self)


VERDICT_ORDER: tuple[Verdict, ...] = tuple(Verdict)


class Trigger(StrEnum):
    SCHEDULED = "scheduled"
    REALTIME_BROWSE = "realtime_browse"
    EVENT = "event"
    CUSTOMER_REQUEST = "customer_request"


class Granularity(StrEnum):
    INDIVIDUAL = "individual"
    AGGREGATE = "aggregate"


FACT_SOURCES: tuple[str, ...] = ("web", "pos", "app", "email", "sms", "chat", "voice", "store", "loyalty")
PARTNER_RE = re.compile(r"^partner:[A-Za-z0-9][A-Za-z0-9_.\-]*$")
KEY_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")


_CONTEXT_SEP_RE = re.compile(r"[^0-9a-z]+")


def normalise_context(value: str) -> str:
    """A collection context in its canonical form: case-folded, every run of separators (spaces,
    hyphens, dots, slashes, underscores...) one underscore, none at either end. ``Support Chat``,
    ``support-chat`` and ``SUPPORT_CHAT`` are all ``support_chat``. Aliases: see CONTEXT_ALIASES."""
    words = _CONTEXT_SEP_RE.sub("_", value.casefold()).strip("_")
    return CONTEXT_ALIASES.get(words, words)


#: Documented aliases of collection contexts (docs/vocabulary.md): the common spellings of the
#: contexts the default pack names, mapped onto them.
CONTEXT_ALIASES: dict[str, str] = {
    "customer_service": "support",
    "customer_care": "support",
    "helpdesk": "support",
    "help_desk": "support",
    "service_desk": "support",
    "live_chat": "support_chat",
    "webchat": "support_chat",
    "web_chat": "support_chat",
    "phone_call": "support_call",
    "hotline": "support_call",
    "call_centre": "support_call",
    "call_center": "support_call",
    "contact_centre": "support_call",
    "contact_center": "support_call",
}


def check_fact_source(value: str) -> str:
    """A fact source is one of :data:`FACT_SOURCES` or ``partner:<name>``."""
    if value in FACT_SOURCES or PARTNER_RE.match(value):
        return value
    raise VocabularyError(
        f"unknown fact source {value!r}: expected one of {', '.join(FACT_SOURCES)} or partner:<name>"
    )


def check_sender(value: str) -> str:
    """A sender is ``first_party`` or ``partner:<name>``."""
    if value == "first_party" or PARTNER_RE.match(value):
        return value
    raise VocabularyError(f"unknown sender {value!r}: expected first_party or partner:<name>")


@dataclass(frozen=True, slots=True)
class Term:
    """One key of a taxonomy (a data category or a data use)."""

    key: str
    parent: str | None
    name: str
    description: str
    extension: bool


@dataclass(frozen=True, slots=True)
class Taxonomy:
    """A hierarchy of dotted keys; a key covers itself and every key below it."""

    kind: str
    terms: dict[str, Term]

    def __contains__(self, key: object) -> bool:
        return key in self.terms

    def check(self, key: str) -> str:
        if key in self.terms:
            return key
        close = difflib.get_close_matches(key, list(self.terms), n=3, cutoff=0.6)
        listing = "categories" if self.kind == "data_category" else "uses"
        hint = f"did you mean {', '.join(close)}?" if close else f"see `tactful vocab {listing}`"
        raise VocabularyError(f"unknown {self.kind.replace('_', ' ')} {key!r}", hint=hint)

    def ancestors(self, key: str) -> tuple[str, ...]:
        """The key and every key above it, nearest first."""
        out: list[str] = []
        current: str | None = key
        while current is not None:
            out.append(current)
            term = self.terms.get(current)
            current = term.parent if term else None
        return tuple(out)


def covers(general: str, specific: str) -> bool:
    """True when ``general`` is ``specific`` or one of its ancestors in dotted-key order."""
    return specific == general or specific.startswith(general + ".")


@cache
def _extensions() -> dict[str, list[dict[str, str]]]:
    text = resources.files("tactful").joinpath("vocab_extensions.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def _build(kind: str, fides_terms: list[object], ext_key: str) -> Taxonomy:
    terms: dict[str, Term] = {}
    for item in fides_terms:
        key = str(getattr(item, "fides_key"))  # noqa: B009 - fideslang models are untyped here
        terms[key] = Term(
            key=key,
            parent=getattr(item, "parent_key", None),
            name=str(getattr(item, "name", "") or key),
            description=str(getattr(item, "description", "") or ""),
            extension=False,
        )
    for ext in _extensions().get(ext_key, []):
        parent = ext.get("parent")
        if parent is not None and parent not in terms:
            raise VocabularyError(f"vocab_extensions.yaml: parent {parent!r} of {ext['key']!r} is unknown")
        terms[ext["key"]] = Term(ext["key"], parent, ext["name"], ext.get("description", ""), True)
    return Taxonomy(kind, terms)


@cache
def data_categories() -> Taxonomy:
    """fideslang's default data categories plus Tactful's extensions."""
    from fideslang.default_taxonomy import DEFAULT_TAXONOMY

    return _build("data_category", list(DEFAULT_TAXONOMY.data_category), "data_categories")


@cache
def data_uses() -> Taxonomy:
    """fideslang's default data uses plus Tactful's extensions."""
    from fideslang.default_taxonomy import DEFAULT_TAXONOMY

    return _build("data_use", list(DEFAULT_TAXONOMY.data_use), "data_uses")


@cache
def _parents() -> frozenset[str]:
    return frozenset(t.parent for t in data_categories().terms.values() if t.parent is not None)


def has_subkeys(key: str) -> bool:
    """A data category with keys below it (a coarse key such as user.health_and_medical)."""
    return key in _parents()


def check_category(key: str) -> str:
    return data_categories().check(key)


def check_use(key: str) -> str:
    return data_uses().check(key)
