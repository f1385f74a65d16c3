"""The import template of a module: headers in the user's language over a hidden row of field names,
required columns marked, picklists as in-cell dropdowns, a comment per column, and an example row."""

from __future__ import annotations

import io
from typing import Any

from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from engine.access import Access
from engine.io.columns import Target, targets
from engine.records import module_of, require
from engine.runtime import Runtime
from engine.spec import Field, Module, Spec

REQUIRED_FILL = PatternFill("solid", fgColor="FDE2E1")
HEADER_FILL = PatternFill("solid", fgColor="E8EEF7")
LAST_ROW = 100_000
HINTS = {
    "text": ("text", "文本"), "textarea": ("text (may be long)", "长文本"), "integer": ("a whole number, e.g. 12", "整数，如 12"),
    "decimal": ("a number, e.g. 1,234.50", "数字，如 1,234.50"), "currency": ("an amount, e.g. 1,234.50", "金额，如 1,234.50"),
    "percent": ("a percentage as a number, e.g. 40 for 40%", "百分数，如 40 表示 40%"),
    "boolean": ("yes/no (also 是/否, 1/0)", "是/否（也可填 yes/no、1/0）"),
    "date": ("a date: 2026-11-22, 2026/11/22 or 22.11.2026", "日期：2026-11-22、2026/11/22 或 22.11.2026"),
    "datetime": ("date and time: 2026-11-22 14:30", "日期时间：2026-11-22 14:30"),
    "select": ("one of the list (label or key)", "从下拉列表中选择（名称或代码）"),
    "multiselect": ("one or more of the list, separated by commas", "列表中的一项或多项，用逗号分隔"),
    "link": ("the name or code of an existing {target}", "已有{target}的名称或编码"),
    "user": ("a user name", "用户名"), "email": ("an email address", "邮箱地址"), "phone": ("a phone number", "电话号码"),
    "url": ("a web address starting with https://", "以 https:// 开头的网址"),
    "attachment": ("an uploaded file reference, e.g. file:12", "已上传文件的引用，如 file:12"),
}


def template_columns(spec: Spec, module: Module, access: Access) -> list[Target]:
    """The columns a user may fill: writable fields, then writable child-table fields."""
    writable = access.writable(module)
    out = []
    for name, t in targets(spec, module).items():
        if t.computed or name == "id" or (t.table is None and name not in writable):
            continue
        if t.table is not None:
            child = spec.module(t.table.module or "")
            if t.table.name not in writable or t.field.name not in access.writable(child):
                continue
        out.append(t)
    return out


def template(rt: Runtime, access: Access, name: str) -> bytes:
    """The .xlsx template of module `name` for this user."""
    module = module_of(rt, name)
    require(access, module, "import")
    locale = access.actor.locale
    cols = template_columns(rt.spec, module, access)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = module.plural(locale)[:31] or "Data"
    lists = book.create_sheet("Lists")
    lists.sheet_state = "hidden"
    for i, t in enumerate(cols, start=1):
        _column(sheet, lists, i, t, rt.spec, locale, access.actor.username)
    sheet.row_dimensions[2].hidden = True
    sheet.freeze_panes = "A3"
    _example(book.create_sheet("Example" if locale != "zh" else "示例"), cols, rt.spec, locale, access.actor.username)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _column(sheet: Any, lists: Any, i: int, t: Target, spec: Spec, locale: str, me: str) -> None:
    letter = get_column_letter(i)
    required = t.field.required
    head = sheet.cell(row=1, column=i, value=t.label(locale) + (" *" if required else ""))
    head.font = Font(bold=True, color="B42318" if required else "000000")
    head.fill = REQUIRED_FILL if required else HEADER_FILL
    head.comment = Comment(_hint(t, spec, locale, me), "Loom", width=300, height=120)
    sheet.cell(row=2, column=i, value=t.name)
    sheet.column_dimensions[letter].width = max(12, min(40, len(head.value) * 2))
    choices = _choices(t.field, locale)
    if choices:
        lists.cell(row=1, column=i, value=t.name)
        for n, text in enumerate(choices, start=2):
            lists.cell(row=n, column=i, value=text)
        rule = DataValidation(type="list", formula1=f"Lists!${letter}$2:${letter}${len(choices) + 1}",
                              allow_blank=not required, showErrorMessage=t.field.type != "multiselect")
        rule.add(f"{letter}3:{letter}{LAST_ROW}")
        sheet.add_data_validation(rule)


def _choices(f: Field, locale: str) -> list[str]:
    if f.type in ("select", "multiselect"):
        return [o.label(locale) for o in f.options]
    if f.type == "boolean":
        return ["是", "否"] if locale == "zh" else ["Yes", "No"]
    return []


def _hint(t: Target, spec: Spec, locale: str, me: str) -> str:
    hint_en, hint_zh = HINTS.get(t.field.type, ("text", "文本"))
    target = spec.module(t.field.module).label(locale) if t.field.type == "link" and t.field.module else ""
    zh = locale == "zh"
    text = (hint_zh if zh else hint_en).format(target=target)
    lines = [text, ("必填" if zh else "Required") if t.field.required else "",
             f"{'示例' if zh else 'Example'}: {_example_value(t.field, spec, locale, me)}", f"{'字段' if zh else 'Field'}: {t.name}"]
    return "\n".join(line for line in lines if line)


def _example_value(f: Field, spec: Spec, locale: str, me: str) -> Any:
    zh = locale == "zh"
    samples: dict[str, Any] = {
        "text": "示例" if zh else "Example", "textarea": "备注" if zh else "Some notes", "integer": 12, "decimal": 1234.5,
        "currency": 1234.5, "percent": 40, "boolean": "是" if zh else "Yes", "date": "2026-11-22", "datetime": "2026-11-22 14:30",
        "user": me, "email": "name@example.com", "phone": "+86 138 0000 0000", "url": "https://example.com", "attachment": "",
    }
    if f.type in ("select", "multiselect") and f.options:
        return ", ".join(o.label(locale) for o in f.options[: 1 + (f.type == "multiselect")])
    if f.type == "link" and f.module:
        return f"{spec.module(f.module).label(locale)} 1"
    return samples.get(f.type, "")


def _example(sheet: Any, cols: list[Target], spec: Spec, locale: str, me: str) -> None:
    for i, t in enumerate(cols, start=1):
        sheet.cell(row=1, column=i, value=t.label(locale)).font = Font(bold=True)
        value = _example_value(t.field, spec, locale, me)
        cell = sheet.cell(row=2, column=i, value=value)
        cell.data_type = "s" if isinstance(value, str) else cell.data_type
