"""Create and edit forms: render, live field state, child rows, save through the records service."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from starlette.datastructures import UploadFile
from starlette.responses import Response

from engine import files, records
from engine.access import SystemAccess
from engine.compute import compute_formulas, default_for
from engine.errors import Conflict, Forbidden, Invalid, NotFound
from engine.spec import Field, Module
from engine.web.context import Ctx
from engine.web.forms import (
    BLANK_ROWS,
    TITLE,
    FormEnv,
    Raw,
    Widget,
    lenient,
    preview,
    raw_of,
    read_form,
    read_rows,
    section_visible,
    states,
    widget,
)
from engine.web.screens_lookup import ID_SUFFIX, resolve, titles_of
from engine.web.screens_record import record_title
from engine.web.screens_timeline import events
from engine.web.views import file_names, go, page, paths, screen_module, user_names, user_options

ROW_ERROR = re.compile(r"^([a-z][a-z0-9_]*)\[(\d+)\](?:\.(.+))?$")


@dataclass(frozen=True)
class Section:
    """A form section: its id (for live visibility), label, columns and widgets."""

    id: str
    label: str
    columns: int
    visible: bool
    widgets: tuple[Widget, ...]
    dynamic: bool = False


@dataclass(frozen=True)
class Tab:
    """A form tab."""

    id: str
    label: str
    sections: tuple[Section, ...]


@dataclass(frozen=True)
class TableRows:
    """A child table in the form: column headers, rows of widgets, the next free row index."""

    name: str
    headers: tuple[tuple[str, str], ...]
    rows: tuple[tuple[int, str, tuple[Widget, ...]], ...]
    editable: bool
    next_index: int
    add_url: str
    error: str | None


def form_names(ctx: Ctx, module: Module) -> list[str]:
    """The fields the form shows: the layout's, readable and not hidden."""
    readable = ctx.access.readable(module)
    names = [n for tab in module.layout.form for s in tab.sections for n in s.fields
             if n in readable and n in module.by_name and not module.field(n).hidden]
    return list(dict.fromkeys(names))


def child_names(ctx: Ctx, child: Module) -> list[str]:
    """The columns of a child table in the form (readable, not system)."""
    readable = ctx.access.readable(child)
    return [c.name for c in child.fields if not c.system and not c.hidden and c.stored and c.name in readable]


def _env(ctx: Ctx, module: Module, names: list[str], values: dict[str, Any], errors: dict[str, str],
         record: dict[str, Any] | None, writable: frozenset[str] | None = None) -> FormEnv:
    url = paths(ctx)
    fields = [module.field(n) for n in names]
    users: tuple[tuple[str, str], ...] = ()
    if any(f.type == "user" for f in fields):
        listed = [(str(i), n) for i, n in user_options(ctx)]
        missing = {values.get(f.name) for f in fields if f.type == "user"} - {int(i) for i, _ in listed} - {None}
        users = tuple(listed) + tuple((str(i), n) for i, n in user_names(ctx, missing).items())
    sources = {f.name: url("autocomplete", module=f.module) for f in fields if f.type == "link" and f.module in ctx.rt.spec.modules}
    stored = record or {}
    names_of = file_names(ctx, (stored.get(f.name) for f in fields if f.type == "attachment"))
    found = {f.name: (names_of.get(str(stored.get(f.name)), ""), url("file_download", id=str(stored[f.name])[5:]))
             for f in fields if f.type == "attachment" and stored.get(f.name) and str(stored.get(f.name)) in names_of}
    computed = {f.name: values.get(f.name) for f in fields if f.type in ("formula", "autonumber")}
    return FormEnv(module, ctx.locale, ctx.access.writable(module) if writable is None else writable, states(module, values), errors,
                   users, sources, found, ctx.rt.spec.app.currency, computed)


def _row_errors(errors: dict[str, str], table: str, sent: list[Raw]) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {}
    for key, message in errors.items():
        m = ROW_ERROR.match(key)
        if m and m.group(1) == table and int(m.group(2)) < len(sent):
            out.setdefault(sent[int(m.group(2))]["_i"], {})[m.group(3) or "_row"] = message
    return out


