"""Field value generators of the demo loader: each declared generator compiles once into a function of the row."""

from __future__ import annotations

import datetime as dt
import math
import random
import re
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import accumulate
from statistics import NormalDist
from typing import Any

from engine.demo_memo import memoized
from engine.demo_plan import Gen, Plan, Pool, pattern_parts, templates
from engine.expr import FUNCTIONS, Expr, ExprError, compile_expr
from engine.fieldtypes import ParseError, parse_value
from engine.spec import Field, Module, Spec

Value = Callable[["Row"], Any]
NUMERIC = ("integer", "decimal", "currency", "percent")
OFFICE_START, OFFICE_HOURS = 8, 11
HISTORY_DAYS = 730
SPECIAL = ("n", "k", "parent", "source", "row")
PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class GenError(ValueError):
    """A generator could not make a value (a bad expression result, for instance)."""


@dataclass
class Store:
    """The generated rows of one module that later generators read: ids in insert order and the kept columns."""

    keep: tuple[str, ...] = ()
    kids_keep: tuple[str, ...] = ()
    ids: array[int] = field(default_factory=lambda: array("q"))
    cols: dict[str, list[Any]] = field(default_factory=dict)
    kids: dict[str, list[list[dict[str, Any]]]] = field(default_factory=dict)

    def add(self, ids: list[int], rows: list[dict[str, Any]], tables: list[dict[str, list[dict[str, Any]]]]) -> None:
        """Remember inserted rows (ids ascend: rows are inserted in order)."""
        self.ids.extend(ids)
        for name in self.keep:
            self.cols.setdefault(name, []).extend(r.get(name) for r in rows)
        for name in self.kids_keep:
            self.kids.setdefault(name, []).extend(t.get(name, []) for t in tables)

    def pos(self, record_id: Any) -> int | None:
        """Position of a record id, if it was generated."""
        if record_id is None:
            return None
        i = bisect_left(self.ids, record_id)
        return i if i < len(self.ids) and self.ids[i] == record_id else None

    def value(self, record_id: Any, name: str) -> Any:
        """A kept field of a generated record."""
        i = self.pos(record_id)
        return None if i is None else self.cols[name][i]

    def record(self, i: int) -> dict[str, Any]:
        """The kept fields of the record at position i, with its id (numbers as floats, for expressions)."""
        return floats({"id": self.ids[i], **{n: c[i] for n, c in self.cols.items()}})


@dataclass
class World:
    """Everything generators share during one load: plan, spec, anchor day, users and the stores of generated modules."""

    plan: Plan
    spec: Spec
    anchor: dt.date
    now: dt.datetime
    stores: dict[str, Store] = field(default_factory=dict)
    users: list[tuple[int, str, tuple[str, ...]]] = field(default_factory=list)
    ranks: dict[str, list[int]] = field(default_factory=dict)
    salt: str = ""

    @property
    def start(self) -> dt.datetime:
        """When the demo's history begins (literal rows, such as departments, are created then)."""
        return dt.datetime.combine(self.anchor - dt.timedelta(days=HISTORY_DAYS), dt.time(9))

    def rng(self, *key: str) -> random.Random:
        """A random generator seeded from the plan's seed and a key (string seeds hash the same in every process)."""
        return random.Random("/".join((str(self.plan.seed), self.salt, *key)))

    def rank(self, module: str) -> list[int]:
        """Popularity rank of each generated record of a module (one shared ranking per module)."""
        if module not in self.ranks or len(self.ranks[module]) != len(self.stores[module].ids):
            order = list(range(len(self.stores[module].ids)))
            self.rng("rank", module).shuffle(order)
            ranks = [0] * len(order)
            for rank, i in enumerate(order):
                ranks[i] = rank
            self.ranks[module] = ranks
        return self.ranks[module]


