"""Every endpoint's shape: read the body, find the user, check CSRF, then run sync code in a thread."""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import json
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlparse

import sqlalchemy as sa
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from engine import customize
from engine.access import Actor
from engine.auth import sessions
from engine.auth.allowlist import permits
from engine.auth.policy import PolicyStore
from engine.auth.users import User, user_from
from engine.errors import Forbidden, Invalid, Unauthorized
from engine.gate import RoleAccess
from engine.runtime import Runtime, shared_reads

SESSION_COOKIE = "loom_session"
LOCALE_COOKIE = "loom_locale"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
MAX_BODY = 2_000_000
MAX_FIELDS = 2000
MAX_UPLOAD = 60_000_000
THREADS = 4  # request threads per worker process (LOOM_THREADS)
Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass
class Ctx:
    """What a sync endpoint gets: the request, the runtime, the user, their access and the parsed body."""

    request: Request
    rt: Runtime
    user: User | None
    access: RoleAccess
    locale: str
    form: FormData | None = None
    data: Any = None
    csrf: str = ""
    session_kind: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_api(self) -> bool:
        """Whether the request is for the JSON API."""
        return self.request.url.path.startswith("/api/")

    @property
    def is_htmx(self) -> bool:
        """Whether HTMX sent the request (it then wants a fragment)."""
        return self.request.headers.get("hx-request") == "true"


_RELOAD = threading.Lock()


def runtime(request: Request) -> Runtime:
    """The runtime of the app serving `request`."""
    rt: Runtime = request.app.state.runtime
    return rt


def pick_locale(request: Request, user: User | None, rt: Runtime) -> str:
    """The locale: the cookie, then the user's, then Accept-Language, then the app's default."""
    wanted = request.cookies.get(LOCALE_COOKIE) or (user.locale if user else None)
    if not wanted:
        accept = request.headers.get("accept-language", "")
        wanted = "zh" if accept.lower().startswith("zh") else None
    return wanted if wanted in rt.spec.app.locales else rt.spec.app.default_locale


