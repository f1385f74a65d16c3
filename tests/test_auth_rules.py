"""Metadata → Casbin lines, and the gate's fold of those lines checked against Casbin's own enforcer."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.auth.grants import formula_inputs, resolve
from engine.auth.policy import new_enforcer
from engine.auth.rules import DOMAIN, compile_spec, decide, module_actions
from engine.gate import spec_lines
from engine.loader import load
from engine.spec import Spec

from .conftest import CRM_BUNDLE, TEST_BUNDLE

BUNDLES = [TEST_BUNDLE] + ([CRM_BUNDLE] if (CRM_BUNDLE / "app.yaml").is_file() else [])


def _spec(path: Path) -> Spec:
    return load(path).spec


def test_lines_name_role_module_action_and_scope() -> None:
    lines = {str(r) for r in compile_spec(_spec(TEST_BUNDLE))}
    assert "p, rep, default, account, read, self, allow" in lines
    assert "p, rep, default, account, unowned, all, allow" in lines
    assert "p, rep, default, account.secret_score, read, *, deny" in lines
    assert "p, rep, default, account.credit_limit, write, *, deny" in lines
    assert "p, rep, default, account.credit_limit, read, *, deny" not in lines
    assert "p, manager, default, account, delete, department, allow" in lines
    assert "p, admin, default, *, *, all, allow" in lines
    assert not any(r.startswith("p, rep, default, account, delete") for r in lines)


def test_every_line_knows_its_metadata_source() -> None:
    rules = compile_spec(_spec(TEST_BUNDLE))
    assert all(r.source.count(":") >= 2 for r in rules)
    secret = next(r for r in rules if r.obj == "account.secret_score" and r.act == "read")
    assert secret.source == "module:account:permissions.rep.fields.secret_score"


def test_a_deny_line_beats_an_allow_line() -> None:
    rules = tuple(r for r in compile_spec(_spec(TEST_BUNDLE)) if r.role == "rep")
    allowed, rule = decide(rules, "account.secret_score", "read")
    assert not allowed and rule is not None and rule.eft == "deny"
    allowed, rule = decide(rules, "account.name", "read")
    assert allowed and rule is not None and rule.obj == "account"
    assert not decide(rules, "account", "read", "all")[0]


def test_workflow_state_fields_are_closed_to_every_role_and_transitions_are_actions(tmp_path: Path) -> None:
    import shutil

    bundle = tmp_path / "b"
    shutil.copytree(TEST_BUNDLE, bundle)
    (bundle / "workflows").mkdir(exist_ok=True)
    (bundle / "workflows" / "deal_flow.yaml").write_text(
        "name: deal_flow\nmodule: deal\nfield: stage\nstates: [{name: initial, initial: true}, {name: proposal}, {name: won}, {name: lost}]\n"
        "transitions:\n  - {name: propose, from: initial, to: proposal}\n  - {name: win, from: proposal, to: won, roles: [manager]}\n")
    spec = _spec(bundle)
    deal = spec.module("deal")
    for role in ("admin", "rep", "manager"):
        grant = resolve(spec_lines(spec, deal), spec, deal, (role,))
        assert "stage" in grant.readable and "stage" not in grant.writable
    assert {"propose", "win"} <= set(module_actions(spec, deal))
    rep = resolve(spec_lines(spec, deal), spec, deal, ("rep",))
    manager = resolve(spec_lines(spec, deal), spec, deal, ("manager",))
    assert rep.scope("propose") == "self" and rep.scope("win") == "none"
    assert manager.scope("win") == "all"


def test_a_formula_reading_a_hidden_field_is_hidden_too(tmp_path: Path) -> None:
    import shutil

    bundle = tmp_path / "b"
    shutil.copytree(TEST_BUNDLE, bundle)
    path = bundle / "modules" / "account.yaml"
    path.write_text(path.read_text().replace("fields: {secret_score: none, credit_limit: read}",
                                             "fields: {secret_score: none, credit_limit: none}"))
    spec = _spec(bundle)
    account = spec.module("account")
    assert formula_inputs(account, "overdue") == {"balance", "credit_limit"}
    rep = resolve(spec_lines(spec, account), spec, account, ("rep",))
    assert "credit_limit" not in rep.readable and "overdue" not in rep.readable
    assert "balance" in rep.readable


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_the_gate_fold_agrees_with_casbin_enforce(bundle: Path) -> None:
    """For every role, module, field and action: the fold's answer is the Casbin enforcer's answer."""
    spec = _spec(bundle)
    checked = 0
    for module in spec.modules.values():
        lines = spec_lines(spec, module)
        enforcer = new_enforcer()
        enforcer.add_policies([list(r.line) for rules in lines.values() for r in rules])
        for role in spec.app.roles:
            grant = resolve(lines, spec, module, (role.name,))
            for action in module_actions(spec, module):
                scope = grant.scope(action)
                if scope != "none":
                    assert enforcer.enforce(role.name, DOMAIN, module.name, action, scope), (role.name, module.name, action)
                wider = {"self": "department", "department": "department_tree", "department_tree": "all", "none": "self"}.get(scope)
                if wider:
                    assert not enforcer.enforce(role.name, DOMAIN, module.name, action, wider), (role.name, module.name, action, wider)
            for f in module.fields:
                said = enforcer.enforce(role.name, DOMAIN, f"{module.name}.{f.name}", "read", "self")
                derived_hidden = f.expr is not None and not formula_inputs(module, f.name) <= grant.readable | {f.name}
                assert (f.name in grant.readable) == (said and not derived_hidden), (role.name, module.name, f.name)
                checked += 1
    assert checked > 20
