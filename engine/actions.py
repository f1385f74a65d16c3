"""Record actions declared in metadata: update (claim, release), merge duplicates, create (lead conversion)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from engine import records
from engine.access import Access, SystemAccess
from engine.compute import scope_of
from engine.errors import Forbidden, Invalid, NotFound
from engine.expr import Expr, ExprError
from engine.fieldtypes import to_json
from engine.runtime import Runtime
from engine.spec import Action, Module

Record = dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    """What an action did: the record after it, and records it created."""

    record: Record
    created: dict[str, int]
    message: str


def available(rt: Runtime, access: Access, module: Module, record: Mapping[str, Any]) -> list[Action]:
    """The actions the actor may take on this record now (permission and condition hold)."""
    def allowed(action: Action) -> bool:
        needs = [action.permission] + (["delete"] if action.kind == "merge" else [])
        return all(access.can(module, p) and _in_scope(rt, access, module, record, p) for p in needs)

    return [a for a in module.actions if not a.scheduled and allowed(a) and _condition_holds(module, a, record, access)]


def _in_scope(rt: Runtime, access: Access, module: Module, record: Mapping[str, Any], permission: str) -> bool:
    table = rt.tables[module.name]
    scope = access.row_filter(module, table, permission)
    if scope is None or permission == "read":
        return True
    with rt.db.connect() as conn:
        return conn.execute(sa.select(table.c.id).where(table.c.id == record.get("id"), scope)).first() is not None


def _scope(module: Module, record: Mapping[str, Any], access: Access, **extra: Any) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    return scope_of(module, record, {"me": access.actor.user_id, "id": record.get("id"), "now": now, **extra})


def _condition_holds(module: Module, action: Action, record: Mapping[str, Any], access: Access) -> bool:
    if action.condition is None:
        return True
    try:
        return bool(action.condition(_scope(module, record, access)))
    except ExprError:
        return False


def _values(sets: tuple[tuple[str, Expr], ...], scope: Mapping[str, Any], target: Module) -> dict[str, Any]:
    out = {}
    for name, expr in sets:
        try:
            value = expr(scope)
        except ExprError as exc:
            raise Invalid(f"action could not compute '{name}'", {name: str(exc)}) from None
        out[name] = to_json(target.field(name), value) if name in target.by_name and value is not None else value
    return out


def run(rt: Runtime, access: Access, name: str, record_id: Any, action_name: str, params: Mapping[str, Any] | None = None) -> Outcome:
    """Take one record action as the actor; everything in one transaction."""
    module = records.module_of(rt, name)
    action = module.action(action_name)
    if action is None:
        raise NotFound(f"{name} has no action '{action_name}'")
    if action.scheduled and not isinstance(access, SystemAccess):
        raise Forbidden(f"'{action_name}' is taken by the engine on its schedule, not by hand")
    if not access.can(module, action.permission):
        raise Forbidden(f"you may not {action_name} {name} records")
    with rt.db.begin() as conn:
        record = _visible(rt, access, module, record_id, action.permission, conn)
        if not _condition_holds(module, action, record, access):
            raise Invalid(f"'{action_name}' is not possible on this record now")
        runner = {"update": _update, "merge": _merge, "create": _create}[action.kind]
        return runner(rt, access, module, action, record, params or {}, conn)


def _visible(rt: Runtime, access: Access, module: Module, record_id: Any, permission: str, conn: sa.Connection) -> Record:
    record = records.get(rt, access, module.name, record_id, conn)
    if permission != "read":
        table = rt.tables[module.name]
        scope = access.row_filter(module, table, permission)
        if scope is not None and conn.execute(sa.select(table.c.id).where(table.c.id == record["id"], scope)).first() is None:
            raise NotFound(f"{module.name} {record_id} not found")
    return record


def _elevated(access: Access) -> SystemAccess:
    """The action's own right to write what it declares, recorded as the actor."""
    return SystemAccess(actor=access.actor)


