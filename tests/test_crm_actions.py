"""The CRM bundle's record actions as the demo roles take them: claim and release from the customer pool, merge
duplicate customers, convert a lead; and what each role's records carry (no cost, margin or amount it may not read)."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine import actions, audit, records
from engine.access import Actor, SystemAccess
from engine.errors import Forbidden, Invalid, NotFound
from engine.gate import RoleAccess
from engine.migrate import ensure_schema
from engine.runtime import Runtime, Settings, make_engine, open_runtime

from .conftest import CRM_BUNDLE, add_test_user

SYSTEM = SystemAccess()
LINKED = ("contact", "opportunity", "contract", "ticket", "activity", "receivable", "survey")


@pytest.fixture
def crm(db_url: str) -> Iterator[Runtime]:
    """A runtime on the CRM bundle with its schema created."""
    rt = open_runtime(Settings(metadata=CRM_BUNDLE, db_url=db_url, files=Path(tempfile.mkdtemp(prefix="loom-files-"))),
                      db=make_engine(db_url))
    ensure_schema(rt)
    yield rt
    rt.db.dispose()


def _user(rt: Runtime, name: str, role: str, department: int | None = None) -> RoleAccess:
    """A demo-style user of one role, and their access."""
    uid = add_test_user(rt, name, (role,), department_id=department)
    return RoleAccess(Actor(user_id=uid, username=name, roles=(role,), department_id=department), rt.spec)


def _create(rt: Runtime, module: str, **values: Any) -> dict[str, Any]:
    return records.create(rt, SYSTEM, module, values)


def _assignments(rt: Runtime, customer_id: int) -> list[tuple[str, int | None, int | None]]:
    table = rt.tables["customer_assignment"]
    with rt.db.connect() as conn:
        rows = conn.execute(sa.select(table.c.action, table.c.from_owner, table.c.to_owner)
                            .where(table.c.customer == customer_id).order_by(table.c.id)).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def _names(rt: Runtime, access: RoleAccess, record: dict[str, Any]) -> list[str]:
    return [a.name for a in actions.available(rt, access, rt.spec.module("customer"), record)]


# ---- the customer pool ------------------------------------------------------------------------------------------


def test_a_rep_claims_a_pool_customer_and_releases_it(crm: Runtime) -> None:
    rep, other = _user(crm, "sales_rep", "sales_rep"), _user(crm, "rep2", "sales_rep")
    pooled = _create(crm, "customer", name="淮南矿业集团", owner=None)
    seen = records.get(crm, rep, "customer", pooled["id"])  # the pool is open to every rep
    assert _names(crm, rep, seen) == ["claim"]
    claimed = actions.run(crm, rep, "customer", pooled["id"], "claim").record
    assert claimed["owner"] == rep.actor.user_id
    assert _assignments(crm, pooled["id"]) == [("claim", None, rep.actor.user_id)]
    with pytest.raises(NotFound):  # out of the pool: the other rep no longer sees it
        actions.run(crm, other, "customer", pooled["id"], "claim")
    assert _names(crm, rep, claimed) == ["release"]
    actions.run(crm, rep, "customer", pooled["id"], "release")
    assert records.get(crm, SYSTEM, "customer", pooled["id"])["owner"] is None
    assert actions.run(crm, other, "customer", pooled["id"], "claim").record["owner"] == other.actor.user_id
    assert [a[0] for a in _assignments(crm, pooled["id"])] == ["claim", "release", "claim"]


def test_claiming_an_owned_customer_is_refused(crm: Runtime) -> None:
    rep, other = _user(crm, "sales_rep", "sales_rep"), _user(crm, "rep2", "sales_rep")
    owned = records.create(crm, rep, "customer", {"name": "Mine Ltd"})
    with pytest.raises(Invalid):
        actions.run(crm, rep, "customer", owned["id"], "claim")
    with pytest.raises(NotFound):
        actions.run(crm, other, "customer", owned["id"], "release")
    assert _assignments(crm, owned["id"]) == []


@pytest.mark.parametrize("role", ["service", "marketing", "finance", "warehouse", "executive"])
def test_roles_outside_sales_cannot_claim(crm: Runtime, role: str) -> None:
    service = _user(crm, role, role)
    pooled = _create(crm, "customer", name="Pool Co", owner=None)
    assert _names(crm, service, records.get(crm, service, "customer", pooled["id"])) == []
    with pytest.raises(Forbidden):  # service reads every customer, but the pool rule (unowned) is the sales roles'
        actions.run(crm, service, "customer", pooled["id"], "claim")
    assert records.get(crm, SYSTEM, "customer", pooled["id"])["owner"] is None


# ---- merging duplicates -----------------------------------------------------------------------------------------


def _links(rt: Runtime, customer: int, owner: int, product: int) -> None:
    """One of each record that points at a customer (two contacts)."""
    k1 = _create(rt, "contact", full_name=f"李雷 {customer}", customer=customer, owner=owner)
    _create(rt, "contact", full_name=f"韩梅梅 {customer}", customer=customer, owner=owner)
    opp = _create(rt, "opportunity", name=f"Deal {customer}", customer=customer, amount="1000", owner=owner)
    contract = _create(rt, "contract", title=f"Contract {customer}", customer=customer, opportunity=opp["id"], owner=owner,
                       lines=[{"product": product, "quantity": "1", "unit_price": "1000"}])
    ticket = _create(rt, "ticket", subject="Noise", customer=customer, contact=k1["id"], category="quality", owner=owner)
    _create(rt, "activity", subject="Visit", customer=customer, contact=k1["id"], owner=owner)
    _create(rt, "receivable", contract=contract["id"], due_date=dt.date.today().isoformat(), amount="1000", owner=owner)
    _create(rt, "survey", ticket=ticket["id"], product_quality=4, owner=owner)


def _count(rt: Runtime, module: str, customer: int) -> int:
    table = rt.tables[module]
    with rt.db.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(table.c.customer == customer)).scalar_one())


def test_a_manager_merges_two_duplicate_customers(crm: Runtime) -> None:
    east = _create(crm, "department", name="华东销售部")["id"]
    manager = _user(crm, "sales_manager", "sales_manager", east)
    rep1, rep2 = _user(crm, "rep1", "sales_rep", east), _user(crm, "rep2", "sales_rep", east)
    product = _create(crm, "product", name="EBZ160", code="EBZ160")["id"]
    keep = _create(crm, "customer", name="华信机械有限公司", phone="0371-66668888", owner=rep1.actor.user_id)
    dup = _create(crm, "customer", name="华信机械", email="sales@huaxin.cn", phone="0371-1", industry="machinery",
                  owner=rep2.actor.user_id)
    _links(crm, keep["id"], rep1.actor.user_id, product)
    _links(crm, dup["id"], rep2.actor.user_id, product)
    actions.run(crm, rep2, "customer", dup["id"], "release")  # the duplicate has a history of its own
    actions.run(crm, rep2, "customer", dup["id"], "claim")
    before = {m: _count(crm, m, keep["id"]) + _count(crm, m, dup["id"]) for m in LINKED}
    with pytest.raises(Forbidden):  # merging deletes the duplicate: reps may not
        actions.run(crm, rep1, "customer", keep["id"], "merge", {"duplicate": dup["id"]})
    merged = actions.run(crm, manager, "customer", keep["id"], "merge", {"duplicate": dup["id"]}).record
    assert {m: _count(crm, m, keep["id"]) for m in LINKED} == before
    assert all(_count(crm, m, dup["id"]) == 0 for m in LINKED)
    assert (merged["name"], merged["phone"], merged["email"], merged["industry"]) == (
        "华信机械有限公司", "0371-66668888", "sales@huaxin.cn", "machinery")  # the survivor's values stay, gaps are filled
    with pytest.raises(NotFound):
        records.get(crm, SYSTEM, "customer", dup["id"])
    assert dup["id"] in [e["record_id"] for e in audit.recycle_bin(crm, crm.spec.module("customer"))]
    history = _assignments(crm, keep["id"])
    assert history[-1] == ("merge", rep2.actor.user_id, rep1.actor.user_id)
    assert [a[0] for a in history] == ["release", "claim", "merge"]  # the duplicate's history moved along


def test_merge_needs_a_duplicate_in_reach(crm: Runtime) -> None:
    east, west = _create(crm, "department", name="East")["id"], _create(crm, "department", name="West")["id"]
    manager = _user(crm, "sales_manager", "sales_manager", east)
    mine = _create(crm, "customer", name="East Co", owner=_user(crm, "rep_e", "sales_rep", east).actor.user_id)
    theirs = _create(crm, "customer", name="West Co", owner=_user(crm, "rep_w", "sales_rep", west).actor.user_id)
    with pytest.raises(Invalid) as missing:
        actions.run(crm, manager, "customer", mine["id"], "merge", {})
    assert set(missing.value.fields) == {"duplicate"}
    with pytest.raises(Invalid):
        actions.run(crm, manager, "customer", mine["id"], "merge", {"duplicate": mine["id"]})
    with pytest.raises(NotFound):  # another department's customer is out of the manager's delete scope
        actions.run(crm, manager, "customer", mine["id"], "merge", {"duplicate": theirs["id"]})
    assert records.get(crm, SYSTEM, "customer", theirs["id"])["name"] == "West Co"


# ---- lead conversion --------------------------------------------------------------------------------------------


def test_a_rep_converts_a_lead_into_customer_contact_and_opportunity(crm: Runtime) -> None:
    rep = _user(crm, "sales_rep", "sales_rep")
    lead = records.create(crm, rep, "lead", {
        "company": "徐州重型机械", "contact_name": "张强", "job_title": "采购部经理", "phone": "0516-8888", "email": "zq@xz.cn",
        "province": "江苏", "city": "徐州", "industry": "machinery", "source": "exhibition", "budget": "80000",
        "authority": "decision_maker", "need": "Two roadheaders"})
    outcome = actions.run(crm, rep, "lead", lead["id"], "convert")
    assert set(outcome.created) == {"customer", "contact", "opportunity"}
    customer = records.get(crm, rep, "customer", outcome.created["customer"])
    contact = records.get(crm, rep, "contact", outcome.created["contact"])
    opp = records.get(crm, rep, "opportunity", outcome.created["opportunity"])
    assert (customer["name"], customer["city"], customer["source"], customer["category"], customer["owner"]) == (
        "徐州重型机械", "徐州", "exhibition", "new", rep.actor.user_id)
    assert (contact["full_name"], contact["customer"], contact["decision_role"], contact["is_primary"]) == (
        "张强", customer["id"], "decision_maker", True)
    assert (opp["customer"], opp["contact"], opp["lead"], opp["stage"]) == (customer["id"], contact["id"], lead["id"], "initial")
    assert (opp["amount"], opp["present_value"], opp["description"]) == (Decimal("80000.00"), Decimal("8000.00"), "Two roadheaders")
    assert (outcome.record["status"], outcome.record["converted_customer"]) == ("converted", customer["id"])
    with pytest.raises(Invalid):  # converted once
        actions.run(crm, rep, "lead", lead["id"], "convert")


def test_a_disqualified_lead_is_not_converted(crm: Runtime) -> None:
    rep = _user(crm, "sales_rep", "sales_rep")
    lead = records.create(crm, rep, "lead", {"company": "Nobody", "contact_name": "N", "status": "disqualified",
                                             "disqualified_reason": "no need"})
    with pytest.raises(Invalid):
        actions.run(crm, rep, "lead", lead["id"], "convert")
    with crm.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(crm.tables["customer"])).scalar_one() == 0


def test_a_rep_cannot_set_the_converted_customer_by_hand(crm: Runtime) -> None:
    rep = _user(crm, "sales_rep", "sales_rep")
    customer = records.create(crm, rep, "customer", {"name": "Mine"})
    with pytest.raises(Invalid) as refused:
        records.create(crm, rep, "lead", {"company": "X", "contact_name": "Y", "converted_customer": customer["id"]})
    assert set(refused.value.fields) == {"converted_customer"}


# ---- what leaves the server for each role -----------------------------------------------------------------------


def _deal(rt: Runtime, owner: int) -> tuple[dict[str, Any], dict[str, Any]]:
    customer = _create(rt, "customer", name="Costly Co", owner=owner)
    product = _create(rt, "product", name="Support", code="ZY6800", list_price="500", cost_price="300")
    line = {"product": product["id"], "quantity": "2", "unit_price": "500", "cost_price": "300"}
    quote = _create(rt, "quote", subject="Q", customer=customer["id"], lines=[line], owner=owner)
    plan = [{"instalment": 1, "due_date": dt.date.today().isoformat(), "amount": "1000"}]
    contract = _create(rt, "contract", title="C", customer=customer["id"], lines=[line], payment_plan=plan, owner=owner)
    return quote, contract


def test_a_rep_never_receives_costs_or_margins(crm: Runtime) -> None:
    rep = _user(crm, "sales_rep", "sales_rep")
    quote, contract = _deal(crm, rep.actor.user_id)
    seen = records.get(crm, rep, "quote", quote["id"])
    assert seen["total"] == Decimal("1000.00") and "gross_margin" not in seen and "margin_rate" not in seen
    assert [sorted({"cost_price", "margin"} & set(r)) for r in seen["lines"]] == [[]]
    assert seen["lines"][0]["amount"] == Decimal("1000.00")
    deal = records.get(crm, rep, "contract", contract["id"])
    assert "gross_margin" not in deal and "cost_price" not in deal["lines"][0]
    product = records.get(crm, rep, "product", quote["lines"][0]["product"])
    assert "cost_price" not in product and product["list_price"] == Decimal("500.00")
    assert records.get(crm, SYSTEM, "quote", quote["id"])["gross_margin"] == Decimal("400.00")


def test_a_rep_editing_a_line_keeps_the_cost_it_cannot_see(crm: Runtime) -> None:
    rep = _user(crm, "sales_rep", "sales_rep")
    quote, _ = _deal(crm, rep.actor.user_id)
    row = records.get(crm, rep, "quote", quote["id"])["lines"][0]
    records.update(crm, rep, "quote", quote["id"], {"lines": [{"id": row["id"], "quantity": "3"}]}, quote["version"])
    after = records.get(crm, SYSTEM, "quote", quote["id"])
    assert (after["lines"][0]["cost_price"], after["gross_margin"]) == (Decimal("300.00"), Decimal("600.00"))


def test_service_sees_what_was_sold_but_no_contract_amounts(crm: Runtime) -> None:
    service = _user(crm, "service", "service")
    _, contract = _deal(crm, add_test_user(crm, "owner", ("sales_rep",)))
    seen = records.get(crm, service, "contract", contract["id"])
    assert seen["title"] == "C" and seen["lines"][0]["quantity"] == Decimal("2")
    hidden = {"subtotal", "total", "extra_discount", "gross_margin", "margin_rate", "planned_total", "payment_terms"}
    assert hidden & set(seen) == set()
    assert {"unit_price", "amount", "list_amount", "cost_price", "margin"} & set(seen["lines"][0]) == set()
    assert "amount" not in seen["payment_plan"][0] and seen["payment_plan"][0]["instalment"] == 1
    for module in ("quote", "receivable", "payment", "invoice", "opportunity"):
        assert not service.can(crm.spec.module(module), "read"), module
