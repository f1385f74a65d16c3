"""What a set of roles may do in one module, folded once from the policy lines: scopes per action and field maps.

The fold applies the Casbin matcher of engine.auth.rules line by line (tests check it against
Casbin's own `enforce` for every role, module, field and action of the bundles), so a list of 50
rows asks a frozen set, not the enforcer, for each cell.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from engine.auth.rules import ANY, DOMAIN, SCOPE_RANK, Rule, decide, module_actions
from engine.spec import Module, Spec

Lines = Mapping[str, tuple[Rule, ...]]
SCOPES_WIDEST_FIRST = ("all", "department_tree", "department", "self")


@dataclass(frozen=True)
class ModuleGrant:
    """The resolved permissions of some roles in one module."""

    module: str
    scopes: Mapping[str, str]
    readable: frozenset[str]
    writable: frozenset[str]
    unowned: bool = False

    def scope(self, action: str) -> str:
        """The widest scope granted for `action` ('none' when not granted)."""
        return self.scopes.get(action, "none")


def role_lines(lines: Lines, role: str, module: str) -> tuple[Rule, ...]:
    """The lines of `role` that can match requests about `module` or its fields."""
    return tuple(r for r in lines.get(role, ()) if r.obj in (ANY, module) or r.obj.startswith(module + "."))


def widest_scope(rules: tuple[Rule, ...], obj: str, action: str, domain: str = DOMAIN) -> tuple[str, Rule | None]:
    """The widest scope one role's lines grant for `action` on `obj`, and the deciding line."""
    for scope in SCOPES_WIDEST_FIRST:
        allowed, rule = decide(rules, obj, action, scope, domain)
        if allowed:
            return scope, rule
    return "none", decide(rules, obj, action, "self", domain)[1]


def resolve(lines: Lines, spec: Spec, module: Module, roles: tuple[str, ...], domain: str = DOMAIN) -> ModuleGrant:
    """Fold the lines of `roles` into one ModuleGrant (the union of what each role may do)."""
    per_role = [role_lines(lines, role, module.name) for role in roles]
    scopes: dict[str, str] = {}
    for action in module_actions(spec, module):
        best = max((widest_scope(rules, module.name, action, domain)[0] for rules in per_role), key=SCOPE_RANK.__getitem__, default="none")
        if best != "none":
            scopes[action] = best
    readable = {f.name for f in module.fields if any(decide(r, f"{module.name}.{f.name}", "read", "self", domain)[0] for r in per_role)}
    readable = hide_formulas_of_hidden(module, readable)
    writable = {f.name for f in module.fields if f.writable and f.name in readable and any(
        decide(r, f"{module.name}.{f.name}", act, "self", domain)[0] for r in per_role for act in ("write", "create"))}
    if "assign" in scopes:
        writable.add("owner")
    return ModuleGrant(module.name, scopes, frozenset(readable), frozenset(writable), "unowned" in scopes)


def hide_formulas_of_hidden(module: Module, readable: set[str]) -> set[str]:
    """Drop computed fields that read a field the role may not read (a formula must not reveal its inputs)."""
    shown = set(readable)
    changed = True
    while changed:
        changed = False
        for f in module.fields:
            if f.name in shown and f.expr is not None and not formula_inputs(module, f.name) <= shown:
                shown.discard(f.name)
                changed = True
    return shown


def formula_inputs(module: Module, name: str) -> frozenset[str]:
    """Fields of the module a computed field reads (names in the expression, quoted ones too: option_value('stage', …))."""
    f = module.field(name)
    if f.expr is None:
        return frozenset()
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", f.expr.source))
    return frozenset(n for n in words if n in module.by_name and n != name)
