"""`loom explain USER MODULE[.FIELD] [ID]`: can this user do this, and which rule decides?"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine.auth.explain import Explanation, explain, parse_target


def add(subs: Any, common: argparse.ArgumentParser) -> None:
    """Register the command."""
    p = subs.add_parser("explain", parents=[common], help="what a user may do with a module, field or record, and the deciding rule")
    p.add_argument("username", help="the user name")
    p.add_argument("target", help="MODULE or MODULE.FIELD")
    p.add_argument("id", nargs="?", type=int, help="a record id: is it in the user's scope, and why")
    p.set_defaults(run=run)


def show(found: Explanation) -> list[str]:
    """The explanation as lines of text."""
    user = found.user
    lines = [f"user {user.username} (roles: {', '.join(user.roles) or 'none'}; department: {user.department_id or 'none'}"
             f"{'' if user.active else '; DISABLED'})"]
    for d in found.decisions:
        verdict = ("yes" + (f" ({d.scope})" if d.scope else "")) if d.allowed else "no"
        lines.append(f"{d.question}: {verdict} — {d.because}")
        if d.rule:
            lines.append(f"    rule: {d.rule}" + (f"   [{d.source}]" if d.source else ""))
        if d.casbin is not None and d.casbin != d.allowed:
            lines.append(f"    casbin enforce says {'allow' if d.casbin else 'deny'} for this line's role")
    return lines


def run(args: argparse.Namespace) -> int:
    """Print the explanation."""
    from engine.auth.policy import PolicyStore
    from engine.migrate import ensure_schema
    from engine.runtime import Settings, open_runtime

    rt = open_runtime(Settings(metadata=Path(args.metadata), db_url=args.db))
    ensure_schema(rt)
    store = PolicyStore.open(rt.db, rt.spec, rt.revision)
    for line in show(explain(rt, store, args.username, parse_target(args.target), args.id)):
        print(line)
    return 0
