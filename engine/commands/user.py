"""`loom user`: add users, set passwords, roles and departments, disable, API tokens, sessions, lockouts, IP allowlist."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.auth import allowlist, departments, logins, sessions
from engine.auth.users import add_user, check_roles, find_user, list_users, require_strong, set_active, set_password, update_user
from engine.errors import Invalid
from engine.runtime import Runtime

ACTIONS = ("add", "passwd", "disable", "enable", "roles", "token", "list", "sessions", "unlock", "department", "allow-ip")


def add(subs: Any, common: argparse.ArgumentParser) -> None:
    """Register `loom user ACTION [USERNAME] [VALUES…]`."""
    p = subs.add_parser("user", parents=[common], help="users, passwords, roles, API tokens and sessions",
                        description="add USER [--roles a,b] [--department D] | passwd USER | disable USER | enable USER | "
                                    "roles USER [ROLE…] | token USER [--days N] | token --revoke TOKEN | list | sessions USER [--end] | "
                                    "unlock USER | department USER DEPT [--manages D1,D2] | allow-ip USER NETWORK | "
                                    "allow-ip --role R --network NETWORK | allow-ip --remove ID")
    p.add_argument("action", choices=ACTIONS)
    p.add_argument("username", nargs="?", help="the user name")
    p.add_argument("values", nargs="*", help="roles (roles), department (department), network (allow-ip)")
    p.add_argument("--roles", default="", help="add: comma-separated roles")
    p.add_argument("--full-name", help="add: the person's name")
    p.add_argument("--department", help="add: department id or title")
    p.add_argument("--manages", help="add, department: comma-separated departments the user manages")
    p.add_argument("--password", help="the password (otherwise asked, or read from stdin with --password-stdin)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    p.add_argument("--add", dest="add_roles", default="", help="roles: comma-separated roles to add")
    p.add_argument("--remove", dest="remove", default="", help="roles: roles to remove; allow-ip: the rule id to remove")
    p.add_argument("--revoke", metavar="TOKEN", help="token: end this API token")
    p.add_argument("--days", type=int, help="token: expires after this many days (default: never)")
    p.add_argument("--end", action="store_true", help="sessions: end every session and token of the user")
    p.add_argument("--role", help="allow-ip: the rule is for this role instead of one user")
    p.add_argument("--network", help="allow-ip: the network (10.0.0.0/8, 192.168.1.7)")
    p.set_defaults(run=run)


def _runtime(args: argparse.Namespace) -> Runtime:
    from engine.migrate import ensure_schema
    from engine.runtime import Settings, open_runtime

    rt = open_runtime(Settings(metadata=Path(args.metadata), db_url=args.db))
    ensure_schema(rt)
    return rt


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (text or "").split(",") if p.strip())


def _password(args: argparse.Namespace) -> str:
    if args.password:
        return str(args.password)
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise Invalid("the passwords differ", {"password": "type the same password twice"})
    return first


def _roles(rt: Runtime, roles: tuple[str, ...]) -> tuple[str, ...]:
    check_roles(roles, tuple(r.name for r in rt.spec.app.roles))
    return roles


def _need_user(args: argparse.Namespace) -> str:
    if not args.username:
        raise Invalid(f"give the user name: loom user {args.action} USERNAME", {"username": "required"})
    return str(args.username)


def run(args: argparse.Namespace) -> int:
    """Run one `loom user` action."""
    rt = _runtime(args)
    handlers: dict[str, Callable[[Runtime, argparse.Namespace], int]] = {
        "add": _add, "passwd": _passwd, "disable": _disable, "enable": _disable, "roles": _set_roles, "token": _token,
        "list": _list, "sessions": _sessions, "unlock": _unlock, "department": _department, "allow-ip": _allow_ip}
    return handlers[args.action](rt, args)


def _add(rt: Runtime, args: argparse.Namespace) -> int:
    name = _need_user(args)
    roles = _roles(rt, _split(args.roles))
    password = _password(args)
    require_strong(password)
    with rt.db.begin() as conn:
        dept = departments.find_department(conn, rt, args.department) if args.department else None
        user = add_user(conn, name, password, roles, args.full_name, dept)
        if args.manages:
            departments.set_managed(conn, rt, user.id, [departments.find_department(conn, rt, d) for d in _split(args.manages)])
    print(f"added user {user.username} (id {user.id}; roles: {', '.join(user.roles) or 'none'})")
    return 0


def _passwd(rt: Runtime, args: argparse.Namespace) -> int:
    name = _need_user(args)
    password = _password(args)
    require_strong(password)
    with rt.db.begin() as conn:
        set_password(conn, name, password)
    print(f"password of {name} changed; their web sessions ended")
    return 0


def _disable(rt: Runtime, args: argparse.Namespace) -> int:
    name = _need_user(args)
    with rt.db.begin() as conn:
        set_active(conn, name, args.action == "enable")
    print(f"{name} {'enabled' if args.action == 'enable' else 'disabled; every session and token ended'}")
    return 0


def _set_roles(rt: Runtime, args: argparse.Namespace) -> int:
    name = _need_user(args)
    with rt.db.begin() as conn:
        user = find_user(conn, name)
        roles = tuple(args.values) if args.values else user.roles
        roles = tuple(dict.fromkeys(r for r in (*roles, *_split(args.add_roles)) if r not in _split(args.remove)))
        if roles != user.roles:
            user = update_user(conn, name, roles=_roles(rt, roles))
    print(f"{name}: {', '.join(user.roles) or '(no roles)'}")
    return 0


def _token(rt: Runtime, args: argparse.Namespace) -> int:
    import datetime as dt

    with rt.db.begin() as conn:
        if args.revoke:
            if not sessions.revoke_token(conn, args.revoke):
                raise Invalid("no such live token", {"token": "unknown, or revoked already"})
            print("token revoked")
            return 0
        user = find_user(conn, _need_user(args))
        lifetime = dt.timedelta(days=args.days) if args.days else None
        token = sessions.start(conn, user.id, "token", None, lifetime)
    print(token)
    return 0


def _list(rt: Runtime, args: argparse.Namespace) -> int:
    with rt.db.connect() as conn:
        users = list_users(conn)
        names = departments.titles(conn, rt, {u.department_id for u in users if u.department_id is not None})
    for u in users:
        dept = names.get(u.department_id, "") if u.department_id is not None else ""
        print(f"{u.username:<20} {'active' if u.active else 'disabled':<9} {','.join(u.roles):<30} {dept}")
    return 0


def _sessions(rt: Runtime, args: argparse.Namespace) -> int:
    name = _need_user(args)
    with rt.db.begin() as conn:
        user = find_user(conn, name)
        if args.end:
            print(f"ended {sessions.end_all(conn, user.id)} session(s) and token(s) of {name}")
            return 0
        for s in sessions.live(conn, user.id):
            print(f"#{s['id']:<6} {s['kind']:<6} since {s['created_at']:%Y-%m-%d %H:%M}  last {s['last_seen']:%Y-%m-%d %H:%M}  {s['ip'] or ''}")
    return 0


def _unlock(rt: Runtime, args: argparse.Namespace) -> int:
    name = _need_user(args)
    with rt.db.begin() as conn:
        logins.unlock(conn, name, "loom user unlock")
    print(f"{name} unlocked")
    return 0


def _department(rt: Runtime, args: argparse.Namespace) -> int:
    name = _need_user(args)
    with rt.db.begin() as conn:
        user = find_user(conn, name)
        if args.values:
            update_user(conn, name, department_id=departments.find_department(conn, rt, args.values[0]))
        if args.manages is not None:
            departments.set_managed(conn, rt, user.id, [departments.find_department(conn, rt, d) for d in _split(args.manages)])
        user = find_user(conn, name)
        managed = departments.managed(conn, rt, user.id)
        titles = departments.titles(conn, rt, {*managed, *([user.department_id] if user.department_id else [])})
    own = titles.get(user.department_id, "") if user.department_id is not None else "(none)"
    print(f"{name}: department {own}; manages {', '.join(titles.get(d, str(d)) for d in managed) or 'nothing'}")
    return 0


def _allow_ip(rt: Runtime, args: argparse.Namespace) -> int:
    with rt.db.begin() as conn:
        if args.remove:
            if not args.remove.isdigit():
                raise Invalid("give the rule's id", {"remove": "a number, as listed"})
            allowlist.remove(conn, int(args.remove))
            print(f"allowlist rule {args.remove} removed")
            return 0
        if args.role:
            _roles(rt, (args.role,))
            network, user_id = args.network or (args.values or [args.username or ""])[0], None
        else:
            network, user_id = args.network or (args.values or [""])[0], find_user(conn, _need_user(args)).id
        rule = allowlist.add(conn, network, user_id, args.role)
        print(f"allowlist rule {rule.id}: {rule.network} for {'role ' + args.role if args.role else args.username}")
    return 0
