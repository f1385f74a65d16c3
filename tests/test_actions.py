"""Record actions from metadata: claim from a pool, merge duplicates, create records from a record."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from engine import actions, audit, records
from engine.access import Actor, SystemAccess
from engine.errors import Forbidden, Invalid, NotFound
from engine.gate import RoleAccess
from engine.runtime import Runtime

from .conftest import add_test_user, login

SYSTEM = SystemAccess()


def _as(rt: Runtime, user_id: int, *roles: str) -> RoleAccess:
    return RoleAccess(Actor(user_id=user_id, username=f"u{user_id}", roles=roles), rt.spec)


def test_claim_from_the_pool(runtime: Runtime) -> None:
    rep_id = add_test_user(runtime, "rep", ("rep",))
    other_id = add_test_user(runtime, "other", ("rep",))
    pool = records.create(runtime, SYSTEM, "account", {"name": "Pooled", "owner": None})
    rep = _as(runtime, rep_id, "rep")
    assert [a.name for a in actions.available(runtime, rep, runtime.spec.module("account"), pool)] == ["claim"]
    outcome = actions.run(runtime, rep, "account", pool["id"], "claim")
    assert outcome.record["owner"] == rep_id
    with pytest.raises(NotFound):  # no longer in the pool: the other rep cannot see it at all
        actions.run(runtime, _as(runtime, other_id, "rep"), "account", pool["id"], "claim")
    history = audit.history(runtime.db.connect(), runtime, runtime.spec.module("account"), pool["id"], frozenset({"owner"}))
    assert any(h["field"] == "owner" and h["user_id"] == rep_id for h in history)


def test_claim_refused_when_condition_fails(runtime: Runtime) -> None:
    owned = records.create(runtime, SYSTEM, "account", {"name": "Owned", "owner": add_test_user(runtime, "boss", ("manager",))})
    with pytest.raises(Invalid):
        actions.run(runtime, SYSTEM, "account", owned["id"], "claim")


def test_merge_moves_every_link_and_keeps_data(runtime: Runtime) -> None:
    keep = records.create(runtime, SYSTEM, "account", {"name": "Acme Ltd", "employees": 50})
    dup = records.create(runtime, SYSTEM, "account", {"name": "ACME", "email": "info@acme.cn", "employees": 10})
    child = records.create(runtime, SYSTEM, "account", {"name": "Acme Shanghai", "parent": dup["id"]})
    contacts = [records.create(runtime, SYSTEM, "contact", {"full_name": f"P{i}", "account": dup["id"]}) for i in range(3)]
    deal = records.create(runtime, SYSTEM, "deal", {"title": "D", "account": dup["id"], "amount": 10})
    outcome = actions.run(runtime, SYSTEM, "account", keep["id"], "merge", {"duplicate": dup["id"]})
    assert outcome.record["email"] == "info@acme.cn" and outcome.record["employees"] == 50
    assert all(records.get(runtime, SYSTEM, "contact", c["id"])["account"] == keep["id"] for c in contacts)
    assert records.get(runtime, SYSTEM, "deal", deal["id"])["account"] == keep["id"]
    assert records.get(runtime, SYSTEM, "account", child["id"])["parent"] == keep["id"]
    with pytest.raises(NotFound):
        records.get(runtime, SYSTEM, "account", dup["id"])
    assert [e["record_id"] for e in audit.recycle_bin(runtime, runtime.spec.module("account"))] == [dup["id"]]


def test_merge_needs_a_duplicate_and_delete_rights(runtime: Runtime) -> None:
    a = records.create(runtime, SYSTEM, "account", {"name": "A"})
    with pytest.raises(Invalid):
        actions.run(runtime, SYSTEM, "account", a["id"], "merge", {})
    rep_id = add_test_user(runtime, "rep", ("rep",))
    mine = records.create(runtime, SYSTEM, "account", {"name": "Mine", "owner": rep_id})
    other = records.create(runtime, SYSTEM, "account", {"name": "Mine too", "owner": rep_id})
    with pytest.raises(Forbidden):
        actions.run(runtime, _as(runtime, rep_id, "rep"), "account", mine["id"], "merge", {"duplicate": other["id"]})


def test_create_action_converts_and_links(runtime: Runtime) -> None:
    contact = records.create(runtime, SYSTEM, "contact", {"full_name": "Wang Wei"})
    outcome = actions.run(runtime, SYSTEM, "contact", contact["id"], "to_account")
    account = records.get(runtime, SYSTEM, "account", outcome.created["account"])
    assert account["name"] == "Wang Wei Ltd" and account["notes"] == "from contact Wang Wei"
    assert outcome.record["account"] == account["id"]
    with pytest.raises(Invalid):  # condition: only while the contact has no account
        actions.run(runtime, SYSTEM, "contact", contact["id"], "to_account")


def test_actions_over_http(make_app: Any) -> None:
    app = make_app()
    client = login(app, "rep", ("rep",))
    rt: Runtime = app.state.runtime
    pool = records.create(rt, SYSTEM, "account", {"name": "Pooled"})
    done = client.post(f"/api/account/{pool['id']}/actions/claim")
    assert done.status_code == 200, done.text
    assert done.json()["record"]["owner"] is not None
    assert "secret_score" not in done.json()["record"]
    assert client.post(f"/api/account/{pool['id']}/actions/nope").status_code == 404
    assert client.post("/api/account/999999/actions/claim").status_code == 404
    page = client.post(f"/m/account/{pool['id']}/actions/claim", follow_redirects=False)
    assert page.status_code in (303, 422)
    no_csrf = client.post(f"/api/account/{pool['id']}/actions/claim", headers={"X-CSRF-Token": "wrong"})
    assert no_csrf.status_code == 403
    with rt.db.connect() as conn:
        owner = conn.execute(sa.select(rt.tables["account"].c.owner).where(rt.tables["account"].c.id == pool["id"])).scalar_one()
    assert owner is not None