def table_rows(ctx: Ctx, module: Module, f: Field, rows: list[Raw], errors: dict[str, str], editable: bool) -> TableRows:
    """The child table's widgets: the rows given (posted or stored), then blank rows to fill in."""
    child = ctx.rt.spec.module(f.module or "")
    names = child_names(ctx, child)
    writable = ctx.access.writable(child) - {"owner"} if editable else frozenset()
    per_row = _row_errors(errors, f.name, rows)
    start = max([r["_i"] for r in rows], default=-1) + 1
    blanks = [{"_i": start + k, "id": ""} for k in range(BLANK_ROWS if editable else 0)]
    out = []
    for row in [*rows, *blanks]:
        values = preview(child, lenient(child, row), {}, ctx.user.id if ctx.user else None)
        env = _env(ctx, child, names, values, per_row.get(row["_i"], {}), None, writable)
        cells = tuple(widget(env, child.field(n), row, f"{f.name}-{row['_i']}-") for n in names)
        out.append((row["_i"], str(row.get("id") or ""), cells))
    headers = tuple((child.field(n).label(ctx.locale), "req" if child.field(n).required else "") for n in names)
    add = paths(ctx)("form_row", module=module.name, table=f.name)
    return TableRows(f.name, headers, tuple(out), editable, start + len(blanks), add, errors.get(f.name))


def build_tabs(ctx: Ctx, module: Module, raw: Raw, rows: dict[str, list[Raw]], errors: dict[str, str],
               record: dict[str, Any] | None, base: dict[str, Any]) -> list[Tab]:
    """The form's tabs → sections → widgets, with live state and formula previews for these values."""
    names = form_names(ctx, module)
    parsed_rows = {f.name: base.get(f.name) or [] for f in module.tables}
    for table, posted_rows in rows.items():
        child = ctx.rt.spec.module(module.field(table).module or "")
        parsed_rows[table] = [preview(child, lenient(child, r), {}, None) for r in posted_rows]
    values = preview(module, base | lenient(module, raw), parsed_rows, ctx.user.id if ctx.user else None)
    env = _env(ctx, module, names, values, errors, record)
    shown = set(names)
    tabs = []
    for t, tab in enumerate(module.layout.form):
        sections = []
        for s, section in enumerate(tab.sections):
            widgets = tuple(_widget_or_table(ctx, module, env, raw, rows, errors, n) for n in section.fields if n in shown)
            if widgets:
                sections.append(Section(f"s-{t}-{s}", section.label(ctx.locale) if section.label else "", section.columns,
                                        section_visible(module, section, values), widgets, section.visible_if is not None))
        if sections:
            tabs.append(Tab(f"tab-{t}", tab.label(ctx.locale), tuple(sections)))
    return tabs


def _widget_or_table(ctx: Ctx, module: Module, env: FormEnv, raw: Raw, rows: dict[str, list[Raw]], errors: dict[str, str],
                     name: str) -> Widget:
    f = module.field(name)
    w = widget(env, f, raw)
    if f.type != "table":
        return w
    return replace(w, table=table_rows(ctx, module, f, rows.get(name, []), errors, name in env.writable))


def initial_raw(ctx: Ctx, module: Module, record: dict[str, Any] | None, given: Raw | None = None) -> tuple[Raw, dict[str, list[Raw]]]:
    """Form input for a stored record, or for a new one (defaults, then values given in the URL); the fields `given`
    holds (a posted form's) are left out: their input is known, and a link's title needs no lookup."""
    names = form_names(ctx, module)
    values = dict(record) if record else _defaults(ctx, module, names)
    shown = [n for n in names if n not in given] if given else names
    links = [n for n in shown if module.field(n).type == "link" and values.get(n) is not None]
    titles = {n: titles_of(ctx, ctx.rt.spec.module(module.field(n).module or ""), {values[n]}) for n in links}
    raw = raw_of(module, values, shown, titles)
    rows = {}
    for f in module.tables:
        if f.name in names:
            child = ctx.rt.spec.module(f.module or "")
            rows[f.name] = [raw_of(child, r, child_names(ctx, child), {}) | {"_i": i, "id": str(r.get("id") or "")}
                            for i, r in enumerate((record or {}).get(f.name) or [])]
    return raw, rows


