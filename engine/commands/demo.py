"""`loom demo [--size small|large]`: load the bundle's demo data and create one demo user per role."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from engine.demo import SIZES


def add(subs: Any, common: argparse.ArgumentParser) -> None:
    """Register the command."""
    p = subs.add_parser("demo", parents=[common], help="load deterministic demo data and one demo user per role (password: demo)")
    p.add_argument("--size", choices=SIZES, default="small", help="small (the default) or large (1,000,000 opportunities, for benchmarks)")
    p.add_argument("--force", action="store_true", help="load even when the database already holds records")
    p.add_argument("--check", action="store_true", help="only check demo.yaml against its schema and the bundle")
    p.add_argument("--anchor", type=dt.date.fromisoformat, help="the demo's 'today' (YYYY-MM-DD); default: demo.yaml's, else today")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Migrate, then load (or only check); exit 0 also when data exists and nothing was loaded (it says so)."""
    from engine.demo import demo_plan, load_demo
    from engine.migrate import ensure_schema
    from engine.runtime import Settings, open_runtime

    rt = open_runtime(Settings(metadata=Path(args.metadata), db_url=args.db))
    try:
        if args.check:
            plan = demo_plan(rt)
            print(f"ok: {plan.file}: {len(plan.modules)} modules, {len(plan.users)} demo users")
            return 0
        ensure_schema(rt)
        load_demo(rt, size=args.size, only_if_empty=not args.force, echo=lambda line: print(line, flush=True), anchor=args.anchor)
    finally:
        rt.db.dispose()
    return 0
