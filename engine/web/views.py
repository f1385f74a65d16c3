"""What every screen shares: paths, the shell's values, HTMX block choice, redirects with a flash, cell formatting."""

from __future__ import annotations

import functools
import html
import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, TypeVar
from urllib.parse import quote, quote_plus

import sqlalchemy as sa
from markupsafe import Markup
from starlette.responses import HTMLResponse, RedirectResponse, Response

from engine.errors import NotFound
from engine.fieldtypes import REGISTRY, stored_type
from engine.records import module_of, require
from engine.spec import Field, Module
from engine.web.context import Ctx
from engine.web.i18n import WORDS, translate
from engine.web.render import render

FLASH_COOKIE = "loom_flash"
NUMERIC = frozenset({"integer", "decimal", "currency", "percent"})
COLORS = frozenset({"red", "orange", "yellow", "green", "teal", "blue", "purple", "pink", "gray", "grey", "brown", "black"})
MAX_USERS = 500
USERS_TTL = 5.0
MAX_WALKED = 256
Url = Callable[..., str]
T = TypeVar("T")


def route_table(routes: Iterable[Any]) -> dict[str, str]:
    """Route name → path format, built once per app so links cost a string format, not a router walk."""
    return {r.name: r.path_format for r in routes if getattr(r, "name", None) and hasattr(r, "path_format") and hasattr(r, "methods")}


def paths(ctx: Ctx) -> Url:
    """`url(name, **params)`: the path of a named route (relative, with the app's root path)."""
    cached = ctx.extra.get("url")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    app, root = ctx.request.app, str(ctx.request.scope.get("root_path", ""))
    table: dict[str, str] = getattr(app.state, "paths", None) or {}
    walked: dict[tuple[Any, ...], str] = app.state.walked_paths if hasattr(app.state, "walked_paths") else {}

    def url(name: str, **params: Any) -> str:
        fmt = table.get(name)
        if fmt is not None:
            return root + fmt.format(**{k: _quoted(str(v)) for k, v in params.items()})
        key = (name, *params.items())  # a mount's path (the static files: three on every page), found once
        found = walked.get(key)
        if found is None:
            found = str(app.url_path_for(name, **{k: str(v) for k, v in params.items()}))
            if len(walked) < MAX_WALKED:
                walked[key] = found
        return root + found

    ctx.extra["url"] = url
    return url


@functools.lru_cache(maxsize=4_096)
def _quoted(part: str) -> str:
    """A path segment percent-encoded (module and route names repeat on every page)."""
    return quote(part, safe="")


def route_path(ctx: Ctx, name: str, **params: Any) -> str | None:
    """The path of a named route another part of Loom may provide (None while it is not installed)."""
    table: dict[str, str] = getattr(ctx.request.app.state, "paths", None) or {}
    return paths(ctx)(name, **params) if name in table else None


def with_query(path: str, params: Iterable[tuple[str, str]]) -> str:
    """`path?params` (just `path` when there are none), encoded as `urlencode` does. A list page links each column
    header, the pager and the views with its filters: the same few names and values, encoded once."""
    query = "&".join(f"{_plus(str(k))}={_plus(str(v))}" for k, v in params)
    return f"{path}?{query}" if query else path


def _plus(part: str) -> str:
    return _plus_short(part) if len(part) <= 64 else quote_plus(part)


@functools.lru_cache(maxsize=4_096)
def _plus_short(part: str) -> str:
    return quote_plus(part)


def screen_module(ctx: Ctx, action: str = "read") -> Module:
    """The module named in the path; 404 for unknown or child modules, 403 without `action`."""
    module = module_of(ctx.rt, ctx.request.path_params["module"])
    if module.child:
        raise NotFound(f"unknown module '{module.name}'")
    require(ctx.access, module, action)
    return module


