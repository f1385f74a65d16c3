"""The list screen: the layout's columns, sort, filters, quick search, keyset paging, counts and bulk actions."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from markupsafe import Markup
from starlette.responses import Response

from engine import listing, records
from engine.errors import Invalid
from engine.query import ListQuery, encode_cursor, parse_list_query
from engine.records import Page
from engine.spec import Field, Module
from engine.web.context import Ctx
from engine.web.i18n import translate
from engine.web.screens_filters import ListParams, filter_widgets, read_params
from engine.web.screens_lookup import titles_of
from engine.web.views import (
    Cell,
    cell_html,
    column_open,
    file_names,
    formatter,
    go,
    page,
    paths,
    record_paths,
    route_path,
    safe_back,
    screen_module,
    user_names,
    with_query,
)

COUNT_CAP = listing.COUNT_CAP


@dataclass(frozen=True)
class Column:
    """A column header: label, where clicking it sorts, and how it is sorted now."""

    name: str
    label: str
    href: str | None
    state: str
    cls: str


class Row(NamedTuple):
    """One row of a related list, panel or card: the record's id, its page and its cells."""

    id: int
    href: str
    cells: list[Cell]


@dataclass(frozen=True)
class Pager:
    """Links to the first, previous and next pages (None when there is none)."""

    first: str | None
    previous: str | None
    next: str | None


def columns_of(ctx: Ctx, module: Module, params: ListParams) -> list[str]:
    """The columns to show: the chosen ones, or the layout's, that the user may read."""
    readable = ctx.access.readable(module)
    wanted = params.columns or module.layout.list.columns or (module.title_field,)
    return [n for n in wanted if n in readable and n in module.by_name and module.field(n).stored]


def build_query(ctx: Ctx, module: Module, params: ListParams, columns: list[str]) -> ListQuery:
    """The typed list query of the URL (a 422 names each bad parameter)."""
    if params.errors:
        raise Invalid("invalid list parameters", params.errors)
    fields = ",".join(dict.fromkeys([*columns, module.title_field] if module.title_field in ctx.access.readable(module) else columns))
    query = parse_list_query(module, [*params.query_params(module), ("fields", fields)], set(ctx.access.readable(module)))
    return replace(query, cursor=params.cursor)


def fetch(ctx: Ctx, module: Module, query: ListQuery, before: str | None) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """(rows, cursor of the next page, cursor before the first row) for forward or backward keyset paging."""
    if before:
        flipped = query.sort[1:] if query.descending else "-" + query.sort
        back = listing.list_page(ctx.rt, ctx.access, module.name, replace(query, sort=flipped, cursor=before))
        rows = back.items[::-1]
        return rows, _cursor(module, query, rows[-1]) if rows else None, _cursor(module, query, rows[0]) if rows and back.next_cursor else None
    found: Page = listing.list_page(ctx.rt, ctx.access, module.name, query)
    earlier = _cursor(module, query, found.items[0]) if query.cursor and found.items else None
    return found.items, found.next_cursor, earlier


def _cursor(module: Module, query: ListQuery, row: dict[str, Any]) -> str:
    return encode_cursor(module.field(query.sort_field), row.get(query.sort_field), row["id"])


def count_text(ctx: Ctx, module: Module, query: ListQuery) -> tuple[int, bool]:
    """(rows matching, whether counting stopped at the cap)."""
    with ctx.rt.reading() as conn:
        total = listing.count(conn, ctx.rt, ctx.access, module, query, cap=COUNT_CAP + 1)
    return min(total, COUNT_CAP), total > COUNT_CAP


def titles_for(ctx: Ctx, module: Module, rows: list[dict[str, Any]], fields: list[Field]) -> dict[str, Any]:
    """Titles of linked records and users (one query per link column) and names of attached files."""
    titles: dict[str, Any] = listing.titles(ctx.rt, ctx.access, module, rows, [f.name for f in fields if f.type == "link"])
    for f in fields:
        if f.type == "user":
            titles[f.name] = user_names(ctx, (r.get(f.name) for r in rows))
        elif f.type == "attachment":
            titles[f.name] = file_names(ctx, (r.get(f.name) for r in rows))
    return titles


