"""Which stored values survive a column type change, and the rows that would not (for the migration planner)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

SAFE, CHECKED, DESTRUCTIVE = "safe", "checked", "destructive"
SHOWN_IDS = 10
INT64 = 2**63
INT_RE = re.compile(r"[+-]?\d{1,19}")
DECIMAL_RE = re.compile(r"[+-]?\d+(\.\d+)?")
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?")

Family = tuple[str, int | None, int | None]


def family(t: sa.types.TypeEngine[Any]) -> Family:
    """What a column type stores, without dialect naming: (family, length or precision, scale)."""
    if isinstance(t, sa.Boolean):
        return ("boolean", None, None)
    if isinstance(t, sa.Integer):
        return ("integer", None, None)
    if isinstance(t, sa.Float):
        return ("float", None, None)
    if isinstance(t, sa.Numeric):
        return ("decimal", t.precision, t.scale)
    if isinstance(t, sa.DateTime):
        return ("datetime", None, None)
    if isinstance(t, sa.Date):
        return ("date", None, None)
    if isinstance(t, sa.String):
        return ("text", t.length, None)
    return (str(t.__visit_name__), None, None)


def describe(t: sa.types.TypeEngine[Any]) -> str:
    """A type in words: text(50), decimal(18,2), integer…"""
    name, size, scale = family(t)
    if size is None:
        return name
    return f"{name}({size})" if scale is None else f"{name}({size},{scale})"


def _room(size: int | None, scale: int | None) -> tuple[float, float]:
    """(digits before the point, digits after) a decimal type holds; unbounded as infinity."""
    if size is None:
        return (float("inf"), float("inf"))
    return (size - (scale or 0), scale or 0)


def widens(old: sa.types.TypeEngine[Any], new: sa.types.TypeEngine[Any]) -> bool:
    """Whether every value of `old` fits `new` unchanged (a longer text, a wider decimal)."""
    (a, size_a, scale_a), (b, size_b, scale_b) = family(old), family(new)
    if a != b:
        return False
    if a == "text":
        return size_b is None or (size_a is not None and size_b >= size_a)
    if a == "decimal":
        before_a, after_a = _room(size_a, scale_a)
        before_b, after_b = _room(size_b, scale_b)
        return before_b >= before_a and after_b >= after_a
    return True


def _number(value: Any, source: str) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if source == "text" and isinstance(value, str) and DECIMAL_RE.fullmatch(value):
        return Decimal(value)
    return None


def _to_integer(source: str, value: Any) -> bool:
    if source == "text":
        return isinstance(value, str) and bool(INT_RE.fullmatch(value)) and -INT64 <= int(value) < INT64
    number = _number(value, source) if source in ("integer", "decimal") else None
    return number is not None and number == number.to_integral_value() and -INT64 <= number < INT64


def _to_decimal(target: Family) -> Callable[[str, Any], bool]:
    before, after = _room(target[1], target[2])

    def fits(source: str, value: Any) -> bool:
        number = _number(value, source) if source in ("text", "integer", "decimal") else None
        if number is None or not number.is_finite():
            return False
        whole = abs(int(number))
        decimals = max(0, -int(number.normalize().as_tuple().exponent))
        return decimals <= after and (len(str(whole)) if whole else 0) <= before
    return fits


def _iso(value: Any, pattern: re.Pattern[str], parse: Callable[[str], Any]) -> bool:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        return False
    try:
        parse(value)
    except ValueError:
        return False
    return True


def _to_date(source: str, value: Any) -> bool:
    return source == "text" and _iso(value, DATE_RE, dt.date.fromisoformat)


def _to_datetime(source: str, value: Any) -> bool:
    if source == "date":
        return True
    return source == "text" and _iso(value, DATETIME_RE, dt.datetime.fromisoformat)


def _never(source: str, value: Any) -> bool:
    return False


def converter(old: sa.types.TypeEngine[Any], new: sa.types.TypeEngine[Any]) -> Callable[[str, Any], bool] | None:
    """A test of one stored (non-null) value against the new type; None when only text length matters."""
    target = family(new)
    source = family(old)[0]
    if target[0] == "text":
        return None
    if target[0] == source and target[0] not in ("decimal",):
        return lambda _s, _v: True
    known: dict[str, Callable[[str, Any], bool]] = {
        "integer": _to_integer, "decimal": _to_decimal(target), "date": _to_date, "datetime": _to_datetime}
    return known.get(target[0]) or _never


def using(dialect: sa.Dialect, column: str, old: sa.types.TypeEngine[Any], new: sa.types.TypeEngine[Any]) -> str | None:
    """PostgreSQL's USING expression: a plain cast, or NULL when no value can convert (the check found none)."""
    if family(old)[0] == family(new)[0]:
        return None
    target = new.compile(dialect=dialect)
    if converter(old, new) is _never:
        return f"CAST(NULL AS {target})"
    return f"CAST({dialect.identifier_preparer.quote(column)} AS {target})"


def _message(where: str, count: int, ids: list[Any], what: str) -> str | None:
    if not count:
        return None
    shown = ", ".join(str(i) for i in ids) + (", …" if count > len(ids) else "")
    plural = count != 1
    return f"{where}: {count} row{'s' if plural else ''} {what.format(are='are' if plural else 'is')} (ids {shown})"


def _where(conn: sa.Connection, table: str, cond: Callable[[sa.ColumnClause[Any]], Any], column: str) -> tuple[int, list[Any]]:
    col: sa.ColumnClause[Any] = sa.column(column)
    key: sa.ColumnClause[Any] = sa.column("id")
    source = sa.table(table, key, col)
    count = conn.execute(sa.select(sa.func.count()).select_from(source).where(cond(col))).scalar_one()
    ids = conn.execute(sa.select(key).select_from(source).where(cond(col)).order_by(key).limit(SHOWN_IDS)).scalars().all()
    return int(count), list(ids)


def empty_rows(conn: sa.Connection, table: str, column: str) -> str | None:
    """Rows whose `column` is empty, when it becomes required."""
    count, ids = _where(conn, table, lambda c: c.is_(None), column)
    return _message(f"{table}.{column}", count, ids, "{are} empty and cannot become required")


def all_rows(conn: sa.Connection, table: str, column: str) -> str | None:
    """Every row, when a new required field without a default would leave them empty."""
    count, ids = _where(conn, table, lambda c: sa.true(), "id")
    return _message(f"{table}.{column}", count, ids, "would be empty in the new required field (give it a default)")


def misfits(conn: sa.Connection, table: str, column: str, old: sa.types.TypeEngine[Any], new: sa.types.TypeEngine[Any]) -> str | None:
    """Rows whose value would not become `new` unchanged (cannot convert, too long, too many digits)."""
    where, target = f"{table}.{column}", family(new)
    test = converter(old, new)
    if test is None:
        if target[1] is None:
            return None
        count, ids = _where(conn, table, lambda c: sa.func.length(sa.cast(c, sa.Text)) > target[1], column)
        return _message(where, count, ids, f"{{are}} longer than {target[1]} characters")
    source, count, ids = family(old)[0], 0, []
    key: sa.ColumnClause[Any] = sa.column("id")
    col: sa.ColumnClause[Any] = sa.column(column)
    query = sa.select(key, col).select_from(sa.table(table, key, col)).where(col.is_not(None)).order_by(key)
    rows = conn.execute(query.execution_options(yield_per=1000))
    for row_id, value in rows:
        if not test(source, value):
            count += 1
            if len(ids) < SHOWN_IDS:
                ids.append(row_id)
    return _message(where, count, ids, f"cannot become {describe(new)}")
