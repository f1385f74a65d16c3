"""Data scope as SQL: self, own department, own department and its sub-departments, all, plus shared records.

Everything here builds WHERE conditions for one statement; no rows are checked in Python. The
department tree is followed with a recursive CTE over the module that app.yaml names in
`departments:` (its `parent` link), so a tree of any depth costs one statement.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from engine.access import Actor

SHARE_READS = ("read", "print", "export", "report")
SHARE_WRITES = ("write",)


def _tables(table: sa.Table) -> Any:
    return table.metadata.tables


def managed_departments(table: sa.Table, actor: Actor) -> sa.Select[Any]:
    """Ids of the departments the actor manages (besides their own)."""
    managers = _tables(table)["loom_department_manager"]
    return sa.select(managers.c.department_id).where(managers.c.user_id == actor.user_id)


def _roots(table: sa.Table, actor: Actor, column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    managed = column.in_(managed_departments(table, actor))
    return sa.or_(column == actor.department_id, managed) if actor.department_id is not None else managed


def department_ids(table: sa.Table, actor: Actor, tree: bool, departments: str | None, name: str) -> sa.Select[Any] | None:
    """Department ids in reach: the actor's own and managed ones, and with `tree` every department below them."""
    md = _tables(table)
    dept = md.get(departments or "")
    if not tree or dept is None or "parent" not in dept.c:
        return None
    start = sa.select(dept.c.id).where(_roots(table, actor, dept.c.id)).cte(f"loom_tree_{name}", recursive=True)
    below = sa.select(dept.c.id).where(dept.c.parent == start.c.id)
    tree_cte = start.union(below)
    return sa.select(tree_cte.c.id)


def department_users(table: sa.Table, actor: Actor, tree: bool, departments: str | None, name: str) -> sa.Select[Any]:
    """Ids of users whose department is in the actor's reach."""
    users = _tables(table)["loom_user"]
    ids = department_ids(table, actor, tree, departments, name)
    where = users.c.department_id.in_(ids) if ids is not None else _roots(table, actor, users.c.department_id)
    return sa.select(users.c.id).where(where)


def shared_with(table: sa.Table, module: str, actor: Actor, action: str) -> sa.ColumnElement[bool] | None:
    """Records of `module` shared with the actor or their department (for read-like actions; write needs a write share)."""
    if action not in SHARE_READS + SHARE_WRITES or actor.user_id is None:
        return None
    share = _tables(table)["loom_share"]
    who = share.c.user_id == actor.user_id
    if actor.department_id is not None:
        who = sa.or_(who, share.c.department_id == actor.department_id)
    stmt = sa.select(share.c.record_id).where(share.c.module == module, who)
    if action in SHARE_WRITES:
        stmt = stmt.where(share.c.access == "write")
    return table.c.id.in_(stmt)


def owned(table: sa.Table, module: str, actor: Actor, scope: str, departments: str | None, hook: Any = None) -> sa.ColumnElement[bool]:
    """Records whose owner is in the scope: the actor, or users of the departments in reach."""
    owner = table.c.owner
    mine: sa.ColumnElement[bool] = owner == actor.user_id if actor.user_id is not None else sa.false()
    if scope not in ("department", "department_tree"):
        return mine
    users = hook(scope) if hook is not None else department_users(table, actor, scope == "department_tree", departments, module)
    return sa.or_(mine, owner.in_(users))


def condition_key(actor: Actor, scope: str, action: str, unowned: bool) -> tuple[Any, ...]:
    """What `row_condition` depends on besides the table and the app's departments module (fixed for a spec): the
    scope; for the narrower scopes also the action (shares), the unowned pool and who the actor is."""
    if scope in ("all", "none"):
        return (scope,)
    return (scope, action, unowned, actor.user_id, actor.department_id)


def row_condition(table: sa.Table, module: str, actor: Actor, scope: str, action: str, unowned: bool,
                  departments: str | None, hook: Any = None) -> sa.ColumnElement[bool] | None:
    """The WHERE condition for `action` at `scope` (None: every row; false: none)."""
    if scope == "all":
        return None
    if scope == "none":
        return sa.false()
    parts = [owned(table, module, actor, scope, departments, hook)]
    if unowned:
        parts.append(table.c.owner.is_(None))
    shared = shared_with(table, module, actor, action)
    if shared is not None:
        parts.append(shared)
    return sa.or_(*parts) if len(parts) > 1 else parts[0]
