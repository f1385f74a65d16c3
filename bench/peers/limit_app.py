"""The practical limit: a hand-written Starlette + SQLAlchemy Core app with no metadata layer.

It serves what Loom serves for the customer module — the list page (25 rows, 8 columns, one filter, sorted
on an indexed column, keyset paging), the record page, the create form, and the JSON list and get — on the
same tables. Like any real app, it checks the session cookie against Loom's session table (one
indexed lookup per request) and the CSRF token on the form post.
Like Loom, it runs requests in at most 4 threads per worker, handed over as Loom hands them (the standard library's
executor, see `threaded`). Run in its own environment:
`uvicorn --factory bench.peers.limit_app:app` with BENCH_DB_URL.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import functools
import hashlib
import json
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

COLUMNS = ("name", "industry", "region", "rating", "amount", "employees", "founded", "city")
FILTERS = ("industry", "region", "rating")
SORTABLE = ("name", "amount", "employees", "founded", "city", "industry", "region", "rating")
INDUSTRIES = ("manufacturing", "retail", "finance", "energy", "logistics", "healthcare", "education", "construction", "software", "hospitality")
FORM_FIELDS = ("name", "industry", "region", "rating", "amount", "employees", "founded", "city", "email", "phone")
THREADS = 4  # as Loom's default (LOOM_THREADS)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

md = sa.MetaData()
customer = sa.Table(
    "customer", md,
    sa.Column("id", ID, primary_key=True), sa.Column("name", sa.String(140)), sa.Column("industry", sa.String(48)),
    sa.Column("region", sa.String(48)), sa.Column("rating", sa.String(48)), sa.Column("amount", sa.Numeric(18, 2)),
    sa.Column("employees", sa.BigInteger), sa.Column("founded", sa.Date), sa.Column("city", sa.String(60)),
    sa.Column("email", sa.String(254)), sa.Column("phone", sa.String(32)), sa.Column("active", sa.Boolean), sa.Column("notes", sa.Text),
    sa.Column("owner", sa.BigInteger), sa.Column("created_at", sa.DateTime), sa.Column("created_by", sa.BigInteger),
    sa.Column("updated_at", sa.DateTime), sa.Column("updated_by", sa.BigInteger), sa.Column("version", sa.BigInteger),
)
session = sa.Table(
    "loom_session", md, sa.Column("id", ID, primary_key=True), sa.Column("token_hash", sa.String(64)), sa.Column("user_id", sa.BigInteger),
    sa.Column("csrf", sa.String(64)), sa.Column("kind", sa.String(16)), sa.Column("ended_at", sa.DateTime), sa.Column("expires_at", sa.DateTime),
)
user = sa.Table("loom_user", md, sa.Column("id", ID, primary_key=True), sa.Column("active", sa.Boolean))
templates = Environment(loader=FileSystemLoader(str(Path(__file__).parent / "templates")), autoescape=select_autoescape())


def engine(url: str) -> sa.Engine:
    """The same engine settings Loom uses (WAL + busy timeout on SQLite, a pool of 10 on PostgreSQL)."""
    if url.startswith("sqlite"):
        db = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(db, "connect")
        def _pragmas(conn: Any, _rec: Any) -> None:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")

        return db
    return sa.create_engine(url, pool_size=10, max_overflow=10)


def signed_in(request: Request) -> tuple[int, str] | None:
    """(user id, CSRF token) of the request's live web session, or None."""
    token = request.cookies.get("loom_session")
    if not token:
        return None
    digest = hashlib.sha256(token.encode()).hexdigest()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    query = (sa.select(session.c.user_id, session.c.csrf).join(user, user.c.id == session.c.user_id)
             .where(session.c.token_hash == digest, session.c.kind == "web", session.c.ended_at.is_(None), user.c.active.is_(True),
                    sa.or_(session.c.expires_at.is_(None), session.c.expires_at > now)))
    with request.app.state.db.connect() as conn:
        row = conn.execute(query).first()
    return (int(row.user_id), str(row.csrf)) if row else None


def _cursor_out(row: Any, field: str) -> str:
    value = row._mapping[field]
    value = str(value) if isinstance(value, (Decimal, dt.date)) else value
    return base64.urlsafe_b64encode(json.dumps([value, row.id]).encode()).decode()


def _cursor_in(text: str, col: sa.Column[Any]) -> tuple[Any, int]:
    value, rid = json.loads(base64.urlsafe_b64decode(text.encode()))
    if isinstance(col.type, sa.Numeric) and value is not None:
        value = Decimal(value)
    elif isinstance(col.type, sa.Date) and value is not None:
        value = dt.date.fromisoformat(value)
    return value, int(rid)


