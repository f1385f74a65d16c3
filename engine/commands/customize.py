"""`loom customize`: apply a customization layer from a file, list revisions, show one, roll one back."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine import customize
from engine.commands.migrate import render
from engine.runtime import Settings
from engine.yamlfile import load_file


def add(subs: Any, common: argparse.ArgumentParser) -> None:
    """Register `loom customize apply|preview|list|show|rollback`."""
    p = subs.add_parser("customize", parents=[common], help="the admins' customization layer: apply, list, show, roll back")
    p.add_argument("action", choices=["apply", "preview", "list", "show", "rollback"])
    p.add_argument("target", nargs="?", help="apply/preview: a layer file (YAML or JSON); show/rollback: a revision id")
    p.add_argument("--author", default="cli", help="who makes the change (stored in the revision)")
    p.add_argument("--message", "-m", help="why (stored in the revision)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Do the asked action and print what happened."""
    settings = Settings(metadata=Path(args.metadata), db_url=args.db)
    if args.action == "list":
        return _list(settings)
    if not args.target:
        print(f"error: `loom customize {args.action}` needs {'a file' if args.action in ('apply', 'preview') else 'a revision id'}")
        return 1
    if args.action in ("apply", "preview"):
        return _apply(settings, Path(args.target), args)
    return _revision(settings, int(args.target), args)


def _apply(settings: Settings, path: Path, args: argparse.Namespace) -> int:
    layer = load_file(path).data or {}
    if args.action == "preview":
        seen = customize.preview(settings, layer)
        print(seen.diff or "no change to the metadata")
        print(render(seen.plan, seen.runtime.db.dialect.name))
        return 1 if seen.plan.refusals else 0
    done = customize.apply_layer(settings, layer, args.author, args.message)
    print(f"revision {done.id} applied by {done.author}")
    return 0


def _list(settings: Settings) -> int:
    from engine.runtime import make_engine

    db = make_engine(settings.db_url)
    try:
        for r in customize.revisions(db):
            back = f" (rolls back {r.rolled_back_from})" if r.rolled_back_from else ""
            print(f"{r.id:>5}  {r.at:%Y-%m-%d %H:%M}  {r.author:<16}  {r.message or ''}{back}")
    finally:
        db.dispose()
    return 0


def _revision(settings: Settings, revision_id: int, args: argparse.Namespace) -> int:
    if args.action == "rollback":
        done = customize.rollback(settings, revision_id, args.author, args.message)
        print(f"revision {done.id} applied by {done.author}: rolls back revision {revision_id}")
        return 0
    from engine.runtime import make_engine

    db = make_engine(settings.db_url)
    try:
        r = customize.revision(db, revision_id)
    finally:
        db.dispose()
    print(f"revision {r.id} by {r.author} at {r.at:%Y-%m-%d %H:%M}: {r.message or ''}")
    print(r.diff or "(no change to the metadata)")
    return 0
