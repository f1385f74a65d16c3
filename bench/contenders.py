"""The contenders: Loom, the hand-written limit and the peers, each as a uvicorn app with the requests of every scenario."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

from bench import venvs
from bench.data import session
from bench.servers import REPO, get

Request = dict[str, object]
FORM = {"industry": "retail", "region": "north", "rating": "hot", "amount": "1234.50", "employees": "12", "founded": "2020-02-02",
        "city": "Wuhan", "email": "new@example.com", "phone": "+86 10 12345678"}
CSRF_INPUT = re.compile(r'name="(csrf_token|csrfmiddlewaretoken|csrftoken)"[^>]*value="([^"]+)"')


@dataclass
class Ctx:
    """What the requests of one contender need: auth headers, the CSRF token, deep-page positions, a unique tag."""

    rows: int
    headers: dict[str, str] = field(default_factory=dict)
    users: dict[str, dict[str, str]] = field(default_factory=dict)
    csrf: str = ""
    deep: str = ""
    tag: str = ""


@dataclass(frozen=True)
class Contender:
    """One app under test."""

    name: str
    env: str | None  # a peer environment under bench/.venvs, or None for Loom's own interpreter
    app: str
    factory: bool
    form_path: str
    scenarios: dict[str, Callable[[Ctx], list[Request]]]

    def python(self) -> Path:
        """The interpreter that runs this contender's server."""
        return Path(sys.executable) if self.env is None else venvs.python(self.env)


def _get(path: str, ctx: Ctx, user: str | None = None) -> list[Request]:
    return [{"method": "GET", "path": path, "headers": ctx.users[user] if user else ctx.headers, "ok": [200]}]


def _post(path: str, ctx: Ctx, values: dict[str, str], ok: tuple[int, ...] = (302, 303)) -> list[Request]:
    body = urlencode(values).replace("%7Bn%7D", "{n}")
    headers = {**ctx.headers, "Content-Type": "application/x-www-form-urlencoded"}
    return [{"method": "POST", "path": path, "headers": headers, "body": body, "ok": list(ok)}]


def _name(ctx: Ctx) -> str:
    return f"Bench {ctx.tag} {{n}}"


