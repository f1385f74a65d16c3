"""Spreadsheet import: mapping, parsing, links, child rows, dry run, upsert, undo, permissions — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine import records
from engine.access import Actor, SystemAccess
from engine.errors import Conflict, Forbidden, Invalid
from engine.gate import RoleAccess
from engine.io import log
from engine.io.plan import Options
from engine.io.run import execute
from engine.io.undo import undo
from engine.runtime import Runtime

from .io_files import csv_bytes, raw_xlsx, sheet, xlsx

SYSTEM = SystemAccess()


def _file(tmp_path: Path, data: bytes, name: str = "in.xlsx") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _run(rt: Runtime, path: str, module: str = "account", access: Any = SYSTEM, kind: str = "xlsx", **options: Any) -> Any:
    return execute(rt, access, module, path, kind, Options(**options))


def _accounts(rt: Runtime) -> dict[str, dict[str, Any]]:
    table = rt.tables["account"]
    with rt.db.connect() as conn:
        return {r["name"]: dict(r) for r in conn.execute(sa.select(table)).mappings()}


def test_values_parse_through_the_registry_with_title_rows_labels_and_spaces(runtime: Runtime, tmp_path: Path) -> None:
    data = xlsx([
        ["Accounts to load (exported 2026-11-22)"],
        ["名称", "Category ", "Tags", "信用额度", "Employees", "Founded", "active", "Notes"],
        ["Acme  ", "重要客户", "vip, partner", "1,234.50", "1,200", "2026/11/22", "是", "@note +1"],
        ["Beta", "general", "risky", 99, 7.0, 45000, "no", None],
        ["Gamma", "New", None, None, None, "22.11.2026", 1, "  trailing  "],
        [None, None, None, None, None, None, None, None],
    ])
    result = _run(runtime, _file(tmp_path, data))
    assert (result.inserted, result.failed, result.applied, result.header_row) == (3, 0, True, 2), result.problems
    rows = _accounts(runtime)
    acme, beta, gamma = rows["Acme"], rows["Beta"], rows["Gamma"]
    assert acme["category"] == "key" and acme["tags"] == "vip,partner" and acme["credit_limit"] == Decimal("1234.50")
    assert acme["employees"] == 1200 and acme["founded"] == dt.date(2026, 11, 22) and acme["active"] is True
    assert acme["notes"] == "@note +1"
    assert beta["founded"] == dt.date(2023, 3, 15) and beta["active"] is False and beta["employees"] == 7
    assert gamma["founded"] == dt.date(2026, 11, 22) and gamma["active"] is True and gamma["notes"] == "trailing"
    assert acme["code"].startswith("ACC-") and acme["code"] != beta["code"]


@pytest.mark.parametrize(("cells", "stored"), [
    (["是", "否"], [True, False]), (["yes", "no"], [True, False]), (["Yes", "NO"], [True, False]), ([1, 0], [True, False]),
    (["1", "0"], [True, False]), ([True, False], [True, False]), (["true", "false"], [True, False]),
])
def test_yes_and_no_in_every_common_spelling(runtime: Runtime, tmp_path: Path, cells: list[Any], stored: list[bool]) -> None:
    data = xlsx([["Name", "Active"], ["A", cells[0]], ["B", cells[1]]])
    result = _run(runtime, _file(tmp_path, data))
    assert result.inserted == 2 and not result.problems, result.problems
    rows = _accounts(runtime)
    assert [rows["A"]["active"], rows["B"]["active"]] == stored


def test_dry_run_lists_errors_by_row_and_column_and_writes_nothing(runtime: Runtime, tmp_path: Path) -> None:
    data = xlsx([["Name", "Category", "Credit limit", "Employees", "Email"],
                 ["Good", "key", 10, 1, "a@example.com"],
                 ["Bad", "platinum", -5, "many", "not-an-email"],
                 [None, "key", 1, 1, None]])
    path = _file(tmp_path, data)
    preview = _run(runtime, path, dry_run=True)
    found = {(p.row, p.column): (p.value, p.reason) for p in preview.problems}
    assert found[(3, "Category")][0] == "platinum" and "not one of" in found[(3, "Category")][1]
    assert found[(3, "Credit limit")] == ("-5", "must be at least 0")
    assert found[(3, "Employees")] == ("many", "expected a whole number")
    assert "email" in found[(3, "Email")][1]
    assert found[(4, "Name")][1] == "required"
    assert (preview.inserted, preview.failed, preview.applied) == (1, 2, False)
    assert _accounts(runtime) == {}
    applied = _run(runtime, path)
    assert not applied.applied and _accounts(runtime) == {}  # all or nothing
    skipped = _run(runtime, path, on_error="skip")
    assert skipped.applied and set(_accounts(runtime)) == {"Good"}


def test_rows_parsed_in_the_reader_process_import_as_rows_parsed_here(runtime: Runtime, tmp_path: Path) -> None:
    # past the first rows (where the header is looked for), an .xlsx is parsed in its reader process; a CSV here
    rows: list[list[Any]] = [["Title of the export"], ["Name", "Category", "Credit limit", "Employees", "Founded", "Parent"]]
    rows += [[f"Firm {i}", "重要客户" if i % 2 else "general", f"{i},000", i, f"2026/11/{i % 28 + 1}", None] for i in range(1, 31)]
    rows += [["Bad", "platinum", -5, "many", "someday", "Nobody"], [None] * 6, ["Late", "new", 1, 2, "22.11.2026", "Firm 1"]]
    results = {}
    for kind, data in (("xlsx", xlsx(rows)), ("csv", csv_bytes(rows))):
        with runtime.db.begin() as conn:
            conn.execute(sa.delete(runtime.tables["account"]))
        result = _run(runtime, _file(tmp_path, data, f"many.{kind}"), kind=kind, on_error="skip")
        stored = {name: (r["category"], r["credit_limit"], r["employees"], r["founded"]) for name, r in _accounts(runtime).items()}
        results[kind] = (result.inserted, result.failed, sorted((p.row, p.column, p.value, p.reason) for p in result.problems), stored)
    assert results["xlsx"] == results["csv"], (results["xlsx"][:3], results["csv"][:3])
    inserted, failed, problems, stored = results["xlsx"]
    assert (inserted, failed) == (31, 1)
    assert stored["Firm 7"] == ("key", Decimal("7000.00"), 7, dt.date(2026, 11, 8)) and stored["Late"][3] == dt.date(2026, 11, 22)
    by_column = {column: (row, value) for row, column, value, _ in problems}
    assert by_column == {"Category": (33, "platinum"), "Credit limit": (33, "-5"), "Employees": (33, "many"), "Founded": (33, "someday"),
                         "Parent": (33, "Nobody")}


def test_upsert_twice_changes_nothing_the_second_time_and_shows_diffs(runtime: Runtime, tmp_path: Path) -> None:
    records.create(runtime, SYSTEM, "account", {"name": "Acme", "credit_limit": 5, "category": "new"})
    data = xlsx([["Name", "Category", "Credit limit"], ["Acme", "Key", "1,000"], ["Beta", "General", 2]])
    path = _file(tmp_path, data)
    preview = _run(runtime, path, mode="upsert", dry_run=True)
    assert (preview.inserted, preview.updated, preview.skipped) == (1, 1, 0)
    diff = preview.samples["update"][0]["diff"]
    assert diff["Category"] == ["New", "Key"] and diff["Credit limit"] == ["¥5.00", "¥1,000.00"]
    first = _run(runtime, path, mode="upsert")
    assert (first.inserted, first.updated, first.applied) == (1, 1, True)
    before = _accounts(runtime)
    second = _run(runtime, path, mode="upsert")
    assert (second.inserted, second.updated, second.skipped) == (0, 0, 2)
    assert _accounts(runtime) == before
    assert _run(runtime, path, mode="insert").failed == 2  # keys exist already
    missing = _run(runtime, _file(tmp_path, xlsx([["Name", "Notes"], ["Nobody", "x"]]), "m.xlsx"), mode="update")
    assert missing.problems[0].reason == "no record with this key"


def test_links_resolve_by_title_code_or_id_and_report_missing_or_ambiguous(runtime: Runtime, tmp_path: Path) -> None:
    parent = records.create(runtime, SYSTEM, "account", {"name": "Parent Co"})
    records.create(runtime, SYSTEM, "contact", {"full_name": "Twin"})
    records.create(runtime, SYSTEM, "contact", {"full_name": "Twin"})
    data = xlsx([["Name", "Parent"], ["By title", "Parent Co"], ["By code", parent["code"]], ["By id", f"#{parent['id']}"],
                 ["Child of new", "By title"], ["Missing", "Nope Ltd"]])
    result = _run(runtime, _file(tmp_path, data), on_error="skip")
    rows = _accounts(runtime)
    assert rows["By title"]["parent"] == rows["By code"]["parent"] == rows["By id"]["parent"] == parent["id"]
    assert rows["Child of new"]["parent"] == rows["By title"]["id"]  # a row earlier in the same file
    assert [(p.row, p.column, p.value) for p in result.problems] == [(6, "Parent", "Nope Ltd")]
    contacts = _run(runtime, _file(tmp_path, xlsx([["Title", "Account"], ["Deal", "Parent Co"]]), "d.xlsx"), module="deal")
    assert contacts.inserted == 1
    twins = xlsx([["Name", "Account"], ["X", "Twin"]])
    deal_accounts = _run(runtime, _file(tmp_path, twins, "t.xlsx"), module="contact", dry_run=True)
    assert deal_accounts.problems[0].reason.startswith("no account")  # contacts are not accounts
    records.create(runtime, SYSTEM, "account", {"name": "Dup"})
    with runtime.db.begin() as conn:  # two accounts with one title (a title need not be unique in general)
        conn.execute(sa.update(runtime.tables["account"]).where(runtime.tables["account"].c.name == "Dup").values(name="Parent Co 2"))
    assert _run(runtime, _file(tmp_path, xlsx([["Title", "Account"], ["D2", "Parent Co 2"]]), "e.xlsx"), module="deal").inserted == 1


def test_a_title_that_two_records_share_is_an_error_for_that_row(bundle_copy: Path, db_url: str, tmp_path: Path) -> None:
    from engine.migrate import ensure_schema
    from engine.runtime import Settings, make_engine, open_runtime

    spec = bundle_copy / "modules" / "deal.yaml"
    link = "  - {name: contact, type: link, module: contact}\n"
    spec.write_text(spec.read_text().replace("  - {name: account, type: link,", link + "  - {name: account, type: link,", 1))
    rt = open_runtime(Settings(metadata=bundle_copy, db_url=db_url), db=make_engine(db_url))
    ensure_schema(rt)
    try:
        twins = [records.create(rt, SYSTEM, "contact", {"full_name": "Twin"})["id"] for _ in range(2)]
        records.create(rt, SYSTEM, "contact", {"full_name": "Single"})
        data = xlsx([["Title", "Contact"], ["D1", "Twin"], ["D2", "Single"], ["D3", f"#{twins[1]}"]])
        result = _run(rt, _file(tmp_path, data), module="deal", on_error="skip")
        assert [(p.row, p.column, p.value) for p in result.problems] == [(2, "Contact", "Twin")]
        assert "ambiguous" in result.problems[0].reason and "2" in result.problems[0].reason
        with rt.db.connect() as conn:  # the other rows import; the ambiguous one is never guessed
            got = dict(conn.execute(sa.select(rt.tables["deal"].c.title, rt.tables["deal"].c.contact)).all())
        assert set(got) == {"D2", "D3"} and got["D3"] == twins[1]
    finally:
        rt.db.dispose()


def test_child_rows_import_with_their_parent_merged_by_key(runtime: Runtime, tmp_path: Path) -> None:
    data = xlsx([["Title", "Stage", "Amount", "lines.product", "明细.数量", "Lines.Unit price"],
                 ["Big deal", "Proposal", 100, "Widget", 2, 10],
                 ["Big deal", None, None, "Gadget", 1, "5.5"],
                 [None, None, None, "Gizmo", 3, 1],
                 ["Small deal", "Initial", 5, "Widget", 1, 1]])
    path = _file(tmp_path, data)
    result = _run(runtime, path, module="deal", dry_run=True)
    assert result.problems[0].row == 2 and result.problems[0].column == "Close date"  # required when stage is proposal
    fixed = xlsx([["Title", "Stage", "Amount", "Close date", "lines.product", "lines.quantity", "lines.unit_price"],
                  ["Big deal", "Proposal", 100, "2026-12-01", "Widget", 2, 10],
                  ["Big deal", None, None, None, "Gadget", 1, "5.5"],
                  [None, None, None, None, "Gizmo", 3, 1],
                  ["Small deal", "Initial", 5, None, "Widget", 1, 1]])
    path = _file(tmp_path, fixed, "fixed.xlsx")
    done = _run(runtime, path, module="deal", mode="upsert")
    assert done.applied and done.inserted == 2, done.problems
    big = records.get(runtime, SYSTEM, "deal", done.created[0])
    assert [r["product"] for r in big["lines"]] == ["Widget", "Gadget", "Gizmo"]
    assert big["total"] == Decimal("28.50") and big["present_value"] == Decimal("40.00")
    again = _run(runtime, path, module="deal", mode="upsert")
    assert (again.skipped, again.updated, again.inserted) == (2, 0, 0)
    change = xlsx([["Title", "lines.product", "lines.quantity"], ["Big deal", "Gadget", 4], ["Big deal", "Doohickey", 1]])
    merged = _run(runtime, _file(tmp_path, change, "c.xlsx"), module="deal", mode="update")
    assert merged.updated == 1, merged.problems
    lines = {r["product"]: r for r in records.get(runtime, SYSTEM, "deal", big["id"])["lines"]}
    assert set(lines) == {"Widget", "Gadget", "Gizmo", "Doohickey"} and lines["Gadget"]["quantity"] == Decimal("4.00")
    assert lines["Gadget"]["unit_price"] == Decimal("5.50")  # kept: merged by key, not replaced
    conflict = xlsx([["Title", "Amount", "lines.product"], ["Odd", 1, "A"], ["Odd", 2, "B"]])
    odd = _run(runtime, _file(tmp_path, conflict, "o.xlsx"), module="deal", dry_run=True)
    assert odd.problems[0].column == "Amount" and "different value" in odd.problems[0].reason


def test_bulk_path_writes_exactly_what_the_records_path_writes(runtime: Runtime, tmp_path: Path) -> None:
    from engine.migrate import ensure_schema
    from engine.runtime import Settings, make_engine, open_runtime

    other_url = f"sqlite:///{tmp_path / 'records-path.db'}"
    other = open_runtime(Settings(metadata=runtime.settings.metadata, db_url=other_url), db=make_engine(other_url))
    ensure_schema(other)
    for rt in (runtime, other):
        records.create(rt, SYSTEM, "account", {"name": "Anchor", "category": "key"})
    accounts = xlsx([["Name", "Category", "Tags", "Credit limit", "Balance", "Parent", "Founded", "Active"],
                     *[[f"Co {i}", "general" if i % 2 else None, "vip", i * 10, i * 20, "Anchor" if i % 3 else None,
                        f"2026-01-{i % 28 + 1:02d}", i % 2] for i in range(40)]])
    deals = xlsx([["Title", "Account", "Stage", "Amount", "lines.product", "lines.quantity", "lines.unit_price"],
                  *[[f"Deal {i // 2}", "Anchor", "won", i // 2, f"P{i}", 1, i] for i in range(10)]])
    for rt, bulk in ((runtime, True), (other, False)):
        assert _run(rt, _file(tmp_path, accounts, "a.xlsx"), bulk=bulk).inserted == 40
        assert _run(rt, _file(tmp_path, deals, "d.xlsx"), module="deal", bulk=bulk).inserted == 5
    skip = {"id", "created_at", "updated_at", "parent_id", "at"}
    for name in ("account", "deal", "deal_line", "loom_audit", "loom_counter"):
        got = [_table_rows(rt, name, skip) for rt in (runtime, other)]
        assert got[0] == got[1], name
    other.db.dispose()


def _table_rows(rt: Runtime, name: str, skip: set[str]) -> list[tuple[Any, ...]]:
    table = rt.tables.metadata.tables[name]
    with rt.db.connect() as conn:
        rows = [tuple((k, str(v)) for k, v in sorted(r.items()) if k not in skip) for r in conn.execute(sa.select(table)).mappings()]
    return sorted(rows)


def test_undo_deletes_created_and_restores_updated_records(runtime: Runtime, tmp_path: Path) -> None:
    kept = records.create(runtime, SYSTEM, "account", {"name": "Kept", "employees": 1})
    path = _file(tmp_path, xlsx([["Name", "Employees"], ["Kept", 50], ["New one", 2]]))
    entry_id = log.start(runtime, "account", None, "in.xlsx", "xlsx", path, Options(mode="upsert"))
    result = execute(runtime, SYSTEM, "account", path, "xlsx", Options(mode="upsert"),
                     finish=lambda conn, r: log.record_changes(conn, runtime, entry_id, r))
    log.finish(runtime, entry_id, "done", result)
    assert _accounts(runtime)["Kept"]["employees"] == 50
    counts = undo(runtime, SYSTEM, log.load(runtime, entry_id))
    assert counts == {"deleted": 1, "restored": 1}
    rows = _accounts(runtime)
    assert set(rows) == {"Kept"} and rows["Kept"]["employees"] == 1 and rows["Kept"]["version"] == 3
    assert log.load(runtime, entry_id).status == "undone"
    with pytest.raises(Conflict):
        undo(runtime, SYSTEM, log.load(runtime, entry_id))
    assert kept["id"] == rows["Kept"]["id"]


def test_undo_is_refused_when_a_record_changed_since(runtime: Runtime, tmp_path: Path) -> None:
    path = _file(tmp_path, xlsx([["Name"], ["Fresh"]]))
    entry_id = log.start(runtime, "account", None, "in.xlsx", "xlsx", path, Options())
    result = execute(runtime, SYSTEM, "account", path, "xlsx", Options(), finish=lambda c, r: log.record_changes(c, runtime, entry_id, r))
    log.finish(runtime, entry_id, "done", result)
    records.update(runtime, SYSTEM, "account", result.created[0], {"notes": "edited"}, 1)
    with pytest.raises(Conflict):
        undo(runtime, SYSTEM, log.load(runtime, entry_id))
    assert "Fresh" in _accounts(runtime)


def test_files_from_libreoffice_and_csv_encodings_import_alike(runtime: Runtime, tmp_path: Path) -> None:
    libre = raw_xlsx(sheet([["Name", "Active", "Employees", "Notes"],
                            ["Libre", (True, "TRUE()"), (3, "1+2"), ("joined", 'CONCAT("jo","ined")')]]))
    assert _run(runtime, _file(tmp_path, libre, "libre.xlsx")).inserted == 1
    rows = [["名称", "类别", "有效"], ["中文公司", "重要客户", "是"]]
    for i, (encoding, prefix) in enumerate((("gb18030", b""), ("utf-8", b"\xef\xbb\xbf"), ("utf-8", b""))):
        data = prefix + csv_bytes([[rows[0][0], rows[0][1], rows[0][2]], [f"{rows[1][0]}{i}", rows[1][1], rows[1][2]]], encoding)
        assert _run(runtime, _file(tmp_path, data, f"c{i}.csv"), kind="csv").inserted == 1
    got = _accounts(runtime)
    assert got["Libre"]["active"] is True and got["Libre"]["employees"] == 3 and got["Libre"]["notes"] == "joined"
    assert {got[f"中文公司{i}"]["category"] for i in range(3)} == {"key"}
    semicolons = b"Name;Employees\nSemi;1.234\n"
    assert _run(runtime, _file(tmp_path, semicolons, "s.csv"), kind="csv", on_error="skip").failed == 1


def _role_access(rt: Runtime, user: str, roles: tuple[str, ...]) -> RoleAccess:
    from .conftest import add_test_user

    uid = add_test_user(rt, user, roles)
    return RoleAccess(Actor(uid, user, roles), rt.spec)


@pytest.fixture
def strict_rt(bundle_copy: Path, db_url: str) -> Any:
    """The test bundle with managers limited: secret_score read-only, writes only on their own accounts."""
    from engine.migrate import ensure_schema
    from engine.runtime import Settings, make_engine, open_runtime

    spec = bundle_copy / "modules" / "account.yaml"
    text = spec.read_text().replace("manager: {read: department_tree, create: true, write: department_tree,",
                                    "manager: {fields: {secret_score: read}, read: all, create: true, write: self,")
    assert "write: self," in text
    spec.write_text(text)
    rt = open_runtime(Settings(metadata=bundle_copy, db_url=db_url), db=make_engine(db_url))
    ensure_schema(rt)
    yield rt
    rt.db.dispose()


def test_permissions_import_action_writable_fields_and_row_scope(strict_rt: Runtime, tmp_path: Path) -> None:
    runtime = strict_rt
    rep = _role_access(runtime, "rep1", ("rep",))
    manager = _role_access(runtime, "mgr", ("manager",))
    path = _file(tmp_path, xlsx([["Name", "Employees"], ["Mine", 1]]))
    with pytest.raises(Forbidden):
        _run(runtime, path, access=rep)
    assert _run(runtime, path, access=manager).inserted == 1
    computed = _file(tmp_path, xlsx([["Name", "Over limit", "Code"], ["Calc", "yes", "X-1"]]), "c.xlsx")
    assert _run(runtime, computed, access=manager).inserted == 1  # computed columns are ignored, not imported
    deal = _file(tmp_path, xlsx([["Title", "lines.product"], ["D", "P"]]), "d.xlsx")
    with pytest.raises(Forbidden):
        _run(runtime, deal, module="deal", access=manager)  # no import right on deals
    secret = _file(tmp_path, xlsx([["Name", "Secret score"], ["S", 1]]), "s.xlsx")
    with pytest.raises(Invalid) as caught:
        _run(runtime, secret, access=manager)
    assert caught.value.fields == {"Secret score": "you may not write this field"}
    records.create(runtime, SYSTEM, "account", {"name": "Theirs", "owner": None})
    update = _run(runtime, _file(tmp_path, xlsx([["Name", "Employees"], ["Theirs", 5], ["Mine", 9]]), "u.xlsx"),
                  access=manager, mode="update", on_error="skip")
    assert update.updated == 1 and "outside your scope" in update.problems[0].reason, update.problems
    rows = _accounts(runtime)
    assert rows["Theirs"]["employees"] is None and rows["Mine"]["employees"] == 9


def test_undo_needs_the_import_right(strict_rt: Runtime, tmp_path: Path) -> None:
    path = _file(tmp_path, xlsx([["Name"], ["Imported"]]))
    entry_id = log.start(strict_rt, "account", None, "in.xlsx", "xlsx", path, Options())
    result = execute(strict_rt, SYSTEM, "account", path, "xlsx", Options(), finish=lambda c, r: log.record_changes(c, strict_rt, entry_id, r))
    log.finish(strict_rt, entry_id, "done", result)
    with pytest.raises(Forbidden):
        undo(strict_rt, _role_access(strict_rt, "rep1", ("rep",)), log.load(strict_rt, entry_id))  # reps may delete, not import
    assert "Imported" in _accounts(strict_rt) and log.load(strict_rt, entry_id).status == "done"


def test_mapping_can_be_confirmed_or_corrected(runtime: Runtime, tmp_path: Path) -> None:
    path = _file(tmp_path, xlsx([["Company", "Headcount", "Remarks"], ["Mapped", 4, "x"]]))
    with pytest.raises(Exception) as caught:
        _run(runtime, path)
    assert "no header row" in str(caught.value)
    good = _file(tmp_path, xlsx([["Name", "Headcount", "Remarks"], ["Mapped", 4, "x"]]), "g.xlsx")
    result = _run(runtime, good, mapping=("name", "employees", None))
    assert result.inserted == 1 and _accounts(runtime)["Mapped"]["employees"] == 4 and _accounts(runtime)["Mapped"]["notes"] is None
    with pytest.raises(Invalid) as twice:
        _run(runtime, good, mapping=("name", "name", None))
    assert "mapped twice" in str(twice.value.fields)
    with pytest.raises(Invalid):
        _run(runtime, good, mode="sideways")
