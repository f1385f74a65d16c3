"""A seeded world for the permission matrix: one user per role plus a stranger, one record per module and
owner, every value a findable canary; and how to read any response (HTML, JSON, CSV, xlsx) as text.

Values are written straight into the tables (the records service would refuse a canary in a select),
in a fixed order with fixed timestamps, so two worlds seeded alike are identical row for row.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from engine.access import Actor
from engine.auth.users import add_user
from engine.fieldtypes import stored_type
from engine.gate import RoleAccess
from engine.runtime import Runtime
from engine.spec import Field, Module

STAMP = dt.datetime(2024, 1, 2, 3, 4, 5)
STRANGER = "stranger"
TEXT_KINDS = frozenset({"text", "textarea", "email", "phone", "url", "select", "multiselect", "autonumber"})
NUMBER_KINDS = frozenset({"integer", "decimal", "currency", "percent"})
TOKEN = re.compile(r"zqv\d{5}[wy]")
Key = tuple[str, int, str]


def token(n: int, alt: bool = False) -> str:
    """The n-th text canary (the alternative one for the second world)."""
    return f"zqv{n:05d}{'y' if alt else 'w'}"


def value_for(f: Field, n: int, alt: bool, links: dict[str, int], users: dict[str, int]) -> Any:
    """The seeded value of one field (None: not seeded)."""
    kind = stored_type(f)
    if kind in TEXT_KINDS:
        text = token(n, alt)
        text = {"email": f"{text}@x.io", "url": f"https://{text}.io"}.get(kind, text)
        return text[: f.max_length] if f.max_length and f.max_length >= 9 else text
    if kind == "integer":
        return 730000 + n * 10 + (1 if alt else 0)
    if kind in NUMBER_KINDS:
        return Decimal(f"{91000 + n * 10 + (1 if alt else 0)}.37")
    if kind in ("date", "datetime"):
        day = dt.date(1500 if alt else 1700, 1, 1) + dt.timedelta(days=n)  # one day per canary: no two values share a date
        return day if kind == "date" else dt.datetime.combine(day, dt.time(9, 30))
    if kind == "boolean":
        return not alt
    if kind == "link" and f.module in links:
        return None if alt else links[f.module]
    if kind == "user":
        return None if alt else users[STRANGER]
    return None


def number_forms(value: Any) -> list[str]:
    """How a seeded number can be written in a response."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [str(value), f"{value:,}"]
    whole = int(value)
    return [f"{value:.2f}", f"{value:,.2f}", f"{whole}.", f"{whole:,}."]


@dataclass
class World:
    """A seeded database behind an app."""

    app: Any
    users: dict[str, int] = field(default_factory=dict)
    records: dict[tuple[str, str], int] = field(default_factory=dict)
    values: dict[Key, Any] = field(default_factory=dict)
    owners: dict[tuple[str, int], str] = field(default_factory=dict)

    @property
    def rt(self) -> Runtime:
        """The app's runtime."""
        rt: Runtime = self.app.state.runtime
        return rt

    def access(self, role: str) -> RoleAccess:
        """The gate as the role's user sees it."""
        return RoleAccess(Actor(self.users[role], f"u_{role}", (role,)), self.rt.spec)

    def visible(self, role: str, module: Module, record_id: int) -> bool:
        """Whether the role's user may read this record (users have no department: department scopes are 'self')."""
        parent = _parent(self.rt, module)
        if parent is not None:
            return self.visible(role, parent, self.records[(parent.name, self.owners[(module.name, record_id)])])
        scope = self.access(role).scope(module, "read")
        return scope == "all" or (scope != "none" and self.owners[(module.name, record_id)] == role)

    def hidden(self, role: str) -> set[Key]:
        """Every seeded value the role may not see: out of scope, or a field it may not read."""
        access = self.access(role)
        out = set()
        for key in self.values:
            module = self.rt.spec.module(key[0])
            if key[2] not in access.readable(module) or not self.visible(role, module, key[1]):
                out.add(key)
        return out


def _parent(rt: Runtime, module: Module) -> Module | None:
    if not module.child:
        return None
    return next((m for m in rt.spec.modules.values() for f in m.tables if f.module == module.name), None)


def _seeded_fields(module: Module) -> list[Field]:
    return [f for f in module.stored_fields if not f.system and f.type not in ("attachment",)]


def seed(app: Any, roles: list[str]) -> World:
    """One user per role and a stranger; per module one record per owner (child rows under each parent)."""
    world = World(app)
    rt = world.rt
    with rt.db.begin() as conn:
        for name in [*roles, STRANGER]:
            world.users[name] = add_user(conn, f"u_{name}", "pw-long-enough", (name,) if name != STRANGER else ()).id
    counter = iter(range(1, 1_000_000))
    parents = [m for m in rt.spec.modules.values() if not m.child]
    with rt.db.begin() as conn:
        for module in parents:
            for owner in [STRANGER, *roles]:
                world.records[(module.name, owner)] = _insert(conn, rt, module, owner, world, {}, next(counter))
        for module in parents:
            for owner in [STRANGER, *roles]:
                _fill(conn, rt, module, world.records[(module.name, owner)], world, counter)
        for module in parents:
            for table in module.tables:
                child = rt.spec.module(table.module or "")
                for owner in [STRANGER, *roles]:
                    parent_id = world.records[(module.name, owner)]
                    row_id = _insert(conn, rt, child, owner, world, {"parent_id": parent_id, "idx": 0}, next(counter))
                    _fill(conn, rt, child, row_id, world, counter)
    return world


