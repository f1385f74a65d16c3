"""Users and the department tree: which department a user belongs to, and which others they manage."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from engine.errors import Invalid
from engine.runtime import Runtime


def _managers(rt: Runtime) -> sa.Table:
    return rt.tables.metadata.tables["loom_department_manager"]


def department_table(rt: Runtime) -> sa.Table | None:
    """The table of the module app.yaml names in `departments:` (None when there is none)."""
    return rt.tables.modules.get(rt.spec.app.departments or "")


def find_department(conn: sa.Connection, rt: Runtime, ref: str | int) -> int:
    """A department's id from its id or its title; 422 when there is no such department."""
    table = department_table(rt)
    if table is None:
        raise Invalid("no departments", {"department": "app.yaml names no `departments` module"})
    title = rt.spec.module(rt.spec.app.departments or "").title_field
    text = str(ref).strip()
    where = table.c.id == int(text) if text.isdigit() else table.c[title] == text
    found = conn.execute(sa.select(table.c.id).where(where).limit(2)).scalars().all()
    if len(found) != 1:
        raise Invalid("unknown department", {"department": f"no single department '{text}'"})
    return int(found[0])


def managed(conn: sa.Connection, rt: Runtime, user_id: int) -> list[int]:
    """Ids of the departments a user manages."""
    table = _managers(rt)
    stmt = sa.select(table.c.department_id).where(table.c.user_id == user_id).order_by(table.c.department_id)
    return [int(r) for r in conn.execute(stmt).scalars()]


def set_managed(conn: sa.Connection, rt: Runtime, user_id: int, department_ids: list[int]) -> None:
    """Replace the departments a user manages."""
    table = _managers(rt)
    conn.execute(sa.delete(table).where(table.c.user_id == user_id))
    rows: list[dict[str, Any]] = [{"user_id": user_id, "department_id": d} for d in dict.fromkeys(department_ids)]
    if rows:
        conn.execute(sa.insert(table), rows)


def titles(conn: sa.Connection, rt: Runtime, ids: set[int]) -> dict[int, str]:
    """Department titles by id (for screens and `loom user list`)."""
    table = department_table(rt)
    if table is None or not ids:
        return {}
    title = rt.spec.module(rt.spec.app.departments or "").title_field
    return {int(r[0]): str(r[1]) for r in conn.execute(sa.select(table.c.id, table.c[title]).where(table.c.id.in_(ids)))}
