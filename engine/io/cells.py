"""One spreadsheet cell → the field's value, through the field-type registry."""

from __future__ import annotations

import datetime as dt
from typing import Any

from engine.fieldtypes import parse_value
from engine.spec import Field

TEXTUAL = ("text", "textarea", "email", "phone", "url", "select", "multiselect", "attachment")


def clean(value: Any) -> Any:
    """A cell as typed: strings stripped (trailing spaces are common), empty → None."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def as_text(value: Any) -> str:
    """How a cell reads as text (whole numbers without '.0', dates as ISO)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return str(value)


def parse_cell(f: Field, value: Any) -> Any:
    """Parse a non-empty cell for `f` (ParseError says why it is not valid)."""
    if f.type in TEXTUAL and not isinstance(value, str):
        value = as_text(value)
    if f.type == "multiselect" and isinstance(value, str):
        value = value.replace("、", ",")
    if f.type == "datetime" and isinstance(value, dt.time):
        value = dt.datetime.combine(dt.date(1899, 12, 30), value)
    return parse_value(f, value)
