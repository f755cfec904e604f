"""Column mappings: which of *their* columns fills which of *our* fields, plus constants, value maps,
date formats and list separators. Nobody's export matches ours, so this is a small YAML file::

    kind: consents                 # optional: the import kind this mapping is for
    csv: {delimiter: ";", encoding: utf-8}
    date_format: "%d.%m.%Y"        # for every date and date-time field (a list tries each in turn)
    fields:
      id: ConsentNo                # our field: their column
      customer_id: {column: CustNo}
      status: {column: OptIn, values: {Y: granted, N: denied}}
      source: {value: import}      # a constant
      at: {column: When, date_format: "%d.%m.%Y %H:%M"}

Without a mapping file every field is read from the column of the same name. With one, fields it does
not list still fall back to a same-named column, and every other column is ignored. The mapping file
is validated as a whole before any row is read; each error names the file, the key and what was
expected.
"""

from __future__ import annotations

import codecs
import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tactful.errors import IngestError, VocabularyError
from tactful.ingest.kinds import KINDS, KindSpec
from tactful.safeload import MAPPING_LIMITS, DocumentError, load_document

DEFAULT_LIST_SEPARATOR = "|"
_FIELD_KEYS = ("column", "value", "values", "date_format", "split")
_TOP_KEYS = ("kind", "format", "csv", "date_format", "list_separator", "fields")
_CSV_KEYS = ("delimiter", "quotechar", "encoding")
_FORMATS = ("csv", "jsonl", "parquet")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """How one of our fields is filled."""

    field: str
    column: str | None = None  # None with a constant
    constant: Any = None
    has_constant: bool = False
    values: Mapping[str, Any] | None = None  # their value (as text) → ours
    date_formats: tuple[str, ...] = ()
    split: str | None = None
    declared: bool = False  # named in the mapping file (its column must then exist)
    is_date: bool = False  # a date (not a date-time) field: a parsed value keeps only its date


@dataclass(frozen=True, slots=True)
class CsvOptions:
    delimiter: str = ","
    quotechar: str = '"'
    encoding: str = "utf-8"


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """A validated column mapping for one import kind (see the module docstring)."""

    kind: KindSpec
    fields: dict[str, FieldSpec]
    csv: CsvOptions = CsvOptions()
    format: str | None = None
    source: str | None = None  # the mapping file, for messages
    explicit: bool = False  # False: the identity mapping (no file given)
    document: dict[str, Any] = field(default_factory=dict)  # as loaded, recorded with the import

    def columns(self) -> dict[str, str]:
        """Our field → their column, for the fields read from a column."""
        return {f: s.column for f, s in self.fields.items() if s.column is not None}

    def column_of(self, name: str) -> str | None:
        spec = self.fields.get(name)
        return spec.column if spec else None


class RowValueError(Exception):
    """A value could not be converted (date format); carries (field, message)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in problems))
        self.problems = problems


# --------------------------------------------------------------------------- building mappings


def identity_mapping(kind: KindSpec) -> ColumnMapping:
    """Every field from the column of the same name (no mapping file)."""
    mapping = parse_mapping({}, kind, source="<no mapping>")
    return ColumnMapping(kind=kind, fields=mapping.fields, source=None, explicit=False)


def _expect(source: str, key: str, expected: str, got: Any) -> IngestError:
    shown = type(got).__name__ if isinstance(got, dict | list) else repr(got)
    return IngestError(f"{source}: {key}: expected {expected}, got {shown}",
                       hint="see docs/import-formats.md, section 'Column mappings'")


def _unknown_key(source: str, where: str, key: Any, allowed: tuple[str, ...] | list[str]) -> IngestError:
    close = difflib.get_close_matches(str(key), list(allowed), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return IngestError(f"{source}: {where}{key}: unknown key; expected one of {', '.join(allowed)}",
                       hint=hint + "see docs/import-formats.md, section 'Column mappings'")


def _date_formats(source: str, key: str, raw: Any) -> tuple[str, ...]:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i for i in items):
        raise _expect(source, key, "a strptime format such as '%d.%m.%Y', or a list of them", raw)
    for fmt in items:
        if "%" not in fmt:
            raise _expect(source, key, "a strptime format with % directives such as '%d.%m.%Y'", fmt)
        try:
            datetime.now().strftime(fmt)
        except ValueError as exc:
            raise _expect(source, key, f"a valid strptime format ({exc})", fmt) from None
    return tuple(items)


def _check_target_value(kind: KindSpec, source: str, key: str, name: str, value: Any) -> None:
    """An enum field's constant or mapped value must be one of its values (fail at load, not per row)."""
    info = kind.field_info(name)
    if info is None or value is None:
        return
    if name in kind.vocab_fields:
        values = value if isinstance(value, list) else [value]
        for item in values:
            try:
                kind.check_vocab(name, item)
            except VocabularyError as exc:
                raise IngestError(f"{source}: {key}: {exc.message}", hint=exc.hint) from None
        return
    if info.type == "enum" and str(value) not in info.choices:
        raise _expect(source, key, f"one of {', '.join(info.choices)}", value)
    if info.type == "boolean" and str(value).lower() not in {"true", "false", "1", "0", "yes", "no"}:
        raise _expect(source, key, "true or false", value)


