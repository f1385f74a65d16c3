"""List queries: URL parameters → a typed ListQuery → one SQL statement with keyset paging."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from engine.errors import Invalid
from engine.fieldtypes import REGISTRY, ParseError, parse_value, stored_type, to_json
from engine.spec import Field, Module

OPERATORS = ("eq", "ne", "in", "gt", "gte", "lt", "lte", "contains", "startswith", "isnull")
RESERVED_PARAMS = frozenset({"q", "sort", "limit", "cursor", "page", "fields", "count", "format", "view", "_", "csrf_token", "columns", "mode"})
MAX_LIMIT = 500
MAX_IN = 200


@dataclass(frozen=True)
class Condition:
    """One filter: field, operator and parsed value."""

    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class ListQuery:
    """A parsed list request."""

    conditions: tuple[Condition, ...] = ()
    q: str | None = None
    sort: str = "-id"
    limit: int = 25
    cursor: str | None = None
    page: int | None = None
    fields: tuple[str, ...] = ()
    count: bool = False
    params: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @property
    def sort_field(self) -> str:
        """The sorted field's name."""
        return self.sort.lstrip("-")

    @property
    def descending(self) -> bool:
        """Whether the sort is descending."""
        return self.sort.startswith("-")


def _filter_value(f: Field, op: str, raw: str) -> Any:
    if op == "isnull":
        return raw.strip().lower() in ("1", "true", "yes", "")
    if op in ("contains", "startswith"):
        if f.type == "multiselect":
            return parse_value(f, raw)
        return raw
    if op == "in":
        items = [i for i in raw.split(",") if i.strip()]
        if len(items) > MAX_IN:
            raise ParseError(f"at most {MAX_IN} values")
        return tuple(_scalar(f, i) for i in items)
    return _scalar(f, raw)


def _scalar(f: Field, raw: str) -> Any:
    if f.type == "formula":
        return REGISTRY[stored_type(f)].parse(f, raw)
    if f.type in ("autonumber",):
        return raw.strip()
    return parse_value(f, raw)


def parse_list_query(module: Module, params: Mapping[str, str] | list[tuple[str, str]], readable: set[str],
                     default_limit: int | None = None) -> ListQuery:
    """Parse query parameters; unknown or unreadable fields and bad values are a 422 naming them."""
    items = list(params.items()) if isinstance(params, Mapping) else list(params)
    errors: dict[str, str] = {}
    conditions = [c for c in (_condition(module, k, v, readable, errors) for k, v in items if k not in RESERVED_PARAMS and v != "") if c]
    got = dict(items)
    sort = got.get("sort") or module.layout.list.sort
    if sort.lstrip("-") not in readable or not module.by_name[sort.lstrip("-")].stored:
        errors["sort"] = f"cannot sort on '{sort.lstrip('-')}'"
    limit = _int_param(got.get("limit"), default_limit or module.layout.list.page_size, 1, MAX_LIMIT, "limit", errors)
    page = _int_param(got.get("page"), None, 1, 1_000_000, "page", errors) if got.get("page") else None
    wanted = tuple(n for n in (got.get("fields") or "").split(",") if n)
    for name in wanted:
        if name not in readable:
            errors["fields"] = f"unknown or unreadable field '{name}'"
    if errors:
        raise Invalid("invalid list parameters", errors)
    return ListQuery(tuple(conditions), (got.get("q") or "").strip() or None, sort, limit, got.get("cursor") or None,
                     page, wanted, got.get("count", "").lower() in ("1", "true", "yes"), tuple(items))


def _int_param(raw: str | None, default: int | None, low: int, high: int, name: str, errors: dict[str, str]) -> Any:
    if raw in (None, ""):
        return default
    try:
        value = int(str(raw))
    except ValueError:
        errors[name] = "expected a whole number"
        return default
    if not low <= value <= high:
        errors[name] = f"must be between {low} and {high}"
    return max(low, min(high, value))


def _condition(module: Module, key: str, raw: str, readable: set[str], errors: dict[str, str]) -> Condition | None:
    name, _, op = key.partition("__")
    op = op or "eq"
    f = module.by_name.get(name)
    if f is None or name not in readable or not f.stored:
        errors[key] = f"unknown field '{name}'"
        return None
    ops = REGISTRY[f.type].operators if f.type != "formula" else REGISTRY[stored_type(f)].operators
    if f.name == "id":
        ops = ("eq", "in", "gt", "gte", "lt", "lte")
    if op not in ops:
        errors[key] = f"operator '{op}' is not available for {f.type} fields (use: {', '.join(ops)})"
        return None
    try:
        return Condition(name, op, _filter_value(f, op, raw))
    except ParseError as exc:
        errors[key] = str(exc)
        return None


