"""`loom check`: validate the metadata and report every problem as file:line: path: message."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine.loader import load


def add(subs: Any, common: argparse.ArgumentParser) -> None:
    """Register the command."""
    p = subs.add_parser("check", parents=[common], help="validate the metadata bundle")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load and validate; MetadataError (exit 2) lists every problem."""
    loaded = load(Path(args.metadata))
    spec = loaded.spec
    print(f"ok: {spec.app.name} {spec.app.version}: {len(spec.modules)} modules, {len(spec.workflows)} workflows, "
          f"{len(spec.reports)} reports")
    return 0
