"""Login, logout and the language switch."""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlparse

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.auth import sessions
from engine.auth.users import check_password
from engine.errors import Forbidden
from engine.web.context import LOCALE_COOKIE, SESSION_COOKIE, Ctx, handler
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


def login_submit(ctx: Ctx) -> Response:
    """Check the password, start a server-side session, set the opaque cookie."""
    form = ctx.form
    assert form is not None
    sent, expected = str(form.get("csrf_token") or ""), ctx.request.cookies.get(LOGIN_CSRF, "")
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        raise Forbidden("missing or invalid CSRF token; reload the login page")
    username, password = str(form.get("username") or "").strip(), str(form.get("password") or "")
    throttle = getattr(ctx.request.app.state, "login_throttle", None)
    if throttle is not None:
        throttle.before(ctx, username)
    with ctx.rt.db.begin() as conn:
        user = check_password(conn, username, password) if username and password else None
        if throttle is not None:
            throttle.after(ctx, username, user, conn)
        if user is None:
            response = render(ctx, "login.html", {"login_csrf": expected, "next": _safe_next(str(form.get("next") or "")),
                                                   "error": "bad_login", "username": username}, status=401)
            return response
        token = sessions.start(conn, user.id, "web", ctx.request.client.host if ctx.request.client else None)
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
        Route("/login", handler(login_submit, login_required=False), methods=["POST"], name="login_submit"),
        Route("/logout", handler(logout), methods=["POST"], name="logout"),
        Route("/locale/{code}", set_locale, methods=["GET"], name="locale"),
    ]