def parse_mapping(document: Any, kind: KindSpec, *, source: str = "<mapping>") -> ColumnMapping:
    """Validate a loaded mapping document for ``kind``; :class:`IngestError` names file, key, expected."""
    if document is None:
        document = {}
    if not isinstance(document, dict):
        # name the type only: a file that is not a mapping (--mapping /etc/passwd) is one long text,
        # and its content is not echoed into the error
        got = "a text" if isinstance(document, str) else f"a {type(document).__name__}"
        raise IngestError(f"{source}: (document): expected a mapping with 'fields' (and optionally kind, "
                          f"csv, date_format), got {got}",
                          hint="see docs/import-formats.md, section 'Column mappings'")
    for key in document:
        if key not in _TOP_KEYS:
            raise _unknown_key(source, "", key, _TOP_KEYS)
    if "kind" in document:
        if document["kind"] not in KINDS:
            raise _expect(source, "kind", f"one of {', '.join(KINDS)}", document["kind"])
        if document["kind"] != kind.name:
            raise IngestError(f"{source}: kind: this mapping is for {document['kind']}, not {kind.name}",
                              hint=f"use a mapping for {kind.name}, or import as {document['kind']}")
    fmt = document.get("format")
    if fmt is not None and fmt not in _FORMATS:
        raise _expect(source, "format", f"one of {', '.join(_FORMATS)}", fmt)

    csv_doc = document.get("csv") or {}
    if not isinstance(csv_doc, dict):
        raise _expect(source, "csv", "a mapping with delimiter, quotechar or encoding", csv_doc)
    for key in csv_doc:
        if key not in _CSV_KEYS:
            raise _unknown_key(source, "csv.", key, _CSV_KEYS)
    opts = CsvOptions()
    delimiter = csv_doc.get("delimiter", opts.delimiter)
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\r\n":
        raise _expect(source, "csv.delimiter", "one character such as ',' ';' or '\\t'", delimiter)
    quotechar = csv_doc.get("quotechar", opts.quotechar)
    if not isinstance(quotechar, str) or len(quotechar) != 1 or quotechar == delimiter:
        raise _expect(source, "csv.quotechar", "one character other than the delimiter", quotechar)
    encoding = csv_doc.get("encoding", opts.encoding)
    if not isinstance(encoding, str):
        raise _expect(source, "csv.encoding", "an encoding name such as utf-8 or latin-1", encoding)
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        raise _expect(source, "csv.encoding", "an encoding name such as utf-8 or latin-1", encoding) from None
    if "\n".encode(codec.name) != b"\n" or ",".encode(codec.name) != b",":
        raise _expect(source, "csv.encoding", "an ASCII-compatible encoding (utf-8, latin-1, cp1252...)",
                      encoding)
    csv_opts = CsvOptions(delimiter, quotechar, codec.name)

    default_formats: tuple[str, ...] = ()
    if "date_format" in document:
        default_formats = _date_formats(source, "date_format", document["date_format"])
    separator = document.get("list_separator", DEFAULT_LIST_SEPARATOR)
    if not isinstance(separator, str) or not separator:
        raise _expect(source, "list_separator", "a non-empty string such as '|'", separator)

    fields_doc = document.get("fields") or {}
    if not isinstance(fields_doc, dict):
        raise _expect(source, "fields", "a mapping of our field to their column", fields_doc)
    names = kind.field_names()
    specs: dict[str, FieldSpec] = {}
    for name, raw in fields_doc.items():
        key = f"fields.{name}"
        if name not in names:
            raise _unknown_key(source, "fields.", name, names)
        info = kind.field_info(name)
        assert info is not None
        if isinstance(raw, str | int) and not isinstance(raw, bool):
            raw = {"column": str(raw)}
        if not isinstance(raw, dict):
            raise _expect(source, key, "their column name, or a mapping with column/value/values/"
                          "date_format/split", raw)
        for sub in raw:
            if sub not in _FIELD_KEYS:
                raise _unknown_key(source, key + ".", sub, _FIELD_KEYS)
        if ("column" in raw) == ("value" in raw):
            raise IngestError(f"{source}: {key}: expected exactly one of column (their column name) "
                              "or value (a constant)")
        column = raw.get("column")
        if column is not None and (not isinstance(column, str | int) or isinstance(column, bool)
                                   or str(column) == ""):
            raise _expect(source, key + ".column", "their column name", column)
        values = raw.get("values")
        if values is not None:
            if not isinstance(values, dict) or not values:
                raise _expect(source, key + ".values", "a mapping of their value to ours, e.g. "
                              "{Y: granted, N: denied}", values)
            for their, ours in values.items():
                _check_target_value(kind, source, f"{key}.values.{their}", name, ours)
            values = {str(k): v for k, v in values.items()}
        if "value" in raw:
            _check_target_value(kind, source, key + ".value", name, raw["value"])
        formats = default_formats if info.type in ("date", "date-time") else ()
        if "date_format" in raw:
            if info.type not in ("date", "date-time"):
                raise IngestError(f"{source}: {key}.date_format: {name} is a {info.type} field, "
                                  "not a date or date-time")
            formats = _date_formats(source, key + ".date_format", raw["date_format"])
        split = raw.get("split", separator if info.type == "list" else None)
        if "split" in raw and (info.type != "list" or not isinstance(split, str) or not split):
            raise IngestError(f"{source}: {key}.split: expected a separator for a list field; "
                              f"{name} is a {info.type} field")
        specs[name] = FieldSpec(
            field=name, column=str(column) if column is not None else None,
            constant=raw.get("value"), has_constant="value" in raw, values=values,
            date_formats=formats, split=split, declared=True, is_date=info.type == "date",
        )
    # fields the mapping does not list are read from a column of the same name, if there is one
    for name in names:
        if name not in specs:
            info = kind.field_info(name)
            assert info is not None
            specs[name] = FieldSpec(
                name, column=name,
                date_formats=default_formats if info.type in ("date", "date-time") else (),
                split=separator if info.type == "list" else None, is_date=info.type == "date",
            )
    return ColumnMapping(kind=kind, fields=specs, csv=csv_opts, format=fmt, source=source, explicit=True,
                    document=document)