def where_clause(table: sa.Table, module: Module, conditions: tuple[Condition, ...], q: str | None) -> list[sa.ColumnElement[bool]]:
    """SQL conditions for the filters and quick search (bound parameters only)."""
    out = [_sql(table.c[c.field], module.field(c.field), c) for c in conditions]
    if q:
        names = [n for n in module.layout.list.search if module.field(n).stored] or [module.title_field]
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        out.append(sa.or_(*(sa.cast(table.c[n], sa.String).ilike(pattern, escape="\\") for n in names)))
    return out


def _sql(col: sa.ColumnElement[Any], f: Field, c: Condition) -> sa.ColumnElement[bool]:
    if c.op == "isnull":
        return col.is_(None) if c.value else col.is_not(None)
    if c.op == "contains" and f.type == "multiselect":
        wrapped = sa.literal(",", sa.String) + col + sa.literal(",", sa.String)
        return sa.and_(*(wrapped.like(f"%,{v},%") for v in (c.value or "").split(",") if v))
    return _COMPARE[c.op](col, c.value)


Compare = Callable[[sa.ColumnElement[Any], Any], sa.ColumnElement[bool]]
_COMPARE: dict[str, Compare] = {
    "eq": lambda col, v: col == v, "ne": lambda col, v: sa.or_(col != v, col.is_(None)), "in": lambda col, v: col.in_(v),
    "gt": lambda col, v: col > v, "gte": lambda col, v: col >= v, "lt": lambda col, v: col < v, "lte": lambda col, v: col <= v,
    "contains": lambda col, v: col.ilike("%" + _escape(v) + "%", escape="\\"),
    "startswith": lambda col, v: col.ilike(_escape(v) + "%", escape="\\"),
}


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def encode_cursor(f: Field, value: Any, row_id: int) -> str:
    """An opaque cursor for the row after which the next page starts."""
    raw = json.dumps([to_json(f, value), row_id], default=str)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(f: Field, cursor: str) -> tuple[Any, int]:
    """The (sort value, id) of a cursor; a malformed cursor is a 422."""
    try:
        value, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        parsed = None if value is None else (_scalar(f, str(value)) if f.name != "id" else _row_id(value))
        return parsed, _row_id(row_id)
    except (ValueError, TypeError, ParseError, json.JSONDecodeError):
        raise Invalid("invalid cursor", {"cursor": "malformed cursor; start again from the first page"}) from None


def _row_id(value: Any) -> int:
    row_id = int(value)
    if not 0 < row_id < 2**63:
        raise ValueError("record id out of range")
    return row_id


def keyset_segments(col: sa.ColumnElement[Any], id_col: sa.ColumnElement[Any], descending: bool, nulls_large: bool,
                    after: tuple[Any, int] | None) -> list[tuple[sa.ColumnElement[bool], list[Any]]]:
    """Index-friendly (where, order_by) pieces that together return the rows after `after`, in order.

    NULLs sort where the database puts them naturally (PostgreSQL: largest, SQLite: smallest) so the
    (column, id) index serves every piece; each piece is one index range scan.
    """
    nulls_first = nulls_large == descending
    values_part = [col.desc(), id_col.desc()] if descending else [col.asc(), id_col.asc()]
    nulls_part = [id_col.desc() if descending else id_col.asc()]
    if after is None:
        return [(sa.true(), values_part)]
    value, row_id = after
    if value is None:
        id_after = id_col < row_id if descending else id_col > row_id
        pieces = [(sa.and_(col.is_(None), id_after), nulls_part)]
        return pieces + ([(col.is_not(None), values_part)] if nulls_first else [])
    left, right = sa.tuple_(col, id_col), sa.tuple_(sa.literal(value, col.type), sa.literal(row_id, id_col.type))
    tuple_after = left < right if descending else left > right
    pieces = [(tuple_after, values_part)]
    return pieces + ([(col.is_(None), nulls_part)] if not nulls_first else [])