def _update(rt: Runtime, access: Access, module: Module, action: Action, record: Record, params: Mapping[str, Any],
            conn: sa.Connection) -> Outcome:
    full = records.get(rt, _elevated(access), module.name, record["id"], conn)
    changes = _values(action.set, _scope(module, full, access), module)
    after = records.update(rt, _elevated(access), module.name, full["id"], changes, full["version"], conn) if changes else full
    _log(rt, access, module, action, full, after, conn)
    return Outcome(records.get(rt, access, module.name, full["id"], conn) if _can_see(rt, access, module, full["id"], conn) else {},
                   {}, f"{action.label(access.actor.locale)}: done")


def _can_see(rt: Runtime, access: Access, module: Module, record_id: int, conn: sa.Connection) -> bool:
    try:
        records.get(rt, access, module.name, record_id, conn)
    except NotFound:
        return False
    return True


def _log(rt: Runtime, access: Access, module: Module, action: Action, before: Record, after: Record, conn: sa.Connection) -> None:
    if action.log_module is None:
        return
    target = rt.spec.module(action.log_module)
    values = _values(action.log_set, _scope(module, after, access, old=before), target)
    records.create(rt, _elevated(access), target.name, values, conn)


def _merge(rt: Runtime, access: Access, module: Module, action: Action, survivor: Record, params: Mapping[str, Any],
           conn: sa.Connection) -> Outcome:
    raw = params.get("duplicate")
    if raw in (None, "") or str(raw) == str(survivor["id"]):
        raise Invalid("choose the duplicate to merge into this record", {"duplicate": "required, and not this record"})
    if not access.can(module, "delete"):
        raise Forbidden(f"merging removes the duplicate: you may not delete {module.name} records")
    duplicate = _visible(rt, access, module, raw, "delete", conn)
    system = _elevated(access)
    full = records.get(rt, system, module.name, duplicate["id"], conn)
    moved = _move_links(rt, system, module, full["id"], survivor["id"], conn)
    fill = {f.name: to_json(f, full[f.name]) for f in module.fields
            if f.writable and f.stored and not f.unique and survivor.get(f.name) is None and full.get(f.name) is not None}
    records.delete(rt, system, module.name, full["id"], conn)
    current = records.get(rt, system, module.name, survivor["id"], conn)
    if fill:
        records.update(rt, system, module.name, survivor["id"], fill, current["version"], conn)
    _log(rt, access, module, action, full, current, conn)
    return Outcome(records.get(rt, access, module.name, survivor["id"], conn), {},
                   f"merged #{full['id']} into #{survivor['id']}; {moved} linked records moved")


def _move_links(rt: Runtime, system: SystemAccess, module: Module, old_id: int, new_id: int, conn: sa.Connection) -> int:
    moved = 0
    for other, link in rt.spec.links_to(module.name):
        table = rt.tables[other.name]
        for row in conn.execute(sa.select(table.c.id, table.c.version).where(table.c[link.name] == old_id)).all():
            target_id = new_id if not (other.name == module.name and row.id == new_id) else None
            records.update(rt, system, other.name, row.id, {link.name: target_id}, row.version, conn)
            moved += 1
    return moved


def _create(rt: Runtime, access: Access, module: Module, action: Action, record: Record, params: Mapping[str, Any],
            conn: sa.Connection) -> Outcome:
    full = records.get(rt, _elevated(access), module.name, record["id"], conn)
    created: dict[str, int] = {}
    for target_name, sets in action.create:
        target = rt.spec.module(target_name)
        values = _values(sets, _scope(module, full, access, created=dict(created)), target)
        created[target_name] = records.create(rt, access, target_name, {k: v for k, v in values.items() if v is not None}, conn)["id"]
    if action.set:
        changes = _values(action.set, _scope(module, full, access, created=dict(created)), module)
        records.update(rt, _elevated(access), module.name, full["id"], changes, full["version"], conn)
    after = records.get(rt, _elevated(access), module.name, full["id"], conn)
    _log(rt, access, module, action, full, after, conn)
    return Outcome(records.get(rt, access, module.name, full["id"], conn), created,
                   ", ".join(f"{rt.spec.module(m).label(access.actor.locale)} #{i}" for m, i in created.items()))