def _defaults(ctx: Ctx, module: Module, names: list[str]) -> dict[str, Any]:
    me = ctx.user.id if ctx.user else None
    values = {f.name: default_for(f, me) for f in module.defaulted_fields}
    given = lenient(module, {k: v for k, v in ctx.request.query_params.items() if k in names and k in ctx.access.writable(module)})
    values |= {k: v for k, v in given.items() if v is not None}
    compute_formulas(module, values, {"me": me})
    return values


def posted(ctx: Ctx, module: Module, record: dict[str, Any] | None) -> tuple[Raw, dict[str, list[Raw]]]:
    """The input of a posted form (fields and child rows); what was not posted keeps the stored input."""
    assert ctx.form is not None
    names = form_names(ctx, module)
    sent = read_form(module, names, ctx.form)
    stored, stored_rows = initial_raw(ctx, module, record, sent)
    raw = stored | sent
    rows = {}
    for f in module.tables:
        if f.name in names:
            child = ctx.rt.spec.module(f.module or "")
            rows[f.name] = read_rows(child, f.name, child_names(ctx, child), ctx.form, stored_rows.get(f.name, []))
    return raw, rows


def full_values(ctx: Ctx, module: Module, record: dict[str, Any] | None) -> dict[str, Any]:
    """Every stored value of a record the user may read (conditions and formulas need them all; never rendered)."""
    if record is None:
        return {}
    return records.get(ctx.rt, SystemAccess(), module.name, record["id"])


def to_input(ctx: Ctx, module: Module, raw: Raw, rows: dict[str, list[Raw]], base: dict[str, Any],
             record: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, str]]:
    """What to send to the records service: fields the user may write and that are not read-only now (the posted
    values over `base`, the stored ones, decide the fields' conditions)."""
    assert ctx.form is not None
    state = states(module, base | lenient(module, raw)) if module.conditional_fields else {}
    writable = ctx.access.writable(module)
    _refuse_unwritable(ctx, module, writable, record)
    data: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in form_names(ctx, module):
        f = module.field(name)
        if name not in writable or not (f.writable or name == "owner") or state.get(name, {}).get("read_only"):
            continue
        if f.type == "table":
            data[name] = [_row_input(ctx, module, f, r) for r in rows.get(name, [])]
        elif f.type == "link":
            _link_input(ctx, f, raw, record, data, errors)
        elif f.type == "attachment":
            _file_input(ctx, f, data)
        else:
            data[name] = raw.get(name)
    return data, errors


def _refuse_unwritable(ctx: Ctx, module: Module, writable: frozenset[str], record: dict[str, Any] | None) -> None:
    """A posted field the user may not write (a system field, a formula, another role's field) refuses the whole post."""
    assert ctx.form is not None
    lock = {"version"} if record is not None else set()  # an edit posts the version it started from
    refused = sorted(k for k in set(ctx.form.keys()) - lock
                     if k in module.by_name and (k not in writable or not (module.field(k).writable or k == "owner")))
    if refused:
        raise Invalid("you may not change some of these fields", dict.fromkeys(refused, "you may not change this field"))


def _row_input(ctx: Ctx, module: Module, f: Field, row: Raw) -> dict[str, Any]:
    child = ctx.rt.spec.module(f.module or "")
    writable = ctx.access.writable(child)
    out: dict[str, Any] = {}
    for n in child_names(ctx, child):
        cf = child.field(n)
        if n not in writable or not cf.writable or n not in row:
            continue
        picked = ID_SUFFIX.match(str(row.get(n + TITLE) or "")) if cf.type == "link" else None
        out[n] = picked.group(2) if picked else row[n]
    return out | ({"id": row["id"]} if row.get("id") else {})