def made_once(cache: dict[tuple[Any, ...], tuple[Any, T]], most: int, key: tuple[Any, ...], owner: object, make: Callable[[], T]) -> T:
    """`make()`, kept in `cache` under `key` (which holds `id(owner)`: the field or spec it is made from) and made again
    only for another owner: a field or spec of a reloaded bundle may reuse a dropped one's id. Emptied at `most`."""
    found = cache.get(key)
    if found is None or found[0] is not owner:
        if len(cache) >= most:
            cache.clear()
        found = cache[key] = (owner, make())
    return found[1]


_NAVS: dict[tuple[Any, ...], tuple[Any, Markup]] = {}
MAX_NAVS = 1_024
CURRENT = ' aria-current="page"'


def nav(ctx: Ctx) -> Markup:
    """The side menu from app.yaml as HTML: only the modules the user may read (modules not listed go under 'More');
    empty when there are none. The menu of everyone who may read the same modules, in one locale, on one module's
    screens, is the same HTML: made once for each such combination, not by the template on every page."""
    spec, here = ctx.rt.spec, ctx.request.path_params.get("module")
    readable = tuple(name for name, m in spec.modules.items() if not m.child and ctx.access.can(m, "read"))
    url = paths(ctx)
    key = (id(spec), ctx.locale, readable, here, url("home"))
    return made_once(_NAVS, MAX_NAVS, key, spec, lambda: _nav_html(ctx, set(readable), here))


def _nav_html(ctx: Ctx, readable: set[str], here: str | None) -> Markup:
    spec, locale, url, esc = ctx.rt.spec, ctx.locale, paths(ctx), html.escape
    listed = {n for g in spec.app.navigation for n in g.items}
    groups = [(g.label(locale), g.items) for g in spec.app.navigation]
    groups.append((translate("more", locale), tuple(n for n in spec.modules if n not in listed)))
    out = []
    for label, names in groups:
        items = [f'<li><a href="{esc(url("screen_list", module=n))}"{CURRENT if n == here else ""}>'
                 f"{esc(spec.modules[n].plural(locale))}</a></li>" for n in names if n in readable]
        if items:
            out.append(f'<div class="nav-group">\n<p class="nav-label">{esc(label)}</p>\n<ul>{"".join(items)}</ul>\n</div>')
    if not out:
        return Markup("")
    return Markup(f'<nav class="side" aria-label="{esc(translate("menu", locale))}">\n'
                  f'<a class="side-home" href="{esc(url("home"))}">{esc(translate("home", locale))}</a>\n' + "\n".join(out) + "\n</nav>")


def flash(ctx: Ctx) -> str | None:
    """The message of what just happened: a flash cookie set before a redirect, or ?toast= from an action."""
    raw = ctx.request.cookies.get(FLASH_COOKIE, "")
    key, _, n = raw.partition(":")
    if key in WORDS:
        return translate(key, ctx.locale, n=n) if n else translate(key, ctx.locale)
    toast = ctx.request.query_params.get("toast")
    return toast[:200] if toast else None


def wanted_block(ctx: Ctx, blocks: Mapping[str, str]) -> str | None:
    """The block an HTMX request asks for (by its target's id); None means the full page."""
    headers = ctx.request.headers
    if headers.get("hx-request") != "true" or headers.get("hx-history-restore-request") == "true":
        return None
    return blocks.get(headers.get("hx-target") or "")


