"""One sandboxed expression language (Jinja2 expression syntax), compiled once at load."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, meta, nodes
from jinja2.environment import TemplateExpression
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment


def _today() -> dt.date:
    return dt.date.today()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def _as_date(value: Any) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def days_between(start: Any, end: Any) -> int | None:
    """Days from `start` to `end`; None when either is missing."""
    a, b = _as_date(start), _as_date(end)
    return None if a is None or b is None else (b - a).days


def coalesce(*values: Any) -> Any:
    """The first value that is not None or empty."""
    return next((v for v in values if v is not None and v != ""), None)


def _num(value: Any) -> Any:
    return 0 if value is None or value == "" else value


def sum_of(rows: Iterable[Mapping[str, Any]] | None, name: str) -> Any:
    """Sum of one field over child rows (missing values count as 0)."""
    return sum((_num(r.get(name)) for r in rows or ()), Decimal(0))


def count_of(rows: Iterable[Any] | None) -> int:
    """Number of child rows."""
    return len(list(rows or ()))


def avg_of(values: Iterable[Any]) -> Any:
    """Average of the values that are set; None when none is."""
    present = [v for v in values if v is not None and v != ""]
    return sum(present) / len(present) if present else None


def _round(value: Any, digits: int = 0) -> Any:
    return None if value is None else round(value, digits)


FUNCTIONS: dict[str, Any] = {
    "today": _today, "now": _now, "days_between": days_between, "coalesce": coalesce,
    "sum_of": sum_of, "count_of": count_of, "avg_of": avg_of, "round": _round,
    "min": min, "max": max, "abs": abs, "len": len, "int": int, "float": float, "str": str,
    "Decimal": Decimal, "date": _as_date,
}
RESERVED_NAMES = frozenset(FUNCTIONS) | {"option_value", "me", "old", "created", "none", "true", "false"}


class _Env(ImmutableSandboxedEnvironment):
    pass


_ENV = _Env(undefined=StrictUndefined, autoescape=False)
_ENV.globals.clear()
_ENV.filters.clear()
_ENV.tests.clear()
_ENV.tests.update({"none": lambda v: v is None, "defined": lambda v: v is not None})


class ExprError(ValueError):
    """An expression failed to compile or to run."""


@dataclass(frozen=True)
class Expr:
    """A compiled expression: its source, the names it reads, and its callable."""

    source: str
    names: frozenset[str]
    run: Callable[..., Any] = field(compare=False, repr=False)

    def __call__(self, scope: Mapping[str, Any]) -> Any:
        """Evaluate against `scope` (field values and extras such as `me`)."""
        context = dict(FUNCTIONS)
        context.update({n: None for n in self.names if n not in context})
        context.update(scope)
        try:
            result = self.run(**context)
        except (TypeError, ValueError, ArithmeticError, AttributeError, KeyError) as exc:
            raise ExprError(f"{self.source!r}: {exc}") from None
        except Exception as exc:  # sandbox violations and undefined names
            raise ExprError(f"{self.source!r}: {exc}") from None
        if isinstance(result, Undefined):
            raise ExprError(f"{self.source!r}: undefined or unsafe attribute")
        return result


def compile_expr(source: str) -> Expr:
    """Compile an expression; raises ExprError with the reason on a syntax error."""
    if not isinstance(source, str) or not source.strip():
        raise ExprError("empty expression")
    return _compiled(source)


@lru_cache(maxsize=8192)
def _compiled(source: str) -> Expr:
    """Compiled expressions are immutable: the checks, the build and every reload of the same metadata share them.
    The source is parsed (and so checked) here; its Python code is generated on first use (`_Deferred`)."""
    parser = Parser(_ENV, source, state="variable")
    try:
        expr = parser.parse_expression()
        if not parser.stream.eos:
            raise TemplateSyntaxError("chunk after expression", parser.stream.current.lineno, None, None)
    except TemplateSyntaxError as exc:
        raise ExprError(f"syntax error in {source!r}: {exc.message}") from None
    tree = nodes.Template([nodes.Output([expr])])
    tree.set_environment(_ENV)
    _refuse_filters(tree, source)
    return Expr(source, frozenset(meta.find_undeclared_variables(tree)), _Deferred(expr))


class _Deferred:
    """An expression's callable, generated from its parsed tree on the first call: generating and compiling the
    Python code is most of an expression's cost, and a start with the CRM bundle compiles about 90 of them, few
    used by its first pages."""

    __slots__ = ("_expr", "_run")

    def __init__(self, expr: nodes.Expr) -> None:
        self._expr = expr
        self._run: Callable[..., Any] | None = None

    def _compiled(self) -> Callable[..., Any]:
        if self._run is None:  # two threads may both generate it: the same code, no harm
            body = [nodes.Assign(nodes.Name("result", "store"), self._expr, lineno=1)]
            self._run = TemplateExpression(_ENV.from_string(nodes.Template(body, lineno=1)), undefined_to_none=False)
        return self._run

    def __call__(self, **context: Any) -> Any:
        return self._compiled()(**context)

    def __getattr__(self, name: str) -> Any:  # the compiled expression's own attributes (its `_template`)
        return getattr(self._compiled(), name)


def _refuse_filters(tree: nodes.Node, source: str) -> None:
    if any(not isinstance(t, nodes.Test) or t.name not in ("none", "defined") for t in tree.find_all((nodes.Filter, nodes.Test))):
        raise ExprError(f"{source!r}: filters and tests are not part of the expression language")


def field_names(expr: Expr) -> frozenset[str]:
    """The record field names an expression reads (functions and extras left out)."""
    return frozenset(n for n in expr.names if n not in RESERVED_NAMES)
