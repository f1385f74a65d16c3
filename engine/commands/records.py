"""`loom records`: the recycle bin, restoring deleted records, and reverting a record to an earlier version."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine import audit, records
from engine.access import SystemAccess


def add(subs: Any, common: argparse.ArgumentParser) -> None:
    """Register `loom records bin|restore|revert|history`."""
    p = subs.add_parser("records", parents=[common], help="recycle bin, restore and revert records")
    p.add_argument("action", choices=["bin", "restore", "revert", "history"])
    p.add_argument("module", nargs="?", help="module name")
    p.add_argument("id", nargs="?", type=int, help="record id")
    p.add_argument("--version", dest="to_version", type=int, help="revert: the version to go back to")
    p.set_defaults(run=run)


def _runtime(args: argparse.Namespace) -> Any:
    from engine.migrate import ensure_schema
    from engine.runtime import Settings, open_runtime

    rt = open_runtime(Settings(metadata=Path(args.metadata), db_url=args.db))
    ensure_schema(rt)
    return rt


def run(args: argparse.Namespace) -> int:
    """Do the asked action and print what happened."""
    rt = _runtime(args)
    module = records.module_of(rt, args.module) if args.module else None
    if args.action == "bin":
        for entry in audit.recycle_bin(rt, module):
            print(f"{entry['deleted_at']:%Y-%m-%d %H:%M}  {entry['module']} #{entry['record_id']}  {entry['title'] or ''}")
        return 0
    if module is None or args.id is None:
        print("error: give MODULE and ID")
        return 1
    if args.action == "restore":
        audit.restore_deleted(rt, module, args.id, None)
        print(f"restored {module.name} #{args.id}")
    elif args.action == "revert":
        if args.to_version is None:
            print("error: give --version N")
            return 1
        done = records.revert(rt, SystemAccess(), module.name, args.id, args.to_version)
        print(f"{module.name} #{args.id} reverted to version {args.to_version} (now version {done['version']})")
    else:
        with rt.db.connect() as conn:
            for row in reversed(audit.history(conn, rt, module, args.id, frozenset(module.by_name))):
                change = f"{row['change']:<7} {row['field'] or '':<20} {row['old'] or ''} -> {row['new'] or ''}"
                print(f"v{row['version']} {row['at']:%Y-%m-%d %H:%M} {change}")
    return 0
