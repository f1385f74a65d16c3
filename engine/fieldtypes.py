"""The field-type registry: one entry per type declares column, parsing, formatting, operators, widget."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

import sqlalchemy as sa

from engine.spec import Field

TEXT_OPS = ("eq", "ne", "in", "contains", "startswith", "isnull")
ORDER_OPS = ("eq", "ne", "in", "gt", "gte", "lt", "lte", "isnull")
CHOICE_OPS = ("eq", "ne", "in", "isnull")
TRUE_WORDS = {"true", "yes", "y", "1", "on", "是", "对", "true()", "=true()"}
FALSE_WORDS = {"false", "no", "n", "0", "off", "否", "错", "false()", "=false()", ""}
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE_RE = re.compile(r"^[+0-9 ()\-]{3,32}$")
URL_RE = re.compile(r"^https?://[^\s]+$")
CURRENCY_SIGNS = {"CNY": "¥", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "HKD": "HK$"}


class ParseError(ValueError):
    """A value could not be read as the field's type; the message says what was expected."""


@dataclass(frozen=True)
class FieldType:
    """What one field type does at every layer."""

    name: str
    column: Callable[[Field], sa.types.TypeEngine[Any] | None]
    parse: Callable[[Field, Any], Any]
    to_json: Callable[[Any], Any]
    show: Callable[[Field, Any, str], str]
    operators: tuple[str, ...]
    widget: str
    json_schema: Callable[[Field], dict[str, Any]]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _text(f: Field, v: Any) -> Any:
    if type(v) is str:
        return v.strip() or None
    if v is None:
        return None
    if isinstance(v, (dict, list)):
        raise ParseError("expected text")
    return str(v).strip() or None


def _checked(pattern: re.Pattern[str], what: str) -> Callable[[Field, Any], Any]:
    def parse(f: Field, v: Any) -> Any:
        text = _text(f, v)
        if text is not None and not pattern.match(text):
            raise ParseError(f"not a valid {what}")
        return text
    return parse


INT64 = 2**63


def _int(f: Field, v: Any) -> Any:
    value = _whole(f, v)
    if value is not None and not -INT64 <= value < INT64:
        raise ParseError("number too large")
    return value


def _whole(f: Field, v: Any) -> Any:
    if _blank(v):
        return None
    if isinstance(v, bool):
        raise ParseError("expected a whole number")
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    try:
        return int(str(v).replace(",", "").replace("_", "").strip())
    except ValueError:
        raise ParseError("expected a whole number") from None


def _dec(f: Field, v: Any) -> Any:
    if _blank(v):
        return None
    if isinstance(v, (bool, dict, list)):
        raise ParseError("expected a number")
    text = str(v).strip().replace(",", "").replace("_", "")
    for sign in ("¥", "$", "€", "£", "%", "￥"):
        text = text.replace(sign, "")
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        raise ParseError("expected a number") from None
    if not number.is_finite():
        raise ParseError("expected a finite number")
    scale = f.scale if f.scale is not None else 2
    if abs(number) >= Decimal(10) ** ((f.precision or 18) - scale):
        raise ParseError("number too large")
    return number.quantize(Decimal(1).scaleb(-scale))


def _bool(f: Field, v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and v in (0, 1):
        return bool(v)
    word = str(v).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ParseError("expected yes or no")


ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d.%m.%Y", "%Y.%m.%d", "%Y年%m月%d日", "%m/%d/%Y")
EXCEL_EPOCH = dt.date(1899, 12, 30)


def _date(f: Field, v: Any) -> Any:
    if _blank(v):
        return None
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool) and 1 <= v < 2958466:
        return EXCEL_EPOCH + dt.timedelta(days=int(v))
    text = str(v).strip()[:10] if "T" in str(v) or " " in str(v).strip() else str(v).strip()
    if ISO_DATE.fullmatch(text):  # what forms and the API send: 0.2 µs against strptime's 5
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            raise ParseError("expected a date such as 2026-11-22") from None
    for fmt in DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ParseError("expected a date such as 2026-11-22")


