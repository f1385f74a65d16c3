"""Data scope in SQL: self, own department, department tree (any depth, managed departments), shares, the
unowned pool — and a record out of scope answers exactly like one that does not exist."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from engine import listing, records
from engine.access import Actor, SystemAccess
from engine.auth import departments
from engine.errors import NotFound
from engine.gate import RoleAccess
from engine.query import parse_list_query

from .conftest import TEST_BUNDLE, add_test_user, login

DEPARTMENT = """name: department
label: {en: Department, zh: 部门}
title_field: name
tree: true
fields:
  - {name: name, type: text, required: true, label: {en: Name, zh: 名称}}
  - {name: parent, type: link, module: department, label: {en: Parent, zh: 上级}}
layout:
  list: {columns: [name, parent], search: [name], sort: name}
permissions:
  rep: {read: all}
  lead: {read: all}
  manager: {read: all}
"""


def org_bundle(tmp_path: Path) -> Path:
    """The test bundle with a department tree and a `lead` role that reaches its own department."""
    bundle = tmp_path / "org"
    shutil.copytree(TEST_BUNDLE, bundle)
    (bundle / "modules" / "department.yaml").write_text(DEPARTMENT)
    app = (bundle / "app.yaml").read_text()
    app = app.replace("  - {name: manager, label: {en: Manager, zh: 经理}}",
                      "  - {name: manager, label: {en: Manager, zh: 经理}}\n  - {name: lead, label: {en: Lead, zh: 组长}}")
    (bundle / "app.yaml").write_text(app + "departments: department\n")
    account = bundle / "modules" / "account.yaml"
    text = account.read_text().replace("rep: {read: self, create: true, write: self, unowned: true,",
                                       "rep: {read: self, create: true, write: self, share: self, unowned: true,")
    text = text.replace("permissions:\n", "permissions:\n  lead: {read: department, write: department, share: department}\n")
    account.write_text(text)
    return bundle


class Org:
    """Departments Root > Sales > East > East-1, and Other; a user and an account in each."""

    def __init__(self, app: Any) -> None:
        self.app, self.rt = app, app.state.runtime
        dept: dict[str, int] = {}
        for name, parent in (("Root", None), ("Sales", "Root"), ("East", "Sales"), ("East-1", "East"), ("Other", "Root")):
            dept[name] = records.create(self.rt, SystemAccess(), "department", {"name": name, "parent": dept.get(parent or "")})["id"]
        self.dept = dept
        self.users = {
            "mgr": add_test_user(self.rt, "mgr", ("manager",), department_id=dept["Sales"]),
            "lead": add_test_user(self.rt, "lead", ("lead",), department_id=dept["East"]),
            "east": add_test_user(self.rt, "east", ("rep",), department_id=dept["East"]),
            "east1": add_test_user(self.rt, "east1", ("rep",), department_id=dept["East-1"]),
            "root": add_test_user(self.rt, "root", ("rep",), department_id=dept["Root"]),
            "other": add_test_user(self.rt, "other", ("rep",), department_id=dept["Other"]),
            "loner": add_test_user(self.rt, "loner", ("lead",)),
        }
        self.accounts = {who: records.create(self.rt, SystemAccess(), "account", {"name": f"acc-{who}", "owner": uid})["id"]
                         for who, uid in self.users.items()}

    def visible(self, username: str) -> set[str]:
        """Account names the user's list shows."""
        uid = self.users[username]
        with self.rt.db.connect() as conn:
            user = conn.execute(sa.text("SELECT roles, department_id FROM loom_user WHERE id = :i"), {"i": uid}).one()
        access = RoleAccess(Actor(uid, username, tuple(user.roles.split(",")), user.department_id), self.rt.spec)
        module = self.rt.spec.module("account")
        page = listing.list_page(self.rt, access, "account", parse_list_query(module, {"limit": "100"}, set(access.readable(module))))
        return {r["name"] for r in page.items}


def test_department_tree_of_any_depth(make_app: Callable[..., Any], tmp_path: Path) -> None:
    org = Org(make_app(org_bundle(tmp_path)))
    assert org.visible("mgr") == {"acc-mgr", "acc-lead", "acc-east", "acc-east1"}
    assert org.visible("east") == {"acc-east"}
    assert org.visible("root") == {"acc-root"}


