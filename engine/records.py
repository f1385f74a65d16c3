"""The records service: the one path every screen, the API, import, workflows and reports write through."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import sqlalchemy as sa

from engine import audit
from engine.access import Access
from engine.compute import check_record, compute_formulas, default_for, format_series, parse_input
from engine.errors import Conflict, Forbidden, Invalid, NotFound
from engine.runtime import Runtime
from engine.spec import Field, Module

Record = dict[str, Any]
T = TypeVar("T")


def now() -> dt.datetime:
    """The current UTC time, without microseconds (stored naive)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


@contextmanager
def transaction(rt: Runtime, conn: sa.Connection | None = None, reads: bool = False) -> Iterator[sa.Connection]:
    """Use the caller's transaction, or open one (`reads`: the request's connection for reads, see `Runtime.reading`)."""
    if conn is not None:
        yield conn
        return
    with rt.reading() if reads else rt.writing() as own:
        yield own


def module_of(rt: Runtime, name: str) -> Module:
    """The module called `name`; a 404 when unknown."""
    module = rt.spec.modules.get(name)
    if module is None:
        raise NotFound(f"unknown module '{name}'")
    return module


def require(access: Access, module: Module, action: str) -> None:
    """A 403 unless the actor may take `action` on the module's records."""
    if not access.can(module, action):
        raise Forbidden(f"you may not {action} {module.name} records")


def _scoped(rt: Runtime, access: Access, module: Module, action: str) -> list[sa.ColumnElement[bool]]:
    cond = access.row_filter(module, rt.tables[module.name], action)
    return [] if cond is None else [cond]


def scoped_statement(rt: Runtime, access: Access, module: Module, action: str, key: tuple[Any, ...],
                     make: Callable[[sa.ColumnElement[bool] | None], T]) -> T:
    """`make(the actor's row filter for action)`: built once per `key` and scope (`Access.scope_key`: actors with
    the same scope share it), or every time for an access without a key."""
    table = rt.tables[module.name]
    scope = access.scope_key(module, action)
    if scope is None:
        return make(access.row_filter(module, table, action))
    return rt.tables.prebuilt((*key, "scoped", module.name, action, *scope), lambda: make(access.row_filter(module, table, action)))


def _by_id(rt: Runtime, table: sa.Table) -> sa.Select[Any]:
    return rt.tables.prebuilt(("row", table.name), lambda: sa.select(table).where(table.c.id == sa.bindparam("record_id")))


def _row(conn: sa.Connection, rt: Runtime, access: Access, module: Module, record_id: Any, action: str,
         lock: bool = False) -> Record:
    table = rt.tables[module.name]
    if not isinstance(record_id, int) or isinstance(record_id, bool):
        try:
            record_id = int(str(record_id))
        except ValueError:
            raise NotFound(f"{module.name} {record_id} not found") from None
    if not 0 < record_id < 2**63:  # beyond any id the database can hold
        raise NotFound(f"{module.name} {record_id} not found")

    def make(scope: sa.ColumnElement[bool] | None) -> sa.Select[Any]:
        return _by_id(rt, table) if scope is None else _by_id(rt, table).where(scope)

    stmt = scoped_statement(rt, access, module, action, ("row",), make)
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = conn.execute(stmt, {"record_id": record_id}).mappings().first()
    if row is None:
        raise NotFound(f"{module.name} {record_id} not found")
    return dict(row)


def children(conn: sa.Connection, rt: Runtime, module: Module, ids: list[int]) -> dict[str, dict[int, list[Record]]]:
    """Child rows of each table field, per parent id, in row order."""
    out: dict[str, dict[int, list[Record]]] = {}
    for f in module.tables:
        assert f.module is not None
        table = rt.tables[f.module]
        stmt = rt.tables.prebuilt(("children", f.module), partial(_children_of, table))
        rows = conn.execute(stmt, {"ids": ids})
        per: dict[int, list[Record]] = {i: [] for i in ids}
        for r in rows.mappings():
            per[r["parent_id"]].append(dict(r))
        out[f.name] = per
    return out


def _strip(record: Record, readable: frozenset[str]) -> Record:
    return {k: v for k, v in record.items() if k in readable}


def get(rt: Runtime, access: Access, name: str, record_id: Any, conn: sa.Connection | None = None) -> Record:
    """One record with its child rows, only the fields the actor may read; 404 when out of scope."""
    module = module_of(rt, name)
    require(access, module, "read")
    with transaction(rt, conn, reads=True) as c:
        row = _row(c, rt, access, module, record_id, "read")
        for fname, per in children(c, rt, module, [row["id"]]).items():
            row[fname] = per[row["id"]]
    out = _strip(row, access.readable(module))
    for f in module.tables:
        if f.name in out:
            child = rt.spec.module(f.module or "")
            out[f.name] = [_strip(r, access.readable(child)) for r in out[f.name]]
    return out


