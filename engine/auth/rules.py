"""Metadata → Casbin policy lines: roles and per-module rules compiled once, with where each line came from.

A line is `p, role, domain, object, action, scope, effect`:
- `p, rep, default, account, read, self, allow` — the rep reads accounts it owns;
- `p, rep, default, account.secret_score, read, *, deny` — but never that field;
- `p, admin, default, *, *, all, allow` — an admin role may do everything.
Objects are a module or `module.field`; actions are read, create, write, delete, share, assign, import,
export, print, report, `unowned` (records without an owner) and each workflow transition.
Pure functions: no database, no Casbin here (engine.auth.policy stores and loads the lines).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.spec import ACTIONS, Module, Permission, Spec

DOMAIN = "default"
SCOPE_RANK = {"none": 0, "self": 1, "department": 2, "department_tree": 3, "all": 4}
ANY = "*"
MODEL = """
[request_definition]
r = sub, dom, obj, act, scope

[policy_definition]
p = sub, dom, obj, act, scope, eft

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub, r.dom) && (p.dom == r.dom || p.dom == "*") && objMatch(r.obj, p.obj) && (p.act == r.act || p.act == "*") \
&& scopeWithin(r.scope, p.scope)
"""


@dataclass(frozen=True)
class Rule:
    """One policy line, and the metadata path it was compiled from (for `loom explain`)."""

    role: str
    domain: str
    obj: str
    act: str
    scope: str
    eft: str = "allow"
    source: str = field(default="", compare=False)

    @property
    def line(self) -> tuple[str, str, str, str, str, str]:
        """The Casbin policy values (v0..v5)."""
        return (self.role, self.domain, self.obj, self.act, self.scope, self.eft)

    def __str__(self) -> str:
        return "p, " + ", ".join(self.line)


def obj_match(requested: str, rule: str) -> bool:
    """A rule on a module also covers its fields; `*` covers everything."""
    return rule == ANY or requested == rule or requested.startswith(rule + ".")


def scope_within(requested: str, rule: str) -> bool:
    """Whether a rule granting `rule` scope covers a request for `requested` scope."""
    return rule == ANY or SCOPE_RANK.get(requested, 99) <= SCOPE_RANK.get(rule, 0)


def matches(rule: Rule, obj: str, act: str, scope: str, domain: str = DOMAIN) -> bool:
    """The Casbin matcher (MODEL) for one line of the requesting role."""
    return (rule.domain in (domain, ANY) and obj_match(obj, rule.obj) and rule.act in (act, ANY)
            and scope_within(scope, rule.scope))


def decide(rules: tuple[Rule, ...], obj: str, act: str, scope: str = "self", domain: str = DOMAIN) -> tuple[bool, Rule | None]:
    """The decision of one role's lines and the line that decides it (a deny wins over any allow)."""
    allow: Rule | None = None
    for rule in rules:
        if not matches(rule, obj, act, scope, domain):
            continue
        if rule.eft == "deny":
            return False, rule
        allow = allow or rule
    return allow is not None, allow


def compile_spec(spec: Spec, domain: str = DOMAIN) -> tuple[Rule, ...]:
    """Every policy line of the metadata, in a stable order."""
    lines = admin_lines(spec, domain)
    for module in spec.modules.values():
        lines += compile_module(spec, module, domain)
    return tuple(dict.fromkeys(lines))


def admin_lines(spec: Spec, domain: str = DOMAIN) -> list[Rule]:
    """An admin role may do everything (workflow state fields stay closed by their deny lines)."""
    return [Rule(r.name, domain, ANY, ANY, "all", "allow", f"app::roles[{i}].admin") for i, r in enumerate(spec.app.roles) if r.admin]


def compile_module(spec: Spec, module: Module, domain: str = DOMAIN) -> list[Rule]:
    """The lines about one module: its role rules (a child module without rules follows its parent) and workflows."""
    lines: list[Rule] = []
    rules = dict(module.permissions)
    parent = _parent(spec, module)
    for role in _role_names(spec, module, parent):
        if role in rules:
            lines += _role_lines(module.name, role, rules[role], domain, f"module:{module.name}:permissions.{role}")
        elif parent is not None and parent.permission(role) is not None:
            inherited = Permission(parent.permission(role).scopes)  # type: ignore[union-attr]
            lines += _role_lines(module.name, role, inherited, domain, f"module:{parent.name}:permissions.{role}")
    for name, flow in spec.workflows.items():
        if flow.get("module") == module.name:
            lines += _workflow_lines(spec, module, name, flow, domain)
    return lines


def _parent(spec: Spec, module: Module) -> Module | None:
    if not module.child:
        return None
    return next((m for m in spec.modules.values() for f in m.tables if f.module == module.name), None)


def _role_names(spec: Spec, module: Module, parent: Module | None) -> list[str]:
    names = [r for r, _ in module.permissions] + [r for r, _ in (parent.permissions if parent else ())]
    return list(dict.fromkeys(names))


def _role_lines(module: str, role: str, rule: Permission, domain: str, source: str) -> Iterator[Rule]:
    for action, scope in rule.scopes:
        if scope != "none":
            yield Rule(role, domain, module, action, scope, "allow", f"{source}.{action}")
    if rule.unowned:
        yield Rule(role, domain, module, "unowned", "all", "allow", f"{source}.unowned")
    read = rule.scope("read")
    for transition in rule.transitions:
        yield Rule(role, domain, module, transition, read if read != "none" else "all", "allow", f"{source}.transitions")
    for name, level in rule.fields:
        denied = ("read", "write", "create") if level == "none" else ("write", "create") if level == "read" else ()
        for act in denied:
            yield Rule(role, domain, f"{module}.{name}", act, ANY, "deny", f"{source}.fields.{name}")


def _workflow_lines(spec: Spec, module: Module, name: str, flow: Mapping[str, Any], domain: str) -> Iterator[Rule]:
    source = f"workflow:{name}"
    state = flow.get("field")
    for role in spec.app.roles:
        for act in ("write", "create"):
            yield Rule(role.name, domain, f"{module.name}.{state}", act, ANY, "deny", f"{source}:field")
    for i, step in enumerate(flow.get("transitions") or ()):
        roles = step.get("roles") or [r for r, p in module.permissions if p.scope("write") != "none"]
        for role in roles:
            rule = module.permission(role)
            read = rule.scope("read") if rule is not None else "none"
            yield Rule(role, domain, module.name, step["name"], read if read != "none" else "all", "allow", f"{source}:transitions[{i}].roles")


def module_actions(spec: Spec, module: Module) -> tuple[str, ...]:
    """Every action of a module: the standard ones, `unowned`, and its workflows' transitions."""
    transitions = [t["name"] for flow in spec.workflows.values() if flow.get("module") == module.name for t in flow.get("transitions") or ()]
    transitions += [t for _, p in module.permissions for t in p.transitions]
    return tuple(dict.fromkeys([*ACTIONS, "unowned", *transitions]))
