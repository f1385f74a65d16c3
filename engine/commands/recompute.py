"""`loom recompute [MODULE]`: refresh formulas that depend on today's date (without MODULE: the whole daily job)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add(subs: Any, common: argparse.ArgumentParser) -> None:
    """Register the command."""
    p = subs.add_parser("recompute", parents=[common], help="recompute date-dependent formulas (overdue days, days in stage…)")
    p.add_argument("module", nargs="?", help="one module (default: all, with the rest of the daily job: rollups and scheduled actions)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Recompute and say how many rows changed."""
    from engine.migrate import ensure_schema
    from engine.recompute import daily, recompute
    from engine.records import module_of
    from engine.runtime import Settings, open_runtime

    rt = open_runtime(Settings(metadata=Path(args.metadata), db_url=args.db))
    ensure_schema(rt)
    if args.module:
        module_of(rt, args.module)
        print(f"{recompute(rt, args.module)} rows updated")
    else:
        print(daily(rt))
    return 0
