"""The demo loader: deterministic sample data and one demo user per role, as the bundle's demo.yaml declares.

Rows are made by engine.demo_rows (formulas and rules from engine.compute) and inserted in bulk with SQLAlchemy
Core, in one transaction: nothing is half-loaded.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.auth.users import USERS, add_user, find_user, hash_password
from engine.compute import format_series
from engine.demo_plan import Gen, ModulePlan, Plan, default_plan, find_demo, pattern_parts, read_plan, templates
from engine.demo_rows import Maker, Rejected, Tables, counted, derived, literal, make_maker
from engine.demo_values import Row, Store, World
from engine.errors import Invalid, MetadataError, NotFound, Problem
from engine.expr import compile_expr
from engine.rollups import refresh_all
from engine.runtime import Runtime
from engine.spec import Field, Module, Spec
from engine.tables import refresh_statistics

CHUNK = 2000
PROGRESS = 100_000
SIZES = ("small", "large")
Echo = Callable[[str], Any]
SOURCE_REF = re.compile(r"\bsource\.([a-z_][a-z0-9_]*)")
PARENT_REF = re.compile(r"\bparent\.([a-z_][a-z0-9_]*)")


@dataclass(frozen=True)
class DemoSummary:
    """What a demo load did: whether it ran, rows per module (child modules included), the demo users, the time."""

    loaded: bool
    size: str
    counts: Mapping[str, int]
    users: tuple[str, ...]
    seconds: float
    message: str


def departments_module(rt: Runtime) -> str | None:
    """The module app.yaml names as the department tree, if any."""
    name = rt.loaded.bundle.app.data.get("departments")
    return str(name) if name and name in rt.spec.modules else None


def demo_plan(rt: Runtime) -> Plan:
    """The bundle's demo plan (checked), or a plain default when the bundle has no demo.yaml."""
    path = find_demo(Path(rt.settings.metadata))
    if path is None:
        return default_plan(rt.spec)
    return read_plan(path, rt.spec, departments_module(rt), _shown(path))


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_demo(rt: Runtime, size: str = "small", only_if_empty: bool = True, echo: Echo = print,
              anchor: dt.date | None = None) -> DemoSummary:
    """Load the demo data (and create the demo users) into the runtime's database; a no-op, said so, when
    `only_if_empty` and records exist."""
    started = time.perf_counter()
    plan = demo_plan(rt)
    with rt.db.begin() as conn:
        held = _held(conn, rt)
        if held and only_if_empty:
            message = f"demo data not loaded: the database already holds records ({', '.join(held)})"
            echo(message)
            return DemoSummary(False, size, {}, (), 0.0, message)
        day = anchor or plan.anchor or dt.date.today()
        world = World(plan, rt.spec, day, dt.datetime.combine(day, dt.time(23, 59, 59)))  # never the clock: loads repeat
        world.salt = f"after {_highest(conn, rt)}" if held else ""  # a second load into the same database draws anew
        world.users = _users(conn, plan, echo)
        _prepare_stores(world)
        counts = _modules(conn, rt, world, size, echo)
        began = time.perf_counter()
        if refresh_all(conn, rt):
            echo(f"  {'(rollups)':<20} {'':>9}       {time.perf_counter() - began:.2f} s")
    refresh_statistics(rt.db, rt.tables)
    seconds = time.perf_counter() - started
    message = f"demo ({size}) loaded: {sum(counts.values()):,} rows in {seconds:.1f} s"
    echo(message)
    return DemoSummary(True, size, counts, tuple(u[1] for u in world.users), seconds, message)


def _held(conn: sa.Connection, rt: Runtime) -> list[str]:
    return [name for name, table in rt.tables.modules.items() if conn.execute(sa.select(table.c.id).limit(1)).first() is not None]


def _highest(conn: sa.Connection, rt: Runtime) -> int:
    return sum(int(conn.execute(sa.select(sa.func.max(t.c.id))).scalar() or 0) for t in rt.tables.modules.values())


