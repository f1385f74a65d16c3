"""The import template: labels in the user's language over the field names, required columns marked, picklists as
dropdowns, a comment per column, an example row that imports as it is — on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from openpyxl import load_workbook

from engine import records
from engine.access import SystemAccess
from engine.io.plan import Options
from engine.io.run import execute

from .conftest import login


def _book(data: bytes) -> Any:
    return load_workbook(io.BytesIO(data))


def _validations(sheet: Any) -> dict[str, str]:
    """Column letter → the list formula of its dropdown."""
    out = {}
    for rule in sheet.data_validations.dataValidation:
        assert rule.type == "list"
        out[str(rule.sqref).split(":")[0].rstrip("0123456789")] = rule.formula1
    return out


def test_template_has_labels_names_required_marks_dropdowns_comments_and_example(make_app: Any, tmp_path: Path) -> None:
    app = make_app()
    rt = app.state.runtime
    records.create(rt, SystemAccess(), "account", {"name": "客户 1"})
    admin = login(app, "boss", ("admin",))
    admin.cookies.set("loom_locale", "zh")
    got = admin.get("/m/account/import/template.xlsx")
    assert got.status_code == 200 and "account-template.xlsx" in got.headers["content-disposition"]
    book = _book(got.content)
    sheet = book.worksheets[0]
    labels = [c.value for c in sheet[1]]
    names = [c.value for c in sheet[2]]
    assert labels[names.index("name")] == "名称 *" and labels[names.index("category")] == "类别"
    assert {"name", "category", "tags", "credit_limit", "parent", "founded", "active", "secret_score"} <= set(names)
    assert not {"id", "code", "overdue", "created_at", "version"} & set(names)  # computed and system fields are not asked for
    assert sheet.row_dimensions[2].hidden
    name_head = sheet.cell(row=1, column=names.index("name") + 1)
    assert name_head.font.b and name_head.fill.fgColor.rgb.endswith("FDE2E1")
    assert sheet.cell(row=1, column=names.index("notes") + 1).fill.fgColor.rgb.endswith("E8EEF7")
    for i, name in enumerate(names, start=1):
        comment = sheet.cell(row=1, column=i).comment
        assert comment is not None and f"字段: {name}" in comment.text
    assert "日期" in sheet.cell(row=1, column=names.index("founded") + 1).comment.text
    assert "必填" in name_head.comment.text
    rules = _validations(sheet)
    lists = book["Lists"]
    assert lists.sheet_state == "hidden"
    for field, expected in (("category", ["重要客户", "一般客户", "新客户"]), ("active", ["是", "否"])):
        letter = name_head.column_letter if field == "name" else sheet.cell(row=1, column=names.index(field) + 1).column_letter
        formula = rules[letter]
        assert formula.startswith("Lists!")
        column = formula.split("!")[1].split(":")[0].replace("$", "").rstrip("0123456789")
        assert [c.value for c in lists[column][1:] if c.value is not None] == expected
    assert sheet.cell(row=1, column=names.index("name") + 1).column_letter not in rules
    example = book["示例"]
    assert [c.value for c in example[1]] == [label.rstrip(" *") for label in labels]
    filled = [c.value for c in example[2]]
    assert filled[names.index("category")] == "重要客户" and filled[names.index("parent")] == "客户 1"
    for i, value in enumerate(filled, start=1):  # the example row, copied under the headers, imports as it is
        sheet.cell(row=3, column=i, value=value)
    path = tmp_path / "filled.xlsx"
    book.save(path)
    result = execute(rt, SystemAccess(), "account", str(path), "xlsx", Options())
    assert result.applied and result.inserted == 1, result.problems
    assert result.header_row == 1 and "secret_score" in result.mapping
    created = records.get(rt, SystemAccess(), "account", result.created[0])
    assert created["category"] == "key" and created["parent"] is not None and created["active"] is True


def test_template_columns_follow_the_users_rights(make_app: Any, bundle_copy: Path) -> None:
    spec = bundle_copy / "modules" / "account.yaml"
    spec.write_text(spec.read_text().replace("manager: {read: department_tree,", "manager: {fields: {secret_score: read}, read: department_tree,"))
    app = make_app(bundle_copy)
    manager = login(app, "mgr", ("manager",))
    got = manager.get("/m/account/import/template.xlsx")
    sheet = _book(got.content).worksheets[0]
    names = [c.value for c in sheet[2]]
    assert "name" in names and "secret_score" not in names
    assert [c.value for c in sheet[1]][names.index("name")] == "Name *"
    rep = login(app, "rep1", ("rep",))
    assert rep.get("/m/account/import/template.xlsx").status_code == 403
    admin = login(app, "boss", ("admin",))
    deal = _book(admin.get("/m/deal/import/template.xlsx").content).worksheets[0]
    assert {"lines.product", "lines.quantity", "lines.unit_price"} <= {c.value for c in deal[2]}
    assert "Lines.Product *" in [c.value for c in deal[1]]
