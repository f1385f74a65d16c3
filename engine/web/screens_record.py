"""The record page: tabs and sections from the layout, child tables, related lists, actions; print and delete."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from markupsafe import Markup
from starlette.responses import Response

from engine import listing, records
from engine.compute import visible_fields
from engine.errors import Invalid, NotFound
from engine.fieldtypes import stored_type
from engine.query import parse_list_query
from engine.spec import Field, Module
from engine.web.context import Ctx
from engine.web.forms import section_visible
from engine.web.i18n import translate
from engine.web.screens_list import Row, rows_of, titles_for
from engine.web.screens_lookup import resolve
from engine.web.views import NUMERIC, Cell, cell_html, formatter, go, page, paths, screen_module, with_query

RELATED_ROWS = 10


@dataclass(frozen=True)
class Shown:
    """One field on the record page."""

    name: str
    label: str
    cell: Cell
    table: Any = None

    @property
    def html(self) -> Markup:
        """The value as shown: escaped, with its link or badge (a dash when empty), made here rather than by a
        template macro per field."""
        return Markup(cell_html(self.cell)) if self.cell.text else Markup("—")


@dataclass(frozen=True)
class Block:
    """A section (label, columns, fields) or a tab (label, sections)."""

    id: str
    label: str
    items: tuple[Any, ...]
    columns: int = 1


@dataclass(frozen=True)
class Grid:
    """A child table or a related list: headers, rows, and where 'all' and 'new' lead."""

    label: str
    headers: tuple[tuple[str, str], ...]
    rows: tuple[Any, ...]
    all_href: str | None = None
    new_href: str | None = None
    more: bool = False


@dataclass(frozen=True)
class Button:
    """A record action: where it posts, and its confirmation (page without JS, dialog with JS)."""

    label: str
    post: str
    confirm: str | None
    confirm_href: str
    pick: bool = False


def in_scope(ctx: Ctx, module: Module, record_id: int, action: str) -> bool:
    """Whether the user may take `action` on this record (permission and data scope)."""
    if not ctx.access.can(module, action):
        return False
    table = ctx.rt.tables[module.name]

    def make(scope: sa.ColumnElement[bool] | None) -> sa.Select[Any] | None:
        return None if scope is None else sa.select(table.c.id).where(table.c.id == sa.bindparam("record_id"), scope)

    stmt = records.scoped_statement(ctx.rt, ctx.access, module, action, ("in scope",), make)
    if stmt is None:
        return True
    with ctx.rt.reading() as conn:
        return conn.execute(stmt, {"record_id": record_id}).first() is not None


def _cell(ctx: Ctx, f: Field, row: dict[str, Any], titles: dict[str, Any]) -> Cell:
    return formatter(ctx, f, titles.get(f.name))(row.get(f.name))


def child_grid(ctx: Ctx, f: Field, rows: list[dict[str, Any]]) -> Grid:
    """A child table as shown on the record page (readable columns only)."""
    child = ctx.rt.spec.module(f.module or "")
    readable = ctx.access.readable(child)
    cols = [c for c in child.fields if not c.system and not c.hidden and c.stored and c.name in readable]
    titles = titles_for(ctx, child, rows, cols)
    shows = [(c.name, formatter(ctx, c, titles.get(c.name))) for c in cols]
    body = tuple(tuple(fmt(r.get(name)) for name, fmt in shows) for r in rows)
    return Grid(f.label(ctx.locale), tuple((c.label(ctx.locale), "num" if _cell_num(c) else "") for c in cols), body)


def _cell_num(f: Field) -> bool:
    return stored_type(f) in NUMERIC


def tabs_of(ctx: Ctx, module: Module, record: dict[str, Any]) -> list[Block]:
    """The layout's tabs and sections with the fields the user may read and that are visible now."""
    readable = ctx.access.readable(module)
    state = visible_fields(module, record)
    names = [n for tab in module.layout.form for s in tab.sections for n in s.fields if n in readable and n in module.by_name]
    fields = [module.field(n) for n in dict.fromkeys(names)]
    titles = titles_for(ctx, module, [record], fields)
    tabs = []
    for t, tab in enumerate(module.layout.form):
        sections = []
        for s, section in enumerate(tab.sections):
            if not section_visible(module, section, record):
                continue
            shown = tuple(_shown(ctx, module.field(n), record, titles) for n in section.fields
                          if n in readable and n in module.by_name and state.get(n, {}).get("visible", True) and not module.field(n).hidden)
            if shown:
                sections.append(Block(f"s-{t}-{s}", section.label(ctx.locale) if section.label else "", shown, section.columns))
        if sections:
            tabs.append(Block(f"tab-{t}", tab.label(ctx.locale), tuple(sections)))
    return tabs


def _shown(ctx: Ctx, f: Field, record: dict[str, Any], titles: dict[str, Any]) -> Shown:
    if f.type == "table":
        return Shown(f.name, f.label(ctx.locale), Cell(""), child_grid(ctx, f, record.get(f.name) or []))
    return Shown(f.name, f.label(ctx.locale), _cell(ctx, f, record, titles))


