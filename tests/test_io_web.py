"""The import screens and API: upload → confirm or correct the mapping → dry run with diffs → apply → undo, the
background job polled by HTMX, the import log, and the error report fixed and uploaded again — SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import re
import time
from typing import Any

import sqlalchemy as sa
from openpyxl import load_workbook

from engine import records
from engine.access import SystemAccess
from engine.runtime import Runtime

from .conftest import login
from .io_files import csv_bytes, xlsx

SYSTEM = SystemAccess()
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _accounts(rt: Runtime) -> dict[str, dict[str, Any]]:
    table = rt.tables["account"]
    with rt.db.connect() as conn:
        return {r["name"]: dict(r) for r in conn.execute(sa.select(table)).mappings()}


def _upload(client: Any, module: str, data: bytes, name: str = "in.xlsx", **form: str) -> str:
    """Upload a file on the import screen; returns the job page's path."""
    done = client.post(f"/m/{module}/import", files={"file": (name, data, XLSX)}, data=form, follow_redirects=False)
    assert done.status_code == 303, done.text
    return str(done.headers["location"])


def _selected(page: str) -> list[str]:
    """The field chosen for each column on the mapping page ('' = not imported)."""
    out = []
    for select in re.findall(r'<select name="col\d+">(.*?)</select>', page, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', select)
        out.append(chosen.group(1) if chosen else "")
    return out


def _wait(client: Any, job: str, timeout: float = 60) -> str:
    """Poll the progress fragment as HTMX does until the job ends; returns the final page."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        polled = client.get(job + "/progress", headers={"HX-Request": "true"})
        if polled.status_code == 204:
            assert polled.headers["HX-Refresh"] == "true"
            return str(client.get(job).text)
        assert polled.status_code == 200 and "<progress" in polled.text and 'hx-trigger="every 1s"' in polled.text
        time.sleep(0.1)
    raise AssertionError("the import did not finish")


def test_upload_correct_mapping_preview_diff_apply_and_undo(make_app: Any) -> None:
    app = make_app()
    rt = app.state.runtime
    acme = records.create(rt, SYSTEM, "account", {"name": "Acme", "employees": 5, "category": "new"})
    same = records.create(rt, SYSTEM, "account", {"name": "Same Co", "employees": 7, "category": "general", "notes": "as is"})
    admin = login(app, "boss", ("admin",))
    data = xlsx([["名称", "Headcount", "Remarks", "Category"], ["Acme", 50, "big", "重要客户"], ["New Co", "1,234", "fresh", "general"],
                 ["Same Co", 7, "as is", "general"]])
    job = _upload(admin, "account", data, mode="upsert")
    mapping = admin.get(job)
    assert mapping.status_code == 200 and "Headcount" in mapping.text
    assert _selected(mapping.text) == ["name", "", "", "category"]  # proposed; the user corrects it before anything is written
    assert _accounts(rt)["Acme"]["employees"] == 5
    form = {"col0": "name", "col1": "employees", "col2": "notes", "col3": "category", "mode": "upsert", "key": "name", "on_error": "rollback"}
    assert admin.post(job + "/mapping", data=form, follow_redirects=False).status_code == 303
    preview = _wait(admin, job)
    assert "Preview" in preview or "nothing" in preview.lower()
    assert re.search(r"<del>5</del></td><td><ins>50</ins>", preview) and "<del>New</del></td><td><ins>Key</ins>" in preview
    assert "New Co" in preview and set(_accounts(rt)) == {"Acme", "Same Co"}  # the dry run wrote nothing
    skipped = preview.split('class="list skipped"', 1)[1].split("</table>", 1)[0]  # the unchanged rows, listed
    assert re.search(rf'<td>4</td><td><a href="[^"]*/m/account/{same["id"]}">#{same["id"]}</a></td>', skipped) and "<td>2</td>" not in skipped
    assert admin.post(job + "/apply", follow_redirects=False).status_code == 303
    done = _wait(admin, job)
    assert "Import finished" in done or "done" in done
    rows = _accounts(rt)
    assert rows["Acme"]["employees"] == 50 and rows["Acme"]["notes"] == "big" and rows["New Co"]["employees"] == 1234
    log_page = admin.get("/m/account/import").text
    import_id = job.rsplit("/", 1)[1]
    assert f">{import_id}</a>" in log_page and "done" in log_page
    assert admin.post(job + "/undo", follow_redirects=False).status_code == 303
    _wait(admin, job)
    rows = _accounts(rt)
    assert set(rows) == {"Acme", "Same Co"} and rows["Acme"]["employees"] == 5 and rows["Acme"]["id"] == acme["id"]
    assert "undone" in admin.get("/m/account/import").text


def test_long_import_runs_in_the_background_with_polled_progress(make_app: Any) -> None:
    app = make_app(import_wait=0)
    admin = login(app, "boss", ("admin",))
    rows = [["Name", "Employees", "Founded", "Active"]] + [[f"Bulk {i:05d}", i, "2026-11-22", "yes"] for i in range(6000)]
    job = _upload(admin, "account", xlsx(rows))
    form = {"col0": "name", "col1": "employees", "col2": "founded", "col3": "active", "mode": "insert"}
    assert admin.post(job + "/mapping", data=form, follow_redirects=False).status_code == 303
    running = admin.get(job).text
    assert 'id="progress"' in running and "/progress" in running  # left and come back: the job page shows the bar
    preview = _wait(admin, job)
    assert "6000" in preview
    admin.post(job + "/apply", follow_redirects=False)
    _wait(admin, job)
    assert len(_accounts(app.state.runtime)) == 6000
    status = admin.get("/api/account/import/" + job.rsplit("/", 1)[1]).json()
    assert status["status"] == "done" and status["inserted"] == 6000 and status["applied"] is True


def test_error_report_can_be_fixed_and_uploaded_again(make_app: Any) -> None:
    app = make_app()
    rt = app.state.runtime
    admin = login(app, "boss", ("admin",))
    data = xlsx([["Title", "Stage", "Amount", "Lines.Product", "Lines.Quantity"],
                 ["Good deal", "won", 10, "Widget", 1],
                 ["Bad deal", "won", "lots", "Gadget", 2],
                 [None, None, None, "Gizmo", "many"],
                 [None, None, None, "Doohickey", 4],
                 ["Other", "nope", 1, None, None]])
    job = _upload(admin, "deal", data)
    admin.post(job + "/mapping", data={"col0": "title", "col1": "stage", "col2": "amount", "col3": "lines.product",
                                       "col4": "lines.quantity", "mode": "insert"})
    page = _wait(admin, job)
    assert "<li>Rows with errors: 2</li>" in page and "errors.xlsx" in page
    report = admin.get(job + "/errors.xlsx")
    assert report.status_code == 200 and report.headers["content-type"] == XLSX
    book = load_workbook(io.BytesIO(report.content))
    sheet = book.worksheets[0]
    got = [[c.value for c in row] for row in sheet.iter_rows()]
    assert got[0] == ["Errors", "Title", "Stage", "Amount", "Lines.Product", "Lines.Quantity"]
    assert [r[1:] for r in got[1:]] == [["Bad deal", "won", "lots", "Gadget", 2], [None, None, None, "Gizmo", "many"],
                                        [None, None, None, "Doohickey", 4], ["Other", "nope", 1, None, None]]
    assert "Amount" in got[1][0] and "Lines.Quantity" in got[2][0] and "Stage" in got[4][0]
    assert got[3][0] == "belongs to the record of row 3, which has errors"
    assert _count(rt, "deal") == 0  # all or nothing
    sheet["D2"] = 7
    sheet["F3"] = 3
    sheet["C5"] = "Initial"
    sheet["J5"] = "x"  # a stray cell in an unnamed column is not imported
    fixed = io.BytesIO()
    book.save(fixed)
    again = _upload(admin, "deal", fixed.getvalue(), "fixed.xlsx")
    mapping = admin.get(again).text
    assert _selected(mapping)[:6] == ["", "title", "stage", "amount", "lines.product", "lines.quantity"]
    form = {f"col{i}": v for i, v in enumerate(_selected(mapping)) if v} | {"mode": "insert"}
    admin.post(again + "/mapping", data=form)
    preview = _wait(admin, again)
    assert "<li>Rows with errors: 0</li>" in preview and "errors.xlsx" not in preview
    admin.post(again + "/apply")
    _wait(admin, again)
    deals = {d["title"]: d for d in (records.get(rt, SYSTEM, "deal", i) for i in _ids(rt, "deal"))}
    assert set(deals) == {"Bad deal", "Other"} and deals["Other"]["stage"] == "initial"
    assert [(r["product"], r["quantity"]) for r in deals["Bad deal"]["lines"]] == [("Gadget", 2), ("Gizmo", 3), ("Doohickey", 4)]


def _ids(rt: Runtime, module: str) -> list[int]:
    with rt.db.connect() as conn:
        return list(conn.execute(sa.select(rt.tables[module].c.id)).scalars())


def _count(rt: Runtime, module: str) -> int:
    return len(_ids(rt, module))


def test_api_import_dry_run_apply_status_undo_and_rights(make_app: Any) -> None:
    app = make_app()
    rt = app.state.runtime
    admin = login(app, "boss", ("admin",))
    rows = [["客户名称", "类别", "有效", "成立日期"], ["北京公司", "重要客户", "是", "2026/11/22"], ["上海公司", "一般客户", "否", "22.11.2026"]]
    data = csv_bytes(rows, "gb18030")
    files = {"file": ("gb.csv", data, "text/csv")}
    mapping = json.dumps({"客户名称": "name"})
    dry = admin.post("/api/account/import", files=files, data={"dry_run": "1", "mapping": mapping})
    assert dry.status_code == 200, dry.text
    body = dry.json()
    assert body["status"] == "previewed" and body["inserted"] == 2 and body["problems"] == [] and _count(rt, "account") == 0
    assert body["mapping"] == ["name", "category", "active", "founded"]
    done = admin.post("/api/account/import", files=files, data={"mapping": mapping}).json()
    assert done["status"] == "done" and done["inserted"] == 2
    rows = _accounts(rt)
    assert rows["北京公司"]["category"] == "key" and rows["上海公司"]["active"] is False
    status = admin.get(f"/api/account/import/{done['import_id']}").json()
    assert status["status"] == "done" and status["applied"] is True
    undone = admin.post(f"/api/account/import/{done['import_id']}/undo").json()
    assert undone == {"import_id": done["import_id"], "status": "undone", "deleted": 2, "restored": 0}
    assert _count(rt, "account") == 0
    bad = admin.post("/api/account/import", files={"file": ("b.csv", b"Name,Employees\nX,many\n", "text/csv")})
    assert bad.status_code == 422 and bad.json()["problems"][0]["column"] == "Employees" and _count(rt, "account") == 0
    wrong = admin.post("/api/account/import", files=files, data={"mapping": "[1]"})
    assert wrong.status_code == 422 and "mapping" in wrong.json()["error"]["fields"]
    rep = login(app, "rep1", ("rep",))
    assert rep.post("/api/account/import", files=files).status_code == 403
    assert rep.get(f"/api/account/import/{done['import_id']}").status_code == 404  # another user's import
    assert rep.get("/m/account/import").status_code == 403
    assert _count(rt, "account") == 0