def _allowed(access: Access, module: Module) -> set[str]:
    return {n for n in access.writable(module) if n in module.by_name and (module.field(n).writable or n == "owner")}


def _parse(module: Module, raw: Mapping[str, Any], access: Access) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    allowed = _allowed(access, module)
    tables = {f.name for f in module.tables if f.name in allowed}
    plain = {k: v for k, v in raw.items() if k not in tables}
    values, errors = parse_input(module, plain, allowed)
    if any(module.by_name.get(k) is None or k not in allowed for k in errors):
        raise Invalid("some fields cannot be written", errors)
    return values, {k: raw[k] for k in tables if k in raw}, errors


def _parse_rows(rt: Runtime, access: Access, f: Field, raw: Any, existing: list[Record] | None = None) -> list[Record]:
    """Parse child rows; a row carrying the id of an existing row keeps the values the user did not send
    (fields they may not read or write are never lost)."""
    child = rt.spec.module(f.module or "")
    if not isinstance(raw, list):
        raise Invalid("some values are not valid", {f.name: "expected a list of rows"})
    before = {r["id"]: r for r in existing or []}
    kept = [c.name for c in child.fields if c.stored and not c.system]
    rows, errors = [], {}
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            errors[f"{f.name}[{i}]"] = "expected an object"
            continue
        row_id = item.get("id")
        parsed, problems = parse_input(child, {k: v for k, v in item.items() if k != "id"}, _allowed(access, child) - {"owner"})
        old = before.get(int(row_id)) if row_id not in (None, "") and str(row_id).isdigit() else None
        values = ({k: old.get(k) for k in kept} if old else {}) | parsed
        compute_formulas(child, values)
        problems.update(check_record(child, values, access.actor.locale))
        errors.update({f"{f.name}[{i}].{k}": v for k, v in problems.items()})
        rows.append(values | ({"id": int(row_id)} if row_id not in (None, "") and str(row_id).isdigit() else {}))
    if errors:
        raise Invalid("some rows are not valid", errors)
    return rows


def _exists(table: sa.Table) -> sa.Select[Any]:
    return sa.select(table.c.id).where(table.c.id == sa.bindparam("id"))


def _taken(table: sa.Table, name: str) -> sa.Select[Any]:
    """Another record holding a value (`own` is the record's own id, 0 for a new one)."""
    return sa.select(table.c.id).where(table.c[name] == sa.bindparam("value"), table.c.id != sa.bindparam("own")).limit(1)


def _children_of(table: sa.Table) -> sa.Select[Any]:
    return sa.select(table).where(table.c.parent_id.in_(sa.bindparam("ids", expanding=True))).order_by(table.c.parent_id, table.c.idx)


def _check_links(conn: sa.Connection, rt: Runtime, module: Module, values: Mapping[str, Any], me: int | None) -> dict[str, str]:
    """Every link names a stored record; a user field naming the acting user needs no lookup (the session has just
    read that user: on PostgreSQL a record saved with its default owner saves a round trip)."""
    errors = {}
    for f in module.fields:
        value = values.get(f.name)
        if value is None or f.type not in ("link", "user") or (f.system and f.name != "owner") or (f.type == "user" and value == me):
            continue
        table = rt.tables.metadata.tables["loom_user"] if f.type == "user" else rt.tables[f.module or ""]
        stmt = rt.tables.prebuilt(("exists", table.name), partial(_exists, table))
        if conn.execute(stmt, {"id": value}).first() is None:
            errors[f.name] = f"no {f.module or 'user'} with id {value}"
    return errors


def _check_unique(conn: sa.Connection, rt: Runtime, module: Module, values: Mapping[str, Any], own_id: int | None) -> dict[str, str]:
    table, errors = rt.tables[module.name], {}
    for f in module.stored_fields:
        if f.unique and values.get(f.name) is not None and f.type != "autonumber":
            stmt = rt.tables.prebuilt(("taken", module.name, f.name), partial(_taken, table, f.name))
            if conn.execute(stmt, {"value": values[f.name], "own": own_id or 0}).first() is not None:
                errors[f.name] = "already used by another record"
    return errors


