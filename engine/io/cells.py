"""One spreadsheet cell → the field's value, through the field-type registry."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from engine.fieldtypes import EXCEL_EPOCH, field_type
from engine.spec import Field

TEXTUAL = ("text", "textarea", "email", "phone", "url", "select", "multiselect", "attachment")


def as_text(value: Any) -> str:
    """How a cell reads as text (whole numbers without '.0', dates as ISO)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return str(value)


def cell_parser(f: Field) -> Callable[[Any], Any]:
    """A function parsing one non-empty cell for `f` (ParseError says why it is not valid), its type's choices made
    once for the whole column."""
    parse = field_type(f).parse
    if f.type in TEXTUAL:
        multiple = f.type == "multiselect"

        def textual(value: Any) -> Any:
            text = value if type(value) is str else as_text(value)
            return parse(f, text.replace("、", ",") if multiple else text)
        return textual
    if f.type == "datetime":
        return lambda value: parse(f, dt.datetime.combine(EXCEL_EPOCH, value) if isinstance(value, dt.time) else value)
    return lambda value: parse(f, value)
