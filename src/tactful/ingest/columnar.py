"""Validation a column at a time: the importer's fast path.

A batch of mapped rows is turned into one column per record field, and each column is checked as a
whole (Arrow compute and NumPy) against a deliberately *narrow* form of its field's syntax: plain text
with no surrounding spaces and the right length, integers and decimals in their simplest spelling and
range, dates and date-times in the common ISO 8601 shapes with valid calendar values. A value in that
form is converted to its database value in the same vectorised step. Low-cardinality fields (enums,
booleans, vocabulary keys, fact sources) and values that are not text (JSON numbers, Parquet
timestamps, constants of a mapping) are validated one *distinct* value at a time by the field's own
pydantic validator and remembered.

Every row with a value the fast check does not accept (for any reason: a bad value, an unusual but
valid spelling, a missing required field) is *flagged* and goes through the per-row record model, as
it always did, so it gets exactly the same error message, or is imported with exactly the values the
model gives. The fast check never accepts a value the record model would refuse, and never converts a
value differently: tests/test_ingest_columnar.py checks both on generated values and by importing the
same broken files both ways.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any, Union, get_args, get_origin

import annotated_types as at
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, TypeAdapter
from pydantic.fields import FieldInfo
from sqlalchemy.engine import Dialect

from tactful import model
from tactful.ingest.kinds import KindSpec, Target
from tactful.ingest.values import INT32, ValueProblem, column_bounds
from tactful.store.repo import db_value

BAD: Any = object()  # a value the fast path does not accept (its row goes through the model)
DISTINCT_LIMIT = 50_000  # distinct values remembered per field (bounded memory)
_VALIDATION_ERRORS = (ValueError, TypeError, ArithmeticError, RecursionError)

#: characters that may be stripped by ``str.strip`` (a superset: every Unicode white space, control
#: characters, and a few format characters); text starting or ending with one is left to the model
_EDGE = r"[\x{0}-\x{20}\x{7f}-\x{a0}\x{1680}\x{180e}\x{2000}-\x{200b}\x{2028}\x{2029}\x{202f}\x{205f}" \
        r"\x{3000}\x{feff}]"
_TEXT_SUSPECT = f"^{_EDGE}|{_EDGE}$|\\x{{0}}"
_INT_RE = r"^(0|-?[1-9][0-9]{0,8})$"  # at most 9 digits: always within 32 bits
_FLOAT_RE = r"^-?(0|[1-9][0-9]{0,14})(\.[0-9]{1,15})?$"

_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
_US_PER_DAY = 86_400_000_000


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """(base type, constraints) of a field annotation: Optional and Annotated removed."""
    metadata: list[Any] = []
    ann = annotation
    for _ in range(4):
        if get_origin(ann) in (Union, types.UnionType):
            args = [a for a in get_args(ann) if a is not type(None)]
            if len(args) != 1:
                return ann, metadata
            ann = args[0]
        elif get_origin(ann) is Annotated:
            base, *extra = get_args(ann)
            for item in extra:
                if isinstance(item, FieldInfo):
                    metadata.extend(item.metadata)
                else:
                    metadata.append(item)
            ann = base
        else:
            break
    return ann, metadata


def _bounds(metadata: list[Any]) -> tuple[dict[str, Any], bool]:
    """The length and range constraints, and whether there was anything else (a validator)."""
    out: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, at.MinLen):
            out["min_len"] = item.min_length
        elif isinstance(item, at.MaxLen):
            out["max_len"] = item.max_length
        elif isinstance(item, at.Ge | at.Gt | at.Le | at.Lt):
            for name in ("ge", "gt", "le", "lt"):
                if hasattr(item, name):
                    out[name] = getattr(item, name)
        else:
            return out, True
    return out, False


def _only_to_utc(metadata: list[Any]) -> bool:
    """Whether a date-time field's only validator is the model's ``_to_utc`` (mirrored by
    :func:`_parse_iso`, with its year range)."""
    validators = [m for m in metadata if not isinstance(m, at.BaseMetadata)]
    return len(validators) == 1 and getattr(validators[0], "func", None) is model._to_utc


class FieldColumn:
    """One record field of one target: checks a column of raw values, gives their database values."""

    def __init__(self, spec: KindSpec, target: Target, record_field: str, dialect: Dialect) -> None:
        info = target.model.model_fields[record_field]
        self.row_field = target.row_field(record_field)
        self.required = info.is_required()
        self.sqlite = dialect.name == "sqlite"
        column = target.table.c[record_field]
        self.processor: Callable[[Any], Any] | None = column.type._cached_bind_processor(dialect)
        self.default: Any = BAD
        if not self.required:
            self.default = self._process(db_value(info.get_default(call_default_factory=True)))
        self.check = spec.checkers[self.row_field]
        config = ConfigDict(str_strip_whitespace=bool(target.model.model_config.get("str_strip_whitespace")))
        self.adapter: TypeAdapter[Any] = TypeAdapter(Annotated[info.annotation, info], config=config)
        base, metadata = _unwrap(info.annotation)
        bounds, other = _bounds([*info.metadata, *metadata])
        self.bounds = bounds
        field_type = spec.field_info(self.row_field).type  # type: ignore[union-attr]
        self.mode = "distinct"
        if field_type == "text" and base is str and not other:
            self.mode = "text"
        elif field_type == "integer" and base is int and not other:
            self.mode = "integer"
            low, high = column_bounds(column)
            if (low, high) != INT32:  # pragma: no cover - every integer column is 32-bit today
                self.mode = "distinct"
        elif field_type == "number" and base is float and not other:
            self.mode = "number"
        elif field_type == "date" and base is date and not other:
            self.mode = "date"
        elif field_type == "date-time" and base is datetime and _only_to_utc([*info.metadata, *metadata]):
            self.mode = "date-time"  # the model's only validator is _to_utc, which the check mirrors
        if self.mode in ("text", "integer") and self.processor is not None:
            self.mode = "distinct"  # a store type that converts the value: leave it to the validator
        self.distinct: dict[tuple[type, Any], Any] = {}

    def _process(self, value: Any) -> Any:
        if value is None or self.processor is None:
            return value
        return self.processor(value)

    # ---------------------------------------------------------------- one value at a time

    def one(self, value: Any) -> Any:
        """The database value of one raw value through the field's own validator, or BAD."""
        try:
            key = (value.__class__, value)
            hash(key)
        except TypeError:
            return self._validate(value)
        got = self.distinct.get(key, self)
        if got is self:
            got = self._validate(value)
            if len(self.distinct) >= DISTINCT_LIMIT:
                self.distinct.clear()
            self.distinct[key] = got
        return got

    def _validate(self, value: Any) -> Any:
        if isinstance(value, str) and (not value or value.isspace()):
            return BAD  # an absent value to the mapping: the row path decides
        try:
            checked = self.check(value)
            return self._process(db_value(self.adapter.validate_python(checked)))
        except (ValueProblem, *_VALIDATION_ERRORS):  # pydantic's ValidationError is a ValueError
            return BAD

    # ---------------------------------------------------------------- a column at a time
    #
    # Each method returns (values, flags): the database values and, per value, whether the fast path
    # does not accept it (the row then goes through the model; its value in ``values`` is meaningless).

    def _distinct(self, values: list[Any]) -> tuple[list[Any], np.ndarray]:
        one = self.one
        out = [one(v) for v in values]
        return out, np.fromiter((v is BAD for v in out), dtype=bool, count=len(out))

    def from_arrow(self, array: pa.Array) -> tuple[list[Any], np.ndarray]:
        """An Arrow string column (the CSV fast path); an empty string is an absent value."""
        empty = pc.equal(array, "").to_numpy(zero_copy_only=False)
        if self.mode == "distinct":  # validate each distinct value once
            encoded = pc.dictionary_encode(array)
            choices, bad = self._distinct(encoded.dictionary.to_pylist())
            indices = encoded.indices.to_numpy(zero_copy_only=False)
            table = np.empty(len(choices), dtype=object)
            for i, choice in enumerate(choices):
                table[i] = choice
            values = table[indices].tolist()
            flags = bad[indices]
        else:
            values, flags = getattr(self, "_" + self.mode.replace("-", "_"))(array, array.to_pylist())
        if empty.any():
            default = self.default
            values = [default if e else v for e, v in zip(empty, values, strict=True)]
            flags = np.where(empty, default is BAD, flags)
        return values, flags

    def column(self, raw: Sequence[Any], missing: Any) -> tuple[list[Any], np.ndarray]:
        """A column of raw values (``missing`` marks an absent value), text or not."""
        n = len(raw)
        default = self.default
        absent = np.fromiter((v is missing for v in raw), dtype=bool, count=n)
        if self.mode == "distinct":
            out, flags = self._distinct([v for v in raw if v is not missing])
            if absent.any():
                values: list[Any] = [default] * n
                present = np.flatnonzero(~absent)
                for j, at_ in enumerate(present):
                    values[at_] = out[j]
                all_flags = np.full(n, default is BAD)
                all_flags[present] = flags
                return values, all_flags
            return out, flags
        values = [default if v is missing else v for v in raw]
        all_flags = np.where(absent, default is BAD, False)
        text_at = [i for i, v in enumerate(raw) if v.__class__ is str]
        for i, v in enumerate(raw):
            if v is not missing and v.__class__ is not str:
                values[i] = self.one(v)
                all_flags[i] = values[i] is BAD
        if text_at:
            texts = [raw[i] for i in text_at]
            try:
                array = pa.array(texts, pa.string())
            except (pa.ArrowException, UnicodeError):  # a lone surrogate: leave the column to the model
                all_flags[text_at] = True
                return values, all_flags
            got, flags = getattr(self, "_" + self.mode.replace("-", "_"))(array, texts)
            for i, value in zip(text_at, got, strict=True):
                values[i] = value
            all_flags[text_at] = flags
        return values, all_flags

    def _text(self, array: pa.Array, texts: list[str]) -> tuple[list[Any], np.ndarray]:
        bad = pc.match_substring_regex(array, _TEXT_SUSPECT)
        lengths = pc.utf8_length(array)
        if "min_len" in self.bounds:
            bad = pc.or_(bad, pc.less(lengths, self.bounds["min_len"]))
        if "max_len" in self.bounds:
            bad = pc.or_(bad, pc.greater(lengths, self.bounds["max_len"]))
        return texts, bad.to_numpy(zero_copy_only=False)

    def _numbers(self, array: pa.Array, pattern: str,
                 arrow_type: pa.DataType) -> tuple[list[Any], np.ndarray]:
        ok = pc.match_substring_regex(array, pattern)
        values = pc.cast(pc.if_else(ok, array, pa.scalar("0")), arrow_type)
        bad = pc.invert(ok)
        ops = (("ge", pc.less), ("gt", pc.less_equal), ("le", pc.greater), ("lt", pc.greater_equal))
        for name, op in ops:
            if name in self.bounds:
                bad = pc.or_(bad, op(values, self.bounds[name]))
        return values.to_pylist(), bad.to_numpy(zero_copy_only=False)

    def _integer(self, array: pa.Array, texts: list[str]) -> tuple[list[Any], np.ndarray]:
        return self._numbers(array, _INT_RE, pa.int64())

    def _number(self, array: pa.Array, texts: list[str]) -> tuple[list[Any], np.ndarray]:
        return self._numbers(array, _FLOAT_RE, pa.float64())

    def _date(self, array: pa.Array, texts: list[str]) -> tuple[list[Any], np.ndarray]:
        micros, flags = _parse_iso(texts, dates_only=True)
        if self.sqlite:  # the store's text form of a date is the canonical YYYY-MM-DD itself
            return texts, flags
        # NumPy makes the date objects in C (several times faster than Arrow's to_pylist)
        return (micros // _US_PER_DAY).astype("datetime64[D]").astype(object).tolist(), flags

    def _date_time(self, array: pa.Array, texts: list[str]) -> tuple[list[Any], np.ndarray]:
        micros, flags = _parse_iso(texts, dates_only=False)
        if self.sqlite:  # as SQLAlchemy's SQLite DATETIME stores it
            stamps = pa.array(micros, pa.timestamp("us"))
            return pc.strftime(stamps, format="%Y-%m-%d %H:%M:%S").to_pylist(), flags
        # NumPy makes the (naive, UTC) datetime objects in C; each is then marked UTC, as the model's
        # _to_utc does (about 3.5 times faster than Arrow's to_pylist of a zoned timestamp)
        naive = micros.astype("datetime64[us]").astype(object)
        return [moment.replace(tzinfo=UTC) for moment in naive], flags


def _digits(codes: np.ndarray, start: int, width: int) -> np.ndarray:
    out = np.zeros(codes.shape[0], dtype=np.int64)
    for k in range(start, start + width):
        out = out * 10 + (codes[:, k] - 48)
    return out


def _parse_iso(texts: list[str], *, dates_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """Microseconds since the epoch (UTC) of ISO 8601 texts in the common shapes, and a flag per text
    that is not in one of them or not a valid calendar value (those go through the model).

    Shapes: ``YYYY-MM-DD``; and for date-times also ``YYYY-MM-DD[T ]HH:MM``, ``...:SS``, ``...:SSZ``
    and ``...:SS+HH:MM`` / ``-HH:MM``. Dates are taken in years 2-9998 (what ``date`` holds, less the
    edges); date-times in the years the record models allow (``model.MIN_YEAR``..``MAX_YEAR``) less
    their first and last year, so that an offset never moves a taken value out of range: the edges go
    to the model."""
    n = len(texts)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=n)
    codes = np.array(texts, dtype="U25").view(np.uint32).reshape(n, 25).astype(np.int64) if n else \
        np.zeros((0, 25), dtype=np.int64)
    digit = (codes >= 48) & (codes <= 57)

    def is_digit(*cols: int) -> np.ndarray:
        out = np.ones(n, dtype=bool)
        for c in cols:
            out &= digit[:, c]
        return out

    def char(col: int, *allowed: str) -> np.ndarray:
        out = np.zeros(n, dtype=bool)
        for a in allowed:
            out |= codes[:, col] == ord(a)
        return out

    date_ok = is_digit(0, 1, 2, 3, 5, 6, 8, 9) & char(4, "-") & char(7, "-")
    if dates_only:
        shape = date_ok & (lengths == 10)
    else:
        hm = char(10, "T", " ") & is_digit(11, 12, 14, 15) & char(13, ":")
        sec = hm & char(16, ":") & is_digit(17, 18)
        shape = date_ok & ((lengths == 10) | ((lengths == 16) & hm) | ((lengths == 19) & sec)
                           | ((lengths == 20) & sec & char(19, "Z"))
                           | ((lengths == 25) & sec & char(19, "+", "-") & is_digit(20, 21, 23, 24)
                              & char(22, ":")))
    year, month, day = _digits(codes, 0, 4), _digits(codes, 5, 2), _digits(codes, 8, 2)
    has_time = lengths >= 16
    hour = np.where(has_time, _digits(codes, 11, 2), 0)
    minute = np.where(has_time, _digits(codes, 14, 2), 0)
    second = np.where(lengths >= 19, _digits(codes, 17, 2), 0)
    with_offset = lengths == 25
    off_h = np.where(with_offset, _digits(codes, 20, 2), 0)
    off_m = np.where(with_offset, _digits(codes, 23, 2), 0)
    sign = np.where(with_offset & (codes[:, 19] == ord("-")), -1, 1)

    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    safe_month = np.clip(month, 1, 12)
    dim = _DAYS_IN_MONTH[safe_month] + ((safe_month == 2) & leap)
    low, high = (2, 9998) if dates_only else (model.MIN_YEAR + 1, model.MAX_YEAR - 1)
    valid = (shape & (year >= low) & (year <= high) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= dim)
             & (hour <= 23) & (minute <= 59) & (second <= 59) & (off_h <= 23) & (off_m <= 59))
    # days from the civil date (H. Hinnant's algorithm), valid for years >= 1
    y = year - (safe_month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (safe_month + np.where(safe_month > 2, -3, 9)) + 2) // 5 + np.clip(day, 1, 31) - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    seconds = days * 86400 + hour * 3600 + minute * 60 + second - sign * (off_h * 3600 + off_m * 60)
    micros = np.where(valid, seconds * 1_000_000, 0)
    return micros, ~valid


