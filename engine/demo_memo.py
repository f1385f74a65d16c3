"""Memoized expressions for bulk generation: a pure expression given the same inputs gives the same result,
so the demo loader evaluates each distinct input once (stage-driven rules repeat across thousands of rows)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Undefined
from jinja2.utils import consume

from engine.expr import FUNCTIONS, Expr, ExprError
from engine.spec import Field, Module, Validation

VOLATILE = frozenset({"now", "rand", "randint"})
OPTION_FIELD = re.compile(r"option_value\(\s*['\"]([A-Za-z_][A-Za-z0-9_]*)['\"]")
LIMIT = 20_000
_MISSING = object()


@dataclass(frozen=True)
class Remembered(Expr):
    """An expression that remembers its result per distinct input (the names it reads)."""

    keys: tuple[str, ...] = ()
    cache: dict[tuple[Any, ...], Any] = field(default_factory=dict, compare=False, repr=False)
    defaults: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    remember: bool = True

    def __call__(self, scope: Mapping[str, Any]) -> Any:
        """Evaluate, or return the result remembered for the same inputs."""
        if not self.remember:
            return self.evaluate(scope)
        try:
            key = tuple(_key(scope.get(k)) for k in self.keys)
            found = self.cache.get(key, _MISSING)
        except TypeError:  # rows of a child table, mappings: not hashable, evaluate every time
            return self.evaluate(scope)
        if found is _MISSING:
            found = self.evaluate(scope)
            if len(self.cache) >= LIMIT:
                self.cache.clear()
            self.cache[key] = found
        return found


    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        """Expr.__call__'s result, by a shorter path into the same compiled template: the names are put in one fresh
        dict that the template context shares instead of copying it twice more (3x faster per call)."""
        template = getattr(self.run, "_template", None)
        if template is None or not hasattr(template, "root_render_func"):
            return Expr.__call__(self, scope)
        context = dict(self.defaults)
        context.update(scope)
        try:
            state = template.new_context(context, shared=True)
            consume(template.root_render_func(state))
            result = state.vars["result"]
        except Exception as exc:  # the errors Expr.__call__ turns into ExprError, sandbox violations included
            raise ExprError(f"{self.source!r}: {exc}") from None
        if isinstance(result, Undefined):
            raise ExprError(f"{self.source!r}: undefined or unsafe attribute")
        return result


def memoized(expr: Expr) -> Expr:
    """The same expression, remembering results per distinct input (ones reading the clock or chance are only
    evaluated faster)."""
    if isinstance(expr, Remembered):
        return expr
    # option_value is a closure over the row: key on the select fields it is asked about instead
    keys = tuple(sorted({n for n in expr.names if n not in FUNCTIONS and n != "option_value"} | set(OPTION_FIELD.findall(expr.source))))
    defaults = dict(FUNCTIONS) | {n: None for n in expr.names if n not in FUNCTIONS}
    return Remembered(expr.source, expr.names, expr.run, keys, defaults=defaults, remember=not expr.names & VOLATILE)


class _Same:
    """A key that is one particular object (child rows: sum_of(lines, 'amount') is asked in both passes over the same
    list); the cache holds the object, so its id is not reused while the key lives."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj


def _key(value: Any) -> Any:
    if type(value) is list:
        return _Same(value)
    if type(value) is bool:  # True == 1 hash alike: keep them apart
        return (bool, value)
    return value


def _memo_field(f: Field) -> Field:
    def memo(expr: Expr | None) -> Expr | None:
        return memoized(expr) if expr is not None else None

    return dataclasses.replace(f, expr=memo(f.expr), visible_if=memo(f.visible_if), required_if=memo(f.required_if),
                               read_only_if=memo(f.read_only_if))


def memo_module(module: Module) -> Module:
    """A copy of `module` whose formulas, conditions and validations are memoized (same metadata otherwise)."""
    fields = tuple(_memo_field(f) for f in module.fields)
    validations = tuple(Validation(memoized(v.expr), v.message, v.field) for v in module.validations)
    return dataclasses.replace(module, fields=fields, validations=validations, by_name={f.name: f for f in fields})


def view(module: Module, exprs: list[Expr], also: set[str]) -> Module:
    """The module reduced to the fields these expressions read (and `also`): the expressions see the same values,
    in a scope of a few names instead of every field."""
    read = set(also)
    for expr in exprs:
        read |= set(expr.names) | set(OPTION_FIELD.findall(expr.source))
    fields = tuple(f for f in module.fields if f.name in read)
    return dataclasses.replace(module, fields=fields, validations=(), by_name={f.name: f for f in fields})


def formula_view(module: Module) -> Module:
    """The module reduced to its formulas and the fields they read (compute_formulas on it sets the same values)."""
    formulas = list(module.formula_fields)
    return view(module, [f.expr for f in formulas if f.expr is not None], {f.name for f in formulas})


def condition_view(module: Module) -> Module:
    """The module reduced to the fields its visible_if and required_if conditions read."""
    exprs = [e for f in module.fields for e in (f.visible_if, f.required_if) if e is not None]
    return view(module, exprs, set())
