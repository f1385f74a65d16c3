"""Date-dependent formulas are recomputed in bulk, once a day by one worker."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa

from engine import records
from engine.access import SystemAccess
from engine.migrate import ensure_schema
from engine.recompute import claim_today, clock_formulas, recompute
from engine.runtime import Settings, make_engine, open_runtime


def _bundle(tmp_path: Path) -> Path:
    root = tmp_path / "b"
    (root / "modules").mkdir(parents=True)
    (root / "app.yaml").write_text("name: b\nroles: [{name: admin, admin: true}]\n")
    (root / "modules" / "invoice.yaml").write_text(
        "name: invoice\nfields:\n"
        "  - {name: due, type: date}\n"
        "  - {name: overdue_days, type: formula, result: integer, expr: \"days_between(due, today()) if due and due < today() else 0\"}\n"
        "  - {name: late, type: formula, result: boolean, expr: \"overdue_days > 30\"}\n"
        "  - {name: amount, type: currency}\n"
        "  - {name: doubled, type: formula, result: currency, expr: \"(amount or 0) * 2\"}\n")
    return root


def test_clock_formulas_follow_dependencies(tmp_path: Path, db_url: str) -> None:
    rt = open_runtime(Settings(metadata=_bundle(tmp_path), db_url=db_url), db=make_engine(db_url))
    ensure_schema(rt)
    assert clock_formulas(rt.spec.module("invoice")) == ["late", "overdue_days"]
    inv = records.create(rt, SystemAccess(), "invoice", {"due": (dt.date.today() - dt.timedelta(days=40)).isoformat(), "amount": 5})
    assert inv["overdue_days"] == 40 and inv["late"] is True
    table = rt.tables["invoice"]
    with rt.db.begin() as conn:  # as if the row had been computed long ago
        conn.execute(sa.update(table).values(overdue_days=1, late=False))
    assert recompute(rt) == 1
    again = records.get(rt, SystemAccess(), "invoice", inv["id"])
    assert again["overdue_days"] == 40 and again["late"] is True and again["version"] == 1
    assert recompute(rt) == 0
    assert claim_today(rt) is True and claim_today(rt) is False
    rt.db.dispose()
