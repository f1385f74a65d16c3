"""The admins' customization layer: versioned revisions stored in the database, applied with their migration."""

from __future__ import annotations

import datetime as dt
import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import yaml

from engine import migrate
from engine.auth.version import bump
from engine.errors import MetadataError, NotFound, Problem
from engine.loader import FOLDERS, Bundle, Loaded, load
from engine.runtime import Runtime, Settings, open_runtime
from engine.systables import add_system_tables
from engine.tables import build_tables

LAYER_KEYS = ("app", *FOLDERS)


@dataclass(frozen=True)
class Revision:
    """One applied customization layer: who, when, why, the whole layer and the YAML diff it made."""

    id: int
    author: str
    at: dt.datetime
    message: str | None
    layer: Mapping[str, Any] = field(compare=False)
    diff: str = ""
    rolled_back_from: int | None = None


@dataclass(frozen=True)
class Preview:
    """What applying a layer would do: the migration plan and the diff of the effective metadata."""

    plan: migrate.Plan
    diff: str
    runtime: Runtime = field(compare=False, repr=False)


def _table() -> sa.Table:
    md = sa.MetaData()
    add_system_tables(md)
    return md.tables["loom_revision"]


def current_layer(db: sa.Engine) -> tuple[int, dict[str, Any]]:
    """(revision id, layer) of the newest revision; (0, {}) on a database without one."""
    if not sa.inspect(db).has_table("loom_revision"):
        return 0, {}
    with db.connect() as conn:
        return _latest(conn)


def _latest(conn: sa.Connection) -> tuple[int, dict[str, Any]]:
    if not sa.inspect(conn).has_table("loom_revision"):
        return 0, {}
    table = _table()
    row = conn.execute(sa.select(table.c.id, table.c.layer).order_by(table.c.id.desc()).limit(1)).first()
    return (0, {}) if row is None else (int(row.id), json.loads(row.layer))


def _revision(row: Any) -> Revision:
    return Revision(int(row.id), row.author, row.at, row.message, json.loads(row.layer), row.diff, row.rolled_back_from)


def revisions(db: sa.Engine) -> list[Revision]:
    """Every revision, newest first."""
    if not sa.inspect(db).has_table("loom_revision"):
        return []
    table = _table()
    with db.connect() as conn:
        return [_revision(r) for r in conn.execute(sa.select(table).order_by(table.c.id.desc()))]


def revision(db: sa.Engine, revision_id: int) -> Revision:
    """One revision (NotFound when it does not exist)."""
    found = next((r for r in revisions(db) if r.id == revision_id), None)
    if found is None:
        raise NotFound(f"no customization revision {revision_id}")
    return found


def _check_shape(layer: Any) -> None:
    if not isinstance(layer, Mapping):
        raise MetadataError([Problem("customizations", 1, "(root)", "a layer is a mapping with keys app, modules, workflows, reports")])
    problems = [Problem("customizations", 1, str(k), f"unknown key (known: {', '.join(LAYER_KEYS)})") for k in layer if k not in LAYER_KEYS]
    problems += [Problem("customizations", 1, k, "must be a mapping of name to document") for k in FOLDERS
                 if layer.get(k) is not None and not isinstance(layer[k], Mapping)]
    if layer.get("app") is not None and not isinstance(layer["app"], Mapping):
        problems.append(Problem("customizations", 1, "app", "must be a mapping"))
    if problems:
        raise MetadataError(problems)


def _documents(bundle: Bundle) -> dict[str, str]:
    docs = {"app.yaml": bundle.app.data}
    docs.update({f"{folder}/{name}.yaml": doc.data for folder in FOLDERS for name, doc in bundle.docs[folder].items()})
    return {path: yaml.safe_dump(data, allow_unicode=True, sort_keys=False) for path, data in docs.items()}


def metadata_diff(before: Bundle, after: Bundle) -> str:
    """A unified diff of the effective (merged) YAML of every document that changed."""
    old, new = _documents(before), _documents(after)
    chunks: list[str] = []
    for path in sorted(set(old) | set(new)):
        a, b = old.get(path, ""), new.get(path, "")
        if a != b:
            chunks.extend(difflib.unified_diff(a.splitlines(keepends=True), b.splitlines(keepends=True),
                                               f"a/{path}" if a else "/dev/null", f"b/{path}" if b else "/dev/null"))
    return "".join(chunks)


