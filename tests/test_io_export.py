"""Spreadsheet export: the list screen's view, the API and `loom export` — headers in the user's language, typed
cells, only readable fields, no formulas — on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from engine import records
from engine.access import SystemAccess
from engine.runtime import Runtime

from .conftest import login

SYSTEM = SystemAccess()
RISKY = ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2-2", "@SUM(A1)"]
SECRET = 424242


@pytest.fixture
def hidden_bundle(bundle_copy: Path) -> Path:
    """The test bundle where managers may export accounts but not see their secret score."""
    spec = bundle_copy / "modules" / "account.yaml"
    text = spec.read_text().replace("manager: {read: department_tree,", "manager: {fields: {secret_score: none}, read: all,")
    assert "secret_score: none}, read: all" in text
    spec.write_text(text)
    return bundle_copy


def _seed(rt: Runtime) -> dict[str, dict[str, Any]]:
    rows = [
        {"name": "Alpha", "category": "key", "credit_limit": Decimal("1234.5"), "employees": 12, "founded": dt.date(2020, 5, 17),
         "active": True, "notes": RISKY[0], "tags": "vip,partner", "secret_score": SECRET},
        {"name": "Bravo", "category": "key", "credit_limit": Decimal("99"), "employees": 3, "founded": dt.date(2021, 1, 2),
         "active": False, "notes": RISKY[1], "secret_score": SECRET},
        {"name": RISKY[3], "category": "key", "credit_limit": Decimal("5"), "notes": RISKY[2], "secret_score": SECRET},
        {"name": "Zulu", "category": "general", "credit_limit": Decimal("7"), "secret_score": SECRET},
    ]
    return {r["name"]: records.create(rt, SYSTEM, "account", r) for r in rows}


def _sheet(data: bytes) -> Any:
    book = load_workbook(io.BytesIO(data))
    return book.worksheets[0]


def _export_link(page: str, fmt: str) -> str:
    found = re.findall(r'href="([^"]*/export\?format=' + fmt + r'[^"]*)"', page)
    assert found, "no export link on the list screen"
    return html.unescape(found[0])


def test_list_screen_exports_its_filters_sort_and_columns_typed_in_the_users_language(make_app: Any, hidden_bundle: Path) -> None:
    app = make_app(hidden_bundle)
    _seed(app.state.runtime)
    client = login(app, "mgr", ("manager",))
    client.cookies.set("loom_locale", "zh")
    page = client.get("/m/account", params={"category": "key", "sort": "name",
                                            "columns": "name,credit_limit,employees,founded,active,tags,notes"})
    assert page.status_code == 200
    got = client.get(_export_link(page.text, "xlsx"))
    assert got.status_code == 200 and got.headers["content-type"].startswith("application/vnd.openxmlformats")
    sheet = _sheet(got.content)
    rows = list(sheet.iter_rows())
    assert [c.value for c in rows[0]] == ["名称", "信用额度", "员工数", "成立日期", "有效", "标签", "备注"]
    assert [r[0].value for r in rows[1:]] == sorted(["Alpha", "Bravo", RISKY[3]])  # filtered and sorted as the list
    alpha = rows[[r[0].value for r in rows].index("Alpha")]
    assert alpha[1].value == 1234.5 and alpha[1].data_type == "n" and "¥" in alpha[1].number_format
    assert alpha[2].value == 12 and alpha[2].data_type == "n"
    assert alpha[3].value == dt.datetime(2020, 5, 17) and alpha[3].is_date and "yy" in alpha[3].number_format
    assert alpha[4].value is True and alpha[5].value == "Vip, Partner"
    for row in rows[1:]:  # text that a spreadsheet would run stays text
        for c in row:
            if isinstance(c.value, str) and c.value[:1] in "=+-@":
                assert c.data_type == "s", c.value
    assert {rows[i][6].value for i in range(1, 4)} == {RISKY[0], RISKY[1], RISKY[2]}
    assert rows[[r[0].value for r in rows].index(RISKY[3])][0].data_type == "s"
    csv_got = client.get(_export_link(page.text, "csv"))
    text = csv_got.content.decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == ["名称", "信用额度", "员工数", "成立日期", "有效", "标签", "备注"]
    assert [r[0] for r in table[1:]] == sorted(["Alpha", "Bravo", "'" + RISKY[3]], key=lambda s: s.lstrip("'"))
    assert next(r for r in table if r[0] == "Alpha")[1:5] == ["1234.50", "12", "2020-05-17", "是"]
    assert {r[6] for r in table[1:]} == {"'" + r for r in RISKY[:3]}


def test_api_export_writes_only_readable_fields_and_refuses_without_the_right(make_app: Any, hidden_bundle: Path) -> None:
    app = make_app(hidden_bundle)
    _seed(app.state.runtime)
    manager = login(app, "mgr", ("manager",))
    got = manager.get("/api/account/export/csv", params={"columns": "all", "sort": "-credit_limit"})
    assert got.status_code == 200, got.text
    table = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"))))
    assert "Secret score" not in table[0] and "Name" in table[0] and "Credit limit" in table[0]
    assert str(SECRET) not in got.text
    names = [r[table[0].index("Name")] for r in table[1:]]
    assert names == ["Alpha", "Bravo", "Zulu", "'" + RISKY[3]]
    xlsx = manager.get("/api/account/export/xlsx", params={"columns": "all", "category": "general"})
    sheet = _sheet(xlsx.content)
    cells = [c.value for row in sheet.iter_rows() for c in row]
    assert "Secret score" not in cells and SECRET not in cells and "Zulu" in cells and "Alpha" not in cells
    refused = manager.get("/api/account/export/xlsx", params={"columns": "name,secret_score"})
    assert refused.status_code == 422 and "secret_score" in refused.text
    sneaky = manager.get("/api/account/export/csv", params={"secret_score": str(SECRET)})  # no filter oracle either
    assert sneaky.status_code == 422
    assert manager.get("/api/account/export/pdf").status_code == 422
    rep = login(app, "rep1", ("rep",))
    assert rep.get("/api/account/export/csv").status_code == 403
    assert rep.get("/m/account/export", params={"format": "xlsx"}).status_code == 403


def _loom(runtime: Runtime, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "engine.cli", *args, "--metadata", str(runtime.settings.metadata), "--db",
           runtime.db.url.render_as_string(hide_password=False)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_loom_export_command_filters_sorts_and_types(runtime: Runtime, tmp_path: Path) -> None:
    _seed(runtime)
    out = tmp_path / "key.xlsx"
    done = _loom(runtime, "export", "account", "--filter", "category=key", "--filter", "credit_limit__gte=50", "--sort=-credit_limit",
                 "--columns", "name,credit_limit,founded,secret_score", "--locale", "zh", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "2 rows written" in done.stdout
    rows = [[c.value for c in r] for r in _sheet(out.read_bytes()).iter_rows()]
    assert rows == [["名称", "信用额度", "成立日期", "秘密积分"], ["Alpha", 1234.5, dt.datetime(2020, 5, 17), SECRET],
                    ["Bravo", 99, dt.datetime(2021, 1, 2), SECRET]]
    csv_out = tmp_path / "all.csv"
    assert _loom(runtime, "export", "account", "-o", str(csv_out)).returncode == 0
    text = csv_out.read_text(encoding="utf-8-sig")
    assert text.splitlines()[0].startswith("Code,Name,Category") and "'@SUM(A1)" in text
    bad = _loom(runtime, "export", "account", "--filter", "nosuch=1", "-o", str(tmp_path / "x.csv"))
    assert bad.returncode == 1 and "nosuch" in bad.stderr and "Traceback" not in bad.stderr


def test_columns_sharing_a_label_keep_both_values(runtime: Runtime) -> None:
    """The writer keys cells by heading: a repeated heading is told apart by its field name, no column is lost."""
    from engine.io.export import Column, unique_headers, write_xlsx

    module = runtime.spec.module("account")
    cols = [Column(module.field("name"), "Name", "text"), Column(module.field("notes"), "Name", "text"),
            Column(module.field("employees"), "Staff", "integer")]
    assert unique_headers(cols) == ["Name (name)", "Name (notes)", "Staff"]
    out = io.BytesIO()
    assert write_xlsx(out, cols, iter([["Acme", "=1+1", 7], [None, "n", None]])) == 2
    sheet = load_workbook(io.BytesIO(out.getvalue())).active
    assert [[c.value for c in row] for row in sheet.iter_rows()] == [["Name (name)", "Name (notes)", "Staff"], ["Acme", "=1+1", 7],
                                                                     [None, "n", None]]
    assert sheet["B2"].data_type == "s" and sheet["A1"].font.b and sheet.freeze_panes == "A2"


def test_values_excel_cannot_hold_still_export(runtime: Runtime) -> None:
    """Excel's dates start in 1900 and a cell holds 32,767 characters: an older date goes out as ISO text and longer
    text is cut at the limit, instead of failing the export."""
    from engine.io.export import Column, write_xlsx

    module = runtime.spec.module("account")
    cols = [Column(module.field("notes"), "Notes", "text"), Column(module.field("founded"), "Founded", "date")]
    out = io.BytesIO()
    assert write_xlsx(out, cols, iter([["x" * 40_000, dt.date(1700, 1, 2)], ["New", dt.date(2020, 5, 17)]])) == 2
    sheet = load_workbook(io.BytesIO(out.getvalue())).active
    assert sheet["A2"].value == "x" * 32_767
    assert sheet["B2"].value == "1700-01-02" and sheet["B2"].data_type == "s"
    assert sheet["B3"].value == dt.datetime(2020, 5, 17) and sheet["B3"].is_date


def test_sheet_names_excel_refuses_are_made_acceptable() -> None:
    from engine.io.export import sheet_name

    assert sheet_name("报价/合同") == "报价 合同"
    assert sheet_name("'Quotes [2026]: *?'") == "Quotes  2026"
    assert sheet_name("x" * 40) == "x" * 31 and sheet_name("''") == "Export"


def test_a_long_export_has_every_row_once_in_order_typed_and_linked(runtime: Runtime) -> None:
    """Past the first page the rows come straight from the driver's cursor: none is lost or repeated at the seams,
    and they keep the types and link titles the first page has."""
    import sqlalchemy as sa

    from engine.io.export import PAGE, export

    parent = records.create(runtime, SYSTEM, "account", {"name": "Parent Co"})
    count = 2 * PAGE + 5
    stamp = dt.datetime(2026, 11, 1)
    with runtime.db.begin() as conn:
        conn.execute(sa.insert(runtime.tables["account"]), [
            {"name": f"Firm {i:05d}", "parent": parent["id"] if i % 2 else None, "founded": dt.date(2000, 1, 1) + dt.timedelta(days=i % 400),
             "active": i % 3 == 0, "credit_limit": Decimal(i) / 4, "created_at": stamp, "updated_at": stamp, "version": 1}
            for i in range(count)])
    params = [("columns", "name,parent,founded,active,credit_limit"), ("sort", "name"), ("name__startswith", "Firm")]
    book = io.BytesIO()
    assert export(runtime, SYSTEM, "account", params, "xlsx", book) == count
    got = [[c.value for c in r] for r in _sheet(book.getvalue()).iter_rows(min_row=2)]
    assert [r[0] for r in got] == [f"Firm {i:05d}" for i in range(count)]
    for i in (0, 1, PAGE - 1, PAGE, PAGE + 1, count - 1):
        assert got[i] == [f"Firm {i:05d}", "Parent Co" if i % 2 else None, dt.datetime(2000, 1, 1) + dt.timedelta(days=i % 400),
                          i % 3 == 0, i / 4], i
    text = io.BytesIO()
    assert export(runtime, SYSTEM, "account", params, "csv", text) == count
    lines = text.getvalue().decode("utf-8-sig").splitlines()
    assert len(lines) == count + 1 and lines[PAGE + 2].startswith(f"Firm {PAGE + 1:05d},Parent Co,")
