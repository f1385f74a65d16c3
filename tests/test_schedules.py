"""Scheduled actions: taken by the engine once a day on the records a filter picks, never offered to users
(SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine import actions, expr, records
from engine.access import Actor, SystemAccess
from engine.errors import Forbidden, MetadataError
from engine.gate import RoleAccess
from engine.loader import load
from engine.migrate import ensure_schema
from engine.recompute import daily
from engine.runtime import Runtime, Settings, make_engine, open_runtime
from engine.schedules import run_schedules

from .conftest import add_test_user

SYSTEM = SystemAccess()
APP = "name: mini\nroles: [{name: admin, admin: true}, {name: rep}]\n"
CLIENT = """
name: client
fields:
  - {name: name, type: text, required: true}
  - {name: last_contact, type: date}
  - {name: owned_since, type: date, on_change_of: owner}
  - {name: idle_days, type: formula, result: integer, expr: "days_between(max(coalesce(last_contact, owned_since), owned_since), today())"}
permissions:
  rep: {read: all, write: all, unowned: true}
actions:
  - name: auto_release
    kind: update
    scheduled: true
    condition: "owner != none and idle_days >= 30"
    set: {owner: "none"}
    log: {module: client_log, set: {client: "id", from_owner: "old.owner", note: "'idle ' ~ old.idle_days ~ ' days'"}}
  - {name: claim, kind: update, condition: "owner == none", permission: unowned, set: {owner: "me"}}
schedules:
  - {name: back_to_pool, label: {en: Idle clients go back to the pool, zh: 闲置客户退回客户池}, action: auto_release,
     filter: {owner__isnull: false, idle_days__gte: 30}}
"""
LOG = """
name: client_log
fields:
  - {name: client, type: link, module: client}
  - {name: from_owner, type: user}
  - {name: note, type: text}
"""


def _bundle(root: Path, client: str = CLIENT) -> Path:
    (root / "modules").mkdir(parents=True)
    (root / "app.yaml").write_text(APP, encoding="utf-8")
    (root / "modules" / "client.yaml").write_text(client, encoding="utf-8")
    (root / "modules" / "client_log.yaml").write_text(LOG, encoding="utf-8")
    return root


@pytest.fixture
def rt(tmp_path: Path, db_url: str) -> Iterator[Runtime]:
    runtime = open_runtime(Settings(metadata=_bundle(tmp_path / "mini"), db_url=db_url), db=make_engine(db_url))
    ensure_schema(runtime)
    yield runtime
    runtime.db.dispose()


def _days(n: int) -> str:
    return (dt.date.today() + dt.timedelta(days=n)).isoformat()


def _clients(rt: Runtime) -> tuple[int, dict[str, int]]:
    rep = add_test_user(rt, "rep", ("rep",))
    made = {
        "idle": records.create(rt, SYSTEM, "client", {"name": "Idle", "owner": rep, "owned_since": _days(-60), "last_contact": _days(-45)}),
        "called": records.create(rt, SYSTEM, "client", {"name": "Called", "owner": rep, "owned_since": _days(-60), "last_contact": _days(-3)}),
        "new": records.create(rt, SYSTEM, "client", {"name": "Just claimed", "owner": rep, "owned_since": _days(-2), "last_contact": _days(-90)}),
        "pool": records.create(rt, SYSTEM, "client", {"name": "Pool", "owner": None, "owned_since": _days(-99)}),
    }
    return rep, {k: v["id"] for k, v in made.items()}


def _owner(rt: Runtime, record_id: int) -> Any:
    return records.get(rt, SYSTEM, "client", record_id)["owner"]


def test_the_schedule_acts_on_matching_records_only(rt: Runtime) -> None:
    rep, ids = _clients(rt)
    [ran] = run_schedules(rt)
    assert (ran.module, ran.schedule, ran.done, ran.skipped) == ("client", "back_to_pool", 1, 0)
    assert _owner(rt, ids["idle"]) is None
    assert [_owner(rt, ids[k]) for k in ("called", "new")] == [rep, rep]
    log = rt.tables["client_log"]
    with rt.db.connect() as conn:
        rows = conn.execute(sa.select(log.c.client, log.c.from_owner, log.c.note)).all()
    assert [tuple(r) for r in rows] == [(ids["idle"], rep, "idle 45 days")]
    assert run_schedules(rt)[0].done == 0  # nothing left to do


def test_the_daily_job_recomputes_dates_first(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    _, ids = _clients(rt)
    monkeypatch.setitem(expr.FUNCTIONS, "today", lambda: dt.date.today() + dt.timedelta(days=28))
    said = daily(rt)  # 28 days on: 'called' is idle 31 days, 'new' 30
    assert "client.back_to_pool 3" in said
    assert [_owner(rt, ids[k]) for k in ("idle", "called", "new")] == [None, None, None]


def test_a_claim_restarts_the_clock(rt: Runtime) -> None:
    rep, ids = _clients(rt)
    run_schedules(rt)
    me = RoleAccess(Actor(user_id=rep, username="rep", roles=("rep",)), rt.spec)
    claimed = actions.run(rt, me, "client", ids["idle"], "claim").record
    assert claimed["owned_since"] == dt.date.today() and claimed["idle_days"] == 0
    assert run_schedules(rt)[0].done == 0


def test_users_are_never_offered_nor_allowed_a_scheduled_action(rt: Runtime) -> None:
    rep, ids = _clients(rt)
    me = RoleAccess(Actor(user_id=rep, username="rep", roles=("rep",)), rt.spec)
    record = records.get(rt, me, "client", ids["idle"])
    assert [a.name for a in actions.available(rt, me, rt.spec.module("client"), record)] == []
    with pytest.raises(Forbidden):
        actions.run(rt, me, "client", ids["idle"], "auto_release")
    assert _owner(rt, ids["idle"]) == rep


def test_loom_recompute_runs_the_daily_job(tmp_path: Path) -> None:
    bundle, url = _bundle(tmp_path / "cli"), f"sqlite:///{tmp_path / 'cli.db'}"
    done = subprocess.run([sys.executable, "-m", "engine.cli", "recompute", "--metadata", str(bundle), "--db", url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "scheduled actions: client.back_to_pool 0" in done.stdout


BAD = [
    ("action: auto_release,", "action: claim,", "schedules[0].action: 'claim' is not an action of this module declared 'scheduled: true'"),
    ("idle_days__gte: 30", "idle_dayz__gte: 30", "schedules[0].filter.idle_dayz__gte: unknown field 'idle_dayz'"),
    ("idle_days__gte: 30", "idle_days__near: 30", "schedules[0].filter.idle_days__near: operator 'near' is not available"),
]


@pytest.mark.parametrize(("old", "new", "expected"), BAD)
def test_bad_schedules_are_reported(tmp_path: Path, old: str, new: str, expected: str) -> None:
    with pytest.raises(MetadataError) as caught:
        load(_bundle(tmp_path / "b", CLIENT.replace(old, new)))
    assert expected in str(caught.value) and "client.yaml:" in str(caught.value)
