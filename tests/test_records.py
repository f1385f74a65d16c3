"""The records service on SQLite and PostgreSQL: CRUD, formulas, child rows, locking, audit, recycle bin, paging."""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import pytest
import sqlalchemy as sa

from engine import audit, records
from engine.access import Actor, SystemAccess
from engine.errors import Conflict, Invalid, NotFound
from engine.listing import list_page
from engine.query import parse_list_query
from engine.runtime import Runtime

SYSTEM = SystemAccess()


def _audit_rows(rt: Runtime, module: str, record_id: int) -> list[dict[str, object]]:
    log = rt.tables.metadata.tables["loom_audit"]
    with rt.db.connect() as conn:
        stmt = sa.select(log).where(log.c.module == module, log.c.record_id == record_id).order_by(log.c.id)
        return [dict(r) for r in conn.execute(stmt).mappings()]


def test_create_computes_defaults_formulas_and_autonumber(runtime: Runtime) -> None:
    a = records.create(runtime, SYSTEM, "account", {"name": "Acme", "credit_limit": "1,000", "balance": 2000})
    b = records.create(runtime, SYSTEM, "account", {"name": "Beta"})
    assert a["category"] == "new" and a["active"] is True
    assert a["overdue"] is True and b["overdue"] is False
    assert a["code"].endswith("00001") and b["code"].endswith("00002")
    assert a["version"] == 1 and a["created_at"] is not None


def test_child_rows_and_parent_totals(runtime: Runtime) -> None:
    acc = records.create(runtime, SYSTEM, "account", {"name": "Acme"})
    deal = records.create(runtime, SYSTEM, "deal", {"title": "D", "account": acc["id"], "amount": "1000", "stage": "proposal",
                                                    "close_date": "2026-12-31",
                                                    "lines": [{"product": "A", "quantity": 2, "unit_price": "10.5"},
                                                              {"product": "B", "quantity": 1, "unit_price": 4}]})
    assert deal["total"] == Decimal("25.00")
    assert deal["probability"] == Decimal("40.00") and deal["present_value"] == Decimal("400.00")
    assert [r["amount"] for r in deal["lines"]] == [Decimal("21.00"), Decimal("4.00")]
    again = records.update(runtime, SYSTEM, "deal", deal["id"], {"lines": [{"product": "C", "quantity": 3, "unit_price": 1}]}, 1)
    assert again["total"] == Decimal("3.00") and len(again["lines"]) == 1


def test_invalid_values_are_refused_per_field_and_nothing_written(runtime: Runtime) -> None:
    with pytest.raises(Invalid) as caught:
        records.create(runtime, SYSTEM, "account", {"name": "", "credit_limit": "-5", "email": "nope", "category": "gold", "founded": "31.02.2026"})
    assert set(caught.value.fields) == {"name", "credit_limit", "email", "category", "founded"}
    with pytest.raises(Invalid) as caught:
        records.create(runtime, SYSTEM, "account", {"credit_limit": "5"})
    assert caught.value.fields == {"name": "required"}
    with pytest.raises(Invalid) as caught:
        records.create(runtime, SYSTEM, "account", {"name": "X", "nonsense": 1, "overdue": True, "id": 5})
    assert set(caught.value.fields) == {"nonsense", "overdue", "id"}
    table = runtime.tables["account"]
    with runtime.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0


def test_unique_link_and_conditional_rules(runtime: Runtime) -> None:
    records.create(runtime, SYSTEM, "account", {"name": "Acme"})
    with pytest.raises(Invalid) as caught:
        records.create(runtime, SYSTEM, "account", {"name": "Acme"})
    assert "name" in caught.value.fields
    with pytest.raises(Invalid) as caught:
        records.create(runtime, SYSTEM, "deal", {"title": "T", "account": 999})
    assert "account" in caught.value.fields
    with pytest.raises(Invalid) as caught:
        records.create(runtime, SYSTEM, "deal", {"title": "T", "stage": "lost"})
    assert caught.value.fields == {"lost_reason": "required"}


