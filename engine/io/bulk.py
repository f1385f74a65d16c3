"""Creating many records at once with the records service's rules: the same defaults, fetches, formulas,
validation, unique checks, autonumbers and audit rows as `records.create`, in a few statements per batch.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from engine import audit
from engine.access import Access
from engine.compute import check_record, compute_formulas, default_for, format_series
from engine.records import fetch_values, now, require
from engine.runtime import Runtime
from engine.spec import Module

Values = dict[str, Any]


@dataclass(slots=True)
class Draft:
    """One record to create: parsed values, parsed child rows per table, the names the file gave."""

    values: Values
    rows: dict[str, list[Values]] = field(default_factory=dict)
    given: set[str] = field(default_factory=set)
    errors: dict[str, str] = field(default_factory=dict)
    id: int | None = None


def create_many(conn: sa.Connection, rt: Runtime, access: Access, module: Module, drafts: Sequence[Draft],
                known_new: frozenset[str] = frozenset()) -> None:
    """Validate every draft, then insert the valid ones; sets `errors` or `id` on each draft. `known_new` names unique
    fields whose given values the caller has just looked up and found in no stored record (then only the batch is
    checked for them)."""
    require(access, module, "create")
    me, stamp = access.actor.user_id, now()
    for d in drafts:
        _prepare(d, module, me, stamp)
    _fetch_many(conn, rt, module, list(drafts))
    for d in drafts:
        if _child_rows(conn, rt, access, module, d):
            _validate(module, d, me, access.actor.locale)
    _unique(conn, rt, module, drafts, known_new)
    valid = [d for d in drafts if not d.errors]
    if not valid:
        return
    _numbers(conn, rt, module, valid)
    _insert(conn, rt, module, valid, me, stamp)


def _prepare(d: Draft, module: Module, me: int | None, stamp: dt.datetime) -> None:
    for f in module.defaulted_fields:
        if f.name not in d.values:
            d.values[f.name] = default_for(f, me)
    d.values.setdefault("owner", me)
    d.values.update(created_at=stamp, updated_at=stamp, created_by=me, updated_by=me, version=1)


def _fetch_many(conn: sa.Connection, rt: Runtime, module: Module, drafts: list[Draft]) -> None:
    """`fetch` fields for many drafts: one query per fetch field (as `records.fetch_values` does per record)."""
    for f in module.fields:
        if not f.fetch:
            continue
        link_name, source = f.fetch.split(".", 1)
        todo = [d for d in drafts if f.name not in d.given and d.values.get(link_name) is not None]
        if not todo:
            continue
        table = rt.tables[module.field(link_name).module or ""]
        ids = {d.values[link_name] for d in todo}
        found = {r[0]: r[1] for r in conn.execute(sa.select(table.c.id, table.c[source]).where(table.c.id.in_(ids)))}
        for d in todo:
            d.values[f.name] = found.get(d.values[link_name])


def _child_rows(conn: sa.Connection, rt: Runtime, access: Access, module: Module, d: Draft) -> bool:
    """Fetch, compute and check child rows; False when one is invalid (the parent is then not checked)."""
    problems_found = False
    for fname, rows in d.rows.items():
        child = rt.spec.module(module.field(fname).module or "")
        fetches = any(f.fetch for f in child.fields)
        for i, values in enumerate(rows):
            if fetches:
                fetch_values(conn, rt, child, values, set(values), None)
            compute_formulas(child, values)
            problems = check_record(child, values, access.actor.locale)
            d.errors.update({f"{fname}[{i}].{k}": v for k, v in problems.items()})
            problems_found = problems_found or bool(problems)
    return not problems_found


def _validate(module: Module, d: Draft, me: int | None, locale: str) -> None:
    """Formulas and rules; fields that did not parse keep their parse error (as `records.create` reports)."""
    parse_errors = dict(d.errors)
    rows = {f.name: d.rows.get(f.name, []) for f in module.tables}
    extra = {"me": me, **rows}
    errors = compute_formulas(module, d.values, extra)
    checked = {k: v for k, v in d.values.items() if k not in parse_errors} if parse_errors else d.values
    errors.update(check_record(module, checked | rows if rows else checked, locale, extra))
    d.errors = {k: v for k, v in errors.items() if k not in parse_errors} | parse_errors


def _unique(conn: sa.Connection, rt: Runtime, module: Module, drafts: Sequence[Draft], known_new: frozenset[str]) -> None:
    """Unique fields: taken in the database, or by an earlier valid draft of the same batch."""
    table = rt.tables[module.name]
    for f in module.stored_fields:
        if not f.unique or f.type == "autonumber":
            continue
        wanted = {d.values[f.name] for d in drafts if not d.errors and d.values.get(f.name) is not None
                  and not (f.name in known_new and f.name in d.given)}
        taken = set(conn.execute(sa.select(table.c[f.name]).where(table.c[f.name].in_(wanted))).scalars()) if wanted else set()
        for d in drafts:
            value = d.values.get(f.name)
            if d.errors or value is None:
                continue
            if value in taken:
                d.errors[f.name] = "already used by another record"
            taken.add(value)


def _numbers(conn: sa.Connection, rt: Runtime, module: Module, drafts: list[Draft]) -> None:
    """Autonumbers: reserve one block of the series for the batch, in draft order."""
    counters = rt.tables.metadata.tables["loom_counter"]
    for f in module.fields:
        if f.type != "autonumber" or not f.format:
            continue
        key, _ = format_series(f.format, dt.date.today(), 0)
        done = conn.execute(sa.update(counters).where(counters.c.series == key).values(value=counters.c.value + len(drafts)))
        if done.rowcount == 0:
            conn.execute(sa.insert(counters).values(series=key, value=len(drafts)))
        last = conn.execute(sa.select(counters.c.value).where(counters.c.series == key)).scalar_one()
        for n, d in enumerate(drafts, start=last - len(drafts) + 1):
            d.values[f.name] = format_series(f.format, dt.date.today(), n)[1]


def _insert(conn: sa.Connection, rt: Runtime, module: Module, drafts: list[Draft], me: int | None, stamp: dt.datetime) -> None:
    table = rt.tables[module.name]
    columns = [c.name for c in table.columns if c.name != "id" and any(c.name in d.values for d in drafts)]
    ids = insert_rows(conn, table, columns, [d.values for d in drafts])
    for d, new_id in zip(drafts, ids, strict=True):
        d.id = new_id
    _insert_rows(conn, rt, module, drafts, me, stamp)
    log = rt.tables.metadata.tables["loom_audit"]
    insert_plain(conn, log, [audit.create_entry(module, d.id, d.values, d.rows, me, stamp) for d in drafts])


def insert_rows(conn: sa.Connection, table: sa.Table, columns: list[str], rows: list[Values]) -> list[int]:
    """Insert rows (their `columns`; a missing one is NULL) and return their ids in order, with ids chosen first so
    that the rows go in as one plain executemany (RETURNING many rows in order costs a statement per row on SQLite)."""
    if conn.dialect.name == "postgresql":
        sequence = sa.func.pg_get_serial_sequence(table.name, "id")
        ids = list(conn.execute(sa.select(sa.func.nextval(sequence)).select_from(sa.func.generate_series(1, len(rows)))).scalars())
        start = 0
    elif conn.dialect.name == "sqlite":
        first = conn.execute(sa.insert(table).values({c: rows[0].get(c) for c in columns})).inserted_primary_key
        assert first is not None
        ids = list(range(first[0], first[0] + len(rows)))  # the write lock is ours now: the next ids are free
        start = 1
    else:
        params = [{c: r.get(c) for c in columns} for r in rows]
        return list(conn.execute(sa.insert(table).returning(table.c.id, sort_by_parameter_order=True), params).scalars())
    names = [c.name for c in table.columns if c.name == "id" or c.name in columns]  # the statement's order
    head, tail = names[:names.index("id")], names[names.index("id") + 1:]
    insert_values(conn, table, names, [[*map(r.get, head), i, *map(r.get, tail)] for i, r in zip(ids[start:], rows[start:], strict=True)])
    return ids


def insert_plain(conn: sa.Connection, table: sa.Table, rows: list[Values]) -> None:
    """Core's executemany without its per-row parameter work (see `insert_values`), for rows as dicts."""
    given = {k for r in rows for k in r}
    names = [c.name for c in table.columns if c.name in given]  # the statement's order: no reordering
    get = operator.itemgetter(*names)
    insert_values(conn, table, names, [list(get(r)) if len(r) == len(names) else [r.get(n) for n in names] for r in rows])