@dataclass
class Row:
    """The row being generated and what its expressions see."""

    world: World
    values: dict[str, Any]
    n: int
    rng: random.Random
    draws: dict[str, Any] = field(default_factory=dict)
    parent: dict[str, Any] | None = None
    source: dict[str, Any] | None = None
    row: dict[str, Any] | None = None
    splits: dict[str, list[Decimal]] = field(default_factory=dict)
    fixed: frozenset[str] = frozenset()
    k: int = 1
    cached: dict[str, Any] | None = None

    def set(self, name: str, value: Any) -> None:
        """Set a field (and keep the expression scope in step)."""
        self.values[name] = value
        if self.cached is not None:
            self.cached[name] = float(value) if isinstance(value, Decimal) else value

    def scope(self) -> dict[str, Any]:
        """Names for expressions: n, parent, source, row and helpers, then the row's fields (numbers as floats: a field
        set under one of those names, such as a customer's `source`, wins over it), then the draws."""
        if self.cached is None:
            out: dict[str, Any] = {"n": self.n, "k": self.k, "parent": floats(self.parent or {}), "source": self.source,
                                   "row": floats(self.row or {}), "anchor": self.world.anchor, "rand": self.rng.random,
                                   "randint": self.rng.randint, "days": _days}
            out.update(floats(self.values))
            out.update(self.draws)
            self.cached = out
        return self.cached

    def path(self, head: str, keys: tuple[str, ...]) -> Any:
        """A value by name and keys: a draw, n, parent/source/row, or a field of the row."""
        if head == "anchor":
            return self.world.anchor
        value: Any = {"n": self.n, "k": self.k, "parent": self.parent, "source": self.source, "row": self.row}.get(head) \
            if head in SPECIAL and head not in self.values else self.draws[head] if head in self.draws else self.values.get(head)
        for key in keys:
            value = value.get(key) if isinstance(value, Mapping) else None
        return value


def _days(n: Any) -> dt.timedelta:
    return dt.timedelta(days=float(n))


