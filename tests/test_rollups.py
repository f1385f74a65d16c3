"""Rollup formulas (summaries of linked records, in SQL) and `on_change_of` stamps, on a small bundle (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine import records, rollups
from engine.access import SystemAccess
from engine.errors import MetadataError
from engine.loader import load
from engine.migrate import ensure_schema
from engine.recompute import daily
from engine.runtime import Runtime, Settings, make_engine, open_runtime

SYSTEM = SystemAccess()
APP = "name: mini\nroles: [{name: admin, admin: true}, {name: rep}]\n"
CLIENT = """
name: client
fields:
  - {name: name, type: text, required: true}
  - {name: paid, type: formula, result: currency, rollup: {module: payment, link: client, measure: sum, field: amount}}
  - {name: open_orders, type: formula, result: integer, rollup: {module: order_form, link: client, filter: {status: open}}}
  - name: biggest_won
    type: formula
    result: currency
    rollup: {module: order_form, link: client, measure: max, field: amount, filter: {status__in: "won,paid"}}
  - {name: score, type: formula, result: integer, expr: "int((paid or 0) / 100) + 10 * (open_orders or 0)"}
  - {name: owned_since, type: datetime, on_change_of: owner}
  - {name: last_move, type: formula, result: date, rollup: {module: order_form, link: client, measure: max, field: status_since}}
"""
ORDER = """
name: order_form
fields:
  - {name: client, type: link, module: client}
  - {name: amount, type: currency}
  - {name: status, type: select, options: [open, won, paid, lost], default: open}
  - {name: status_since, type: date, on_change_of: status}
"""
PAYMENT = """
name: payment
fields:
  - {name: client, type: link, module: client}
  - {name: amount, type: currency}