def _datetime(f: Field, v: Any) -> Any:
    if _blank(v):
        return None
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.UTC).replace(tzinfo=None) if v.tzinfo else v
    if isinstance(v, dt.date):
        return dt.datetime(v.year, v.month, v.day)
    if isinstance(v, (int, float)) and not isinstance(v, bool) and 1 <= v < 2958466:
        return dt.datetime(1899, 12, 30) + dt.timedelta(days=float(v))
    text = str(v).strip().replace("Z", "+00:00")
    try:
        parsed = dt.datetime.fromisoformat(text.replace("/", "-"))
    except ValueError:
        try:
            day = _date(f, text)
        except ParseError:
            raise ParseError("expected a date and time such as 2026-11-22 14:30") from None
        return dt.datetime(day.year, day.month, day.day)
    return parsed.astimezone(dt.UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _choice(f: Field, v: Any) -> Any:
    if _blank(v):
        return None
    text = str(v).strip()
    for o in f.options:
        if text == o.value:
            return o.value
    for o in f.options:
        if text.lower() in {t.lower() for _, t in o.label.texts}:
            return o.value
    raise ParseError(f"'{text}' is not one of: {', '.join(o.value for o in f.options)}")


def _multi(f: Field, v: Any) -> Any:
    if _blank(v) or v == []:
        return None
    items = v if isinstance(v, (list, tuple)) else re.split(r"[,;，；]", str(v))
    values = [_choice(f, i) for i in items if not _blank(i)]
    return ",".join(dict.fromkeys(v for v in values if v)) or None


def _ref(f: Field, v: Any) -> Any:
    if isinstance(v, dict) and "id" in v:
        v = v["id"]
    value = _int(f, v)
    if value is not None and value <= 0:
        raise ParseError("expected a record id")
    return value


FILE_REF = re.compile(r"^file:\d{1,18}$")


def _file_ref(f: Field, v: Any) -> Any:
    text = _text(f, v)
    if text is not None and not FILE_REF.match(text):
        raise ParseError("expected an uploaded file reference such as file:12")
    return text


def _readonly(f: Field, v: Any) -> Any:
    raise ParseError("this field is computed and cannot be set")


def _same(v: Any) -> Any:
    return v


def _iso(v: Any) -> Any:
    return None if v is None else v.isoformat()


def _num_json(v: Any) -> Any:
    return None if v is None else float(v)


def _multi_json(v: Any) -> Any:
    return [] if not v else v.split(",")


def _show_plain(f: Field, v: Any, locale: str) -> str:
    return "" if v is None else str(v)


def _show_number(f: Field, v: Any, locale: str) -> str:
    if v is None:
        return ""
    if stored_type(f) == "integer":  # an integer field, or a formula whose result is one
        return f"{int(v):,}"
    scale = f.scale if f.scale is not None else 2
    return f"{v:,.{scale}f}"


def _show_currency(f: Field, v: Any, locale: str) -> str:
    if v is None:
        return ""
    code = f.currency or "CNY"
    return f"{CURRENCY_SIGNS.get(code, code + ' ')}{v:,.{f.scale if f.scale is not None else 2}f}"


def _show_percent(f: Field, v: Any, locale: str) -> str:
    return "" if v is None else f"{v:,.{f.scale if f.scale is not None else 0}f}%"


def _show_bool(f: Field, v: Any, locale: str) -> str:
    if v is None:
        return ""
    return ("是" if v else "否") if locale == "zh" else ("Yes" if v else "No")


def _show_date(f: Field, v: Any, locale: str) -> str:
    if v is None:
        return ""
    return f"{v.year}年{v.month}月{v.day}日" if locale == "zh" else v.isoformat()


def _show_datetime(f: Field, v: Any, locale: str) -> str:
    return "" if v is None else v.strftime("%Y-%m-%d %H:%M")


def _show_choice(f: Field, v: Any, locale: str) -> str:
    if v is None:
        return ""
    o = f.option(v)
    return o.label(locale) if o else str(v)


def _show_multi(f: Field, v: Any, locale: str) -> str:
    return ", ".join(_show_choice(f, x, locale) for x in (v.split(",") if v else []))


def _col_text(f: Field) -> sa.types.TypeEngine[Any]:
    return sa.String(f.max_length or 255)


def _col_numeric(f: Field) -> sa.types.TypeEngine[Any]:
    return sa.Numeric(f.precision or 18, f.scale if f.scale is not None else 2)


def _schema(kind: str, fmt: str | None = None) -> Callable[[Field], dict[str, Any]]:
    def build(f: Field) -> dict[str, Any]:
        out: dict[str, Any] = {"type": [kind, "null"]}
        if fmt:
            out["format"] = fmt
        if f.max_length and kind == "string":
            out["maxLength"] = f.max_length
        return out
    return build


def _choice_schema(f: Field) -> dict[str, Any]:
    return {"type": ["string", "null"], "enum": [o.value for o in f.options] + [None]}


def _multi_schema(f: Field) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string", "enum": [o.value for o in f.options]}}


def _formula_column(f: Field) -> sa.types.TypeEngine[Any] | None:
    return REGISTRY[f.result or "decimal"].column(f)


def _formula_json(v: Any) -> Any:
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    return v


def _formula_show(f: Field, v: Any, locale: str) -> str:
    return REGISTRY[f.result or "decimal"].show(f, v, locale)


def _formula_schema(f: Field) -> dict[str, Any]:
    return REGISTRY[f.result or "decimal"].json_schema(f)


def _entry(name: str, column: Any, parse: Any, to_json: Any, show: Any, ops: tuple[str, ...], widget: str, schema: Any) -> FieldType:
    return FieldType(name, column, parse, to_json, show, ops, widget, schema)


NUMBER_SCHEMA = _schema("number")
REGISTRY: dict[str, FieldType] = {t.name: t for t in (
    _entry("text", _col_text, _text, _same, _show_plain, TEXT_OPS, "text", _schema("string")),
    _entry("textarea", lambda f: sa.Text(), _text, _same, _show_plain, ("contains", "isnull"), "textarea", _schema("string")),
    _entry("integer", lambda f: sa.BigInteger(), _int, _same, _show_number, ORDER_OPS, "number", _schema("integer")),
    _entry("decimal", _col_numeric, _dec, _num_json, _show_number, ORDER_OPS, "number", NUMBER_SCHEMA),
    _entry("currency", _col_numeric, _dec, _num_json, _show_currency, ORDER_OPS, "currency", NUMBER_SCHEMA),
    _entry("percent", _col_numeric, _dec, _num_json, _show_percent, ORDER_OPS, "percent", NUMBER_SCHEMA),
    _entry("boolean", lambda f: sa.Boolean(), _bool, _same, _show_bool, ("eq", "isnull"), "checkbox", _schema("boolean")),
    _entry("date", lambda f: sa.Date(), _date, _iso, _show_date, ORDER_OPS, "date", _schema("string", "date")),
    _entry("datetime", lambda f: sa.DateTime(), _datetime, _iso, _show_datetime, ORDER_OPS, "datetime", _schema("string", "date-time")),
    _entry("select", lambda f: sa.String(48), _choice, _same, _show_choice, CHOICE_OPS, "select", _choice_schema),
    _entry("multiselect", lambda f: sa.String(1000), _multi, _multi_json, _show_multi, ("contains", "isnull"), "multiselect", _multi_schema),
    _entry("link", lambda f: sa.BigInteger(), _ref, _same, _show_plain, CHOICE_OPS, "link", _schema("integer")),
    _entry("user", lambda f: sa.BigInteger(), _ref, _same, _show_plain, CHOICE_OPS, "user", _schema("integer")),
    _entry("email", lambda f: sa.String(f.max_length or 254), _checked(EMAIL_RE, "email address"), _same, _show_plain, TEXT_OPS, "email",
           _schema("string")),
    _entry("phone", lambda f: sa.String(f.max_length or 32), _checked(PHONE_RE, "phone number"), _same, _show_plain, TEXT_OPS, "tel",
           _schema("string")),
    _entry("url", lambda f: sa.String(f.max_length or 500), _checked(URL_RE, "web address (http:// or https://)"), _same, _show_plain, TEXT_OPS,
           "url", _schema("string")),
    _entry("autonumber", lambda f: sa.String(64), _readonly, _same, _show_plain, TEXT_OPS, "readonly", _schema("string")),
    _entry("formula", _formula_column, _readonly, _formula_json, _formula_show, ORDER_OPS, "readonly", _formula_schema),
    _entry("attachment", lambda f: sa.String(500), _file_ref, _same, _show_plain, ("isnull",), "file", _schema("string")),
    _entry("table", lambda f: None, _same, _same, _show_plain, (), "table", lambda f: {"type": "array", "items": {"type": "object"}}),
)}


def field_type(f: Field) -> FieldType:
    """The registry entry of a field."""
    return REGISTRY[f.type]


def stored_type(f: Field) -> str:
    """The type whose column, parsing and format the stored value follows (formulas: their result)."""
    return f.result or "decimal" if f.type == "formula" else f.type


def parse_value(f: Field, value: Any) -> Any:
    """Parse one input value (form text, JSON or spreadsheet cell) to the stored Python value."""
    return REGISTRY[f.type].parse(f, value)


def check_value(f: Field, value: Any) -> str | None:
    """The first rule a parsed, non-empty value breaks (min/max, length, pattern), or None."""
    kind = type(value)
    if kind is int or kind is Decimal:
        if f.min is not None and value < _bound(f.min):
            return f"must be at least {f.min:g}"
        if f.max is not None and value > _bound(f.max):
            return f"must be at most {f.max:g}"
        return None
    if isinstance(value, str) and f.type not in ("select", "multiselect"):
        limit = f.max_length or (255 if f.type == "text" else None)
        if limit and len(value) > limit:
            return f"must be at most {limit} characters"
        if f.min_length and len(value) < f.min_length:
            return f"must be at least {f.min_length} characters"
        if f.pattern and not re.fullmatch(f.pattern, value):
            return f"does not match the expected format {f.pattern}"
    return None


@cache
def _bound(limit: float) -> Decimal:
    """A min or max as a Decimal, compared as written (0.1 is 0.1, not the float nearest it)."""
    return Decimal(str(limit))


def show(f: Field, value: Any, locale: str = "en") -> str:
    """The value formatted for display in `locale`."""
    return REGISTRY[f.type].show(f, value, locale)


def to_json(f: Field, value: Any) -> Any:
    """The value as JSON."""
    return REGISTRY[f.type].to_json(value)
