"""One spreadsheet cell → the field's value, through the field-type registry; a sheet row → a record's values.

Both run where the rows are read: in the importer, or in the xlsx reader process (which gets the fields to parse for).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from engine.fieldtypes import EXCEL_EPOCH, ParseError, field_type
from engine.spec import Field

Parser = Callable[[Any], Any]
Parsed = tuple[dict[str, Any], dict[str, str]]  # values, and the reason for each cell that did not parse
Record = tuple[int, dict[str, Any], dict[str, str], list[Any]]  # sheet row number, parsed, the row's cells
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


def column_parser(f: Field) -> Parser:
    """How the importer reads a non-empty cell of `f`: link cells stay text until the resolver turns them into ids,
    computed and system fields are kept as given (they are refused or dropped later), the rest parse through the field
    registry."""
    if f.name == "id":
        return _id
    if f.type in ("link", "user"):
        return as_text
    if computed(f):
        return lambda value: value
    return cell_parser(f)


def computed(f: Field) -> bool:
    """Whether an import never takes `f` from the file: formulas, autonumbers, system fields but the owner."""
    return f.type in ("formula", "autonumber") or (f.system and f.name != "owner")


def _id(value: Any) -> int:
    try:
        return int(float(as_text(value).lstrip("#")))
    except ValueError:
        raise ParseError("expected a record id") from None


def parse_cells(parsers: dict[str, Parser], cells: dict[str, Any]) -> Parsed:
    """Cells by field → (values, problems): empty cells are None, a cell that does not parse is left out of the values
    and its reason kept in `problems`."""
    values: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name, value in cells.items():
        if value is None:
            values[name] = None
            continue
        try:
            values[name] = parsers[name](value)
        except ParseError as exc:
            problems[name] = str(exc)
    return values, problems


@dataclasses.dataclass(frozen=True)
class RowPlan:
    """What a sheet's columns hold: the field each imported column goes to (parent fields only). Pickled to the
    reader process, so the fields carry only what parsing needs."""

    columns: tuple[tuple[int, Field], ...]

    @classmethod
    def of(cls, mapping: Sequence[str | None], fields: dict[str, Field]) -> RowPlan:
        return cls(tuple((i, _bare(fields[t])) for i, t in enumerate(mapping) if t))

    def parser(self) -> Callable[[list[Any]], Parsed | None]:
        """Row → its record's parsed values and problems, or None for a blank row."""
        targets = [(i, f.name) for i, f in self.columns]
        parsers = {f.name: column_parser(f) for _, f in self.columns}

        def parse(cells: list[Any]) -> Parsed | None:
            width = len(cells)
            given = {name: cells[i] if i < width else None for i, name in targets}
            if all(v is None for v in given.values()):
                return None
            return parse_cells(parsers, given)
        return parse

    def records(self, rows: Iterable[tuple[int, list[Any]]]) -> Iterator[Record]:
        """The records of numbered rows (blank rows left out)."""
        parse = self.parser()
        for number, cells in rows:
            parsed = parse(cells)
            if parsed is not None:
                yield number, *parsed, cells


def _bare(f: Field) -> Field:
    """`f` without its expressions (parsing needs none of them)."""
    return dataclasses.replace(f, expr=None, visible_if=None, required_if=None, read_only_if=None, rollup=None)