def page(db: sa.Engine, params: Any, limit: int) -> tuple[list[Any], str | None]:
    """One keyset page: equality filters, a sort on an indexed column with id as tie-breaker."""
    sort = params.get("sort") or "-amount"
    field = sort.lstrip("-")
    if field not in SORTABLE:
        field, sort = "amount", "-amount"
    col, desc = customer.c[field], sort.startswith("-")
    query = sa.select(customer.c.id, *(customer.c[c] for c in COLUMNS))
    for name in FILTERS:
        if params.get(name):
            query = query.where(customer.c[name] == params[name])
    if params.get("cursor"):
        value, rid = _cursor_in(params["cursor"], col)
        key = sa.tuple_(col, customer.c.id)
        query = query.where(key < sa.tuple_(value, rid) if desc else key > sa.tuple_(value, rid))
    query = query.order_by(col.desc() if desc else col.asc(), customer.c.id.desc() if desc else customer.c.id.asc()).limit(limit + 1)
    with db.connect() as conn:
        rows = conn.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, _cursor_out(rows[-1], field) if more and rows else None


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def list_page(request: Request) -> Response:
    if signed_in(request) is None:
        return RedirectResponse("/login", status_code=303)
    db = request.app.state.db
    rows, nxt = page(db, request.query_params, 25)
    html = templates.get_template("limit_list.html").render(
        title="Customers", rows=rows, columns=COLUMNS, industries=INDUSTRIES, industry=request.query_params.get("industry"),
        sort=request.query_params.get("sort") or "-amount", next_cursor=nxt)
    return HTMLResponse(html)


def _one(db: sa.Engine, rid: int) -> dict[str, Any] | None:
    with db.connect() as conn:
        row = conn.execute(sa.select(customer).where(customer.c.id == rid)).first()
    return dict(row._mapping) if row else None


def record_page(request: Request) -> Response:
    if signed_in(request) is None:
        return RedirectResponse("/login", status_code=303)
    record = _one(request.app.state.db, int(request.path_params["id"]))
    if record is None:
        return HTMLResponse("not found", status_code=404)
    return HTMLResponse(templates.get_template("limit_record.html").render(title=record["name"], record=record))


def api_list(request: Request) -> Response:
    if signed_in(request) is None:
        return JSONResponse({"error": {"code": "unauthorized", "message": "please log in"}}, status_code=401)
    try:
        limit = max(1, min(int(request.query_params.get("limit", 25)), 500))
    except ValueError:
        return JSONResponse({"error": {"code": "invalid", "message": "limit"}}, status_code=422)
    rows, nxt = page(request.app.state.db, request.query_params, limit)
    return JSONResponse({"items": [{k: _json(v) for k, v in r._mapping.items()} for r in rows], "next_cursor": nxt})


def api_get(request: Request) -> Response:
    if signed_in(request) is None:
        return JSONResponse({"error": {"code": "unauthorized", "message": "please log in"}}, status_code=401)
    record = _one(request.app.state.db, int(request.path_params["id"]))
    if record is None:
        return JSONResponse({"error": {"code": "not_found", "message": "no such record"}}, status_code=404)
    return JSONResponse({k: _json(v) for k, v in record.items()})


def _parse(form: Any) -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {f: (str(form.get(f) or "").strip() or None) for f in FORM_FIELDS}
    errors: dict[str, str] = {}
    if not values["name"]:
        errors["name"] = "required"
    try:
        values["amount"] = Decimal(values["amount"]) if values["amount"] else None
        values["employees"] = int(values["employees"]) if values["employees"] else None
        values["founded"] = dt.date.fromisoformat(values["founded"]) if values["founded"] else None
    except (InvalidOperation, ValueError):
        errors["amount"] = "invalid number or date"
    return values, errors


def new_form(request: Request) -> Response:
    found = signed_in(request)
    if found is None:
        return RedirectResponse("/login", status_code=303)
    html = templates.get_template("limit_form.html").render(title="New", fields=FORM_FIELDS, values={}, errors={}, csrf=found[1])
    return HTMLResponse(html)


async def create(request: Request) -> Response:
    form = await request.form()
    return await asyncio.get_running_loop().run_in_executor(POOL, _create, request, form)


def _create(request: Request, form: Any) -> Response:
    found = signed_in(request)
    if found is None or form.get("csrf_token") != found[1]:
        return HTMLResponse("forbidden", status_code=403)
    values, errors = _parse(form)
    if errors:
        html = templates.get_template("limit_form.html").render(title="New", fields=FORM_FIELDS, values=form, errors=errors, csrf=found[1])
        return HTMLResponse(html, status_code=422)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    uid = found[0]
    row = {**values, "active": True, "owner": uid, "created_by": uid, "updated_by": uid, "created_at": now, "updated_at": now, "version": 1}
    with request.app.state.db.begin() as conn:
        rid = int(conn.execute(customer.insert().values(**row).returning(customer.c.id)).scalar_one())
    return RedirectResponse(f"/m/customer/{rid}", status_code=303)


POOL = ThreadPoolExecutor(THREADS, "limit-request")


def threaded(fn: Callable[[Request], Response]) -> Callable[[Request], Awaitable[Response]]:
    """A sync endpoint run in one of the worker's THREADS request threads, as Loom runs its requests (Starlette's
    default, anyio's 40 threads, costs a CPU-bound page more under concurrent load and twice the CPU per hand-over)."""

    @functools.wraps(fn)
    async def endpoint(request: Request) -> Response:
        return await asyncio.get_running_loop().run_in_executor(POOL, fn, request)

    return endpoint


def app() -> Starlette:
    """The ASGI app (a factory, one per worker)."""
    made = Starlette(routes=[
        Route("/m/customer", threaded(list_page)), Route("/m/customer/new", threaded(new_form), methods=["GET"]),
        Route("/m/customer/new", create, methods=["POST"]), Route("/m/customer/{id:int}", threaded(record_page)),
        Route("/api/customer", threaded(api_list)), Route("/api/customer/{id:int}", threaded(api_get)),
    ])
    made.state.db = engine(os.environ["BENCH_DB_URL"])
    return made
