"""The standard CRM bundle (metadata/): it checks, speaks en and zh everywhere, and its formulas compute what the domain says."""

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
import sqlalchemy as sa

from engine import expr, records
from engine.access import Actor, SystemAccess
from engine.errors import Invalid
from engine.gate import RoleAccess
from engine.loader import load
from engine.migrate import ensure_schema
from engine.recompute import clock_formulas, daily, recompute
from engine.runtime import Runtime, Settings, make_engine, open_runtime
from engine.spec import Label, Spec

from .conftest import CRM_BUNDLE, add_test_user

SYSTEM = SystemAccess()
TODAY = dt.date.today()
ROLES = ("executive", "sales_director", "sales_manager", "sales_rep", "marketing", "service", "finance", "warehouse", "admin")
ISSUE_MODULES = ("customer", "contact", "lead", "opportunity", "activity", "product", "product_category", "quote", "quote_line",
                 "contract", "contract_line", "payment_plan", "receivable", "payment", "invoice", "expense", "campaign", "ticket",
                 "kb_article", "survey", "department", "position", "announcement")
MENU = ("home", "marketing", "customers", "sales", "products", "service", "finance", "reports", "settings")


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load(CRM_BUNDLE).spec


@pytest.fixture
def crm(db_url: str) -> Iterator[Runtime]:
    """A runtime on the CRM bundle with its schema created."""
    rt = open_runtime(Settings(metadata=CRM_BUNDLE, db_url=db_url, files=Path(tempfile.mkdtemp(prefix="loom-files-"))),
                      db=make_engine(db_url))
    ensure_schema(rt)
    yield rt
    rt.db.dispose()


def _days(n: int) -> str:
    return (TODAY + dt.timedelta(days=n)).isoformat()


def _as(rt: Runtime, user_id: int, role: str) -> RoleAccess:
    return RoleAccess(Actor(user_id=user_id, username=f"u{user_id}", roles=(role,)), rt.spec)


def _create(rt: Runtime, module: str, **values: Any) -> dict[str, Any]:
    return records.create(rt, SYSTEM, module, values)


# ---- the bundle as metadata -------------------------------------------------------------------------------------


