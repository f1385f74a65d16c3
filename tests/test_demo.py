"""The demo loader: metadata/demo.yaml in, deterministic valid rows and demo users out (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine import records
from engine.access import SystemAccess
from engine.auth.users import check_password, find_user
from engine.compute import check_record, compute_formulas
from engine.demo import load_demo
from engine.errors import MetadataError
from engine.migrate import ensure_schema
from engine.runtime import Runtime, Settings, make_engine, open_runtime

from .conftest import CRM_BUNDLE, TEST_BUNDLE

ANCHOR = dt.date(2026, 6, 30)
DEMO = """
seed: 7
pools:
  word: [Acme, Globex, Initech, Umbrella, Hooli, Stark, Wayne, Wonka, Tyrell, Cyberdyne]
  city: [Beijing, Shanghai, Hangzhou, Shenzhen]
  suffix: {Ltd: 3, Group: 1}
users:
  staff:
    - {username: rep2, full_name: Second Rep, roles: [rep]}
modules:
  account:
    count: {small: 120, large: 200}
    fields:
      name: {pattern: "{city} {word} {suffix} ##"}
      category: {choice: {key: 1, general: 3, new: 2}}
      employees: {number: [1, 50000], dist: pareto, alpha: 1.2}
      credit_limit: {choice: ["0", "50000", "100000"]}
      owner: {users: [rep, manager]}
  contact:
    each: {field: account, per: [1, 3]}
    fields:
      full_name: {pattern: "{word} {n}"}
      phone: {pattern: "138########"}
      birthday: {date: [-20000, -8000], chance: 0.5}
  deal:
    count: {small: 600, large: 900}
    fields:
      account: {link: account, skew: 1.0}
      title: {pattern: "{account.name} deal {n}"}
      amount: {number: [1000, 1000000], dist: pareto, alpha: 1.16, step: 10}
      stage: {choice: {initial: 3, proposal: 3, won: 2, lost: 2}}
      lines:
        rows: [1, 3]
        fields:
          product: {choice: [Widget, Gadget, Gizmo]}
          quantity: {number: [1, 10]}
          unit_price: {number: [10, 500]}