def related_of(ctx: Ctx, module: Module, record_id: int) -> list[Grid]:
    """The layout's related lists: records of other modules linking here (a few rows, 'all' and 'new' links)."""
    url, out = paths(ctx), []
    for rel in module.layout.related:
        other = ctx.rt.spec.modules.get(rel.module)
        if other is None or other.child or not ctx.access.can(other, "read") or rel.field not in ctx.access.readable(other):
            continue
        readable = ctx.access.readable(other)
        cols = [n for n in (rel.columns or other.layout.list.columns) if n in readable and n in other.by_name and other.field(n).stored]
        query = parse_list_query(other, [(rel.field, str(record_id)), ("fields", ",".join(cols) or "id")], set(readable))
        found = listing.list_page(ctx.rt, ctx.access, other.name, replace(query, limit=RELATED_ROWS))
        rows: list[Row] = rows_of(ctx, other, found.items, cols)
        link = [(rel.field, str(record_id))]
        can_new = ctx.access.can(other, "create") and rel.field in ctx.access.writable(other)
        out.append(Grid((rel.label or other.plural)(ctx.locale), tuple((other.field(n).label(ctx.locale), "") for n in cols), tuple(rows),
                        with_query(url("screen_list", module=other.name), link),
                        with_query(url("record_new", module=other.name), link) if can_new else None, found.next_cursor is not None))
    return out


def buttons_of(ctx: Ctx, module: Module, record: dict[str, Any]) -> list[Button]:
    """Record actions the user may take now (when the action runner is installed)."""
    try:
        from engine import actions
    except ImportError:
        return []
    url, out = paths(ctx), []
    for action in actions.available(ctx.rt, ctx.access, module, record):
        label = action.label(ctx.locale)
        confirm = action.confirm(ctx.locale) if action.confirm else None
        params = {"module": module.name, "id": record["id"], "action": action.name}
        out.append(Button(label, url("record_action", **params), confirm, url("action_confirm", **params), action.kind == "merge"))
    return out


def record_title(module: Module, record: dict[str, Any]) -> str:
    """What a record is called: its title field, or its id."""
    value = record.get(module.title_field) if module.title_field != "id" else None
    return str(value) if value not in (None, "") else f"#{record['id']}"


def record_page(ctx: Ctx) -> Response:
    """`/m/<module>/<id>`."""
    module = screen_module(ctx)
    record = records.get(ctx.rt, ctx.access, module.name, ctx.request.path_params["id"])
    url, rid = paths(ctx), record["id"]
    system = [f for f in module.fields if f.name in ("owner", "created_at", "updated_at") and f.name in record]
    titles = titles_for(ctx, module, [record], system)
    values = {
        "module": module, "record": record, "title": record_title(module, record), "tabs": tabs_of(ctx, module, record),
        "related": related_of(ctx, module, rid), "buttons": buttons_of(ctx, module, record),
        "system": [_shown(ctx, f, record, titles) for f in system],
        "can_edit": in_scope(ctx, module, rid, "write"), "can_delete": in_scope(ctx, module, rid, "delete"),
        "can_print": in_scope(ctx, module, rid, "print"),
        "timeline_url": url("timeline", module=module.name, id=rid), "list_url": url("screen_list", module=module.name),
    }
    return page(ctx, "record.html", values)


def print_page(ctx: Ctx) -> Response:
    """`/m/<module>/<id>/print`: every section and child table on a clean page."""
    module = screen_module(ctx, "print")
    record = records.get(ctx.rt, ctx.access, module.name, ctx.request.path_params["id"])
    if not in_scope(ctx, module, record["id"], "print"):
        raise NotFound(f"{module.name} {record['id']} not found")
    now = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    values = {"module": module, "record": record, "title": record_title(module, record), "tabs": tabs_of(ctx, module, record),
              "printed": translate("printed", ctx.locale, when=now)}
    return page(ctx, "print.html", values)


def delete_page(ctx: Ctx) -> Response:
    """The confirmation page of a delete (used without JavaScript)."""
    module = screen_module(ctx, "delete")
    record = records.get(ctx.rt, ctx.access, module.name, ctx.request.path_params["id"])
    url = paths(ctx)
    return page(ctx, "confirm.html", {
        "module": module, "message": translate("confirm_delete", ctx.locale), "items": [record_title(module, record)],
        "action": url("record_delete", module=module.name, id=record["id"]), "button": translate("delete", ctx.locale),
        "cancel": url("record", module=module.name, id=record["id"]), "hidden": []})


def delete_record(ctx: Ctx) -> Response:
    """Delete (to the recycle bin), then back to the list."""
    module = screen_module(ctx, "delete")
    records.delete(ctx.rt, ctx.access, module.name, ctx.request.path_params["id"])
    return go(ctx, paths(ctx)("screen_list", module=module.name), "deleted")


def action_page(ctx: Ctx) -> Response:
    """The confirmation page of a record action; a merge first resolves the duplicate the user typed."""
    module = screen_module(ctx)
    record = records.get(ctx.rt, ctx.access, module.name, ctx.request.path_params["id"])
    action = module.action(ctx.request.path_params["action"])
    if action is None:
        raise NotFound(f"{module.name} has no action '{ctx.request.path_params['action']}'")
    hidden: list[tuple[str, str]] = []
    items = [record_title(module, record)]
    if action.kind == "merge":
        ids, problem = resolve(ctx, module, ctx.request.query_params.get("duplicate__title", ""))
        if problem or not ids:
            raise Invalid(problem or "choose the duplicate", {"duplicate": problem or "required"})
        hidden.append(("duplicate", str(ids[0])))
        items.append(f"#{ids[0]}")
    message = action.confirm(ctx.locale) if action.confirm else translate("confirm_action", ctx.locale, label=action.label(ctx.locale))
    params = {"module": module.name, "id": record["id"], "action": action.name}
    return page(ctx, "confirm.html", {
        "module": module, "message": message, "items": items, "action": paths(ctx)("record_action", **params),
        "button": action.label(ctx.locale), "cancel": paths(ctx)("record", module=module.name, id=record["id"]), "hidden": hidden})
