"""Settings a deployment gives through the environment: session timeouts, login limits, trusted proxies, request threads.

Every worker builds its app from the same environment, so they all agree. A malformed value stops the
start with a message naming the variable, never a silent default.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Mapping
from typing import Any

from engine.auth.logins import Limits

NUMBERS = {
    "LOOM_SESSION_IDLE_MINUTES": "minutes without a request before a web session ends (default 480)",
    "LOOM_SESSION_MAX_HOURS": "hours after login when a web session ends whatever happens (default 168)",
    "LOOM_LOGIN_MAX_FAILURES": "failed logins of one user name within 15 minutes that lock it for 15 minutes (default 5)",
    "LOOM_THREADS": "requests one worker process runs at once (default 4)",
}
PROXIES = "LOOM_TRUSTED_PROXIES"


class ConfigError(ValueError):
    """An environment variable Loom reads holds a value it cannot use."""


def _positive(env: Mapping[str, str], name: str) -> int | None:
    text = env.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) == 0:
        raise ConfigError(f"{name}={text!r}: expected a whole number above 0 ({NUMBERS[name]})")
    return int(text)


def trusted_proxies(text: str) -> list[str]:
    """The addresses or networks whose X-Forwarded-Proto and X-Forwarded-For are believed ('*': any peer)."""
    return [_host_or_network(t.strip()) for t in text.split(",") if t.strip()]


def _host_or_network(item: str) -> str:
    if item == "*":
        return item
    try:
        return str(ipaddress.ip_network(item, strict=False) if "/" in item else ipaddress.ip_address(item))
    except ValueError:
        raise ConfigError(f"{PROXIES}: {item!r} is not an IP address or network (e.g. 127.0.0.1,10.0.0.0/8)") from None


def from_environ(env: Mapping[str, str]) -> dict[str, Any]:
    """App state from LOOM_SESSION_IDLE_MINUTES, LOOM_SESSION_MAX_HOURS, LOOM_LOGIN_MAX_FAILURES, LOOM_THREADS and
    LOOM_TRUSTED_PROXIES."""
    state: dict[str, Any] = {}
    idle, most, failures, threads = (_positive(env, name) for name in NUMBERS)
    if idle is not None:
        state["session_idle"] = dt.timedelta(minutes=idle)
    if most is not None:
        state["session_absolute"] = dt.timedelta(hours=most)
    if failures is not None:
        state["login_limits"] = Limits(per_user=failures)
    if threads is not None:
        state["threads"] = threads
    proxies = trusted_proxies(env.get(PROXIES, ""))
    if proxies:
        state["trusted_proxies"] = proxies
    return state
