"""Industry overlays on the standard CRM (metadata/industries/): the logistics pack loads, merges onto the base and works."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine import actions, expr, records
from engine.access import Actor, SystemAccess
from engine.errors import Invalid
from engine.gate import RoleAccess
from engine.loader import load
from engine.migrate import ensure_schema
from engine.recompute import clock_formulas, recompute
from engine.runtime import Runtime, Settings, make_engine, open_runtime
from engine.spec import Spec

from .conftest import CRM_BUNDLE, add_test_user
from .test_crm_bundle import _labels

LOGISTICS = CRM_BUNDLE / "industries" / "logistics"
SYSTEM = SystemAccess()
NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
NEW_CUSTOMER_FIELDS = ("cargo_type", "monthly_volume", "main_lanes", "settlement", "on_time_target", "system_integration")


@pytest.fixture(scope="module")
def base() -> Spec:
    return load(CRM_BUNDLE).spec


@pytest.fixture(scope="module")
def pack() -> Spec:
    return load(LOGISTICS).spec


@pytest.fixture
def rt(db_url: str) -> Iterator[Runtime]:
    """A runtime on the logistics pack with its schema created."""
    runtime = open_runtime(Settings(metadata=LOGISTICS, db_url=db_url, files=Path(tempfile.mkdtemp(prefix="loom-files-"))),
                           db=make_engine(db_url))
    ensure_schema(runtime)
    yield runtime
    runtime.db.dispose()


def _at(hours: float) -> str:
    return (NOW + dt.timedelta(hours=hours)).isoformat()


def _create(rt: Runtime, module: str, **values: Any) -> dict[str, Any]:
    return records.create(rt, SYSTEM, module, values)


# ---- the merge --------------------------------------------------------------------------------------------------


def test_loom_check_passes_on_the_pack() -> None:
    done = subprocess.run([sys.executable, "-m", "engine.cli", "check", "--metadata", str(LOGISTICS)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok: crm_logistics")


def test_the_pack_adds_modules_and_keeps_every_base_one(base: Spec, pack: Spec) -> None:
    assert pack.app.name == "crm_logistics" and pack.app.label("zh").startswith("Loom 物流")
    assert set(pack.modules) == set(base.modules) | {"shipment", "shipment_item", "carrier"}
    assert pack.app.roles == base.app.roles
    assert [g.group for g in pack.app.navigation] == [g.group for g in base.app.navigation] + ["logistics"]
    assert pack.app.navigation[-1].items == ("shipment", "carrier")
    assert pack.app.panels == base.app.panels and pack.app.departments == "department"
    for name in set(base.modules) - {"customer", "ticket"}:
        assert pack.module(name) == base.module(name), name


def test_customer_gets_the_logistics_profile_on_top_of_the_base(base: Spec, pack: Spec) -> None:
    before, after = base.module("customer"), pack.module("customer")
    own = [f.name for f in after.fields if not f.system]
    assert own == [f.name for f in before.fields if not f.system] + list(NEW_CUSTOMER_FIELDS)
    assert all(after.field(f.name) == f for f in before.fields)
    assert not set(NEW_CUSTOMER_FIELDS) & set(before.by_name)  # the base bundle is untouched
    assert after.actions == before.actions and after.validations == before.validations
    rep = after.permission("sales_rep")
    assert rep is not None and rep.field_access("score") == "read" and rep.field_access("on_time_target") == "read"
    assert rep.scope("read") == "self" and rep.unowned  # the base rule stays, the pack adds a field rule
    assert after.permission("finance") == before.permission("finance")


def test_restated_layouts_keep_everything_the_base_shows(base: Spec, pack: Spec) -> None:
    """The pack restates forms and related lists (they are replaced whole): nothing of the base may drop out."""
    for name in ("customer", "ticket"):
        shown = {n for t in pack.module(name).layout.form for s in t.sections for n in s.fields}
        assert {n for t in base.module(name).layout.form for s in t.sections for n in s.fields} <= shown, name
        assert {f.name for f in pack.module(name).fields if not f.system} <= shown, name
    assert set(base.module("customer").layout.related) < set(pack.module("customer").layout.related)
    assert [t.label("zh") for t in pack.module("customer").layout.form][2] == "物流档案"


def test_ticket_categories_keep_the_base_ones(base: Spec, pack: Spec) -> None:
    before = [o.value for o in base.module("ticket").field("category").options]
    after = [o.value for o in pack.module("ticket").field("category").options]
    assert set(before) < set(after) and {"cargo_damage", "cargo_loss", "late_delivery"} <= set(after)
    category = pack.module("ticket").field("category")
    assert category.required and category.label("zh") == "问题分类"  # merged into the base field, not replacing it
    assert pack.module("ticket").field("shipment").module == "shipment"


def test_every_label_of_the_pack_is_bilingual(pack: Spec) -> None:
    assert [where for where, label in _labels(pack) if not (label.has("en") and label.has("zh"))] == []


def test_date_formulas_of_the_pack_are_recomputed_daily(pack: Spec) -> None:
    assert clock_formulas(pack.module("shipment")) == ["late"]


# ---- the pack at work -------------------------------------------------------------------------------------------


def _booking(rt: Runtime) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    customer = _create(rt, "customer", name="顺达冷链食品", settlement="collect", cargo_type="cold_chain", main_lanes="郑州—广州")
    contract = _create(rt, "contract", title="2027 cold chain lanes", customer=customer["id"])
    carrier = _create(rt, "carrier", name="中原冷运车队", kind="own_fleet")
    return customer, contract, carrier


def test_a_waybill_fills_from_its_contract_and_adds_up_goods_and_charges(rt: Runtime) -> None:
    customer, contract, carrier = _booking(rt)
    items = [{"description": "Frozen dumplings", "packaging": "pallet", "packages": 12, "weight_kg": "4800.5", "volume_m3": "14.4"},
             {"description": "Ice cream", "packages": 30, "weight_kg": "600", "volume_m3": "2.1"}]
    wb = _create(rt, "shipment", contract=contract["id"], carrier=carrier["id"], origin="郑州", destination="广州",
                 promised_at=_at(48), items=items, freight="3600", insured_value="200000", other_charges="150")
    assert wb["code"].startswith("WB-") and (wb["customer"], wb["settlement"], wb["cargo_type"]) == (customer["id"], "collect", "cold_chain")
    assert (wb["total_packages"], wb["total_weight"], wb["total_volume"]) == (42, Decimal("5400.50"), Decimal("16.50"))
    assert (wb["insurance_fee"], wb["total_charge"]) == (Decimal("600.00"), Decimal("4350.00"))
    assert (wb["status"], wb["on_time"], wb["late"]) == ("booked", None, False)
    mine = _create(rt, "shipment", customer=customer["id"], settlement="prepaid", origin="A", destination="B", promised_at=_at(5))
    assert mine["settlement"] == "prepaid"  # a value sent wins over the customer's


def test_delivery_on_time_late_and_exceptions(rt: Runtime) -> None:
    customer, _, _ = _booking(rt)
    base = {"customer": customer["id"], "origin": "郑州", "destination": "广州", "picked_up_at": _at(-72), "promised_at": _at(-24)}
    on_time = records.create(rt, SYSTEM, "shipment", base | {"status": "delivered", "delivered_at": _at(-48), "signed_by": "陈"})
    assert (on_time["on_time"], on_time["late"], on_time["transit_days"]) == (True, False, 1)
    late = records.create(rt, SYSTEM, "shipment", base | {"status": "delivered", "delivered_at": _at(-1), "signed_by": "陈"})
    assert late["on_time"] is False
    stuck = records.create(rt, SYSTEM, "shipment", base | {"status": "in_transit"})
    assert (stuck["late"], stuck["on_time"]) == (True, None)
    with pytest.raises(Invalid) as unsigned:
        records.create(rt, SYSTEM, "shipment", base | {"status": "delivered", "delivered_at": _at(-30)})
    assert set(unsigned.value.fields) == {"signed_by"}
    with pytest.raises(Invalid) as unexplained:
        records.create(rt, SYSTEM, "shipment", base | {"status": "exception"})
    assert set(unexplained.value.fields) == {"exception_kind"}
    with pytest.raises(Invalid) as backwards:
        records.create(rt, SYSTEM, "shipment", base | {"promised_at": _at(-100)})
    assert set(backwards.value.fields) == {"promised_at"}


def test_a_waybill_turns_late_in_the_daily_recompute(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    customer, _, _ = _booking(rt)
    wb = _create(rt, "shipment", customer=customer["id"], origin="A", destination="B", promised_at=_at(24))
    assert wb["late"] is False
    monkeypatch.setitem(expr.FUNCTIONS, "now", lambda: NOW + dt.timedelta(days=2))
    recompute(rt, "shipment")
    assert records.get(rt, SYSTEM, "shipment", wb["id"])["late"] is True


def test_roles_in_the_pack(rt: Runtime) -> None:
    customer, _, _ = _booking(rt)
    wb = _create(rt, "shipment", customer=customer["id"], origin="A", destination="B", promised_at=_at(24), freight="900",
                 insured_value="1000")
    service = RoleAccess(Actor(user_id=add_test_user(rt, "service", ("service",)), roles=("service",)), rt.spec)
    seen = records.get(rt, service, "shipment", wb["id"])
    assert seen["destination"] == "B" and {"freight", "insured_value", "insurance_fee", "total_charge"} & set(seen) == set()
    warehouse = RoleAccess(Actor(user_id=add_test_user(rt, "warehouse", ("warehouse",)), roles=("warehouse",)), rt.spec)
    moved = records.update(rt, warehouse, "shipment", wb["id"], {"status": "picked_up", "picked_up_at": _at(0)}, wb["version"])
    assert moved["status"] == "picked_up"
    rep = RoleAccess(Actor(user_id=add_test_user(rt, "rep", ("sales_rep",)), roles=("sales_rep",)), rt.spec)
    booked = records.create(rt, rep, "shipment", {"customer": customer["id"], "origin": "A", "destination": "C", "promised_at": _at(9)})
    with pytest.raises(Invalid) as refused:  # the warehouse records the delivery, not the rep
        records.update(rt, rep, "shipment", booked["id"], {"delivered_at": _at(8)}, booked["version"])
    assert set(refused.value.fields) == {"delivered_at"}
    assert not RoleAccess(Actor(user_id=1, roles=("marketing",)), rt.spec).can(rt.spec.module("shipment"), "read")


def test_merging_customers_moves_their_waybills_too(rt: Runtime) -> None:
    keep = _create(rt, "customer", name="顺达冷链食品有限公司")
    dup, _, _ = _booking(rt)
    wb = _create(rt, "shipment", customer=dup["id"], origin="A", destination="B", promised_at=_at(24))
    actions.run(rt, SYSTEM, "customer", keep["id"], "merge", {"duplicate": dup["id"]})
    assert records.get(rt, SYSTEM, "shipment", wb["id"])["customer"] == keep["id"]
    assert records.get(rt, SYSTEM, "customer", keep["id"])["settlement"] == "monthly"  # the survivor's own value (default) stays