"""


def _bundle(tmp_path: Path, demo: str = DEMO) -> Path:
    root = tmp_path / "bundle"
    shutil.copytree(TEST_BUNDLE, root)
    (root / "demo.yaml").write_text(demo, encoding="utf-8")
    return root


def _runtime(bundle: Path, url: str) -> Runtime:
    rt = open_runtime(Settings(metadata=bundle, db_url=url), db=make_engine(url))
    ensure_schema(rt)
    return rt


def _rows(rt: Runtime, module: str) -> list[dict[str, Any]]:
    table = rt.tables[module]
    with rt.db.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table).order_by(table.c.id)).mappings()]


def _quiet(line: str) -> None:
    pass


def test_counts_validity_links_and_codes(tmp_path: Path, db_url: str) -> None:
    rt = _runtime(_bundle(tmp_path), db_url)
    summary = load_demo(rt, echo=_quiet, anchor=ANCHOR)
    assert summary.loaded and summary.counts["account"] == 120 and summary.counts["deal"] == 600
    assert 120 <= summary.counts["contact"] <= 360 and 600 <= summary.counts["deal_line"] <= 1800
    accounts, deals = _rows(rt, "account"), _rows(rt, "deal")
    lines = _rows(rt, "deal_line")
    by_parent: dict[int, list[dict[str, Any]]] = {}
    for line in lines:
        by_parent.setdefault(line["parent_id"], []).append(line)
    for module, rows in (("account", accounts), ("contact", _rows(rt, "contact")), ("deal", deals)):
        spec = rt.spec.module(module)
        for row in rows:
            tables = {"lines": by_parent.get(row["id"], [])} if module == "deal" else {}
            again = dict(row)
            compute_formulas(spec, again, tables)
            assert check_record(spec, again | tables, "en", tables) == {}, (module, row)
            assert {f.name: again[f.name] for f in spec.fields if f.type == "formula"} == \
                   {f.name: row[f.name] for f in spec.fields if f.type == "formula"}
            assert row["version"] == 1 and row["created_at"] <= dt.datetime.combine(ANCHOR, dt.time(23, 59, 59))
    ids = {a["id"]: a for a in accounts}
    assert all(d["account"] in ids and d["account_category"] == ids[d["account"]]["category"] for d in deals)  # fetch
    assert all(line["parent_id"] in {d["id"] for d in deals} for line in lines)
    assert len({a["name"] for a in accounts}) == 120  # unique names, drawn again on collision
    assert all(d["total"] == sum((line["amount"] for line in by_parent[d["id"]]), Decimal(0)) for d in deals)
    codes = sorted(a["code"] for a in accounts)
    assert len(set(codes)) == 120 and all(c.startswith("ACC-") for c in codes)
    new = records.create(rt, SystemAccess(), "account", {"name": "After the demo"})
    assert new["code"] not in codes  # the series continues after the demo's codes
    rt.db.dispose()


def test_same_seed_same_data(tmp_path: Path, db_url: str) -> None:
    bundle = _bundle(tmp_path)
    first = _runtime(bundle, db_url)
    load_demo(first, echo=_quiet, anchor=ANCHOR)
    second_url = f"sqlite:///{tmp_path / 'second.db'}"
    second = _runtime(bundle, second_url)
    load_demo(second, echo=_quiet, anchor=ANCHOR)
    for module in ("account", "contact", "deal", "deal_line"):
        assert _rows(first, module) == _rows(second, module), module
    other = _runtime(_bundle(tmp_path / "other", DEMO.replace("seed: 7", "seed: 8")), f"sqlite:///{tmp_path / 'third.db'}")
    load_demo(other, echo=_quiet, anchor=ANCHOR)
    assert _rows(other, "deal") != _rows(first, "deal")
    for rt in (first, second, other):
        rt.db.dispose()


def test_long_tail_top_fifth_of_accounts_holds_most_of_the_amount(tmp_path: Path, db_url: str) -> None:
    rt = _runtime(_bundle(tmp_path), db_url)
    load_demo(rt, echo=_quiet, anchor=ANCHOR)
    per_account: dict[int, Decimal] = dict.fromkeys((a["id"] for a in _rows(rt, "account")), Decimal(0))
    for deal in _rows(rt, "deal"):
        per_account[deal["account"]] += deal["amount"]
    amounts = sorted(per_account.values(), reverse=True)
    top = sum(amounts[: len(amounts) // 5], Decimal(0))
    assert top / sum(amounts, Decimal(0)) >= Decimal("0.6")
    counts: dict[int, int] = {}
    for deal in _rows(rt, "deal"):
        counts[deal["account"]] = counts.get(deal["account"], 0) + 1
    assert max(counts.values()) >= 10 * (600 / 120)  # some accounts get many deals
    rt.db.dispose()


def test_only_if_empty_and_loading_again(tmp_path: Path, db_url: str) -> None:
    rt = _runtime(_bundle(tmp_path), db_url)
    said: list[str] = []
    assert load_demo(rt, echo=said.append, anchor=ANCHOR).loaded
    assert any("password: demo" in line for line in said) and any(line.strip().startswith("rep2") for line in said)
    said.clear()
    again = load_demo(rt, echo=said.append, anchor=ANCHOR)
    assert not again.loaded and again.counts == {} and "already holds records" in said[0]
    assert len(_rows(rt, "account")) == 120
    more = load_demo(rt, only_if_empty=False, echo=_quiet, anchor=ANCHOR)
    assert more.loaded and len(_rows(rt, "deal")) == 1200
    names = [a["name"] for a in _rows(rt, "account")]
    codes = [a["code"] for a in _rows(rt, "account")]
    assert len(set(names)) == 240 and len(set(codes)) == 240
    created = records.create(rt, SystemAccess(), "deal", {"title": "next"})
    assert created["id"] == 1201  # id sequences continue after the demo's ids
    rt.db.dispose()


def test_demo_users_one_per_role_and_staff(tmp_path: Path, db_url: str) -> None:
    rt = _runtime(_bundle(tmp_path), db_url)
    summary = load_demo(rt, echo=_quiet, anchor=ANCHOR)
    assert summary.users == ("admin", "rep", "manager", "rep2")
    with rt.db.connect() as conn:
        for role in ("admin", "rep", "manager"):
            user = check_password(conn, role, "demo")
            assert user is not None and user.roles == (role,)
        assert check_password(conn, "rep2", "demo") is not None
        owners = {d["owner"] for d in _rows(rt, "deal")}
        staff = {find_user(conn, n).id for n in ("rep", "manager", "rep2")}
    assert owners <= staff and {a["owner"] for a in _rows(rt, "account")} == staff  # owner: {users: [rep, manager]}, staff too
    rt.db.dispose()


def test_large_size_and_default_plan(tmp_path: Path, sqlite_url: str) -> None:
    rt = _runtime(_bundle(tmp_path), sqlite_url)
    assert load_demo(rt, size="large", echo=_quiet, anchor=ANCHOR).counts["deal"] == 900
    rt.db.dispose()
    plain = _runtime(TEST_BUNDLE, f"sqlite:///{tmp_path / 'plain.db'}")  # no demo.yaml: every module, rows from the types
    summary = load_demo(plain, echo=_quiet, anchor=ANCHOR)
    assert summary.counts["account"] == summary.counts["contact"] == summary.counts["deal"] == 20
    assert all(d["close_date"] is not None for d in _rows(plain, "deal") if d["stage"] == "proposal")  # required_if filled
    assert all(d["lost_reason"] is None for d in _rows(plain, "deal") if d["stage"] != "lost")  # hidden: emptied
    plain.db.dispose()


BAD = [
    ("modules:\n  acount: {count: 3}\n", "demo.yaml:2: modules.acount: unknown module 'acount'"),
    ("modules:\n  account:\n    fields:\n      nmae: {value: x}\n", "demo.yaml:4: modules.account.fields.nmae: unknown field 'nmae'"),
    ("modules:\n  account:\n    count: -1\n", "demo.yaml:3: modules.account.count: -1 is less than the minimum of 0"),
    ("modules:\n  account:\n    fields:\n      name: {choice: [a], bogus: 1}\n", "('bogus' was unexpected) (allowed: after,"),
    ("modules:\n  deal:\n    fields:\n      account: {link: account}\n  account: {count: 2}\n",
     "demo.yaml:4: modules.deal.fields.account.link: 'account' must be generated before 'deal'"),
    ("modules:\n  account:\n    fields:\n      name: {pattern: '{nope} x'}\n", "unknown {nope}"),
    ("modules:\n  account:\n    fields:\n      name: {pattern: x, choice: [a]}\n", "give exactly one of"),
    ("modules:\n  account:\n    fields:\n      category: {choice: [key, vip]}\n", "'vip' is not one of"),
    ("modules:\n  account:\n    fields:\n      overdue: {value: true}\n", "computed by the engine"),
    ("modules:\n  account:\n    fields:\n      name: {expr: 'nmae ~ 1'}\n", "unknown name(s) nmae"),
    ("users:\n  roles:\n    boss: {full_name: B}\n", "demo.yaml:3: users.roles.boss: unknown role 'boss'"),
    ("modules:\n  deal_line: {count: 2}\n", "child module"),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_bad_demo_files_are_reported_with_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    rt = _runtime(_bundle(tmp_path, text), f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(MetadataError) as caught:
        load_demo(rt, echo=_quiet)
    assert expected in str(caught.value)
    with rt.db.connect() as conn:  # nothing was written, not even the demo users
        assert conn.execute(sa.text("select count(*) from loom_user")).scalar() == 0
    rt.db.dispose()


def test_rows_that_cannot_be_valid_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    demo = "modules:\n  account:\n    count: 5\n    fields:\n      employees: {value: -5}\n"
    rt = _runtime(_bundle(tmp_path, demo), f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(MetadataError) as caught:
        load_demo(rt, echo=_quiet)
    assert "demo.yaml:5: modules.account: generated account rows keep breaking its rules (employees: must be at least 0" in str(caught.value)
    assert _rows(rt, "account") == []
    with rt.db.connect() as conn:
        assert conn.execute(sa.text("select count(*) from loom_user")).scalar() == 0
    rt.db.dispose()


def _described(node: Any, path: str) -> list[str]:
    missing = []
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            if "description" not in prop:
                missing.append(f"{path}.{name}")
        for key, value in node.items():
            missing += _described(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            missing += _described(value, f"{path}[{i}]")
    return missing


def test_schema_describes_every_property() -> None:
    schema = json.loads(resources.files("engine").joinpath("schemas", "demo.schema.json").read_text(encoding="utf-8"))
    assert schema["$schema"].endswith("2020-12/schema")
    assert _described(schema, "") == []


def _loom(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine.cli", "demo", *args], capture_output=True, text=True, timeout=300)


def test_cli_demo(tmp_path: Path) -> None:
    bundle, db = _bundle(tmp_path), f"sqlite:///{tmp_path / 'cli.db'}"
    done = _loom("--metadata", str(bundle), "--db", db, "--anchor", "2026-06-30")
    assert done.returncode == 0, done.stderr
    assert "password: demo" in done.stdout and "deal" in done.stdout and "loaded" in done.stdout
    again = _loom("--metadata", str(bundle), "--db", db)
    assert again.returncode == 0 and "already holds records" in again.stdout
    assert _loom("--metadata", str(bundle), "--db", db, "--check").stdout.startswith("ok:")
    (bundle / "demo.yaml").write_text("modules:\n  acount: {count: 3}\n", encoding="utf-8")
    bad = _loom("--metadata", str(bundle), "--db", db, "--check")
    assert bad.returncode == 2 and "demo.yaml:2: modules.acount: unknown module" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_crm_demo_loads_every_module(db_url: str) -> None:
    rt = _runtime(CRM_BUNDLE, db_url)
    summary = load_demo(rt, echo=_quiet)
    assert summary.loaded
    empty = [name for name in rt.spec.modules if not _rows(rt, name)[:1]]
    assert empty == []
    assert summary.counts["customer"] == 2000 and summary.counts["opportunity"] == 10000 and summary.counts["contact"] >= 4000
    for opp in _rows(rt, "opportunity")[:2000]:
        assert opp["present_value"] == (opp["amount"] * opp["probability"] / 100).quantize(Decimal("0.01"))
    lines: dict[int, Decimal] = {}
    for line in _rows(rt, "contract_line"):
        lines[line["parent_id"]] = lines.get(line["parent_id"], Decimal(0)) + line["amount"]
    plans: dict[int, Decimal] = {}
    for plan in _rows(rt, "payment_plan"):
        plans[plan["parent_id"]] = plans.get(plan["parent_id"], Decimal(0)) + plan["amount"]
    for contract in _rows(rt, "contract"):
        assert contract["subtotal"] == lines[contract["id"]] and contract["total"] == contract["subtotal"] - contract["extra_discount"]
        assert contract["planned_total"] == plans[contract["id"]] == contract["total"]
    assert all(r["balance"] == r["amount"] - r["received"] for r in _rows(rt, "receivable"))
    with rt.db.connect() as conn:
        for role in rt.spec.app.roles:
            user = check_password(conn, role.name, "demo")
            assert user is not None and user.roles == (role.name,) and user.department_id is not None
    rt.db.dispose()


MINI_APP = """
name: mini
roles: [{name: admin, admin: true}, {name: rep}, {name: boss}]
departments: dept
"""
MINI_MODULES = {
    "dept": """
