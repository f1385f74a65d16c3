"""Who is acting, and what they may reach: the interface every path asks (the permission gate fills it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa

from engine.spec import Module


@dataclass(frozen=True)
class Actor:
    """The user behind a request (None for the system: CLI, demo loader, migrations)."""

    user_id: int | None = None
    username: str = "system"
    roles: tuple[str, ...] = ()
    department_id: int | None = None
    locale: str = "en"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


class Access(Protocol):
    """Permissions resolved once per request: what the actor may do, read and write."""

    @property
    def actor(self) -> Actor:
        """Who is acting."""

    def can(self, module: Module, action: str) -> bool:
        """Whether the actor may take `action` in `module` at all."""

    def readable(self, module: Module) -> frozenset[str]:
        """Field names the actor may read."""

    def writable(self, module: Module) -> frozenset[str]:
        """Field names the actor may write."""

    def row_filter(self, module: Module, table: sa.Table, action: str) -> sa.ColumnElement[bool] | None:
        """A WHERE condition limiting rows to the actor's scope for `action` (None: every row)."""

    def scope_key(self, module: Module, action: str) -> tuple[Any, ...] | None:
        """Everything `row_filter` for `action` depends on besides the table: actors with equal keys get the same
        condition, so statements holding it can be built once and reused (None: build them every time)."""


@dataclass(frozen=True)
class SystemAccess:
    """Full access: the CLI, the demo loader and tests of the records service itself."""

    actor: Actor = field(default_factory=Actor)

    def can(self, module: Module, action: str) -> bool:
        """Everything is allowed."""
        return True

    def readable(self, module: Module) -> frozenset[str]:
        """Every field."""
        return frozenset(module.by_name)

    def writable(self, module: Module) -> frozenset[str]:
        """Every field users can ever write, plus owner."""
        return frozenset(f.name for f in module.fields if f.writable) | {"owner"}

    def row_filter(self, module: Module, table: sa.Table, action: str) -> sa.ColumnElement[bool] | None:
        """No restriction."""
        return None

    def scope_key(self, module: Module, action: str) -> tuple[Any, ...] | None:
        """Every row, whoever acts."""
        return ("all",)
