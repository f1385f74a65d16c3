"""Undoing an import: the records it created go to the recycle bin, the ones it updated get their old values
back — all through the records service, all or nothing, refused when a record changed since."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from engine import audit, records
from engine.access import Access
from engine.errors import Conflict
from engine.io import log
from engine.runtime import Runtime
from engine.spec import Module

CHUNK = 500


def undo(rt: Runtime, access: Access, entry: log.Entry) -> dict[str, int]:
    """Undo one applied import; returns how many records were deleted and restored."""
    if entry.status != "done" or not entry.summary.get("applied"):
        raise Conflict("only a finished, applied import can be undone")
    module = records.module_of(rt, entry.module)
    records.require(access, module, "import")
    created = log.created_ids(rt, entry.id)
    changed = log.changed(rt, entry.id)
    with rt.db.begin() as conn:
        versions = _versions(conn, rt, module, created + [c[0] for c in changed])
        moved = [i for i in created if versions.get(i, 1) != 1] + [rid for rid, ver, _ in changed if versions.get(rid, ver) != ver]
        if moved:
            shown = ", ".join(f"#{i}" for i in moved[:20])
            raise Conflict(f"{len(moved)} records were changed after the import ({shown}): undo refused, nothing was changed")
        for rid, ver, before in reversed(changed):
            if rid in versions:
                records.update(rt, access, module.name, rid, _raw(rt, module, before), ver, conn)
        gone = [i for i in created if i in versions]
        for rid in gone:
            records.delete(rt, access, module.name, rid, conn)
    log.mark(rt, entry.id, status="undone")
    return {"deleted": len(gone), "restored": len(changed)}


def _versions(conn: sa.Connection, rt: Runtime, module: Module, ids: list[int]) -> dict[int, int]:
    table = rt.tables[module.name]
    out: dict[int, int] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        out.update({r[0]: r[1] for r in conn.execute(sa.select(table.c.id, table.c.version).where(table.c.id.in_(chunk)))})
    return out


def _raw(rt: Runtime, module: Module, before: dict[str, Any]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for name, text in before.items():
        f = module.field(name)
        if f.type == "table":
            child = rt.spec.module(f.module or "")
            keep = {c.name for c in child.fields if c.writable} | {"id"}
            raw[name] = [{k: v for k, v in row.items() if k in keep} for row in json.loads(text or "[]")]
        else:
            raw[name] = audit.load_value(f, text)
    return raw
