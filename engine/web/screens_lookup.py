"""Finding records by what people type: link type-ahead, link titles typed without JavaScript, global search."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from starlette.responses import JSONResponse, Response

from engine.spec import Module
from engine.web.context import Ctx
from engine.web.i18n import translate
from engine.web.views import page, paths, screen_module, with_query

ID_SUFFIX = re.compile(r"^(.*?)\s*(?:·\s*)?#(\d{1,18})$")
SUGGESTIONS = 10
MAX_MATCHES = 200


@dataclass(frozen=True)
class Match:
    """A record found by text: its id and title."""

    id: int
    title: str

    @property
    def option(self) -> str:
        """How the record reads in a type-ahead list: the title and the id (the id is what a pick sends)."""
        return f"{self.title} · #{self.id}"


def _title_column(ctx: Ctx, module: Module) -> Any:
    table = ctx.rt.tables[module.name]
    readable = ctx.access.readable(module)
    return table.c[module.title_field] if module.title_field in readable and module.field(module.title_field).stored else table.c.id


def search_columns(ctx: Ctx, module: Module) -> list[str]:
    """The module's search fields the user may read (the title when none is declared)."""
    readable = ctx.access.readable(module)
    wanted = module.layout.list.search or (module.title_field,)
    return [n for n in wanted if n in readable and n in module.by_name and module.field(n).stored]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _scoped(ctx: Ctx, module: Module, stmt: sa.Select[Any]) -> sa.Select[Any]:
    scope = ctx.access.row_filter(module, ctx.rt.tables[module.name], "read")
    return stmt if scope is None else stmt.where(scope)


def search_condition(ctx: Ctx, module: Module, text: str) -> sa.ColumnElement[bool] | None:
    """OR of the readable search fields containing `text` (and the id, when it is a number)."""
    table = ctx.rt.tables[module.name]
    pattern = "%" + _escape(text) + "%"
    conds: list[sa.ColumnElement[bool]] = [sa.cast(table.c[n], sa.String).ilike(pattern, escape="\\") for n in search_columns(ctx, module)]
    if text.isdigit() and len(text) < 18:
        conds.append(table.c.id == int(text))
    return sa.or_(*conds) if conds else None


def find(ctx: Ctx, module: Module, text: str, limit: int = SUGGESTIONS) -> list[Match]:
    """Records whose search fields contain `text`, in the user's scope, ordered by title."""
    cond = search_condition(ctx, module, text)
    if cond is None or not ctx.access.can(module, "read"):
        return []
    table, title = ctx.rt.tables[module.name], _title_column(ctx, module)
    stmt = _scoped(ctx, module, sa.select(table.c.id, title).where(cond).order_by(title, table.c.id).limit(limit))
    with ctx.rt.db.connect() as conn:
        return [Match(r[0], _title(r[1], r[0])) for r in conn.execute(stmt)]


def _title(value: Any, record_id: int) -> str:
    return f"#{record_id}" if value is None else str(value)


def titles_of(ctx: Ctx, module: Module, ids: set[int]) -> dict[int, str]:
    """Titles of records the user may read, by id (one query)."""
    if not ids or not ctx.access.can(module, "read"):
        return {}
    table, title = ctx.rt.tables[module.name], _title_column(ctx, module)
    with ctx.rt.db.connect() as conn:
        return {r[0]: _title(r[1], r[0]) for r in conn.execute(_scoped(ctx, module, sa.select(table.c.id, title).where(table.c.id.in_(ids))))}


def _exact(ctx: Ctx, module: Module, text: str) -> list[Match]:
    table, title = ctx.rt.tables[module.name], _title_column(ctx, module)
    if title is table.c.id:
        return []
    stmt = _scoped(ctx, module, sa.select(table.c.id, title).where(sa.func.lower(title) == text.lower()).limit(2))
    with ctx.rt.db.connect() as conn:
        return [Match(r[0], _title(r[1], r[0])) for r in conn.execute(stmt)]


def resolve(ctx: Ctx, module: Module, text: str, many: bool = False) -> tuple[list[int], str | None]:
    """The record(s) a typed link text means: 'Title · #12' is record 12; otherwise an exact title, then a
    unique match of the search fields. Returns (ids, error); with `many`, every match (a filter) is fine."""
    text = text.strip()
    if not text:
        return [], None
    picked = ID_SUFFIX.match(text)
    if picked and int(picked.group(2)) in titles_of(ctx, module, {int(picked.group(2))}):
        return [int(picked.group(2))], None
    exact = _exact(ctx, module, text)
    if len(exact) == 1:
        return [exact[0].id], None
    found = find(ctx, module, text, MAX_MATCHES if many else 2)
    label = module.label(ctx.locale)
    if not found:
        return [], translate("no_match", ctx.locale, label=label, text=text)
    if len(found) > 1 and not many:
        return [], translate("several_match", ctx.locale, label=label, text=text)
    return [m.id for m in found], None


def autocomplete(ctx: Ctx) -> Response:
    """Type-ahead for link fields: <option>s for a datalist (HTMX), or JSON items."""
    module = screen_module(ctx)
    params = ctx.request.query_params
    text = (params.get("q") or next((v for k, v in params.multi_items() if k.endswith("__title") and v), "")).strip()
    matches = find(ctx, module, text) if text else []
    if "application/json" in ctx.request.headers.get("accept", ""):
        return JSONResponse({"items": [{"id": m.id, "title": m.title} for m in matches]})
    return page(ctx, "search.html", {"matches": matches}, block="options")


def global_search(ctx: Ctx) -> Response:
    """`/search?q=`: a few matches per module the user may read, searching only fields they may read."""
    text = (ctx.request.query_params.get("q") or "").strip()[:100]
    url, groups = paths(ctx), []
    if text:
        for module in ctx.rt.spec.modules.values():
            if module.child or not ctx.access.can(module, "read"):
                continue
            matches = find(ctx, module, text, 5)
            if matches:
                groups.append({"module": module, "label": module.plural(ctx.locale), "matches": matches,
                               "all": with_query(url("screen_list", module=module.name), [("q", text)])})
    return page(ctx, "search.html", {"q": text, "groups": groups}, blocks={"search-results": "results"})