def test_unique_values_left_to_the_index_give_the_same_errors_and_write_nothing(runtime: Runtime) -> None:
    first = records.create(runtime, SYSTEM, "account", {"name": "Acme"})
    assert first == records.get(runtime, SYSTEM, "account", first["id"])  # the INSERT's RETURNING is the record as read
    seen: list[str] = []

    def statement(*args: object) -> None:
        seen.append(str(args[2]))

    sa.event.listen(runtime.db, "before_cursor_execute", statement)
    try:
        with pytest.raises(Invalid) as caught:
            records.create(runtime, SYSTEM, "account", {"name": "Acme"})
        assert caught.value.fields == {"name": "already used by another record"}
        with pytest.raises(Invalid) as caught:  # with other errors, the unique check runs with them: every error at once
            records.create(runtime, SYSTEM, "account", {"name": "Acme", "email": "nope"})
        assert set(caught.value.fields) == {"name", "email"}
        seen.clear()
        second = records.create(runtime, SYSTEM, "account", {"name": "Beta"})
    finally:
        sa.event.remove(runtime.db, "before_cursor_execute", statement)
    assert seen and not [s for s in seen if "account.name =" in s]  # no unique check before the INSERT
    assert second["code"].endswith("00002")  # the refused creates numbered nothing: their transactions rolled back
    with runtime.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(runtime.tables["account"])).scalar_one() == 2


def test_update_with_stale_version_is_a_conflict(runtime: Runtime) -> None:
    acc = records.create(runtime, SYSTEM, "account", {"name": "Acme"})
    records.update(runtime, SYSTEM, "account", acc["id"], {"notes": "first"}, 1)
    with pytest.raises(Conflict) as caught:
        records.update(runtime, SYSTEM, "account", acc["id"], {"notes": "second"}, 1)
    assert "notes" in caught.value.fields
    assert records.get(runtime, SYSTEM, "account", acc["id"])["notes"] == "first"


