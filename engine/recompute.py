"""Formulas that read today() or now() go stale; recompute them in batches (daily, and on demand), with the daily job
that also refreshes rollups and takes scheduled actions."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any

import sqlalchemy as sa

from engine.compute import compute_formulas
from engine.records import children
from engine.runtime import Runtime
from engine.spec import Module

CLOCK_NAMES = frozenset({"today", "now"})
BATCH = 1000
log = logging.getLogger("loom.recompute")


def clock_formulas(module: Module) -> list[str]:
    """Names of the module's formula fields whose value depends on the date (directly or through others)."""
    formulas = {f.name: f.expr.names for f in module.formula_fields if f.expr is not None}
    stale = {name for name, names in formulas.items() if names & CLOCK_NAMES}
    grew = True
    while grew:
        more = {name for name, names in formulas.items() if names & stale} - stale
        stale |= more
        grew = bool(more)
    return sorted(stale)


def recompute(rt: Runtime, module_name: str | None = None) -> int:
    """Recompute date-dependent formulas of one module (or all); returns how many rows changed."""
    modules = [rt.spec.module(module_name)] if module_name else list(rt.spec.modules.values())
    return sum(_module(rt, m) for m in modules if clock_formulas(m))


def _module(rt: Runtime, module: Module) -> int:
    table, names, changed, last = rt.tables[module.name], clock_formulas(module), 0, 0
    stored = [f.name for f in module.stored_fields]
    while True:
        with rt.db.begin() as conn:
            rows = [dict(r) for r in conn.execute(sa.select(*(table.c[n] for n in stored)).where(table.c.id > last)
                                                  .order_by(table.c.id).limit(BATCH)).mappings()]
            if not rows:
                return changed
            kids = children(conn, rt, module, [r["id"] for r in rows]) if module.tables else {}
            updates = [u for u in (_fresh(module, r, names, kids) for r in rows) if u]
            if updates:
                params = [{"_id": u.pop("id"), **{f"_{k}": v for k, v in u.items()}} for u in updates]
                for group in _by_columns(params):
                    cols = [k[1:] for k in group[0] if k != "_id"]
                    conn.execute(sa.update(table).where(table.c.id == sa.bindparam("_id"))
                                 .values({c: sa.bindparam(f"_{c}") for c in cols}), group)
                changed += len(updates)
            last = rows[-1]["id"]


def _fresh(module: Module, row: dict[str, Any], names: list[str], kids: dict[str, dict[int, list[dict[str, Any]]]]) -> dict[str, Any]:
    values = dict(row)
    extra = {fname: per.get(row["id"], []) for fname, per in kids.items()}
    compute_formulas(module, values, extra)
    diff = {n: values[n] for n in names if values.get(n) != row.get(n)}
    return {"id": row["id"], **diff} if diff else {}


def _by_columns(params: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for p in params:
        groups.setdefault(tuple(sorted(p)), []).append(p)
    return list(groups.values())


def daily(rt: Runtime) -> str:
    """The daily job: rollups refreshed (a backstop for writes that bypass the records service), date formulas
    recomputed, then scheduled actions taken on records that now match; returns what it did."""
    from engine import rollups, schedules

    with rt.db.begin() as conn:
        rollups.refresh_all(conn, rt)
    changed = recompute(rt)
    ran = schedules.run_schedules(rt)
    done = ", ".join(f"{r.module}.{r.schedule} {r.done}" for r in ran)
    return f"{changed} rows of date-dependent formulas updated" + (f"; scheduled actions: {done}" if ran else "")


def claim_today(rt: Runtime, today: dt.date | None = None) -> bool:
    """Whether this process is the first to recompute today (one worker of many does the work)."""
    counters = rt.tables.metadata.tables["loom_counter"]
    key = f"recompute:{(today or dt.date.today()).isoformat()}"
    try:
        with rt.db.begin() as conn:
            conn.execute(sa.insert(counters).values(series=key, value=1))
    except sa.exc.IntegrityError:
        return False
    return True


def start_daily(rt: Runtime, stop: threading.Event) -> threading.Thread:
    """A daemon thread: recompute once a day (checked hourly), claimed by one worker per day."""

    def loop() -> None:
        while not stop.wait(5):
            try:
                if claim_today(rt):
                    log.info("daily job: %s", daily(rt))
            except sa.exc.SQLAlchemyError:
                log.exception("daily recompute failed")
            if stop.wait(3600):
                return

    thread = threading.Thread(target=loop, name="loom-recompute", daemon=True)
    thread.start()
    return thread