def page(ctx: Ctx, template: str, values: dict[str, Any], status: int = 200, blocks: Mapping[str, str] | None = None,
         headers: dict[str, str] | None = None, block: str | None = None) -> HTMLResponse:
    """Render a screen: the full page, or the block an HTMX request targets (Vary covers both)."""
    block = block or wanted_block(ctx, blocks or {})
    shell: dict[str, Any] = {"url": paths(ctx), "url_for": paths(ctx)}
    if block is None:
        query = ctx.request.url.query
        shell |= {"nav": nav(ctx), "flash": flash(ctx), "here": ctx.request.url.path + (f"?{query}" if query else "")}
    response = render(ctx, template, shell | values, status, block, headers)
    response.headers["Vary"] = "HX-Request, HX-Target, Cookie"
    if block is None and FLASH_COOKIE in ctx.request.cookies:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def go(ctx: Ctx, target: str, note: str | None = None) -> Response:
    """After a POST: 303 to `target` (HX-Redirect for HTMX), leaving a flash message for the next page."""
    response: Response = Response(status_code=200, headers={"HX-Redirect": target}) if ctx.is_htmx else RedirectResponse(target, 303)
    if note:
        response.raw_headers.append((b"set-cookie", _flash_cookie(note, ctx.request.url.scheme == "https")))
    return response


@functools.lru_cache(maxsize=256)
def _flash_cookie(note: str, secure: bool) -> bytes:
    """The Set-Cookie value of a flash message (the notes are a few words of Loom's own; http.cookies is slow)."""
    made = Response()
    made.set_cookie(FLASH_COOKIE, note, max_age=120, path="/", httponly=True, samesite="lax", secure=secure)
    return made.raw_headers[-1][1]


def toast_headers(message: str) -> dict[str, str]:
    """An HX-Trigger header that shows `message` as a toast (ASCII JSON, so any language fits in a header)."""
    return {"HX-Trigger": json.dumps({"toast": message})}


class Cell(NamedTuple):
    """One formatted value: text, optional link, optional badge classes, CSS class, its column's label
    (a tuple: a list page makes hundreds)."""

    text: str
    href: str | None = None
    badge: str | None = None
    cls: str = ""
    label: str = ""


def badge_of(f: Field, value: Any) -> str | None:
    """The badge classes of a select value (with its option's colour), or None when not a select."""
    if f.type != "select" or value is None:
        return None
    option = f.option(value)
    color = (option.color or "").lower() if option else ""
    return f"badge c-{color}" if color in COLORS else "badge"


def record_paths(ctx: Ctx, module: str) -> Callable[[Any], str]:
    """`path(id)` of the records of one module: the route formatted once, each id added as text."""
    prefix, _, suffix = paths(ctx)("record", module=module, id="__id__").partition("__id__")
    return lambda record_id: f"{prefix}{record_id}{suffix}"


def formatter(ctx: Ctx, f: Field, titles: Mapping[Any, str] | None = None) -> Callable[[Any], Cell]:
    """How one field's values show in lists and on the record page (decided once per column, applied per cell):
    links by title (to the record when the user may read its module), selects as badges, numbers right-aligned."""
    locale, names, label = ctx.locale, titles or {}, f.label(ctx.locale)
    empty = Cell("", None, None, "", label)
    if f.type in ("link", "user"):
        target = ctx.rt.spec.modules.get(f.module or "") if f.type == "link" else None
        to = record_paths(ctx, target.name) if target and not target.child and ctx.access.can(target, "read") else None
        return lambda v: empty if v is None else Cell(names.get(v) or f"#{v}", to(v) if to else None, None, "", label)
    if f.type == "attachment":
        download = paths(ctx)
        return lambda v: Cell(names.get(v) or str(v), download("file_download", id=str(v)[5:]) if str(v).startswith("file:") else None,
                              None, "", label) if v else empty
    if f.type == "select":
        shown = _option_cells(f, locale, label)
        return lambda v: empty if v is None else shown.get(v) or Cell(str(v), None, "badge", "", label)
    show_one, cls = REGISTRY[f.type].show, "num" if stored_type(f) in NUMERIC else ""
    return lambda v: Cell(show_one(f, v, locale), None, None, cls, label)


_OPTIONS: dict[tuple[Any, ...], tuple[Any, dict[Any, Cell]]] = {}
MAX_OPTIONS = 4_096


