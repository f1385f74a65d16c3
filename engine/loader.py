"""Load a bundle (and the bundles it extends, and the customization layer) into a Spec."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.build import build_spec
from engine.checks import cross_check
from engine.errors import MetadataError, Problem
from engine.layers import Merged, overlay, stamp
from engine.schema import schema_errors
from engine.spec import Spec
from engine.yamlfile import load_file

FOLDERS = {"modules": "module", "workflows": "workflow", "reports": "report"}
SUFFIXES = (".yaml", ".yml", ".json")
MAX_EXTENDS = 8


@dataclass
class Bundle:
    """Merged documents of every layer: the manifest and each module, workflow and report."""

    app: Merged
    docs: dict[str, dict[str, Merged]] = field(default_factory=lambda: {k: {} for k in FOLDERS})
    root: Path = Path(".")


@dataclass
class Loaded:
    """The result of loading: the Spec and the merged documents (for `metadata show`)."""

    spec: Spec
    bundle: Bundle


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file())


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _manifest(root: Path) -> Path:
    for name in ("app.yaml", "app.yml", "app.json"):
        if (root / name).is_file():
            return root / name
    raise MetadataError([Problem(str(root / "app.yaml"), 1, "(root)", "bundle manifest not found")])


def read_bundle(root: Path, depth: int = 0) -> Bundle:
    """Read a bundle folder and, first, every bundle it extends; merge them in order."""
    problems: list[Problem] = []
    app_path = _manifest(root)
    app_doc = load_file(app_path, _shown(app_path, root))
    app = stamp(app_doc.data or {}, app_doc.lines, app_doc.file, root.name)
    bundle = Bundle(app, root=root)
    for folder, _kind in FOLDERS.items():
        for path in _files(root / folder):
            try:
                doc = load_file(path, _shown(path, root))
            except MetadataError as exc:
                problems.extend(exc.problems)
                continue
            name = doc.data.get("name") if isinstance(doc.data, dict) else None
            key = str(name) if name else path.stem
            bundle.docs[folder][key] = stamp(doc.data if doc.data is not None else {}, doc.lines, doc.file, root.name)
    if problems:
        raise MetadataError(problems)
    parent = app.data.get("extends") if isinstance(app.data, dict) else None
    if not parent:
        return bundle
    if depth >= MAX_EXTENDS:
        raise MetadataError([Problem(app_doc.file, app_doc.line("extends"), "extends", "too many levels of extends")])
    base_root = (root / str(parent)).resolve()
    if not base_root.is_dir():
        raise MetadataError([Problem(app_doc.file, app_doc.line("extends"), "extends", f"bundle folder not found: {base_root}")])
    return merge_bundles(read_bundle(base_root, depth + 1), bundle)


def merge_bundles(base: Bundle, top: Bundle) -> Bundle:
    """Overlay `top` on `base` (same-named modules merge; new ones are added)."""
    app_top = Merged({k: v for k, v in top.app.data.items() if k != "extends"}, top.app.origin)
    merged = Bundle(overlay(base.app, app_top), root=top.root)
    for folder in FOLDERS:
        docs = dict(base.docs[folder])
        for name, doc in top.docs[folder].items():
            data = {k: v for k, v in doc.data.items() if k != "extends"} if isinstance(doc.data, dict) else doc.data
            docs[name] = overlay(docs[name], Merged(data, doc.origin)) if name in docs else doc
        merged.docs[folder] = docs
    return merged


def apply_customizations(bundle: Bundle, layer: dict[str, Any], label: str) -> Bundle:
    """Overlay the admin customization layer ({"app": {...}, "modules": {name: {...}}, ...})."""
    top = Bundle(stamp(layer.get("app", {}), {}, label, label), root=bundle.root)
    for folder in FOLDERS:
        for name, data in (layer.get(folder) or {}).items():
            top.docs[folder][name] = stamp(data, {}, label, label)
    return merge_bundles(bundle, top)


def validate_bundle(bundle: Bundle) -> list[Problem]:
    """Every schema and cross-reference problem of a merged bundle, in file order."""
    problems = [_problem(bundle.app, p, m) for p, m in schema_errors("app", bundle.app.data)]
    for folder, kind in FOLDERS.items():
        for doc in bundle.docs[folder].values():
            problems.extend(_problem(doc, p, m) for p, m in schema_errors(kind, doc.data))
    if not problems:
        problems = cross_check(bundle)
    return sorted(set(problems), key=lambda p: (p.file, p.line, p.path))


def _problem(doc: Merged, path: str, message: str) -> Problem:
    file, line, _layer = doc.where("" if path == "(root)" else path)
    return Problem(file, line, path, message)


def load(root: Path | str, customizations: dict[str, Any] | None = None, label: str = "customizations") -> Loaded:
    """Load, merge, validate and build; raises MetadataError listing every problem."""
    bundle = read_bundle(Path(root))
    if customizations:
        bundle = apply_customizations(bundle, customizations, label)
    problems = validate_bundle(bundle)
    if problems:
        raise MetadataError(problems)
    return Loaded(build_spec(bundle), bundle)
