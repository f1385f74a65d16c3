"""Rows of one module for the demo: declared generators, values from the field types, child tables, then the
module's own formulas and rules (engine.compute) — a row that breaks a rule is drawn again."""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine.compute import check_record, compute_formulas, scope_of
from engine.demo_memo import condition_view, formula_view, memo_module, memoized
from engine.demo_plan import Gen, ModulePlan, Pool
from engine.demo_types import type_value
from engine.demo_values import (
    HISTORY_DAYS,
    GenError,
    Row,
    Value,
    World,
    coerce,
    compile_value,
    floats,
    moment,
    pick,
    sorted_fractions,
    split_amount,
    spread,
    weighted,
)
from engine.expr import Expr, ExprError, compile_expr
from engine.spec import Field, Module

TRIES = 25
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
Tables = dict[str, list[dict[str, Any]]]
Resolve = Callable[[Field, Any], Any]


class Rejected(ValueError):
    """A generated row breaks the module's rules (or a generator failed); `errors` says which and why."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = dict(errors)


@dataclass
class Rules:
    """What makes a row valid once its generators ran: fetched values, visibility, required fields, formulas, checks."""

    module: Module
    fills: dict[str, Value]
    fetch: list[tuple[Field, str, str]]
    unique: dict[str, set[Any]] = field(default_factory=dict)
    conditional: tuple[Field, ...] = ()
    formulas: Module | None = None
    conditions: Module | None = None


@dataclass
class TableGen:
    """Child rows of one table field."""

    field: Field
    low: int
    high: int
    steps: list[tuple[Field, Value]]
    splits: list[tuple[Field, Expr]]
    rules: Rules
    chance: float | None = None
    when: Expr | None = None
    refresh: bool = False


@dataclass
class Maker:
    """Everything needed to make rows of one module."""

    plan: ModulePlan
    module: Module
    world: World
    rng: random.Random
    steps: list[tuple[Field, Value] | TableGen]
    draws: list[tuple[str, Pool]]
    rules: Rules
    created: Gen | None = None
    lines: dict[str, int] = field(default_factory=dict)


def make_maker(world: World, module: Module, plan: ModulePlan) -> Maker:
    """Compile a module's generators (declared, then from the field types) once."""
    rng = world.rng("module", module.name)
    declared = {g.field: g for g in plan.gens}
    literal = plan.rows is not None
    created = declared.get("created_at") or Gen("created_at", "date", {"date": [-HISTORY_DAYS, 0]}, plan.line, f"modules.{plan.name}")
    simple = created.kind == "date" and not ({"after", "until"} & set(created.args)) and created.when is None and created.chance is None
    stream = created if simple and plan.rows is None and plan.each is None else None
    steps: list[tuple[Field, Value] | TableGen] = []
    if "owner" not in declared:
        steps.append((module.field("owner"), _owner(world, module, rng)))
    if stream is None and "created_at" not in declared:
        start = world.start
        steps.append((module.field("created_at"), (lambda r: start) if literal else compile_value(created, module.field("created_at"),
                                                                                                   module, world, rng)))
    steps += _unmentioned(world, module, rng, declared, literal, late=False)
    for g in plan.gens:
        f = module.field(g.field)
        if stream is None or g.field != "created_at":
            steps.append(_table(world, module, f, g, rng) if f.type == "table" else (f, compile_value(g, f, module, world, rng)))
    steps += _unmentioned(world, module, rng, declared, literal, late=True)
    _mark_refresh(module, steps, declared)
    pools = world.plan.pools or {}
    return Maker(plan, module, world, rng, steps, [(d, pools[p]) for d, p in plan.draws], _rules(world, module, rng), stream,
                 {g.field: g.line for g in plan.gens})


def _mark_refresh(module: Module, steps: list[tuple[Field, Value] | TableGen], declared: Mapping[str, Gen]) -> None:
    """Recompute the formulas after a table when a later generator reads one (a discount from the lines' subtotal)."""
    formulas = {f.name for f in module.fields if f.type == "formula"}
    reads = [_words(declared[s.field.name] if isinstance(s, TableGen) else declared.get(s[0].name)) & formulas for s in steps]
    for i, step in enumerate(steps):
        if isinstance(step, TableGen):
            step.refresh = any(reads[i + 1:])


def _words(g: Gen | None) -> set[str]:
    if g is None:
        return set()
    texts = [v for v in g.args.values() if isinstance(v, str)] + ([g.when.source] if g.when else [])
    words = {w for t in texts for w in WORD.findall(t)}
    return words.union(*(_words(p) for p in g.parts))


def _owner(world: World, module: Module, rng: random.Random) -> Value:
    roles = {role for role, rule in module.permissions if rule.scope("create") != "none"}
    ids = [uid for uid, _, rs in world.users if roles & set(rs)] or [uid for uid, _, _ in world.users]
    return weighted(ids, [1.0] * len(ids), rng)