def _insert(conn: sa.Connection, rt: Runtime, module: Module, owner: str, world: World, extra: dict[str, Any], n: int) -> int:
    table = rt.tables[module.name]
    uid = world.users[owner]
    key = conn.execute(sa.insert(table).values(owner=uid, created_by=uid, updated_by=uid, created_at=STAMP, updated_at=STAMP,
                                               version=1, **extra)).inserted_primary_key
    assert key is not None
    world.owners[(module.name, int(key[0]))] = owner
    return int(key[0])


def _fill(conn: sa.Connection, rt: Runtime, module: Module, record_id: int, world: World, counter: Iterator[int]) -> None:
    links = {name: rid for (name, owner), rid in world.records.items() if owner == STRANGER}
    values = {}
    for f in _seeded_fields(module):
        n = next(counter)
        value = value_for(f, n, False, links, world.users)
        if value is not None:
            values[f.name] = value
            world.values[(module.name, record_id, f.name)] = (n, value)
    table = rt.tables[module.name]
    conn.execute(sa.update(table).where(table.c.id == record_id).values(**{k: v for k, v in values.items()}))


def alter(world: World, keys: set[Key], alt: bool) -> None:
    """Set the given values to their alternative (or back to the base) in the world's database."""
    links = {name: rid for (name, owner), rid in world.records.items() if owner == STRANGER}
    per_row: dict[tuple[str, int], dict[str, Any]] = {}
    for key in keys:
        n, _ = world.values[key]
        f = world.rt.spec.module(key[0]).field(key[2])
        per_row.setdefault((key[0], key[1]), {})[key[2]] = value_for(f, n, alt, links, world.users)
    with world.rt.db.begin() as conn:
        for (name, record_id), values in sorted(per_row.items()):
            table = world.rt.tables[name]
            conn.execute(sa.update(table).where(table.c.id == record_id).values(**values))


def body_text(response: Any) -> str:
    """A response as text: a zip (xlsx) is opened and its parts read (document properties aside)."""
    raw: bytes = response.content
    if raw[:2] != b"PK":
        return raw.decode("utf-8", "replace")
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        return "\n".join(z.read(n).decode("utf-8", "replace") for n in sorted(z.namelist()) if not n.startswith("docProps/"))


def finder(world: World, keys: set[Key]) -> Callable[[str], set[Key]]:
    """A function naming which of `keys` show up in a text (text canaries, numbers in their usual forms, dates)."""
    by_token: dict[str, Key] = {}
    forms: dict[str, Key] = {}
    for key in keys:
        n, value = world.values[key]
        kind = stored_type(world.rt.spec.module(key[0]).field(key[2]))
        if isinstance(value, str):
            by_token[token(n)] = key
        elif kind in NUMBER_KINDS:
            forms.update({form: key for form in number_forms(value)})
        elif isinstance(value, (dt.date, dt.datetime)):
            forms.update({f"{value.year}-{value.month:02d}-{value.day:02d}": key, f"{value.year}年{value.month}月{value.day}日": key})
    pattern = re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))) if forms else None

    def found(text: str) -> set[Key]:
        hits = {by_token[t] for t in TOKEN.findall(text) if t in by_token}
        if pattern is not None:
            hits |= {forms[m] for m in pattern.findall(text)}
        return hits

    return found


def test_two_worlds_seeded_alike_are_identical(make_app: Callable[..., Any], tmp_path: Any) -> None:
    from pathlib import Path

    from engine.runtime import Settings
    from engine.web.app import create_app

    from .conftest import TEST_BUNDLE

    one = seed(make_app(), ["rep", "manager"])
    other_app = create_app(Settings(metadata=TEST_BUNDLE, db_url=f"sqlite:///{tmp_path / 'other.db'}", files=Path(tmp_path / "f")))
    try:
        two = seed(other_app, ["rep", "manager"])
        assert one.values == two.values and one.records == two.records
        hidden = one.hidden("rep")
        assert ("account", one.records[("account", "rep")], "secret_score") in hidden
        assert ("account", one.records[("account", "rep")], "name") not in hidden
        assert ("account", one.records[("account", STRANGER)], "name") in hidden
        find = finder(one, hidden)
        n, _ = one.values[("account", one.records[("account", STRANGER)], "name")]
        assert find(f"<td>{token(n)}</td>") == {("account", one.records[("account", STRANGER)], "name")}
    finally:
        other_app.state.runtime.db.dispose()
