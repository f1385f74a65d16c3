"""The demo plan: metadata/demo.yaml read, checked (JSON Schema, then cross references) and parsed once."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from engine.errors import MetadataError, Problem
from engine.expr import Expr, compile_expr
from engine.schema import schema
from engine.spec import Spec
from engine.yamlfile import Document, load_file

DEMO_FILES = ("demo.yaml", "demo.yml", "demo.json")
KINDS = ("value", "choice", "pattern", "number", "date", "link", "users", "from", "expr", "split", "first", "rows")
DEFAULT_COUNT = 20
TOKEN = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)(?::([^{}]*))?\}")


@dataclass(frozen=True)
class Gen:
    """One field's generator as declared: its kind, its arguments, modifiers and where it is written."""

    field: str
    kind: str
    args: Mapping[str, Any]
    line: int
    path: str
    chance: float | None = None
    when: Expr | None = None
    parts: tuple[Gen, ...] = ()


@dataclass(frozen=True)
class Each:
    """Derived rows: one per record (or child row) of the module a link field points at."""

    field: str
    table: str | None = None
    where: Expr | None = None
    chance: float = 1.0
    per: tuple[int, int] = (1, 1)


@dataclass(frozen=True)
class ModulePlan:
    """How one module is filled: a count, literal rows, or one row per source record; and its generators."""

    name: str
    line: int
    counts: tuple[tuple[str, int], ...] = ()
    rows: tuple[Mapping[str, Any], ...] | None = None
    each: Each | None = None
    draws: tuple[tuple[str, str], ...] = ()
    gens: tuple[Gen, ...] = ()

    def count(self, size: str) -> int:
        """Rows to generate at `size` (a size not listed uses 'small')."""
        table = dict(self.counts)
        return table.get(size, table.get("small", DEFAULT_COUNT))


@dataclass(frozen=True)
class Pool:
    """A word pool: items and optional relative weights."""

    items: tuple[Any, ...]
    weights: tuple[float, ...] | None = None


@dataclass(frozen=True)
class DemoUser:
    """One demo user: role users are named after their role."""

    username: str
    roles: tuple[str, ...]
    full_name: str | None = None
    department: str | None = None


@dataclass(frozen=True)
class Plan:
    """The whole demo declaration."""

    file: str
    seed: int = 1
    anchor: dt.date | None = None
    pools: Mapping[str, Pool] | None = None
    users: tuple[DemoUser, ...] = ()
    password: str = "demo"
    modules: tuple[ModulePlan, ...] = ()

    def module(self, name: str) -> ModulePlan | None:
        """The plan of one module, if it is listed."""
        return next((m for m in self.modules if m.name == name), None)


def find_demo(root: Path, depth: int = 0) -> Path | None:
    """The bundle's demo file, or the one of the bundle it extends."""
    for name in DEMO_FILES:
        if (root / name).is_file():
            return root / name
    app = next((root / n for n in ("app.yaml", "app.yml", "app.json") if (root / n).is_file()), None)
    parent = load_file(app).data.get("extends") if app is not None and depth < 8 else None
    return find_demo((root / str(parent)).resolve(), depth + 1) if isinstance(parent, str) else None


def plain(data: Any) -> Any:
    """YAML dates as ISO text, so the schema and the field parsers see what the author typed."""
    if isinstance(data, dict):
        return {k: plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [plain(v) for v in data]
    if isinstance(data, (dt.date, dt.datetime)):
        return data.isoformat()
    return data


def read_plan(path: Path, spec: Spec, departments: str | None, shown_as: str | None = None) -> Plan:
    """Load demo.yaml, check it against its schema and the bundle; MetadataError lists every problem."""
    from engine.demo_checks import check_plan

    doc = load_file(path, shown_as)
    doc.data = plain(doc.data if doc.data is not None else {})
    problems = [Problem(doc.file, doc.line("" if p == "(root)" else p), p, m) for p, m in schema_problems(doc.data)]
    if not problems:
        problems = [Problem(doc.file, doc.line(p), p, m) for p, m in check_plan(doc.data, spec, departments)]
    if problems:
        raise MetadataError(sorted(set(problems), key=lambda p: (p.line, p.path)))
    return build_plan(doc, spec)


def schema_problems(data: Any) -> list[tuple[str, str]]:
    """(path, message) per JSON Schema violation of demo.yaml, each narrowed to its most telling cause."""
    out = []
    for err in Draft202012Validator(schema("demo")).iter_errors(data):
        leaf = best_match([err])
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in leaf.absolute_path).lstrip(".") or "(root)"
        out.append((path, _message(leaf)))
    return out


def _message(err: Any) -> str:
    if err.validator == "additionalProperties":
        return f"{err.message} (allowed: {', '.join(sorted(err.schema.get('properties', {})))})"
    if err.validator == "oneOf":
        kinds = [str(s.get("description", s.get("type"))).rstrip(".") for s in err.validator_value]
        return f"{err.message} (expected: {', or '.join(k[:1].lower() + k[1:] for k in kinds)})"
    return str(err.message)


