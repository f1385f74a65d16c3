"""Server-side sessions: an opaque cookie token, its hash in the database, idle and absolute timeouts."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from engine.systables import add_system_tables

IDLE = dt.timedelta(hours=8)
ABSOLUTE = dt.timedelta(days=7)
TOUCH_EVERY = dt.timedelta(minutes=1)

_MD = sa.MetaData()
add_system_tables(_MD)
SESSIONS = _MD.tables["loom_session"]


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


def lookup(conn: sa.Connection, token: str, kind: str = "web") -> Session | None:
    """The live session of `token`, touching its idle clock; None when ended, expired or idle."""
    row = conn.execute(sa.select(SESSIONS).where(SESSIONS.c.token_hash == digest(token), SESSIONS.c.kind == kind)).first()
    now = _now()
    if row is None or row.ended_at is not None or (row.expires_at and row.expires_at <= now):
        return None
    if kind == "web" and row.last_seen + IDLE <= now:
        end(conn, token)
        return None
    if row.last_seen + TOUCH_EVERY <= now:
        conn.execute(sa.update(SESSIONS).where(SESSIONS.c.id == row.id).values(last_seen=now))
    return Session(row.id, row.user_id, row.csrf, row.kind)


def end(conn: sa.Connection, token: str) -> None:
    """End one session (logout, token revoke)."""
    conn.execute(sa.update(SESSIONS).where(SESSIONS.c.token_hash == digest(token)).values(ended_at=_now()))


def end_all(conn: sa.Connection, user_id: int) -> int:
    """End every session and token of a user; returns how many."""
    done = conn.execute(sa.update(SESSIONS).where(SESSIONS.c.user_id == user_id, SESSIONS.c.ended_at.is_(None)).values(ended_at=_now()))
    return int(done.rowcount)
