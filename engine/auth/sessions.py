"""Server-side sessions: an opaque cookie token, its hash in the database, idle and absolute timeouts."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from engine.auth.version import version_query
from engine.systables import add_system_tables

IDLE = dt.timedelta(hours=8)
ABSOLUTE = dt.timedelta(days=7)
TOUCH_EVERY = dt.timedelta(minutes=1)

_MD = sa.MetaData()
add_system_tables(_MD)
SESSIONS = _MD.tables["loom_session"]
USERS = _MD.tables["loom_user"]


@dataclass(frozen=True)
class Session:
    """A live session."""

    id: int
    user_id: int
    csrf: str
    kind: str


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def digest(token: str) -> str:
    """The stored form of a token (a SHA-256 hex digest)."""
    return hashlib.sha256(token.encode()).hexdigest()


def start(conn: sa.Connection, user_id: int, kind: str = "web", ip: str | None = None,
          lifetime: dt.timedelta | None = ABSOLUTE) -> str:
    """Open a session (or API token) and return the secret token (shown once)."""
    token = secrets.token_urlsafe(32)
    now = _now()
    conn.execute(sa.insert(SESSIONS).values(
        token_hash=digest(token), user_id=user_id, csrf=secrets.token_urlsafe(24), kind=kind,
        created_at=now, last_seen=now, expires_at=now + lifetime if lifetime else None, ip=ip))
    return token


@dataclass(frozen=True)
class Found:
    """What one request needs, read in one indexed lookup: the session, its user row and the policy version."""

    session: Session
    user: Any
    policy_version: int


def _live(conn: sa.Connection, row: Any, kind: str, idle: dt.timedelta) -> bool:
    now = _now()
    if row is None or row.ended_at is not None or (row.expires_at and row.expires_at <= now):
        return False
    if kind == "web" and row.last_seen + idle <= now:
        conn.execute(sa.update(SESSIONS).where(SESSIONS.c.id == row.id).values(ended_at=now))
        return False
    if row.last_seen + TOUCH_EVERY <= now:
        conn.execute(sa.update(SESSIONS).where(SESSIONS.c.id == row.id).values(last_seen=now))
    return True


def lookup(conn: sa.Connection, token: str, kind: str = "web", idle: dt.timedelta = IDLE) -> Session | None:
    """The live session of `token`, touching its idle clock; None when ended, expired or idle."""
    row = conn.execute(sa.select(SESSIONS).where(SESSIONS.c.token_hash == digest(token), SESSIONS.c.kind == kind)).first()
    if row is None or not _live(conn, row, kind, idle):
        return None
    return Session(row.id, row.user_id, row.csrf, row.kind)


USER_COLUMNS = [c for c in USERS.c if c.name != "password_hash"]
# Built once: every request runs it, so it is never rebuilt nor re-keyed for SQLAlchemy's statement cache.
RESOLVE = (sa.select(SESSIONS.c.id, SESSIONS.c.user_id, SESSIONS.c.csrf, SESSIONS.c.kind, SESSIONS.c.last_seen, SESSIONS.c.expires_at,
                     SESSIONS.c.ended_at, version_query().label("policy_version"), *(c.label("u_" + c.name) for c in USER_COLUMNS))
           .join(USERS, USERS.c.id == SESSIONS.c.user_id)
           .where(SESSIONS.c.token_hash == sa.bindparam("token_hash"), SESSIONS.c.kind == sa.bindparam("kind")))


def resolve(conn: sa.Connection, token: str, kind: str = "web", idle: dt.timedelta = IDLE) -> Found | None:
    """The live session of `token` with its active user and the policy version, in one statement."""
    row = conn.execute(RESOLVE, {"token_hash": digest(token), "kind": kind}).first()
    if row is None or not _live(conn, row, kind, idle) or not row.u_active:
        return None
    user = {c.name: getattr(row, "u_" + c.name) for c in USER_COLUMNS}
    return Found(Session(row.id, row.user_id, row.csrf, row.kind), user, int(row.policy_version or 0))


def end(conn: sa.Connection, token: str) -> None:
    """End one session (logout, token revoke)."""
    conn.execute(sa.update(SESSIONS).where(SESSIONS.c.token_hash == digest(token)).values(ended_at=_now()))


def end_all(conn: sa.Connection, user_id: int, kind: str | None = None) -> int:
    """End every session and token of a user (or only those of `kind`); returns how many."""
    stmt = sa.update(SESSIONS).where(SESSIONS.c.user_id == user_id, SESSIONS.c.ended_at.is_(None))
    if kind is not None:
        stmt = stmt.where(SESSIONS.c.kind == kind)
    return int(conn.execute(stmt.values(ended_at=_now())).rowcount)


def end_by_id(conn: sa.Connection, session_id: int, user_id: int | None = None) -> bool:
    """End one session or token by its row id (of `user_id` when given); False when there was none live."""
    stmt = sa.update(SESSIONS).where(SESSIONS.c.id == session_id, SESSIONS.c.ended_at.is_(None))
    if user_id is not None:
        stmt = stmt.where(SESSIONS.c.user_id == user_id)
    return bool(conn.execute(stmt.values(ended_at=_now())).rowcount)


def revoke_token(conn: sa.Connection, token: str) -> bool:
    """End one API token given its secret; False when it is unknown or ended already."""
    done = conn.execute(sa.update(SESSIONS).where(SESSIONS.c.token_hash == digest(token), SESSIONS.c.kind == "token",
                                                  SESSIONS.c.ended_at.is_(None)).values(ended_at=_now()))
    return bool(done.rowcount)


def live(conn: sa.Connection, user_id: int | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Live sessions and tokens (of one user, or everyone's), newest first; never the token itself."""
    now = _now()
    stmt = (sa.select(SESSIONS.c.id, SESSIONS.c.user_id, SESSIONS.c.kind, SESSIONS.c.created_at, SESSIONS.c.last_seen,
                      SESSIONS.c.expires_at, SESSIONS.c.ip, USERS.c.username)
            .join(USERS, USERS.c.id == SESSIONS.c.user_id)
            .where(SESSIONS.c.ended_at.is_(None), sa.or_(SESSIONS.c.expires_at.is_(None), SESSIONS.c.expires_at > now),
                   sa.or_(SESSIONS.c.kind != "web", SESSIONS.c.last_seen > now - IDLE)))
    if user_id is not None:
        stmt = stmt.where(SESSIONS.c.user_id == user_id)
    return [dict(r) for r in conn.execute(stmt.order_by(SESSIONS.c.id.desc()).limit(limit)).mappings()]