def _option_cells(f: Field, locale: str, label: str) -> dict[Any, Cell]:
    """A select's options as cells in `locale`, made once per field and locale (a record page shows a dozen fields,
    each select with its options: making them per request was a twentieth of the page)."""
    return made_once(_OPTIONS, MAX_OPTIONS, (id(f), locale), f,
                     lambda: {o.value: Cell(o.label(locale), None, badge_of(f, o.value), "", label) for o in f.options})


def column_open(f: Field, locale: str) -> str:
    """The opening <td> of one list column (class and phone label), escaped once per column."""
    cls = ' class="num"' if stored_type(f) in NUMERIC else ""
    return f'<td{cls} data-label="{html.escape(f.label(locale))}">'


def cell_html(c: Cell, row_href: str | None = None, fallback: str = "") -> str:
    """The inside of one list cell, every value escaped (html.escape, quotes included). The list's hot loop is
    plain string joins instead of a template expression per attribute: a list renders 25 × N cells per request."""
    if row_href is not None:
        return f'<a class="row-link" href="{html.escape(row_href)}">{html.escape(c.text or fallback)}</a>'
    text = html.escape(c.text)
    if c.href:
        return f'<a href="{html.escape(c.href)}">{text}</a>'
    if c.badge:
        return f'<span class="{html.escape(c.badge)}">{text}</span>'
    return text


def user_options(ctx: Ctx) -> list[tuple[int, str]]:
    """Active users as (id, name), for user selects."""
    return _active_users(ctx)[0]


def _active_users(ctx: Ctx) -> tuple[list[tuple[int, str]], dict[int, str]]:
    """Active users as (id, name) by name, and their names by id. Kept on the app for a few seconds: every list with an
    owner filter needs them, every record page shows its owner and authors, and a new user or a new name may take that
    long to appear."""
    state = ctx.request.app.state
    cached: tuple[float, Any, list[tuple[int, str]], dict[int, str]] | None = getattr(state, "user_options", None)
    if cached is not None and cached[0] > time.monotonic() and cached[1] is ctx.rt.db:
        return cached[2], cached[3]
    users = ctx.rt.tables.metadata.tables["loom_user"]
    name = sa.func.coalesce(users.c.full_name, users.c.username)
    with ctx.rt.reading() as conn:
        rows = conn.execute(sa.select(users.c.id, name).where(users.c.active.is_(True)).order_by(name).limit(MAX_USERS))
        found = [(r[0], str(r[1])) for r in rows]
    state.user_options = (time.monotonic() + USERS_TTL, ctx.rt.db, found, dict(found))
    return found, state.user_options[3]


def user_names(ctx: Ctx, ids: Iterable[int | None]) -> dict[int, str]:
    """Display names of some users: the active ones from `_active_users`, the others in one query."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    known = _active_users(ctx)[1]
    found = {i: known[i] for i in wanted if i in known}
    wanted -= found.keys()
    if not wanted:
        return found
    users = ctx.rt.tables.metadata.tables["loom_user"]
    with ctx.rt.db.connect() as conn:
        rows = conn.execute(sa.select(users.c.id, sa.func.coalesce(users.c.full_name, users.c.username)).where(users.c.id.in_(wanted)))
        return found | {r[0]: str(r[1]) for r in rows}


def file_names(ctx: Ctx, refs: Iterable[Any]) -> dict[str, str]:
    """Original names of stored files by reference ('file:12' → 'contract.pdf'), one query."""
    ids = {int(str(r).split(":", 1)[1]) for r in refs if r and str(r).startswith("file:") and str(r)[5:].isdigit()}
    if not ids:
        return {}
    table = ctx.rt.tables.metadata.tables["loom_file"]
    with ctx.rt.db.connect() as conn:
        return {f"file:{r.id}": r.name for r in conn.execute(sa.select(table.c.id, table.c.name).where(table.c.id.in_(ids)))}


def safe_back(target: str, default: str) -> str:
    """`target` when it is a path on this site, else `default` (no open redirects)."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target and "\n" not in target and "\r" not in target:
        return target
    return default