def fetch_values(conn: sa.Connection, rt: Runtime, module: Module, values: dict[str, Any], given: set[str],
                 old: Mapping[str, Any] | None) -> None:
    """Fill `fetch` fields from the linked record: on create, or when the link changed, unless a value was given."""
    for f in module.fields:
        if not f.fetch or f.name in given:
            continue
        link_name, source = f.fetch.split(".", 1)
        target = values.get(link_name)
        if target is None or (old is not None and old.get(link_name) == target):
            continue
        link = module.field(link_name)
        table = rt.tables[link.module or ""]
        values[f.name] = conn.execute(sa.select(table.c[source]).where(table.c.id == target)).scalar()


def stamp_changes(module: Module, values: dict[str, Any], old: Mapping[str, Any] | None) -> None:
    """Set `on_change_of` fields to today (or now) on create and when the field they watch changed, unless the
    writer gave a value of their own."""
    for f in module.fields:
        if f.on_change_of is None:
            continue
        watched_changed = old is None or old.get(f.on_change_of) != values.get(f.on_change_of)
        own_value = values.get(f.name) is not None and (old is None or values.get(f.name) != old.get(f.name))
        if watched_changed and not own_value:
            values[f.name] = now() if f.type == "datetime" else dt.date.today()


def _next_number(conn: sa.Connection, rt: Runtime, pattern: str) -> str:
    counters = rt.tables.metadata.tables["loom_counter"]
    key, _ = format_series(pattern, dt.date.today(), 0)
    done = conn.execute(sa.update(counters).where(counters.c.series == key).values(value=counters.c.value + 1))
    if done.rowcount == 0:
        conn.execute(sa.insert(counters).values(series=key, value=1))
    value = conn.execute(sa.select(counters.c.value).where(counters.c.series == key)).scalar_one()
    return format_series(pattern, dt.date.today(), value)[1]


def _validate(conn: sa.Connection, rt: Runtime, access: Access, module: Module, values: dict[str, Any],
              rows: dict[str, list[Record]], own_id: int | None, parse_errors: dict[str, str], indexed: bool = False) -> None:
    """Formulas, rules, links and unique values; `indexed`: when nothing else is wrong, leave unique values to the
    unique indexes (the caller turns their refusal into the same errors, see `_refused`)."""
    extra = {"me": access.actor.user_id, **rows}
    errors = compute_formulas(module, values, extra)
    errors.update(check_record(module, {k: v for k, v in values.items() if k not in parse_errors} | rows, access.actor.locale, extra))
    errors = {k: v for k, v in errors.items() if k not in parse_errors} | parse_errors
    errors.update(_check_links(conn, rt, module, values, access.actor.user_id))
    if errors or not indexed:
        errors.update(_check_unique(conn, rt, module, values, own_id))
    if errors:
        raise Invalid("some values are not valid", errors)


def _inserted(conn: sa.Connection, rt: Runtime, table: sa.Table, values: Record) -> Record:
    """Insert a row and return it as stored: from the INSERT's RETURNING on PostgreSQL (no second round trip), read
    again by id on SQLite, where RETURNING costs more than the read (0.12 ms against 0.02 on a table with 17 indexes)."""
    if conn.dialect.name != "sqlite":
        stmt = rt.tables.prebuilt(("insert", table.name), lambda: sa.insert(table).returning(*table.c))
        return dict(conn.execute(stmt, values).mappings().one())
    key = conn.execute(rt.tables.prebuilt(("insert", table.name), lambda: sa.insert(table)), values).inserted_primary_key
    assert key is not None
    return dict(conn.execute(_by_id(rt, table), {"record_id": key[0]}).mappings().one())


def _refused(rt: Runtime, module: Module, values: Mapping[str, Any], exc: sa.exc.IntegrityError) -> Invalid:
    """A write the unique indexes refused, as the errors `_check_unique` gives (read after the rollback, so every taken
    value is named); the database's own error when no unique value is taken (another constraint refused it)."""
    with rt.reading() as conn:
        errors = _check_unique(conn, rt, module, values, None)
    if not errors:
        raise exc
    return Invalid("some values are not valid", errors)


def create(rt: Runtime, access: Access, name: str, raw: Mapping[str, Any], conn: sa.Connection | None = None) -> Record:
    """Create a record (with its child rows); returns it as the actor may read it."""
    module = module_of(rt, name)
    require(access, module, "create")
    values, raw_rows, parse_errors = _parse(module, raw, access)
    rows = {k: _parse_rows(rt, access, module.field(k), v) for k, v in raw_rows.items()}
    for f in module.defaulted_fields:
        if f.name not in values:
            values[f.name] = default_for(f, access.actor.user_id)
    values.setdefault("owner", access.actor.user_id)
    given = set(raw)
    stamp, me = now(), access.actor.user_id
    values.update(created_at=stamp, updated_at=stamp, created_by=me, updated_by=me, version=1)
    try:
        with transaction(rt, conn) as c:
            return _insert(c, rt, access, module, values, rows, raw_rows, parse_errors, given, indexed=conn is None)
    except sa.exc.IntegrityError as exc:
        if conn is not None:
            raise
        raise _refused(rt, module, values, exc) from None


