"""Schema evolution: a plan of typed operations (from Alembic's comparison) → show → apply; purge drops data.

Nothing is lost: a removed field keeps its column (hidden), a declared rename moves the data, a type change,
a shrink or a new required field is checked against the existing rows first and the whole plan is refused,
with the offending ids, when a value would not fit. Only `purge` drops a column or a table.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations

from engine.compute import default_for
from engine.conversions import CHECKED, SAFE, all_rows, empty_rows, family, misfits, widens
from engine.errors import LoomError, MigrationRefused, NotFound
from engine.migration_ops import (
    ORDER,
    AddColumn,
    AddIndex,
    AlterNullable,
    AlterType,
    CreateTable,
    DropIndex,
    HideColumn,
    HideTable,
    Operation,
    Purge,
    RenameColumn,
    SetRequired,
)
from engine.runtime import Runtime
from engine.spec import Field, Spec
from engine.systables import add_system_tables

LOOM_COLUMNS = frozenset({"id", "owner", "created_at", "version"})
_SYSTEM = sa.MetaData()
add_system_tables(_SYSTEM)
SCHEMA_STATE = _SYSTEM.tables["loom_schema"]
LOCK_KEY = 0x4C4F4F4D


def _quiet_type_compare(_ctx: Any, _inspected: Any, _meta: Any, inspected: sa.types.TypeEngine[Any],
                        meta: sa.types.TypeEngine[Any]) -> bool:
    """Differ only when the value family, length, precision or scale differ (no dialect naming noise)."""
    return family(inspected) != family(meta)


@dataclass(frozen=True)
class Plan:
    """The typed operations that bring the database to the metadata, and why it would be refused (if so)."""

    ops: tuple[Operation, ...] = ()
    refusals: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """Whether nothing would run (hidden columns and tables are only reported)."""
        return all(isinstance(op, (HideColumn, HideTable)) for op in self.ops)

    @property
    def hidden(self) -> tuple[Operation, ...]:
        """The hidden columns and tables (kept, nothing runs)."""
        return tuple(op for op in self.ops if isinstance(op, (HideColumn, HideTable)))


@contextmanager
def transaction(rt: Runtime, conn: sa.Connection | None = None) -> Iterator[sa.Connection]:
    """One transaction for a whole migration (DDL included, also on SQLite), serialized between processes."""
    if conn is not None:
        _begin_sqlite(conn)
        yield conn
        return
    with rt.db.begin() as own:
        _begin_sqlite(own)
        if own.dialect.name == "postgresql":
            own.execute(sa.select(sa.func.pg_advisory_xact_lock(LOCK_KEY)))
        yield own


def _begin_sqlite(conn: sa.Connection) -> None:
    # pysqlite opens transactions lazily and only for DML; without an explicit BEGIN each DDL statement commits alone.
    if conn.dialect.name == "sqlite" and not conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _diffs(conn: sa.Connection, metadata: sa.MetaData, missing: set[str]) -> list[tuple[Any, ...]]:
    """Alembic's comparison of the tables both sides have (and of the database's extra ones); `missing` are created whole."""

    def include(obj: Any, name: str | None, kind: str, reflected: bool, _other: Any) -> bool:
        return not (kind == "table" and not reflected and name in missing)

    ctx = MigrationContext.configure(conn, opts={"compare_type": _quiet_type_compare, "compare_server_default": False,
                                                 "include_object": include})
    flat: list[tuple[Any, ...]] = []
    for diff in compare_metadata(ctx, metadata):
        flat.extend(diff if isinstance(diff, list) else [diff])
    return flat


@dataclass(frozen=True)
class _Renames:
    """Declared renames that apply to this database: (table, old) → new field."""

    moves: dict[tuple[str, str], Field]

    @staticmethod
    def find(spec: Spec, inspector: sa.Inspector) -> _Renames:
        moves: dict[tuple[str, str], Field] = {}
        for module in spec.modules.values():
            declared = [f for f in module.stored_fields if f.renamed_from]
            if not declared or not inspector.has_table(module.name):
                continue
            live = {c["name"] for c in inspector.get_columns(module.name)}
            for f in declared:
                if f.renamed_from in live and f.name not in live and f.renamed_from not in module.by_name:
                    moves[(module.name, str(f.renamed_from))] = f
        return _Renames(moves)

    def new_names(self) -> set[tuple[str, str]]:
        return {(table, f.name) for (table, _old), f in self.moves.items()}

    def old_name(self, table: str, name: str) -> str:
        return next((old for (t, old), f in self.moves.items() if t == table and f.name == name), name)


def _translate(diff: tuple[Any, ...], rt: Runtime, renames: _Renames, created: set[str], reflected: Any) -> list[Operation]:
    kind = diff[0]
    if kind == "add_table":
        return [CreateTable(diff[1].name, rt.tables.metadata.tables[diff[1].name])]
    if kind == "remove_table":
        return [HideTable(diff[1].name)] if {c.name for c in diff[1].columns} >= LOOM_COLUMNS else []
    if kind == "add_column":
        return [] if (diff[2], diff[3].name) in renames.new_names() else [_add_column(rt, diff[2], diff[3])]
    if kind == "remove_column":
        if (diff[2], diff[3].name) in renames.moves:
            return _moved(diff[2], diff[3], renames, rt, reflected)
        return [HideColumn(diff[2], diff[3].name)]
    if kind == "modify_type":
        return [_alter_type(diff[2], diff[3], diff[5], diff[6], reflected)]
    if kind == "modify_nullable":
        return [AlterNullable(diff[2], diff[3], bool(diff[6]), diff[4].get("existing_type"), reflected(diff[2]),
                              kind=SAFE if diff[6] else CHECKED)]
    if kind == "add_index" and diff[1].table.name not in created:
        ix = diff[1]
        return [AddIndex(ix.table.name, ix.name, tuple(c.name for c in ix.columns), bool(ix.unique))]
    if kind == "remove_index" and diff[1].table.name in rt.tables.metadata.tables and diff[1].name.startswith(f"ix_{diff[1].table.name}_"):
        return [DropIndex(diff[1].table.name, diff[1].name)]
    return []


def _alter_type(table: str, column: str, old: sa.types.TypeEngine[Any], new: sa.types.TypeEngine[Any], reflected: Any) -> AlterType:
    return AlterType(table, column, old, new, reflected(table), kind=SAFE if widens(old, new) else CHECKED)


def _moved(table: str, old: sa.Column[Any], renames: _Renames, rt: Runtime, reflected: Any) -> list[Operation]:
    f = renames.moves[(table, old.name)]
    target = rt.tables[table].c[f.name]
    ops: list[Operation] = [RenameColumn(table, old.name, f.name, old.type)]
    if family(old.type) != family(target.type):
        ops.append(_alter_type(table, old.name, old.type, target.type, reflected))
    return ops


def _add_column(rt: Runtime, table: str, column: sa.Column[Any]) -> AddColumn:
    module = rt.spec.modules.get(table)
    f = module.by_name.get(column.name) if module else None
    if f is None or not f.required:
        return AddColumn(table, column.name, column)
    fill = default_for(f, None) if f.default not in (None, "me") else None
    return AddColumn(table, column.name, column, required=True, backfill=fill, kind=SAFE if fill is not None else CHECKED)


def _newly_required(rt: Runtime, before: Spec | None, inspector: sa.Inspector, renames: _Renames) -> list[Operation]:
    if before is None:
        return []
    out: list[Operation] = []
    for module in rt.spec.modules.values():
        old_module = before.modules.get(module.name)
        if old_module is None or not inspector.has_table(module.name):
            continue
        live = {c["name"] for c in inspector.get_columns(module.name)}
        for f in module.stored_fields:
            old_name = renames.old_name(module.name, f.name)
            was = old_module.by_name.get(f.name) or old_module.by_name.get(old_name)
            if f.required and old_name in live and (was is None or not was.required):  # None: a hidden column restored
                out.append(SetRequired(module.name, old_name))
    return out


def _render(dialect: sa.Dialect, ops: list[Operation]) -> list[Operation]:
    """Each operation with the SQL it will run, rendered by Alembic in offline (as_sql) mode for this dialect."""
    shown: list[Operation] = []
    shadows: dict[str, sa.Table] = {}
    for op in ops:
        if isinstance(op, (AlterType, AlterNullable)) and op.source is not None:
            op = replace(op, source=shadows.get(op.table, op.source))
        buf = io.StringIO()
        op.run(Operations(MigrationContext.configure(dialect=dialect, opts={"as_sql": True, "output_buffer": buf})))
        shown.append(replace(op, sql=tuple(s.strip() + ";" for s in buf.getvalue().split(";\n\n") if s.strip())))
        if isinstance(op, AlterType) and op.source is not None:
            shadow = op.source.to_metadata(sa.MetaData())
            shadow.c[op.column].type = op.new_type
            shadows[op.table] = shadow
    return shown


def plan(rt: Runtime, conn: sa.Connection | None = None, before: Spec | None = None, sql: bool = True) -> Plan:
    """Compare the metadata's tables with the live database: the typed operations, their SQL, and any refusal.

    `before` (the spec in force until now) lets the plan see fields that become required; `sql=False` skips
    rendering the SQL (for a plan that is applied at once, never shown).
    """
    with rt.db.connect() if conn is None else _borrowed(conn) as c:
        inspector = sa.inspect(c)
        renames = _Renames.find(rt.spec, inspector)
        created = set(rt.tables.metadata.tables) - set(inspector.get_table_names())
        diffs = [("add_table", rt.tables.metadata.tables[name]) for name in sorted(created)]
        diffs += _diffs(c, rt.tables.metadata, created)
        sqlite = c.dialect.name == "sqlite"

        def reflected(table: str) -> sa.Table | None:
            return sa.Table(table, sa.MetaData(), autoload_with=c) if sqlite else None

        ops = [op for d in diffs for op in _translate(d, rt, renames, created, reflected)]
        ops += _newly_required(rt, before, inspector, renames)
        ops.sort(key=lambda op: ORDER.index(type(op)))
        ops = _render(c.dialect, ops) if sql else ops
        refusals = tuple(r for op in ops if (r := refusal(c, op)))
    return Plan(tuple(ops), refusals)


@contextmanager
def _borrowed(conn: sa.Connection) -> Iterator[sa.Connection]:
    yield conn


def refusal(conn: sa.Connection, op: Operation) -> str | None:
    """Why `op` cannot run on the rows the database holds now (None: it can)."""
    if isinstance(op, AlterType) and op.kind == CHECKED:
        return misfits(conn, op.table, op.column, op.old_type, op.new_type)
    if isinstance(op, SetRequired) or (isinstance(op, AlterNullable) and not op.nullable):
        return empty_rows(conn, op.table, op.column)
    if isinstance(op, AddColumn) and op.required and op.backfill is None:
        return all_rows(conn, op.table, op.column)
    return None


def _refuse(reasons: list[str]) -> None:
    if reasons:
        raise MigrationRefused("migration refused, nothing was changed: " + "; ".join(reasons),
                               {r.split(":", 1)[0]: r.split(":", 1)[1].strip() for r in reasons})


def _run(conn: sa.Connection, the_plan: Plan) -> None:
    if conn.dialect.name == "postgresql":
        for table in sorted({op.table for op in the_plan.ops if op.kind != SAFE and not isinstance(op, (Purge, HideTable))}):
            conn.exec_driver_sql(f"LOCK TABLE {conn.dialect.identifier_preparer.quote(table)} IN SHARE ROW EXCLUSIVE MODE")
    _refuse([r for op in the_plan.ops if (r := refusal(conn, op))])
    ops = Operations(MigrationContext.configure(conn))
    for op in the_plan.ops:
        op.run(ops)


def apply(rt: Runtime, the_plan: Plan, conn: sa.Connection | None = None) -> None:
    """Run the plan in one transaction (the caller's, when given); every check runs first, against the rows of now."""
    with transaction(rt, conn) as c:
        _run(c, the_plan)


def ensure_schema(rt: Runtime) -> Plan:
    """Bring the database up to the metadata at start: plan and apply, refused if a checked change does not fit.
    A database last brought up to these very tables (same fingerprint) is not compared again: the comparison
    reflects every table, 0.2 s of a 1.6 s start with the CRM bundle. `loom migrate --plan` always compares."""
    with transaction(rt) as conn:
        mark = fingerprint(rt, conn.dialect)
        if _stored_fingerprint(conn) == mark:
            return Plan()
        current = plan(rt, conn, sql=False)
        _refuse(list(current.refusals))
        if not current.empty:
            _run(conn, current)
        _store_fingerprint(conn, mark)
    return current


def fingerprint(rt: Runtime, dialect: sa.Dialect) -> str:
    """What the metadata asks of the database, as one hash: the DDL of every table and index in this dialect."""
    digest = hashlib.sha256(f"loom-schema-1 {dialect.name}".encode())
    for table in rt.tables.metadata.sorted_tables:
        digest.update(str(sa.schema.CreateTable(table).compile(dialect=dialect)).encode())
        for index in sorted(table.indexes, key=lambda ix: ix.name or ""):
            digest.update(str(sa.schema.CreateIndex(index).compile(dialect=dialect)).encode())
    return digest.hexdigest()


def _stored_fingerprint(conn: sa.Connection) -> str | None:
    if not sa.inspect(conn).has_table(SCHEMA_STATE.name):
        return None
    return conn.execute(sa.select(SCHEMA_STATE.c.fingerprint).where(SCHEMA_STATE.c.id == 1)).scalar_one_or_none()


def _store_fingerprint(conn: sa.Connection, mark: str) -> None:
    conn.execute(sa.delete(SCHEMA_STATE).where(SCHEMA_STATE.c.id == 1))
    conn.execute(sa.insert(SCHEMA_STATE).values(id=1, fingerprint=mark, at=dt.datetime.now(dt.UTC).replace(tzinfo=None)))


def purge_plan(rt: Runtime, target: str, conn: sa.Connection | None = None) -> Plan:
    """The plan dropping a hidden column (`module.field`) or a hidden table (`module`); refused for anything in the metadata."""
    table, _, column = target.partition(".")
    with rt.db.connect() if conn is None else _borrowed(conn) as c:
        inspector = sa.inspect(c)
        if not inspector.has_table(table):
            raise NotFound(f"no table '{table}' in the database")
        live = {col["name"] for col in inspector.get_columns(table)}
        module = rt.spec.modules.get(table)
        if column:
            if module is not None and column in module.by_name:
                raise LoomError(f"{target} is still in the metadata: remove the field first, then purge it")
            if column not in live:
                raise NotFound(f"no column '{column}' in table '{table}'")
            op: Operation = Purge(table, column, sa.Table(table, sa.MetaData(), autoload_with=c) if c.dialect.name == "sqlite" else None)
        else:
            if module is not None or table in rt.tables.metadata.tables or not live >= LOOM_COLUMNS:
                raise LoomError(f"table '{table}' is not a hidden module table: only a module removed from the metadata can be purged")
            op = Purge(table)
        return Plan(tuple(_render(c.dialect, [op])))


def purge(rt: Runtime, target: str) -> Plan:
    """Drop a hidden column or table with its data, in one transaction; returns what ran."""
    with transaction(rt) as conn:
        done = purge_plan(rt, target, conn)
        _run(conn, done)
    return done
