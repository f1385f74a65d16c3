"""Pure record logic: parse input, apply defaults, compute formulas, validate. No I/O."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from engine.expr import Expr, ExprError
from engine.fieldtypes import ParseError, check_value, parse_value, stored_type
from engine.spec import Field, Module

Values = dict[str, Any]
Errors = dict[str, str]


def scope_of(module: Module, values: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The names an expression sees: the record's values, option_value, and extras (me, old…)."""
    scope = {f.name: values.get(f.name) for f in module.fields}

    def option_value(name: str, prop: str) -> Any:
        f = module.by_name.get(name)
        option = f.option(values.get(name)) if f else None
        return getattr(option, prop, None) if option else None

    scope["option_value"] = option_value
    scope.update(extra or {})
    return scope


def parse_input(module: Module, raw: Mapping[str, Any], allowed: set[str]) -> tuple[Values, Errors]:
    """Parse raw input of the fields in `allowed`; unknown or forbidden names are errors."""
    values: Values = {}
    errors: Errors = {}
    for name, value in raw.items():
        f = module.by_name.get(name)
        if f is None:
            errors[name] = "unknown field"
        elif name not in allowed or f.type == "table":
            errors[name] = "this field cannot be written"
        else:
            try:
                values[name] = parse_value(f, value)
            except ParseError as exc:
                errors[name] = str(exc)
    return values, errors


def default_for(f: Field, me: int | None) -> Any:
    """A field's default value on create, with 'today', 'now' and 'me' resolved."""
    if f.default is None:
        return None
    if f.default == "today":
        return dt.date.today()
    if f.default == "now":
        return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    if f.default == "me":
        return me
    try:
        return parse_value(f, f.default)
    except ParseError:
        return None


def _coerce(f: Field, value: Any) -> Any:
    kind = stored_type(f)
    if value is None:
        return None
    if kind in ("decimal", "currency", "percent"):
        return Decimal(str(value)).quantize(Decimal(1).scaleb(-(f.scale if f.scale is not None else 2)))
    if kind == "integer":
        return int(value)
    if kind == "boolean":
        return bool(value)
    if kind == "text":
        return str(value)[: f.max_length or 255]
    return value


def compute_formulas(module: Module, values: Values, extra: Mapping[str, Any] | None = None) -> Errors:
    """Set every formula field in `values` (in declaration order, twice so formulas may chain)."""
    errors: Errors = {}
    formulas = module.formula_fields
    if not formulas:
        return errors
    scope = scope_of(module, values, extra)  # built once, then kept in step with each formula set
    for _ in range(2 if len(formulas) > 1 else 1):
        for f in formulas:
            assert f.expr is not None
            try:
                values[f.name] = _coerce(f, f.expr(scope))
            except (ExprError, ArithmeticError, ValueError, TypeError) as exc:
                values[f.name] = None
                errors[f.name] = f"could not compute: {exc}"
            if extra is None or f.name not in extra:
                scope[f.name] = values[f.name]
    return errors


def _true(expr: Expr | None, scope: Mapping[str, Any]) -> bool:
    if expr is None:
        return False
    try:
        return bool(expr(scope))
    except ExprError:
        return False


def check_record(module: Module, values: Values, locale: str = "en", extra: Mapping[str, Any] | None = None) -> Errors:
    """Field rules (required, required_if, min/max, length, pattern) and record validations."""
    errors: Errors = {}
    scope: dict[str, Any] | None = None  # built when a condition asks for it (most records of an import need none)
    for f in module.given_fields:
        value = values.get(f.name)
        if value is None:
            if f.visible_if is not None or f.required_if is not None:
                scope = scope or scope_of(module, values, extra)
            visible = f.visible_if is None or _true(f.visible_if, scope or {})
            if visible and (f.required or _true(f.required_if, scope or {})):
                errors[f.name] = "required" if locale != "zh" else "必填"
            continue
        problem = check_value(f, value)
        if problem:
            errors[f.name] = problem
    for rule in module.validations:
        scope = scope or scope_of(module, values, extra)
        if not _true(rule.expr, scope):
            errors.setdefault(rule.field or "__all__", rule.message(locale))
    return errors


def visible_fields(module: Module, values: Mapping[str, Any]) -> dict[str, dict[str, bool]]:
    """For each field with conditions: visible, required and read_only now (forms re-render with it)."""
    if not module.conditional_fields:
        return {}
    scope = scope_of(module, values)
    return {
        f.name: {
            "visible": f.visible_if is None or _true(f.visible_if, scope),
            "required": f.required or _true(f.required_if, scope),
            "read_only": f.read_only or _true(f.read_only_if, scope),
        }
        for f in module.conditional_fields
    }


def format_series(pattern: str, today: dt.date, counter: int) -> tuple[str, str]:
    """(series key, value) of an autonumber: the key is the pattern with dates filled, before the counter."""
    key = pattern.replace("{YYYY}", f"{today:%Y}").replace("{YY}", f"{today:%y}").replace("{MM}", f"{today:%m}").replace("{DD}", f"{today:%d}")
    start = key.find("{#")
    if start < 0:
        return key, f"{key}{counter}"
    end = key.index("}", start)
    width = end - start - 1
    return key, key[:start] + str(counter).zfill(width) + key[end + 1:]
