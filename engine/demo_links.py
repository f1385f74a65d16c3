"""Link generators of the demo loader: a random target record, skewed, filtered, matched or used once."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from engine.demo_memo import memoized
from engine.demo_plan import Gen
from engine.demo_values import GenError, Row, Store, Value, World, reader, weighted
from engine.expr import Expr, ExprError, compile_expr
from engine.spec import Field, Module


def compile_link(gen: Gen, f: Field, module: Module, world: World, rng: random.Random) -> Value:
    """A link value maker: targets are records generated earlier (or, for a link to the module itself, earlier rows)."""
    target = f.module or ""
    if target == module.name:
        return _earlier(world, target, rng)
    store = world.stores[target]
    where = memoized(compile_expr(gen.args["where"])) if gen.args.get("where") else None
    positions = [i for i in range(len(store.ids)) if where is None or _holds(where, store, i)]
    skew = float(gen.args.get("skew", 0))
    rank = world.rank(target) if skew else []
    weights = [(rank[i] + 1) ** -skew for i in positions] if skew else [1.0] * len(positions)
    if gen.args.get("match"):
        return _matched(gen, store, positions, rng, bool(gen.args.get("distinct")))
    if gen.args.get("distinct"):
        return _distinct(store, positions, weights, rng)
    pick = weighted(positions, weights, rng)

    def make(r: Row) -> Any:
        i = pick(r)
        return None if i is None else store.ids[i]
    return make


def _earlier(world: World, target: str, rng: random.Random) -> Value:
    def make(r: Row) -> Any:
        store = world.stores.get(target)
        if store is None or not store.ids:
            return None
        return store.ids[int(rng.random() * len(store.ids))]
    return make


def _holds(expr: Expr, store: Store, i: int) -> bool:
    try:
        return bool(expr(store.record(i)))
    except ExprError as exc:
        raise GenError(str(exc)) from None


def _distinct(store: Store, positions: list[int], weights: list[float], rng: random.Random) -> Value:
    # weighted sampling without replacement (Efraimidis–Spirakis): order by u ** (1 / w), largest first
    keyed = sorted(((-(rng.random() ** (1 / w)), i) for i, w in zip(positions, weights, strict=True)))
    queue = iter([i for _, i in keyed])

    def make(r: Row) -> Any:
        i = next(queue, None)
        return None if i is None else store.ids[i]
    return make


def _matched(gen: Gen, store: Store, positions: list[int], rng: random.Random, distinct: bool) -> Value:
    keys = list(gen.args["match"])
    reads = [reader(gen.args["match"][k]) for k in keys]
    index: dict[tuple[Any, ...], list[int]] = {}
    for i in positions:
        index.setdefault(tuple(store.cols[k][i] for k in keys), []).append(i)
    used: set[int] = set()
    choose: Callable[[list[int]], int | None] = (lambda c: c[int(rng.random() * len(c))] if c else None) if not distinct \
        else (lambda c: _unused(c, used, rng))

    def make(r: Row) -> Any:
        i = choose(index.get(tuple(_plain(read(r)) for read in reads), []))
        return None if i is None else store.ids[i]
    return make


def _plain(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _unused(candidates: list[int], used: set[int], rng: random.Random) -> int | None:
    free = [i for i in candidates if i not in used]
    if not free:
        return None
    i = free[int(rng.random() * len(free))]
    used.add(i)
    return i
