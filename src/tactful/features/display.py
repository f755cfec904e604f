"""How feature values read in a reason message."""

from __future__ import annotations

from enum import Enum


def describe_value(value: object) -> str:
    """A feature value as a reason message shows it."""
    if isinstance(value, Enum):
        return str(value.value).replace("_", " ")
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
