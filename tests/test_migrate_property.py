"""Property: random sequences of metadata edits over seeded data never lose or change a stored value."""

from __future__ import annotations

import datetime as dt
import os
import random
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from engine import customize, records
from engine.access import SystemAccess
from engine.migrate import ensure_schema, plan
from engine.migration_ops import HideColumn
from engine.runtime import Settings, make_engine, open_runtime

APP = "name: prop\nlabel: Property test\nroles:\n  - {name: admin, admin: true, label: Admin}\n"
ITEM = "name: item\nlabel: Item\ntitle_field: title\nfields:\n  - {name: title, type: text, required: true}\n"
PG_URL = os.environ.get("LOOM_TEST_PG", "")
TYPES = ("text", "integer", "decimal", "date")

Step = tuple[str, int, int]
STEPS = st.lists(st.tuples(st.sampled_from(["add", "rename", "remove", "readd", "widen", "index"]),
                           st.integers(0, 7), st.integers(1, 30)), min_size=1, max_size=4)


@contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    """A throwaway database for one example: a SQLite file, or a fresh PostgreSQL schema (cheaper than a database)."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'loom.db'}"
        return
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = "loom_p_" + uuid.uuid4().hex[:12]
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    try:
        yield sa.engine.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={name}"}).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        admin.dispose()


class Model:
    """The fields the layer declares, the hidden ones, and what every physical column must hold per row."""

    def __init__(self) -> None:
        self.fields: dict[str, dict[str, Any]] = {}
        self.hidden: dict[str, dict[str, Any]] = {}
        self.columns: dict[str, dict[int, Any]] = {}
        self.counter = 0

    def layer(self) -> dict[str, Any]:
        """The customization layer declaring the current fields."""
        return {"modules": {"item": {"fields": [dict(f) for f in self.fields.values()]}}}

    def step(self, action: str, pick: int, amount: int) -> None:
        """Apply one edit to the model (an edit that does not apply is skipped)."""
        names, hidden = sorted(self.fields), sorted(self.hidden)
        if action == "add":
            self.counter += 1
            name = f"x{self.counter}"
            kind = TYPES[pick % len(TYPES)]
            self.fields[name] = {"name": name, "type": kind, **({"max_length": 10 + amount} if kind == "text" else {})}
            self.columns[name] = {}  # rows created before the field have no value in it
        elif action == "readd" and hidden:
            name = hidden[pick % len(hidden)]
            self.fields[name] = self.hidden.pop(name)
        elif names and action == "remove":
            name = names[pick % len(names)]
            self.hidden[name] = self.fields.pop(name)
        elif names and action == "rename":
            self._rename(names[pick % len(names)])
        elif names and action == "widen":
            f = self.fields[names[pick % len(names)]]
            if f["type"] == "text":
                f["max_length"] += amount
        elif names and action == "index":
            self.fields[names[pick % len(names)]]["index"] = True

    def _rename(self, old: str) -> None:
        self.counter += 1
        new = f"x{self.counter}"
        f = self.fields.pop(old)
        self.fields[new] = {**f, "name": new, "renamed_from": old}
        self.columns[new] = self.columns.pop(old, {})


def value_for(f: dict[str, Any], rng: random.Random) -> Any:
    """A random input value for a generated field (None now and then)."""
    if rng.random() < 0.2:
        return None
    if f["type"] == "text":
        return "".join(rng.choice("abcXYZ 客户-0123") for _ in range(rng.randint(1, f["max_length"]))).strip() or "a"
    if f["type"] == "integer":
        return rng.randint(-10**12, 10**12)
    if f["type"] == "decimal":
        return Decimal(rng.randint(-10**8, 10**8)).scaleb(-2)
    return dt.date(2000, 1, 1) + dt.timedelta(days=rng.randint(0, 10_000))


def stored(rt: Any) -> dict[int, dict[str, Any]]:
    """Every contact row as the database holds it (hidden columns included)."""
    with rt.db.connect() as conn:
        live = sa.Table("item", sa.MetaData(), autoload_with=conn)
        return {r["id"]: dict(r) for r in conn.execute(sa.select(live)).mappings()}


def seed(rt: Any, model: Model, rng: random.Random, n: int) -> None:
    """Create rows through the records service and remember what every column holds."""
    for i in range(n):
        raw = {"title": f"p{rng.random():.6f}-{i}"} | {name: value_for(f, rng) for name, f in model.fields.items()}
        new_id = records.create(rt, SystemAccess(), "item", raw)["id"]
        row = stored(rt)[new_id]
        for name in list(model.fields) + list(model.hidden):
            model.columns.setdefault(name, {})[new_id] = row.get(name)


def check(rt: Any, model: Model, read: bool = False) -> None:
    """Every remembered value is still in its column (and, with `read`, what users read matches it); nothing left to do."""
    rows = stored(rt)
    for name, values in model.columns.items():
        assert {k: rows[k][name] for k in values} == values, name
    for row_id in rows if read else ():
        shown = records.get(rt, SystemAccess(), "item", row_id)
        assert {n: shown[n] for n in model.fields} == {n: model.columns[n].get(row_id) for n in model.fields}
    again = plan(rt)
    assert again.empty and again.refusals == ()
    assert {op.column for op in again.ops if isinstance(op, HideColumn)} == set(model.hidden)


def run_example(kind: str, steps: list[Step], seed_value: int) -> None:
    rng = random.Random(seed_value)
    with tempfile.TemporaryDirectory() as folder, database(kind, Path(folder)) as url:
        bundle = Path(folder) / "bundle"
        (bundle / "modules").mkdir(parents=True)
        (bundle / "app.yaml").write_text(APP, encoding="utf-8")
        (bundle / "modules" / "item.yaml").write_text(ITEM, encoding="utf-8")
        conf = Settings(metadata=bundle, db_url=url, files=Path(folder) / "files")
        model = Model()
        engine = make_engine(url)
        try:
            rt = open_runtime(conf, db=engine)
            ensure_schema(rt)
            seed(rt, model, rng, 3)
            for action, pick, amount in steps:
                model.step(action, pick, amount)
                customize.apply_layer(rt, model.layer(), "property", f"{action} {pick}")
                rt = open_runtime(conf, db=engine)
                check(rt, model)
                seed(rt, model, rng, 2)
            check(rt, model, read=True)
        finally:
            engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_random_metadata_edits_never_lose_or_change_a_value(kind: str) -> None:
    if kind == "postgresql" and not PG_URL:
        pytest.skip("LOOM_TEST_PG is not set: PostgreSQL variant skipped (set it to a postgresql+psycopg:// URL)")

    # no shrinking phase: each example builds a database, and a failing example is printed as drawn
    @settings(max_examples=25, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow],
              phases=[Phase.explicit, Phase.generate])
    @given(steps=STEPS, seed_value=st.integers(0, 2**32))
    def examples(steps: list[Step], seed_value: int) -> None:
        run_example(kind, steps, seed_value)

    examples()
