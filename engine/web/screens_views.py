"""Saved views: a user's named filter + sort + columns of one list, kept in loom_saved_view."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

import sqlalchemy as sa
from starlette.responses import Response

from engine.errors import Invalid, NotFound
from engine.spec import Module
from engine.web.context import Ctx
from engine.web.screens_filters import DROPPED
from engine.web.views import go, page, paths, screen_module

MAX_QUERY = 2000
MAX_VIEWS = 50


@dataclass(frozen=True)
class SavedView:
    """One saved view: its name, the list URL it opens, and where to post to delete it."""

    id: int
    name: str
    href: str
    delete: str


def _table(ctx: Ctx) -> sa.Table:
    return ctx.rt.tables.metadata.tables["loom_saved_view"]


def saved_views(ctx: Ctx, module: Module) -> list[SavedView]:
    """The user's views of `module`, by name."""
    if ctx.user is None:
        return []
    table, url = _table(ctx), paths(ctx)
    base = url("screen_list", module=module.name)
    stmt = (sa.select(table.c.id, table.c.name, table.c.query).where(table.c.user_id == ctx.user.id, table.c.module == module.name)
            .order_by(table.c.name).limit(MAX_VIEWS))
    with ctx.rt.db.connect() as conn:
        return [SavedView(r.id, r.name, f"{base}?{r.query}" if r.query else base, url("view_delete", module=module.name, view=r.id))
                for r in conn.execute(stmt)]


def clean_query(text: str) -> str:
    """A list query string without paging, messages or form tokens."""
    kept = [(k, v) for k, v in parse_qsl(text, keep_blank_values=False) if k not in DROPPED]
    query = urlencode(kept)
    if len(query) > MAX_QUERY:
        raise Invalid("view too long", {"name": f"a view may hold at most {MAX_QUERY} characters of filters"})
    return query


def views_page(ctx: Ctx) -> Response:
    """The user's views of a list and a form to save the current one (a page, or the list's menu for HTMX).
    The list's own parameters come along in the query string."""
    module = screen_module(ctx)
    query = clean_query(ctx.request.url.query)
    url = paths(ctx)
    values = {"module": module, "views": saved_views(ctx, module), "query": query,
              "list_url": url("screen_list", module=module.name) + (f"?{query}" if query else "")}
    return page(ctx, "views.html", values, blocks={"views-menu": "menu"})


def save_view(ctx: Ctx) -> Response:
    """Save the current list parameters under a name (the same name replaces the older view)."""
    module = screen_module(ctx)
    form, user = ctx.form, ctx.user
    assert form is not None and user is not None
    name = str(form.get("name") or "").strip()
    if not name or len(name) > 128:
        raise Invalid("a view needs a name", {"name": "1 to 128 characters"})
    query, table = clean_query(str(form.get("query") or "")), _table(ctx)
    mine = (table.c.user_id == user.id) & (table.c.module == module.name)
    with ctx.rt.db.begin() as conn:
        done = conn.execute(sa.update(table).where(mine, table.c.name == name).values(query=query))
        if done.rowcount == 0:
            conn.execute(sa.insert(table).values(user_id=user.id, module=module.name, name=name, query=query))
    target = paths(ctx)("screen_list", module=module.name)
    return go(ctx, f"{target}?{query}" if query else target, "view_saved")


def delete_view(ctx: Ctx) -> Response:
    """Delete one of the user's own views."""
    module = screen_module(ctx)
    table, user = _table(ctx), ctx.user
    assert user is not None
    with ctx.rt.db.begin() as conn:
        done = conn.execute(sa.delete(table).where(table.c.id == ctx.request.path_params["view"], table.c.user_id == user.id,
                                                   table.c.module == module.name))
    if done.rowcount == 0:
        raise NotFound("no such view")
    return go(ctx, paths(ctx)("screen_list", module=module.name), "view_deleted")