class TargetColumns:
    """All fields of one target: the column values of a batch and the rows the model must see."""

    def __init__(self, spec: KindSpec, target: Target, model: type[BaseModel], dialect: Dialect,
                 independent: bool) -> None:
        self.fields = [FieldColumn(spec, target, name, dialect) for name in model.model_fields]
        self.independent = independent

    def rows(self, values: Sequence[dict[str, Any]],
             missing: Any) -> tuple[list[list[Any]], np.ndarray]:
        """The columns of mapped rows (``missing`` marks an absent value) and the flags of rows any
        of whose values the fast path does not accept."""
        n = len(values)
        if not self.independent:
            return [], np.ones(n, dtype=bool)
        columns = []
        flags = np.zeros(n, dtype=bool)
        for f in self.fields:
            name = f.row_field
            col, bad = f.column([v.get(name, missing) for v in values], missing)
            flags |= bad
            columns.append(col)
        return columns, flags

    def arrow_rows(self, table: pa.Table,
                   column_of: dict[str, str | None]) -> tuple[list[list[Any]], np.ndarray]:
        """As :meth:`rows`, for a table of string columns (``column_of``: row field → its column)."""
        n = table.num_rows
        if not self.independent:
            return [], np.ones(n, dtype=bool)
        columns = []
        flags = np.zeros(n, dtype=bool)
        names = set(table.column_names)
        for f in self.fields:
            name = column_of.get(f.row_field)
            if name is None or name not in names:
                col, bad = [f.default] * n, np.full(n, f.default is BAD)
            else:
                col, bad = f.from_arrow(table.column(name).combine_chunks())
            flags |= bad
            columns.append(col)
        return columns, flags