def rows_of(ctx: Ctx, module: Module, rows: list[dict[str, Any]], columns: list[str]) -> list[Row]:
    """Formatted rows: each column's formatter decided once (no per-cell permission checks), titles in one query per link."""
    fields = [module.field(n) for n in columns]
    titles = titles_for(ctx, module, rows, fields)
    shows = [(f.name, formatter(ctx, f, titles.get(f.name))) for f in fields]
    path = record_paths(ctx, module.name)
    return [Row(r["id"], path(r["id"]), [fmt(r.get(name)) for name, fmt in shows]) for r in rows]


def list_body(ctx: Ctx, module: Module, rows: list[dict[str, Any]], columns: list[str]) -> Markup:
    """The list table's rows as escaped HTML, each with its selection checkbox; the first column links to the record.
    A column's cell markup is made once per distinct value of the page (selects, cities and owners repeat), with no
    cell objects in between: a list renders 25 × N cells per request."""
    fields = [module.field(n) for n in columns]
    titles = titles_for(ctx, module, rows, fields)
    first, rest = fields[0], fields[1:]
    show_first = formatter(ctx, first, titles.get(first.name))
    others = [(f.name, column_open(f, ctx.locale), _memo(formatter(ctx, f, titles.get(f.name)))) for f in rest]
    open_first, path = column_open(first, ctx.locale), record_paths(ctx, module.name)
    label = html.escape(translate("select_row", ctx.locale))
    out = []
    for r in rows:
        rid = r["id"]
        out.append(f'<tr><td class="check"><input type="checkbox" name="ids" value="{rid}" form="bulk" aria-label="{label} #{rid}"></td>'
                   f'{open_first}{cell_html(show_first(r.get(first.name)), path(rid), f"#{rid}")}</td>')
        out += [f"{o}{show(r.get(name))}</td>" for name, o, show in others]
        out.append("</tr>")
    return Markup("".join(out))


def _memo(fmt: Callable[[Any], Cell]) -> Callable[[Any], str]:
    """A column's value → its cell's inner HTML, worked out once per distinct value."""
    made: dict[Any, str] = {}

    def show(value: Any) -> str:
        try:
            found = made.get(value)
        except TypeError:  # unhashable (a multiselect's list)
            return cell_html(fmt(value))
        if found is None:
            found = made[value] = cell_html(fmt(value))
        return found

    return show


def headers_of(ctx: Ctx, module: Module, params: ListParams, columns: list[str], sort: str, base: str) -> list[Column]:
    """Column headers; clicking one sorts by it (ascending first, then descending)."""
    out = []
    for name in columns:
        f = module.field(name)
        state = "asc" if sort == name else "desc" if sort == "-" + name else ""
        target = "-" + name if state == "asc" else name
        cls = "num" if f.type in ("integer", "decimal", "currency", "percent") else ""
        out.append(Column(name, f.label(ctx.locale), with_query(base, params.url_params(sort=target)), state, cls))
    return out


def pager_of(params: ListParams, base: str, next_cursor: str | None, earlier: str | None) -> Pager:
    """Paging links that keep every filter."""
    keep = params.url_params()
    paged = bool(params.cursor or params.before)
    return Pager(with_query(base, keep) if paged else None,
                 with_query(base, [*keep, ("before", earlier)]) if earlier else None,
                 with_query(base, [*keep, ("cursor", next_cursor)]) if next_cursor else None)


def list_values(ctx: Ctx, module: Module) -> tuple[dict[str, Any], int]:
    """Everything the list template shows, and the status (422 when a parameter is wrong)."""
    url = paths(ctx)
    base = url("screen_list", module=module.name)
    params = read_params(ctx, module)
    columns = columns_of(ctx, module, params)
    values: dict[str, Any] = {"module": module, "params": params, "shown": columns, "base": base, "errors": {}, "rows": [], "columns": [],
                              "pager": Pager(None, None, None), "count": None, "count_url": None}
    try:
        query = build_query(ctx, module, params, columns)
        rows, next_cursor, earlier = fetch(ctx, module, query, params.before)
    except Invalid as exc:
        values["errors"] = exc.fields or {"": exc.message}
        values["columns"] = headers_of(ctx, module, params, columns, module.layout.list.sort, base)
        return values, 422
    values |= {"rows": rows, "body": list_body(ctx, module, rows, columns), "columns": headers_of(ctx, module, params, columns, query.sort, base),
               "pager": pager_of(params, base, next_cursor, earlier)}
    if ctx.request.query_params.get("count") == "1":
        values["count"] = count_text(ctx, module, query)  # without JavaScript, the count link asks for it inline
    else:
        values["count_url"] = with_query(url("list_count", module=module.name), params.url_params())
    return values, 200


