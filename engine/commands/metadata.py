"""`loom metadata show MODULE`: the merged module and which layer set each property."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from engine.customize import current_layer
from engine.errors import NotFound
from engine.loader import load
from engine.runtime import make_engine


def add(subs: Any, common: argparse.ArgumentParser) -> None:
    """Register the command."""
    p = subs.add_parser("metadata", parents=[common], help="inspect the effective metadata")
    p.add_argument("action", choices=["show"])
    p.add_argument("module", help="module name")
    p.add_argument("--no-origin", action="store_true", help="print the merged YAML only")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the merged YAML, then `path  <- layer (file:line)` for every property."""
    revision, layer = current_layer(make_engine(args.db))
    loaded = load(Path(args.metadata), layer or None, f"customizations (rev {revision})")
    doc = loaded.bundle.docs["modules"].get(args.module)
    if doc is None:
        raise NotFound(f"unknown module '{args.module}' (known: {', '.join(sorted(loaded.spec.modules))})")
    print(yaml.safe_dump(doc.data, allow_unicode=True, sort_keys=False).rstrip())
    if not args.no_origin:
        print("\n# origin of each property")
        width = max(len(p) for p in doc.origin)
        for path, (file, line, layer_name) in sorted(doc.origin.items(), key=lambda kv: _order(kv[0])):
            if path:
                print(f"{path:<{width}}  <- {layer_name} ({file}:{line})")
    return 0


def _order(path: str) -> list[Any]:
    import re

    return [int(p) if p.isdigit() else p for p in re.split(r"[.\[\]]+", path) if p]