def test_own_department_only_and_managed_departments(make_app: Callable[..., Any], tmp_path: Path) -> None:
    org = Org(make_app(org_bundle(tmp_path)))
    assert org.visible("lead") == {"acc-lead", "acc-east"}
    assert org.visible("loner") == {"acc-loner"}
    with org.rt.db.begin() as conn:
        departments.set_managed(conn, org.rt, org.users["loner"], [org.dept["Other"]])
        departments.set_managed(conn, org.rt, org.users["lead"], [org.dept["East-1"]])
    assert org.visible("loner") == {"acc-loner", "acc-other"}
    assert org.visible("lead") == {"acc-lead", "acc-east", "acc-east1"}


def test_a_deep_tree_and_a_cycle_stay_one_statement(make_app: Callable[..., Any], tmp_path: Path) -> None:
    org = Org(make_app(org_bundle(tmp_path)))
    parent = org.dept["East-1"]
    for depth in range(40):
        parent = records.create(org.rt, SystemAccess(), "department", {"name": f"d{depth}", "parent": parent})["id"]
    deep = add_test_user(org.rt, "deep", ("rep",), department_id=parent)
    records.create(org.rt, SystemAccess(), "account", {"name": "acc-deep", "owner": deep})
    assert "acc-deep" in org.visible("mgr")
    table = org.rt.tables["department"]
    with org.rt.db.begin() as conn:
        conn.execute(sa.update(table).where(table.c.id == org.dept["Sales"]).values(parent=org.dept["East-1"]))
    assert "acc-deep" in org.visible("mgr") and "acc-root" not in org.visible("mgr")


def test_shared_records_reach_a_user_or_a_department(make_app: Callable[..., Any], tmp_path: Path) -> None:
    app = make_app(org_bundle(tmp_path))
    org = Org(app)
    east, east1, other = login(app, "east"), login(app, "east1"), login(app, "other")
    mine = org.accounts["east"]
    assert east1.get(f"/api/account/{mine}").status_code == 404
    assert east.post(f"/api/account/{mine}/shares", json={"user": org.users["east1"]}).status_code == 201
    seen = east1.get(f"/api/account/{mine}")
    assert seen.status_code == 200 and seen.json()["name"] == "acc-east"
    assert "acc-east" in {r["name"] for r in east1.get("/api/account").json()["items"]}
    version = seen.json()["version"]
    assert east1.patch(f"/api/account/{mine}", json={"notes": "x", "version": version}).status_code == 404
    assert east.post(f"/api/account/{mine}/shares", json={"user": org.users["east1"], "access": "write"}).status_code == 201
    assert east1.patch(f"/api/account/{mine}", json={"notes": "x", "version": version}).status_code == 200
    assert other.get(f"/api/account/{mine}").status_code == 404
    assert east.post(f"/api/account/{mine}/shares", json={"department": org.dept["Other"]}).status_code == 201
    assert other.get(f"/api/account/{mine}").status_code == 200
    shares = east.get(f"/api/account/{mine}/shares").json()["items"]
    assert len(shares) == 2
    for share in shares:
        assert east.delete(f"/api/account/{mine}/shares/{share['id']}").status_code == 204
    assert other.get(f"/api/account/{mine}").status_code == 404
    assert east1.get(f"/api/account/{mine}").status_code == 404


def test_sharing_needs_the_share_action_and_the_record_in_scope(make_app: Callable[..., Any], tmp_path: Path) -> None:
    app = make_app(org_bundle(tmp_path))
    org = Org(app)
    east, mgr = login(app, "east"), login(app, "mgr")
    assert east.post(f"/api/account/{org.accounts['root']}/shares", json={"user": org.users["east"]}).status_code == 404
    assert mgr.post(f"/api/account/{org.accounts['east']}/shares", json={"user": org.users["root"]}).status_code == 404
    assert east.post(f"/api/account/{org.accounts['east']}/shares", json={"user": 99999}).status_code == 422
    assert east.post(f"/api/account/{org.accounts['east']}/shares", json={"user": "abc"}).status_code == 422
    assert east.post(f"/api/account/{org.accounts['east']}/shares", json={"user": org.users["root"], "access": "own"}).status_code == 422
    assert east.post(f"/api/contact/{org.accounts['east']}/shares", json={"user": org.users["root"]}).status_code == 404


