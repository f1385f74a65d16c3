"""Login, logout and the language switch."""

from __future__ import annotations

import hmac
import math
import secrets
from urllib.parse import urlparse

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.auth import logins, sessions
from engine.auth.allowlist import permits
from engine.auth.logins import Limits, locked_until
from engine.auth.users import USERS, check_password
from engine.errors import Forbidden
from engine.web.context import LOCALE_COOKIE, SESSION_COOKIE, Ctx, client_ip, handler, policy_store
from engine.web.render import render

LOGIN_CSRF = "loom_login_csrf"


def _safe_next(target: str | None) -> str:
    if not target:
        return "/"
    parsed = urlparse(target)
    return target if not parsed.scheme and not parsed.netloc and target.startswith("/") and not target.startswith("//") else "/"


def login_page(ctx: Ctx) -> Response:
    """The login form (with a double-submit CSRF cookie)."""
    token = secrets.token_urlsafe(24)
    response = render(ctx, "login.html", {"login_csrf": token, "next": _safe_next(ctx.request.query_params.get("next")), "error": None})
    response.set_cookie(LOGIN_CSRF, token, httponly=True, samesite="lax", secure=ctx.request.url.scheme == "https")
    return response


MESSAGES = {
    "locked": {"en": "Too many failed attempts. Try again in {minutes} minutes.", "zh": "失败次数过多，请在 {minutes} 分钟后再试。"},
    "ip_denied": {"en": "Your account may not sign in from this network.", "zh": "您的账户不允许从此网络登录。"},
}


def _again(ctx: Ctx, error: str, status: int, username: str, **values: object) -> Response:
    form = ctx.form
    assert form is not None
    text = MESSAGES[error].get(ctx.locale, MESSAGES[error]["en"]).format(**values) if error in MESSAGES else error
    return render(ctx, "login.html", {"login_csrf": ctx.request.cookies.get(LOGIN_CSRF, ""), "next": _safe_next(str(form.get("next") or "")),
                                      "error": text, "username": username}, status=status)


def _failure(conn: sa.Connection, username: str) -> tuple[str, int | None]:
    row = conn.execute(sa.select(USERS.c.id, USERS.c.active).where(USERS.c.username == username)).first()
    if row is None:
        return "unknown", None
    return ("failed" if row.active else "disabled"), int(row.id)


def login_submit(ctx: Ctx) -> Response:
    """Check the password (unless the name or address is locked), record the attempt, start a server-side session."""
    form = ctx.form
    if form is None:
        raise Forbidden("missing or invalid CSRF token; reload the login page")
    sent, expected = str(form.get("csrf_token") or ""), ctx.request.cookies.get(LOGIN_CSRF, "")
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        raise Forbidden("missing or invalid CSRF token; reload the login page")
    username, password = str(form.get("username") or "").strip()[:64], str(form.get("password") or "")
    ip, agent = client_ip(ctx.request), ctx.request.headers.get("user-agent")
    limits: Limits = getattr(ctx.request.app.state, "login_limits", Limits())
    with ctx.rt.db.begin() as conn:
        until = locked_until(conn, username, ip, limits)
        if until is not None:
            logins.record(conn, username, "locked", None, ip, agent)
    if until is not None:
        return _again(ctx, "locked", 429, username, minutes=max(1, math.ceil((until - logins.now()).total_seconds() / 60)))
    with ctx.rt.db.begin() as conn:
        user = check_password(conn, username, password) if username and password else None
        if user is None:
            result, user_id = _failure(conn, username)
            logins.record(conn, username or "-", result, user_id, ip, agent)
        elif not permits(policy_store(ctx.request, ctx.rt).refresh(None).allowlist, user.id, user.roles, ip):
            logins.record(conn, username, "ip_denied", user.id, ip, agent)
            user, result = None, "ip_denied"
        else:
            logins.record(conn, username, "ok", user.id, ip, agent)
            old = ctx.request.cookies.get(SESSION_COOKIE)
            if old:
                sessions.end(conn, old)
            token = sessions.start(conn, user.id, "web", ip, getattr(ctx.request.app.state, "session_absolute", sessions.ABSOLUTE))
    if user is None:
        return _again(ctx, "ip_denied" if result == "ip_denied" else "bad_login", 403 if result == "ip_denied" else 401, username)
    done = RedirectResponse(_safe_next(str(form.get("next") or "")), status_code=303)
    done.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", secure=ctx.request.url.scheme == "https", path="/")
    done.delete_cookie(LOGIN_CSRF)
    return done


def logout(ctx: Ctx) -> Response:
    """End the session everywhere and drop the cookie."""
    token = ctx.request.cookies.get(SESSION_COOKIE)
    if token:
        with ctx.rt.db.begin() as conn:
            sessions.end(conn, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def set_locale(request: Request) -> Response:
    """Switch the language (a cookie), back to where the user was."""
    code = request.path_params["code"]
    back = _safe_next(request.query_params.get("next"))
    response = RedirectResponse(back, status_code=303)
    if code in ("en", "zh"):
        response.set_cookie(LOCALE_COOKIE, code, samesite="lax", max_age=365 * 86400)
    return response


def routes() -> list[Route]:
    """Login, logout and the language switch."""
    return [
        Route("/login", handler(login_page, login_required=False), methods=["GET"], name="login"),
        Route("/login", handler(login_submit, login_required=False, csrf=False), methods=["POST"], name="login_submit"),
        Route("/logout", handler(logout), methods=["POST"], name="logout"),
        Route("/locale/{code}", set_locale, methods=["GET"], name="locale"),
    ]
