"""`loom migrate`: show the migration plan (`--plan`), apply it, or purge a hidden column or table (`--purge`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine.errors import MigrationRefused
from engine.migrate import Plan, apply, plan, purge, purge_plan
from engine.runtime import Runtime, Settings, open_runtime


def add(subs: Any, common: argparse.ArgumentParser) -> None:
    """Register the command."""
    p = subs.add_parser("migrate", parents=[common], help="bring the database schema up to the metadata (nothing is lost)")
    p.add_argument("--plan", action="store_true", help="only print the plan: each operation, its kind and its SQL")
    p.add_argument("--purge", metavar="MODULE[.FIELD]", help="drop a hidden column (or a removed module's table) and its data")
    p.add_argument("--yes", action="store_true", help="confirm --purge")
    p.set_defaults(run=run)


def render(the_plan: Plan, dialect: str) -> str:
    """The plan as text: a table of kind, operation and description, then the SQL of each operation."""
    if not the_plan.ops:
        return "the database is up to date: nothing to do"
    rows = [(op.kind, type(op).__name__, op.description) for op in the_plan.ops]
    widths = [max(len(r[i]) for r in [("kind", "operation", ""), *rows]) for i in range(2)]
    lines = [f"{'kind':<{widths[0]}}  {'operation':<{widths[1]}}  description"]
    lines += [f"{k:<{widths[0]}}  {o:<{widths[1]}}  {d}" for k, o, d in rows]
    statements = [(type(op).__name__, op.description, op.sql) for op in the_plan.ops if op.sql]
    if statements:
        lines += ["", f"-- SQL ({dialect})"]
        for name, description, sql in statements:
            lines += [f"-- {name}: {description}", *sql]
    if the_plan.refusals:
        lines += ["", "refused, nothing would run:", *(f"  {r}" for r in the_plan.refusals)]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the plan; apply it unless --plan; a refused plan exits 1 with the reasons."""
    rt = open_runtime(Settings(metadata=Path(args.metadata), db_url=args.db))
    try:
        return _purge(rt, args.purge, args.yes) if args.purge else _migrate(rt, args.plan)
    finally:
        rt.db.dispose()


def _migrate(rt: Runtime, only_plan: bool) -> int:
    current = plan(rt)
    print(render(current, rt.db.dialect.name))
    if current.refusals:
        return 1
    if only_plan or current.empty:
        return 0
    try:
        apply(rt, current)
    except MigrationRefused as exc:
        print(f"refused: {exc.message}")
        return 1
    print(f"applied {sum(1 for op in current.ops if op.sql)} operation(s) in one transaction")
    return 0


def _purge(rt: Runtime, target: str, confirmed: bool) -> int:
    print(render(purge_plan(rt, target), rt.db.dialect.name))
    if not confirmed:
        print(f"nothing done: purging drops data for good; run `loom migrate --purge {target} --yes` to confirm")
        return 1
    purge(rt, target)
    print(f"purged {target}")
    return 0
