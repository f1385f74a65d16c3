"""`loom schema [KIND]`: print the JSON Schema of app, module, workflow or report files."""

from __future__ import annotations

import argparse
import json
from typing import Any

from engine.schema import KINDS, schema


def add(subs: Any, common: argparse.ArgumentParser) -> None:
    """Register the command."""
    p = subs.add_parser("schema", help="print the JSON Schemas of metadata files")
    p.add_argument("kind", nargs="?", choices=KINDS, help="one kind (default: all, as one JSON object)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the schema(s)."""
    out = schema(args.kind) if args.kind else {k: schema(k) for k in KINDS}
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0
