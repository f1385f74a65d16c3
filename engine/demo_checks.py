"""Cross checks of demo.yaml against the bundle: a flat list of small rules, each yielding (path, message)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from engine.demo_plan import KINDS, gen_kind, pattern_parts, templates
from engine.expr import FUNCTIONS, RESERVED_NAMES, ExprError, compile_expr
from engine.fieldtypes import ParseError, parse_value
from engine.spec import Field, Module, Spec

Found = Iterator[tuple[str, str]]
NUMERIC = ("integer", "decimal", "currency", "percent")
MODIFIERS = {
    "value": (), "choice": ("weights", "multi"), "pattern": (), "number": ("dist", "alpha", "mode", "step"),
    "date": ("dist", "alpha", "mode", "after", "until"), "link": ("skew", "where", "match", "distinct"), "users": ("skew",),
    "from": (), "expr": (), "split": (), "first": (), "rows": (),
}
TYPES = {"number": NUMERIC, "date": ("date", "datetime"), "link": ("link",), "users": ("user",), "split": NUMERIC, "rows": ("table",)}
SETTABLE_SYSTEM = ("owner", "created_at")
DEMO_NAMES = frozenset({"n", "k", "parent", "source", "row", "anchor", "rand", "randint", "days"})


@dataclass(frozen=True)
class Scope:
    """What a generator may refer to: the module, the modules generated before it, pools and draws."""

    spec: Spec
    module: Module
    earlier: tuple[str, ...]
    pools: Mapping[str, Any]
    draws: tuple[str, ...] = ()
    child: bool = False

    def names(self) -> frozenset[str]:
        """Names an expression over this module's row may use."""
        return frozenset(self.module.by_name) | frozenset(self.draws) | DEMO_NAMES | RESERVED_NAMES | frozenset(FUNCTIONS)


def check_plan(data: Mapping[str, Any], spec: Spec, departments: str | None) -> list[tuple[str, str]]:
    """Every cross-reference problem of a schema-valid demo document."""
    found = list(_users(data, spec, departments))
    pools = data.get("pools") or {}
    earlier: list[str] = []
    for name, raw in (data.get("modules") or {}).items():
        found += _module(spec, name, raw or {}, tuple(earlier), pools)
        earlier.append(name)
    return found


def _users(data: Mapping[str, Any], spec: Spec, departments: str | None) -> Found:
    users = data.get("users") or {}
    roles = [r.name for r in spec.app.roles]
    titles = _titles(data, spec, departments)
    for role, extra in (users.get("roles") or {}).items():
        if role not in roles:
            yield f"users.roles.{role}", f"unknown role '{role}' (roles: {', '.join(roles)})"
        yield from _department(f"users.roles.{role}", extra or {}, departments, titles)
    seen = set(roles)
    for i, staff in enumerate(users.get("staff") or []):
        path = f"users.staff[{i}]"
        if not staff.get("username"):
            yield path, "a staff user needs a username"
        elif staff["username"] in seen:
            yield f"{path}.username", f"user name '{staff['username']}' is used twice (role users are named after their role)"
        seen.add(staff.get("username"))
        for role in staff.get("roles") or []:
            if role not in roles:
                yield f"{path}.roles", f"unknown role '{role}' (roles: {', '.join(roles)})"
        yield from _department(path, staff, departments, titles)


def _titles(data: Mapping[str, Any], spec: Spec, departments: str | None) -> set[str] | None:
    plan = (data.get("modules") or {}).get(departments or "") or {}
    if departments not in spec.modules or "rows" not in plan:
        return None
    title = spec.module(str(departments)).title_field
    return {str(r.get(title)) for r in plan["rows"] if isinstance(r, dict)}


def _department(path: str, user: Mapping[str, Any], departments: str | None, titles: set[str] | None) -> Found:
    name = user.get("department")
    if name is None:
        return
    if not departments:
        yield f"{path}.department", "app.yaml names no `departments` module to place users in"
    elif titles is not None and name not in titles:
        yield f"{path}.department", f"no demo row of '{departments}' is titled '{name}'"