def _users(conn: sa.Connection, plan: Plan, echo: Echo) -> list[tuple[int, str, tuple[str, ...]]]:
    hashed = hash_password(plan.password)  # one argon2 hash for every demo user: they share the password
    out, kept = [], []
    for u in plan.users:
        try:
            user = find_user(conn, u.username)
            kept.append(u.username)
        except NotFound:
            user = add_user(conn, u.username, None, u.roles, u.full_name)
            conn.execute(sa.update(USERS).where(USERS.c.id == user.id).values(password_hash=hashed))
        out.append((user.id, user.username, user.roles))
    echo(f"demo users (password: {plan.password}):")
    for u in plan.users:
        where = f"  [{u.department}]" if u.department else ""
        echo(f"  {u.username:<16} {', '.join(u.roles):<28} {u.full_name or ''}{where}")
    if kept:
        echo(f"  (already there, left unchanged: {', '.join(kept)})")
    return out


def _prepare_stores(world: World) -> None:
    keep, kids = _kept(world.plan, world.spec)
    for mp in world.plan.modules:
        world.stores[mp.name] = Store(tuple(sorted(keep.get(mp.name, ()))), tuple(sorted(kids.get(mp.name, ()))))


def _kept(plan: Plan, spec: Spec) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Fields (and child tables) of each module that later generators read: only those are kept in memory."""
    keep: dict[str, set[str]] = {}
    kids: dict[str, set[str]] = {}
    for m in spec.modules.values():
        for f in m.fields:
            if f.fetch:
                link, source = f.fetch.split(".", 1)
                keep.setdefault(m.field(link).module or "", set()).add(source)
    for mp in plan.modules:
        module = spec.module(mp.name)
        for g, owner in _walk(spec, module, mp.gens):
            _keep_gen(spec, owner, g, keep)
        if mp.each is not None:
            origin = spec.module(module.field(mp.each.field).module or "")
            wanted = set(mp.each.where.names) if mp.each.where else set()
            if mp.each.table and mp.each.where:  # over child rows, `parent` is the source record
                wanted |= set(PARENT_REF.findall(mp.each.where.source))
            wanted |= {m for g, _ in _walk(spec, module, mp.gens) for text in _texts(g) for m in SOURCE_REF.findall(text)}
            keep.setdefault(origin.name, set()).update(n for n in wanted if n in origin.by_name and origin.field(n).stored)
            if mp.each.table:
                kids.setdefault(origin.name, set()).add(mp.each.table)
    return keep, kids


def _walk(spec: Spec, module: Module, gens: tuple[Gen, ...]) -> Iterator[tuple[Gen, Module]]:
    for g in gens:
        yield g, module
        inner = spec.module(module.field(g.field).module or "") if g.kind == "rows" else module
        yield from _walk(spec, inner, g.parts)


def _texts(g: Gen) -> list[str]:
    out = [v for v in g.args.values() if isinstance(v, str)]
    out += [v for v in (g.args.get("match") or {}).values() if isinstance(v, str)]
    if g.kind == "pattern":
        out += list(templates(g.args["pattern"])[0])
    return out + ([g.when.source] if g.when else [])


def _keep_gen(spec: Spec, module: Module, g: Gen, keep: dict[str, set[str]]) -> None:
    def add(link: str, name: str) -> None:
        f = module.by_name.get(link)
        if f is not None and f.type == "link":
            keep.setdefault(f.module or "", set()).add(name)

    if g.kind == "from":
        add(*g.args["from"].split(".", 1))
    elif g.kind == "pattern":
        for template in templates(g.args["pattern"])[0]:
            for kind, token in pattern_parts(template):
                if kind == "token" and token[1]:
                    add(token[0], token[1][0])
    elif g.kind == "link":
        target = spec.module(g.args["link"])
        names = set(compile_expr(g.args["where"]).names) if g.args.get("where") else set()
        names |= set(g.args.get("match") or {})
        keep.setdefault(target.name, set()).update(n for n in names if n in target.by_name and target.field(n).stored)


def _modules(conn: sa.Connection, rt: Runtime, world: World, size: str, echo: Echo) -> dict[str, int]:
    counts: dict[str, int] = {}
    counters = Counters(conn, rt)
    departments = departments_module(rt)
    for mp in world.plan.modules:
        began = time.perf_counter()
        made = _module(conn, rt, world, mp, size, counters, echo)
        counts.update({k: counts.get(k, 0) + v for k, v in made.items()})
        detail = ", ".join(f"{k} {v:,}" for k, v in made.items() if k != mp.name)
        echo(f"  {mp.name:<20} {made.get(mp.name, 0):>9,} rows{f' ({detail})' if detail else ''}  {time.perf_counter() - began:.2f} s")
        if mp.name == departments:
            _place_users(conn, rt, world, departments)
    counters.save()
    return counts


def _module(conn: sa.Connection, rt: Runtime, world: World, mp: ModulePlan, size: str, counters: Counters,
            echo: Echo) -> dict[str, int]:
    module = rt.spec.module(mp.name)
    mk = make_maker(world, module, mp)
    table = rt.tables[mp.name]
    for name, seen in mk.rules.unique.items():  # loading into a database that holds records: stay unique
        seen.update(v for (v,) in conn.execute(sa.select(table.c[name]).where(table.c[name].is_not(None))))
    if mp.rows is not None:
        rows = literal(mk, lambda f, v: _resolve(conn, rt, world, f, v))
    elif mp.each is not None:
        rows = derived(mk)
    else:
        rows = counted(mk, mp.count(size))
    made = {mp.name: 0, **{t.module or "": 0 for t in module.tables}}
    batch: list[tuple[Row, Tables]] = []
    chunk = 1 if mp.rows is not None else CHUNK
    for item in _guarded(mk, rows):
        batch.append(item)
        if len(batch) >= chunk:
            _flush(conn, rt, world, module, batch, counters, made)
            batch = []
            if made[mp.name] % PROGRESS == 0:
                echo(f"  {mp.name:<20} {made[mp.name]:>9,} rows…")
    _flush(conn, rt, world, module, batch, counters, made)
    return made


def _guarded(mk: Maker, rows: Iterator[tuple[Row, Tables]]) -> Iterator[tuple[Row, Tables]]:
    try:
        yield from rows
    except Rejected as exc:
        first = next(iter(exc.errors))
        line = mk.lines.get(first.split(".")[0], mk.plan.line)
        problems = "; ".join(f"{k}: {v}" for k, v in exc.errors.items())
        raise MetadataError([Problem(mk.world.plan.file, line, f"modules.{mk.plan.name}",
                                     f"generated {mk.plan.name} rows keep breaking its rules ({problems}); change the generators")]) from None


def _resolve(conn: sa.Connection, rt: Runtime, world: World, f: Field, value: Any) -> Any:
    """A literal row's link (by id or by the target's title) or user (by user name)."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if f.type == "user":
        found = next((uid for uid, name, _ in world.users if name == value), None)
        if found is None:
            raise Invalid(f"{world.plan.file}: no demo user '{value}' for {f.name}")
        return found
    target = rt.spec.module(f.module or "")
    table = rt.tables[target.name]
    found = conn.execute(sa.select(table.c.id).where(table.c[target.title_field] == str(value)).order_by(table.c.id).limit(1)).scalar()
    if found is None:
        raise Invalid(f"{world.plan.file}: no {target.name} titled '{value}' for {f.name} (list it before this row)")
    return found