async def read_body(request: Request) -> tuple[FormData | None, Any]:
    """The form or JSON body of an unsafe request (size-capped)."""
    if request.method not in UNSAFE:
        return None, None
    kind = request.headers.get("content-type", "")
    size = int(request.headers.get("content-length") or 0)
    if size > MAX_BODY and "multipart" not in kind:
        raise Invalid(f"request body larger than {MAX_BODY} bytes")
    if size > MAX_UPLOAD:
        raise Invalid(f"upload larger than {MAX_UPLOAD // 1_000_000} MB")
    if "application/json" in kind:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise Invalid(f"request body larger than {MAX_BODY} bytes")
        try:
            return None, json.loads(raw or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Invalid("the body is not valid JSON") from None
    if kind.startswith("application/x-www-form-urlencoded"):
        return urlencoded(await request.body()), None
    if "form" in kind:
        return await request.form(max_files=10, max_fields=MAX_FIELDS), None
    return None, None


def urlencoded(body: bytes) -> FormData:
    """A url-encoded form body, read as Starlette reads it (names and values percent-decoded as UTF-8) but by the
    standard library's parser: python-multipart's streaming parser cost a 12-field create 0.12 ms, parse_qsl 0.02."""
    if len(body) > MAX_BODY:
        raise Invalid(f"request body larger than {MAX_BODY} bytes")
    try:
        pairs = parse_qsl(body.decode("latin-1"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        raise Invalid(f"a form of more than {MAX_FIELDS} fields") from None
    fields: list[tuple[str, str | UploadFile]] = list(pairs)
    return FormData(fields)


async def read_input(request: Request) -> tuple[FormData | None, Any]:
    """The body; screens (every path outside /api/) always get a form, empty when something else was sent."""
    form, data = await read_body(request)
    if form is None and request.method in UNSAFE and not request.url.path.startswith("/api/"):
        form = FormData()
    return form, data


def _found(conn: sa.Connection, request: Request) -> tuple[sessions.Found | None, str]:
    idle = getattr(request.app.state, "session_idle", sessions.IDLE)
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return sessions.resolve(conn, auth[7:].strip(), "token", idle), "token"
    cookie = request.cookies.get(SESSION_COOKIE)
    return (sessions.resolve(conn, cookie, "web", idle), "web") if cookie else (None, "")


def _check_csrf(request: Request, form: FormData | None, expected: str) -> None:
    sent = request.headers.get("x-csrf-token") or (str(form.get("csrf_token") or "") if form is not None else "")
    if not sent or not hmac.compare_digest(sent, expected):
        raise Forbidden("missing or invalid CSRF token; reload the page and try again")
    check_origin(request)


def check_origin(request: Request) -> None:
    """Refuse a cookie-authenticated write sent by another site (a second line behind the CSRF token)."""
    origin = request.headers.get("origin")
    if request.headers.get("sec-fetch-site") == "cross-site" or (origin and origin != "null" and urlparse(origin).netloc != request.url.netloc):
        raise Forbidden("cross-site request refused")


def policy_store(request: Request, rt: Runtime) -> PolicyStore:
    """The app's policy store (opened on first use), following the runtime's metadata."""
    store: PolicyStore | None = getattr(request.app.state, "policy", None)
    if store is None or store.db is not rt.db:
        store = PolicyStore.open(rt.db, rt.spec, rt.revision)
        request.app.state.policy = store
    store.follow(rt.spec, rt.revision)
    return store


def follow_revision(request: Request, rt: Runtime, store: PolicyStore) -> Runtime:
    """The runtime on the newest customization revision: a worker that sees a newer one (applied anywhere) reloads once."""
    snap = store.snapshot
    if snap is None or snap.revision <= rt.revision:
        return rt
    with _RELOAD:
        current = runtime(request)
        if current.revision < snap.revision:
            current = customize.reload(current)
            request.app.state.runtime = current
    store.follow(current.spec, current.revision)
    return current


def client_ip(request: Request) -> str | None:
    """The caller's address (behind a proxy listed in LOOM_TRUSTED_PROXIES: the address it forwards)."""
    return request.client.host if request.client else None


def _user(request: Request, found: sessions.Found | None, store: PolicyStore) -> User | None:
    if found is None:
        return None
    snap = store.refresh(found.policy_version)
    user = user_from(found.user)
    if not permits(snap.allowlist, user.id, user.roles, client_ip(request)):
        raise Forbidden("your account may not be used from this network")
    return user


def build_ctx(request: Request, form: FormData | None, data: Any, login_required: bool, csrf: bool = True) -> Ctx:
    """Resolve the session (one lookup with the user and the policy version), CSRF and the user's access."""
    rt = runtime(request)
    store = policy_store(request, rt)
    with rt.reading() as conn:  # the request's connection: the lookup, and a touch of the session now and then
        found, kind = _found(conn, request)
    user = _user(request, found, store)
    rt = follow_revision(request, rt, store)
    if login_required and user is None:
        raise Unauthorized("please log in")
    if csrf and found is not None and user is not None and kind == "web" and request.method in UNSAFE:
        _check_csrf(request, form, found.session.csrf)
    locale = pick_locale(request, user, rt)
    actor = Actor(user.id, user.username, user.roles, user.department_id, locale) if user else Actor(locale=locale)
    access = RoleAccess(actor, rt.spec, policy=store)
    hook = getattr(request.app.state, "access_hook", None)
    if hook is not None:
        hook(rt, access)
    return Ctx(request, rt, user, access, actor.locale, form, data, found.session.csrf if found else "", kind)


async def in_thread(run: Callable[[], Response], request: Request) -> Response:
    """Run a request's sync part in one of the worker's request threads (with the caller's context variables). A
    cancelled request still waits for its thread to finish with the request's files before they are closed."""
    done = asyncio.get_running_loop().run_in_executor(_pool(request), contextvars.copy_context().run, run)
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        await asyncio.wait([done])
        raise


def _pool(request: Request) -> ThreadPoolExecutor:
    """The worker's request threads: `threads` (LOOM_THREADS) at once, the rest wait their turn. A request is mostly
    Python holding the GIL: threads beyond a few only take it from each other (40, Starlette's default, cost a list page
    under 8 concurrent requests about 30 % more CPU than 4 did). The standard library's executor hands a request over
    in half the CPU anyio's worker threads take (50 µs against 90 under uvloop; 0.1M of a create's 3.2M instructions).
    Imports run as background jobs and CSV exports stream outside this pool; an .xlsx export holds one thread while it
    writes the file (1.5 s for 100k rows)."""
    found: ThreadPoolExecutor | None = getattr(request.app.state, "request_threads", None)
    if found is None:
        found = request.app.state.request_threads = ThreadPoolExecutor(getattr(request.app.state, "threads", THREADS), "loom-request")
    return found


def handler(fn: Callable[[Ctx], Response], login_required: bool = True, csrf: bool = True) -> Endpoint:
    """Wrap a sync endpoint `fn(ctx)`: body read async, everything else in the thread pool.

    `csrf=False` only for an endpoint that checks a token of its own (the login form's double-submit cookie).
    """

    async def endpoint(request: Request) -> Response:
        form, data = await read_input(request)

        def run() -> Response:
            with shared_reads():
                return fn(build_ctx(request, form, data, login_required, csrf))

        try:
            return await in_thread(run, request)
        finally:
            if form is not None:
                await form.close()

    endpoint.__name__ = fn.__name__
    endpoint.__doc__ = fn.__doc__
    return endpoint