def test_unowned_records_form_a_pool_only_where_the_rule_says_so(make_app: Callable[..., Any]) -> None:
    app = make_app()
    rt = app.state.runtime
    rep = login(app, "ann", ("rep",))
    pool = records.create(rt, SystemAccess(), "account", {"name": "Pool", "owner": None})["id"]
    table = rt.tables["account"]
    with rt.db.begin() as conn:
        conn.execute(sa.update(table).where(table.c.id == pool).values(owner=None))
    contact = records.create(rt, SystemAccess(), "contact", {"full_name": "Nobody's"})["id"]
    with rt.db.begin() as conn:
        conn.execute(sa.update(rt.tables["contact"]).where(rt.tables["contact"].c.id == contact).values(owner=None))
    assert rep.get(f"/api/account/{pool}").status_code == 200
    assert rep.get(f"/api/contact/{contact}").status_code == 404


def _same(a: Any, b: Any, ids: tuple[int, int]) -> None:
    assert a.status_code == b.status_code
    assert re.sub(rf"\b{ids[0]}\b", "ID", a.text) == re.sub(rf"\b{ids[1]}\b", "ID", b.text)


def test_out_of_scope_answers_exactly_like_absent(make_app: Callable[..., Any]) -> None:
    app = make_app()
    rt = app.state.runtime
    rep = login(app, "ann", ("rep",))
    made = records.create(rt, SystemAccess(), "deal", {"title": "Theirs", "owner": add_test_user(rt, "bob", ("rep",))})["id"]
    theirs, absent = 424242, 434343  # ids that appear nowhere else in a page
    with rt.db.begin() as conn:
        conn.execute(sa.update(rt.tables["deal"]).where(rt.tables["deal"].c.id == made).values(id=theirs))
    for method, suffix, body in (("GET", "", None), ("PATCH", "", {"title": "x", "version": 1}), ("DELETE", "", None),
                                 ("GET", "/shares", None), ("POST", "/actions/none", {})):
        a = rep.request(method, f"/api/deal/{theirs}{suffix}", json=body)
        b = rep.request(method, f"/api/deal/{absent}{suffix}", json=body)
        _same(a, b, (theirs, absent))
        assert a.status_code in (403, 404), (method, suffix, a.status_code)
    screens = [p for p in ("/m/deal/{}", "/m/deal/{}/edit", "/m/deal/{}/timeline", "/m/deal/{}/print")
               if rep.get(p.format(absent)).status_code != 405]
    for path in screens:
        _same(rep.get(path.format(theirs)), rep.get(path.format(absent)), (theirs, absent))
    with rt.db.connect() as conn:
        assert conn.execute(sa.select(rt.tables["deal"].c.title).where(rt.tables["deal"].c.id == theirs)).scalar() == "Theirs"


def test_a_user_without_department_or_roles_reaches_nothing_more(make_app: Callable[..., Any]) -> None:
    app = make_app()
    nobody = login(app, "nobody", ())
    records.create(app.state.runtime, SystemAccess(), "account", {"name": "Hidden"})
    assert nobody.get("/api/account").status_code in (403, 404)
    assert "Hidden" not in nobody.get("/search?q=Hidd").text
    assert TestClient(app).get("/api/account").status_code == 401


def test_scoped_statements_are_built_once_per_scope_and_each_user_keeps_their_own_rows(make_app: Callable[..., Any],
                                                                                        tmp_path: Path) -> None:
    org = Org(make_app(org_bundle(tmp_path)))
    built = org.rt.tables.statements

    def list_statements() -> int:
        return sum(1 for key in built if key[0] == "list page")

    first = {who: org.visible(who) for who in ("east", "east1", "lead", "mgr", "other")}
    count = list_statements()
    again = {who: org.visible(who) for who in ("other", "mgr", "lead", "east1", "east")}
    assert count >= 5  # one per user: each scope names its user
    assert again == first and list_statements() == count  # reused: nothing new built the second time
    assert first["east"] == {"acc-east"} and first["east1"] == {"acc-east1"} and first["other"] == {"acc-other"}
    assert first["lead"] == {"acc-lead", "acc-east"}
    for who in ("east1", "east", "east1"):  # one user's record statement never answers for another
        access = RoleAccess(Actor(org.users[who], who, ("rep",), org.dept["East-1" if who == "east1" else "East"]), org.rt.spec)
        assert records.get(org.rt, access, "account", org.accounts[who])["name"] == f"acc-{who}"
        other = org.accounts["east" if who == "east1" else "east1"]
        with pytest.raises(NotFound):
            records.get(org.rt, access, "account", other)
