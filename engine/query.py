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


def where_clause(table: sa.Table, module: Module, conditions: tuple[Condition, ...], q: str | None,
                 key: str | None = None) -> list[sa.ColumnElement[bool]]:
    """SQL conditions for the filters and quick search (bound parameters only). With `key` the parameters are named
    `where_values` names them, so that a statement built once runs again with another request's values; without,
    they are unique (several clauses may share one statement)."""
    bound = where_values(module, conditions, q, key or "w")
    names = iter(bound)

    def param(type_: Any, expanding: bool = False) -> sa.BindParameter[Any]:
        name = next(names)
        return sa.bindparam(name, bound[name], type_=type_, unique=key is None, expanding=expanding)

    out = [_sql(table.c[c.field], module.field(c.field), c, param) for c in conditions]
    if q:
        pattern = param(sa.String())
        out.append(sa.or_(*(sa.cast(table.c[n], sa.String).ilike(pattern, escape="\\") for n in _searched(module))))
    return out


def where_values(module: Module, conditions: tuple[Condition, ...], q: str | None, key: str) -> dict[str, Any]:
    """The values `where_clause` binds, by parameter name, in the order it binds them."""
    out: dict[str, Any] = {}
    for i, c in enumerate(conditions):
        f = module.field(c.field)
        if c.op == "isnull":
            continue
        if c.op == "contains" and f.type == "multiselect":
            out |= {f"{key}{i}_{j}": f"%,{v},%" for j, v in enumerate(_choices(c.value))}
        else:
            out[f"{key}{i}"] = _BOUND[c.op](c.value) if c.op in _BOUND else c.value
    if q:
        out[f"{key}q"] = "%" + _escape(q) + "%"
    return out


def where_shape(module: Module, conditions: tuple[Condition, ...], q: str | None) -> tuple[Any, ...]:
    """What the SQL of `where_clause` depends on beyond its bound values (a key for statements built once)."""
    return (*((c.field, c.op, c.value if c.op == "isnull" else len(_choices(c.value))
               if c.op == "contains" and module.field(c.field).type == "multiselect" else None) for c in conditions), q is not None)


def _choices(value: Any) -> list[str]:
    return [v for v in (value or "").split(",") if v]


def _searched(module: Module) -> list[str]:
    return [n for n in module.layout.list.search if module.field(n).stored] or [module.title_field]


Param = Callable[..., sa.BindParameter[Any]]


def _sql(col: sa.ColumnElement[Any], f: Field, c: Condition, param: Param) -> sa.ColumnElement[bool]:
    if c.op == "isnull":
        return col.is_(None) if c.value else col.is_not(None)
    if c.op == "contains" and f.type == "multiselect":
        wrapped = sa.literal(",", sa.String) + col + sa.literal(",", sa.String)
        return sa.and_(*(wrapped.like(param(sa.String())) for _ in _choices(c.value)))
    if c.op in ("contains", "startswith"):
        return col.ilike(param(sa.String()), escape="\\")
    if c.op == "in":
        return col.in_(param(col.type, expanding=True))
    return _COMPARE[c.op](col, param(col.type))


_BOUND: dict[str, Callable[[Any], Any]] = {"contains": lambda v: "%" + _escape(v) + "%", "startswith": lambda v: _escape(v) + "%",
                                           "in": list}
Compare = Callable[[sa.ColumnElement[Any], Any], sa.ColumnElement[bool]]
_COMPARE: dict[str, Compare] = {
    "eq": lambda col, v: col == v, "ne": lambda col, v: sa.or_(col != v, col.is_(None)),
    "gt": lambda col, v: col > v, "gte": lambda col, v: col >= v, "lt": lambda col, v: col < v, "lte": lambda col, v: col <= v,
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


def keyset_values(after: tuple[Any, int] | None) -> dict[str, Any]:
    """The values `keyset_segments` binds for the row `after`."""
    return {} if after is None else {"after_value": after[0], "after_id": after[1]} if after[0] is not None else {"after_id": after[1]}


def keyset_segments(col: sa.ColumnElement[Any], id_col: sa.ColumnElement[Any], descending: bool, nulls_large: bool,
                    after: tuple[Any, int] | None) -> list[tuple[sa.ColumnElement[bool], list[Any]]]:
    """Index-friendly (where, order_by) pieces that together return the rows after `after`, in order.

    NULLs sort where the database puts them naturally (PostgreSQL: largest, SQLite: smallest) so the
    (column, id) index serves every piece; each piece is one index range scan. The row `after` is bound as
    `keyset_values` names it.
    """
    nulls_first = nulls_large == descending
    values_part = [col.desc(), id_col.desc()] if descending else [col.asc(), id_col.asc()]
    nulls_part = [id_col.desc() if descending else id_col.asc()]
    if after is None:
        return [(sa.true(), values_part)]
    value, row_id = after
    after_id = sa.bindparam("after_id", row_id, type_=id_col.type)
    if value is None:
        id_after = id_col < after_id if descending else id_col > after_id
        pieces = [(sa.and_(col.is_(None), id_after), nulls_part)]
        return pieces + ([(col.is_not(None), values_part)] if nulls_first else [])
    left, right = sa.tuple_(col, id_col), sa.tuple_(sa.bindparam("after_value", value, type_=col.type), after_id)
    tuple_after = left < right if descending else left > right
    pieces = [(tuple_after, values_part)]
    return pieces + ([(col.is_(None), nulls_part)] if not nulls_first else [])
