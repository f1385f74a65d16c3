"""`loom import` and `loom export`: spreadsheets in and out from the command line (as the system user)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.access import SystemAccess


def add(subs: Any, common: argparse.ArgumentParser) -> None:
    """Register `loom import MODULE FILE` and `loom export MODULE -o FILE`."""
    p = subs.add_parser("import", parents=[common], help="import an .xlsx or .csv file into a module")
    p.add_argument("module", help="module name")
    p.add_argument("file", nargs="?", help="the .xlsx or .csv file")
    p.add_argument("--mode", choices=["insert", "update", "upsert"], default="insert")
    p.add_argument("--key", help="field that finds existing records (update/upsert; default: a unique mapped field)")
    p.add_argument("--dry-run", action="store_true", help="show what would change; write nothing")
    p.add_argument("--skip-errors", action="store_true", help="import the valid rows even when others have errors")
    p.add_argument("--error-report", help="write the rows with errors to this .xlsx")
    p.add_argument("--undo", type=int, metavar="ID", help="undo the import numbered ID (as printed when it ran) instead")
    p.set_defaults(run=run_import)
    e = subs.add_parser("export", parents=[common], help="export a module's records to .xlsx or .csv")
    e.add_argument("module", help="module name")
    e.add_argument("-o", "--output", required=True, help="the file to write")
    e.add_argument("--format", choices=["xlsx", "csv"], help="default: from the file name")
    e.add_argument("--filter", action="append", default=[], metavar="FIELD=VALUE", help="list filters, e.g. stage=won or amount__gte=100")
    e.add_argument("--sort", help="sort field, '-' for descending (--sort=-amount)")
    e.add_argument("--columns", help="comma-separated fields, or 'all' (default: the list's columns)")
    e.add_argument("--locale", default="en", help="header language (en, zh)")
    e.set_defaults(run=run_export)


def _runtime(args: argparse.Namespace) -> Any:
    from engine.migrate import ensure_schema
    from engine.runtime import Settings, open_runtime

    rt = open_runtime(Settings(metadata=Path(args.metadata), db_url=args.db))
    ensure_schema(rt)
    return rt


def run_import(args: argparse.Namespace) -> int:
    """Import (logged, so that it can be undone), printing the counts and each problem; or undo an import."""
    from engine.io import log
    from engine.io.jobs import logged
    from engine.io.plan import Options
    from engine.io.readers import file_kind
    from engine.io.report import error_report

    if args.undo is None and not args.file:
        print("error: name the file to import (or --undo ID)", file=sys.stderr)
        return 2
    if args.undo is None and not Path(args.file).is_file():
        print(f"error: {args.file}: no such file", file=sys.stderr)
        return 2
    rt = _runtime(args)
    if args.undo is not None:
        return _undo(rt, log.load(rt, args.undo, module=args.module))
    path = str(Path(args.file).resolve())
    kind = file_kind(path, path)
    options = Options(args.mode, args.key, "skip" if args.skip_errors else "rollback", dry_run=args.dry_run)
    import_id = log.start(rt, args.module, None, Path(path).name, kind, path, options)
    try:
        status, result = logged(rt, SystemAccess(), import_id, args.module, path, kind, options)
    except Exception as exc:
        log.mark(rt, import_id, status="failed", message=str(getattr(exc, "message", "failed")))
        raise
    verb = "would insert" if not result.applied else "inserted"
    print(f"import {import_id}: {result.records} records: {verb} {result.inserted}, updated {result.updated}, unchanged {result.skipped}, "
          f"with errors {result.failed}" + ("" if result.applied else " — nothing was written"))
    for entry in result.samples["update"][:20]:
        changes = ", ".join(f"{k}: {a} → {b}" for k, (a, b) in entry["diff"].items())
        print(f"  row {entry['row']}: #{entry['id']} {changes}")
    for p in result.problems[:200]:
        print(f"  row {p.row}, {p.column or '-'}: {p.reason}" + (f" (value '{p.value}')" if p.value else ""), file=sys.stderr)
    if args.error_report and result.problems:
        Path(args.error_report).write_bytes(error_report(path, kind, result.header_row, [p.as_dict() for p in result.problems]))
        print(f"error report: {args.error_report}", file=sys.stderr)
    if status == "done":
        print(f"undo with: loom import {args.module} --undo {import_id}")
    return 1 if result.problems and not (args.skip_errors and result.applied) else 0


def _undo(rt: Any, entry: Any) -> int:
    from engine.io.undo import undo

    counts = undo(rt, SystemAccess(), entry)
    print(f"import {entry.id} undone: {counts['deleted']} deleted, {counts['restored']} restored")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Export the filtered records to the output file."""
    from engine.access import Actor
    from engine.io.export import export

    rt = _runtime(args)
    fmt = args.format or ("csv" if args.output.lower().endswith(".csv") else "xlsx")
    params = [tuple(f.split("=", 1)) for f in args.filter if "=" in f]
    bad = [f for f in args.filter if "=" not in f]
    if bad:
        print(f"error: --filter needs FIELD=VALUE, got '{bad[0]}'", file=sys.stderr)
        return 1
    params += [("sort", args.sort)] if args.sort else []
    params += [("columns", args.columns)] if args.columns else []
    with open(args.output, "wb") as out:
        count = export(rt, SystemAccess(Actor(locale=args.locale)), args.module, params, fmt, out)
    print(f"{count} rows written to {args.output}")
    return 0
