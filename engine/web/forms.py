"""Record forms: what a posted form holds ("raw" input text), and a widget per field from the registry's `widget`."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from starlette.datastructures import FormData

from engine.compute import compute_formulas, scope_of, visible_fields
from engine.expr import ExprError
from engine.fieldtypes import REGISTRY, ParseError, parse_value, show, stored_type
from engine.spec import Field, Module, Section
from engine.web.screens_lookup import ID_SUFFIX

Raw = dict[str, Any]
TITLE = "__title"
ROW_KEY = re.compile(r"^([a-z][a-z0-9_]*)-(\d{1,4})-([a-z_][a-z0-9_]*)$")
BLANK_ROWS = 2
STEP = {"integer": "1", "percent": "any"}


def input_text(f: Field, value: Any) -> Any:
    """A stored value as a form input holds it (a list for multiselects)."""
    if value is None:
        return [] if f.type == "multiselect" else ""
    if f.type == "multiselect":
        return [v for v in str(value).split(",") if v]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%dT%H:%M" if value.second == 0 else "%Y-%m-%dT%H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def raw_of(module: Module, values: Mapping[str, Any], names: list[str], titles: Mapping[str, Mapping[int, str]]) -> Raw:
    """Form input of stored values (link fields carry their title too; child rows as lists of raw rows)."""
    raw: Raw = {}
    for name in names:
        f = module.field(name)
        value = values.get(name)
        if f.type == "table":
            continue
        raw[name] = input_text(f, value)
        if f.type == "link":
            raw[name + TITLE] = (titles.get(name) or {}).get(value, f"#{value}") if value is not None else ""
    return raw


def read_form(module: Module, names: list[str], form: Any) -> Raw:
    """The posted input of the form's fields, as text (multiselects as lists, checkboxes as 'true'/'false').
    Fields the form did not post (read-only ones) are left out, so the caller keeps their stored input."""
    raw: Raw = {}
    for name in names:
        f = module.field(name)
        if f.type in ("multiselect", "boolean"):
            if name not in form and name + "__present" not in form:
                continue
            chosen = [str(v) for v in form.getlist(name) if isinstance(v, str) and v]
            raw[name] = chosen if f.type == "multiselect" else "true" if "true" in chosen else "false"
        elif f.type == "link":
            if name in form or name + TITLE in form:
                raw[name], raw[name + TITLE] = _text(form.get(name)), _text(form.get(name + TITLE))
        elif f.type not in ("attachment", "table") and name in form:
            raw[name] = _text(form.get(name))
    return raw


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def read_rows(child: Module, table: str, names: list[str], form: FormData, stored: list[Raw]) -> list[Raw]:
    """Posted child rows of one table field, in form order; removed rows and blank new rows are dropped.
    A stored row keeps the input of cells the form did not post."""
    indexes = sorted({int(m.group(2)) for key in form if (m := ROW_KEY.match(key)) and m.group(1) == table})
    before = {str(r.get("id")): r for r in stored if r.get("id")}
    rows = []
    for i in indexes:
        cells = _Form(form, f"{table}-{i}-")
        if cells.get("_delete"):
            continue
        row_id = _text(cells.get("id"))
        posted = read_form(child, names, cells)
        if row_id in before:
            rows.append(before[row_id] | posted | {"_i": i, "id": row_id})
        elif any(posted.get(n) not in (None, "", [], "false") for n in names):
            rows.append(posted | {"_i": i, "id": ""})
    return rows


class _Form:
    """The fields of one child row: a view of the form under the row's prefix."""

    def __init__(self, form: FormData, prefix: str) -> None:
        self.form, self.prefix = form, prefix

    def __contains__(self, name: object) -> bool:
        return f"{self.prefix}{name}" in self.form

    def get(self, name: str) -> Any:
        return self.form.get(self.prefix + name)

    def getlist(self, name: str) -> list[Any]:
        return self.form.getlist(self.prefix + name)


def lenient(module: Module, raw: Raw) -> dict[str, Any]:
    """Parsed values of raw input, ignoring what does not parse (for conditions and formula previews)."""
    values: dict[str, Any] = {}
    for name, text in raw.items():
        f = module.by_name.get(name)
        if f is None or f.type in ("table", "formula", "autonumber", "attachment"):
            continue
        if f.type == "link":
            picked = ID_SUFFIX.match(str(raw.get(name + TITLE) or ""))
            text = picked.group(2) if picked else text
        try:
            values[name] = parse_value(f, text)
        except ParseError:
            values[name] = None
    return values


def preview(module: Module, values: dict[str, Any], rows: Mapping[str, list[dict[str, Any]]], me: int | None) -> dict[str, Any]:
    """Values with formulas computed (child rows first, so totals over them are right)."""
    out = dict(values)
    compute_formulas(module, out, {"me": me, **rows})
    return out


