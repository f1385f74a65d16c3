"""Records shared explicitly with a user or a department (read, or read and write).

Sharing is itself an action: the actor needs `share` on the module and the record in their share
scope; the scope SQL (engine.auth.scope) then lets the recipients reach it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from engine.access import Access
from engine.errors import Invalid, NotFound
from engine.records import module_of
from engine.runtime import Runtime

LEVELS = ("read", "write")


def _table(rt: Runtime) -> sa.Table:
    return rt.tables.metadata.tables["loom_share"]


def _shareable(conn: sa.Connection, rt: Runtime, access: Access, name: str, record_id: int) -> None:
    """404 unless the actor may share this record (the same answer as for a record that does not exist)."""
    module = module_of(rt, name)
    table = rt.tables[name]
    scope = access.row_filter(module, table, "share")
    stmt = sa.select(table.c.id).where(table.c.id == record_id, *([scope] if scope is not None else []))
    if not access.can(module, "share") or conn.execute(stmt).first() is None:
        raise NotFound(f"{name} {record_id} not found")


def _check_target(conn: sa.Connection, rt: Runtime, user_id: int | None, department_id: int | None) -> None:
    if (user_id is None) == (department_id is None):
        raise Invalid("share with a user or a department", {"user": "give a user or a department, not both"})
    users = rt.tables.metadata.tables["loom_user"]
    if user_id is not None and conn.execute(sa.select(users.c.id).where(users.c.id == user_id)).first() is None:
        raise Invalid("unknown user", {"user": f"no user with id {user_id}"})
    dept = rt.tables.modules.get(rt.spec.app.departments or "")
    if department_id is not None and (dept is None or conn.execute(sa.select(dept.c.id).where(dept.c.id == department_id)).first() is None):
        raise Invalid("unknown department", {"department": f"no department with id {department_id}"})


def share(rt: Runtime, access: Access, name: str, record_id: int, user_id: int | None = None,
          department_id: int | None = None, level: str = "read") -> int:
    """Share a record with a user or a department; returns the share's id (an existing share is updated)."""
    if level not in LEVELS:
        raise Invalid("unknown access", {"access": "read or write"})
    table = _table(rt)
    with rt.db.begin() as conn:
        _shareable(conn, rt, access, name, record_id)
        _check_target(conn, rt, user_id, department_id)
        same = sa.and_(table.c.module == name, table.c.record_id == record_id,
                       table.c.user_id == user_id if user_id is not None else table.c.user_id.is_(None),
                       table.c.department_id == department_id if department_id is not None else table.c.department_id.is_(None))
        found = conn.execute(sa.select(table.c.id).where(same)).scalar()
        if found is not None:
            conn.execute(sa.update(table).where(table.c.id == found).values(access=level))
            return int(found)
        key = conn.execute(sa.insert(table).values(module=name, record_id=record_id, user_id=user_id,
                                                   department_id=department_id, access=level)).inserted_primary_key
        assert key is not None
        return int(key[0])


def unshare(rt: Runtime, access: Access, name: str, record_id: int, share_id: int) -> None:
    """Remove one share of a record."""
    table = _table(rt)
    with rt.db.begin() as conn:
        _shareable(conn, rt, access, name, record_id)
        done = conn.execute(sa.delete(table).where(table.c.id == share_id, table.c.module == name, table.c.record_id == record_id))
        if done.rowcount == 0:
            raise NotFound(f"no share {share_id} on {name} {record_id}")


def shares_of(rt: Runtime, access: Access, name: str, record_id: int) -> list[dict[str, Any]]:
    """The shares of a record (for someone who may share it)."""
    table = _table(rt)
    users = rt.tables.metadata.tables["loom_user"]
    with rt.db.connect() as conn:
        _shareable(conn, rt, access, name, record_id)
        rows = conn.execute(sa.select(table.c.id, table.c.user_id, users.c.username, table.c.department_id, table.c.access)
                            .select_from(table.outerjoin(users, users.c.id == table.c.user_id))
                            .where(table.c.module == name, table.c.record_id == record_id).order_by(table.c.id))
        return [dict(r) for r in rows.mappings()]
