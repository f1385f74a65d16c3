"""An optional IP allowlist per role or per user: when rules name a user or one of their roles, they may
only sign in and work from those networks. Changes bump the policy version, so every worker sees them."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

import sqlalchemy as sa

from engine.auth.version import bump
from engine.errors import Invalid, NotFound
from engine.systables import add_system_tables

_MD = sa.MetaData()
add_system_tables(_MD)
ALLOW = _MD.tables["loom_ip_allow"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Allow:
    """One rule: a network, for one user or for everyone holding a role."""

    id: int
    network: str
    user_id: int | None = None
    role: str | None = None

    @property
    def net(self) -> Network:
        """The parsed network."""
        return ipaddress.ip_network(self.network, strict=False)


def parse_network(text: str) -> str:
    """A network in canonical form ('10.0.0.0/8', '2001:db8::/32', one address as /32); 422 when malformed."""
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise Invalid("not a network", {"network": f"'{text}' is not an IP address or network (e.g. 10.0.0.0/8)"}) from None


def load(conn: sa.Connection) -> tuple[Allow, ...]:
    """Every rule."""
    rows = conn.execute(sa.select(ALLOW).order_by(ALLOW.c.id))
    return tuple(Allow(r.id, r.network, r.user_id, r.role) for r in rows)


def add(conn: sa.Connection, network: str, user_id: int | None = None, role: str | None = None) -> Allow:
    """Add a rule for a user or a role."""
    if (user_id is None) == (role is None):
        raise Invalid("name a user or a role", {"network": "a rule is for one user or for one role"})
    canonical = parse_network(network)
    key = conn.execute(sa.insert(ALLOW).values(network=canonical, user_id=user_id, role=role,
                                               created_at=dt.datetime.now(dt.UTC).replace(tzinfo=None))).inserted_primary_key
    bump(conn)
    assert key is not None
    return Allow(int(key[0]), canonical, user_id, role)


def remove(conn: sa.Connection, rule_id: int) -> None:
    """Remove one rule."""
    if conn.execute(sa.delete(ALLOW).where(ALLOW.c.id == rule_id)).rowcount == 0:
        raise NotFound(f"no allowlist rule {rule_id}")
    bump(conn)


def permits(rules: tuple[Allow, ...], user_id: int, roles: tuple[str, ...], ip: str | None) -> bool:
    """Whether `ip` may be used by this user: yes when no rule names them or their roles, else it must match one."""
    applying = [r for r in rules if r.user_id == user_id or (r.role is not None and r.role in roles)]
    if not applying:
        return True
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return False
    return any(address in r.net for r in applying)
