"""Scheduled actions: record actions the engine takes by itself once a day (a customer not followed up for 30 days
goes back to the pool). The filter picks the records in SQL; the action's own condition is checked on each."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa

from engine import actions
from engine.access import SystemAccess
from engine.errors import Invalid, NotFound
from engine.query import parse_list_query, where_clause
from engine.runtime import Runtime
from engine.spec import Module, Schedule

BATCH = 500
log = logging.getLogger("loom.schedules")


@dataclass(frozen=True)
class Ran:
    """What one schedule did: how many records it acted on, and how many it skipped (the condition no longer held)."""

    module: str
    schedule: str
    done: int
    skipped: int


def due_ids(rt: Runtime, module: Module, schedule: Schedule, after: int = 0) -> list[int]:
    """The next ids (above `after`) of records matching the schedule's filter."""
    table = rt.tables[module.name]
    query = parse_list_query(module, list(schedule.filter), {f.name for f in module.stored_fields})
    stmt = sa.select(table.c.id).where(table.c.id > after, *where_clause(table, module, query.conditions, None))
    with rt.db.connect() as conn:
        return list(conn.execute(stmt.order_by(table.c.id).limit(BATCH)).scalars())


def run_schedule(rt: Runtime, module: Module, schedule: Schedule) -> Ran:
    """Take the schedule's action on every matching record, each in its own transaction, as the system."""
    done = skipped = last = 0
    while ids := due_ids(rt, module, schedule, last):
        for record_id in ids:
            try:
                actions.run(rt, SystemAccess(), module.name, record_id, schedule.action)
                done += 1
            except (Invalid, NotFound):  # changed since the filter ran, or the condition does not hold
                skipped += 1
        last = ids[-1]
    return Ran(module.name, schedule.name, done, skipped)


def run_schedules(rt: Runtime) -> list[Ran]:
    """Run every schedule of every module once."""
    out = []
    for module in rt.spec.modules.values():
        for schedule in module.schedules:
            ran = run_schedule(rt, module, schedule)
            log.info("schedule %s.%s: %s done, %s skipped", ran.module, ran.schedule, ran.done, ran.skipped)
            out.append(ran)
    return out
