"""The error report: the rows that failed, as the user sent them, with an error column to fix and re-upload."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill

from engine.io.limits import DEFAULT_LIMITS, Limits
from engine.io.readers import read_rows

ERROR_FILL = PatternFill("solid", fgColor="FDE2E1")


def error_report(path: str, kind: str, header_row: int, problems: Iterable[dict[str, Any]], locale: str = "en",
                 limits: Limits = DEFAULT_LIMITS) -> bytes:
    """An .xlsx of the header and every failed row, with their problems in the first column."""
    by_row: dict[int, list[str]] = {}
    for p in problems:
        by_row.setdefault(int(p["row"]), []).append(f"{p['column']}: {p['reason']}" if p["column"] else str(p["reason"]))
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Errors" if locale != "zh" else "错误")
    title = "Errors" if locale != "zh" else "错误"
    for number, cells in read_rows(path, kind, limits):
        if number == header_row:
            sheet.append([_bold(sheet, title), *(_text(sheet, c, bold=True) for c in cells)])
        elif number in by_row:
            sheet.append([_text(sheet, "; ".join(by_row[number]), fill=True), *(_text(sheet, c) for c in cells)])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _bold(sheet: Any, value: str) -> Any:
    return _text(sheet, value, bold=True)


def _text(sheet: Any, value: Any, bold: bool = False, fill: bool = False) -> Any:
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet, value=value)
    if isinstance(value, str):
        cell.data_type = "s"
    if bold:
        cell.font = Font(bold=True)
    if fill:
        cell.fill = ERROR_FILL
    return cell
