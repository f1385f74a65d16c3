"""Cross-reference checks over a merged bundle: a flat list of small rules."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from engine.build import build_module, filter_pairs
from engine.errors import Invalid, Problem
from engine.expr import ExprError, compile_expr, field_names
from engine.layers import Merged
from engine.query import parse_list_query
from engine.spec import CHILD_SYSTEM_FIELDS, SYSTEM_FIELDS

SQL_RESERVED = frozenset("""
all analyse analyze and any array as asc asymmetric both case cast check collate column constraint
create current_catalog current_date current_role current_time current_timestamp current_user default
deferrable desc distinct do else end except false fetch for foreign from grant group having in
initially intersect into lateral leading limit localtime localtimestamp not null offset on only or
order placing primary references returning select session_user some symmetric table then to trailing
true union unique user using variadic when where window with delete insert update values index key
join left right inner outer cross natural full like ilike between exists is isnull notnull similar
verbose freeze binary overlaps tablesample rowid oid
""".split())  # noqa: SIM905
EXPR_KEYS = ("expr", "visible_if", "required_if", "read_only_if")
NUMERIC = ("integer", "decimal", "currency", "percent")
STRUCTURAL = ("table",)

Found = Iterator[tuple[str, str]]


def cross_check(bundle: Any) -> list[Problem]:
    """Run every rule over every document; each yields (path, message)."""
    modules = {name: doc.data for name, doc in bundle.docs["modules"].items()}
    roles = {r["name"] for r in bundle.app.data.get("roles", [])}
    problems: list[Problem] = []
    problems += _located(bundle.app, _app_rules(bundle.app.data, modules, bundle.docs["reports"]))
    for doc in bundle.docs["modules"].values():
        for rule in MODULE_RULES:
            problems += _located(doc, rule(doc.data, modules, roles))
    for doc in bundle.docs["workflows"].values():
        problems += _located(doc, _workflow(doc.data, modules, roles))
    for doc in bundle.docs["reports"].values():
        problems += _located(doc, _report(doc.data, modules))
    return problems


def _located(doc: Merged, found: Found) -> list[Problem]:
    out = []
    for path, message in found:
        file, line, _ = doc.where(path)
        out.append(Problem(file, line, path, message))
    return out


def _names(module: dict[str, Any]) -> set[str]:
    names = {f["name"] for f in module.get("fields", [])} | set(SYSTEM_FIELDS)
    if module.get("naming"):
        names.add("code")
    if module.get("child"):
        names |= set(CHILD_SYSTEM_FIELDS)
    return names


def _known(names: set[str]) -> str:
    shown = sorted(names)
    return ", ".join(shown[:12]) + (", …" if len(shown) > 12 else "")


def _identifiers(m: dict[str, Any], modules: dict[str, Any], roles: set[str]) -> Found:
    if m["name"] in SQL_RESERVED or m["name"].startswith("loom_"):
        yield "name", f"'{m['name']}' is a reserved word; choose another module name"
    seen: set[str] = set()
    for i, f in enumerate(m.get("fields", [])):
        if f["name"] in SQL_RESERVED:
            yield f"fields[{i}].name", f"'{f['name']}' is an SQL reserved word; choose another name"
        if f["name"] in SYSTEM_FIELDS or f["name"] in CHILD_SYSTEM_FIELDS:
            yield f"fields[{i}].name", f"'{f['name']}' is a system field and is added automatically"
        if f["name"] in seen:
            yield f"fields[{i}].name", f"duplicate field name '{f['name']}'"
        seen.add(f["name"])


def _field_shapes(m: dict[str, Any], modules: dict[str, Any], roles: set[str]) -> Found:
    for i, f in enumerate(m.get("fields", [])):
        at, kind = f"fields[{i}]", f["type"]
        if kind in ("select", "multiselect") and not f.get("options"):
            yield f"{at}.options", f"a {kind} field needs options"
        if kind in ("link", "table"):
            yield from _target(f, at, modules)
        if kind == "formula" and not f.get("expr") and "rollup" not in f:
            yield f"{at}.expr", "a formula field needs an expression (or a rollup)"
        if "rollup" in f and (kind != "formula" or "expr" in f):
            yield f"{at}.rollup", "a rollup is a formula field without an expression"
        if kind == "autonumber" and not f.get("format"):
            yield f"{at}.format", "an autonumber field needs a format such as 'INV-{YYYY}-{#####}'"
        if "fetch" in f:
            yield from _fetch_target(f["fetch"], f"{at}.fetch", m, modules)
        if kind in ("select",) and "default" in f and f["default"] not in _values(f):
            yield f"{at}.default", f"'{f['default']}' is not one of the options ({', '.join(_values(f))})"


def _target(f: dict[str, Any], at: str, modules: dict[str, Any]) -> Found:
    kind = f["type"]
    if not f.get("module"):
        yield f"{at}.module", f"a {kind} field needs a target module"
    elif f["module"] not in modules:
        yield f"{at}.module", f"unknown module '{f['module']}' (known: {_known(set(modules))})"
    elif kind == "table" and not modules[f["module"]].get("child"):
        yield f"{at}.module", f"'{f['module']}' must be declared 'child: true' to be used as a table"
    elif kind == "link" and modules[f["module"]].get("child"):
        yield f"{at}.module", f"cannot link to child module '{f['module']}'"


def _fetch_target(source: str, path: str, m: dict[str, Any], modules: dict[str, Any]) -> Found:
    link_name, target_field = source.split(".", 1)
    link = next((f for f in m.get("fields", []) if f["name"] == link_name), None)
    if link is None or link["type"] != "link":
        yield path, f"'{link_name}' is not a link field of this module"
    elif link.get("module") in modules and target_field not in _names(modules[link["module"]]):
        yield path, f"unknown field '{target_field}' of module '{link['module']}'"


def _values(f: dict[str, Any]) -> list[str]:
    return [o["value"] if isinstance(o, dict) else str(o) for o in f.get("options", [])]


def _expressions(m: dict[str, Any], modules: dict[str, Any], roles: set[str]) -> Found:
    names = _names(m) | {f["name"] for f in m.get("fields", [])}
    for i, f in enumerate(m.get("fields", [])):
        for key in EXPR_KEYS:
            if key in f:
                yield from _expr(f[key], f"fields[{i}].{key}", names)
    for i, v in enumerate(m.get("validations", [])):
        yield from _expr(v["expr"], f"validations[{i}].expr", names)
    for t, tab in enumerate(m.get("layout", {}).get("form", [])):
        for s, sec in enumerate(tab.get("sections", [])):
            if "visible_if" in sec:
                yield from _expr(sec["visible_if"], f"layout.form[{t}].sections[{s}].visible_if", names)


def _action_expressions(m: dict[str, Any], modules: dict[str, Any], roles: set[str]) -> Found:
    names = _names(m)
    for a, act in enumerate(m.get("actions", [])):
        if "condition" in act:
            yield from _expr(act["condition"], f"actions[{a}].condition", names)
        for k, src in act.get("set", {}).items():
            yield from _expr(src, f"actions[{a}].set.{k}", names)
            if k not in names:
                yield f"actions[{a}].set.{k}", f"unknown field '{k}'"
        yield from _action_targets(act, f"actions[{a}]", modules, names)


def _action_targets(act: dict[str, Any], at: str, modules: dict[str, Any], names: set[str]) -> Found:
    targets = [(f"{at}.log", act["log"])] if "log" in act else []
    targets += [(f"{at}.create[{i}]", c) for i, c in enumerate(act.get("create", []))]
    for path, target in targets:
        if target["module"] not in modules:
            yield f"{path}.module", f"unknown module '{target['module']}'"
            continue
        theirs = _names(modules[target["module"]])
        for k, src in target["set"].items():
            if k not in theirs:
                yield f"{path}.set.{k}", f"unknown field '{k}' of module '{target['module']}'"
            yield from _expr(src, f"{path}.set.{k}", names)
    if act["kind"] == "create" and not act.get("create"):
        yield f"{at}.create", "a create action needs the records to create"


def _expr(source: str, path: str, names: set[str]) -> Found:
    try:
        expr = compile_expr(source)
    except ExprError as exc:
        yield path, str(exc)
        return
    for name in sorted(field_names(expr) - names):
        yield path, f"unknown name '{name}' in expression (fields: {_known(names)})"


def _layout(m: dict[str, Any], modules: dict[str, Any], roles: set[str]) -> Found:
    names, layout = _names(m), m.get("layout", {})
    if "title_field" in m and m["title_field"] not in names:
        yield "title_field", f"unknown field '{m['title_field']}' (fields: {_known(names)})"
    for t, tab in enumerate(layout.get("form", [])):
        for s, sec in enumerate(tab.get("sections", [])):
            for k, name in enumerate(sec.get("fields", [])):
                if name not in names:
                    yield f"layout.form[{t}].sections[{s}].fields[{k}]", f"unknown field '{name}' (fields: {_known(names)})"
    yield from _related(m, layout.get("related", []), modules)


def _list_layout(m: dict[str, Any], modules: dict[str, Any], roles: set[str]) -> Found:
    names, lst = _names(m), m.get("layout", {}).get("list", {})
    fields = {f["name"]: f for f in m.get("fields", [])}
    for key in ("columns", "filters", "search"):
        for k, name in enumerate(lst.get(key, [])):
            if name not in names:
                yield f"layout.list.{key}[{k}]", f"unknown field '{name}' (fields: {_known(names)})"
            elif name in fields and fields[name]["type"] in STRUCTURAL:
                yield f"layout.list.{key}[{k}]", f"child table '{name}' cannot be a list {key[:-1]}"
    if "sort" in lst and lst["sort"].lstrip("-") not in names:
        yield "layout.list.sort", f"unknown field '{lst['sort'].lstrip('-')}'"
    if "kanban" in lst and fields.get(lst["kanban"], {}).get("type") != "select":
        yield "layout.list.kanban", f"'{lst['kanban']}' must be a select field of this module"


def _related(m: dict[str, Any], related: list[dict[str, Any]], modules: dict[str, Any]) -> Found:
    for r, rel in enumerate(related):
        other = modules.get(rel["module"])
        if other is None:
            yield f"layout.related[{r}].module", f"unknown module '{rel['module']}'"
            continue
        link = next((f for f in other.get("fields", []) if f["name"] == rel["field"]), None)
        if link is None or link["type"] != "link" or link.get("module") != m["name"]:
            yield f"layout.related[{r}].field", f"'{rel['field']}' is not a link from '{rel['module']}' to '{m['name']}'"
        for k, name in enumerate(rel.get("columns", [])):
            if name not in _names(other):
                yield f"layout.related[{r}].columns[{k}]", f"unknown field '{name}' of '{rel['module']}'"


def _permissions(m: dict[str, Any], modules: dict[str, Any], roles: set[str]) -> Found:
    names = _names(m)
    for role, rule in m.get("permissions", {}).items():
        if role not in roles:
            yield f"permissions.{role}", f"unknown role '{role}' (roles: {_known(roles)})"
        for name in rule.get("fields", {}):
            if name not in names:
                yield f"permissions.{role}.fields.{name}", f"unknown field '{name}'"


def _derived(m: dict[str, Any], modules: dict[str, Any], roles: set[str]) -> Found:
    names = _names(m)
    for i, f in enumerate(m.get("fields", [])):
        if "rollup" in f:
            yield from _rollup(f["rollup"], f"fields[{i}].rollup", m, modules)
        if "on_change_of" in f and f["type"] not in ("date", "datetime"):
            yield f"fields[{i}].on_change_of", "only a date or datetime field records when another field changes"
        elif "on_change_of" in f and f["on_change_of"] not in names:
            yield f"fields[{i}].on_change_of", f"unknown field '{f['on_change_of']}' (fields: {_known(names)})"
    scheduled = {a["name"] for a in m.get("actions", []) if a.get("scheduled")}
    for s, schedule in enumerate(m.get("schedules", [])):
        if schedule["action"] not in scheduled:
            yield f"schedules[{s}].action", f"'{schedule['action']}' is not an action of this module declared 'scheduled: true'"
        yield from _filter(schedule.get("filter", {}), f"schedules[{s}].filter", m)


def _rollup(r: dict[str, Any], at: str, m: dict[str, Any], modules: dict[str, Any]) -> Found:
    source = modules.get(r["module"])
    if source is None or source.get("child"):
        yield f"{at}.module", f"'{r['module']}' is not a (top-level) module (known: {_known(set(modules))})"
        return
    fields = {f["name"]: f for f in source.get("fields", [])}
    link = fields.get(r["link"], {})
    if link.get("type") != "link" or link.get("module") != m["name"]:
        yield f"{at}.link", f"'{r['link']}' is not a link from '{r['module']}' to '{m['name']}'"
    measure = r.get("measure", "count")
    if measure != "count" and r.get("field") not in _names(source):
        yield f"{at}.field", f"a {measure} rollup needs a field of '{r['module']}' (fields: {_known(_names(source))})"
    elif measure in ("sum", "avg") and _result(fields.get(r.get("field", ""), {})) not in NUMERIC:
        yield f"{at}.field", f"cannot take the {measure} of '{r['field']}': not a number"
    yield from _filter(r.get("filter", {}), f"{at}.filter", source)


def _result(f: dict[str, Any]) -> str:
    return str(f.get("result", "decimal")) if f.get("type") == "formula" else str(f.get("type"))


def _filter(raw: dict[str, Any], at: str, m: dict[str, Any]) -> Found:
    try:
        module = build_module(m)
    except ExprError:  # reported by the expression rule
        return
    for key, value in filter_pairs(raw):
        try:
            parse_list_query(module, [(key, value)], {f.name for f in module.stored_fields})
        except Invalid as exc:
            if key in exc.fields:
                yield f"{at}.{key}", f"{exc.fields[key]} in '{m['name']}'"


def _app_rules(app: dict[str, Any], modules: dict[str, Any], reports: dict[str, Any]) -> Found:
    for g, group in enumerate(app.get("navigation", [])):
        for i, item in enumerate(group["items"]):
            name = item.removeprefix("report:")
            known = reports if item.startswith("report:") else modules
            if name not in known:
                yield f"navigation[{g}].items[{i}]", f"unknown {'report' if item.startswith('report:') else 'module'} '{name}'"
    for p, panel in enumerate(app.get("home", {}).get("panels", [])):
        if panel["module"] not in modules:
            yield f"home.panels[{p}].module", f"unknown module '{panel['module']}'"
        elif panel.get("group_by") and panel["group_by"] not in _names(modules[panel["module"]]):
            yield f"home.panels[{p}].group_by", f"unknown field '{panel['group_by']}'"


def _workflow(w: dict[str, Any], modules: dict[str, Any], roles: set[str]) -> Found:
    m = modules.get(w["module"])
    if m is None:
        yield "module", f"unknown module '{w['module']}'"
        return
    field = next((f for f in m.get("fields", []) if f["name"] == w["field"]), None)
    if field is None or field["type"] != "select":
        yield "field", f"'{w['field']}' must be a select field of '{w['module']}'"
    states = {s["name"] for s in w["states"]}
    for i, t in enumerate(w["transitions"]):
        for src in [t["from"]] if isinstance(t["from"], str) else t["from"]:
            if src not in states:
                yield f"transitions[{i}].from", f"unknown state '{src}' (states: {_known(states)})"
        if t["to"] not in states:
            yield f"transitions[{i}].to", f"unknown state '{t['to']}' (states: {_known(states)})"
        for k, role in enumerate(t.get("roles", [])):
            if role not in roles:
                yield f"transitions[{i}].roles[{k}]", f"unknown role '{role}'"


def _report(r: dict[str, Any], modules: dict[str, Any]) -> Found:
    if r["module"] not in modules:
        yield "module", f"unknown module '{r['module']}'"
        return
    for i, g in enumerate(r.get("group_by", [])):
        if not _path_ok(g["field"], r["module"], modules):
            yield f"group_by[{i}].field", f"unknown field path '{g['field']}'"
    for i, meas in enumerate(r.get("measures", [])):
        if "field" in meas and not _path_ok(meas["field"], r["module"], modules):
            yield f"measures[{i}].field", f"unknown field path '{meas['field']}'"


def _path_ok(path: str, module: str, modules: dict[str, Any]) -> bool:
    *links, last = path.split(".")
    for name in links:
        f = next((f for f in modules[module].get("fields", []) if f["name"] == name), None)
        if f is None or f["type"] != "link":
            return False
        module = f["module"]
    return last in _names(modules[module])


MODULE_RULES: tuple[Callable[[dict[str, Any], dict[str, Any], set[str]], Found], ...] = (
    _identifiers, _field_shapes, _expressions, _action_expressions, _layout, _list_layout, _permissions, _derived,
)