def _link_input(ctx: Ctx, f: Field, raw: Raw, record: dict[str, Any] | None, data: dict[str, Any], errors: dict[str, str]) -> None:
    text, current = str(raw.get(f.name + TITLE) or "").strip(), str(raw.get(f.name) or "")
    target = ctx.rt.spec.modules.get(f.module or "")
    if not text or target is None:
        data[f.name] = None
        return
    if current.isdigit() and record is not None and record.get(f.name) == int(current):
        known = titles_of(ctx, target, {int(current)}).get(int(current))
        if text in (known, f"#{current}", f"{known} · #{current}"):
            return  # unchanged: kept even when the target is out of the user's sight
    ids, problem = resolve(ctx, target, text)
    if problem:
        errors[f.name] = problem
    else:
        data[f.name] = ids[0]


def _file_input(ctx: Ctx, f: Field, data: dict[str, Any]) -> None:
    assert ctx.form is not None
    upload = ctx.form.get(f.name)
    if isinstance(upload, UploadFile) and upload.filename:
        stored = files.store(ctx.rt, upload.file, upload.filename, upload.content_type, ctx.user.id if ctx.user else None)
        data[f.name] = stored.ref
    elif ctx.form.get(f.name + "__clear") == "true":
        data[f.name] = None


def form_values(ctx: Ctx, module: Module, record: dict[str, Any] | None, raw: Raw, rows: dict[str, list[Raw]],
                errors: dict[str, str], base: dict[str, Any]) -> dict[str, Any]:
    """Everything form.html shows."""
    url = paths(ctx)
    tabs = build_tabs(ctx, module, raw, rows, errors, record, base)
    shown = {w.field.name for t in tabs for s in t.sections for w in s.widgets}
    loose = {k: v for k, v in errors.items() if k.split("[")[0] not in shown or k == "__all__"}
    return {
        "module": module, "record": record, "tabs": tabs, "errors": errors,
        "loose_errors": [(module.field(k).label(ctx.locale) if k in module.by_name else "", v) for k, v in loose.items()],
        "title": record_title(module, record) if record else "",
        "action": url("record_update", module=module.name, id=record["id"]) if record else url("record_create", module=module.name),
        "state_url": url("form_state", module=module.name),
        "cancel": url("record", module=module.name, id=record["id"]) if record else url("screen_list", module=module.name),
        "multipart": any(w.kind == "file" and not w.read_only for t in tabs for s in t.sections for w in s.widgets),
        "version": record.get("version") if record else None, "conflict": None,
        "no_state": [w.name for t in tabs for s in t.sections for w in s.widgets if w.kind == "file"],
    }


def new_form(ctx: Ctx) -> Response:
    """`/m/<module>/new` (values in the URL prefill the form, e.g. from a related list)."""
    module = screen_module(ctx, "create")
    raw, rows = initial_raw(ctx, module, None)
    return page(ctx, "form.html", form_values(ctx, module, None, raw, rows, {}, {}))


def edit_form(ctx: Ctx) -> Response:
    """`/m/<module>/<id>/edit`."""
    module = screen_module(ctx, "write")
    record = records.get(ctx.rt, ctx.access, module.name, ctx.request.path_params["id"])
    raw, rows = initial_raw(ctx, module, record)
    return page(ctx, "form.html", form_values(ctx, module, record, raw, rows, {}, full_values(ctx, module, record)))


def _again(ctx: Ctx, module: Module, record: dict[str, Any] | None, raw: Raw, rows: dict[str, list[Raw]], errors: dict[str, str],
           base: dict[str, Any], status: int, **extra: Any) -> Response:
    values = form_values(ctx, module, record, raw, rows, errors, base) | extra
    return page(ctx, "form.html", values, status, {"record-form": "form"})


