"""The typed operations of a migration plan: what each changes, its kind, the SQL it runs (rendered by Alembic)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from alembic.operations import Operations

from engine.conversions import CHECKED, DESTRUCTIVE, SAFE, describe, family, using


@dataclass(frozen=True)
class CreateTable:
    """A table the database does not have yet, created with its indexes."""

    table: str
    source: sa.Table = field(compare=False, repr=False)
    sql: tuple[str, ...] = ()
    kind: str = SAFE

    @property
    def description(self) -> str:
        """What the operation does, in words."""
        return f"create table {self.table} ({len(self.source.columns)} columns, {len(self.source.indexes)} indexes)"

    def run(self, ops: Operations) -> None:
        """Emit the DDL."""
        ops.impl.create_table(self.source)


@dataclass(frozen=True)
class AddColumn:
    """A new field: a new, nullable column (a new required field is filled with its default)."""

    table: str
    column: str
    source: sa.Column[Any] = field(compare=False, repr=False)
    required: bool = False
    backfill: Any = None
    sql: tuple[str, ...] = ()
    kind: str = SAFE

    @property
    def description(self) -> str:
        """What the operation does, in words."""
        fill = f", existing rows set to {self.backfill!r}" if self.backfill is not None else ""
        return f"add column {self.table}.{self.column} {describe(self.source.type)}{fill}"

    def run(self, ops: Operations) -> None:
        """Emit the DDL (and the fill of existing rows)."""
        ops.add_column(self.table, self.source._copy())
        if self.backfill is not None:
            col = sa.column(self.column, self.source.type)
            ops.execute(sa.update(sa.table(self.table, col)).where(col.is_(None)).values({col: sa.literal(self.backfill, self.source.type)}))


@dataclass(frozen=True)
class RenameColumn:
    """A field declared with `renamed_from`: the column is renamed, its values move with it."""

    table: str
    column: str
    new_name: str
    existing_type: sa.types.TypeEngine[Any] = field(compare=False, repr=False)
    sql: tuple[str, ...] = ()
    kind: str = SAFE

    @property
    def description(self) -> str:
        """What the operation does, in words."""
        return f"rename column {self.table}.{self.column} to {self.new_name} (values kept)"

    def run(self, ops: Operations) -> None:
        """Emit the DDL."""
        ops.alter_column(self.table, self.column, new_column_name=self.new_name, existing_type=self.existing_type)


@dataclass(frozen=True)
class AlterType:
    """A column whose type, length, precision or scale changes; checked against every row unless it widens."""

    table: str
    column: str
    old_type: sa.types.TypeEngine[Any] = field(compare=False, repr=False)
    new_type: sa.types.TypeEngine[Any] = field(compare=False, repr=False)
    source: sa.Table | None = field(default=None, compare=False, repr=False)
    sql: tuple[str, ...] = ()
    kind: str = CHECKED

    @property
    def description(self) -> str:
        """What the operation does, in words."""
        return f"change {self.table}.{self.column} from {describe(self.old_type)} to {describe(self.new_type)}"

    def run(self, ops: Operations) -> None:
        """Emit the DDL: ALTER COLUMN TYPE ... USING on PostgreSQL, a table rebuild (batch mode) on SQLite."""
        if ops.impl.dialect.name != "sqlite":
            ops.alter_column(self.table, self.column, type_=self.new_type, existing_type=self.old_type,
                             postgresql_using=using(ops.impl.dialect, self.column, self.old_type, self.new_type))
            return
        source = _rebuild_source(ops, self.table, self.source)
        if family(self.new_type)[0] in ("date", "datetime"):
            source.c[self.column].type = self.new_type  # ISO text is already SQLite's date storage: copy it, no CAST
        with ops.batch_alter_table(self.table, recreate="always", copy_from=source) as batch:
            batch.alter_column(self.column, type_=self.new_type, existing_type=self.old_type)


@dataclass(frozen=True)
class AlterNullable:
    """A column whose NOT NULL differs from the metadata (Loom's own columns); tightening is checked."""

    table: str
    column: str
    nullable: bool
    existing_type: sa.types.TypeEngine[Any] = field(compare=False, repr=False)
    source: sa.Table | None = field(default=None, compare=False, repr=False)
    sql: tuple[str, ...] = ()
    kind: str = SAFE

    @property
    def description(self) -> str:
        """What the operation does, in words."""
        return f"{self.table}.{self.column}: {'allow' if self.nullable else 'forbid'} empty values"

    def run(self, ops: Operations) -> None:
        """Emit the DDL."""
        if ops.impl.dialect.name != "sqlite":
            ops.alter_column(self.table, self.column, nullable=self.nullable, existing_type=self.existing_type)
            return
        with ops.batch_alter_table(self.table, recreate="always", copy_from=_rebuild_source(ops, self.table, self.source)) as batch:
            batch.alter_column(self.column, nullable=self.nullable, existing_type=self.existing_type)


@dataclass(frozen=True)
class SetRequired:
    """A field that becomes required: checked for empty values (columns stay nullable; the record service enforces it)."""

    table: str
    column: str
    sql: tuple[str, ...] = ()
    kind: str = CHECKED

    @property
    def description(self) -> str:
        """What the operation does, in words."""
        return f"{self.table}.{self.column} becomes required (checked: no empty values)"

    def run(self, ops: Operations) -> None:
        """Nothing to emit: the check is the operation."""


@dataclass(frozen=True)
class AddIndex:
    """An index the metadata defines (list sorts and filters, links, unique fields)."""

    table: str
    name: str
    columns: tuple[str, ...]
    unique: bool = False
    sql: tuple[str, ...] = ()
    kind: str = SAFE

    @property
    def description(self) -> str:
        """What the operation does, in words."""
        return f"add {'unique ' if self.unique else ''}index {self.name} on {self.table} ({', '.join(self.columns)})"

    def run(self, ops: Operations) -> None:
        """Emit the DDL."""
        ops.create_index(self.name, self.table, list(self.columns), unique=self.unique)


@dataclass(frozen=True)
class DropIndex:
    """A Loom index (`ix_<table>_…`) the metadata no longer defines; no data is involved."""

    table: str
    name: str
    sql: tuple[str, ...] = ()
    kind: str = SAFE

    @property
    def description(self) -> str:
        """What the operation does, in words."""
        return f"drop index {self.name} on {self.table}"

    def run(self, ops: Operations) -> None:
        """Emit the DDL."""
        ops.drop_index(self.name, table_name=self.table)


@dataclass(frozen=True)
class HideColumn:
    """A column whose field left the metadata: kept with its values; adding the field back restores them."""

    table: str
    column: str
    sql: tuple[str, ...] = ()
    kind: str = SAFE

    @property
    def description(self) -> str:
        """What the operation does, in words."""
        target = f"{self.table}.{self.column}"
        return f"keep hidden column {target} (no longer in the metadata; `loom migrate --purge {target}` drops it)"

    def run(self, ops: Operations) -> None:
        """Nothing to emit."""


@dataclass(frozen=True)
class HideTable:
    """A module table whose module left the metadata: kept with its rows."""

    table: str
    sql: tuple[str, ...] = ()
    kind: str = SAFE

    @property
    def description(self) -> str:
        """What the operation does, in words."""
        return f"keep hidden table {self.table} (no longer in the metadata; `loom migrate --purge {self.table}` drops it)"

    def run(self, ops: Operations) -> None:
        """Nothing to emit."""


@dataclass(frozen=True)
class Purge:
    """Drop a hidden column or table and its data: only through `purge`."""

    table: str
    column: str | None = None
    source: sa.Table | None = field(default=None, compare=False, repr=False)
    sql: tuple[str, ...] = ()
    kind: str = DESTRUCTIVE

    @property
    def description(self) -> str:
        """What the operation does, in words."""
        return f"drop column {self.table}.{self.column} and its values" if self.column else f"drop table {self.table} and its rows"

    def run(self, ops: Operations) -> None:
        """Emit the DDL."""
        if self.column is None:
            ops.drop_table(self.table)
        elif ops.impl.dialect.name == "sqlite":
            source = _rebuild_source(ops, self.table, self.source)
            for index in [ix for ix in source.indexes if self.column in ix.columns]:
                source.indexes.discard(index)  # dropped with the old table; not rebuilt on the new one
            with ops.batch_alter_table(self.table, recreate="always", copy_from=source) as batch:
                batch.drop_column(self.column)
        else:
            ops.drop_column(self.table, self.column)


Operation = (CreateTable | AddColumn | RenameColumn | AlterType | AlterNullable | SetRequired | AddIndex | DropIndex
             | HideColumn | HideTable | Purge)
ORDER = (AlterType, AlterNullable, DropIndex, RenameColumn, CreateTable, AddColumn, SetRequired, AddIndex, HideColumn, HideTable, Purge)


def _rebuild_source(ops: Operations, table: str, planned: sa.Table | None) -> sa.Table:
    """The table SQLite's batch mode copies: the live one when running, the one seen at plan time when rendering."""
    if ops.migration_context.as_sql:
        assert planned is not None, "a SQLite rebuild is rendered from the table reflected at plan time"
        return planned.to_metadata(sa.MetaData())
    return sa.Table(table, sa.MetaData(), autoload_with=ops.get_bind())
