"""The audit timeline of a record: who changed what, old → new, readable fields only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from engine import audit, records
from engine.fieldtypes import ParseError, show
from engine.spec import Field, Module
from engine.web.context import Ctx
from engine.web.i18n import translate
from engine.web.screens_lookup import titles_of
from engine.web.views import page, paths, screen_module, user_names


@dataclass(frozen=True)
class Change:
    """One field's change."""

    label: str
    old: str
    new: str


@dataclass(frozen=True)
class Event:
    """Changes saved together: when, by whom, what kind, which version."""

    when: str
    who: str
    kind: str
    version: int | None
    changes: tuple[Change, ...]


def _load(f: Field, text: str | None) -> Any:
    if text is None:
        return None
    if f.type == "table":
        rows = json.loads(text)
        return len(rows) if isinstance(rows, list) else None
    try:
        return audit.load_value(f, text)
    except (ParseError, ValueError, TypeError):
        return json.loads(text)


def _names(ctx: Ctx, module: Module, entries: list[tuple[Field, Any, Any]]) -> dict[str, dict[Any, str]]:
    """Titles of the linked records and users the entries mention (one query per link field)."""
    out: dict[str, dict[Any, str]] = {}
    for f in {e[0].name: e[0] for e in entries}.values():
        ids = {v for e in entries if e[0].name == f.name for v in e[1:] if isinstance(v, int)}
        if f.type == "link" and f.module in ctx.rt.spec.modules:
            out[f.name] = dict(titles_of(ctx, ctx.rt.spec.module(f.module or ""), ids))
        elif f.type == "user":
            out[f.name] = dict(user_names(ctx, ids))
    return out


def _text(ctx: Ctx, f: Field, value: Any, names: dict[str, dict[Any, str]]) -> str:
    if value is None:
        return ""
    if f.type == "table":
        return translate("rows_n", ctx.locale, n=value)
    if f.type in ("link", "user"):
        return names.get(f.name, {}).get(value) or f"#{value}"
    try:
        return show(f, value, ctx.locale)
    except (TypeError, ValueError, AttributeError):
        return str(value)


def events(ctx: Ctx, module: Module, record_id: int, since: int | None = None) -> list[Event]:
    """The record's history, newest first (only updates after version `since`, when given)."""
    readable = ctx.access.readable(module)
    with ctx.rt.db.connect() as conn:
        rows = audit.history(conn, ctx.rt, module, record_id, readable)
    if since is not None:
        rows = [r for r in rows if r["change"] == "update" and (r["version"] or 0) > since]
    loaded = [(module.field(r["field"]), _load(module.field(r["field"]), r["old"]), _load(module.field(r["field"]), r["new"]))
              for r in rows if r["field"] in module.by_name]
    names = _names(ctx, module, loaded)
    people = user_names(ctx, {r["user_id"] for r in rows})
    grouped: dict[tuple[Any, ...], list[Change]] = {}
    by_row = iter(loaded)
    for r in rows:
        key = (r["version"], r["change"], r["user_id"], r["at"])
        bucket = grouped.setdefault(key, [])
        if r["field"] in module.by_name:
            f, old, new = next(by_row)
            bucket.append(Change(f.label(ctx.locale), _text(ctx, f, old, names), _text(ctx, f, new, names)))
    system = translate("system_user", ctx.locale)
    return [Event(at.strftime("%Y-%m-%d %H:%M"), people.get(user, system) if user else system, kind, version, tuple(changes))
            for (version, kind, user, at), changes in grouped.items()]


def timeline(ctx: Ctx) -> Response:
    """`/m/<module>/<id>/timeline`: the page, or the timeline block for HTMX."""
    module = screen_module(ctx)
    record = records.get(ctx.rt, ctx.access, module.name, ctx.request.path_params["id"])
    title = record.get(module.title_field) if module.title_field in record else None
    values = {"module": module, "record": record, "title": str(title) if title is not None else f"#{record['id']}",
              "events": events(ctx, module, record["id"]),
              "record_url": paths(ctx)("record", module=module.name, id=record["id"])}
    return page(ctx, "timeline.html", values, blocks={"timeline": "timeline"})