def floats(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with Decimals as floats, so that expressions may mix amounts with 0.5 or rand()."""
    return {k: float(v) if isinstance(v, Decimal) else v for k, v in values.items()}


def coerce(f: Field, value: Any) -> Any:
    """A generated value as the field stores it; GenError when it does not fit the type."""
    if value is None:
        return None
    if f.type == "integer" and isinstance(value, float):
        value = round(value)
    if f.type in ("text", "textarea", "email", "phone", "url") and not isinstance(value, str):
        value = str(value)
    if f.type == "text" and len(value) > (f.max_length or 255):
        value = value[: f.max_length or 255]
    try:
        return parse_value(f, value)
    except ParseError as exc:
        raise GenError(f"{value!r} does not fit {f.name} ({f.type}): {exc}") from None


def pick(rng: random.Random, pool: Pool) -> Any:
    """One item of a pool (weighted when it has weights)."""
    if pool.weights is None:
        return pool.items[int(rng.random() * len(pool.items))]
    return rng.choices(pool.items, pool.weights)[0]


def spread(u: float, low: float, high: float, args: Mapping[str, Any]) -> float:
    """Map u in [0, 1) into [low, high] along the declared distribution (monotone in u)."""
    dist, width = args.get("dist", "uniform"), high - low
    if dist == "pareto":
        a = float(args.get("alpha", 1.16))
        floor = low if low > 0 else 1.0
        return min(high, floor / (1 - u * (1 - (floor / high) ** a)) ** (1 / a)) if high > floor else low
    if dist == "normal":
        return low + width * min(1.0, max(0.0, NormalDist(0.5, 1 / 6).inv_cdf(min(max(u, 1e-9), 1 - 1e-9))))
    if dist == "triangular":
        c = float(args.get("mode", 0.5))
        x = math.sqrt(u * c) if u < c else 1 - math.sqrt((1 - u) * (1 - c))
        return low + width * x
    if dist == "rising":
        return low + width * math.sqrt(u)
    if dist == "falling":
        return low + width * (1 - math.sqrt(1 - u))
    return low + width * u


def number(f: Field, x: float, args: Mapping[str, Any]) -> Any:
    """A drawn float as the field's number: stepped, then int or Decimal at the field's scale."""
    step = args.get("step")
    if step:
        x = round(x / float(step)) * float(step)
    if f.type == "integer":
        return round(x)
    scale = f.scale if f.scale is not None else 2
    return Decimal(f"{x:.{scale}f}")


def sorted_fractions(rng: random.Random, count: int) -> Iterator[float]:
    """`count` uniform numbers in ascending order, one at a time (order statistics; constant memory)."""
    current = 0.0
    for k in range(count, 0, -1):
        current += (1 - current) * (1 - rng.random() ** (1 / k))
        yield current


def moment(world: World, f: Field, base: Any, offset: float, clamp: bool) -> Any:
    """The date (or date-time in office hours) `offset` days from `base`."""
    if isinstance(base, dt.datetime):
        when = base + dt.timedelta(days=offset)
        return when.date() if f.type == "date" else min(when, world.now) if clamp else when.replace(microsecond=0)
    day = (base or world.anchor) + dt.timedelta(days=math.floor(offset))
    if f.type == "date":
        return day
    seconds = int((offset - math.floor(offset)) * OFFICE_HOURS * 3600)
    when = dt.datetime.combine(day, dt.time(OFFICE_START)) + dt.timedelta(seconds=seconds)
    return min(when, world.now) if clamp else when


def _as_date(value: Any) -> Any:
    return dt.date.fromisoformat(value[:10]) if isinstance(value, str) else value


def compile_value(gen: Gen, f: Field, module: Module, world: World, rng: random.Random) -> Value:
    """The function making one field's value for a row, with the `when` and `chance` modifiers applied."""
    make = KINDS[gen.kind](gen, f, module, world, rng)
    when, chance = memoized(gen.when) if gen.when is not None else None, gen.chance
    if when is None and chance is None:
        return make

    def guarded(r: Row) -> Any:
        if when is not None and not _truth(when, r):
            return None
        if chance is not None and rng.random() >= chance:
            return None
        return make(r)
    return guarded


def _truth(expr: Expr, r: Row) -> bool:
    try:
        return bool(expr(r.scope()))
    except ExprError as exc:
        raise GenError(str(exc)) from None


def _value(gen: Gen, f: Field, module: Module, world: World, rng: random.Random) -> Value:
    value = gen.args["value"]
    if f.type == "user" and isinstance(value, str):
        found = next((uid for uid, name, _ in world.users if name == value), None)
        return lambda r: found
    fixed = coerce(f, value)
    return lambda r: fixed


def _choice(gen: Gen, f: Field, module: Module, world: World, rng: random.Random) -> Value:
    raw = gen.args["choice"]
    items = list(raw)
    weights = list(raw.values()) if isinstance(raw, dict) else gen.args.get("weights")
    if "multi" in gen.args:
        low, high = gen.args["multi"]
        return lambda r: coerce(f, rng.sample(items, min(len(items), rng.randint(low, high))))
    values = [coerce(f, v) for v in items]
    if weights is None:
        return lambda r: values[int(rng.random() * len(values))]
    cum = list(accumulate(float(w) for w in weights))
    return lambda r: values[min(bisect_right(cum, rng.random() * cum[-1]), len(values) - 1)]


def _pattern(gen: Gen, f: Field, module: Module, world: World, rng: random.Random) -> Value:
    options, weights = templates(gen.args["pattern"])
    compiled = [_template(t, module, world, rng) for t in options]
    pool = Pool(tuple(compiled), weights)
    if len(compiled) == 1:
        return lambda r: coerce(f, compiled[0](r))
    return lambda r: coerce(f, pick(rng, pool)(r))


def _template(template: str, module: Module, world: World, rng: random.Random) -> Callable[[Row], str]:
    parts: list[Callable[[Row], str]] = []
    for kind, data in pattern_parts(template):
        if kind == "text":
            parts.append(_literal(str(data)))
        elif kind == "digit":
            parts.append(lambda r: str(int(rng.random() * 10)))
        else:
            parts.append(_token(data, module, world, rng))
    return lambda r: "".join(p(r) for p in parts)


def _literal(text: str) -> Callable[[Row], str]:
    return lambda r: text


def _token(data: tuple[str, tuple[str, ...], str], module: Module, world: World, rng: random.Random) -> Callable[[Row], str]:
    head, keys, fmt = data
    pools = world.plan.pools or {}

    def shown(value: Any) -> str:
        return "" if value is None else format(value, fmt) if fmt else str(value)

    link = module.by_name.get(head)
    if link is not None and link.type == "link" and keys and link.module in world.stores:
        store = world.stores[link.module or ""]
        return lambda r: shown(store.value(r.values.get(head), keys[0]))

    def token(r: Row) -> str:
        if head in r.draws or head not in pools:
            return shown(r.path(head, keys))
        value = pick(rng, pools[head])
        for key in keys:
            value = value.get(key) if isinstance(value, Mapping) else None
        return shown(value)
    return token


def _number(gen: Gen, f: Field, module: Module, world: World, rng: random.Random) -> Value:
    low, high = (float(x) for x in gen.args["number"])
    args = gen.args
    return lambda r: number(f, spread(rng.random(), low, high, args), args)


def _date(gen: Gen, f: Field, module: Module, world: World, rng: random.Random) -> Value:
    low, high = (float(x) for x in gen.args["date"])
    after = reader(gen.args["after"]) if gen.args.get("after") else None
    until = reader(gen.args["until"]) if gen.args.get("until") else None
    args, clamp = gen.args, after is None and high <= 0

    def make(r: Row) -> Any:
        base = _as_date(after(r)) if after is not None else None
        if after is not None and base is None:
            return None
        lo, hi = low, high
        if until is not None:
            cap = _as_date(until(r))
            if cap is not None:
                start = base.date() if isinstance(base, dt.datetime) else base or world.anchor
                cap = cap.date() if isinstance(cap, dt.datetime) else cap
                hi = min(hi, float((cap - start).days))
                lo = min(lo, hi)
        return moment(world, f, base, spread(rng.random(), lo, hi, args), clamp)
    return make


def _users(gen: Gen, f: Field, module: Module, world: World, rng: random.Random) -> Value:
    wanted = set(gen.args["users"])
    ids = [uid for uid, _, roles in world.users if wanted & set(roles)]
    return weighted(ids, [(i + 1) ** -float(gen.args.get("skew", 0)) for i in range(len(ids))], rng)


def weighted(items: list[Any], weights: list[float], rng: random.Random) -> Value:
    """Pick one item per call with the given weights (None when there are none)."""
    if not items:
        return lambda r: None
    cum = list(accumulate(weights))
    last = len(items) - 1
    return lambda r: items[min(bisect_right(cum, rng.random() * cum[-1]), last)]


def _from(gen: Gen, f: Field, module: Module, world: World, rng: random.Random) -> Value:
    link, name = gen.args["from"].split(".", 1)
    store = world.stores[module.field(link).module or ""]
    return lambda r: store.value(r.values.get(link), name)


def _expr(gen: Gen, f: Field, module: Module, world: World, rng: random.Random) -> Value:
    read = reader(str(gen.args["expr"]))
    return lambda r: coerce(f, read(r))


def reader(source: str) -> Callable[[Row], Any]:
    """Evaluate an expression over a row; a plain name (row.amount, place.city) is read without the expression engine."""
    source = source.strip()
    if PLAIN_NAME.match(source) and source.split(".")[0] not in FUNCTIONS:
        head, *keys = source.split(".")
        return lambda r: r.path(head, tuple(keys))
    expr = memoized(compile_expr(source))

    def run(r: Row) -> Any:
        try:
            return expr(r.scope())
        except ExprError as exc:
            raise GenError(str(exc)) from None
    return run


def _split(gen: Gen, f: Field, module: Module, world: World, rng: random.Random) -> Value:
    return lambda r: r.splits[f.name][r.n - 1]


def split_amount(rng: random.Random, total: Decimal, parts: int, scale: int) -> list[Decimal]:
    """`total` in `parts` random shares that add up exactly (the last share takes the rounding)."""
    if parts <= 0:
        return []
    weights = [0.5 + rng.random() for _ in range(parts)]
    unit = Decimal(1).scaleb(-scale)
    shares = [(total * Decimal(w / sum(weights))).quantize(unit) for w in weights[:-1]]
    return [*shares, total - sum(shares, Decimal(0))]


def _first(gen: Gen, f: Field, module: Module, world: World, rng: random.Random) -> Value:
    makers = [compile_value(part, f, module, world, rng) for part in gen.parts]

    def make(r: Row) -> Any:
        for m in makers:
            value = m(r)
            if value is not None:
                return value
        return None
    return make


def _link(gen: Gen, f: Field, module: Module, world: World, rng: random.Random) -> Value:
    from engine.demo_links import compile_link

    return compile_link(gen, f, module, world, rng)


KINDS: dict[str, Callable[[Gen, Field, Module, World, random.Random], Value]] = {
    "value": _value, "choice": _choice, "pattern": _pattern, "number": _number, "date": _date, "link": _link,
    "users": _users, "from": _from, "expr": _expr, "split": _split, "first": _first,
}
