"""The documented value syntaxes (docs/import-formats.md, "Value syntax"), checked before a row reaches
the record models.

The record models are shared with the scenario format and are lenient in ways an import must not be:
pydantic reads a bare integer as a Unix timestamp (``0``, ``00000000``, ``"at": 20240501`` would become
1970 dates), takes ``nan`` and ``inf`` as numbers, and knows nothing of the store's column ranges. So
every value of a row goes through :func:`check_value` for its field's type first:

* text values are trimmed for every type (dates, booleans, enums as well as text);
* a date is ``YYYY-MM-DD`` and a date-time is ISO 8601 with dashes (``2024-05-31``,
  ``2024-05-31T09:30:00Z``, ``2024-05-31 09:30+02:00``); a number is never a date, and a date-time that
  falls outside years 1-9999 once moved to UTC is an error of its row;
* a number is finite (``nan``, ``inf``, ``-inf`` and overflowing literals are refused);
* an integer fits its column (32-bit ``INTEGER`` columns hold -2147483648..2147483647);
* text holds no NUL character and no unpaired surrogate (neither can be stored everywhere).

A value that passes is handed to the record model (as the trimmed text, or as the parsed date-time), so
the model's own checks and messages still apply; a value that fails gives a :class:`ValueProblem`
naming what was expected.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}\Z", re.ASCII)
#: the date-time forms we document: a date, then optionally a time (minutes, seconds, fraction), then
#: optionally a zone (Z or an offset)
DATETIME_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?\Z",
    re.ASCII | re.IGNORECASE)
INT_RE = re.compile(r"[+-]?\d+\Z", re.ASCII)
_BAD_TEXT_RE = re.compile("[\x00\ud800-\udfff]")

Checker = Callable[[Any], Any]


class ValueProblem(ValueError):
    """A value does not have its field's documented syntax; the message says what was expected."""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        bad = _BAD_TEXT_RE.search(value)
        if bad is not None:
            what = "a NUL character" if bad.group() == "\x00" else \
                f"an unpaired surrogate (U+{ord(bad.group()):04X}), not valid Unicode"
            raise ValueProblem(f"the text contains {what}")
    return value


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _integer(bounds: tuple[int, int]) -> Checker:
    low, high = bounds

    def check(value: Any) -> Any:
        number: int | None = None
        if isinstance(value, str):
            value = value.strip()
            if INT_RE.match(value):
                if len(value.lstrip("+-").lstrip("0")) > 20:  # far beyond any column
                    raise ValueProblem(f"expected an integer from {low} to {high}, got {_shown(value)}")
                number = int(value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ValueProblem(f"expected a whole number, got {value!r}")
            if value.is_integer():
                number = int(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        if number is not None and not low <= number <= high:
            raise ValueProblem(f"expected an integer from {low} to {high}, got {_shown(value)}")
        return value

    return check


def _number(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        try:
            parsed = float(value)
        except ValueError:
            return value  # not a number at all: the model says so
        if not math.isfinite(parsed):
            raise ValueProblem(f"expected a finite number, got {_shown(value)}")
    elif _is_number(value) or isinstance(value, Decimal):
        try:
            finite = math.isfinite(value)
        except (OverflowError, ValueError):  # an int too large for a float, a signalling NaN
            finite = False
        if not finite:
            raise ValueProblem(f"expected a finite number, got {_shown(value)}")
    return value


def _date(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        if not DATE_RE.match(value):
            raise ValueProblem(f"expected a date as YYYY-MM-DD such as 2024-05-31, got {_shown(value)}")
    elif _is_number(value):
        raise ValueProblem("expected a date as YYYY-MM-DD such as 2024-05-31, got the number "
                           f"{_shown(value)}")
    return value


def to_utc(value: datetime) -> datetime:
    """``value`` in UTC (naive = UTC); :class:`ValueProblem` when UTC leaves years 1-9999."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueProblem(f"the date-time {value.isoformat()} is out of range once moved to UTC "
                           "(years 1 to 9999)") from None


def parse_datetime(text: str) -> datetime:
    """A documented ISO 8601 date or date-time (see the module docstring), in UTC."""
    if not DATETIME_RE.match(text):
        raise ValueProblem(f"expected an ISO 8601 date or date-time such as 2024-05-31T09:30:00Z, "
                           f"got {_shown(text)}")
    iso = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        raise ValueProblem(f"expected an ISO 8601 date or date-time, got {_shown(text)}") from None
    return to_utc(parsed)


def _datetime(value: Any) -> Any:
    if isinstance(value, str):
        return parse_datetime(value.strip())
    if isinstance(value, datetime):
        return to_utc(value)
    if isinstance(value, date):
        return value
    if _is_number(value):
        raise ValueProblem("expected an ISO 8601 date or date-time such as 2024-05-31T09:30:00Z, got the "
                           f"number {_shown(value)}")
    return value


def _list(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_text(v) for v in value]
    return _text(value)


def column_bounds(column: sa.Column[Any] | None) -> tuple[int, int]:
    """The range of an integer column, the same on every store (PostgreSQL's ``integer`` is 32-bit)."""
    if column is not None and isinstance(column.type, sa.Integer) \
            and not isinstance(column.type, sa.BigInteger):
        return INT32
    return INT64


def checker(field_type: str, column: sa.Column[Any] | None = None) -> Checker:
    """The check for one field of type ``field_type`` (see :class:`tactful.ingest.kinds.FieldInfo`)."""
    if field_type == "integer":
        return _integer(column_bounds(column))
    if field_type == "number":
        return _number
    if field_type == "date":
        return _date
    if field_type == "date-time":
        return _datetime
    if field_type == "list":
        return _list
    if field_type == "text":
        return _text
    return _strip  # boolean, enum: trimmed, then the model decides
