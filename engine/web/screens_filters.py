"""The list's URL: filters, search, sort, columns and paging read from it, and filter widgets built from the layout."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from html import escape
from typing import Any

from markupsafe import Markup

from engine.fieldtypes import stored_type
from engine.spec import Field, Module
from engine.web.context import Ctx
from engine.web.i18n import translate
from engine.web.screens_lookup import resolve, titles_of
from engine.web.views import NUMERIC, paths, user_options

TITLE = "__title"
DROPPED = frozenset({"toast", "cursor", "before", "view", "_", "page", "count", "fields", "format", "mode", "csrf_token", "ids", "op"})


@dataclass(frozen=True)
class ListParams:
    """What the URL asks of a list: filters (as typed), chosen columns, paging, link texts, problems."""

    filters: tuple[tuple[str, str], ...] = ()
    columns: tuple[str, ...] = ()
    cursor: str | None = None
    before: str | None = None
    texts: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def url_params(self, sort: str | None = None) -> list[tuple[str, str]]:
        """The bookmarkable parameters (no paging), with the sort replaced when given."""
        items = [(k, v) for k, v in self.filters if not (sort and k == "sort")]
        items += [("sort", sort)] if sort else []
        return items + ([("columns", ",".join(self.columns))] if self.columns else [])

    def query_params(self, module: Module) -> list[tuple[str, str]]:
        """The filters as the list query, export and API read them (a date as the upper end of a datetime range
        means the whole day)."""
        return [(k, _whole_day(module, k, v)) for k, v in self.filters]

    def value(self, key: str) -> str:
        """The value of one filter parameter ('' when absent)."""
        return next((v for k, v in self.filters if k == key), "")


def _whole_day(module: Module, key: str, value: str) -> str:
    name, _, op = key.partition("__")
    f = module.by_name.get(name)
    if f is not None and op == "lte" and stored_type(f) == "datetime" and len(value) == 10:
        return value + "T23:59:59"
    return value


def read_params(ctx: Ctx, module: Module) -> ListParams:
    """Read the list parameters of the request; link filters typed as text are resolved to record ids."""
    filters: list[tuple[str, str]] = []
    texts: dict[str, str] = {}
    columns: list[str] = []
    for key, raw in ctx.request.query_params.multi_items():
        value = raw.strip()
        if key == "columns":
            columns += [c for c in value.split(",") if c]
        elif key.endswith(TITLE):
            texts[key[: -len(TITLE)]] = value
        elif key not in DROPPED and value:
            filters.append((key, value))
    errors = _resolve_links(ctx, module, texts, filters)
    readable = ctx.access.readable(module)
    chosen = tuple(dict.fromkeys(c for c in columns if c in readable and c in module.by_name and module.field(c).stored))
    if chosen == tuple(c for c in module.layout.list.columns if c in readable and c in module.by_name and module.field(c).stored):
        chosen = ()  # the layout's own columns need no parameter
    params = ctx.request.query_params
    return ListParams(tuple(filters), chosen, params.get("cursor") or None, params.get("before") or None, texts, errors)


def _resolve_links(ctx: Ctx, module: Module, texts: dict[str, str], filters: list[tuple[str, str]]) -> dict[str, str]:
    errors: dict[str, str] = {}
    for name, text in texts.items():
        f = module.by_name.get(name)
        if not text or f is None or f.type != "link" or not f.module or f.module not in ctx.rt.spec.modules:
            continue
        ids, problem = resolve(ctx, ctx.rt.spec.module(f.module), text, many=True)
        filters[:] = [(k, v) for k, v in filters if k.partition("__")[0] != name]
        if problem:
            errors[name] = problem
        elif len(ids) == 1:
            filters.append((name, str(ids[0])))
        else:
            filters.append((f"{name}__in", ",".join(map(str, ids))))
    return errors


@dataclass(frozen=True)
class FilterWidget:
    """One filter control of the list screen."""

    name: str
    label: str
    kind: str
    value: str = ""
    low: str = ""
    high: str = ""
    input_type: str = "text"
    options: tuple[tuple[str, str], ...] = ()
    source: str = ""
    error: str | None = None

    @property
    def active(self) -> bool:
        """Whether the filter narrows the list now."""
        return bool(self.value or self.low or self.high)

    @property
    def options_html(self) -> Markup:
        """The choices as <option> elements, the current one selected, every text escaped (joined here: a filter may
        offer dozens of users, and a template expression per attribute costs more than the list's rows)."""
        return Markup("".join(f'<option value="{escape(v)}"{" selected" if v == self.value else ""}>{escape(label)}</option>'
                              for v, label in self.options))


def filter_widgets(ctx: Ctx, module: Module, params: ListParams) -> list[FilterWidget]:
    """Controls for the layout's filters (readable fields only), filled from the URL."""
    readable = ctx.access.readable(module)
    out = []
    for name in module.layout.list.filters:
        f = module.by_name.get(name)
        if f is None or name not in readable or not f.stored:
            continue
        out.append(_widget(ctx, f, params))
    return out


def _widget(ctx: Ctx, f: Field, params: ListParams) -> FilterWidget:
    label, kind, locale = f.label(ctx.locale), stored_type(f), ctx.locale
    error = params.errors.get(f.name)
    if kind in NUMERIC or kind in ("date", "datetime"):
        low, high = params.value(f"{f.name}__gte"), params.value(f"{f.name}__lte")
        input_type = "number" if kind in NUMERIC else "date"
        return FilterWidget(f.name, label, "range", low=low, high=high, input_type=input_type, error=error)
    if kind == "select":
        return FilterWidget(f.name, label, "select", params.value(f.name), options=tuple((o.value, o.label(locale)) for o in f.options))
    if kind == "multiselect":
        return FilterWidget(f"{f.name}__contains", label, "select", params.value(f"{f.name}__contains"),
                            options=tuple((o.value, o.label(locale)) for o in f.options))
    if kind == "boolean":
        return FilterWidget(f.name, label, "select", params.value(f.name),
                            options=(("true", translate("yes", locale)), ("false", translate("no", locale))))
    if kind == "user":
        me = ctx.user.id if ctx.user else None
        options = tuple([(str(me), translate("me", locale))] if me else []) + tuple((str(i), n) for i, n in user_options(ctx))
        return FilterWidget(f.name, label, "select", params.value(f.name), options=options)
    if kind == "link" and f.module in ctx.rt.spec.modules:
        return FilterWidget(f.name + TITLE, label, "link", _link_text(ctx, f, params), source=paths(ctx)("autocomplete", module=f.module),
                            error=error)
    return FilterWidget(f"{f.name}__contains", label, "text", params.value(f"{f.name}__contains"))


def _link_text(ctx: Ctx, f: Field, params: ListParams) -> str:
    if f.name in params.texts:
        return params.texts[f.name]
    value = params.value(f.name)
    if not value.isdigit():
        return ""
    target = ctx.rt.spec.module(f.module or "")
    title = titles_of(ctx, target, {int(value)}).get(int(value))
    return f"{title} · #{value}" if title else ""


def today_text() -> str:
    """Today's date as filters write it."""
    return dt.date.today().isoformat()


def panel_params(ctx: Ctx, pairs: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """A home panel's filter with 'me' as the user's id and 'today' as today's date."""
    me = str(ctx.user.id) if ctx.user else "0"
    return [(k, me if v == "me" else today_text() if v == "today" else v) for k, v in pairs]


def any_value(value: Any) -> bool:
    """Whether a URL value is set."""
    return value not in (None, "")
