"""An uploaded sheet as the importer sees it: the header row found below any title rows, the column
mapping, and the data rows grouped into records (child-table rows merged into their parent by key)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from engine.errors import Invalid
from engine.io.cells import Parsed, RowPlan
from engine.io.columns import Target, is_names_row, score
from engine.io.limits import FileRejected, Limits
from engine.io.readers import Row, SheetRows


@dataclass(frozen=True)
class Sheet:
    """The header (its sheet row number and texts), the template's names row if any, and the data rows: those read
    with the header, then the reader's."""

    header_row: int
    headers: list[str]
    names: list[Any] | None
    first: list[Row]
    reader: SheetRows
    total: int = 0

    @property
    def sizes(self) -> dict[str, int]:
        """What the reader found out about the file (see `SheetRows`)."""
        return self.reader.sizes

    def items(self, mapping: Sequence[str | None], key: str | None, found: dict[str, Target]) -> Iterator[Item]:
        """Records of the file; with child columns, rows repeating a key (or leaving the parent blank) join it.
        Without, each non-blank row is a record, its cells parsed where they are read."""
        if any(m and "." in m for m in mapping):
            yield from _grouped(chain(self.first, self.reader.rows()), mapping, key)
            return
        plan = RowPlan.of(mapping, {t: found[t].field for t in mapping if t})
        for number, values, problems, cells in chain(plan.records(self.first), self.reader.records(plan)):
            yield Item([number], values, parsed=(values, problems), row=cells)

    def close(self) -> None:
        """Stop reading the file."""
        self.reader.close()


def open_sheet(path: str, kind: str, found: dict[str, Target], limits: Limits) -> Sheet:
    """Read up to `header_scan` rows to find the header: the row naming the most fields."""
    reader = SheetRows(path, kind, limits)
    try:
        head = reader.head()
    except BaseException:
        reader.close()
        raise
    scored = [(score(cells, found), i) for i, (_, cells) in enumerate(head)]
    best = max(scored, key=lambda s: (s[0], -s[1]), default=(0, 0))
    if best[0] == 0:
        reader.close()
        raise FileRejected("no header row found: the first rows must name the columns (field labels or names); "
                           "download the template to see them")
    at = best[1]
    number, header = head[at]
    names = head[at + 1][1] if at + 1 < len(head) and is_names_row(head[at + 1][1], found) else None
    rest = head[at + 1 + (names is not None):]
    headers = [str(c).strip() if c is not None else "" for c in header]
    total = max(0, reader.sizes.get("rows", 0) - at - 1 - (names is not None))
    return Sheet(number, headers, names, rest, reader, total)


@dataclass(slots=True)
class Item:
    """One record of the file: its sheet rows, parent cells by target, and child rows per table. A record parsed as
    it was read (one row, no child tables) has `parsed` (its values and parse errors) and its sheet `row`; its `cells`
    are then the parsed values."""

    rows: list[int]
    cells: dict[str, Any]
    lines: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    conflicts: list[tuple[int, str, Any]] = field(default_factory=list)
    parsed: Parsed | None = None
    row: list[Any] | None = None


def _split(cells: Sequence[Any], mapping: Sequence[str | None]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    parent: dict[str, Any] = {}
    child: dict[str, dict[str, Any]] = {}
    for value, target in zip(chain(cells, [None] * max(0, len(mapping) - len(cells))), mapping, strict=False):
        if target is None:
            continue
        if "." in target:
            table, name = target.split(".", 1)
            child.setdefault(table, {})[name] = value
        else:
            parent[target] = value
    return parent, {t: c for t, c in child.items() if any(v is not None for v in c.values())}


def _grouped(rows: Iterable[Row], mapping: Sequence[str | None], key: str | None) -> Iterator[Item]:
    by_key: dict[Any, Item] = {}
    order: list[Item] = []
    last: Item | None = None
    for number, cells in rows:
        parent, child = _split(cells, mapping)
        blank = all(v is None for v in parent.values())
        if blank and not child:
            continue
        if blank and last is None:
            raise Invalid(f"row {number} has child rows but no parent values above it")
        own = parent.get(key) if key else None
        target = last if blank else by_key.get(own) if own is not None else None
        if target is None:
            target = Item([], parent)
            order.append(target)
            if own is not None:
                by_key[own] = target
        elif not blank:
            _merge(target, number, parent)
        target.rows.append(number)
        for table, values in child.items():
            target.lines.setdefault(table, []).append((number, values))
        last = target
    yield from order


def _merge(item: Item, number: int, parent: dict[str, Any]) -> None:
    """A row repeating a record's key: its parent cells must agree with the first row's (blank is fine)."""
    for name, value in parent.items():
        if value is None:
            continue
        if item.cells.get(name) is None:
            item.cells[name] = value
        elif item.cells[name] != value:
            item.conflicts.append((number, name, value))
