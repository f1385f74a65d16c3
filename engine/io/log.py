"""The import log: one row per import (file, options, status, progress, result), and what it changed (for undo)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from engine.errors import NotFound
from engine.io.plan import Options, Result
from engine.records import now
from engine.runtime import Runtime

STALE = dt.timedelta(minutes=10)
MAX_STORED_ERRORS = 100_000


@dataclass(frozen=True)
class Entry:
    """One import as logged."""

    id: int
    module: str
    user_id: int | None
    file_name: str
    file_kind: str
    stored: str
    options: Options
    status: str
    phase: str | None
    total: int
    done: int
    summary: dict[str, Any]
    errors: list[dict[str, Any]]
    message: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None

    @property
    def running(self) -> bool:
        """Whether a worker is on it now."""
        return self.status in ("queued", "running")


def _table(rt: Runtime) -> sa.Table:
    return rt.tables.metadata.tables["loom_import"]


def _items(rt: Runtime) -> sa.Table:
    return rt.tables.metadata.tables["loom_import_item"]


def start(rt: Runtime, module: str, user_id: int | None, file_name: str, kind: str, stored: str, options: Options) -> int:
    """Log a new upload (status 'uploaded'); returns its id."""
    stamp = now()
    with rt.db.begin() as conn:
        key = conn.execute(sa.insert(_table(rt)).values(
            module=module, user_id=user_id, file_name=file_name[:255], file_kind=kind, stored=stored, mode=options.mode,
            key=options.key, on_error=options.on_error, mapping=_mapping(options), status="uploaded", created_at=stamp,
            heartbeat=stamp)).inserted_primary_key
    assert key is not None
    return int(key[0])


def _mapping(options: Options) -> str | None:
    return json.dumps(list(options.mapping)) if options.mapping is not None else None


def set_options(rt: Runtime, import_id: int, options: Options) -> None:
    """Store the confirmed mapping and options."""
    with rt.db.begin() as conn:
        conn.execute(sa.update(_table(rt)).where(_table(rt).c.id == import_id).values(
            mode=options.mode, key=options.key, on_error=options.on_error, mapping=_mapping(options)))


def mark(rt: Runtime, import_id: int, **values: Any) -> None:
    """Update status, phase or progress (and the heartbeat)."""
    with rt.db.begin() as conn:
        conn.execute(sa.update(_table(rt)).where(_table(rt).c.id == import_id).values(heartbeat=now(), **values))


def finish(rt: Runtime, import_id: int, status: str, result: Result | None, message: str | None = None) -> None:
    """Store the outcome: status, summary, every problem (capped), the ids it created."""
    values: dict[str, Any] = {"status": status, "message": message, "finished_at": now(), "phase": None}
    if result is not None:
        values |= {"summary": json.dumps(result.summary(), default=str, ensure_ascii=False),
                   "errors": json.dumps([p.as_dict() for p in result.problems[:MAX_STORED_ERRORS]], ensure_ascii=False),
                   "done": result.records, "total": max(result.records, 0)}
    mark(rt, import_id, **values)


def record_changes(conn: sa.Connection, rt: Runtime, import_id: int, result: Result) -> None:
    """Inside the import's transaction: the created ids (as ranges) and each updated record's old values."""
    conn.execute(sa.update(_table(rt)).where(_table(rt).c.id == import_id).values(created=ranges(result.created)))
    rows = [{"import_id": import_id, "record_id": rid, "version": version, "before": json.dumps(before, ensure_ascii=False)}
            for rid, version, before in result.changed]
    if rows:
        conn.execute(sa.insert(_items(rt)), rows)


def ranges(ids: list[int]) -> str:
    """Ids as compact ranges: '1-500,502'."""
    out: list[str] = []
    for i in sorted(ids):
        if out and "-" in out[-1] and int(out[-1].split("-")[1]) + 1 == i:
            out[-1] = f"{out[-1].split('-')[0]}-{i}"
        elif out and "-" not in out[-1] and int(out[-1]) + 1 == i:
            out[-1] = f"{out[-1]}-{i}"
        else:
            out.append(str(i))
    return ",".join(out)


def unranges(text: str | None) -> list[int]:
    """The ids of `ranges` text."""
    out: list[int] = []
    for part in (text or "").split(","):
        if "-" in part:
            low, high = part.split("-")
            out += range(int(low), int(high) + 1)
        elif part:
            out.append(int(part))
    return out


def load(rt: Runtime, import_id: int, user_id: int | None = None, module: str | None = None) -> Entry:
    """One import (404 when it is not this user's, or not of this module)."""
    table = _table(rt)
    stmt = sa.select(table).where(table.c.id == import_id)
    if module is not None:
        stmt = stmt.where(table.c.module == module)
    with rt.db.connect() as conn:
        row = conn.execute(stmt).mappings().first()
    if row is None or (user_id is not None and row["user_id"] != user_id):
        raise NotFound(f"import {import_id} not found")
    return _entry(row)


def _entry(row: Any) -> Entry:
    status = row["status"]
    if status in ("queued", "running") and now() - row["heartbeat"] > STALE:
        status = "interrupted"
    options = Options(row["mode"], row["key"], row["on_error"], mapping=tuple(json.loads(row["mapping"])) if row["mapping"] else None)
    return Entry(row["id"], row["module"], row["user_id"], row["file_name"], row["file_kind"], row["stored"], options, status,
                 row["phase"], row["total"], row["done"], json.loads(row["summary"] or "{}"), json.loads(row["errors"] or "[]"),
                 row["message"], row["created_at"], row["finished_at"])


def recent(rt: Runtime, module: str, user_id: int | None, limit: int = 20) -> list[Entry]:
    """The user's latest imports into `module`."""
    table = _table(rt)
    stmt = sa.select(table).where(table.c.module == module, table.c.user_id == user_id if user_id is not None else table.c.user_id.is_(None))
    with rt.db.connect() as conn:
        return [_entry(r) for r in conn.execute(stmt.order_by(table.c.id.desc()).limit(limit)).mappings()]


def created_ids(rt: Runtime, import_id: int) -> list[int]:
    """Records the import created."""
    with rt.db.connect() as conn:
        return unranges(conn.execute(sa.select(_table(rt).c.created).where(_table(rt).c.id == import_id)).scalar())


def changed(rt: Runtime, import_id: int) -> list[tuple[int, int, dict[str, Any]]]:
    """(record id, version after the import, old values) of every record the import updated."""
    items = _items(rt)
    with rt.db.connect() as conn:
        rows = conn.execute(sa.select(items.c.record_id, items.c.version, items.c.before)
                            .where(items.c.import_id == import_id).order_by(items.c.id))
        return [(r[0], r[1], json.loads(r[2])) for r in rows]