name: dept
tree: true
fields:
  - {name: name, type: text, required: true}
  - {name: parent, type: link, module: dept}
  - {name: manager, type: user}
""",
    "client": """
name: client
fields:
  - {name: name, type: text, required: true, unique: true}
  - {name: city, type: text}
  - {name: region, type: select, options: [north, south]}
  - {name: tier, type: select, options: [a, b]}
""",
    "person": """
name: person
title_field: full_name
fields:
  - {name: full_name, type: text, required: true}
  - {name: client, type: link, module: client, required: true}
  - {name: role, type: select, options: [buyer, user]}
""",
    "order": """
name: order_form
fields:
  - {name: client, type: link, module: client, required: true}
  - {name: person, type: link, module: person}
  - {name: lines, type: table, module: order_line}
  - {name: subtotal, type: formula, result: currency, expr: "sum_of(lines, 'amount')"}
  - {name: discount, type: currency, min: 0}
  - {name: total, type: formula, result: currency, expr: "(subtotal or 0) - (discount or 0)"}
  - {name: plan, type: table, module: order_plan}
  - {name: planned, type: formula, result: currency, expr: "sum_of(plan, 'amount')"}
  - {name: status, type: select, options: [open, paid]}
validations:
  - {expr: "count_of(plan) == 0 or planned == total", message: plan must add up}
