"""Updating a matched record from its sheet rows: the per-field diff, child rows merged by their key,
and the write through `records.update` (so scope, validation and audit are the records service's own)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine import audit, records
from engine.errors import Conflict, Forbidden, Invalid, NotFound
from engine.fieldtypes import show
from engine.spec import Field, Module

if TYPE_CHECKING:
    from engine.io.bulk import Draft
    from engine.io.run import Job
    from engine.io.sheet import Item

Values = dict[str, Any]


def same(f: Field, old: Any, new: Any) -> bool:
    """Whether an imported value equals the stored one (multiselect ignores order)."""
    if f.type == "multiselect":
        return set((old or "").split(",")) - {""} == set((new or "").split(",")) - {""}
    return bool(old == new)


def child_key(child: Module) -> str | None:
    """The field matching imported child rows to stored ones: the title field, else the first required text."""
    if child.title_field != "id":
        return child.title_field
    return next((f.name for f in child.fields if f.required and f.type == "text"), None)


def update_item(job: Job, item: Item, draft: Draft, old: Values) -> None:
    """Skip an unchanged record; otherwise update it and keep its old values for undo."""
    from engine.io.run import _fail

    computed = job.computed(job.module)
    changes = {k: v for k, v in draft.values.items()
               if k != job.result.key and k not in computed and not same(job.module.field(k), old.get(k), v)}
    lines, old_lines = _lines(job, draft, old["id"])
    if not changes and not lines:
        job.result.skipped += 1
        job.result.sample("skip", {"row": item.rows[0], "id": old["id"]})
        return
    try:
        records.update(job.rt, job.access, job.module.name, old["id"], changes | lines, old["version"], job.conn)
    except (Invalid, NotFound, Forbidden, Conflict) as exc:
        draft.errors.update(_reasons(exc))
        _fail(job, item, draft)
        return
    table = job.rt.tables[job.module.name]
    version = job.conn.execute(sa.select(table.c.version).where(table.c.id == old["id"])).scalar_one()
    before = {k: audit.dump(old.get(k)) for k in changes} | {k: audit.dump(v) for k, v in old_lines.items()}
    job.result.updated += 1
    job.result.changed.append((old["id"], version, before))
    job.result.sample("update", {"row": item.rows[0], "id": old["id"], "diff": _diff(job, old, changes, lines, old_lines)})


def _reasons(exc: Invalid | NotFound | Forbidden | Conflict) -> dict[str, str]:
    if isinstance(exc, NotFound):
        return {"": "you may not change this record (it is outside your scope)"}
    return dict(exc.fields) if isinstance(exc, Invalid) and exc.fields else {"": exc.message}


def _diff(job: Job, old: Values, changes: Values, lines: Values, old_lines: Values) -> dict[str, list[str]]:
    locale = job.access.actor.locale
    out = {job.headers_of.get(k, k): [_show(job.module.field(k), old.get(k), locale), _show(job.module.field(k), v, locale)]
           for k, v in changes.items()}
    for k, rows in lines.items():
        out[job.module.field(k).label(locale)] = [f"{len(old_lines[k])} rows", f"{len(rows)} rows (merged by key)"]
    return out


def _show(f: Field, value: Any, locale: str) -> str:
    if f.type in ("link", "user"):
        return "" if value is None else f"#{value}"
    return show(f, value, locale)


def _lines(job: Job, draft: Draft, record_id: int) -> tuple[Values, Values]:
    """Imported child rows merged into the stored ones by the child key; only tables that change."""
    if not draft.rows:
        return {}, {}
    current = records.children(job.conn, job.rt, job.module, [record_id])
    out: Values = {}
    before: Values = {}
    for table, rows in draft.rows.items():
        child = job.rt.spec.module(job.module.field(table).module or "")
        stored = current[table][record_id]
        merged, changed = _merge(child, stored, rows)
        if changed:
            out[table] = merged
            before[table] = [{k: v for k, v in r.items() if k not in ("parent_id",)} for r in stored]
    return out, before


def _merge(child: Module, stored: list[Values], rows: list[Values]) -> tuple[list[Values], bool]:
    key = child_key(child)
    by_key = {r[key]: r for r in stored} if key else {}
    merged: list[Values] = []
    used: set[int] = set()
    changed = False
    for values in rows:
        old = by_key.get(values.get(key)) if key else None
        if old is not None and old["id"] not in used:
            used.add(old["id"])
            changed = changed or any(not same(child.field(n), old.get(n), v) for n, v in values.items())
            merged.append({"id": old["id"], **values})
        else:
            changed = True
            merged.append(dict(values))
    merged += [{"id": r["id"]} for r in stored if r["id"] not in used]
    return merged, changed
