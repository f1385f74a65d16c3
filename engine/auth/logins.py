"""Login history and throttling: every attempt is a row; repeated failures lock a user name or an address for a while."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from engine.errors import LoomError
from engine.systables import add_system_tables

_MD = sa.MetaData()
add_system_tables(_MD)
LOGINS = _MD.tables["loom_login"]
FAILED = ("failed", "unknown")
RESETS = ("ok", "unlock")
RESULTS = ("ok", "failed", "unknown", "disabled", "locked", "ip_denied", "unlock")


class TooManyAttempts(LoomError):
    """Too many failed logins: the user name or the address is locked for a while."""

    status = 429
    code = "too_many_attempts"


@dataclass(frozen=True)
class Limits:
    """How many failures lock a user name or an address, within which window, and for how long."""

    per_user: int = 5
    per_ip: int = 20
    window: dt.timedelta = dt.timedelta(minutes=15)
    lockout: dt.timedelta = dt.timedelta(minutes=15)


def now() -> dt.datetime:
    """The current UTC time (stored naive)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def record(conn: sa.Connection, username: str, result: str, user_id: int | None = None, ip: str | None = None,
           agent: str | None = None, at: dt.datetime | None = None) -> None:
    """Write one attempt (or an admin's unlock) to the history."""
    conn.execute(sa.insert(LOGINS).values(at=at or now(), username=username[:64], user_id=user_id, ip=(ip or "")[:64] or None,
                                          user_agent=(agent or "")[:255] or None, result=result))


def _failures(conn: sa.Connection, where: sa.ColumnElement[bool], since: dt.datetime) -> tuple[int, dt.datetime | None]:
    row = conn.execute(sa.select(sa.func.count(), sa.func.max(LOGINS.c.at)).where(where, LOGINS.c.result.in_(FAILED), LOGINS.c.at > since)).one()
    return int(row[0]), row[1]


def _last_reset(conn: sa.Connection, username: str) -> dt.datetime | None:
    found: dt.datetime | None = conn.execute(sa.select(sa.func.max(LOGINS.c.at)).where(
        LOGINS.c.username == username[:64], LOGINS.c.result.in_(RESETS))).scalar()
    return found


def locked_until(conn: sa.Connection, username: str, ip: str | None, limits: Limits, at: dt.datetime | None = None) -> dt.datetime | None:
    """When the lock on this user name or address ends (None: not locked). A success or an unlock resets the user name's count."""
    at = at or now()
    since = at - limits.window
    reset = _last_reset(conn, username)
    ends: list[dt.datetime] = []
    count, last = _failures(conn, LOGINS.c.username == username[:64], max(since, reset) if reset else since)
    if count >= limits.per_user and last is not None:
        ends.append(last + limits.lockout)
    if ip:
        count, last = _failures(conn, LOGINS.c.ip == ip[:64], since)
        if count >= limits.per_ip and last is not None:
            ends.append(last + limits.lockout)
    end = max(ends, default=None)
    return end if end is not None and end > at else None


def history(conn: sa.Connection, username: str | None = None, result: str | None = None, ip: str | None = None,
            before: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Attempts, newest first, optionally of one user name, result or address; `before` pages by id."""
    stmt = sa.select(LOGINS)
    for column, value in ((LOGINS.c.username, username), (LOGINS.c.result, result), (LOGINS.c.ip, ip)):
        if value:
            stmt = stmt.where(column == value)
    if before:
        stmt = stmt.where(LOGINS.c.id < before)
    return [dict(r) for r in conn.execute(stmt.order_by(LOGINS.c.id.desc()).limit(limit)).mappings()]


def unlock(conn: sa.Connection, username: str, by: str) -> None:
    """Lift a user name's lock now (recorded in the history)."""
    record(conn, username, "unlock", agent=f"unlocked by {by}")