def _insert(c: sa.Connection, rt: Runtime, access: Access, module: Module, values: Record, rows: dict[str, list[Record]],
            raw_rows: dict[str, Any], parse_errors: dict[str, str], given: set[str], indexed: bool) -> Record:
    """`create` inside its transaction. The row comes back from the INSERT (see `_inserted`); a module with child
    rows or rollups, or an actor with a read scope, reads it back as `get` does. With `indexed` (the create's own
    transaction), unique values are left to the unique indexes: a separate check costs a query (on PostgreSQL a round
    trip) per create."""
    fetch_values(c, rt, module, values, given, None)
    stamp_changes(module, values, None)
    for fname, items in rows.items():
        for item, source in zip(items, raw_rows[fname], strict=True):
            fetch_values(c, rt, rt.spec.module(module.field(fname).module or ""), item, set(source), None)
    _validate(c, rt, access, module, values, {f.name: rows.get(f.name, []) for f in module.tables}, None, parse_errors, indexed)
    for f in module.fields:
        if f.type == "autonumber" and f.format:
            values[f.name] = _next_number(c, rt, f.format)
    record = _inserted(c, rt, rt.tables[module.name], values)
    new_id, me, stamp = record["id"], values["created_by"], values["created_at"]
    _write_rows(c, rt, module, new_id, rows, me, stamp)
    audit.record_create(c, rt, module, new_id, values, rows, me, stamp)
    _summaries(c, rt, module, None, values | {"id": new_id})
    if module.tables or any(f.rollup for f in module.fields) or _scoped(rt, access, module, "read"):
        return get(rt, access, module.name, new_id, c)  # child rows, rollups set after the insert, or a scope to check
    require(access, module, "read")
    return _strip(record, access.readable(module))


def _summaries(conn: sa.Connection, rt: Runtime, module: Module, old: Record | None, new: Record | None) -> None:
    """Rollups over this module's records follow every write (imported here: rollups reads child rows from this module)."""
    from engine import rollups

    rollups.after_write(conn, rt, module, old, new)


def _write_rows(conn: sa.Connection, rt: Runtime, module: Module, parent_id: int, rows: dict[str, list[Record]],
                me: int | None, stamp: dt.datetime) -> None:
    for fname, items in rows.items():
        table = rt.tables[module.field(fname).module or ""]
        conn.execute(sa.delete(table).where(table.c.parent_id == parent_id))
        for idx, item in enumerate(items):
            row = {k: v for k, v in item.items() if k != "id" or v is not None} | {
                "parent_id": parent_id, "idx": idx, "owner": me, "created_at": stamp, "updated_at": stamp,
                "created_by": me, "updated_by": me, "version": 1}
            conn.execute(sa.insert(table).values(**row))


def _row_view(rows: list[Record], child: Module) -> list[Record]:
    names = [f.name for f in child.fields if not f.system]
    return [{n: r.get(n) for n in names} for r in rows]


def _rows_differ(rt: Runtime, module: Module, name: str, new: list[Record], old: list[Record]) -> bool:
    child = rt.spec.module(module.field(name).module or "")
    return _row_view(new, child) != _row_view(old, child)


def update(rt: Runtime, access: Access, name: str, record_id: Any, raw: Mapping[str, Any], version: Any,
           conn: sa.Connection | None = None) -> Record:
    """Change a record; `version` must be the one the client read, or it is a 409 conflict."""
    module = module_of(rt, name)
    require(access, module, "write")
    if "owner" in raw and not access.can(module, "assign") and "owner" not in access.writable(module):
        raise Forbidden("you may not change the owner")
    values, raw_rows, parse_errors = _parse(module, raw, access)
    with transaction(rt, conn) as c:
        old = _row(c, rt, access, module, record_id, "write", lock=True)
        try:
            expected = int(str(version))
        except ValueError:
            raise Invalid("version is required", {"version": "send the version you read"}) from None
        if old["version"] != expected:
            raise Conflict(f"this {module.label('en').lower()} was changed by someone else (version {old['version']}, you had {expected})",
                           _changed_since(c, rt, module, old["id"], expected))
        current_rows = children(c, rt, module, [old["id"]])
        rows = {k: _parse_rows(rt, access, module.field(k), v, current_rows[k][old["id"]]) for k, v in raw_rows.items()}
        for fname, items in rows.items():
            before = {r["id"]: r for r in current_rows[fname][old["id"]]}
            for item, source in zip(items, raw_rows[fname], strict=True):
                fetch_values(c, rt, rt.spec.module(module.field(fname).module or ""), item, set(source), before.get(item.get("id")))
        all_rows = {f.name: rows.get(f.name, current_rows[f.name][old["id"]]) for f in module.tables}
        new = dict(old) | values
        fetch_values(c, rt, module, new, set(raw), old)
        stamp_changes(module, new, old)
        _validate(c, rt, access, module, new, all_rows, old["id"], parse_errors)
        return _store_update(c, rt, access, module, old, new, rows, current_rows)