def create(ctx: Ctx) -> Response:
    """Save a new record: to its page (303), or the form again with the errors next to the fields (422)."""
    module = screen_module(ctx, "create")
    raw, rows = posted(ctx, module, None)
    data, problems = to_input(ctx, module, raw, rows, {}, None)
    try:
        if problems:
            raise Invalid("some values are not valid", problems | _dry_run(ctx, module, data, None))
        saved = records.create(ctx.rt, ctx.access, module.name, data)
    except Invalid as exc:
        return _again(ctx, module, None, raw, rows, exc.fields or {"__all__": exc.message}, {}, 422)
    return go(ctx, paths(ctx)("record", module=module.name, id=saved["id"]), "created")


def update(ctx: Ctx) -> Response:
    """Save changes with the version the user read: 409 shows what others changed meanwhile."""
    module = screen_module(ctx, "write")
    assert ctx.form is not None
    record = records.get(ctx.rt, ctx.access, module.name, ctx.request.path_params["id"])
    base = full_values(ctx, module, record)
    raw, rows = posted(ctx, module, record)
    data, problems = to_input(ctx, module, raw, rows, base, record)
    version = str(ctx.form.get("version_override") or ctx.form.get("version") or "")
    try:
        if problems:
            raise Invalid("some values are not valid", problems | _dry_run(ctx, module, data, record["id"], version))
        records.update(ctx.rt, ctx.access, module.name, record["id"], data, version)
    except Conflict:
        changes = events(ctx, module, record["id"], since=int(version) if version.isdigit() else 0)
        return _again(ctx, module, record, raw, rows, {}, base, 409, conflict=changes, version=version,
                      override=record["version"])
    except Invalid as exc:
        return _again(ctx, module, record, raw, rows, exc.fields or {"__all__": exc.message}, base, 422, version=version)
    return go(ctx, paths(ctx)("record", module=module.name, id=record["id"]), "saved")


def _dry_run(ctx: Ctx, module: Module, data: dict[str, Any], record_id: int | None, version: str = "") -> dict[str, str]:
    """The records service's own errors for the other fields, in a transaction rolled back (every problem at once)."""
    with ctx.rt.db.connect() as conn:
        trans = conn.begin()
        try:
            if record_id is None:
                records.create(ctx.rt, ctx.access, module.name, data, conn)
            else:
                records.update(ctx.rt, ctx.access, module.name, record_id, data, version, conn)
        except Invalid as exc:
            return dict(exc.fields)
        finally:
            trans.rollback()
    return {}


def form_state(ctx: Ctx) -> Response:
    """Re-evaluate visible_if / required_if / read_only_if and formulas for what the user typed (HTMX, out-of-band)."""
    module = screen_module(ctx)
    assert ctx.form is not None
    record_id = str(ctx.form.get("_id") or "")
    record = records.get(ctx.rt, ctx.access, module.name, record_id) if record_id.isdigit() else None
    if not ctx.access.can(module, "write" if record else "create"):
        raise Forbidden(f"you may not edit {module.name} records")
    raw, rows = posted(ctx, module, record)
    values = form_values(ctx, module, record, raw, rows, {}, full_values(ctx, module, record))
    return page(ctx, "form.html", values, block="state")


def form_row(ctx: Ctx) -> Response:
    """One blank child-table row (HTMX 'add row'), and the add button moved on to the next index."""
    module = screen_module(ctx)
    f = module.by_name.get(ctx.request.path_params["table"])
    if f is None or f.type != "table" or f.name not in ctx.access.writable(module):
        raise NotFound("no such child table")
    raw_index = ctx.request.query_params.get("i", "0")
    index = int(raw_index) if raw_index.isdigit() and int(raw_index) < 10_000 else 0
    table = table_rows(ctx, module, f, [], {}, True)
    row = table.rows[0]
    table_row = (index, "", tuple(_reindex(w, f.name, row[0], index) for w in row[2]))
    return page(ctx, "form.html", {"module": module, "table": table, "row_data": table_row, "next_index": index + 1}, block="new_row")


def _reindex(w: Widget, table: str, old: int, new: int) -> Widget:
    prefix, fresh = f"{table}-{old}-", f"{table}-{new}-"
    return replace(w, name=w.name.replace(prefix, fresh, 1), id=w.id.replace(prefix, fresh, 1))
