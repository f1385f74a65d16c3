"""The REST API for every module: /api/<module> (list, create) and /api/<module>/<id> (read, update, delete).

Record actions (`POST /api/<module>/<id>/actions/<name>`) are served by engine.web.action_routes;
the OpenAPI document (engine.web.openapi) describes them with the rest.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import orjson
import sqlalchemy as sa
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from engine import records
from engine.errors import Conflict, Invalid, NotFound
from engine.listing import list_page, titles
from engine.query import ListQuery, parse_list_query
from engine.spec import Module
from engine.web import openapi
from engine.web.context import Ctx, Endpoint, handler
from engine.web.serialize import Serializer, add_titles, record_body, serializers, take_version

API_ONLY_PARAMS = frozenset({"expand"})
MAX_ID = 2**63 - 1


class FastJSON(JSONResponse):
    """A JSON response encoded by orjson (records and pages are the API's hot path; the values are JSON types already)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def guarded(fn: Callable[[Ctx], Response]) -> Endpoint:
    """A login-required endpoint whose values the database refuses (NUL bytes, bad text) answer 422, not 500."""

    @functools.wraps(fn)
    def run(ctx: Ctx) -> Response:
        try:
            return fn(ctx)
        except (sa.exc.DataError, UnicodeEncodeError):
            raise Invalid("a value cannot be stored or searched for (for example a NUL character or broken text)") from None

    return handler(run)


def _module(ctx: Ctx) -> Module:
    name = ctx.request.path_params["module"]
    module = ctx.rt.spec.modules.get(name)
    if module is None or module.child:
        raise NotFound(f"unknown module '{name}'")
    return module


def _record_id(ctx: Ctx, module: Module) -> int:
    raw = ctx.request.path_params["id"]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19 and 0 < int(raw) <= MAX_ID):
        raise NotFound(f"{module.name} {raw} not found")
    return int(raw)


def _serializer(ctx: Ctx, module: Module) -> Serializer:
    return serializers(ctx.request.app.state, ctx.rt)[module.name]


def _expand(ctx: Ctx) -> bool:
    value = ctx.request.query_params.get("expand")
    if value not in (None, "", "titles"):
        raise Invalid("invalid expand", {"expand": "use expand=titles"})
    return value == "titles"


def _with_titles(ctx: Ctx, module: Module, rows: list[dict[str, Any]], items: list[dict[str, Any]]) -> None:
    names = [n for n in _serializer(ctx, module).links if items and n in items[0]]
    add_titles(items, titles(ctx.rt, ctx.access, module, rows, names), names)


def _answer(ctx: Ctx, module: Module, record: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    item = _serializer(ctx, module).dump(record)
    if _expand(ctx):
        _with_titles(ctx, module, [record], [item])
    return FastJSON(item, status_code=status, headers=headers)


# -- list -----------------------------------------------------------------------------------------------

def _output_names(module: Module, query: ListQuery, readable: frozenset[str]) -> list[str]:
    if query.fields:
        return list(dict.fromkeys(["id", *query.fields]))
    return [f.name for f in module.stored_fields if f.name in readable]


def _child_rows(ctx: Ctx, module: Module, names: list[str], items: list[dict[str, Any]]) -> None:
    """Child-table fields asked for with fields=: one query per table for the whole page."""
    tables = [n for n in names if module.field(n).type == "table"]
    if not tables or not items:
        return
    with ctx.rt.reading() as conn:
        per = records.children(conn, ctx.rt, module, [item["id"] for item in items])
    for name in tables:
        child = _serializer(ctx, module).children[name]
        columns = [n for n in child.row_names if n in ctx.access.readable(child.module)]
        for item in items:
            item[name] = child.dump_rows(per[name][item["id"]], columns)


def list_records(ctx: Ctx) -> Response:
    """GET /api/<module>: one page, filtered, sorted and paged in SQL; the total only with count=true."""
    module = _module(ctx)
    records.require(ctx.access, module, "read")
    readable = ctx.access.readable(module)
    params = [(k, v) for k, v in ctx.request.query_params.multi_items() if k not in API_ONLY_PARAMS]
    query = parse_list_query(module, params, set(readable))
    expand = _expand(ctx)
    page = list_page(ctx.rt, ctx.access, module.name, query)
    names = _output_names(module, query, readable)
    items = _serializer(ctx, module).dump_rows(page.items, names)
    _child_rows(ctx, module, names, items)
    if expand:
        _with_titles(ctx, module, page.items, items)
    body: dict[str, Any] = {"items": items, "next_cursor": page.next_cursor}
    if query.count:
        body["total"] = page.total
    return FastJSON(body)


# -- one record -----------------------------------------------------------------------------------------

def create_record(ctx: Ctx) -> Response:
    """POST /api/<module>: create from a JSON object; 201 with the record as the user may read it."""
    module = _module(ctx)
    record = records.create(ctx.rt, ctx.access, module.name, record_body(ctx.data))
    location = ctx.request.app.url_path_for("api_get", module=module.name, id=str(record["id"]))
    return _answer(ctx, module, record, 201, {"Location": location})


def get_record(ctx: Ctx) -> Response:
    """GET /api/<module>/<id>: the record with its child rows; 404 when absent or out of the user's scope."""
    module = _module(ctx)
    return _answer(ctx, module, records.get(ctx.rt, ctx.access, module.name, _record_id(ctx, module)))


def update_record(ctx: Ctx) -> Response:
    """PATCH /api/<module>/<id>: change the fields sent; `version` must be the one read, else 409."""
    module = _module(ctx)
    record_id = _record_id(ctx, module)
    body = record_body(ctx.data)
    version = take_version(body)
    try:
        record = records.update(ctx.rt, ctx.access, module.name, record_id, body, version)
    except Conflict as exc:
        readable = ctx.access.readable(module)
        raise Conflict(exc.message, {k: v for k, v in exc.fields.items() if k in readable}) from None
    return _answer(ctx, module, record)


def delete_record(ctx: Ctx) -> Response:
    """DELETE /api/<module>/<id>: move the record to the recycle bin; 204."""
    module = _module(ctx)
    records.delete(ctx.rt, ctx.access, module.name, _record_id(ctx, module))
    return Response(status_code=204)


# -- the description ------------------------------------------------------------------------------------

def openapi_json(ctx: Ctx) -> Response:
    """GET /api/openapi.json: the OpenAPI 3.1 document of this runtime's metadata."""
    return Response(openapi.published(ctx.request.app.state, ctx.rt).body, media_type="application/json")


def docs(ctx: Ctx) -> Response:
    """GET /api/docs: a plain page listing every module's endpoints and fields."""
    doc = openapi.published(ctx.request.app.state, ctx.rt).document
    app = ctx.request.app
    page = openapi.docs_html(doc, app.url_path_for("static", path="loom.css"), app.url_path_for("api_openapi"))
    return HTMLResponse(page)


def routes() -> list[Route]:
    """The API routes (the description first, so no module can shadow it)."""
    return [
        Route("/api/openapi.json", guarded(openapi_json), methods=["GET"], name="api_openapi"),
        Route("/api/docs", guarded(docs), methods=["GET"], name="api_docs"),
        Route("/api/{module}", guarded(list_records), methods=["GET"], name="api_list"),
        Route("/api/{module}", guarded(create_record), methods=["POST"], name="api_create"),
        Route("/api/{module}/{id}", guarded(get_record), methods=["GET"], name="api_get"),
        Route("/api/{module}/{id}", guarded(update_record), methods=["PATCH"], name="api_update"),
        Route("/api/{module}/{id}", guarded(delete_record), methods=["DELETE"], name="api_delete"),
    ]