""",
    "order_line": """
name: order_line
child: true
fields:
  - {name: item, type: text, required: true}
  - {name: qty, type: integer, min: 1}
  - {name: price, type: currency, min: 0}
  - {name: amount, type: formula, result: currency, expr: "(qty or 0) * (price or 0)"}
""",
    "order_plan": """
name: order_plan
child: true
fields:
  - {name: n, type: integer}
  - {name: due, type: date}
  - {name: amount, type: currency, min: 0}
""",
    "bill": """
name: bill
fields:
  - {name: order_form, type: link, module: order_form, required: true}
  - {name: client, type: link, module: client}
  - {name: n, type: integer}
  - {name: amount, type: currency}
  - {name: due, type: date}
""",
}
MINI_DEMO = """
seed: 3
anchor: "2026-01-15"
pools:
  place: [{city: 北京, region: north}, {city: 广州, region: south}]
  word: [Alpha, Beta, Gamma, Delta]
users:
  roles:
    boss: {department: HQ}
    rep: {full_name: Rep One, department: Sales}
modules:
  dept:
    rows:
      - {name: HQ, manager: boss}
      - {name: Sales, parent: HQ, manager: rep}
  client:
    count: 30
    draw: {p: place}
    fields:
      name: {pattern: "{p.city}{word}{n:03d}"}
      city: {expr: p.city}
      region: {expr: p.region}
      tier: {first: [{value: a, when: "n <= 5"}, {value: b}]}
  person:
    each: {field: client, per: [2, 2]}
    fields:
      full_name: {pattern: "{client.name}-{k}"}
  order_form:
    count: 40
    fields:
      client: {link: client, skew: 1.2, where: "tier == 'a'"}
      person: {link: person, match: {client: client}}
      lines: {rows: [1, 3], fields: {item: {pattern: "{word}"}, qty: {number: [1, 5]}, price: {number: [10, 100], step: 5}}}
      discount: {expr: "round(subtotal * 0.1, 2)"}
      plan: {rows: [2, 3], fields: {n: {expr: n}, due: {date: [10, 20], after: anchor}, amount: {split: parent.total}}}
      status: {choice: [open, paid]}
  bill:
    each: {field: order_form, table: plan, where: "parent.status == 'paid'"}
    fields:
      client: {from: order_form.client}
      n: {expr: row.n}
      amount: {expr: row.amount}
      due: {expr: row.due}
