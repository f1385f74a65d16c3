""""Can this user do this, and which rule decides?" — for `loom explain` and the admin page.

Answers come from the same stored policy lines and the same fold the gate uses; each module or
field answer is also asked of Casbin's own enforcer, and both are shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from engine.access import Actor
from engine.auth.grants import formula_inputs, role_lines, widest_scope
from engine.auth.policy import PolicyStore
from engine.auth.rules import Rule, decide
from engine.auth.scope import owned, shared_with
from engine.auth.users import User, find_user
from engine.errors import Invalid, NotFound
from engine.gate import RoleAccess
from engine.runtime import Runtime
from engine.spec import Field, Module

RECORD_ACTIONS = ("read", "write", "delete", "share", "assign", "print")


@dataclass(frozen=True)
class Decision:
    """One answer: the question, yes or no (with the scope), why, and the deciding line and its metadata source."""

    question: str
    allowed: bool
    because: str
    scope: str | None = None
    rule: str | None = None
    source: str | None = None
    casbin: bool | None = None


@dataclass(frozen=True)
class Explanation:
    """Every answer about one user and one module, field or record."""

    user: User
    target: str
    decisions: tuple[Decision, ...]


def where(rt: Runtime, rule: Rule | None) -> str | None:
    """The file, line and path a line was compiled from ('policy database' for a line this worker did not compile)."""
    if rule is None:
        return None
    if not rule.source:
        return "policy database"
    kind, name, path = rule.source.split(":", 2)
    bundle = rt.loaded.bundle
    doc = bundle.app if kind == "app" else bundle.docs.get(kind + "s", {}).get(name)
    if doc is None:
        return rule.source
    file, line, _ = doc.where(path)
    return f"{file}:{line} {path}"


def _sourced(rt: Runtime, store: PolicyStore, rule: Rule | None) -> Rule | None:
    if rule is None or rule.source:
        return rule
    known = {r.line: r for r in store.compiled(rt.spec)}
    return known.get(rule.line, rule)


def _target(rt: Runtime, text: str) -> tuple[Module, Field | None]:
    name, _, field_name = text.partition(".")
    module = rt.spec.modules.get(name)
    if module is None:
        raise NotFound(f"unknown module '{name}' (modules: {', '.join(sorted(rt.spec.modules))})")
    if field_name and field_name not in module.by_name:
        raise NotFound(f"unknown field '{field_name}' of {name} (fields: {', '.join(f.name for f in module.fields)})")
    return module, module.by_name.get(field_name) if field_name else None


def explain(rt: Runtime, store: PolicyStore, username: str, target: str, record_id: int | None = None) -> Explanation:
    """Explain what `username` may do with a module (every action), a field (read, write) or a record."""
    with rt.db.connect() as conn:
        user = find_user(conn, username)
    module, field = _target(rt, target)
    store.refresh(None)
    ask = _Asker(rt, store, user, module)
    decisions = ask.field(field) if field is not None else ask.actions()
    if record_id is not None:
        decisions += ask.record(record_id)
    return Explanation(user, target, tuple(decisions))


@dataclass
class _Asker:
    rt: Runtime
    store: PolicyStore
    user: User
    module: Module

    def __post_init__(self) -> None:
        snap = self.store.snapshot
        assert snap is not None
        self.lines = {role: role_lines(snap.lines, role, self.module.name) for role in self.user.roles}
        self.enforcer = snap.enforcer
        self.access = RoleAccess(Actor(self.user.id, self.user.username, self.user.roles, self.user.department_id), self.rt.spec, policy=self.store)

    def _casbin(self, role: str | None, obj: str, act: str, scope: str) -> bool | None:
        return bool(self.enforcer.enforce(role, self.store.domain, obj, act, scope)) if role else None

    def _decision(self, question: str, allowed: bool, because: str, rule: Rule | None, scope: str | None = None,
                  casbin: bool | None = None) -> Decision:
        rule = _sourced(self.rt, self.store, rule)
        return Decision(question, allowed, because, scope, str(rule) if rule else None, where(self.rt, rule), casbin)

    def actions(self) -> list[Decision]:
        """Each action of the module: the widest scope, from which role and line."""
        out = []
        for action in sorted(self.access.grant(self.module).scopes) or ["read"]:
            best = max(((role, *widest_scope(rules, self.module.name, action)) for role, rules in self.lines.items()),
                       key=lambda t: ("none", "self", "department", "department_tree", "all").index(t[1]), default=(None, "none", None))
            role, scope, rule = best
            granted = scope != "none"
            because = f"role {role} grants {action} at scope {scope}" if granted else f"no role of {self._roles()} grants {action}"
            casbin = self._casbin(role, self.module.name, action, scope if granted else "self")
            out.append(self._decision(f"{action} {self.module.name}", granted, because, rule, scope, casbin))
        return out

    def _roles(self) -> str:
        return ", ".join(self.user.roles) or "(no roles)"

    def field(self, f: Field) -> list[Decision]:
        """Read and write of one field, with the deciding line and the field's own limits."""
        grant = self.access.grant(self.module)
        obj = f"{self.module.name}.{f.name}"
        out = []
        for act, granted in (("read", f.name in grant.readable), ("write", f.name in grant.writable)):
            role, rule = self._deciding(obj, act)
            because = self._field_reason(f, act, granted, role, grant.readable)
            out.append(self._decision(f"{act} {obj}", granted, because, rule, None, self._casbin(role, obj, act, "self")))
        return out

    def _deciding(self, obj: str, act: str) -> tuple[str | None, Rule | None]:
        acts = (act, "create") if act == "write" else (act,)
        denied: tuple[str | None, Rule | None] = (None, None)
        for role, rules in self.lines.items():
            for a in acts:
                allowed, rule = decide(rules, obj, a, "self", self.store.domain)
                if allowed:
                    return role, rule
                if rule is not None and denied[1] is None:
                    denied = (role, rule)
        return denied

    def _field_reason(self, f: Field, act: str, granted: bool, role: str | None, readable: frozenset[str]) -> str:
        if granted:
            return f"role {role} may {act} it"
        if act == "read" and f.expr is not None and not formula_inputs(self.module, f.name) <= readable:
            hidden = sorted(formula_inputs(self.module, f.name) - readable)
            return f"computed from {', '.join(hidden)}, which the user may not read"
        if act == "write" and not f.writable and f.name != "owner":
            return "a system, computed or read-only field: nobody writes it directly"
        if act == "write" and f.name == "owner":
            return "changing the owner needs the assign action"
        return f"denied by a rule of role {role}" if role else f"no role of {self._roles()} grants {act}"

    def record(self, record_id: int) -> list[Decision]:
        """Whether the record is in the user's scope for each record action, and why."""
        table = self.rt.tables[self.module.name]
        with self.rt.db.connect() as conn:
            row = conn.execute(sa.select(table.c.id, table.c.owner).where(table.c.id == record_id)).first()
            if row is None:
                return [Decision(f"{self.module.name} #{record_id}", False, "no such record")]
            return [self._record_action(conn, table, row, action) for action in RECORD_ACTIONS]

    def _record_action(self, conn: sa.Connection, table: sa.Table, row: Any, action: str) -> Decision:
        question = f"{action} {self.module.name} #{row.id}"
        grant = self.access.grant(self.module)
        scope = grant.scope(action)
        cond = self.access.row_filter(self.module, table, action)
        inside = cond is None or conn.execute(sa.select(table.c.id).where(table.c.id == row.id, cond)).first() is not None
        if inside:
            because = self._why(conn, table, row, action, scope)
        elif scope == "none":
            because = f"no role of {self._roles()} grants {action}"
        else:
            because = f"outside the {scope} scope (owner: {self._owner(conn, row.owner)})"
        return Decision(question, inside, because, scope)

    def _why(self, conn: sa.Connection, table: sa.Table, row: Any, action: str, scope: str) -> str:
        actor = self.access.actor
        if scope == "all":
            return "scope all"
        if row.owner is not None and row.owner == actor.user_id:
            return f"{actor.username} owns it"
        if row.owner is None and self.access.grant(self.module).unowned:
            return "it has no owner and the role reaches unowned records"
        mine = owned(table, self.module.name, actor, scope, self.rt.spec.app.departments)
        if conn.execute(sa.select(table.c.id).where(table.c.id == row.id, mine)).first() is not None:
            return f"its owner {self._owner(conn, row.owner)} is in the user's {scope.replace('_', ' ')}"
        return "it is shared with the user or their department" if shared_with(table, self.module.name, actor, action) is not None else "in scope"

    def _owner(self, conn: sa.Connection, owner: int | None) -> str:
        if owner is None:
            return "nobody"
        users = self.rt.tables.metadata.tables["loom_user"]
        name = conn.execute(sa.select(users.c.username).where(users.c.id == owner)).scalar()
        return str(name or f"#{owner}")


def parse_target(text: str) -> str:
    """Check MODULE or MODULE.FIELD is well-formed."""
    if not text or text.count(".") > 1:
        raise Invalid("give MODULE or MODULE.FIELD", {"target": text})
    return text