def _module(spec: Spec, name: str, raw: Mapping[str, Any], earlier: tuple[str, ...], pools: Mapping[str, Any]) -> Found:
    path = f"modules.{name}"
    module = spec.modules.get(name)
    if module is None:
        yield path, f"unknown module '{name}' (known: {', '.join(sorted(spec.modules))})"
        return
    if module.child:
        yield path, f"'{name}' is a child module: fill it through its parent's table field (rows: [min, max])"
        return
    sources = [k for k in ("count", "rows", "each") if k in raw]
    if len(sources) > 1:
        yield path, f"give one of count, rows or each, not {' and '.join(sources)}"
    for draw, pool in (raw.get("draw") or {}).items():
        if pool not in pools:
            yield f"{path}.draw.{draw}", f"unknown pool '{pool}' (pools: {', '.join(pools) or 'none'})"
    scope = Scope(spec, module, (*earlier, name), pools, tuple(raw.get("draw") or ()))
    if "each" in raw:
        yield from _each(scope, path, raw["each"])
    if "rows" in raw:
        yield from _rows(scope, path, raw["rows"])
    fields = raw.get("fields") or {}
    for fname, gen in fields.items():
        yield from check_gen(scope, f"{path}.fields.{fname}", fname, gen)
    given = set(fields) | ({raw["each"]["field"]} if "each" in raw else set())
    if "rows" not in raw:
        yield from _required_links(scope, path, given)


def _required_links(scope: Scope, path: str, given: set[str]) -> Found:
    for f in scope.module.fields:
        if f.type == "link" and f.required and f.name not in given and f.module not in scope.earlier[:-1]:
            yield path, f"required link '{f.name}' needs '{f.module}' rows generated before '{scope.module.name}' (list it earlier)"


def _each(scope: Scope, path: str, each: Mapping[str, Any]) -> Found:
    f = scope.module.by_name.get(each["field"])
    if f is None or f.type != "link":
        yield f"{path}.each.field", f"'{each['field']}' is not a link field of {scope.module.name}"
        return
    if f.module not in scope.earlier[:-1]:
        yield f"{path}.each.field", f"'{f.module}' must be generated before '{scope.module.name}' (list it earlier)"
        return
    source = scope.spec.module(str(f.module))
    names = frozenset(source.by_name) | RESERVED_NAMES | frozenset(FUNCTIONS) | DEMO_NAMES
    table = each.get("table")
    if table is not None:
        tf = source.by_name.get(table)
        if tf is None or tf.type != "table":
            yield f"{path}.each.table", f"'{table}' is not a table field of {source.name}"
            return
        names = frozenset(scope.spec.module(str(tf.module)).by_name) | RESERVED_NAMES | frozenset(FUNCTIONS) | DEMO_NAMES
    if each.get("where"):
        yield from _expr_problems(f"{path}.each.where", each["where"], names)


def _rows(scope: Scope, path: str, rows: list[Any]) -> Found:
    for i, row in enumerate(rows):
        for key, value in row.items():
            f = scope.module.by_name.get(key)
            where = f"{path}.rows[{i}].{key}"
            if f is None or not (f.writable or key == "owner") or f.type == "table":
                yield where, f"'{key}' cannot be given: not a writable field of {scope.module.name}"
            elif f.type == "link" and f.module not in scope.earlier:
                yield where, f"'{f.module}' must be generated before '{scope.module.name}' (list it earlier)"
            elif f.type not in ("link", "user"):
                yield from _parses(where, f, value)


def _parses(path: str, f: Field, value: Any) -> Found:
    try:
        parse_value(f, value)
    except ParseError as exc:
        yield path, f"{value!r}: {exc}"


def check_gen(scope: Scope, path: str, name: str, raw: Any) -> Found:
    """Problems of one field generator: the field, the kind and its arguments."""
    f = scope.module.by_name.get(name)
    if f is None:
        yield path, f"unknown field '{name}' of {scope.module.name} (fields: {', '.join(n for n in scope.module.by_name)})"
        return
    if f.type in ("formula", "autonumber"):
        yield path, f"'{name}' is computed by the engine: leave it out"
        return
    if f.system and name not in SETTABLE_SYSTEM:
        yield path, f"'{name}' is set by the loader (only {', '.join(SETTABLE_SYSTEM)} of the system fields can be generated)"
        return
    if not isinstance(raw, dict):
        if f.type == "table":
            yield path, "a table field takes {rows: [min, max], fields: {...}}"
        elif raw is not None and f.type not in ("link", "user"):
            yield from _parses(path, f, raw)
        return
    kinds = gen_kind(raw)
    if len(kinds) != 1:
        yield path, f"give exactly one of: {', '.join(KINDS)} (found: {', '.join(kinds) or 'none'})"
        return
    yield from _gen(scope, path, f, kinds[0], raw)