def insert_values(conn: sa.Connection, table: sa.Table, names: list[str], rows: list[list[Any]]) -> None:
    """Rows of values for the columns `names`, in one statement compiled once, each column's bind processor applied
    once per distinct value (an import writes the same few select keys and dates again and again); COPY on PostgreSQL."""
    if not rows:
        return
    compiled = sa.insert(table).compile(dialect=conn.dialect, column_keys=names)
    order = list(compiled.positiontup or []) if compiled.positional else names
    if order != names:
        at = [names.index(n) for n in order]
        rows = [[r[i] for i in at] for r in rows]
    for i, name in enumerate(order):
        process = table.c[name].type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        if process is not None:
            convert(rows, i, process)
    if conn.dialect.driver == "psycopg":
        _copy(conn, table, order, rows)
        return
    params: list[Any] = [tuple(v) for v in rows] if compiled.positional else [dict(zip(order, v, strict=True)) for v in rows]
    conn.exec_driver_sql(str(compiled), params)


def _copy(conn: sa.Connection, table: sa.Table, names: list[str], rows: list[list[Any]]) -> None:
    """PostgreSQL through psycopg: one COPY stream (psycopg's executemany sends a statement per row: about 5× slower)."""
    quote = conn.dialect.identifier_preparer
    sql = f"COPY {quote.format_table(table)} ({', '.join(quote.quote(n) for n in names)}) FROM STDIN"
    driver: Any = conn.connection.driver_connection
    with driver.cursor() as cursor, cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


def convert(rows: list[list[Any]], i: int, process: Callable[[Any], Any]) -> None:
    """Apply a column's bind or result processor to column `i` of `rows`, once per distinct value."""
    memo: dict[Any, Any] = {}
    for row in rows:
        value = row[i]
        if value is None:
            continue
        try:
            row[i] = memo[value]
        except KeyError:
            row[i] = memo[value] = process(value)
        except TypeError:  # unhashable
            row[i] = process(value)


def _insert_rows(conn: sa.Connection, rt: Runtime, module: Module, drafts: list[Draft], me: int | None, stamp: dt.datetime) -> None:
    for f in module.tables:
        table = rt.tables[f.module or ""]
        stamps = {"owner": me, "created_at": stamp, "updated_at": stamp, "created_by": me, "updated_by": me, "version": 1}
        params = [{k: v for k, v in row.items() if k != "id" or v is not None} | {"parent_id": d.id, "idx": idx} | stamps
                  for d in drafts for idx, row in enumerate(d.rows.get(f.name, []))]
        if params:
            insert_plain(conn, table, params)


