"""The permission gate: what one actor may do, read and write, resolved once per request from the policies.

Every path asks the same object: screens, the API, search, autocomplete, export, import, reports,
the audit timeline and record actions. Per module it folds the Casbin lines of the actor's roles
into a ModuleGrant (scopes per action, readable and writable field sets); the PolicyStore caches
that fold per (policy version, roles, module) across requests. Without a store (tests, scripts)
the lines are compiled from the spec on the spot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from engine.access import Actor
from engine.auth.grants import ModuleGrant, resolve
from engine.auth.rules import DOMAIN, Rule, admin_lines, compile_module
from engine.auth.scope import condition_key, row_condition
from engine.spec import Module, Spec

SCOPE_RANK = {"none": 0, "self": 1, "department": 2, "department_tree": 3, "all": 4}
OPEN_SCOPES = {"all"}


def spec_lines(spec: Spec, module: Module, domain: str = DOMAIN) -> dict[str, tuple[Rule, ...]]:
    """The policy lines about `module`, compiled from the spec and grouped by role."""
    by_role: dict[str, list[Rule]] = {}
    for rule in [*admin_lines(spec, domain), *compile_module(spec, module, domain)]:
        by_role.setdefault(rule.role, []).append(rule)
    return {role: tuple(rules) for role, rules in by_role.items()}


@dataclass
class RoleAccess:
    """Access of one actor: grants per module from the policy store (or the spec), cached for the request."""

    actor: Actor
    spec: Spec
    department_users: Any = None  # optional callable(scope) -> sa.Select of user ids; the built-in one follows the department tree
    policy: Any = None  # a PolicyStore (engine.auth.policy); None: compile from the spec
    _cache: dict[str, ModuleGrant] = field(default_factory=dict)

    @property
    def is_admin(self) -> bool:
        """Whether one of the actor's roles is an admin role."""
        return any(r.admin for r in self.spec.app.roles if r.name in self.actor.roles)

    def grant(self, module: Module) -> ModuleGrant:
        """The actor's resolved permissions in `module` (once per request)."""
        found = self._cache.get(module.name)
        if found is None:
            if self.policy is not None:
                found = self.policy.grant(self.spec, module, self.actor.roles)
            else:
                found = resolve(spec_lines(self.spec, module), self.spec, module, tuple(sorted(self.actor.roles)))
            self._cache[module.name] = found
        return found

    def scope(self, module: Module, action: str) -> str:
        """The widest scope any of the actor's roles has for `action`."""
        return self.grant(module).scope(action)

    def can(self, module: Module, action: str) -> bool:
        """Whether any role grants `action` (a standard action or a workflow transition) in `module`."""
        return self.grant(module).scope(action) != "none"

    def readable(self, module: Module) -> frozenset[str]:
        """Fields any role may read (computed fields that read a hidden field are hidden too)."""
        return self.grant(module).readable

    def writable(self, module: Module) -> frozenset[str]:
        """Fields any role may write (never system, computed or workflow state fields; owner only with assign)."""
        return self.grant(module).writable

    def row_filter(self, module: Module, table: sa.Table, action: str) -> sa.ColumnElement[bool] | None:
        """The actor's scope for `action` as SQL: owner, departments in reach, unowned pool, shared records."""
        grant = self.grant(module)
        return row_condition(table, module.name, self.actor, grant.scope(action), action, grant.unowned,
                             self.spec.app.departments, self.department_users)

    def scope_key(self, module: Module, action: str) -> tuple[Any, ...] | None:
        """The row filter's key (None with a department hook of the caller's: its conditions are its own)."""
        if self.department_users is not None:
            return None
        grant = self.grant(module)
        return condition_key(self.actor, grant.scope(action), action, grant.unowned)
