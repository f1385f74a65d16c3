"""The permission gate: a user's roles and the metadata's rules, resolved once per request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from engine.access import Actor
from engine.spec import Module, Spec

SCOPE_RANK = {"none": 0, "self": 1, "department": 2, "department_tree": 3, "all": 4}
OPEN_SCOPES = {"all"}


@dataclass
class RoleAccess:
    """Access of one actor, computed from the roles' rules in metadata (cached per module)."""

    actor: Actor
    spec: Spec
    department_users: Any = None  # callable(scope) -> sa.Select of user ids, set by the auth layer
    _cache: dict[tuple[str, str], Any] = field(default_factory=dict)

    @property
    def is_admin(self) -> bool:
        """Whether one of the actor's roles is an admin role."""
        return any(r.admin for r in self.spec.app.roles if r.name in self.actor.roles)

    def scope(self, module: Module, action: str) -> str:
        """The widest scope any of the actor's roles has for `action`."""
        key = (module.name, "scope:" + action)
        if key not in self._cache:
            best = "all" if self.is_admin else "none"
            for role in self.actor.roles:
                rule = module.permission(role)
                if rule is not None and SCOPE_RANK[rule.scope(action)] > SCOPE_RANK[best]:
                    best = rule.scope(action)
            self._cache[key] = best
        result: str = self._cache[key]
        return result

    def can(self, module: Module, action: str) -> bool:
        """Whether any role grants `action` in `module` (child modules follow their parent's read)."""
        return self.scope(module, action) != "none"

    def _fields(self, module: Module, level: str) -> frozenset[str]:
        key = (module.name, "fields:" + level)
        if key not in self._cache:
            names: set[str] = set()
            for f in module.fields:
                if self.is_admin or any(self._field_level(module, role, f.name) in _levels(level) for role in self.actor.roles):
                    names.add(f.name)
            self._cache[key] = frozenset(names)
        result: frozenset[str] = self._cache[key]
        return result

    def _field_level(self, module: Module, role: str, name: str) -> str:
        rule = module.permission(role)
        if rule is None or rule.scope("read") == "none":
            return "none"
        access = rule.field_access(name)
        return "read" if access == "write" and rule.scope("write") == "none" and rule.scope("create") == "none" else access

    def readable(self, module: Module) -> frozenset[str]:
        """Fields any role may read."""
        return self._fields(module, "read")

    def writable(self, module: Module) -> frozenset[str]:
        """Fields any role may write (system fields never; owner only with assign)."""
        names = {n for n in self._fields(module, "write") if module.field(n).writable}
        if self.can(module, "assign"):
            names.add("owner")
        return frozenset(names)

    def row_filter(self, module: Module, table: sa.Table, action: str) -> sa.ColumnElement[bool] | None:
        """The actor's scope for `action` as SQL over the owner column."""
        scope = self.scope(module, action)
        if scope in OPEN_SCOPES:
            return None
        if scope == "none":
            return sa.false()
        owner = table.c.owner
        if scope == "self" or self.department_users is None:
            mine: sa.ColumnElement[bool] = owner == self.actor.user_id
        else:
            mine = owner.in_(self.department_users(scope))
        if any(getattr(module.permission(r), "unowned", False) for r in self.actor.roles):
            return sa.or_(mine, owner.is_(None))
        return mine


def _levels(level: str) -> tuple[str, ...]:
    return ("read", "write") if level == "read" else ("write",)
