"""Record actions over HTTP: a form post from the record page, or JSON from the API."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from engine import actions
from engine.web.context import Ctx, handler


def _params(ctx: Ctx) -> dict[str, Any]:
    if ctx.form is not None:
        return {k: v for k, v in ctx.form.items() if k != "csrf_token" and isinstance(v, str)}
    return dict(ctx.data) if isinstance(ctx.data, dict) else {}


def _run(ctx: Ctx) -> actions.Outcome:
    p = ctx.request.path_params
    return actions.run(ctx.rt, ctx.access, p["module"], p["id"], p["action"], _params(ctx))


def screen_action(ctx: Ctx) -> Response:
    """Run the action, then back to the record (or the list when it is no longer visible) with a toast."""
    outcome = _run(ctx)
    module, record_id = ctx.request.path_params["module"], ctx.request.path_params["id"]
    target = f"/m/{module}/{outcome.record['id']}" if outcome.record else f"/m/{module}"
    if ctx.is_htmx:
        return Response(status_code=204, headers={"HX-Redirect": target, "HX-Trigger": '{"toast": "' + _safe(outcome.message) + '"}'})
    del record_id
    return RedirectResponse(target + "?toast=" + _quote(outcome.message), status_code=303)


def api_action(ctx: Ctx) -> Response:
    """Run the action; answer the record after it and the ids of records it created."""
    from engine.fieldtypes import to_json

    outcome = _run(ctx)
    module = ctx.rt.spec.module(ctx.request.path_params["module"])
    record = {k: to_json(module.field(k), v) if k in module.by_name and module.field(k).type != "table" else v
              for k, v in outcome.record.items()}
    return JSONResponse({"record": record, "created": outcome.created, "message": outcome.message})


def _safe(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text)


def routes() -> list[Route]:
    """The action endpoints for every module."""
    return [
        Route("/m/{module}/{id:int}/actions/{action}", handler(screen_action), methods=["POST"], name="record_action"),
        Route("/api/{module}/{id:int}/actions/{action}", handler(api_action), methods=["POST"], name="api_record_action"),
    ]
