"""Sharing a record with a user or a department: the API (JSON) and the record page's form."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from engine.auth import shares
from engine.errors import Invalid
from engine.web.context import Ctx, handler


def _params(ctx: Ctx) -> dict[str, Any]:
    if ctx.form is not None:
        return {k: v for k, v in ctx.form.items() if isinstance(v, str)}
    return dict(ctx.data) if isinstance(ctx.data, dict) else {}


def _int(value: Any, name: str) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not str(value).strip().isdigit():
        raise Invalid("expected an id", {name: "a whole number"})
    return int(str(value).strip())


def _share(ctx: Ctx) -> int:
    p, body = ctx.request.path_params, _params(ctx)
    return shares.share(ctx.rt, ctx.access, p["module"], p["id"], _int(body.get("user"), "user"),
                        _int(body.get("department"), "department"), str(body.get("access") or "read"))


def api_list(ctx: Ctx) -> Response:
    """The shares of a record (404 unless the caller may share it)."""
    p = ctx.request.path_params
    return JSONResponse({"items": shares.shares_of(ctx.rt, ctx.access, p["module"], p["id"])})


def api_add(ctx: Ctx) -> Response:
    """Share with {"user": id} or {"department": id}, "access": "read" or "write"."""
    return JSONResponse({"id": _share(ctx)}, status_code=201)


def api_remove(ctx: Ctx) -> Response:
    """Remove one share."""
    p = ctx.request.path_params
    shares.unshare(ctx.rt, ctx.access, p["module"], p["id"], p["share"])
    return Response(status_code=204)


def screen_add(ctx: Ctx) -> Response:
    """The record page's share form; back to the record."""
    _share(ctx)
    p = ctx.request.path_params
    return RedirectResponse(f"/m/{p['module']}/{p['id']}?toast=shared", status_code=303)


def routes() -> list[Route]:
    """Share endpoints for every module."""
    record = "/api/{module}/{id:int}/shares"
    return [
        Route(record, handler(api_list), methods=["GET"], name="api_shares"),
        Route(record, handler(api_add), methods=["POST"], name="api_share_add"),
        Route(record + "/{share:int}", handler(api_remove), methods=["DELETE"], name="api_share_remove"),
        Route("/m/{module}/{id:int}/shares", handler(screen_add), methods=["POST"], name="share_add"),
    ]
