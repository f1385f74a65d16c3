"""The REST API over real HTTP (TestClient) on SQLite and PostgreSQL: CRUD, child rows, validation, locking,
permissions, keyset paging, filters and counts."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from engine import audit, records
from engine.access import SystemAccess
from engine.auth import sessions

from .conftest import add_test_user, login

SYSTEM = SystemAccess()


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Any:
    """An app on the test bundle."""
    return make_app()


def client(app: Any, username: str, *roles: str) -> tuple[TestClient, int]:
    """A client with a fresh user's API token, and the user's id."""
    rt = app.state.runtime
    user_id = add_test_user(rt, username, roles)
    with rt.db.begin() as conn:
        token = sessions.start(conn, user_id, kind="token", lifetime=None)
    return TestClient(app, headers={"Authorization": f"Bearer {token}"}), user_id


def rows(app: Any, module: str) -> list[dict[str, Any]]:
    """Every row of a module's table, straight from the database."""
    table = app.state.runtime.tables[module]
    with app.state.runtime.db.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table).order_by(table.c.id)).mappings()]


def error(response: Any, status: int) -> dict[str, Any]:
    """The error object of a JSON error answer with `status`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()["error"]
    assert set(body) == {"code", "message", "fields"}
    return body


# -- one record ---------------------------------------------------------------------------------------

def test_create_answers_typed_json_with_its_location(app: Any) -> None:
    admin, _ = client(app, "admin", "admin")
    sent = {"name": "Acme", "tags": ["vip", "partner"], "credit_limit": "1,500.50", "employees": "42",
            "founded": "2020-02-29", "active": False, "email": "info@acme.cn"}
    r = admin.post("/api/account", json=sent)
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["location"] == f"/api/account/{body['id']}"
    assert body["credit_limit"] == 1500.5 and body["employees"] == 42 and body["tags"] == ["vip", "partner"]
    assert body["founded"] == "2020-02-29" and body["active"] is False and body["overdue"] is False
    assert body["category"] == "new" and body["code"].startswith("ACC-") and body["version"] == 1
    assert body["created_at"].endswith("Z") and body["balance"] is None
    assert admin.get(r.headers["location"]).json() == body


def test_update_then_delete_to_the_recycle_bin(app: Any) -> None:
    admin, _ = client(app, "admin", "admin")
    made = admin.post("/api/account", json={"name": "Acme", "credit_limit": 100}).json()
    r = admin.patch(f"/api/account/{made['id']}", json={"version": 1, "balance": 2000})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2 and r.json()["overdue"] is True and r.json()["name"] == "Acme"
    done = admin.delete(f"/api/account/{made['id']}")
    assert done.status_code == 204 and done.content == b""
    error(admin.get(f"/api/account/{made['id']}"), 404)
    assert [e["record_id"] for e in audit.recycle_bin(app.state.runtime, app.state.runtime.spec.module("account"))] == [made["id"]]


def test_child_rows_in_and_out_as_arrays(app: Any) -> None:
    admin, _ = client(app, "admin", "admin")
    sent = {"title": "Big", "lines": [{"product": "A", "quantity": 2, "unit_price": "10.5"}, {"product": "B", "quantity": 1, "unit_price": 4}]}
    deal = admin.post("/api/deal", json=sent).json()
    assert [(x["product"], x["amount"]) for x in deal["lines"]] == [("A", 21.0), ("B", 4.0)] and deal["total"] == 25.0
    assert set(deal["lines"][0]) == {"id", "product", "quantity", "unit_price", "cost", "amount"}
    first = deal["lines"][0]["id"]
    lines = [{"id": first, "quantity": 3}, {"product": "C", "quantity": 1, "unit_price": 1}]
    r = admin.patch(f"/api/deal/{deal['id']}", json={"version": 1, "lines": lines})
    assert r.status_code == 200, r.text
    assert [(x["id"] == first, x["product"], x["amount"]) for x in r.json()["lines"]] == [(True, "A", 31.5), (False, "C", 1.0)]
    listed = admin.get("/api/deal?fields=title,lines").json()["items"]
    assert listed == [{"id": deal["id"], "title": "Big", "lines": r.json()["lines"]}]
    assert error(admin.patch(f"/api/deal/{deal['id']}", json={"version": 2, "lines": {"product": "X"}}), 422)["fields"] == {
        "lines": "expected a list of rows"}
    assert "lines[0].product" in error(admin.post("/api/deal", json={"title": "T", "lines": [{"quantity": 1}]}), 422)["fields"]


def test_validation_errors_name_each_field_and_write_nothing(app: Any) -> None:
    admin, _ = client(app, "admin", "admin")
    assert error(admin.post("/api/account", json={}), 422)["fields"] == {"name": "required"}
    bad = {"name": "X", "employees": "many", "founded": "soon", "category": "gold", "email": "nope", "parent": 999}
    assert set(error(admin.post("/api/account", json=bad), 422)["fields"]) == {"employees", "founded", "category", "email", "parent"}
    unwritable = error(admin.post("/api/account", json={"name": "X", "bogus": 1, "overdue": True, "id": 5, "code": "C"}), 422)["fields"]
    assert set(unwritable) == {"bogus", "overdue", "id", "code"}
    assert error(admin.post("/api/account", json={"name": "X", "employees": 10**30}), 422)["fields"] == {"employees": "number too large"}
    assert rows(app, "account") == []


@pytest.mark.parametrize(("content", "kind"), [
    (b"{not json", "application/json"), (b"[1, 2]", "application/json"), (b'"text"', "application/json"),
    (b"null", "application/json"), (b"name=x", "application/x-www-form-urlencoded"), (b"", "text/plain"),
])
def test_bodies_that_are_not_a_json_object_are_422(app: Any, content: bytes, kind: str) -> None:
    admin, _ = client(app, "admin", "admin")
    error(admin.post("/api/account", content=content, headers={"content-type": kind}), 422)
    assert rows(app, "account") == []


@pytest.mark.parametrize("version", [None, "abc", True, 0, 1.5, -1, 2**70, "²"])
def test_update_needs_the_version_read(app: Any, version: Any) -> None:
    admin, _ = client(app, "admin", "admin")
    made = admin.post("/api/account", json={"name": "Acme"}).json()
    body = {"notes": "x"} | ({} if version is None else {"version": version})
    assert "version" in error(admin.patch(f"/api/account/{made['id']}", json=body), 422)["fields"]
    assert admin.patch(f"/api/account/{made['id']}", json={"notes": "x", "version": "1"}).json()["version"] == 2


def test_two_updates_from_the_same_version_one_wins(app: Any) -> None:
    alice, _ = client(app, "alice", "admin")
    bob, _ = client(app, "bob", "admin")
    made = alice.post("/api/account", json={"name": "Acme"}).json()
    assert alice.patch(f"/api/account/{made['id']}", json={"version": 1, "notes": "Alice's"}).status_code == 200
    conflict = error(bob.patch(f"/api/account/{made['id']}", json={"version": 1, "notes": "Bob's"}), 409)
    assert conflict["code"] == "conflict" and "Alice's" in conflict["fields"]["notes"]
    assert rows(app, "account")[0]["notes"] == "Alice's" and rows(app, "account")[0]["version"] == 2


def test_a_conflict_does_not_reveal_fields_the_user_cannot_read(app: Any) -> None:
    rep, _rep_id = client(app, "rep", "rep")
    admin, _ = client(app, "admin", "admin")
    made = rep.post("/api/account", json={"name": "Mine"}).json()
    assert admin.patch(f"/api/account/{made['id']}", json={"version": 1, "secret_score": 98765, "notes": "n"}).status_code == 200
    r = rep.patch(f"/api/account/{made['id']}", json={"version": 1, "notes": "mine"})
    assert set(error(r, 409)["fields"]) == {"notes"} and "98765" not in r.text


# -- permissions ----------------------------------------------------------------------------------------

def test_rep_sees_only_own_records(app: Any) -> None:
    rep, rep_id = client(app, "rep", "rep")
    _, other_id = client(app, "other", "rep")
    mine = records.create(app.state.runtime, SYSTEM, "deal", {"title": "Mine", "owner": rep_id})
    theirs = records.create(app.state.runtime, SYSTEM, "deal", {"title": "Theirs", "owner": other_id})
    assert [d["title"] for d in rep.get("/api/deal").json()["items"]] == ["Mine"]
    assert rep.get(f"/api/deal/{mine['id']}").status_code == 200
    hidden, absent = error(rep.get(f"/api/deal/{theirs['id']}"), 404), error(rep.get("/api/deal/999"), 404)
    assert hidden["message"].replace(str(theirs["id"]), "N") == absent["message"].replace("999", "N")
    error(rep.patch(f"/api/deal/{theirs['id']}", json={"version": 1, "title": "Taken"}), 404)
    error(rep.delete(f"/api/deal/{theirs['id']}"), 403)
    assert rows(app, "deal")[1]["title"] == "Theirs"


def test_fields_a_role_cannot_read_never_leave_and_cannot_be_used(app: Any) -> None:
    rep, rep_id = client(app, "rep", "rep")
    made = records.create(app.state.runtime, SYSTEM, "account", {"name": "Acme", "secret_score": 7, "owner": rep_id})
    assert "secret_score" not in rep.get(f"/api/account/{made['id']}").json()
    assert all("secret_score" not in item for item in rep.get("/api/account?expand=titles").json()["items"])
    for query in ("secret_score=7", "secret_score__gte=1", "fields=name,secret_score", "sort=-secret_score"):
        error(rep.get(f"/api/account?{query}"), 422)
    assert set(error(rep.post("/api/account", json={"name": "B", "credit_limit": 5}), 422)["fields"]) == {"credit_limit"}
    error(rep.delete(f"/api/account/{made['id']}"), 403)


def test_child_rows_hide_fields_the_role_cannot_read(app: Any) -> None:
    rep, rep_id = client(app, "rep", "rep")
    deal = records.create(app.state.runtime, SYSTEM, "deal", {"title": "D", "owner": rep_id, "lines": [{"product": "P", "cost": 3}]})
    assert "cost" not in rep.get(f"/api/deal/{deal['id']}").json()["lines"][0]
    assert "cost" not in rep.get("/api/deal?fields=lines").json()["items"][0]["lines"][0]


def test_login_is_required(app: Any) -> None:
    assert error(TestClient(app).get("/api/account"), 401)["code"] == "unauthorized"
    error(TestClient(app, headers={"Authorization": "Bearer nonsense"}).get("/api/account"), 401)
    error(TestClient(app).get("/api/openapi.json"), 401)


def test_cookie_sessions_need_the_csrf_header_to_change_data(app: Any) -> None:
    browser = login(app, "admin", ("admin",))
    made = browser.post("/api/account", json={"name": "Acme"})
    assert made.status_code == 201
    token = browser.headers.pop("X-CSRF-Token")
    error(browser.patch(f"/api/account/{made.json()['id']}", json={"version": 1, "notes": "x"}), 403)
    assert browser.get(f"/api/account/{made.json()['id']}").status_code == 200
    assert browser.patch(f"/api/account/{made.json()['id']}", json={"version": 1, "notes": "x"}, headers={"X-CSRF-Token": token}).status_code == 200


@pytest.mark.parametrize("path", ["/api/deal_line", "/api/deal_line/1", "/api/nope", "/api/nope/1", "/api/account/abc", "/api/account/0",
                                  "/api/account/-1", "/api/account/1.5", "/api/account/99999999999999999999", "/api/account/²"])
def test_child_modules_unknown_modules_and_odd_ids_are_404(app: Any, path: str) -> None:
    admin, _ = client(app, "admin", "admin")
    records.create(app.state.runtime, SYSTEM, "account", {"name": "Acme"})
    error(admin.get(path), 404)
    error(admin.delete(path) if path.count("/") == 3 else admin.post(path, json={"name": "X"}), 404)


def test_actions_on_ids_beyond_the_database_are_404(app: Any) -> None:
    admin, _ = client(app, "admin", "admin")
    error(admin.post(f"/api/account/{2**64}/actions/claim", json={}), 404)


def test_values_the_database_refuses_are_422_never_500(app: Any, db_url: str) -> None:
    admin, _ = client(app, "admin", "admin")
    error(admin.post("/api/account", content=b'{"name": "\\ud800"}', headers={"content-type": "application/json"}), 422)
    with_nul = admin.post("/api/account", json={"name": "a\x00b"})
    listed = admin.get("/api/account", params={"name__contains": "a\x00b"})
    if db_url.startswith("postgresql"):  # PostgreSQL text cannot hold NUL; SQLite stores it
        error(with_nul, 422)
        error(listed, 422)
    else:
        assert with_nul.status_code == 201 and listed.json()["items"][0]["name"] == "a\x00b"


# -- lists ----------------------------------------------------------------------------------------------

def _accounts(app: Any) -> None:
    for values in (
        {"name": "Alpha", "category": "key", "tags": ["vip"], "credit_limit": 100, "employees": 10, "founded": "2020-01-01", "email": "a@x.com"},
        {"name": "Beta", "category": "general", "tags": ["vip", "partner"], "credit_limit": 200, "employees": 20, "founded": "2021-06-01",
         "active": False},
        {"name": "Gamma", "category": "new"},
        {"name": "Delta", "category": "key", "tags": ["risky"], "credit_limit": 300, "employees": 30, "founded": "2022-12-31", "email": "d@y.org"},
    ):
        records.create(app.state.runtime, SYSTEM, "account", values)


@pytest.mark.parametrize(("query", "names"), [
    ("category=key", ["Alpha", "Delta"]), ("category__ne=key", ["Beta", "Gamma"]), ("category__in=general,new", ["Beta", "Gamma"]),
    ("employees__gte=20", ["Beta", "Delta"]), ("employees__lte=20", ["Alpha", "Beta"]), ("employees__gt=10&employees__lt=30", ["Beta"]),
    ("employees__ne=20", ["Alpha", "Delta", "Gamma"]), ("credit_limit__isnull=true", ["Gamma"]),
    ("credit_limit__isnull=false", ["Alpha", "Beta", "Delta"]), ("name__contains=TA", ["Beta", "Delta"]), ("name__startswith=g", ["Gamma"]),
    ("tags__contains=vip", ["Alpha", "Beta"]), ("founded__gte=2021-01-01&founded__lte=2022-12-31", ["Beta", "Delta"]),
    ("active=false", ["Beta"]), ("q=delta", ["Delta"]), ("q=y.org", ["Delta"]), ("email__contains=%", []), ("name=Beta&category=key", []),
])
def test_filters_and_operators(app: Any, query: str, names: list[str]) -> None:
    admin, _ = client(app, "admin", "admin")
    _accounts(app)
    assert [i["name"] for i in admin.get(f"/api/account?sort=name&{query}").json()["items"]] == names


def test_a_list_statement_built_once_runs_again_with_each_requests_values(app: Any) -> None:
    """Lists of one shape (columns, filters and operators, sort) share a statement built once: values never leak."""
    admin, _ = client(app, "admin", "admin")
    _accounts(app)
    cases = [("category=key", ["Alpha", "Delta"]), ("category=general", ["Beta"]), ("category=new", ["Gamma"]),
             ("category__in=general,new", ["Beta", "Gamma"]), ("category__in=key", ["Alpha", "Delta"]),
             ("name__contains=TA", ["Beta", "Delta"]), ("name__contains=ph", ["Alpha"]), ("q=delta", ["Delta"]), ("q=gam", ["Gamma"]),
             ("tags__contains=vip", ["Alpha", "Beta"]), ("tags__contains=partner", ["Beta"]), ("employees__gte=20", ["Beta", "Delta"]),
             ("employees__gte=30", ["Delta"]), ("credit_limit__isnull=true", ["Gamma"]), ("credit_limit__isnull=false", ["Alpha", "Beta", "Delta"])]
    for query, names in [*cases, *reversed(cases)]:
        assert [i["name"] for i in admin.get(f"/api/account?sort=name&{query}").json()["items"]] == names, query


def test_count_only_when_asked_and_fields_choose_columns(app: Any) -> None:
    admin, _ = client(app, "admin", "admin")
    _accounts(app)
    assert set(admin.get("/api/account").json()) == {"items", "next_cursor"}
    counted = admin.get("/api/account?category=key&count=true&limit=1").json()
    assert counted["total"] == 2 and len(counted["items"]) == 1 and counted["next_cursor"]
    items = admin.get("/api/account?fields=name,category&sort=-employees").json()["items"]
    assert all(set(i) == {"id", "name", "category"} for i in items)


def test_expand_titles_next_to_links(app: Any) -> None:
    admin, admin_id = client(app, "admin", "admin")
    account = records.create(app.state.runtime, SYSTEM, "account", {"name": "Acme"})
    contact = records.create(app.state.runtime, SYSTEM, "contact", {"full_name": "Ann", "account": account["id"], "owner": admin_id})
    item = admin.get("/api/contact?expand=titles").json()["items"][0]
    assert item["account"] == account["id"] and item["account__title"] == "Acme" and item["owner__title"] == "admin"
    assert admin.get(f"/api/contact/{contact['id']}?expand=titles").json()["account__title"] == "Acme"
    assert "account__title" not in admin.get(f"/api/contact/{contact['id']}").json()


@pytest.mark.parametrize("sort", ["employees", "-employees", "name", "-id"])
def test_keyset_paging_visits_every_row_once(app: Any, sort: str) -> None:
    admin, _ = client(app, "admin", "admin")
    for i in range(23):
        records.create(app.state.runtime, SYSTEM, "account", {"name": f"A{i:02}", "employees": None if i % 4 == 0 else i % 5})
    seen: list[dict[str, Any]] = []
    url: str | None = f"/api/account?sort={sort}&limit=5&fields=employees,name"
    while url:
        page = admin.get(url).json()
        assert len(page["items"]) <= 5
        seen += page["items"]
        url = f"/api/account?sort={sort}&limit=5&fields=employees,name&cursor={page['next_cursor']}" if page["next_cursor"] else None
    assert len(seen) == 23 and len({i["id"] for i in seen}) == 23
    key = sort.lstrip("-")
    values = [i[key] for i in seen if i[key] is not None]
    assert values == sorted(values, reverse=sort.startswith("-"))
    nulls = [n for n, i in enumerate(seen) if i[key] is None]
    assert nulls == list(range(nulls[0], nulls[0] + len(nulls))) if nulls else True  # NULLs together, at one end
    assert not nulls or nulls[0] == 0 or nulls[-1] == 22


def test_page_numbers_as_an_alternative(app: Any) -> None:
    admin, _ = client(app, "admin", "admin")
    _accounts(app)
    first = admin.get("/api/account?sort=name&limit=3&page=1").json()
    second = admin.get(f"/api/account?sort=name&limit=3&page={first['next_cursor']}").json()
    assert [i["name"] for i in first["items"] + second["items"]] == ["Alpha", "Beta", "Delta", "Gamma"] and second["next_cursor"] is None


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize("query", [
    "limit=100000", "limit=0", "limit=abc", "page=0", "cursor=!!!", f"cursor={_cursor([1, 2**70])}", f"cursor={_cursor(['x', 1])}",
    f"sort=id&cursor={_cursor([2**70, 1])}", "sort=nope", "nope=1", "name__gte=a", "employees=many", f"employees__gte={'9' * 30}",
    "expand=all", "fields=nope", "parent=-3", "category=gold",
])
def test_bad_list_parameters_are_422(app: Any, query: str) -> None:
    admin, _ = client(app, "admin", "admin")
    _accounts(app)
    assert error(admin.get(f"/api/account?sort=-updated_at&{query}"), 422)["fields"]