"""


def _bundle(root: Path, client: str = CLIENT) -> Path:
    (root / "modules").mkdir(parents=True)
    (root / "app.yaml").write_text(APP, encoding="utf-8")
    for name, text in (("client", client), ("order_form", ORDER), ("payment", PAYMENT)):
        (root / "modules" / f"{name}.yaml").write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def rt(tmp_path: Path, db_url: str) -> Iterator[Runtime]:
    runtime = open_runtime(Settings(metadata=_bundle(tmp_path / "mini"), db_url=db_url), db=make_engine(db_url))
    ensure_schema(runtime)
    yield runtime
    runtime.db.dispose()


def _new(rt: Runtime, module: str, **values: Any) -> dict[str, Any]:
    return records.create(rt, SYSTEM, module, values)


def _client(rt: Runtime, client_id: int) -> dict[str, Any]:
    return records.get(rt, SYSTEM, "client", client_id)


def test_a_new_record_starts_at_zero(rt: Runtime) -> None:
    c = _new(rt, "client", name="Acme")
    assert (c["paid"], c["open_orders"], c["biggest_won"], c["score"]) == (Decimal("0.00"), 0, None, 0)


def test_rollups_follow_creates_updates_and_deletes(rt: Runtime) -> None:
    a, b = _new(rt, "client", name="A")["id"], _new(rt, "client", name="B")["id"]
    p1 = _new(rt, "payment", client=a, amount="1250.50")
    _new(rt, "payment", client=a, amount="749.50")
    assert _client(rt, a)["paid"] == Decimal("2000.00") and _client(rt, a)["score"] == 20  # the score reads the rollup
    records.update(rt, SYSTEM, "payment", p1["id"], {"client": b}, p1["version"])  # moved: both sides follow
    assert (_client(rt, a)["paid"], _client(rt, b)["paid"]) == (Decimal("749.50"), Decimal("1250.50"))
    records.delete(rt, SYSTEM, "payment", p1["id"])
    assert _client(rt, b)["paid"] == Decimal("0.00") and _client(rt, b)["score"] == 0


def test_filters_and_measures(rt: Runtime) -> None:
    a = _new(rt, "client", name="A")["id"]
    o1 = _new(rt, "order_form", client=a, amount="500")
    _new(rt, "order_form", client=a, amount="900", status="won")
    _new(rt, "order_form", client=a, amount="5000", status="lost")
    c = _client(rt, a)
    assert (c["open_orders"], c["biggest_won"], c["score"]) == (1, Decimal("900.00"), 10)
    records.update(rt, SYSTEM, "order_form", o1["id"], {"status": "paid", "amount": "1200"}, o1["version"])
    c = _client(rt, a)
    assert (c["open_orders"], c["biggest_won"], c["score"], c["last_move"]) == (0, Decimal("1200.00"), 0, dt.date.today())
    with rt.db.begin() as conn:
        conn.execute(sa.update(rt.tables["order_form"]).values(status_since=dt.date(2021, 5, 6)))
        rollups.refresh(conn, rt, rt.spec.module("client"), [a])
    assert _client(rt, a)["last_move"] == dt.date(2021, 5, 6)  # a date stays a date on every database


def test_the_daily_job_repairs_rows_written_around_the_records_service(rt: Runtime) -> None:
    a = _new(rt, "client", name="A")["id"]
    with rt.db.begin() as conn:  # a bulk path that does not go through records.create
        conn.execute(sa.insert(rt.tables["payment"]), [{"client": a, "amount": Decimal(300), "version": 1}] * 3)
    assert _client(rt, a)["paid"] == Decimal("0.00")
    daily(rt)
    assert (_client(rt, a)["paid"], _client(rt, a)["score"]) == (Decimal("900.00"), 9)
    with rt.db.begin() as conn:
        conn.execute(sa.delete(rt.tables["payment"]))
        assert rollups.refresh_all(conn, rt) == 1
    assert _client(rt, a)["paid"] == Decimal("0.00")


def test_a_user_cannot_write_a_rollup(rt: Runtime) -> None:
    from engine.errors import Invalid

    with pytest.raises(Invalid) as refused:
        records.create(rt, SYSTEM, "client", {"name": "X", "paid": "1000000"})
    assert set(refused.value.fields) == {"paid"}


def test_on_change_of_stamps_the_day_a_field_changed(rt: Runtime) -> None:
    today = dt.date.today()
    order = _new(rt, "order_form", amount="1")
    assert order["status_since"] == today
    long_ago = (today - dt.timedelta(days=40)).isoformat()
    given = _new(rt, "order_form", amount="1", status_since=long_ago)
    assert given["status_since"].isoformat() == long_ago  # a value given on create is kept
    same = records.update(rt, SYSTEM, "order_form", given["id"], {"amount": "2", "status_since": long_ago}, given["version"])
    assert same["status_since"].isoformat() == long_ago  # the watched field did not change
    moved = records.update(rt, SYSTEM, "order_form", given["id"], {"status": "won", "status_since": long_ago}, same["version"])
    assert moved["status_since"] == today  # a form sends the old date back: the change still stamps it
    own = records.update(rt, SYSTEM, "order_form", given["id"], {"status": "paid", "status_since": "2020-01-02"}, moved["version"])
    assert own["status_since"] == dt.date(2020, 1, 2)  # a new date of the writer's own wins


def test_on_change_of_owner_stamps_a_datetime(rt: Runtime) -> None:
    c = _new(rt, "client", name="A", owner=None)
    assert isinstance(c["owned_since"], dt.datetime)
    with rt.db.begin() as conn:
        conn.execute(sa.update(rt.tables["client"]).values(owned_since=dt.datetime(2020, 1, 1)))
    after = records.update(rt, SYSTEM, "client", c["id"], {"owner": None, "name": "A2"}, c["version"])
    assert after["owned_since"] == dt.datetime(2020, 1, 1)


BAD = [
    ("{module: paymnt, link: client, measure: sum, field: amount}", "fields[1].rollup.module: 'paymnt' is not a (top-level) module"),
    ("{module: payment, link: amount, measure: sum, field: amount}", "fields[1].rollup.link: 'amount' is not a link from 'payment' to 'client'"),
    ("{module: payment, link: client, measure: sum}", "fields[1].rollup.field: a sum rollup needs a field of 'payment'"),
    ("{module: payment, link: client, measure: avg, field: client}", "fields[1].rollup.field: cannot take the avg of 'client': not a number"),
    ("{module: order_form, link: client, filter: {status: opne}}", "fields[1].rollup.filter.status:"),
    ("{module: order_form, link: client, filter: {colour: red}}", "fields[1].rollup.filter.colour: unknown field 'colour'"),
]


@pytest.mark.parametrize(("rollup", "expected"), BAD)
def test_bad_rollups_are_reported_with_file_and_line(tmp_path: Path, rollup: str, expected: str) -> None:
    client = CLIENT.replace("{module: payment, link: client, measure: sum, field: amount}", rollup, 1)
    with pytest.raises(MetadataError) as caught:
        load(_bundle(tmp_path / "b", client))
    assert "client.yaml:5: " + expected in str(caught.value)


def test_a_rollup_is_a_formula_without_expression_and_stamps_are_dates(tmp_path: Path) -> None:
    client = CLIENT.replace("type: formula, result: currency, rollup:", "type: currency, rollup:", 1)
    client = client.replace("{name: owned_since, type: datetime,", "{name: owned_since, type: integer,")
    with pytest.raises(MetadataError) as caught:
        load(_bundle(tmp_path / "b", client))
    text = str(caught.value)
    assert "client.yaml:5: fields[1].rollup: a rollup is a formula field without an expression" in text
    assert "fields[5].on_change_of: only a date or datetime field records when another field changes" in text
