"""Values from a field's type alone, for the fields demo.yaml does not mention (and required fields left empty)."""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal

from engine.compute import default_for
from engine.demo_values import HISTORY_DAYS, NUMERIC, Row, Value, World, moment, spread, weighted
from engine.spec import Field, Module


def type_value(world: World, module: Module, f: Field, rng: random.Random, force: bool, literal: bool = False) -> Value | None:
    """A value from the field's type alone (None: the field stays empty unless it must be filled)."""
    if f.system or f.fetch or f.type in ("formula", "autonumber", "table", "attachment"):
        return None
    if f.type == "user" and f.default == "me":
        return lambda r: r.values.get("owner")
    if literal and not force:
        fixed = default_for(f, None)
        return None if fixed is None else (lambda r: default_for(f, None))
    maker = TYPE_VALUES.get(f.type)
    if maker is not None:
        return maker(world, module, f, rng)
    if not force:
        return None
    return _text(f, rng)


def _select(world: World, module: Module, f: Field, rng: random.Random) -> Value:
    values = [o.value for o in f.options]
    return lambda r: values[int(rng.random() * len(values))] if values else None


def _multi(world: World, module: Module, f: Field, rng: random.Random) -> Value:
    values = [o.value for o in f.options]
    return lambda r: ",".join(rng.sample(values, min(len(values), rng.randint(0, 2)))) or None


def _boolean(world: World, module: Module, f: Field, rng: random.Random) -> Value:
    if f.default is None:
        return lambda r: rng.random() < 0.5
    usual = bool(default_for(f, None))
    return lambda r: usual if rng.random() < 0.8 else not usual


def _numeric(world: World, module: Module, f: Field, rng: random.Random) -> Value:
    if f.default is not None:
        return lambda r: default_for(f, None)
    low = f.min if f.min is not None else 0.0
    high = f.max if f.max is not None else low + (100 if f.type in ("integer", "percent") else 10000)
    scale = f.scale if f.scale is not None else 2
    if f.type == "integer":
        return lambda r: rng.randint(int(low), int(high))
    return lambda r: Decimal(f"{low + rng.random() * (high - low):.{scale}f}")


def _moment(world: World, module: Module, f: Field, rng: random.Random) -> Value:
    return lambda r: moment(world, f, None, spread(rng.random(), -HISTORY_DAYS, 0, {}), True)


def _link(world: World, module: Module, f: Field, rng: random.Random) -> Value:
    store = world.stores.get(f.module or "")
    if store is None or f.module == module.name or not store.ids:
        return lambda r: None
    return lambda r: store.ids[int(rng.random() * len(store.ids))]


def _user(world: World, module: Module, f: Field, rng: random.Random) -> Value:
    ids = [uid for uid, _, _ in world.users]
    return weighted(ids, [1.0] * len(ids), rng)


def _text(f: Field, rng: random.Random) -> Value:
    label = f.label("en")
    made: dict[str, Callable[[Row], str]] = {
        "email": lambda r: f"demo{r.n}@example.com",
        "phone": lambda r: "138" + "".join(str(int(rng.random() * 10)) for _ in range(8)),
        "url": lambda r: f"https://www.example.com/{r.n}",
    }
    return made.get(f.type, lambda r: f"{label} {r.n}")


TYPE_VALUES: dict[str, Callable[[World, Module, Field, random.Random], Value]] = {
    "select": _select, "multiselect": _multi, "boolean": _boolean, "date": _moment, "datetime": _moment,
    "link": _link, "user": _user, **dict.fromkeys(NUMERIC, _numeric),
}