def _unmentioned(world: World, module: Module, rng: random.Random, declared: Mapping[str, Gen], literal: bool,
                 late: bool) -> list[tuple[Field, Value] | TableGen]:
    out: list[tuple[Field, Value] | TableGen] = []
    for f in module.fields:
        if f.name in declared or f.system or (f.type == "user" and f.default == "me") != late:
            continue
        make = type_value(world, module, f, rng, force=False, literal=literal)
        if make is not None:
            out.append((f, make))
    return out


def _rules(world: World, module: Module, rng: random.Random) -> Rules:
    fills = {}
    for f in module.fields:
        if (f.required or f.required_if is not None) and not f.system:
            make = type_value(world, module, f, rng, force=True)
            if make is not None:
                fills[f.name] = make
    fetch = [(f, *_split_path(str(f.fetch))) for f in module.fields if f.fetch]
    unique: dict[str, set[Any]] = {f.name: set() for f in module.stored_fields if f.unique and f.type != "autonumber"}
    memo = memo_module(module)
    conditional = tuple(f for f in memo.fields if f.visible_if is not None or (f.name in fills and not f.required))
    return Rules(memo, fills, fetch, unique, conditional, formula_view(memo), condition_view(memo))


def _split_path(path: str) -> tuple[str, str]:
    link, _, name = path.partition(".")
    return link, name


def _table(world: World, module: Module, f: Field, g: Gen, rng: random.Random) -> TableGen:
    child = world.spec.module(f.module or "")
    declared = {p.field: p for p in g.parts}
    steps: list[tuple[Field, Value]] = []
    for cf in child.fields:
        if cf.name not in declared and not cf.system:
            make = type_value(world, child, cf, rng, force=False)
            if make is not None:
                steps.append((cf, make))
    splits = [(child.field(p.field), memoized(compile_expr(p.args["split"]))) for p in g.parts if p.kind == "split"]
    steps += [(child.field(p.field), compile_value(p, child.field(p.field), child, world, rng)) for p in g.parts]
    low, high = g.args["rows"]
    return TableGen(f, int(low), int(high), steps, splits, _rules(world, child, rng), g.chance, g.when)


def finish(rules: Rules, r: Row, tables: Tables, world: World) -> None:
    """Fetch linked values, clear hidden fields, fill required ones, compute formulas, check every rule."""
    module, values = rules.module, r.values
    _fetch(rules, values, world)
    _settle(rules, r, tables)
    extra = {"me": values.get("owner"), **tables}
    errors = compute_formulas(rules.formulas or module, values, extra)
    errors.update(check_record(module, values | tables, "en", extra))
    for name, seen in rules.unique.items():
        if values.get(name) is not None and values[name] in seen:
            errors[name] = f"{values[name]!r} is already used"
    if errors:
        raise Rejected(errors)
    for name, seen in rules.unique.items():
        if values.get(name) is not None:
            seen.add(values[name])


def _fetch(rules: Rules, values: dict[str, Any], world: World) -> None:
    for f, link, source in rules.fetch:
        store = world.stores.get(rules.module.field(link).module or "")
        if values.get(f.name) is None and store is not None and source in store.cols:
            values[f.name] = store.value(values.get(link), source)


def _settle(rules: Rules, r: Row, tables: Tables) -> None:
    """Empty the fields the row's state hides; fill the required ones still empty (from their type)."""
    module, values = rules.module, r.values
    if not rules.conditional and not any(values.get(n) is None for n in rules.fills):
        return
    scope = scope_of(rules.conditions or module, values, tables)
    for f in rules.conditional:
        if f.visible_if is not None and values.get(f.name) is not None and not _true(f.visible_if, scope):
            values[f.name] = None
    for name, make in rules.fills.items():
        f = module.field(name)
        if values.get(name) is None and (f.required or _true(f.required_if, scope)) and (f.visible_if is None or _true(f.visible_if, scope)):
            values[name] = make(r)


def _true(expr: Expr | None, scope: Mapping[str, Any]) -> bool:
    if expr is None:
        return False
    try:
        return bool(expr(scope))
    except ExprError:
        return False


def make_row(mk: Maker, r: Row) -> Tables:
    """Fill `r.values` and return the child rows; Rejected when the row breaks a rule."""
    for name, pool in mk.draws:
        r.draws[name] = pick(mk.rng, pool)
    tables: Tables = {}
    try:
        for step in mk.steps:
            if isinstance(step, TableGen):
                if step.splits:
                    compute_formulas(mk.rules.formulas or mk.module, r.values, tables)
                    r.cached = None
                tables[step.field.name] = _children(mk, step, r)
                if step.refresh:
                    compute_formulas(mk.rules.formulas or mk.module, r.values, tables)
                    r.cached = None
            elif step[0].name not in r.fixed:
                r.set(step[0].name, step[1](r))
    except GenError as exc:
        raise Rejected({"__gen__": str(exc)}) from None
    finish(mk.rules, r, tables, mk.world)
    return tables


