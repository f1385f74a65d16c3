"""`loom bundle export|import`: the effective metadata as a standalone bundle, or a customization layer as one YAML file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from engine import customize
from engine.errors import LoomError
from engine.loader import FOLDERS, load
from engine.runtime import Settings, make_engine
from engine.yamlfile import load_file


def add(subs: Any, common: argparse.ArgumentParser) -> None:
    """Register the command."""
    p = subs.add_parser("bundle", parents=[common], help="export the effective metadata or a customization layer; import a layer")
    p.add_argument("action", choices=["export", "import"])
    p.add_argument("path", help="export: a folder (or, with --layer, a file); import: a layer file")
    p.add_argument("--layer", action="store_true", help="export only the customization layer, as one YAML file")
    p.add_argument("--revision", type=int, help="the revision to export (default: the newest)")
    p.add_argument("--author", default="cli", help="import: who makes the change")
    p.add_argument("--message", "-m", help="import: why")
    p.set_defaults(run=run)


def _dump(data: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _layer(db_url: str, revision_id: int | None) -> tuple[int, dict[str, Any]]:
    db = make_engine(db_url)
    try:
        if revision_id is None:
            return customize.current_layer(db)
        return revision_id, dict(customize.revision(db, revision_id).layer)
    finally:
        db.dispose()


def export_bundle(metadata: Path, layer: dict[str, Any], target: Path) -> int:
    """Write base ⊕ overlays ⊕ `layer` as a standalone bundle folder; returns the number of files written."""
    if target.exists() and any(target.iterdir()):
        raise LoomError(f"{target} is not empty: export into a new folder")
    bundle = load(metadata, layer or None).bundle
    _dump({k: v for k, v in bundle.app.data.items() if k != "extends"}, target / "app.yaml")
    for folder in FOLDERS:
        for name, doc in bundle.docs[folder].items():
            _dump(doc.data, target / folder / f"{name}.yaml")
    return 1 + sum(len(bundle.docs[f]) for f in FOLDERS)


def run(args: argparse.Namespace) -> int:
    """Export or import, and say what was written."""
    path = Path(args.path)
    if args.action == "import":
        done = customize.apply_layer(Settings(metadata=Path(args.metadata), db_url=args.db),
                                     load_file(path).data or {}, args.author, args.message)
        print(f"revision {done.id} applied by {done.author} from {path}")
        return 0
    revision_id, layer = _layer(args.db, args.revision)
    if args.layer:
        _dump(layer, path)
        print(f"customization layer of revision {revision_id} written to {path}")
        return 0
    count = export_bundle(Path(args.metadata), layer, path)
    print(f"{count} files written to {path} (metadata with customizations of revision {revision_id})")
    return 0
