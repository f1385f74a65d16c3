"""`create_app(settings)`: one Starlette app per runtime, with no global state."""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from engine.auth.config import from_environ
from engine.errors import LoomError, Unauthorized
from engine.runtime import Runtime, Settings, open_runtime
from engine.tables import refresh_statistics
from engine.web.render import environment

STATIC = Path(__file__).resolve().parent / "static"
ROUTE_MODULES = ("engine.web.auth_routes", "engine.web.action_routes", "engine.web.file_routes", "engine.web.screens", "engine.web.api",
                 "engine.web.io_routes", "engine.web.admin_routes", "engine.web.share_routes", "admin.routes")
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"frame-ancestors 'none'; form-action 'self'; base-uri 'self'; object-src 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
log = logging.getLogger("loom")


class SecurityHeaders:
    """Adds the security headers to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        secure = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                if secure:
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def routes() -> list[BaseRoute]:
    """Every route of the app: static files, then each route module present."""
    found: list[BaseRoute] = [Mount("/static", StaticFiles(directory=str(STATIC)), name="static")]
    for name in ROUTE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        found += module.routes()
    return found


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")


def error_response(request: Request, exc: LoomError) -> Response:
    """One mapping of Loom's errors to HTTP: JSON for the API, a page or fragment for screens."""
    if _wants_json(request):
        return JSONResponse({"error": {"code": exc.code, "message": exc.message, "fields": exc.fields}}, status_code=exc.status)
    if isinstance(exc, Unauthorized):
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={_quote(target)}", status_code=303)
    page = getattr(request.app.state, "error_page", None)
    if page is not None:
        response: Response = page(request, exc)
        return response
    return PlainTextResponse(exc.message, status_code=exc.status)


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="/")


async def _loom_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoomError)
    return error_response(request, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error = LoomError(str(exc.detail))
    error.status = exc.status_code
    error.code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(request, error)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    error = LoomError("something went wrong on our side; the error was logged")
    error.status, error.code = 500, "server_error"
    response = error_response(request, error)
    # A 500 is answered by Starlette's outermost middleware, outside SecurityHeaders: add them here.
    for key, value in SECURITY_HEADERS:
        response.headers.setdefault(key.decode(), value.decode())
    return response


def middleware(trusted_proxies: list[str] | None) -> list[Middleware]:
    """Security headers on every response; first, when proxies are trusted, the scheme and client address they forward."""
    found = [Middleware(SecurityHeaders)]
    if trusted_proxies:
        found.insert(0, Middleware(ProxyHeadersMiddleware, trusted_hosts=trusted_proxies))
    return found


def create_app(settings: Settings | None = None, runtime: Runtime | None = None, **state: Any) -> Starlette:
    """Build one app: load metadata, bring the schema up to date, mount every route."""
    from engine.migrate import ensure_schema

    rt = runtime or open_runtime(settings or Settings())
    if rt.settings.auto_migrate:
        ensure_schema(rt)
        refresh_statistics(rt.db, rt.tables)
    state = from_environ(os.environ) | state
    app = Starlette(
        debug=False, routes=routes(), middleware=middleware(state.get("trusted_proxies")),
        exception_handlers={LoomError: _loom_error, HTTPException: _http_error, Exception: _server_error},
    )
    app.state.runtime = rt
    app.state.templates = environment()
    for key, value in state.items():
        setattr(app.state, key, value)
    for name in ("engine.web.screens", "engine.web.admin_routes", "admin.routes"):
        _setup(name, app)
    return app


def _setup(name: str, app: Starlette) -> None:
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return
    if hasattr(module, "setup"):
        module.setup(app)
