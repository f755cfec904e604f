"""Options shared by several commands, and the one way every command prints text that came from data
(:func:`safe_text`, :func:`data_text`, :func:`safe_json`)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="TACTFUL_DB",
        help="Store URL: sqlite:///path.db (default sqlite:///tactful.db) or postgresql+psycopg://user@host/db.",
        show_default=False,
    ),
]


# --------------------------------------------------------------------------- text from data, safe to print

#: C0 and C1 control characters (ESC starts terminal sequences; 0x9b is a one-byte CSI), DEL, and the
#: invisible format characters that reorder or hide text (bidi overrides and isolates, zero-width ones,
#: the BOM, line and paragraph separators)
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff"
                     "\ufff9-\ufffb]")
_UNSAFE_KEEP_NEWLINES = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u00ad\u061c\u200b-\u200f\u2028-\u202e"
                                   "\u2060-\u2069\ufeff\ufff9-\ufffb]")
#: in JSON the C0 ones are already escaped by json.dumps; the rest are not
_UNSAFE_JSON = re.compile("[\x7f-\x9f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff"
                          "\ufff9-\ufffb]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(value: object, *, multiline: bool = False) -> str:
    """``value`` as text that a terminal shows and never obeys: every control or invisible format
    character becomes a visible escape (``\\x1b``, ``\\u202e``; a newline becomes ``\\n`` unless
    ``multiline``). Use it for every piece of text that came from data (the store, an input file,
    a pack) before it reaches standard output or standard error; Rich markup and emoji codes are
    not interpreted when the result is printed as a :class:`rich.text.Text` (see :func:`data_text`)
    or with :func:`typer.echo`."""
    text = value if isinstance(value, str) else str(value)
    return (_UNSAFE_KEEP_NEWLINES if multiline else _UNSAFE).sub(_visible, text)


def data_text(value: object, *, style: str = "", multiline: bool = False) -> Text:
    """Data as a Rich :class:`~rich.text.Text`: never parsed for markup (``[link=...]``, ``[/]``) or
    emoji codes (``:x:``), with control characters made visible (:func:`safe_text`)."""
    return Text(safe_text(value, multiline=multiline), style=style)


BAR_WIDTH = 30


def count_bar(count: int, top: int, *, style: str = "cyan", width: int = BAR_WIDTH) -> Text:
    """A count as a bar for a column of a Rich table: ``width`` cells for ``top`` (the total, or the
    largest count shown), a thin sliver for a count too small for one cell, nothing for zero."""
    cells = round(width * count / top) if top > 0 else 0
    return Text("█" * cells or ("▏" if count > 0 else ""), style=style)


def has_unsafe(text: str) -> bool:
    """Whether ``text`` holds a character :func:`safe_text` would escape, other than newlines and tabs."""
    return _UNSAFE_KEEP_NEWLINES.search(text.replace("\t", " ")) is not None


def safe_json(document: Any, *, indent: int | None = 2) -> str:
    """JSON for standard output: non-ASCII text stays readable, but the control and invisible format
    characters json.dumps would leave raw (C1 controls, bidi overrides) are written as ``\\uXXXX``."""
    text = json.dumps(document, indent=indent, ensure_ascii=False)
    return _UNSAFE_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def console(*, stderr: bool = False, width: int | None = None) -> Console:
    """A Rich console that never turns text into emoji (``:x:``) and never prints markup it was not
    given as markup: print data only as :func:`data_text` pieces."""
    return Console(stderr=stderr, emoji=False, width=width)