def _flush(conn: sa.Connection, rt: Runtime, world: World, module: Module, batch: list[tuple[Row, Tables]],
           counters: Counters, made: dict[str, int]) -> None:
    if not batch:
        return
    names = [f.name for f in module.stored_fields if f.name != "id"]
    autonumbers = [f for f in module.fields if f.type == "autonumber" and f.format]
    table = rt.tables[module.name]
    start = counters.take_ids(table, len(batch))
    ids = list(range(start, start + len(batch)))
    rows = []
    for record_id, (r, _) in zip(ids, batch, strict=True):
        values = r.values
        stamp = min(values.get("created_at") or world.start, world.now)
        owner = values.get("owner")
        values.update(id=record_id, created_at=stamp, updated_at=stamp, created_by=owner, updated_by=owner, version=1)
        for f in autonumbers:
            values[f.name] = counters.next(str(f.format), stamp.date())
        rows.append({"id": record_id, **{n: values.get(n) for n in names}})
    conn.execute(sa.insert(table), rows)
    for f in module.tables:
        _children(conn, rt, f, ids, batch, made)
    made[module.name] += len(rows)
    world.stores[module.name].add(ids, rows, [t for _, t in batch])


def _children(conn: sa.Connection, rt: Runtime, f: Field, ids: list[int], batch: list[tuple[Row, Tables]], made: dict[str, int]) -> None:
    child = rt.spec.module(f.module or "")
    names = [c.name for c in child.stored_fields if c.name not in ("id", "parent_id", "idx")]
    rows = []
    for parent_id, (r, tables) in zip(ids, batch, strict=True):
        system = {"owner": r.values.get("owner"), "created_at": r.values["created_at"], "updated_at": r.values["created_at"],
                  "created_by": r.values.get("owner"), "updated_by": r.values.get("owner"), "version": 1}
        for idx, item in enumerate(tables.get(f.name, [])):
            rows.append({"parent_id": parent_id, "idx": idx, **{n: item.get(n) for n in names}, **system})
    if rows:
        conn.execute(sa.insert(rt.tables[child.name]), rows)
    made[child.name] += len(rows)


