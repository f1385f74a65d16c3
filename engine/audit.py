"""The audit trail, the recycle bin, and restoring records to an earlier state."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from engine.fieldtypes import parse_value, stored_type
from engine.spec import Field, Module

if TYPE_CHECKING:
    from engine.runtime import Runtime

Record = dict[str, Any]
SKIP = frozenset(("id", "created_at", "created_by", "updated_at", "updated_by", "version"))


def dump(value: Any) -> str | None:
    """A value as stored in the audit trail: JSON text (orjson: an import writes one per record, and it encodes
    several times faster than the standard library)."""
    if value is None:
        return None
    return orjson.dumps(value, default=_plain, option=orjson.OPT_NON_STR_KEYS).decode()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def load_value(f: Field, text: str | None) -> Any:
    """Read back a value written by `dump` as the field's Python value."""
    if text is None:
        return None
    raw = json.loads(text)
    if f.type == "formula" or f.type == "autonumber" or f.system:
        kind = stored_type(f)
        probe = Field(name=f.name, type=kind if kind not in ("formula",) else "text", label=f.label, scale=f.scale, options=f.options)
        return raw if kind in ("text",) or f.type == "autonumber" else parse_value(probe, raw)
    return parse_value(f, raw)


def _log(rt: Runtime) -> sa.Table:
    return rt.tables.metadata.tables["loom_audit"]


def record_create(conn: sa.Connection, rt: Runtime, module: Module, record_id: int, values: Record,
                  rows: dict[str, list[Record]], user: int | None, at: dt.datetime) -> None:
    """One 'create' audit row for a new record, holding every value it was created with."""
    conn.execute(rt.tables.prebuilt(("insert", "loom_audit"), lambda: sa.insert(_log(rt))), create_entry(module, record_id, values, rows, user, at))


def create_entry(module: Module, record_id: int | None, values: Record, rows: dict[str, list[Record]], user: int | None,
                 at: dt.datetime) -> Record:
    """The 'create' audit row of a record: `new` is one JSON object, field name → value as `dump` writes it (a row per
    field made an import write a dozen audit rows per record); `history` shows it field by field."""
    new = {k: v for k, v in values.items() if k not in SKIP and v is not None}
    if rows:
        new.update((k, _rows(v)) for k, v in rows.items() if v)
    return {"module": module.name, "record_id": record_id, "change": "create", "version": 1, "user_id": user, "at": at,
            "field": None, "old": None, "new": dump(new)}


def _rows(rows: list[Record]) -> list[Record]:
    return [{k: v for k, v in r.items() if k not in ("parent_id", "created_at", "updated_at", "created_by", "updated_by", "version", "owner")}
            for r in rows]


def record_update(conn: sa.Connection, rt: Runtime, module: Module, old: Record, changed: Record,
                  old_rows: dict[str, list[Record]], new_rows: dict[str, list[Record]], version: int,
                  user: int | None, at: dt.datetime) -> None:
    """One 'update' audit row per changed field (child tables as one row of JSON)."""
    base = {"module": module.name, "record_id": old["id"], "change": "update", "version": version, "user_id": user, "at": at}
    entries = [{"field": k, "old": dump(old.get(k)), "new": dump(v)} for k, v in changed.items()]
    entries += [{"field": k, "old": dump(_rows(old_rows.get(k, []))), "new": dump(_rows(v))} for k, v in new_rows.items()]
    if entries:
        conn.execute(sa.insert(_log(rt)), [base | e for e in entries])


def to_recycle_bin(conn: sa.Connection, rt: Runtime, module: Module, row: Record, rows: dict[str, list[Record]],
                   user: int | None, at: dt.datetime) -> None:
    """Keep a deleted record (with child rows) in the recycle bin, and log the delete."""
    bin_ = rt.tables.metadata.tables["loom_recycle"]
    title = row.get(module.title_field)
    conn.execute(sa.insert(bin_).values(module=module.name, record_id=row["id"], title=str(title)[:255] if title is not None else None,
                                        data=json.dumps({"row": row, "rows": rows}, default=_plain, ensure_ascii=False),
                                        deleted_by=user, deleted_at=at))
    conn.execute(sa.insert(_log(rt)).values(module=module.name, record_id=row["id"], change="delete", field=None,
                                            version=row["version"], user_id=user, at=at))