"""


def _mini(tmp_path: Path) -> Path:
    root = tmp_path / "mini"
    (root / "modules").mkdir(parents=True)
    (root / "app.yaml").write_text(MINI_APP, encoding="utf-8")
    for name, text in MINI_MODULES.items():
        (root / "modules" / f"{name}.yaml").write_text(text, encoding="utf-8")
    (root / "demo.yaml").write_text(MINI_DEMO, encoding="utf-8")
    return root


def _children_of(rt: Runtime, module: str) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for row in _rows(rt, module):
        out.setdefault(row["parent_id"], []).append(row)
    return out


def test_every_generator_kind_on_a_small_bundle(tmp_path: Path, db_url: str) -> None:
    rt = _runtime(_mini(tmp_path), db_url)
    load_demo(rt, echo=_quiet)
    depts = {d["name"]: d for d in _rows(rt, "dept")}
    with rt.db.connect() as conn:
        boss, rep, admin = (find_user(conn, n) for n in ("boss", "rep", "admin"))
    assert depts["Sales"]["parent"] == depts["HQ"]["id"] and depts["Sales"]["manager"] == rep.id  # rows: links by title, users by name
    assert (boss.department_id, rep.department_id, admin.department_id) == (depts["HQ"]["id"], depts["Sales"]["id"], None)
    clients = {c["id"]: c for c in _rows(rt, "client")}
    assert all((c["city"], c["region"]) in {("北京", "north"), ("广州", "south")} and c["name"].startswith(c["city"]) for c in clients.values())
    assert [c["tier"] for c in clients.values()] == ["a"] * 5 + ["b"] * 25  # first + when
    people = _rows(rt, "person")
    assert len(people) == 60 and {p["full_name"] for p in people} == {f"{c['name']}-{k}" for c in clients.values() for k in (1, 2)}
    by_person = {p["id"]: p for p in people}
    lines, plans = _children_of(rt, "order_line"), _children_of(rt, "order_plan")
    orders = _rows(rt, "order_form")
    for order in orders:
        assert clients[order["client"]]["tier"] == "a" and by_person[order["person"]]["client"] == order["client"]  # where, match
        assert order["subtotal"] == sum((line["amount"] for line in lines[order["id"]]), Decimal(0))
        assert order["discount"] == (order["subtotal"] / 10).quantize(Decimal("0.01"))  # formulas refreshed after the lines
        assert [p["n"] for p in plans[order["id"]]] == list(range(1, len(plans[order["id"]]) + 1))
        assert sum((p["amount"] for p in plans[order["id"]]), Decimal(0)) == order["total"] == order["planned"]  # split
        assert all(dt.date(2026, 1, 25) <= p["due"] <= dt.date(2026, 2, 4) for p in plans[order["id"]])
    paid = [(o["id"], p["n"], p["amount"], p["due"], o["client"]) for o in orders if o["status"] == "paid" for p in plans[o["id"]]]
    bills = [(b["order_form"], b["n"], b["amount"], b["due"], b["client"]) for b in _rows(rt, "bill")]
    assert bills == paid and bills  # each over child rows, from through a link
    rt.db.dispose()
