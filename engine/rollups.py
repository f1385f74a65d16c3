"""Rollups: formulas that summarise linked records (a customer's payments, its won opportunities), computed in SQL.

The records service refreshes them for the records a write links to; the daily job and the demo loader refresh them
all. A formula reading a rollup (a score from the totals) is recomputed with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from engine.compute import compute_formulas
from engine.query import parse_list_query, where_clause
from engine.runtime import Runtime
from engine.spec import Field, Module, Spec

BATCH = 1000
NUMERIC = ("integer", "decimal", "currency", "percent", None)


def rollup_fields(module: Module) -> list[Field]:
    """The module's rollup formulas."""
    return [f for f in module.fields if f.rollup is not None]


def fed_by(spec: Spec, source: str) -> tuple[Module, ...]:
    """The modules holding a rollup over records of `source`."""
    return spec.rollup_targets.get(source, ())


def dependent_formulas(module: Module) -> list[str]:
    """Formulas (other than rollups) reading a rollup, directly or through other formulas."""
    reads = {f.name: f.expr.names for f in module.formula_fields if f.expr is not None}
    stale = {f.name for f in rollup_fields(module)}
    grew = True
    while grew:
        more = {name for name, names in reads.items() if names & stale} - stale
        stale |= more
        grew = bool(more)
    return sorted(stale & set(reads))


def _summary(rt: Runtime, module: Module, f: Field, table: sa.Table) -> sa.ColumnElement[Any]:
    r = f.rollup
    assert r is not None
    source = rt.spec.module(r.module)
    src = rt.tables[r.module]
    measure = sa.func.count(src.c.id) if r.measure == "count" else getattr(sa.func, r.measure)(src.c[r.field or "id"])
    query = parse_list_query(source, list(r.filter), {g.name for g in source.stored_fields})
    sub = sa.select(measure).where(src.c[r.link] == table.c.id, *where_clause(src, source, query.conditions, None)).scalar_subquery()
    value = sa.func.coalesce(sub, 0) if r.measure in ("count", "sum") else sub
    # numbers take the column's type (an average of integers); a date is left as stored (SQLite casts text to a number)
    return sa.cast(value, table.c[f.name].type) if f.result in NUMERIC else value


def refresh(conn: sa.Connection, rt: Runtime, module: Module, ids: Iterable[int] | None = None) -> None:
    """Recompute the module's rollups (of `ids`, or of every record) and the formulas that read them."""
    fields = rollup_fields(module)
    if not fields:
        return
    table = rt.tables[module.name]
    wanted = None if ids is None else sorted(set(ids))
    if wanted == []:
        return
    stmt = sa.update(table).values({f.name: _summary(rt, module, f, table) for f in fields})
    conn.execute(stmt if wanted is None else stmt.where(table.c.id.in_(wanted)))
    names = dependent_formulas(module)
    if names:
        _formulas(conn, rt, module, names, wanted)


def _formulas(conn: sa.Connection, rt: Runtime, module: Module, names: list[str], ids: list[int] | None) -> None:
    from engine.records import children

    table, last = rt.tables[module.name], 0
    stored = [table.c[f.name] for f in module.stored_fields]
    while True:
        stmt = sa.select(*stored).where(table.c.id > last).order_by(table.c.id).limit(BATCH)
        rows = [dict(r) for r in conn.execute(stmt if ids is None else stmt.where(table.c.id.in_(ids))).mappings()]
        if not rows:
            return
        kids = children(conn, rt, module, [r["id"] for r in rows]) if module.tables else {}
        params = []
        for row in rows:
            values = dict(row)
            compute_formulas(module, values, {name: per.get(row["id"], []) for name, per in kids.items()})
            if any(values.get(n) != row.get(n) for n in names):
                params.append({"_id": row["id"], **{f"_{n}": values.get(n) for n in names}})
        if params:
            conn.execute(sa.update(table).where(table.c.id == sa.bindparam("_id")).values({n: sa.bindparam(f"_{n}") for n in names}), params)
        last = rows[-1]["id"]


def after_write(conn: sa.Connection, rt: Runtime, module: Module, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> None:
    """Refresh the rollups a written record takes part in: its own (a new record starts at zero) and those of the
    records it links to before and after the write."""
    if new is not None and old is None and rollup_fields(module):
        refresh(conn, rt, module, [new["id"]])
    for target in fed_by(rt.spec, module.name):
        links = {f.rollup.link for f in rollup_fields(target) if f.rollup and f.rollup.module == module.name}
        ids = {r.get(link) for r in (old, new) if r is not None for link in links}
        refresh(conn, rt, target, [i for i in ids if isinstance(i, int)])


def refresh_all(conn: sa.Connection, rt: Runtime) -> int:
    """Recompute every rollup of every module; returns how many modules hold rollups."""
    modules = [m for m in rt.spec.modules.values() if rollup_fields(m)]
    for m in modules:
        refresh(conn, rt, m)
    return len(modules)
