"""The policy version: one row counting changes to policies and allowlists, read by every request."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from engine.systables import add_system_tables

_MD = sa.MetaData()
add_system_tables(_MD)
VERSION = _MD.tables["loom_policy_version"]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def read_version(conn: sa.Connection) -> Any:
    """The version row (version, source_hash, revision), or None before the first publish."""
    return conn.execute(sa.select(VERSION.c.version, VERSION.c.source_hash, VERSION.c.revision).where(VERSION.c.id == 1)).first()


def version_query() -> sa.ScalarSelect[Any]:
    """The current policy version as a scalar subquery (joined into each request's session lookup)."""
    return sa.select(VERSION.c.version).where(VERSION.c.id == 1).scalar_subquery()


def bump(conn: sa.Connection, source_hash: str | None = None, revision: int | None = None) -> int:
    """Count one more change (policies, allowlists); returns the new version."""
    values: dict[str, Any] = {"version": VERSION.c.version + 1, "updated_at": _now()}
    if source_hash is not None:
        values["source_hash"] = source_hash
    if revision is not None:
        values["revision"] = revision
    if conn.execute(sa.update(VERSION).where(VERSION.c.id == 1).values(**values)).rowcount == 0:
        conn.execute(sa.insert(VERSION).values(id=1, version=1, source_hash=source_hash or "", revision=revision or 0, updated_at=_now()))
    return int(conn.execute(sa.select(VERSION.c.version).where(VERSION.c.id == 1)).scalar_one())