def test_loom_check_passes() -> None:
    done = subprocess.run([sys.executable, "-m", "engine.cli", "check", "--metadata", str(CRM_BUNDLE)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok: crm")


def _labels(spec: Spec) -> Iterator[tuple[str, Label]]:
    """Every label a user can see, with where it is."""
    yield "app", spec.app.label
    yield from ((f"role {r.name}", r.label) for r in spec.app.roles)
    yield from ((f"menu {g.group}", g.label) for g in spec.app.navigation)
    yield from ((f"home panel {p.module}", p.label) for p in spec.app.panels)
    for m in spec.modules.values():
        yield m.name, m.label
        yield f"{m.name} plural", m.plural
        for f in m.fields:
            yield f"{m.name}.{f.name}", f.label
            yield from ((f"{m.name}.{f.name} help", h) for h in [f.help] if h is not None)
            yield from ((f"{m.name}.{f.name}={o.value}", o.label) for o in f.options)
        for tab in m.layout.form:
            yield f"{m.name} tab", tab.label
            yield from ((f"{m.name} section", s.label) for s in tab.sections if s.label is not None)
        yield from ((f"{m.name} related {r.module}", r.label) for r in m.layout.related if r.label is not None)
        yield from ((f"{m.name} rule {v.expr.source}", v.message) for v in m.validations)
        for a in m.actions:
            yield f"{m.name} action {a.name}", a.label
            yield from ((f"{m.name} action {a.name} confirm", c) for c in [a.confirm] if c is not None)


def test_every_label_is_bilingual(spec: Spec) -> None:
    seen = list(_labels(spec))
    assert len(seen) > 1000  # modules, fields and options are all walked
    assert [where for where, label in seen if not (label.has("en") and label.has("zh"))] == []


def test_every_module_field_and_option_is_labelled(spec: Spec) -> None:
    names = {m.name for m in spec.modules.values()}
    assert set(ISSUE_MODULES) <= names
    fields = [(m.name, f) for m in spec.modules.values() for f in m.fields]
    options = [o for _, f in fields for o in f.options]
    assert len(fields) > 400 and len(options) > 300
    assert all(f.label("zh") != f.label("en") or f.label("en") in ("ID", "AAA", "AA", "A", "B", "C") for _, f in fields if not f.system)


def test_the_nine_roles(spec: Spec) -> None:
    assert tuple(r.name for r in spec.app.roles) == ROLES
    assert [r.name for r in spec.app.roles if r.admin] == ["admin"]


def test_menu_groups_hold_every_top_level_module_once(spec: Spec) -> None:
    assert tuple(g.group for g in spec.app.navigation) == MENU
    items = [i for g in spec.app.navigation for i in g.items]
    assert sorted(items) == sorted(m.name for m in spec.modules.values() if not m.child)


def test_every_top_level_module_has_a_rule_for_every_role(spec: Spec) -> None:
    missing = [(m.name, role) for m in spec.modules.values() if not m.child for role in ROLES if m.permission(role) is None]
    assert missing == []


def test_stages_carry_a_rising_probability(spec: Spec) -> None:
    stage = spec.module("opportunity").field("stage")
    odds = {o.value: o.probability for o in stage.options}
    assert odds["won"] == 100 and odds["lost"] == 0
    open_odds = [odds[v] for v in ("initial", "needs", "proposal", "negotiation", "contract")]
    assert open_odds == sorted(open_odds) and all(0 < p < 100 for p in open_odds)  # type: ignore[operator]


def test_date_formulas_are_in_the_daily_recompute(spec: Spec) -> None:
    assert {"overdue_days", "aging"} <= set(clock_formulas(spec.module("receivable")))
    assert "days_in_stage" in clock_formulas(spec.module("opportunity"))
    assert "days_since_followup" in clock_formulas(spec.module("customer"))
    assert "sla_breached" in clock_formulas(spec.module("ticket"))


HIDDEN = [  # (role, module, field): the role never reads it
    ("sales_rep", "product", "cost_price"),
    ("sales_rep", "quote", "gross_margin"), ("sales_rep", "quote", "margin_rate"),
    ("sales_rep", "quote_line", "cost_price"), ("sales_rep", "quote_line", "margin"),
    ("sales_rep", "contract", "gross_margin"), ("sales_rep", "contract", "margin_rate"),
    ("sales_rep", "contract_line", "cost_price"), ("sales_rep", "contract_line", "margin"),
    ("marketing", "product", "cost_price"),
    ("service", "contract", "total"), ("service", "contract", "subtotal"), ("service", "contract", "planned_total"),
    ("service", "contract", "gross_margin"), ("service", "contract_line", "amount"), ("service", "contract_line", "unit_price"),
    ("service", "payment_plan", "amount"), ("service", "customer", "credit_limit"), ("service", "customer", "balance"),
    ("warehouse", "contract", "total"), ("warehouse", "customer", "credit_rating"),
]
SHOWN = [  # (role, module, field): the role reads it
    ("sales_rep", "quote", "total"), ("sales_rep", "quote", "discount_rate"), ("sales_rep", "quote_line", "amount"),
    ("sales_rep", "contract", "total"), ("sales_rep", "product", "list_price"), ("sales_rep", "customer", "score"),
    ("sales_manager", "product", "cost_price"), ("sales_manager", "quote", "gross_margin"),
    ("finance", "contract", "gross_margin"), ("finance", "contract_line", "cost_price"), ("executive", "quote", "margin_rate"),
    ("service", "contract", "title"), ("service", "contract_line", "quantity"), ("service", "payment_plan", "due_date"),
]


@pytest.mark.parametrize(("role", "module", "field"), HIDDEN)
def test_field_a_role_must_not_read(spec: Spec, role: str, module: str, field: str) -> None:
    access = RoleAccess(Actor(user_id=1, roles=(role,)), spec)
    assert field in spec.module(module).by_name
    assert field not in access.readable(spec.module(module))


@pytest.mark.parametrize(("role", "module", "field"), SHOWN)
def test_field_a_role_reads(spec: Spec, role: str, module: str, field: str) -> None:
    assert field in RoleAccess(Actor(user_id=1, roles=(role,)), spec).readable(spec.module(module))


# ---- computed fields through the records service ----------------------------------------------------------------


def test_opportunity_probability_and_present_value_follow_the_stage(crm: Runtime) -> None:
    customer = _create(crm, "customer", name="华信机械有限公司")
    opp = _create(crm, "opportunity", name="Roadheaders 2027", customer=customer["id"], amount="200000", stage="proposal")
    assert opp["probability"] == Decimal("40") and opp["present_value"] == Decimal("80000.00")
    steps = [("needs", {}, "20", "40000.00"), ("negotiation", {"expected_close_date": _days(30)}, "60", "120000.00"),
             ("won", {"actual_close_date": _days(0)}, "100", "200000.00"), ("lost", {"lost_reason": "price"}, "0", "0.00")]
    for stage, extra, probability, present in steps:
        opp = records.update(crm, SYSTEM, "opportunity", opp["id"], {"stage": stage, **extra}, opp["version"])
        assert (opp["probability"], opp["present_value"]) == (Decimal(probability), Decimal(present)), stage
    no_amount = _create(crm, "opportunity", name="Spare parts", customer=customer["id"], stage="contract", expected_close_date=_days(9))
    assert no_amount["present_value"] == Decimal("0.00")


def test_opportunity_rules(crm: Runtime) -> None:
    customer = _create(crm, "customer", name="中泰能源")
    with pytest.raises(Invalid) as won:
        _create(crm, "opportunity", name="X", customer=customer["id"], stage="won", actual_close_date=_days(0))
    assert set(won.value.fields) == {"amount"}
    with pytest.raises(Invalid) as lost:
        _create(crm, "opportunity", name="X", customer=customer["id"], stage="lost")
    assert set(lost.value.fields) == {"lost_reason"}
    with pytest.raises(Invalid) as late:
        _create(crm, "opportunity", name="X", customer=customer["id"], stage="negotiation")
    assert set(late.value.fields) == {"expected_close_date"}


def test_days_in_stage(crm: Runtime) -> None:
    customer = _create(crm, "customer", name="恒达矿业")
    fresh = _create(crm, "opportunity", name="Supports", customer=customer["id"])
    assert fresh["stage_changed_at"] == TODAY and fresh["days_in_stage"] == 0
    stuck = _create(crm, "opportunity", name="Shearers", customer=customer["id"], stage="needs", stage_changed_at=_days(-12))
    assert stuck["days_in_stage"] == 12


def test_receivable_overdue_days_and_balance(crm: Runtime) -> None:
    customer = _create(crm, "customer", name="鑫源煤业")
    late = _create(crm, "receivable", customer=customer["id"], due_date=_days(-45), amount="1000", received="300")
    assert (late["balance"], late["overdue_days"], late["aging"], late["status"]) == (Decimal("700.00"), 45, "31-90", "open")
    paid = records.update(crm, SYSTEM, "receivable", late["id"], {"received": "1000", "status": "paid"}, late["version"])
    assert (paid["balance"], paid["overdue_days"], paid["aging"]) == (Decimal("0.00"), 0, "current")
    ahead = _create(crm, "receivable", customer=customer["id"], due_date=_days(20), amount="500")
    assert (ahead["balance"], ahead["overdue_days"]) == (Decimal("500.00"), 0)
    long_ago = _create(crm, "receivable", customer=customer["id"], due_date=_days(-200), amount="10")
    assert long_ago["aging"] == "180+"


def test_receivable_rules(crm: Runtime) -> None:
    customer = _create(crm, "customer", name="金鼎重工")
    with pytest.raises(Invalid) as too_much:
        _create(crm, "receivable", customer=customer["id"], due_date=_days(1), amount="100", received="120")
    assert set(too_much.value.fields) == {"received"}
    with pytest.raises(Invalid) as not_paid:
        _create(crm, "receivable", customer=customer["id"], due_date=_days(1), amount="100", received="20", status="paid")
    assert set(not_paid.value.fields) == {"status"}


def _products(rt: Runtime) -> tuple[int, int]:
    a = _create(rt, "product", name="EBZ160 roadheader", code="EBZ160", list_price="100", cost_price="60")
    b = _create(rt, "product", name="Cutting pick", code="PICK-1", list_price="50", cost_price="20")
    return a["id"], b["id"]


def test_quote_totals_discount_and_margin_from_lines(crm: Runtime) -> None:
    customer = _create(crm, "customer", name="宏远建设")
    a, b = _products(crm)
    lines = [{"product": a, "quantity": "2", "unit_price": "100", "discount": "10", "cost_price": "60"},
             {"product": b, "quantity": "1", "unit_price": "50", "cost_price": "20"}]
    quote = _create(crm, "quote", subject="Q1", customer=customer["id"], lines=lines, extra_discount="30")
    assert [(r["list_amount"], r["amount"], r["margin"]) for r in quote["lines"]] == [
        (Decimal("200.00"), Decimal("180.00"), Decimal("60.00")), (Decimal("50.00"), Decimal("50.00"), Decimal("30.00"))]
    totals = ("list_total", "subtotal", "total", "discount_rate", "gross_margin", "margin_rate")
    assert tuple(quote[k] for k in totals) == tuple(Decimal(v) for v in ("250", "230", "200", "20", "60", "30"))
    rows = [{"id": quote["lines"][0]["id"]}, {"id": quote["lines"][1]["id"], "quantity": "3"}]
    quote = records.update(crm, SYSTEM, "quote", quote["id"], {"lines": rows}, quote["version"])
    assert tuple(quote[k] for k in totals) == tuple(Decimal(v) for v in ("350", "330", "300", "14.29", "120", "40"))
    with pytest.raises(Invalid) as too_much:
        records.update(crm, SYSTEM, "quote", quote["id"], {"extra_discount": "331"}, quote["version"])
    assert set(too_much.value.fields) == {"extra_discount"}


def test_contract_totals_and_payment_plan(crm: Runtime) -> None:
    customer = _create(crm, "customer", name="天成电力")
    a, _ = _products(crm)
    lines = [{"product": a, "quantity": "10", "unit_price": "1000", "discount": "5", "cost_price": "700"}]
    plan = [{"instalment": i + 1, "due_date": _days(30 * i), "amount": amount} for i, amount in enumerate(("3000", "3000", "2000"))]
    with pytest.raises(Invalid) as short:
        _create(crm, "contract", title="C1", customer=customer["id"], lines=lines, extra_discount="500", payment_plan=plan)
    assert set(short.value.fields) == {"payment_plan"}
    plan[2]["amount"] = "3000"
    contract = _create(crm, "contract", title="C1", customer=customer["id"], lines=lines, extra_discount="500", payment_plan=plan)
    assert (contract["subtotal"], contract["total"], contract["planned_total"]) == (Decimal("9500"), Decimal("9000"), Decimal("9000"))
    assert (contract["gross_margin"], contract["margin_rate"]) == (Decimal("2000"), Decimal("22.22"))
    with pytest.raises(Invalid) as no_date:
        records.update(crm, SYSTEM, "contract", contract["id"], {"status": "executing"}, contract["version"])
    assert set(no_date.value.fields) == {"sign_date"}


def test_customer_value_is_summed_from_payments_and_wins(crm: Runtime) -> None:
    manager = _as(crm, add_test_user(crm, "mgr", ("sales_manager",)), "sales_manager")
    customer = _create(crm, "customer", name="Value Co")
    assert (customer["score"], customer["paid_total"], customer["won_count"]) == (0, Decimal("0.00"), 0)
    _create(crm, "payment", customer=customer["id"], amount="25400")
    _create(crm, "payment", customer=customer["id"], amount="600")
    _create(crm, "opportunity", name="Won", customer=customer["id"], stage="won", amount="90000", actual_close_date=_days(-1))
    _create(crm, "opportunity", name="Open", customer=customer["id"], stage="initial", amount="50000")
    customer = records.get(crm, SYSTEM, "customer", customer["id"])
    assert (customer["paid_total"], customer["won_count"]) == (Decimal("26000.00"), 1)
    assert customer["score"] == 26 + 100  # 1 point per 1,000 received, 100 per opportunity won
    with pytest.raises(Invalid) as refused:  # a summary is computed, never typed in, even by a manager
        records.create(crm, manager, "customer", {"name": "Mine", "score": "999"})
    assert set(refused.value.fields) == {"score"}


def test_follow_ups_and_the_pool_rule(crm: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    rep_id = add_test_user(crm, "rep", ("sales_rep",))
    never = _create(crm, "customer", name="Never called", owner=rep_id)
    called = _create(crm, "customer", name="Called", owner=rep_id)
    assert never["days_since_followup"] == 0  # counted from the day the customer was entered or assigned
    _create(crm, "activity", subject="Visit", kind="visit", status="done", customer=called["id"], done_at=f"{_days(0)}T10:00:00")
    _create(crm, "activity", subject="Plan", kind="task", status="done", customer=never["id"], done_at=f"{_days(0)}T10:00:00")
    called = records.get(crm, SYSTEM, "customer", called["id"])
    assert called["last_followed_at"] is not None and called["days_since_followup"] == 0
    assert records.get(crm, SYSTEM, "customer", never["id"])["last_followed_at"] is None  # a task is no follow-up
    monkeypatch.setitem(expr.FUNCTIONS, "today", lambda: TODAY + dt.timedelta(days=29))
    daily(crm)
    assert records.get(crm, SYSTEM, "customer", never["id"])["owner"] == rep_id  # 29 days: still the rep's
    _create(crm, "activity", subject="Call", kind="call", status="done", customer=called["id"], done_at=f"{_days(29)}T09:00:00")
    monkeypatch.setitem(expr.FUNCTIONS, "today", lambda: TODAY + dt.timedelta(days=30))
    daily(crm)
    never, called = (records.get(crm, SYSTEM, "customer", c["id"]) for c in (never, called))
    assert never["owner"] is None and never["days_since_followup"] == 30  # 30 days without a follow-up: back to the pool
    assert called["owner"] == rep_id and called["days_since_followup"] == 1
    with crm.db.connect() as conn:
        log = crm.tables["customer_assignment"]
        moves = conn.execute(sa.select(log.c.customer, log.c.action)).all()
    assert [tuple(m) for m in moves] == [(never["id"], "auto_release")]


def test_survey_overall_is_the_average_of_the_scores_given(crm: Runtime) -> None:
    customer = _create(crm, "customer", name="Survey Co")
    partial = _create(crm, "survey", customer=customer["id"], product_quality=5, delivery_time=4, brand_image=3, expectation=3)
    assert (partial["overall"], partial["satisfaction_gap"]) == (Decimal("4.00"), Decimal("1.00"))
    full = _create(crm, "survey", customer=customer["id"], product_quality=5, delivery_time=4, brand_image=3, dealer_support=2)
    assert (full["overall"], full["satisfaction_gap"]) == (Decimal("3.50"), None)
    with pytest.raises(Invalid) as out_of_range:
        _create(crm, "survey", customer=customer["id"], product_quality=6)
    assert set(out_of_range.value.fields) == {"product_quality"}


def test_recompute_moves_date_formulas_on(crm: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    customer = _create(crm, "customer", name="Time Co")
    due = _create(crm, "receivable", customer=customer["id"], due_date=_days(10), amount="100")
    opp = _create(crm, "opportunity", name="O", customer=customer["id"])
    assert due["overdue_days"] == 0 and opp["days_in_stage"] == 0
    monkeypatch.setitem(expr.FUNCTIONS, "today", lambda: TODAY + dt.timedelta(days=40))
    assert recompute(crm) >= 3
    due = records.get(crm, SYSTEM, "receivable", due["id"])
    assert (due["overdue_days"], due["aging"]) == (30, "1-30")
    assert records.get(crm, SYSTEM, "opportunity", opp["id"])["days_in_stage"] == 40
    assert records.get(crm, SYSTEM, "customer", customer["id"])["days_since_followup"] == 40


# ---- values fetched from the linked record ----------------------------------------------------------------------


def test_links_fill_the_customer_and_its_details(crm: Runtime) -> None:
    c = _create(crm, "customer", name="华信机械有限公司", tax_id="91410100MA44XYZ12K")
    k = _create(crm, "contact", full_name="王伟", customer=c["id"])
    opp = _create(crm, "opportunity", name="O", customer=c["id"], contact=k["id"])
    quote = _create(crm, "quote", subject="Q", opportunity=opp["id"])
    assert (quote["customer"], quote["contact"]) == (c["id"], k["id"])
    contract = _create(crm, "contract", title="C", quote=quote["id"])
    assert (contract["opportunity"], contract["customer"]) == (opp["id"], c["id"])
    receivable = _create(crm, "receivable", contract=contract["id"], due_date=_days(5), amount="10")
    assert receivable["customer"] == c["id"]
    payment = _create(crm, "payment", receivable=receivable["id"], amount="10")
    assert (payment["contract"], payment["customer"]) == (contract["id"], c["id"])
    invoice = _create(crm, "invoice", contract=contract["id"], amount="10")
    assert (invoice["customer"], invoice["invoice_title"], invoice["tax_id"]) == (c["id"], "华信机械有限公司", "91410100MA44XYZ12K")
    ticket = _create(crm, "ticket", subject="Noise", contract=contract["id"], contact=k["id"], category="quality")
    survey = _create(crm, "survey", ticket=ticket["id"])
    assert (ticket["customer"], survey["customer"], survey["contact"]) == (c["id"], c["id"], k["id"])
    activity = _create(crm, "activity", subject="Visit", opportunity=opp["id"])
    assert activity["customer"] == c["id"]


def test_a_value_sent_wins_and_a_changed_link_fetches_again(crm: Runtime) -> None:
    c1, c2 = _create(crm, "customer", name="One"), _create(crm, "customer", name="Two")
    o1 = _create(crm, "opportunity", name="O1", customer=c1["id"])
    o2 = _create(crm, "opportunity", name="O2", customer=c2["id"])
    quote = _create(crm, "quote", subject="Q", opportunity=o1["id"], customer=c2["id"])
    assert quote["customer"] == c2["id"]
    quote = records.update(crm, SYSTEM, "quote", quote["id"], {"subject": "Q v2"}, quote["version"])
    assert quote["customer"] == c2["id"]  # the link did not change: the value stays
    quote = records.update(crm, SYSTEM, "quote", quote["id"], {"opportunity": o2["id"]}, quote["version"])
    assert quote["customer"] == c2["id"] and quote["opportunity"] == o2["id"]
    moved = records.update(crm, SYSTEM, "quote", quote["id"], {"opportunity": o1["id"]}, quote["version"])
    assert moved["customer"] == c1["id"]