def column_choices(ctx: Ctx, module: Module, shown: list[str]) -> Markup:
    """The column chooser's checkboxes (readable stored fields, the shown ones checked), escaped and joined here."""
    readable = ctx.access.readable(module)
    return Markup("".join(f'<label class="check"><input type="checkbox" name="columns" value="{html.escape(f.name)}"'
                          f'{" checked" if f.name in shown else ""}> {html.escape(f.label(ctx.locale))}</label>'
                          for f in module.stored_fields if f.name in readable))


def screen_extras(ctx: Ctx, module: Module, params: ListParams, shown: list[str]) -> dict[str, Any]:
    """The filter form, saved views, export links and what the user may do here."""
    url, access = paths(ctx), ctx.access
    export = route_path(ctx, "io_export", module=module.name)
    query = params.query_params(module) + ([("columns", ",".join(params.columns))] if params.columns else [])
    kanban = module.layout.list.kanban
    return {
        "filters": filter_widgets(ctx, module, params),
        "self_url": with_query(url("screen_list", module=module.name), params.url_params()),
        "can_create": access.can(module, "create"), "can_delete": access.can(module, "delete"),
        "can_export": access.can(module, "export") and export is not None,
        "export_xlsx": with_query(export or "", [("format", "xlsx"), *query]), "export_csv": with_query(export or "", [("format", "csv"), *query]),
        "import_url": route_path(ctx, "io_import", module=module.name) if access.can(module, "import") else None,
        "kanban_url": with_query(url("kanban", module=module.name), params.url_params())
        if kanban and kanban in access.readable(module) else None,
        "column_choices": column_choices(ctx, module, shown),
    }


def list_screen(ctx: Ctx) -> Response:
    """`/m/<module>`: the full page, or only the results for HTMX (the URL pushed is the canonical one)."""
    module = screen_module(ctx)
    values, status = list_values(ctx, module)
    values |= screen_extras(ctx, module, values["params"], values["shown"])
    headers = {"HX-Push-Url": values["self_url"]} if ctx.is_htmx else None
    return page(ctx, "list.html", values, status, {"results": "results"}, headers)


def count_fragment(ctx: Ctx) -> Response:
    """The capped count of a filtered list, loaded lazily on deeper pages."""
    module = screen_module(ctx)
    params = read_params(ctx, module)
    query = build_query(ctx, module, params, columns_of(ctx, module, params))
    return page(ctx, "list.html", {"count": count_text(ctx, module, query), "module": module}, block="count")


def selected_ids(ctx: Ctx) -> list[int]:
    """The record ids ticked in a bulk form (at most 500)."""
    raw = ctx.form.getlist("ids") if ctx.form is not None else []
    ids = [int(v) for v in raw if isinstance(v, str) and v.isdigit() and 0 < int(v) < 2**63]
    return list(dict.fromkeys(ids))[:500]


def bulk(ctx: Ctx) -> Response:
    """Bulk delete (after a confirmation) or export of the ticked records."""
    module = screen_module(ctx)
    form = ctx.form
    assert form is not None
    url, ids, op = paths(ctx), selected_ids(ctx), str(form.get("op") or "")
    back = safe_back(str(form.get("back") or ""), url("screen_list", module=module.name))
    if not ids:
        return go(ctx, back, "nothing_selected")
    if op in ("export_xlsx", "export_csv"):
        screen_module(ctx, "export")
        export = route_path(ctx, "io_export", module=module.name) or url("screen_list", module=module.name) + "/export"
        return go(ctx, with_query(export, [("format", op[7:]), ("id__in", ",".join(map(str, ids)))]))
    if op != "delete":
        raise Invalid("unknown bulk action", {"op": "choose delete or export"})
    screen_module(ctx, "delete")
    if form.get("confirm") != "1":
        found = titles_of(ctx, module, set(ids))
        return page(ctx, "confirm.html", {
            "module": module, "message": translate("confirm_delete_n", ctx.locale, n=len(found)), "items": list(found.values()),
            "action": url("list_bulk", module=module.name), "button": translate("delete", ctx.locale), "cancel": back,
            "hidden": [("op", "delete"), ("confirm", "1"), ("back", back), *(("ids", str(i)) for i in found)]})
    with ctx.rt.db.begin() as conn:
        for record_id in ids:
            records.delete(ctx.rt, ctx.access, module.name, record_id, conn)
    return go(ctx, back, f"deleted_n:{len(ids)}")
