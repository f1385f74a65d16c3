"""Admin pages for people and access: users, login history, live sessions, the IP allowlist, and "explain"."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.auth import allowlist, departments, logins, sessions
from engine.auth.explain import explain, parse_target
from engine.auth.policy import PolicyStore
from engine.auth.users import USERS, User, add_user, check_roles, list_users, require_strong, set_active, set_password, update_user, user_by_id
from engine.errors import Forbidden, Invalid, LoomError, NotFound
from engine.web.context import Ctx, handler, policy_store
from engine.web.views import page

PAGE = 100


def _admin(ctx: Ctx) -> None:
    if not ctx.access.is_admin:
        raise Forbidden("only administrators may manage users and access")


def _form(ctx: Ctx, name: str) -> str:
    if ctx.form is not None:
        return str(ctx.form.get(name) or "").strip()
    return str((ctx.data or {}).get(name) or "").strip() if isinstance(ctx.data, dict) else ""


def _back(target: str, note: str) -> Response:
    return RedirectResponse(f"{target}?toast={quote(note)}", status_code=303)


def _user(ctx: Ctx) -> User:
    with ctx.rt.db.connect() as conn:
        user = user_by_id(conn, ctx.request.path_params["id"])
    if user is None:
        raise NotFound("no such user")
    return user


def _roles(ctx: Ctx, text: str) -> tuple[str, ...]:
    roles = tuple(dict.fromkeys(r.strip() for r in text.replace(" ", ",").split(",") if r.strip()))
    check_roles(roles, tuple(r.name for r in ctx.rt.spec.app.roles))
    return roles


def users_page(ctx: Ctx) -> Response:
    """Every user with roles, department, state and live sessions; a form to add one."""
    _admin(ctx)
    with ctx.rt.db.connect() as conn:
        users = list_users(conn)
        live = sessions.live(conn, limit=5000)
        names = departments.titles(conn, ctx.rt, {u.department_id for u in users if u.department_id is not None})
    counts: dict[int, int] = {}
    for s in live:
        counts[s["user_id"]] = counts.get(s["user_id"], 0) + 1
    return page(ctx, "auth/admin_users.html", {"users": users, "counts": counts, "departments": names, "roles": ctx.rt.spec.app.roles})


def user_add(ctx: Ctx) -> Response:
    """Add a user from the form (user name, password, roles, department)."""
    _admin(ctx)
    username, password = _form(ctx, "username"), _form(ctx, "password")
    require_strong(password)
    roles = _roles(ctx, _form(ctx, "roles"))
    with ctx.rt.db.begin() as conn:
        dept = departments.find_department(conn, ctx.rt, _form(ctx, "department")) if _form(ctx, "department") else None
        user = add_user(conn, username, password, roles, _form(ctx, "full_name") or None, dept)
    return _back(f"/admin/users/{user.id}", f"added {user.username}")


def user_page(ctx: Ctx) -> Response:
    """One user: roles, department, managed departments, sessions and tokens, allowlist, recent logins."""
    _admin(ctx)
    user = _user(ctx)
    with ctx.rt.db.connect() as conn:
        managed = departments.managed(conn, ctx.rt, user.id)
        names = departments.titles(conn, ctx.rt, {*managed, *([user.department_id] if user.department_id else [])})
        live = sessions.live(conn, user.id)
        history = logins.history(conn, username=user.username, limit=20)
        locked = logins.locked_until(conn, user.username, None, getattr(ctx.request.app.state, "login_limits", logins.Limits()))
        rules = [r for r in allowlist.load(conn) if r.user_id == user.id or (r.role and r.role in user.roles)]
    return page(ctx, "auth/admin_user.html", {"person": user, "managed": managed, "departments": names, "live": live,
                                               "history": history, "locked": locked, "rules": rules, "roles": ctx.rt.spec.app.roles})


def user_change(ctx: Ctx) -> Response:
    """Change roles, department and managed departments, full name; or enable/disable."""
    _admin(ctx)
    user = _user(ctx)
    what = ctx.request.path_params["what"]
    with ctx.rt.db.begin() as conn:
        if what == "roles":
            update_user(conn, user.username, roles=_roles(ctx, _form(ctx, "roles")))
        elif what == "department":
            dept = _form(ctx, "department")
            update_user(conn, user.username, department_id=departments.find_department(conn, ctx.rt, dept) if dept else None)
            wanted = [d for d in _form(ctx, "manages").split(",") if d.strip()]
            departments.set_managed(conn, ctx.rt, user.id, [departments.find_department(conn, ctx.rt, d) for d in wanted])
        elif what in ("disable", "enable"):
            if user.id == (ctx.user.id if ctx.user else None) and what == "disable":
                raise Invalid("you cannot disable yourself", {"user": "ask another administrator"})
            set_active(conn, user.username, what == "enable")
        elif what == "password":
            require_strong(_form(ctx, "password"))
            set_password(conn, user.username, _form(ctx, "password"))
        elif what == "unlock":
            logins.unlock(conn, user.username, ctx.user.username if ctx.user else "admin")
        else:
            raise NotFound("no such change")
    return _back(f"/admin/users/{user.id}", f"{user.username}: {what} saved")


def end_sessions(ctx: Ctx) -> Response:
    """End every session and token of a user now (on every worker: the next request finds them ended)."""
    _admin(ctx)
    user = _user(ctx)
    with ctx.rt.db.begin() as conn:
        count = sessions.end_all(conn, user.id)
    return _back(f"/admin/users/{user.id}", f"ended {count} session(s) of {user.username}")


def end_session(ctx: Ctx) -> Response:
    """End one session or token."""
    _admin(ctx)
    with ctx.rt.db.begin() as conn:
        if not sessions.end_by_id(conn, ctx.request.path_params["sid"]):
            raise NotFound("no such live session")
    back = _form(ctx, "back")
    return _back(back if back.startswith("/admin/") else "/admin/sessions", "session ended")


def new_token(ctx: Ctx) -> Response:
    """Create an API token for a user and show it once."""
    _admin(ctx)
    user = _user(ctx)
    with ctx.rt.db.begin() as conn:
        token = sessions.start(conn, user.id, "token", None, None)
    shown = page(ctx, "auth/admin_token.html", {"person": user, "token": token})
    shown.headers["Cache-Control"] = "no-store"
    return shown


def logins_page(ctx: Ctx) -> Response:
    """The login history, newest first, filtered by user name, result or address; paged by id."""
    _admin(ctx)
    q = ctx.request.query_params
    before = q.get("before", "")
    if before and not before.isdigit():
        raise Invalid("invalid page", {"before": "a number"})
    if q.get("result") and q.get("result") not in logins.RESULTS:
        raise Invalid("unknown result", {"result": f"one of {', '.join(logins.RESULTS)}"})
    with ctx.rt.db.connect() as conn:
        rows = logins.history(conn, q.get("username") or None, q.get("result") or None, q.get("ip") or None,
                              int(before) if before else None, PAGE + 1)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return page(ctx, "auth/admin_logins.html", {"rows": rows, "results": logins.RESULTS, "filters": dict(q),
                                                 "next_before": rows[-1]["id"] if more and rows else None})


def sessions_page(ctx: Ctx) -> Response:
    """Every live session and token."""
    _admin(ctx)
    with ctx.rt.db.connect() as conn:
        rows = sessions.live(conn, limit=1000)
    return page(ctx, "auth/admin_sessions.html", {"rows": rows})


def allowlist_page(ctx: Ctx) -> Response:
    """The IP allowlist rules (per role and per user)."""
    _admin(ctx)
    with ctx.rt.db.connect() as conn:
        rules = allowlist.load(conn)
        users = {r.user_id: u for r in rules if r.user_id is not None for u in [user_by_id(conn, r.user_id)] if u is not None}
    return page(ctx, "auth/admin_allowlist.html", {"rules": rules, "users": users, "roles": ctx.rt.spec.app.roles})


def allowlist_add(ctx: Ctx) -> Response:
    """Add a rule for a role or a user name."""
    _admin(ctx)
    role, username = _form(ctx, "role"), _form(ctx, "username")
    with ctx.rt.db.begin() as conn:
        user_id = None
        if username:
            found = conn.execute(USERS.select().where(USERS.c.username == username)).first()
            if found is None:
                raise Invalid("unknown user", {"username": f"no user '{username}'"})
            user_id = int(found.id)
        if role:
            _roles(ctx, role)
        allowlist.add(conn, _form(ctx, "network"), user_id, role or None)
    return _back("/admin/allowlist", "rule added")


def allowlist_remove(ctx: Ctx) -> Response:
    """Remove a rule."""
    _admin(ctx)
    with ctx.rt.db.begin() as conn:
        allowlist.remove(conn, ctx.request.path_params["rid"])
    return _back("/admin/allowlist", "rule removed")


def explain_page(ctx: Ctx) -> Response:
    """Ask "can this user do this, and which rule decides?" about a module, a field or a record."""
    _admin(ctx)
    q = ctx.request.query_params
    username, target, record = q.get("user", "").strip(), q.get("target", "").strip(), q.get("id", "").strip()
    found, error = None, None
    if username and target:
        try:
            if record and not record.isdigit():
                raise Invalid("the record id is a number", {"id": record})
            store: PolicyStore = policy_store(ctx.request, ctx.rt)
            found = explain(ctx.rt, store, username, parse_target(target), int(record) if record else None)
        except LoomError as exc:
            error = exc.message
    return page(ctx, "auth/admin_explain.html", {"asked": {"user": username, "target": target, "id": record}, "found": found,
                                                  "error": error, "modules": sorted(ctx.rt.spec.modules)})


def _post(path: str, fn: Any, name: str) -> Route:
    return Route(path, handler(fn), methods=["POST"], name=name)


def routes() -> list[Route]:
    """The admin pages for users and access."""
    get = ["GET"]
    return [
        Route("/admin/users", handler(users_page), methods=get, name="admin_users"),
        _post("/admin/users", user_add, "admin_user_add"),
        Route("/admin/users/{id:int}", handler(user_page), methods=get, name="admin_user"),
        _post("/admin/users/{id:int}/sessions/end", end_sessions, "admin_end_sessions"),
        _post("/admin/users/{id:int}/tokens", new_token, "admin_new_token"),
        _post("/admin/users/{id:int}/{what}", user_change, "admin_user_change"),
        _post("/admin/sessions/{sid:int}/end", end_session, "admin_end_session"),
        Route("/admin/sessions", handler(sessions_page), methods=get, name="admin_sessions"),
        Route("/admin/logins", handler(logins_page), methods=get, name="admin_logins"),
        Route("/admin/allowlist", handler(allowlist_page), methods=get, name="admin_allowlist"),
        _post("/admin/allowlist", allowlist_add, "admin_allowlist_add"),
        _post("/admin/allowlist/{rid:int}/delete", allowlist_remove, "admin_allowlist_remove"),
        Route("/admin/explain", handler(explain_page), methods=get, name="admin_explain"),
    ]


def setup(app: Starlette) -> None:
    """Open the policy store at start: publish the metadata's policies if they changed, load them."""
    rt = app.state.runtime
    app.state.policy = PolicyStore.open(rt.db, rt.spec, rt.revision)
