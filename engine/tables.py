"""SQLAlchemy Core tables generated from the Spec, plus Loom's own system tables."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import sqlalchemy as sa

from engine.fieldtypes import REGISTRY
from engine.spec import Field, Module, Spec

NAME_LIMIT = 60
MAX_PREBUILT = 4_096  # statements kept per runtime
T = TypeVar("T")


@dataclass(frozen=True)
class Tables:
    """The MetaData of one runtime and its table per module."""

    metadata: sa.MetaData
    modules: dict[str, sa.Table]
    statements: dict[tuple[str, ...], Any] = field(default_factory=dict, compare=False, repr=False)

    def __getitem__(self, module: str) -> sa.Table:
        return self.modules[module]

    def prebuilt(self, key: tuple[Any, ...], make: Callable[[], T]) -> T:
        """The statement called `key`, built on first use and then reused with bound parameters: building a statement
        and its cache key costs more than running a small one (a create checks, inserts and reads several)."""
        found = self.statements.get(key)
        if found is None:
            if len(self.statements) >= MAX_PREBUILT:  # list pages key statements by their filters: keep the number bounded
                self.statements.clear()
            found = self.statements[key] = make()
        return cast(T, found)


def _column(f: Field) -> sa.Column[object] | None:
    if f.name == "id":
        return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True)
    kind = REGISTRY[f.type].column(f)
    if kind is None:
        return None
    return sa.Column(f.name, kind, nullable=f.name != "version")


def _index_name(table: str, *cols: str) -> str:
    name = "ix_" + table + "_" + "_".join(cols)
    if len(name) > NAME_LIMIT:
        name = name[: NAME_LIMIT - 9] + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return name


def sort_columns(module: Module) -> list[str]:
    """Columns the list screen can sort on (the layout's columns and default sort)."""
    names = [module.layout.list.sort.lstrip("-"), *module.layout.list.columns]
    return [n for n in dict.fromkeys(names) if n in module.by_name and module.field(n).stored and n != "id"]


def _indexes(module: Module) -> list[sa.Index]:
    out: dict[str, sa.Index] = {}
    for name in sort_columns(module):
        out[_index_name(module.name, name, "id")] = sa.Index(_index_name(module.name, name, "id"), name, "id")
    default_sort = module.layout.list.sort.lstrip("-")
    for name in module.layout.list.filters:
        f = module.field(name)
        if f.stored and f.type in ("select", "link", "user", "boolean") and default_sort in module.by_name and default_sort != name:
            key = _index_name(module.name, name, default_sort, "id")
            out[key] = sa.Index(key, name, default_sort, "id")
    covered = {ix.expressions[0].name if hasattr(ix.expressions[0], "name") else str(ix.expressions[0]) for ix in out.values()}
    wanted = [f.name for f in module.stored_fields
              if f.index or f.type == "link" or (f.type == "user" and f.name not in ("created_by", "updated_by"))]
    wanted += [n for n in module.layout.list.filters if module.field(n).stored]
    wanted = [n for n in wanted if n not in covered]
    for name in dict.fromkeys(wanted):
        if name == "id":
            continue
        key = _index_name(module.name, name)
        out[key] = sa.Index(key, name)
    for f in module.stored_fields:
        if f.unique:
            key = _index_name(module.name, f.name) + "_uq"
            out[key] = sa.Index(key, f.name, unique=True)
    return list(out.values())


def module_table(module: Module, metadata: sa.MetaData) -> sa.Table:
    """The table of one module."""
    columns = [c for c in (_column(f) for f in module.fields) if c is not None]
    return sa.Table(module.name, metadata, *columns, *_indexes(module))


def build_tables(spec: Spec, metadata: sa.MetaData | None = None) -> Tables:
    """Tables for every module of the spec (system tables are added by `engine.systables`)."""
    from engine.systables import add_system_tables

    metadata = metadata or sa.MetaData()
    add_system_tables(metadata)
    return Tables(metadata, {name: module_table(m, metadata) for name, m in spec.modules.items()})


def refresh_statistics(db: sa.Engine, tables: Tables) -> None:
    """Give the query planner row statistics so it picks the index that serves a list's sort.

    SQLite: a bounded ANALYZE (analysis_limit keeps it fast on big tables). PostgreSQL: ANALYZE the
    module tables that were never analyzed (autovacuum keeps them fresh after that).
    """
    with db.begin() as conn:
        if db.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA analysis_limit=1000")
            conn.exec_driver_sql("ANALYZE")
            return
        if db.dialect.name != "postgresql":
            return
        stale = conn.execute(sa.text(
            "SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NULL AND last_autoanalyze IS NULL AND n_live_tup > 0"))
        names = {r[0] for r in stale} & set(tables.modules)
        for name in sorted(names):
            conn.exec_driver_sql(f'ANALYZE "{tables.modules[name].name}"')