def test_concurrent_updates_one_wins(runtime: Runtime) -> None:
    acc = records.create(runtime, SYSTEM, "account", {"name": "Acme"})
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def write(text: str) -> None:
        barrier.wait()
        try:
            records.update(runtime, SYSTEM, "account", acc["id"], {"notes": text}, 1)
            outcomes.append("ok")
        except Conflict:
            outcomes.append("conflict")
        except sa.exc.OperationalError:
            outcomes.append("conflict")  # SQLite: the loser may be told the database is locked

    threads = [threading.Thread(target=write, args=(t,)) for t in ("one", "two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "ok"]
    final = records.get(runtime, SYSTEM, "account", acc["id"])
    assert final["version"] == 2 and final["notes"] in ("one", "two")


def test_every_change_leaves_audit_rows(runtime: Runtime) -> None:
    acc = records.create(runtime, SYSTEM, "account", {"name": "Acme", "employees": 5})
    records.update(runtime, SYSTEM, "account", acc["id"], {"employees": 7, "notes": "n"}, 1)
    rows = _audit_rows(runtime, "account", acc["id"])
    created = [r for r in rows if r["change"] == "create"]
    assert len(created) == 1 and created[0]["field"] is None  # one row per new record, every value in it
    assert {"name": "Acme", "employees": 5, "category": "new"}.items() <= json.loads(created[0]["new"]).items()
    module = runtime.spec.module("account")
    with runtime.db.connect() as conn:  # shown field by field, without what the reader may not read
        shown = audit.history(conn, runtime, module, acc["id"], frozenset({"name", "employees"}))
    assert {(r["field"], r["new"]) for r in shown if r["change"] == "create"} == {("name", '"Acme"'), ("employees", "5")}
    updated = {(r["field"], r["old"], r["new"]) for r in rows if r["change"] == "update"}
    assert ("employees", "5", "7") in updated and ("notes", None, '"n"') in updated


def test_delete_moves_to_recycle_bin_and_restore_brings_it_back(runtime: Runtime) -> None:
    acc = records.create(runtime, SYSTEM, "account", {"name": "Acme"})
    deal = records.create(runtime, SYSTEM, "deal", {"title": "D", "account": acc["id"], "lines": [{"product": "A", "quantity": 1, "unit_price": 2}]})
    records.delete(runtime, SYSTEM, "deal", deal["id"])
    with pytest.raises(NotFound):
        records.get(runtime, SYSTEM, "deal", deal["id"])
    assert [e["record_id"] for e in audit.recycle_bin(runtime, runtime.spec.module("deal"))] == [deal["id"]]
    audit.restore_deleted(runtime, runtime.spec.module("deal"), deal["id"], None)
    back = records.get(runtime, SYSTEM, "deal", deal["id"])
    assert back["title"] == "D" and back["lines"][0]["product"] == "A" and back["total"] == Decimal("2.00")
    assert audit.recycle_bin(runtime, runtime.spec.module("deal")) == []


def test_revert_to_an_earlier_version(runtime: Runtime) -> None:
    acc = records.create(runtime, SYSTEM, "account", {"name": "Acme", "employees": 1, "category": "key"})
    records.update(runtime, SYSTEM, "account", acc["id"], {"employees": 2}, 1)
    records.update(runtime, SYSTEM, "account", acc["id"], {"employees": 3, "category": "general", "notes": "x"}, 2)
    back = records.revert(runtime, SYSTEM, "account", acc["id"], 1)
    assert (back["employees"], back["category"], back["notes"], back["version"]) == (1, "key", None, 4)


def test_scope_hides_records_like_missing_ones(runtime: Runtime) -> None:
    from engine.gate import RoleAccess

    rep = RoleAccess(Actor(user_id=1, username="rep", roles=("rep",)), runtime.spec)
    other = records.create(runtime, SYSTEM, "contact", {"full_name": "Theirs", "owner": 2}) if False else None
    del other
    with runtime.db.begin() as conn:
        from engine.auth.users import add_user

        add_user(conn, "rep", "pw", ("rep",))
        add_user(conn, "boss", "pw", ("manager",))
    mine = records.create(runtime, rep, "contact", {"full_name": "Mine"})
    theirs = records.create(runtime, SYSTEM, "contact", {"full_name": "Theirs", "owner": 2})
    assert records.get(runtime, rep, "contact", mine["id"])["full_name"] == "Mine"
    with pytest.raises(NotFound) as hidden:
        records.get(runtime, rep, "contact", theirs["id"])
    with pytest.raises(NotFound) as missing:
        records.get(runtime, rep, "contact", 424242)
    assert str(hidden.value).replace(str(theirs["id"]), "N") == str(missing.value).replace("424242", "N")


def test_keyset_paging_visits_every_row_once_with_nulls(runtime: Runtime) -> None:
    for i in range(23):
        records.create(runtime, SYSTEM, "account", {"name": f"A{i:02}", "credit_limit": None if i % 4 == 0 else (i % 5) * 100})
    module = runtime.spec.module("account")
    for sort in ("credit_limit", "-credit_limit", "name", "-updated_at"):
        seen, cursor = [], None
        for _ in range(20):
            params = {"sort": sort, "limit": "4"} | ({"cursor": cursor} if cursor else {})
            page = list_page(runtime, SYSTEM, "account", parse_list_query(module, params, set(module.by_name)))
            seen += [r["id"] for r in page.items]
            cursor = page.next_cursor
            if not cursor:
                break
        assert sorted(seen) == sorted(set(seen)) and len(seen) == 23, sort
        everything = list_page(runtime, SYSTEM, "account", parse_list_query(module, {"sort": sort, "limit": "100"}, set(module.by_name)))
        assert [r["id"] for r in everything.items] == seen, sort


def test_filters_search_and_count(runtime: Runtime) -> None:
    for i, cat in enumerate(["key", "key", "general", "new", "new", "new"]):
        values = {"name": f"Co {i} 100%", "category": cat, "employees": i * 10, "tags": "vip" if i % 2 else "partner"}
        records.create(runtime, SYSTEM, "account", values)
    module = runtime.spec.module("account")

    def ids(params: dict[str, str]) -> int:
        page = list_page(runtime, SYSTEM, "account", parse_list_query(module, params | {"count": "true"}, set(module.by_name)))
        assert page.total == len(page.items)
        return len(page.items)

    assert ids({"category": "new"}) == 3
    assert ids({"category__in": "key,general"}) == 3
    assert ids({"employees__gte": "20", "employees__lt": "50"}) == 3
    assert ids({"q": "co 3"}) == 1
    assert ids({"q": "100%"}) == 6
    assert ids({"tags__contains": "vip"}) == 3
    assert ids({"category__ne": "new"}) == 3
    with pytest.raises(Invalid) as caught:
        parse_list_query(module, {"nope": "1", "employees__gte": "many", "sort": "zzz", "category__gt": "x"}, set(module.by_name))
    assert set(caught.value.fields) == {"nope", "employees__gte", "sort", "category__gt"}


def test_child_rows_keep_values_the_writer_cannot_see(runtime: Runtime) -> None:
    from engine.gate import RoleAccess

    with runtime.db.begin() as conn:
        from engine.auth.users import add_user

        rep_id = add_user(conn, "rep", "pw", ("rep",)).id
    deal = records.create(runtime, SYSTEM, "deal", {"title": "D", "owner": rep_id,
                                                    "lines": [{"product": "A", "quantity": 1, "unit_price": 5, "cost": 3}]})
    rep = RoleAccess(Actor(user_id=rep_id, username="rep", roles=("rep",)), runtime.spec)
    seen = records.get(runtime, rep, "deal", deal["id"])
    assert "cost" not in seen["lines"][0]
    line = {k: v for k, v in seen["lines"][0].items() if k in ("id", "product", "quantity", "unit_price")}
    records.update(runtime, rep, "deal", deal["id"], {"lines": [line | {"quantity": 2}, {"product": "B", "quantity": 1, "unit_price": 1}]}, 1)
    after = records.get(runtime, SYSTEM, "deal", deal["id"])["lines"]
    assert [(r["product"], r["quantity"], r["cost"]) for r in after] == [("A", Decimal("2.00"), Decimal("3.00")), ("B", Decimal("1.00"), None)]
    assert after[0]["id"] == deal["lines"][0]["id"]
    with pytest.raises(Invalid):
        records.update(runtime, rep, "deal", deal["id"], {"lines": [line | {"cost": 9}]}, 2)


def test_fetch_copies_from_the_linked_record(runtime: Runtime) -> None:
    key = records.create(runtime, SYSTEM, "account", {"name": "K", "category": "key"})
    general = records.create(runtime, SYSTEM, "account", {"name": "G", "category": "general"})
    deal = records.create(runtime, SYSTEM, "deal", {"title": "D", "account": key["id"]})
    assert deal["account_category"] == "key"
    moved = records.update(runtime, SYSTEM, "deal", deal["id"], {"account": general["id"]}, 1)
    assert moved["account_category"] == "general"
    kept = records.update(runtime, SYSTEM, "deal", deal["id"], {"title": "D2"}, 2)
    assert kept["account_category"] == "general"
    given = records.create(runtime, SYSTEM, "deal", {"title": "E", "account": key["id"], "account_category": "new"})
    assert given["account_category"] == "new"


def test_the_acting_user_as_owner_needs_no_lookup_and_a_missing_user_is_refused(runtime: Runtime) -> None:
    from engine.gate import RoleAccess

    from .conftest import add_test_user

    uid = add_test_user(runtime, "ann", ("admin",))
    access = RoleAccess(Actor(uid, "ann", ("admin",)), runtime.spec)
    seen: list[str] = []

    def statement(_conn: object, _cursor: object, text: str, *_: object) -> None:
        seen.append(text)

    sa.event.listen(runtime.db, "before_cursor_execute", statement)
    try:
        made = records.create(runtime, access, "account", {"name": "Mine"})
    finally:
        sa.event.remove(runtime.db, "before_cursor_execute", statement)
    assert made["owner"] == uid
    assert not [s for s in seen if "FROM loom_user" in s]  # the session has just read the acting user
    with pytest.raises(Invalid) as caught:
        records.create(runtime, SYSTEM, "account", {"name": "Theirs", "owner": uid + 999})
    assert "owner" in caught.value.fields
    with pytest.raises(Invalid) as caught:
        records.create(runtime, access, "account", {"name": "Theirs", "owner": uid + 999})
    assert "owner" in caught.value.fields