def _place_users(conn: sa.Connection, rt: Runtime, world: World, departments: str) -> None:
    module = rt.spec.module(departments)
    table = rt.tables[departments]
    for u in world.plan.users:
        if u.department is None:
            continue
        found = conn.execute(sa.select(table.c.id).where(table.c[module.title_field] == u.department).limit(1)).scalar()
        if found is None:
            raise Invalid(f"{world.plan.file}: no {departments} titled '{u.department}' for user {u.username}")
        conn.execute(sa.update(USERS).where(USERS.c.username == u.username, USERS.c.department_id.is_(None)).values(department_id=found))


def _shape(key: str) -> tuple[str, int, str]:
    """A series key cut around its counter: (text before, digits, text after), as format_series fills it."""
    start = key.find("{#")
    if start < 0:
        return key, 0, ""
    end = key.index("}", start)
    return key[:start], end - start - 1, key[end + 1:]


class Counters:
    """Auto-number series continued from the database and saved back, so later creates carry on the series."""

    def __init__(self, conn: sa.Connection, rt: Runtime) -> None:
        self.conn = conn
        self.table = rt.tables.metadata.tables["loom_counter"]
        self.values: dict[str, int] = {}
        self.stored: dict[str, int] = {}
        self.ids: dict[str, int] = {}
        self.keys: dict[tuple[str, dt.date], str] = {}
        self.shapes: dict[str, tuple[str, int, str]] = {}
        self.tables = rt.tables

    def next(self, pattern: str, day: dt.date) -> str:
        """The next code of the series `pattern` for a record created on `day` (as records.create numbers it)."""
        if (pattern, day) not in self.keys:
            self.keys[(pattern, day)] = format_series(pattern, day, 0)[0]
        key = self.keys[(pattern, day)]
        if key not in self.values:
            found = self.conn.execute(sa.select(self.table.c.value).where(self.table.c.series == key)).scalar()
            self.stored[key] = self.values[key] = int(found or 0)
            self.shapes[key] = _shape(key)
        self.values[key] += 1
        head, width, tail = self.shapes[key]
        return f"{head}{str(self.values[key]).zfill(width)}{tail}"

    def take_ids(self, table: sa.Table, count: int) -> int:
        """The first of `count` free ids of a module table. Ids are given explicitly, so one executemany inserts a
        batch on every database (a concurrent insert into the same table makes the load fail and roll back whole)."""
        if table.name not in self.ids:
            self.ids[table.name] = int(self.conn.execute(sa.select(sa.func.max(table.c.id))).scalar() or 0) + 1
        first = self.ids[table.name]
        self.ids[table.name] += count
        return first

    def save(self) -> None:
        """Write the counters that moved, and move PostgreSQL's id sequences past the ids given."""
        for key, value in self.values.items():
            if value == self.stored[key]:
                continue
            done = self.conn.execute(sa.update(self.table).where(self.table.c.series == key).values(value=value))
            if done.rowcount == 0:
                self.conn.execute(sa.insert(self.table).values(series=key, value=value))
        if self.conn.dialect.name == "postgresql":
            for name, following in self.ids.items():
                sequence = sa.func.pg_get_serial_sequence(name, "id")
                self.conn.execute(sa.select(sa.func.setval(sequence, following - 1)).where(sequence.is_not(None)))