def _runtime(target: Settings | Runtime) -> tuple[Runtime, bool]:
    return (target, False) if isinstance(target, Runtime) else (open_runtime(target), True)


def _in_force(rt: Runtime, conn: sa.Connection) -> Loaded:
    """The metadata in force now, as the database says (another admin may have applied a revision since `rt` was built)."""
    revision_id, layer = _latest(conn)
    if revision_id == rt.revision:
        return rt.loaded
    return load(rt.settings.metadata, layer or None, f"customizations (rev {revision_id})")


def reload(rt: Runtime) -> Runtime:
    """`rt` rebuilt on the newest revision in the database (itself when it is current)."""
    with rt.db.connect() as conn:
        revision_id, layer = _latest(conn)
    if revision_id == rt.revision:
        return rt
    loaded = load(rt.settings.metadata, layer or None, f"customizations (rev {revision_id})")
    return Runtime(rt.settings, loaded.spec, build_tables(loaded.spec), rt.db, loaded, revision_id)


def _with_layer(rt: Runtime, layer: Mapping[str, Any]) -> Runtime:
    _check_shape(layer)
    loaded = load(rt.settings.metadata, dict(layer) or None, "customizations (new revision)")
    return Runtime(rt.settings, loaded.spec, build_tables(loaded.spec), rt.db, loaded, rt.revision)


def preview(target: Settings | Runtime, layer: Mapping[str, Any]) -> Preview:
    """What `apply_layer` would do, without doing it: MetadataError when the layer is invalid."""
    rt, owned = _runtime(target)
    try:
        new = _with_layer(rt, layer)
        with rt.db.connect() as conn:
            before = _in_force(rt, conn)
            return Preview(migrate.plan(new, conn, before.spec), metadata_diff(before.bundle, new.loaded.bundle), new)
    finally:
        if owned:
            rt.db.dispose()


def apply_layer(target: Settings | Runtime, layer: Mapping[str, Any], author: str, message: str | None = None,
                rolled_back_from: int | None = None) -> Revision:
    """Validate the layer, migrate the database and store the revision, all in one transaction.

    Invalid metadata raises MetadataError and a refused migration MigrationRefused; in both cases nothing is written.
    """
    rt, owned = _runtime(target)
    try:
        new = _with_layer(rt, layer)
        with migrate.transaction(rt) as conn:
            before = _in_force(rt, conn)
            migrate.apply(new, migrate.plan(new, conn, before.spec), conn)
            done = _store(conn, layer, author, message, metadata_diff(before.bundle, new.loaded.bundle), rolled_back_from)
            bump(conn, revision=done.id)  # every worker's next request sees the new revision and reloads
            return done
    finally:
        if owned:
            rt.db.dispose()


def _store(conn: sa.Connection, layer: Mapping[str, Any], author: str, message: str | None, diff: str,
           rolled_back_from: int | None) -> Revision:
    at = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    values = {"author": author, "at": at, "message": message, "layer": json.dumps(layer, ensure_ascii=False), "diff": diff,
              "rolled_back_from": rolled_back_from}
    key = conn.execute(sa.insert(_table()).values(**values)).inserted_primary_key
    assert key is not None
    return Revision(int(key[0]), author, at, message, dict(layer), diff, rolled_back_from)


def rollback(target: Settings | Runtime, revision_id: int, author: str = "system", message: str | None = None) -> Revision:
    """A new revision whose layer is the one before `revision_id`; columns that revision added stay, hidden."""
    rt, owned = _runtime(target)
    try:
        history = revisions(rt.db)
        if not any(r.id == revision_id for r in history):
            raise NotFound(f"no customization revision {revision_id}")
        earlier = next((r for r in history if r.id < revision_id), None)
        layer = dict(earlier.layer) if earlier else {}
        return apply_layer(rt, layer, author, message or f"roll back revision {revision_id}", rolled_back_from=revision_id)
    finally:
        if owned:
            rt.db.dispose()
