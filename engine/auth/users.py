"""Users in the database: add, find, change password and roles, disable."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from engine.errors import Invalid, NotFound

_HASHER = PasswordHasher()
MIN_PASSWORD = 8


@cache
def _dummy() -> str:
    """A hash to verify against when the user is unknown, so the answer takes as long (made on first use: ~0.2 s)."""
    return _HASHER.hash("loom-dummy-password")


@dataclass(frozen=True)
class User:
    """A user row."""

    id: int
    username: str
    full_name: str | None
    roles: tuple[str, ...]
    department_id: int | None
    locale: str | None
    active: bool


def _table(db: sa.Engine | sa.Connection) -> sa.Table:
    from engine.systables import add_system_tables

    md = sa.MetaData()
    add_system_tables(md)
    return md.tables["loom_user"]


USERS = _table(sa.create_engine("sqlite://"))


def _user(row: Any) -> User:
    return User(row.id, row.username, row.full_name, tuple(r for r in (row.roles or "").split(",") if r),
                row.department_id, row.locale, bool(row.active))


def user_from(values: Mapping[str, Any]) -> User:
    """A User from a mapping of loom_user columns (as read joined to a session)."""
    return User(values["id"], values["username"], values.get("full_name"), tuple(r for r in (values.get("roles") or "").split(",") if r),
                values.get("department_id"), values.get("locale"), bool(values.get("active")))


def hash_password(password: str) -> str:
    """An argon2id hash of `password`."""
    return _HASHER.hash(password)


def add_user(conn: sa.Connection, username: str, password: str | None, roles: tuple[str, ...] = (),
             full_name: str | None = None, department_id: int | None = None) -> User:
    """Create a user; a taken user name is a 422."""
    if not username or len(username) > 64:
        raise Invalid("invalid user name", {"username": "1 to 64 characters"})
    if conn.execute(sa.select(USERS.c.id).where(USERS.c.username == username)).first():
        raise Invalid("user name taken", {"username": f"'{username}' exists already"})
    conn.execute(sa.insert(USERS).values(
        username=username, full_name=full_name, password_hash=hash_password(password) if password else None,
        roles=",".join(roles), department_id=department_id, active=True,
        created_at=dt.datetime.now(dt.UTC).replace(tzinfo=None)))
    return find_user(conn, username)


def find_user(conn: sa.Connection, username: str) -> User:
    """The user called `username` (404 when unknown)."""
    row = conn.execute(sa.select(USERS).where(USERS.c.username == username)).first()
    if row is None:
        raise NotFound(f"no user '{username}'")
    return _user(row)


def user_by_id(conn: sa.Connection, user_id: int) -> User | None:
    """The user with this id, if any."""
    row = conn.execute(sa.select(USERS).where(USERS.c.id == user_id)).first()
    return None if row is None else _user(row)


def check_password(conn: sa.Connection, username: str, password: str) -> User | None:
    """The active user when the password matches; None otherwise (same work either way)."""
    row = conn.execute(sa.select(USERS).where(USERS.c.username == username)).first()
    try:
        _HASHER.verify(row.password_hash if row is not None and row.password_hash else _dummy(), password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or not row.password_hash or not row.active:
        return None
    return _user(row)


def update_user(conn: sa.Connection, username: str, **values: Any) -> User:
    """Change columns of a user (password → hashed; roles as a tuple)."""
    if "password" in values:
        values["password_hash"] = hash_password(values.pop("password"))
    if "roles" in values:
        values["roles"] = ",".join(values["roles"])
    done = conn.execute(sa.update(USERS).where(USERS.c.username == username).values(**values))
    if done.rowcount == 0:
        raise NotFound(f"no user '{username}'")
    return find_user(conn, username)


def list_users(conn: sa.Connection, limit: int = 1000) -> list[User]:
    """Every user, by user name."""
    return [_user(r) for r in conn.execute(sa.select(USERS).order_by(USERS.c.username).limit(limit))]


def set_active(conn: sa.Connection, username: str, active: bool) -> User:
    """Disable (ending every session and token at once) or enable a user."""
    from engine.auth.sessions import end_all

    user = update_user(conn, username, active=active)
    if not active:
        end_all(conn, user.id)
    return user


def set_password(conn: sa.Connection, username: str, password: str) -> User:
    """Change a password and end the user's web sessions (API tokens stay until revoked)."""
    from engine.auth.sessions import end_all

    user = update_user(conn, username, password=password)
    end_all(conn, user.id, "web")
    return user


def check_roles(roles: tuple[str, ...], known: tuple[str, ...]) -> None:
    """Refuse role names the application does not define."""
    unknown = [r for r in roles if r not in known]
    if unknown:
        raise Invalid("unknown role", {"roles": f"unknown role(s) {', '.join(unknown)} (roles: {', '.join(known)})"})


def require_strong(password: str) -> None:
    """Refuse a password people choose by hand that is too short (the CLI and the admin pages ask this)."""
    if len(password) < MIN_PASSWORD:
        raise Invalid("password too short", {"password": f"at least {MIN_PASSWORD} characters"})
