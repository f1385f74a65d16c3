"""The shell's own pages: the home page with the app's panels, and friendly error pages."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response

from engine import listing
from engine.access import Actor
from engine.errors import Invalid, LoomError
from engine.gate import RoleAccess
from engine.query import ListQuery, parse_list_query
from engine.spec import Module, Panel
from engine.web.context import Ctx, pick_locale
from engine.web.i18n import translate
from engine.web.screens_filters import panel_params
from engine.web.screens_list import Row, rows_of
from engine.web.views import badge_of, page, paths, toast_headers, with_query

ERROR_WORDS = {401: "forbidden", 403: "forbidden", 404: "not_found", 409: "conflict", 422: "invalid", 500: "server_error"}


@dataclass(frozen=True)
class Group:
    """A grouped count on a panel: the value's label, how many, and the filtered list."""

    label: str
    count: int
    href: str
    badge: str | None


@dataclass(frozen=True)
class PanelView:
    """One home panel: a short list or grouped counts of one module."""

    label: str
    href: str
    headers: tuple[str, ...] = ()
    rows: tuple[Row, ...] = ()
    groups: tuple[Group, ...] = ()
    error: str | None = None


def _grouped(ctx: Ctx, module: Module, query: ListQuery, name: str, pairs: list[tuple[str, str]]) -> tuple[Group, ...]:
    f = module.field(name)
    inner = listing.base_select(ctx.rt, ctx.access, module, query, [name]).subquery()
    stmt = sa.select(inner.c[name], sa.func.count()).group_by(inner.c[name])
    with ctx.rt.db.connect() as conn:
        counts = {r[0]: int(r[1]) for r in conn.execute(stmt)}
    order = [o.value for o in f.options] + sorted((k for k in counts if f.option(k) is None), key=str)
    base = paths(ctx)("screen_list", module=module.name)
    out = []
    for value in order:
        if value in counts:
            keep = [(k, v) for k, v in pairs if k.partition("__")[0] != name]
            where = [*keep, (name, str(value))] if value is not None else [*keep, (f"{name}__isnull", "1")]
            label = listing_label(f, value, ctx.locale)
            out.append(Group(label, counts[value], with_query(base, where), badge_of(f, value)))
    return tuple(out)


def listing_label(f: Any, value: Any, locale: str) -> str:
    """The label of a grouped value."""
    if value is None:
        return translate("none", locale)
    option = f.option(value)
    return option.label(locale) if option else str(value)


def panel_view(ctx: Ctx, panel: Panel, module: Module) -> PanelView:
    """Run one panel's query (a 422 in the metadata shows as a message on the panel, not a broken page)."""
    readable = ctx.access.readable(module)
    pairs = panel_params(ctx, panel.filter)
    href = with_query(paths(ctx)("screen_list", module=module.name), pairs + ([("sort", panel.sort)] if panel.sort else []))
    columns = [n for n in module.layout.list.columns if n in readable and module.field(n).stored][:4]
    try:
        query = parse_list_query(module, [*pairs, *([("sort", panel.sort)] if panel.sort else []), ("fields", ",".join(columns) or "id")],
                                 set(readable))
        if panel.group_by and panel.group_by in readable:
            return PanelView(panel.label(ctx.locale), href, groups=_grouped(ctx, module, query, panel.group_by, pairs))
        found = listing.list_page(ctx.rt, ctx.access, module.name, replace(query, limit=panel.limit))
    except Invalid as exc:
        return PanelView(panel.label(ctx.locale), href, error="; ".join(f"{k}: {v}" for k, v in exc.fields.items()) or exc.message)
    headers = tuple(module.field(n).label(ctx.locale) for n in columns)
    return PanelView(panel.label(ctx.locale), href, headers, tuple(rows_of(ctx, module, found.items, columns)))


def home(ctx: Ctx) -> Response:
    """`/`: the app's home panels, for the modules the user may read."""
    panels = []
    for panel in ctx.rt.spec.app.panels:
        module = ctx.rt.spec.modules.get(panel.module)
        if module is not None and not module.child and ctx.access.can(module, "read"):
            panels.append(panel_view(ctx, panel, module))
    name = (ctx.user.full_name or ctx.user.username) if ctx.user else ""
    return page(ctx, "home.html", {"panels": panels, "name": name})


def error_page(request: Request, exc: LoomError) -> Response:
    """A friendly page for 403/404/409/422/500 (for HTMX: a toast, nothing swapped)."""
    rt = request.app.state.runtime
    locale = pick_locale(request, None, rt)
    ctx = Ctx(request, rt, None, RoleAccess(Actor(locale=locale), rt.spec), locale)
    summary = translate(ERROR_WORDS.get(exc.status, "error"), locale)
    message = summary if exc.status >= 500 else exc.message
    if request.headers.get("hx-request") == "true":
        return Response(status_code=exc.status, headers=toast_headers(message))
    fields = [] if exc.status >= 500 else list(exc.fields.items())
    return page(ctx, "error.html", {"status": exc.status, "summary": summary, "message": message, "fields": fields}, exc.status)