def _changed_since(conn: sa.Connection, rt: Runtime, module: Module, record_id: int, version: int) -> dict[str, str]:
    log = rt.tables.metadata.tables["loom_audit"]
    rows = conn.execute(sa.select(log.c.field, log.c.new).where(
        log.c.module == module.name, log.c.record_id == record_id, log.c.version > version, log.c.field.is_not(None)))
    return {r.field: f"changed by someone else to {r.new}" for r in rows}


def _store_update(conn: sa.Connection, rt: Runtime, access: Access, module: Module, old: Record, new: Record,
                  rows: dict[str, list[Record]], current_rows: dict[str, dict[int, list[Record]]]) -> Record:
    me, stamp = access.actor.user_id, now()
    changed = {k: v for k, v in new.items() if k in module.by_name and module.field(k).stored and old.get(k) != v
               and k not in ("updated_at", "updated_by", "version")}
    changed_rows = {k: v for k, v in rows.items() if _rows_differ(rt, module, k, v, current_rows[k][old["id"]])}
    if not changed and not changed_rows:
        return get(rt, access, module.name, old["id"], conn)
    table = rt.tables[module.name]
    version = old["version"] + 1
    done = conn.execute(sa.update(table).where(table.c.id == old["id"], table.c.version == old["version"])
                        .values(**changed, updated_at=stamp, updated_by=me, version=version))
    if done.rowcount != 1:
        raise Conflict(f"this {module.name} was changed by someone else; reload it")
    _write_rows(conn, rt, module, old["id"], changed_rows, me, stamp)
    audit.record_update(conn, rt, module, old, changed, {k: current_rows[k][old["id"]] for k in changed_rows}, changed_rows,
                        version, me, stamp)
    _summaries(conn, rt, module, old, new)
    return get(rt, access, module.name, old["id"], conn)


def delete(rt: Runtime, access: Access, name: str, record_id: Any, conn: sa.Connection | None = None) -> None:
    """Move a record (and its child rows) to the recycle bin."""
    module = module_of(rt, name)
    require(access, module, "delete")
    with transaction(rt, conn) as c:
        row = _row(c, rt, access, module, record_id, "delete", lock=True)
        rows = {k: per[row["id"]] for k, per in children(c, rt, module, [row["id"]]).items()}
        audit.to_recycle_bin(c, rt, module, row, rows, access.actor.user_id, now())
        for f in module.tables:
            child = rt.tables[f.module or ""]
            c.execute(sa.delete(child).where(child.c.parent_id == row["id"]))
        c.execute(sa.delete(rt.tables[name]).where(rt.tables[name].c.id == row["id"]))
        _summaries(c, rt, module, row, None)


@dataclass(frozen=True)
class Page:
    """One page of a list: rows, the cursor of the next page, and the total when asked."""

    items: list[Record]
    next_cursor: str | None
    total: int | None = None


def revert(rt: Runtime, access: Access, name: str, record_id: Any, version: int) -> Record:
    """Restore a record's values to those it had at `version` (a new version, audited like any update)."""
    from engine.audit import state_at

    module = module_of(rt, name)
    require(access, module, "write")
    with transaction(rt) as c:
        current = _row(c, rt, access, module, record_id, "write", lock=True)
        if not 1 <= version < current["version"]:
            raise Invalid("no such earlier version", {"version": f"choose a version from 1 to {current['version'] - 1}"})
        past = state_at(c, rt, module, current, version)
        writable = _allowed(access, module)
        changes: dict[str, Any] = {k: past[k] for k in writable if k in past and past[k] != current.get(k) and module.field(k).stored}
        rows = {f.name: past[f.name] for f in module.tables if f.name in writable and isinstance(past.get(f.name), list)}
        raw = {k: _as_input(module.field(k), v) for k, v in changes.items()} | rows
        return update(rt, access, name, current["id"], raw, current["version"], c)


def _as_input(f: Field, value: Any) -> Any:
    from engine.fieldtypes import to_json

    return to_json(f, value)
