"""The field-type registry and the expression language, without a database."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from engine.build import build_field
from engine.compute import check_record, compute_formulas, format_series, visible_fields
from engine.expr import ExprError, compile_expr
from engine.fieldtypes import REGISTRY, ParseError, check_value, parse_value, show, to_json
from engine.loader import load

from .conftest import TEST_BUNDLE

DESIGN_TYPES = ["text", "textarea", "integer", "decimal", "currency", "percent", "boolean", "date", "datetime", "select",
                "multiselect", "link", "user", "email", "phone", "url", "autonumber", "formula", "attachment", "table"]
OPTIONS = [{"value": "key", "label": {"en": "Key", "zh": "重要客户"}}, {"value": "new", "label": {"en": "New", "zh": "新客户"}}]


def _field(kind: str, **extra: Any) -> Any:
    return build_field({"name": "f", "type": kind, **extra})


def test_every_design_type_is_registered_with_all_layers() -> None:
    for kind in DESIGN_TYPES:
        entry = REGISTRY[kind]
        assert entry.widget and callable(entry.parse) and callable(entry.show) and callable(entry.json_schema)


@pytest.mark.parametrize(("kind", "raw", "expected"), [
    ("integer", "1,234", 1234), ("integer", 7.0, 7), ("decimal", "1,234.567", Decimal("1234.57")),
    ("currency", "¥2,000", Decimal("2000.00")), ("percent", "40%", Decimal("40.00")),
    ("boolean", "是", True), ("boolean", "否", False), ("boolean", "yes", True), ("boolean", 0, False), ("boolean", "=TRUE()", True),
    ("date", "2026-11-22", dt.date(2026, 11, 22)), ("date", "2026/11/22", dt.date(2026, 11, 22)),
    ("date", "22.11.2026", dt.date(2026, 11, 22)), ("date", 46348, dt.date(2026, 11, 22)),
    ("datetime", "2026-11-22T10:30:00+08:00", dt.datetime(2026, 11, 22, 2, 30)),
    ("email", " a@b.cn ", "a@b.cn"), ("phone", "+86 10 1234-5678", "+86 10 1234-5678"), ("url", "https://x.cn", "https://x.cn"),
    ("text", "  padded  ", "padded"), ("text", "", None), ("link", "12", 12), ("link", {"id": 3}, 3),
])
def test_parse(kind: str, raw: Any, expected: Any) -> None:
    assert parse_value(_field(kind), raw) == expected


@pytest.mark.parametrize(("kind", "raw"), [
    ("integer", "abc"), ("integer", True), ("decimal", "1e999999"), ("decimal", "NaN"), ("boolean", "maybe"),
    ("date", "2026-02-31"), ("email", "nope"), ("url", "javascript:alert(1)"), ("link", "-3"), ("autonumber", "X-1"), ("formula", 3),
])
def test_parse_errors(kind: str, raw: Any) -> None:
    with pytest.raises(ParseError):
        parse_value(_field(kind), raw)


def test_selects_parse_by_key_or_any_label() -> None:
    select = _field("select", options=OPTIONS)
    assert parse_value(select, "key") == "key" and parse_value(select, "重要客户") == "key" and parse_value(select, "new") == "new"
    with pytest.raises(ParseError):
        parse_value(select, "gold")
    multi = _field("multiselect", options=OPTIONS)
    assert parse_value(multi, "重要客户，new") == "key,new"
    assert to_json(multi, "key,new") == ["key", "new"]


def test_formatting_per_locale() -> None:
    assert show(_field("currency"), Decimal("1234.5")) == "¥1,234.50"
    assert show(_field("boolean"), True, "zh") == "是"
    assert show(_field("date"), dt.date(2026, 11, 22), "zh") == "2026年11月22日"
    assert show(_field("select", options=OPTIONS), "key", "zh") == "重要客户"
    assert show(_field("percent"), Decimal("40")) == "40%"
    assert show(_field("integer"), 12345) == "12,345"
    assert show(_field("formula", result="integer", expr="1"), Decimal("41")) == "41"  # a count shows no decimals
    assert show(_field("formula", expr="1"), Decimal("2.5")) == "2.50"


def test_value_rules() -> None:
    assert check_value(_field("integer", min=0), -1) == "must be at least 0"
    assert check_value(_field("decimal", max=10), Decimal("10.5")) == "must be at most 10"
    assert check_value(_field("text", max_length=3), "abcd") == "must be at most 3 characters"
    assert check_value(_field("text", pattern="[A-Z]{2}"), "abc") is not None
    assert check_value(_field("text", pattern="[A-Z]{2}"), "AB") is None


def test_formulas_conditions_and_validations() -> None:
    spec = load(TEST_BUNDLE).spec
    deal = spec.module("deal")
    values: dict[str, Any] = {"stage": "proposal", "amount": Decimal("1000")}
    compute_formulas(deal, values, {"lines": [{"amount": Decimal("2")}, {"amount": None}]})
    assert values["probability"] == Decimal("40.00") and values["present_value"] == Decimal("400.00") and values["total"] == Decimal("2.00")
    assert check_record(deal, values | {"title": "T"}) == {"close_date": "required"}
    state = visible_fields(deal, {"stage": "lost"})
    assert state["lost_reason"] == {"visible": True, "required": True, "read_only": False}
    assert visible_fields(deal, {"stage": "won"})["lost_reason"]["visible"] is False
    account = spec.module("account")
    assert check_record(account, {"name": "x", "employees": -1}, "zh")["employees"] == "must be at least 0"
    assert check_record(account, {"name": None}, "zh") == {"name": "必填"}


def test_expression_sandbox() -> None:
    assert compile_expr("days_between('2026-01-01', '2026-01-31')")({}) == 30
    assert compile_expr("coalesce(a, b, 3)")({"a": None, "b": ""}) == 3
    for hostile in ["().__class__.__bases__", "lines.__class__", "a.__init__.__globals__"]:
        with pytest.raises(ExprError):
            compile_expr(hostile)({"lines": [], "a": 1})
    for bad in ["a +", "x | upper", "", "import os"]:
        with pytest.raises(ExprError):
            compile_expr(bad)


def test_autonumber_series() -> None:
    assert format_series("CUS-{YYYY}-{#####}", dt.date(2026, 11, 22), 42) == ("CUS-2026-{#####}", "CUS-2026-00042")
    assert format_series("Q{YY}{MM}-{###}", dt.date(2026, 3, 1), 7)[1] == "Q2603-007"