def build_plan(doc: Document, spec: Spec) -> Plan:
    """The Plan of a checked document."""
    data: dict[str, Any] = doc.data
    pools = {name: _pool(raw) for name, raw in (data.get("pools") or {}).items()}
    users = data.get("users") or {}
    anchor = dt.date.fromisoformat(data["anchor"]) if data.get("anchor") else None
    modules = tuple(_module(doc, name, raw or {}) for name, raw in (data.get("modules") or {}).items())
    return Plan(doc.file, int(data.get("seed", 1)), anchor, pools, tuple(_users(spec, users)), str(users.get("password", "demo")), modules)


def _pool(raw: Any) -> Pool:
    if isinstance(raw, dict):
        return Pool(tuple(raw), tuple(float(w) for w in raw.values()))
    return Pool(tuple(raw))


def _users(spec: Spec, raw: Mapping[str, Any]) -> Iterator[DemoUser]:
    per_role = raw.get("roles") or {}
    for role in spec.app.roles:
        extra = per_role.get(role.name) or {}
        yield DemoUser(role.name, (role.name,), extra.get("full_name") or role.label("en"), extra.get("department"))
    for staff in raw.get("staff") or []:
        yield DemoUser(staff["username"], tuple(staff.get("roles") or ()), staff.get("full_name"), staff.get("department"))


def _module(doc: Document, name: str, raw: Mapping[str, Any]) -> ModulePlan:
    path = f"modules.{name}"
    count = raw.get("count", DEFAULT_COUNT)
    counts = tuple(count.items()) if isinstance(count, dict) else (("small", int(count)),)
    each = raw.get("each")
    return ModulePlan(
        name=name, line=doc.line(path), counts=counts,
        rows=tuple(raw["rows"]) if "rows" in raw else None,
        each=Each(each["field"], each.get("table"), _expr(each.get("where")), float(each.get("chance", 1)),
                  tuple(each.get("per", (1, 1)))) if each else None,
        draws=tuple((raw.get("draw") or {}).items()),
        gens=tuple(build_gen(doc, f"{path}.fields.{f}", f, g) for f, g in (raw.get("fields") or {}).items()),
    )


def _expr(source: Any) -> Expr | None:
    return compile_expr(source) if isinstance(source, str) else None


def gen_kind(raw: Mapping[str, Any]) -> list[str]:
    """The generator kinds named in one generator map (exactly one is valid)."""
    return [k for k in KINDS if k in raw]


def build_gen(doc: Document, path: str, name: str, raw: Any) -> Gen:
    """One Gen from its (checked) declaration; a scalar is a constant."""
    if not isinstance(raw, dict):
        return Gen(name, "value", {"value": raw}, doc.line(path), path)
    kind = gen_kind(raw)[0]
    parts: tuple[Gen, ...] = ()
    if kind == "first":
        parts = tuple(build_gen(doc, f"{path}.first[{i}]", name, g) for i, g in enumerate(raw["first"]))
    elif kind == "rows":
        parts = tuple(build_gen(doc, f"{path}.fields.{f}", f, g) for f, g in (raw.get("fields") or {}).items())
    chance = raw.get("chance")
    return Gen(name, kind, {k: v for k, v in raw.items() if k not in ("chance", "when", "fields", "first")}, doc.line(path), path,
               float(chance) if chance is not None else None, _expr(raw.get("when")), parts)


def pattern_parts(template: str) -> list[tuple[str, Any]]:
    """A pattern as parts: ('text', s), ('digit', None) or ('token', (head, keys, format))."""
    parts: list[tuple[str, Any]] = []
    pos = 0
    for m in TOKEN.finditer(template):
        parts += _literal(template[pos:m.start()])
        head, *keys = m.group(1).split(".")
        parts.append(("token", (head, tuple(keys), m.group(2) or "")))
        pos = m.end()
    return parts + _literal(template[pos:])


def _literal(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for i, chunk in enumerate(text.split("#")):
        if i:
            out.append(("digit", None))
        if chunk:
            out.append(("text", chunk))
    return out


def templates(raw: Any) -> tuple[tuple[str, ...], tuple[float, ...] | None]:
    """The templates of a `pattern` and their weights (None: equal chances)."""
    if isinstance(raw, str):
        return (raw,), None
    if isinstance(raw, dict):
        return tuple(raw), tuple(float(w) for w in raw.values())
    return tuple(raw), None


def default_plan(spec: Spec) -> Plan:
    """The plan of a bundle without demo.yaml: every top-level module, linked-to modules first, rows from the field types."""
    order: list[str] = []
    pending = sorted(n for n, m in spec.modules.items() if not m.child)
    while pending:
        ready = next((n for n in pending if all(f.module not in pending or f.module == n
                                                for f in spec.module(n).fields if f.type == "link")), pending[0])
        order.append(ready)
        pending.remove(ready)
    users = tuple(DemoUser(r.name, (r.name,), r.label("en")) for r in spec.app.roles)
    return Plan("(default demo plan)", users=users, modules=tuple(ModulePlan(n, 1) for n in order))
