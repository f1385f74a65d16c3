"""CSRF on every unsafe route, security headers on every response, login throttling and lockout,
login history, and the IP allowlist."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from engine import records
from engine.access import SystemAccess
from engine.auth import allowlist, logins
from engine.auth.users import find_user

from .conftest import add_test_user, login
from .test_permissions_routes import UNSAFE, calls, module_params

HEADERS = ("content-security-policy", "x-content-type-options", "x-frame-options", "referrer-policy")


def _seed(app: Any) -> int:
    return int(records.create(app.state.runtime, SystemAccess(), "account", {"name": "Seed"})["id"])


def _login_form(client: TestClient) -> str:
    return client.get("/login").text.split('name="csrf_token" value="')[1].split('"')[0]


def _try(client: TestClient, username: str, password: str, **kw: Any) -> Any:
    return client.post("/login", data={"username": username, "password": password, "csrf_token": _login_form(client)},
                       follow_redirects=False, **kw)


def test_every_unsafe_route_refuses_a_cookie_request_without_the_csrf_token(make_app: Callable[..., Any]) -> None:
    app = make_app()
    rid = _seed(app)
    spec = app.state.runtime.spec
    admin = login(app, "boss", ("admin",))
    bare = TestClient(app)
    bare.cookies.set("loom_session", admin.cookies["loom_session"])
    checked = []
    for call in calls(app, UNSAFE, lambda r: module_params(spec, spec.module("account"), rid)):
        for body in ({"data": {"name": "x"}}, {"json": {"name": "x"}}):
            answer = bare.request(call.method, call.path, follow_redirects=False, **body)
            assert answer.status_code == 403, (call.method, call.path, answer.status_code, answer.text[:200])
        checked.append(call.path)
    assert len(checked) >= 5
    assert admin.get("/api/account").status_code == 200
    with app.state.runtime.db.connect() as conn:
        table = app.state.runtime.tables["account"]
        assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 1


def test_a_wrong_csrf_token_or_a_cross_site_origin_is_refused(make_app: Callable[..., Any]) -> None:
    app = make_app()
    client = login(app, "ann", ("rep",))
    good = client.headers["X-CSRF-Token"]
    wrong = good[:-1] + ("y" if good.endswith("x") else "x")
    assert client.post("/api/account", json={"name": "A"}, headers={"X-CSRF-Token": wrong}).status_code == 403
    assert client.post("/api/account", json={"name": "A"}, headers={"Origin": "https://evil.example"}).status_code == 403
    assert client.post("/api/account", json={"name": "A"}, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.post("/api/account", json={"name": "A"}, headers={"Origin": "http://testserver"}).status_code == 201
    form = client.post("/logout", data={"csrf_token": good}, headers={"X-CSRF-Token": ""}, follow_redirects=False)
    assert form.status_code == 303


def test_security_headers_on_every_route_and_status(make_app: Callable[..., Any]) -> None:
    app = make_app()
    rid = _seed(app)
    spec = app.state.runtime.spec

    def boom(request: Any) -> Response:
        raise RuntimeError("boom")

    admin = login(app, "boss", ("admin",))
    rep = login(app, "ann", ("rep",))
    anonymous = TestClient(app, raise_server_exceptions=False)
    answers = []
    for call in calls(app, frozenset({"GET"}) | UNSAFE, lambda r: module_params(spec, spec.module("account"), rid)):
        client = admin if call.method == "GET" else TestClient(app)
        answers.append(client.request(call.method, call.path, follow_redirects=False))
        answers.append(rep.request("GET", call.path, follow_redirects=False) if call.method == "GET" else anonymous.request(call.method, call.path))
    app.router.routes.append(Route("/__boom", boom))
    answers += [anonymous.get("/no/such/page"), anonymous.get("/static/loom.css"), anonymous.put("/login"), anonymous.get("/__boom"),
                admin.get("/api/no_such_module"), admin.get("/m/account/999999")]
    assert {a.status_code for a in answers} >= {200, 401, 404, 405, 500}
    for answer in answers:
        for name in HEADERS:
            assert name in answer.headers, (answer.request.method, answer.request.url, answer.status_code, name)
        csp = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_login_history_records_who_when_where_and_the_result(make_app: Callable[..., Any]) -> None:
    app = make_app()
    add_test_user(app.state.runtime, "ann", ("rep",))
    client = TestClient(app, headers={"User-Agent": "pytest-browser"})
    assert _try(client, "ann", "wrong").status_code == 401
    assert _try(client, "ghost", "wrong").status_code == 401
    assert _try(client, "ann", "pw").status_code == 303
    with app.state.runtime.db.connect() as conn:
        rows = logins.history(conn)
    assert [(r["username"], r["result"]) for r in rows[:3]] == [("ann", "ok"), ("ghost", "unknown"), ("ann", "failed")]
    assert rows[0]["ip"] == "testclient" and rows[0]["user_agent"] == "pytest-browser" and rows[0]["at"] is not None
    admin = login(app, "boss", ("admin",))
    page = admin.get("/admin/logins?username=ann")
    assert page.status_code == 200 and "failed" in page.text and "ghost" not in page.text
    assert admin.get("/admin/logins?result=bogus").status_code == 422
    assert login(app, "bob", ("rep",)).get("/admin/logins").status_code == 403


def test_repeated_failures_lock_the_user_name_for_a_while(make_app: Callable[..., Any]) -> None:
    app = make_app(login_limits=logins.Limits(per_user=3, per_ip=100))
    rt = app.state.runtime
    add_test_user(rt, "ann", ("rep",))
    client = TestClient(app)
    for _ in range(3):
        assert _try(client, "ann", "wrong").status_code == 401
    locked = _try(client, "ann", "pw")
    assert locked.status_code == 429 and "Try again" in locked.text and "loom_session" not in client.cookies
    other = TestClient(app, client=("10.9.9.9", 5000))
    assert _try(other, "ann", "pw").status_code == 429
    add_test_user(rt, "bob", ("rep",))
    assert _try(client, "bob", "pw").status_code == 303
    with rt.db.begin() as conn:
        logins.unlock(conn, "ann", "test")
    assert _try(TestClient(app), "ann", "pw").status_code == 303


def test_a_lock_ends_after_the_lockout_period(make_app: Callable[..., Any]) -> None:
    limits = logins.Limits(per_user=2, per_ip=100)
    app = make_app(login_limits=limits)
    rt = app.state.runtime
    add_test_user(rt, "ann", ("rep",))
    past = logins.now() - limits.lockout - dt.timedelta(minutes=1)
    with rt.db.begin() as conn:
        for _ in range(2):
            logins.record(conn, "ann", "failed", None, "1.2.3.4", None, at=past)
        assert logins.locked_until(conn, "ann", None, limits) is None
        logins.record(conn, "ann", "failed", None, "1.2.3.4")
        logins.record(conn, "ann", "failed", None, "1.2.3.4")
        assert logins.locked_until(conn, "ann", None, limits) is not None


def test_repeated_failures_from_one_address_lock_that_address(make_app: Callable[..., Any]) -> None:
    app = make_app(login_limits=logins.Limits(per_user=100, per_ip=4))
    add_test_user(app.state.runtime, "ann", ("rep",))
    attacker = TestClient(app, client=("203.0.113.5", 4000))
    for i in range(4):
        assert _try(attacker, f"guess{i}", "wrong").status_code == 401
    assert _try(attacker, "ann", "pw").status_code == 429
    assert _try(TestClient(app, client=("198.51.100.1", 4000)), "ann", "pw").status_code == 303


def test_ip_allowlist_per_role_and_per_user(make_app: Callable[..., Any]) -> None:
    app = make_app()
    rt = app.state.runtime
    add_test_user(rt, "ann", ("rep",))
    add_test_user(rt, "mia", ("manager",))
    with rt.db.begin() as conn:
        allowlist.add(conn, "10.0.0.0/8", role="rep")
        allowlist.add(conn, "192.168.1.7", user_id=find_user(conn, "mia").id)
    outside, inside = TestClient(app, client=("203.0.113.9", 1)), TestClient(app, client=("10.1.2.3", 1))
    refused = _try(outside, "ann", "pw")
    assert refused.status_code == 403 and "network" in refused.text
    assert _try(inside, "ann", "pw").status_code == 303
    assert _try(inside, "mia", "pw").status_code == 403
    assert _try(TestClient(app, client=("192.168.1.7", 1)), "mia", "pw").status_code == 303
    with rt.db.connect() as conn:
        assert logins.history(conn, result="ip_denied")[0]["username"] == "mia"
    cookie = inside.cookies["loom_session"]
    moved = TestClient(app, client=("203.0.113.9", 1))
    moved.cookies.set("loom_session", cookie)
    assert moved.get("/api/account").status_code == 403
    assert inside.get("/api/account").status_code == 200


def test_admin_manages_the_allowlist_and_users_from_the_browser(make_app: Callable[..., Any]) -> None:
    app = make_app()
    admin = login(app, "boss", ("admin",))
    made = admin.post("/admin/users", data={"username": "neo", "password": "long-enough-pw", "roles": "rep, manager"}, follow_redirects=False)
    assert made.status_code == 303
    assert admin.post("/admin/users", data={"username": "neo2", "password": "short", "roles": "rep"}).status_code == 422
    assert admin.post("/admin/users", data={"username": "neo3", "password": "long-enough-pw", "roles": "wizard"}).status_code == 422
    with app.state.runtime.db.connect() as conn:
        neo = find_user(conn, "neo")
    assert neo.roles == ("rep", "manager")
    assert admin.post(f"/admin/users/{neo.id}/roles", data={"roles": "rep"}, follow_redirects=False).status_code == 303
    assert admin.post("/admin/allowlist", data={"network": "not a net", "role": "rep"}).status_code == 422
    assert admin.post("/admin/allowlist", data={"network": "10.0.0.0/8", "role": "rep"}, follow_redirects=False).status_code == 303
    assert "10.0.0.0/8" in admin.get("/admin/allowlist").text
    token_page = admin.post(f"/admin/users/{neo.id}/tokens")
    token = token_page.text.split('class="token" value="')[1].split('"')[0]
    assert token_page.headers["cache-control"] == "no-store"
    assert TestClient(app, client=("10.0.0.1", 1), headers={"Authorization": f"Bearer {token}"}).get("/api/account").status_code == 200
    assert TestClient(app, client=("8.8.8.8", 1), headers={"Authorization": f"Bearer {token}"}).get("/api/account").status_code == 403
    assert admin.post(f"/admin/users/{neo.id}/disable", follow_redirects=False).status_code == 303
    assert TestClient(app, client=("10.0.0.1", 1), headers={"Authorization": f"Bearer {token}"}).get("/api/account").status_code == 401