def section_visible(module: Module, section: Section, values: Mapping[str, Any]) -> bool:
    """Whether a section's `visible_if` holds for these values."""
    if section.visible_if is None:
        return True
    try:
        return bool(section.visible_if(scope_of(module, values)))
    except ExprError:
        return False


@dataclass(frozen=True)
class Widget:
    """One field of a form, ready to render."""

    field: Field
    name: str
    id: str
    label: str
    kind: str
    text: str = ""
    display: str = ""
    chosen: frozenset[str] = frozenset()
    options: tuple[tuple[str, str], ...] = ()
    required: bool = False
    read_only: bool = False
    visible: bool = True
    error: str | None = None
    help: str = ""
    unit: str = ""
    step: str = ""
    limits: tuple[str, str] = ("", "")
    source: str = ""
    title: str = ""
    href: str | None = None
    table: Any = None


@dataclass(frozen=True)
class FormEnv:
    """What building widgets needs: the user's rights and locale, the current state, errors, user names, files."""

    module: Module
    locale: str
    writable: frozenset[str]
    state: Mapping[str, Mapping[str, bool]]
    errors: Mapping[str, str]
    users: tuple[tuple[str, str], ...] = ()
    sources: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    currency: str = "CNY"
    computed: Mapping[str, Any] = field(default_factory=dict)


def states(module: Module, values: Mapping[str, Any]) -> dict[str, dict[str, bool]]:
    """visible / required / read_only of every field with conditions, for these values."""
    return visible_fields(module, values)


def widget(env: FormEnv, f: Field, raw: Raw, prefix: str = "") -> Widget:
    """The widget of one field, filled from raw input; read-only when the user may not write it now."""
    state = env.state.get(f.name, {})
    kind = REGISTRY[f.type].widget
    read_only = f.name not in env.writable or bool(state.get("read_only", f.read_only)) or kind == "readonly"
    name = prefix + f.name
    text = raw.get(f.name, "")
    base: dict[str, Any] = {"field": f, "name": name, "id": "f-" + name, "label": f.label(env.locale), "kind": kind,
            "required": bool(state.get("required", f.required)) and not read_only, "read_only": read_only,
            "visible": bool(state.get("visible", True)), "error": env.errors.get(f.name),
            "help": f.help(env.locale) if f.help else ""}
    return Widget(**base, **_details(env, f, text, raw))


def _details(env: FormEnv, f: Field, text: Any, raw: Raw) -> dict[str, Any]:
    kind = stored_type(f)
    if f.type in ("formula", "autonumber"):
        value = env.computed.get(f.name) if f.name in env.computed else _parsed(f, text)
        return {"display": show(f, value, env.locale), "text": ""}
    if f.type in ("select", "multiselect", "boolean"):
        chosen = frozenset(text if isinstance(text, list) else [text] if text else [])
        options = tuple((o.value, o.label(env.locale)) for o in f.options)
        shown = ", ".join(label for value, label in options if value in chosen) if options else show(f, _parsed(f, text), env.locale)
        return {"chosen": chosen, "options": options, "display": shown, "text": text if isinstance(text, str) else ""}
    if f.type == "user":
        label = dict(env.users).get(str(text), f"#{text}" if text else "")
        return {"text": str(text), "options": env.users, "chosen": frozenset([str(text)]), "display": label}
    if f.type == "link":
        title = str(raw.get(f.name + TITLE) or "")
        return {"text": str(text), "title": title, "display": title, "source": env.sources.get(f.name, "")}
    if f.type == "attachment":
        name, href = env.files.get(f.name, ("", ""))
        return {"display": name, "href": href or None}
    extra: dict[str, Any] = {"text": str(text), "display": show(f, _parsed(f, text), env.locale) if text else ""}
    if kind in ("integer", "decimal", "currency", "percent"):
        scale = f.scale if f.scale is not None else 2
        extra |= {"step": STEP.get(kind) or ("1" if scale == 0 else "0." + "0" * (scale - 1) + "1"),
                  "limits": ("" if f.min is None else f"{f.min:g}", "" if f.max is None else f"{f.max:g}"),
                  "unit": (f.currency or env.currency) if kind == "currency" else "%" if kind == "percent" else ""}
    return extra


def _parsed(f: Field, text: Any) -> Any:
    try:
        probe = f if f.type not in ("formula", "autonumber") else Field(name=f.name, type=_probe_type(f), label=f.label,
                                                                        scale=f.scale, options=f.options, currency=f.currency)
        return parse_value(probe, text)
    except ParseError:
        return None


def _probe_type(f: Field) -> str:
    return "text" if f.type == "autonumber" else stored_type(f)