def _gen(scope: Scope, path: str, f: Field, kind: str, raw: Mapping[str, Any]) -> Found:
    allowed = {kind, "chance", "when", *MODIFIERS[kind], *(("fields",) if kind == "rows" else ())}
    for key in raw:
        if key not in allowed:
            yield f"{path}.{key}", f"'{key}' does not go with {kind} (allowed: {', '.join(sorted(allowed))})"
    if kind in TYPES and f.type not in TYPES[kind]:
        yield f"{path}.{kind}", f"{kind} does not fit a {f.type} field (fits: {', '.join(TYPES[kind])})"
        return
    if f.type == "table" and kind != "rows":
        yield path, "a table field takes {rows: [min, max], fields: {...}}"
        return
    if raw.get("when"):
        yield from _expr_problems(f"{path}.when", raw["when"], scope.names())
    yield from KIND_RULES[kind](scope, path, f, raw)


def _expr_problems(path: str, source: str, names: frozenset[str]) -> Found:
    try:
        expr = compile_expr(source)
    except ExprError as exc:
        yield path, str(exc)
        return
    unknown = sorted(n for n in expr.names if n not in names)
    if unknown:
        yield path, f"unknown name(s) {', '.join(unknown)} in {source!r}"


def _value(scope: Scope, path: str, f: Field, raw: Mapping[str, Any]) -> Found:
    if f.type not in ("link", "user") and raw["value"] is not None:
        yield from _parses(f"{path}.value", f, raw["value"])


def _choice(scope: Scope, path: str, f: Field, raw: Mapping[str, Any]) -> Found:
    values = raw["choice"]
    if "weights" in raw and (isinstance(values, dict) or len(raw["weights"]) != len(values)):
        yield f"{path}.weights", "weights go with a choice list, one per value"
    if "multi" in raw and f.type != "multiselect":
        yield f"{path}.multi", "multi is for multiselect fields"
    if f.type not in ("link", "user"):
        for value in values:
            yield from _parses(f"{path}.choice", f, [value] if f.type == "multiselect" else value)


def _pattern(scope: Scope, path: str, f: Field, raw: Mapping[str, Any]) -> Found:
    heads = set(scope.pools) | set(scope.draws) | set(scope.module.by_name) | {"n", "k", "parent", "source", "row"}
    for template in templates(raw["pattern"])[0]:
        for kind, token in pattern_parts(template):
            if kind != "token":
                continue
            head, keys = token[0], token[1]
            if head not in heads:
                yield f"{path}.pattern", f"unknown {{{head}}} in {template!r}: not a pool, draw, field, n, k, parent, source or row"
            elif head in scope.module.by_name and head not in scope.draws and scope.module.field(head).type == "link" and keys:
                yield from _linked_token(scope, f"{path}.pattern", scope.module.field(head), keys[0])


def _linked_token(scope: Scope, path: str, link: Field, name: str) -> Found:
    if link.module not in scope.earlier or link.module == scope.module.name:
        yield path, f"'{link.module}' must be generated before '{scope.module.name}' to read {link.name}.{name}"
    elif name not in scope.spec.module(str(link.module)).by_name:
        yield path, f"unknown field '{name}' of {link.module} in {{{link.name}.{name}}}"


def _number(scope: Scope, path: str, f: Field, raw: Mapping[str, Any]) -> Found:
    low, high = raw["number"]
    if low > high:
        yield f"{path}.number", f"low {low} is above high {high}"
    if raw.get("dist") == "pareto" and low <= 0:
        yield f"{path}.number", "a pareto range starts above 0"


def _date(scope: Scope, path: str, f: Field, raw: Mapping[str, Any]) -> Found:
    low, high = raw["date"]
    if low > high:
        yield f"{path}.date", f"low {low} is above high {high}"
    for key in ("after", "until"):
        if raw.get(key):
            yield from _expr_problems(f"{path}.{key}", raw[key], scope.names())