def load_mapping(path: Path | None, kind: KindSpec) -> ColumnMapping:
    """The mapping in ``path`` for ``kind``, or the identity mapping when ``path`` is None.

    Read through the bounded loader (:data:`tactful.safeload.MAPPING_LIMITS`: at most 256 KiB, also
    once YAML aliases are expanded, so the copy kept in ``imports.mapping`` stays that small; no
    tags, no duplicate keys). ``yes``/``no``/``on`` stay text: they are values of their data."""
    if path is None:
        return identity_mapping(kind)
    try:
        document = load_document(path, MAPPING_LIMITS, json_only=False, booleans=False,
                                 source=str(path))
    except DocumentError as exc:
        if not path.exists():
            raise IngestError(f"mapping file {path} does not exist") from None
        raise IngestError(str(exc), hint=exc.hint) from None
    return parse_mapping(document, kind, source=str(path))


# --------------------------------------------------------------------------- applying a mapping


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _as_key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip() if isinstance(value, str) else str(value)


def compile_mapping(mapping: ColumnMapping) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """:func:`apply` for ``mapping`` as a function of the record, faster per row: fields read as they
    are from a column (no constant, value map, date format or list separator) skip the general path."""
    plain = tuple((name, spec.column) for name, spec in mapping.fields.items()
                  if not spec.has_constant and spec.values is None and not spec.date_formats
                  and spec.split is None and spec.column is not None)
    if len(plain) < len(mapping.fields):
        return lambda record: apply(mapping, record)

    def apply_plain(record: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        get = record.get
        for name, column in plain:
            value = get(column)
            if value is None:
                continue
            if value.__class__ is str:
                if not value or value.isspace():
                    continue
            elif _is_empty(value):
                continue
            out[name] = value
        return out

    return apply_plain


def apply(mapping: ColumnMapping, record: Mapping[str, Any]) -> dict[str, Any]:
    """Our field → value for one source record. Empty values are left out (so defaults apply).

    Raises :class:`RowValueError` when a value cannot be converted (a date not in the given format).
    """
    out: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for name, spec in mapping.fields.items():
        if spec.has_constant:
            value = spec.constant
        else:
            assert spec.column is not None
            value = record.get(spec.column)
        if _is_empty(value):
            continue
        if spec.values is not None:
            key = _as_key(value)
            if key in spec.values:
                value = spec.values[key]
                if _is_empty(value):
                    continue
        if spec.date_formats and isinstance(value, str):
            text = value.strip()
            for fmt in spec.date_formats:
                try:
                    value = datetime.strptime(text, fmt)
                    break
                except ValueError:
                    continue
            else:
                formats = " or ".join(repr(f) for f in spec.date_formats)
                problems.append((name, f"expected a date in the format {formats}, got {text!r}"))
                continue
            if spec.is_date:
                value = value.date()
        if spec.split is not None and isinstance(value, str):
            value = [part.strip() for part in value.split(spec.split) if part.strip()]
            if not value:
                continue
        out[name] = value
    if problems:
        raise RowValueError(problems)
    return out
