"""Sessions: server-side, opaque, invalidated at once by logout, disable, password change, admin "end sessions" and timeouts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from starlette.testclient import TestClient

from engine.auth import sessions
from engine.auth.users import find_user, set_active, set_password

from .conftest import add_test_user, login


def _replay(app: Any, cookie: str) -> int:
    client = TestClient(app)
    client.cookies.set("loom_session", cookie)
    return client.get("/api/account", headers={"Accept": "application/json"}).status_code


def _table(app: Any) -> sa.Table:
    return app.state.runtime.tables.metadata.tables["loom_session"]


def test_login_sets_an_opaque_httponly_samesite_cookie_and_stores_only_its_hash(make_app: Callable[..., Any]) -> None:
    app = make_app()
    add_test_user(app.state.runtime, "ann", ("rep",))
    client = TestClient(app)
    token = client.get("/login").text.split('name="csrf_token" value="')[1].split('"')[0]
    done = client.post("/login", data={"username": "ann", "password": "pw", "csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303
    header = done.headers["set-cookie"]
    assert "loom_session=" in header and "HttpOnly" in header and "SameSite=lax" in header.replace("Lax", "lax")
    assert "Secure" not in header
    cookie = client.cookies["loom_session"]
    with app.state.runtime.db.connect() as conn:
        stored = conn.execute(sa.select(_table(app).c.token_hash)).scalars().all()
    assert cookie not in stored and sessions.digest(cookie) in stored


def test_cookie_is_secure_over_tls(make_app: Callable[..., Any]) -> None:
    app = make_app()
    add_test_user(app.state.runtime, "ann", ("rep",))
    client = TestClient(app, base_url="https://testserver")
    token = client.get("/login").text.split('name="csrf_token" value="')[1].split('"')[0]
    done = client.post("/login", data={"username": "ann", "password": "pw", "csrf_token": token}, follow_redirects=False)
    assert "Secure" in done.headers["set-cookie"]
    assert done.headers["strict-transport-security"].startswith("max-age=")


def test_logout_invalidates_a_replayed_cookie(make_app: Callable[..., Any]) -> None:
    app = make_app()
    client = login(app, "ann", ("rep",))
    cookie = client.cookies["loom_session"]
    assert _replay(app, cookie) == 200
    assert client.post("/logout", follow_redirects=False).status_code == 303
    assert _replay(app, cookie) == 401


def test_disabling_a_user_invalidates_their_sessions_and_tokens(make_app: Callable[..., Any]) -> None:
    app = make_app()
    rt = app.state.runtime
    client = login(app, "ann", ("rep",))
    cookie = client.cookies["loom_session"]
    with rt.db.begin() as conn:
        token = sessions.start(conn, find_user(conn, "ann").id, "token", None, None)
    bearer = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    assert bearer.get("/api/account").status_code == 200
    with rt.db.begin() as conn:
        set_active(conn, "ann", False)
    assert _replay(app, cookie) == 401
    assert bearer.get("/api/account").status_code == 401


def test_a_disabled_flag_alone_denies_even_a_live_session_row(make_app: Callable[..., Any]) -> None:
    app = make_app()
    rt = app.state.runtime
    client = login(app, "ann", ("rep",))
    users = rt.tables.metadata.tables["loom_user"]
    with rt.db.begin() as conn:
        conn.execute(sa.update(users).where(users.c.username == "ann").values(active=False))
    assert client.get("/api/account").status_code == 401


def test_password_change_ends_web_sessions(make_app: Callable[..., Any]) -> None:
    app = make_app()
    client = login(app, "ann", ("rep",))
    cookie = client.cookies["loom_session"]
    with app.state.runtime.db.begin() as conn:
        set_password(conn, "ann", "a-new-password")
    assert _replay(app, cookie) == 401


def test_idle_and_absolute_timeouts_invalidate_a_replayed_cookie(make_app: Callable[..., Any]) -> None:
    app = make_app()
    rt = app.state.runtime
    table = _table(app)
    idle = login(app, "ann", ("rep",)).cookies["loom_session"]
    absolute = login(app, "bob", ("rep",)).cookies["loom_session"]
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with rt.db.begin() as conn:
        stale = now - sessions.IDLE - dt.timedelta(seconds=5)
        conn.execute(sa.update(table).where(table.c.token_hash == sessions.digest(idle)).values(last_seen=stale))
        conn.execute(sa.update(table).where(table.c.token_hash == sessions.digest(absolute)).values(expires_at=now - dt.timedelta(seconds=5)))
    assert _replay(app, idle) == 401
    assert _replay(app, absolute) == 401
    with rt.db.connect() as conn:
        ended = conn.execute(sa.select(table.c.ended_at).where(table.c.token_hash == sessions.digest(idle))).scalar()
    assert ended is not None


def test_idle_timeout_is_configurable_per_app(make_app: Callable[..., Any]) -> None:
    app = make_app(session_idle=dt.timedelta(minutes=5))
    rt = app.state.runtime
    client = login(app, "ann", ("rep",))
    table = _table(app)
    with rt.db.begin() as conn:
        conn.execute(sa.update(table).values(last_seen=dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=6)))
    assert client.get("/api/account").status_code == 401


def test_admin_end_sessions_invalidates_at_once(make_app: Callable[..., Any]) -> None:
    app = make_app()
    admin = login(app, "boss", ("admin",))
    victim = login(app, "ann", ("rep",))
    other = login(app, "ann")
    user_id = find_user_id(app, "ann")
    assert admin.post(f"/admin/users/{user_id}/sessions/end", follow_redirects=False).status_code == 303
    assert victim.get("/api/account").status_code == 401
    assert other.get("/api/account").status_code == 401
    assert admin.get("/api/account").status_code == 200


def test_admin_ends_one_session(make_app: Callable[..., Any]) -> None:
    app = make_app()
    admin = login(app, "boss", ("admin",))
    first = login(app, "ann", ("rep",))
    second = login(app, "ann")
    with app.state.runtime.db.connect() as conn:
        live = sessions.live(conn, find_user_id(app, "ann"))
    newest = live[0]["id"]
    assert admin.post(f"/admin/sessions/{newest}/end", follow_redirects=False).status_code == 303
    assert second.get("/api/account").status_code == 401
    assert first.get("/api/account").status_code == 200
    assert admin.post(f"/admin/sessions/{newest}/end", follow_redirects=False).status_code == 404


def test_login_replaces_the_previous_session(make_app: Callable[..., Any]) -> None:
    app = make_app()
    client = login(app, "ann", ("rep",))
    old = client.cookies["loom_session"]
    token = client.get("/login").text.split('name="csrf_token" value="')[1].split('"')[0]
    assert client.post("/login", data={"username": "ann", "password": "pw", "csrf_token": token}, follow_redirects=False).status_code == 303
    assert client.cookies["loom_session"] != old
    assert _replay(app, old) == 401


def test_api_tokens_need_no_csrf_and_are_revoked_one_by_one(make_app: Callable[..., Any]) -> None:
    app = make_app()
    rt = app.state.runtime
    add_test_user(rt, "ann", ("rep",))
    with rt.db.begin() as conn:
        uid = find_user(conn, "ann").id
        one, two = sessions.start(conn, uid, "token", None, None), sessions.start(conn, uid, "token", None, None)
    api = TestClient(app)
    made = api.post("/api/account", json={"name": "Tok"}, headers={"Authorization": f"Bearer {one}"})
    assert made.status_code == 201, made.text
    with rt.db.begin() as conn:
        assert sessions.revoke_token(conn, one)
        assert not sessions.revoke_token(conn, one)
    assert api.get("/api/account", headers={"Authorization": f"Bearer {one}"}).status_code == 401
    assert api.get("/api/account", headers={"Authorization": f"Bearer {two}"}).status_code == 200
    assert api.get("/api/account", headers={"Authorization": "Bearer not-a-token"}).status_code == 401


def test_a_session_token_is_not_an_api_token(make_app: Callable[..., Any]) -> None:
    app = make_app()
    cookie = login(app, "ann", ("rep",)).cookies["loom_session"]
    assert TestClient(app).get("/api/account", headers={"Authorization": f"Bearer {cookie}"}).status_code == 401


def find_user_id(app: Any, username: str) -> int:
    """The id of a user of the app's database."""
    with app.state.runtime.db.connect() as conn:
        return find_user(conn, username).id