def _link(scope: Scope, path: str, f: Field, raw: Mapping[str, Any]) -> Found:
    target = raw["link"]
    if target != f.module:
        yield f"{path}.link", f"'{f.name}' links to '{f.module}', not '{target}'"
        return
    if target == scope.module.name and any(k in raw for k in ("skew", "where", "match", "distinct")):
        yield f"{path}.link", "a link to the module itself picks among earlier rows only (no skew, where, match or distinct)"
    elif target not in scope.earlier:
        yield f"{path}.link", f"'{target}' must be generated before '{scope.module.name}' (list it earlier)"
        return
    module = scope.spec.module(target)
    names = frozenset(module.by_name) | RESERVED_NAMES | frozenset(FUNCTIONS) | DEMO_NAMES
    if raw.get("where"):
        yield from _expr_problems(f"{path}.where", raw["where"], names)
    for key, source in (raw.get("match") or {}).items():
        if key not in module.by_name:
            yield f"{path}.match.{key}", f"unknown field '{key}' of {target}"
        yield from _expr_problems(f"{path}.match.{key}", source, scope.names())


def _users_gen(scope: Scope, path: str, f: Field, raw: Mapping[str, Any]) -> Found:
    roles = [r.name for r in scope.spec.app.roles]
    for role in raw["users"]:
        if role not in roles:
            yield f"{path}.users", f"unknown role '{role}' (roles: {', '.join(roles)})"


def _from(scope: Scope, path: str, f: Field, raw: Mapping[str, Any]) -> Found:
    link_name, source = raw["from"].split(".", 1)
    link = scope.module.by_name.get(link_name)
    if link is None or link.type != "link":
        yield f"{path}.from", f"'{link_name}' is not a link field of {scope.module.name}"
        return
    if link.module not in scope.earlier[:-1] or link.module == scope.module.name:
        yield f"{path}.from", f"'{link.module}' must be generated before '{scope.module.name}' (list it earlier)"
        return
    target = scope.spec.module(str(link.module))
    if source not in target.by_name or not target.field(source).stored:
        yield f"{path}.from", f"'{source}' is not a stored field of {target.name}"


def _expr(scope: Scope, path: str, f: Field, raw: Mapping[str, Any]) -> Found:
    yield from _expr_problems(f"{path}.expr", raw["expr"], scope.names())


def _split(scope: Scope, path: str, f: Field, raw: Mapping[str, Any]) -> Found:
    if not scope.child:
        yield f"{path}.split", "split shares a parent's amount over child rows: use it inside a table's fields"
    yield from _expr_problems(f"{path}.split", raw["split"], scope.names())


def _first(scope: Scope, path: str, f: Field, raw: Mapping[str, Any]) -> Found:
    for i, part in enumerate(raw["first"]):
        yield from check_gen(scope, f"{path}.first[{i}]", f.name, part)


def _table(scope: Scope, path: str, f: Field, raw: Mapping[str, Any]) -> Found:
    low, high = raw["rows"]
    if low > high or low < 0:
        yield f"{path}.rows", f"rows [{low}, {high}]: give 0 ≤ fewest ≤ most"
    child = scope.spec.module(str(f.module))
    inner = Scope(scope.spec, child, scope.earlier, scope.pools, scope.draws, child=True)
    for fname, gen in (raw.get("fields") or {}).items():
        if fname in ("owner", "created_at"):
            yield f"{path}.fields.{fname}", "child rows take the parent's owner and time"
            continue
        yield from check_gen(inner, f"{path}.fields.{fname}", fname, gen)
    for cf in child.fields:
        if cf.type == "link" and cf.required and cf.name not in (raw.get("fields") or {}) and cf.module not in scope.earlier:
            yield path, f"required link '{cf.name}' of {child.name} needs '{cf.module}' rows generated earlier"


KIND_RULES = {
    "value": _value, "choice": _choice, "pattern": _pattern, "number": _number, "date": _date, "link": _link,
    "users": _users_gen, "from": _from, "expr": _expr, "split": _split, "first": _first, "rows": _table,
}
