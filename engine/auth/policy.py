"""Casbin policies in the database: compiled from metadata, stored through the SQLAlchemy adapter, versioned.

One row of `loom_policy_version` counts policy changes. Every request reads it (in the same query
that finds its session), and a worker whose loaded policies are older reloads them before
answering: a change published by one worker applies to the next request on every other worker.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field

import casbin
import sqlalchemy as sa
from casbin.model import Model
from casbin_sqlalchemy_adapter import Adapter
from sqlalchemy.orm import DeclarativeBase

from engine.auth.allowlist import Allow
from engine.auth.allowlist import load as load_allowlist
from engine.auth.grants import Lines, ModuleGrant, resolve
from engine.auth.rules import DOMAIN, MODEL, Rule, compile_spec, obj_match, scope_within
from engine.auth.version import bump, read_version
from engine.spec import Module, Spec
from engine.systables import add_system_tables

log = logging.getLogger("loom.policy")
_MD = sa.MetaData()
add_system_tables(_MD)
MAX_CACHED = 4096


class _Base(DeclarativeBase):
    pass


class PolicyLine(_Base):
    """A policy row as the Casbin adapter sees it (table loom_policy_rule)."""

    __table__ = _MD.tables["loom_policy_rule"]

    def __str__(self) -> str:
        values = [getattr(self, name) for name in ("ptype", "v0", "v1", "v2", "v3", "v4", "v5")]
        return ", ".join(str(v) for v in values if v is not None)


def new_enforcer(adapter: Adapter | None = None) -> casbin.Enforcer:
    """A Casbin enforcer with Loom's model (domains, scopes, deny lines) and its matcher functions."""
    model = Model()
    model.load_model_from_text(MODEL)
    enforcer = casbin.Enforcer(model, adapter) if adapter is not None else casbin.Enforcer(model)
    enforcer.add_function("objMatch", obj_match)
    enforcer.add_function("scopeWithin", scope_within)
    return enforcer


def adapter(db: sa.Engine) -> Adapter:
    """The Casbin SQLAlchemy adapter on Loom's policy table (created by the schema, not by the adapter)."""
    return Adapter(db, db_class=PolicyLine, create_all_models=False)


def digest(rules: tuple[Rule, ...]) -> str:
    """A fingerprint of a set of lines (order-independent)."""
    return hashlib.sha256("\n".join(sorted(", ".join(r.line) for r in rules)).encode()).hexdigest()


def save_rules(db: sa.Engine, rules: tuple[Rule, ...], revision: int) -> int:
    """Replace every stored line through the adapter, then bump the version; returns it."""
    memory = new_enforcer()
    if rules:
        memory.add_policies([list(r.line) for r in rules])
    adapter(db).save_policy(memory.get_model())
    with db.begin() as conn:
        return bump(conn, digest(rules), revision)


def publish(db: sa.Engine, spec: Spec, revision: int = 0, domain: str = DOMAIN) -> bool:
    """Store the metadata's policies unless they are stored already (or a newer customization revision is);
    True when something changed."""
    rules = compile_spec(spec, domain)
    with db.connect() as conn:
        row = read_version(conn)
    if row is not None and row.source_hash == digest(rules):
        return False
    if row is not None and revision < int(row.revision):
        log.warning("policies come from customization revision %s; this worker runs revision %s and leaves them", row.revision, revision)
        return False
    save_rules(db, rules, revision)
    return True


def load_rules(db: sa.Engine) -> tuple[casbin.Enforcer, Lines]:
    """An enforcer loaded from the database through the adapter, and its lines grouped by role."""
    enforcer = new_enforcer(adapter(db))
    by_role: dict[str, list[Rule]] = {}
    for values in enforcer.get_policy():
        if len(values) == 6:
            by_role.setdefault(values[0], []).append(Rule(*values))
    return enforcer, {role: tuple(rules) for role, rules in by_role.items()}


@dataclass(frozen=True)
class Snapshot:
    """The policies one worker has loaded, and the version they belong to."""

    version: int
    enforcer: casbin.Enforcer
    lines: Lines
    allowlist: tuple[Allow, ...] = ()
    revision: int = 0


@dataclass
class PolicyStore:
    """One app's view of the stored policies: reloads on a newer version, caches grants per (version, roles, module)."""

    db: sa.Engine
    domain: str = DOMAIN
    snapshot: Snapshot | None = None
    spec_seen: Spec | None = None
    _grants: dict[tuple[int, tuple[str, ...], str], ModuleGrant] = field(default_factory=dict)
    _compiled: tuple[Spec, tuple[Rule, ...]] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def open(db: sa.Engine, spec: Spec, revision: int = 0) -> PolicyStore:
        """Publish the spec's policies if they changed, and load them."""
        store = PolicyStore(db)
        store.follow(spec, revision)
        return store

    def follow(self, spec: Spec, revision: int = 0) -> None:
        """Publish `spec`'s policies when this worker sees a spec it has not published yet (a metadata change)."""
        if spec is self.spec_seen:
            return
        with self._lock:
            if spec is self.spec_seen:
                return
            publish(self.db, spec, revision, self.domain)
            self.spec_seen = spec
        self.refresh(None)

    def compiled(self, spec: Spec) -> tuple[Rule, ...]:
        """The lines compiled from `spec` (with their metadata sources), kept for the last spec asked."""
        if self._compiled is None or self._compiled[0] is not spec:
            self._compiled = (spec, compile_spec(spec, self.domain))
        return self._compiled[1]

    def refresh(self, version: int | None) -> Snapshot:
        """The loaded policies, reloaded first when `version` (read from the database) differs (None: read it)."""
        current = self.snapshot
        if current is not None and version is not None and current.version == version:
            return current
        with self._lock:
            with self.db.connect() as conn:
                row = read_version(conn)
            if version is None:
                version = int(row.version) if row is not None else 0
            if self.snapshot is None or self.snapshot.version != version:
                enforcer, lines = load_rules(self.db)
                with self.db.connect() as conn:
                    allow = load_allowlist(conn)
                self.snapshot = Snapshot(version, enforcer, lines, allow, int(row.revision) if row is not None else 0)
                self._grants.clear()
            return self.snapshot

    def grant(self, spec: Spec, module: Module, roles: tuple[str, ...]) -> ModuleGrant:
        """The roles' grant in `module` under the loaded policies (computed once per version, role set and module)."""
        snap = self.snapshot or self.refresh(None)
        key = (snap.version, tuple(sorted(roles)), module.name)
        found = self._grants.get(key)
        if found is None:
            found = resolve(snap.lines, spec, module, key[1], self.domain)
            if len(self._grants) >= MAX_CACHED:
                self._grants.clear()
            self._grants[key] = found
        return found