LOOM_LIST = "/m/customer?industry=retail&sort=-amount"
LOOM = Contender("loom", None, "bench.loom_server:app", True, "/m/customer/new", {
    "list": lambda c: _get(LOOM_LIST, c),
    "list_deep": lambda c: _get(f"{LOOM_LIST}&cursor={c.deep}", c),
    "record": lambda c: _get("/m/customer/{id}", c),
    "create": lambda c: _post("/m/customer/new", c, {"csrf_token": c.csrf, "name": _name(c), **FORM}),
    "api_list": lambda c: _get("/api/customer?industry=retail&sort=-amount&limit=25", c),
    "api_get": lambda c: _get("/api/customer/{id}", c),
    "wide_api_ruled": lambda c: _get("/api/wide?limit=50", c, "ruled"),
    "wide_api_plain": lambda c: _get("/api/wide?limit=50", c, "plain"),
    "wide_list_ruled": lambda c: _get("/m/wide?limit=50", c, "ruled"),
    "wide_list_plain": lambda c: _get("/m/wide?limit=50", c, "plain"),
})
LIMIT = Contender("limit", "limit", "bench.peers.limit_app:app", True, "/m/customer/new", {
    "list": lambda c: _get(LOOM_LIST, c),
    "list_deep": lambda c: _get(f"{LOOM_LIST}&cursor={c.deep}", c),
    "record": lambda c: _get("/m/customer/{id}", c),
    "create": lambda c: _post("/m/customer/new", c, {"csrf_token": c.csrf, "name": _name(c), **FORM}),
    "api_list": lambda c: _get("/api/customer?industry=retail&sort=-amount&limit=25", c),
    "api_get": lambda c: _get("/api/customer/{id}", c),
})
SQLADMIN_LIST = "/admin/customer/list?sortBy=amount&sort=desc&industry=retail"
SQLADMIN = Contender("sqladmin", "sqladmin", "bench.peers.sqladmin_app:app", True, "/admin/customer/create", {
    "list": lambda c: _get(SQLADMIN_LIST, c),
    "list_deep": lambda c: _get(f"{SQLADMIN_LIST}&page={c.deep}", c),
    "record": lambda c: _get("/admin/customer/details/{id}", c),
    "create": lambda c: _post("/admin/customer/create", c, {"name": _name(c), **FORM}),
})
STARLETTE_LIST = "/admin/customer/list?sort=amount__desc&filter=" + quote("industry__eq=retail")
STARLETTE_ADMIN = Contender("starlette_admin", "starlette_admin", "bench.peers.starlette_admin_app:app", True, "/admin/customer/create", {
    "list": lambda c: _get(STARLETTE_LIST, c),
    "list_deep": lambda c: _get(f"{STARLETTE_LIST}&page={c.deep}", c),
    "record": lambda c: _get("/admin/customer/detail?pk={id}", c),
    "create": lambda c: _post("/admin/customer/create", c, {"csrftoken": c.csrf, "name": _name(c), **FORM}),
})
DJANGO_LIST = "/admin/crm/customer/?industry__exact=retail&o=-5"
DJANGO = Contender("django", "django", "bench.peers.django_site.asgi:application", False, "/admin/crm/customer/add/", {
    "list": lambda c: _get(DJANGO_LIST, c),
    "list_deep": lambda c: _get(f"{DJANGO_LIST}&p={c.deep}", c),
    "record": lambda c: _get("/admin/crm/customer/{id}/change/", c),
    "create": lambda c: _post("/admin/crm/customer/add/", c, {"csrfmiddlewaretoken": c.csrf, "name": _name(c), **FORM, "_save": "Save"}),
})
ALL = (LOOM, LIMIT, SQLADMIN, STARLETTE_ADMIN, DJANGO)
PEERS = ("sqladmin", "starlette_admin", "django")


def server_env(url: str) -> dict[str, str]:
    """What every server process gets: the database and the repository on the import path."""
    return {"BENCH_DB_URL": url, "PYTHONPATH": str(REPO), "BENCH_FILES": str(REPO / "bench" / "data" / "files")}


def sign_in(c: Contender, url: str, username: str = "bench") -> dict[str, str]:
    """Request headers of a signed-in admin: a Loom session for Loom and the limit, a Django session for Django."""
    if c.name in ("loom", "limit"):
        token, _ = session(url, username)
        return {"Cookie": f"loom_session={token}"}
    if c.name == "django":
        done = subprocess.run([str(c.python()), "-m", "bench.peers.django_site.setup"], cwd=REPO, env=_env(url),
                              capture_output=True, text=True, check=True, timeout=300)
        return {"Cookie": json.loads(done.stdout.strip().splitlines()[-1])["cookie"]}
    return {}


def _env(url: str) -> dict[str, str]:
    import os

    return {**os.environ, **server_env(url)}


def prime(c: Contender, port: int, ctx: Ctx) -> None:
    """Open the create form once, as a browser would: keep the cookies it sets and the CSRF token it holds."""
    status, headers, body = get(port, c.form_path, ctx.headers)
    if status != 200:
        raise RuntimeError(f"{c.name}: GET {c.form_path} answered {status}")
    cookies = [h.split(";", 1)[0] for h in headers.get("set-cookie-all", "").split("\n") if h]
    if cookies:
        ctx.headers = {**ctx.headers, "Cookie": "; ".join(filter(None, [ctx.headers.get("Cookie", ""), *cookies]))}
    found = CSRF_INPUT.search(body.decode("utf-8", "replace"))
    ctx.csrf = found.group(2) if found else _cookie(ctx.headers.get("Cookie", ""), "csrftoken")


def _cookie(header: str, name: str) -> str:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""
