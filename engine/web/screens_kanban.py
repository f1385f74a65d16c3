"""The kanban board: one lane per option of the select field the layout names; moving a card changes that field."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from starlette.responses import JSONResponse, Response

from engine import listing, records
from engine.errors import NotFound
from engine.spec import Field, Module
from engine.web.context import Ctx
from engine.web.i18n import translate
from engine.web.screens_filters import ListParams, filter_widgets, read_params
from engine.web.screens_list import build_query, columns_of, rows_of
from engine.web.screens_record import record_title
from engine.web.views import Cell, badge_of, go, page, paths, safe_back, screen_module, with_query

LANE_SIZE = 30


@dataclass(frozen=True)
class Card:
    """One record on the board."""

    id: int
    href: str
    title: str
    version: int
    lines: tuple[tuple[str, Cell], ...]


@dataclass(frozen=True)
class Lane:
    """One column of the board: an option of the field (or none), its cards, a link to the rest."""

    value: str
    label: str
    badge: str | None
    cards: tuple[Card, ...]
    more: str | None


def board_field(ctx: Ctx, module: Module) -> Field:
    """The select field the board groups by (404 when the layout names none or the user cannot read it)."""
    name = module.layout.list.kanban
    if not name or name not in module.by_name or name not in ctx.access.readable(module) or module.field(name).type != "select":
        raise NotFound(f"{module.name} has no board")
    return module.field(name)


def _lane(ctx: Ctx, module: Module, f: Field, params: ListParams, value: str | None, columns: list[str]) -> Lane:
    extra = (f.name, value) if value is not None else (f"{f.name}__isnull", "1")
    lane_params = replace(params, filters=(*[(k, v) for k, v in params.filters if k.partition("__")[0] != f.name], extra))
    shown = list(dict.fromkeys([*columns, f.name, "version"]))
    query = replace(build_query(ctx, module, lane_params, shown), limit=LANE_SIZE, cursor=None)
    found = listing.list_page(ctx.rt, ctx.access, module.name, query)
    lines = [n for n in columns if n not in (module.title_field, f.name)][:3]
    rows = rows_of(ctx, module, found.items, lines)
    labels = [module.field(n).label(ctx.locale) for n in lines]
    cards = tuple(Card(r["id"], row.href, record_title(module, r), r.get("version") or 0, tuple(zip(labels, row.cells, strict=True)))
                  for r, row in zip(found.items, rows, strict=True))
    option = f.option(value) if value is not None else None
    more = with_query(paths(ctx)("screen_list", module=module.name), lane_params.url_params()) if found.next_cursor else None
    label = option.label(ctx.locale) if option else value if value is not None else translate("none", ctx.locale)
    return Lane(value or "", label, badge_of(f, value), cards, more)


def kanban(ctx: Ctx) -> Response:
    """`/m/<module>/kanban` with the list's filters."""
    module = screen_module(ctx)
    f = board_field(ctx, module)
    params = read_params(ctx, module)
    columns = columns_of(ctx, module, params)
    values: list[str | None] = [o.value for o in f.options]
    lanes = [_lane(ctx, module, f, params, v, columns) for v in [*values, None]]
    lanes = [lane for lane in lanes if lane.value or lane.cards]
    url = paths(ctx)
    movable = ctx.access.can(module, "write") and f.name in ctx.access.writable(module)
    here = with_query(url("kanban", module=module.name), params.url_params())
    return page(ctx, "kanban.html", {
        "module": module, "field": f, "lanes": lanes, "movable": movable, "params": params, "errors": params.errors,
        "filters": filter_widgets(ctx, module, params), "self_url": here,
        "list_url": with_query(url("screen_list", module=module.name), params.url_params()),
        "options": [(o.value, o.label(ctx.locale)) for o in f.options],
        "can_create": ctx.access.can(module, "create"),
    }, blocks={"board": "board"})


def move(ctx: Ctx) -> Response:
    """Set the board field of one record (a dropped card, or the card's form without JavaScript)."""
    module = screen_module(ctx, "write")
    f = board_field(ctx, module)
    form = ctx.form
    assert form is not None
    saved: dict[str, Any] = records.update(ctx.rt, ctx.access, module.name, ctx.request.path_params["id"],
                                           {f.name: str(form.get("value") or "")}, str(form.get("version") or ""))
    if "application/json" in ctx.request.headers.get("accept", ""):
        return JSONResponse({"id": saved["id"], "version": saved.get("version"), "message": translate("moved", ctx.locale)})
    back = safe_back(str(form.get("back") or ""), paths(ctx)("kanban", module=module.name))
    return go(ctx, back, "moved")