def _revive(module: Module, data: Record) -> Record:
    out = {}
    for k, v in data.items():
        f = module.by_name.get(k)
        if f is None or not f.stored:
            continue
        out[k] = v if v is None or k in ("id", "version", "parent_id", "idx") else load_value(f, json.dumps(v))
    return out


def restore_deleted(rt: Runtime, module: Module, record_id: int, user: int | None) -> None:
    """Put a record from the recycle bin back, with its id and child rows."""
    from engine.errors import Conflict, NotFound

    bin_ = rt.tables.metadata.tables["loom_recycle"]
    with rt.db.begin() as conn:
        entry = conn.execute(sa.select(bin_).where(bin_.c.module == module.name, bin_.c.record_id == record_id)
                             .order_by(bin_.c.id.desc()).limit(1)).mappings().first()
        if entry is None:
            raise NotFound(f"{module.name} {record_id} is not in the recycle bin")
        table = rt.tables[module.name]
        if conn.execute(sa.select(table.c.id).where(table.c.id == record_id)).first():
            raise Conflict(f"{module.name} {record_id} exists already")
        data = json.loads(entry["data"])
        conn.execute(sa.insert(table).values(**_revive(module, data["row"])))
        for fname, rows in data["rows"].items():
            child = rt.spec.module(module.field(fname).module or "")
            for r in rows:
                conn.execute(sa.insert(rt.tables[child.name]).values(**_revive(child, r)))
        conn.execute(sa.delete(bin_).where(bin_.c.id == entry["id"]))
        conn.execute(sa.insert(_log(rt)).values(module=module.name, record_id=record_id, change="restore", field=None,
                                                version=data["row"].get("version"), user_id=user, at=dt.datetime.now(dt.UTC).replace(tzinfo=None)))


def recycle_bin(rt: Runtime, module: Module | None = None, limit: int = 100) -> list[Record]:
    """The newest entries of the recycle bin (of one module, or all)."""
    bin_ = rt.tables.metadata.tables["loom_recycle"]
    stmt = sa.select(bin_.c.id, bin_.c.module, bin_.c.record_id, bin_.c.title, bin_.c.deleted_by, bin_.c.deleted_at)
    if module is not None:
        stmt = stmt.where(bin_.c.module == module.name)
    with rt.db.connect() as conn:
        return [dict(r) for r in conn.execute(stmt.order_by(bin_.c.id.desc()).limit(limit)).mappings()]


def history(conn: sa.Connection, rt: Runtime, module: Module, record_id: int, readable: frozenset[str]) -> list[Record]:
    """The audit rows of a record, newest first, one per field changed, without fields the reader may not read."""
    log = _log(rt)
    rows = conn.execute(sa.select(log).where(log.c.module == module.name, log.c.record_id == record_id)
                        .order_by(log.c.id.desc()).limit(500)).mappings()
    out: list[Record] = []
    for r in rows:
        if r["change"] == "create" and r["field"] is None and r["new"]:
            values = json.loads(r["new"])
            out += [dict(r) | {"field": k, "new": json.dumps(v, ensure_ascii=False)} for k, v in values.items() if k in readable]
        elif r["field"] is None or r["field"] in readable:
            out.append(dict(r))
    return out


def state_at(conn: sa.Connection, rt: Runtime, module: Module, current: Record, version: int) -> Record:
    """The record's stored values as they were at `version`, rebuilt from the audit trail."""
    log = _log(rt)
    rows = conn.execute(sa.select(log.c.field, log.c.old).where(
        log.c.module == module.name, log.c.record_id == current["id"], log.c.change == "update",
        log.c.version > version, log.c.field.is_not(None)).order_by(log.c.id.desc()))
    state = dict(current)
    for r in rows:
        f = module.by_name.get(r.field)
        if f is not None:
            state[r.field] = json.loads(r.old) if f.type == "table" and r.old else load_value(f, r.old) if f.stored else None
    return state