def _children(mk: Maker, tg: TableGen, r: Row) -> list[dict[str, Any]]:
    count = mk.rng.randint(tg.low, tg.high)
    if (tg.when is not None and not _true(tg.when, r.scope())) or (tg.chance is not None and mk.rng.random() >= tg.chance):
        return []
    probe = Row(mk.world, {}, 0, mk.rng, r.draws, parent=r.values, source=r.source, row=r.row)
    splits = {}
    for f, expr in tg.splits:
        try:
            total = Decimal(str(expr(probe.scope()) or 0))
        except (ExprError, ArithmeticError) as exc:
            raise GenError(str(exc)) from None
        splits[f.name] = split_amount(mk.rng, total, count, f.scale if f.scale is not None else 2)
    rows = []
    for i in range(count):
        rows.append(_child(mk, tg, r, i + 1, splits))
    return rows


def _child(mk: Maker, tg: TableGen, r: Row, n: int, splits: dict[str, list[Decimal]]) -> dict[str, Any]:
    last: Rejected | None = None
    for _ in range(TRIES):
        child = Row(mk.world, {}, n, mk.rng, r.draws, parent=r.values, source=r.source, row=r.row, splits=splits)
        for f, make in tg.steps:
            child.set(f.name, make(child))
        try:
            finish(tg.rules, child, {}, mk.world)
        except Rejected as exc:
            last = exc
            continue
        return child.values
    raise Rejected({f"{tg.field.name}.{k}": v for k, v in (last.errors if last else {}).items()})


def attempt(mk: Maker, fresh: Callable[[], Row]) -> tuple[Row, Tables]:
    """Make one row, drawing again while it breaks a rule (TRIES times at most)."""
    last: Rejected | None = None
    for _ in range(TRIES):
        r = fresh()
        try:
            return r, make_row(mk, r)
        except Rejected as exc:
            last = exc
    assert last is not None
    raise last


def counted(mk: Maker, count: int) -> Iterator[tuple[Row, Tables]]:
    """`count` generated rows, in order of creation when created_at is a plain date range."""
    created = _created(mk, count)
    for n in range(1, count + 1):
        stamp = next(created) if created is not None else None

        def fresh(n: int = n, stamp: Any = stamp) -> Row:
            given = {"created_at": stamp} if stamp is not None else {}
            return Row(mk.world, given, n, rng=mk.rng, fixed=frozenset(given))
        yield attempt(mk, fresh)


def _created(mk: Maker, count: int) -> Iterator[dt.datetime] | None:
    gen = mk.created
    if gen is None:
        return None
    low, high = (float(x) for x in gen.args["date"])
    f = mk.module.field("created_at")
    return (moment(mk.world, f, None, spread(u, low, high, gen.args), True)
            for u in sorted_fractions(mk.world.rng("created", mk.module.name), count))


def derived(mk: Maker) -> Iterator[tuple[Row, Tables]]:
    """One row per source record (or child row of a source record) that passes `each.where` and `each.chance`."""
    each = mk.plan.each
    assert each is not None
    store = mk.world.stores[mk.module.field(each.field).module or ""]
    n = 0
    for i, record_id in enumerate(store.ids):
        source = store.record(i)
        items = [floats(c) for c in store.kids[each.table][i]] if each.table else [None]
        for item in items:
            scope = {**(item or source), "parent": source} if item is not None else source
            if each.where is not None and not _true(each.where, scope):
                continue
            if mk.rng.random() >= each.chance:
                continue
            for k in range(1, mk.rng.randint(*each.per) + 1):
                n += 1

                def fresh(n: int = n, k: int = k, source: dict[str, Any] = source, item: Any = item, record_id: int = record_id) -> Row:
                    return Row(mk.world, {each.field: record_id}, n, source=source, row=item, rng=mk.rng, fixed=frozenset({each.field}), k=k)
                yield attempt(mk, fresh)


def literal(mk: Maker, resolve: Resolve) -> Iterator[tuple[Row, Tables]]:
    """The plan's literal rows (links by title, users by name), completed by the declared generators and defaults."""
    for n, raw in enumerate(mk.plan.rows or (), start=1):
        given = {k: resolve(mk.module.field(k), v) if mk.module.field(k).type in ("link", "user") else coerce(mk.module.field(k), v)
                 for k, v in raw.items()}

        def fresh(n: int = n, given: dict[str, Any] = given) -> Row:
            return Row(mk.world, dict(given), n, rng=mk.rng, fixed=frozenset(given))
        yield attempt(mk, fresh)
