"""Records ⇄ JSON through the field registry: one converter per field, built once per module and runtime."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import Invalid
from engine.fieldtypes import REGISTRY, stored_type
from engine.runtime import Runtime
from engine.spec import Field, Module, Spec

Convert = Callable[[Any], Any]
Plan = list[tuple[str, Convert]]
TITLE_SUFFIX = "__title"


def utc_iso(value: Any) -> Any:
    """A stored (naive, UTC) datetime as RFC 3339 text with its zone, so clients need not guess it."""
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.isoformat() + "Z"
    return REGISTRY["formula"].to_json(value)  # None, dates and aware datetimes as the registry writes them


def converter(f: Field) -> Convert:
    """The JSON converter of one field: the registry's, with datetimes marked as UTC."""
    return utc_iso if stored_type(f) == "datetime" else REGISTRY[f.type].to_json


@dataclass(frozen=True)
class Serializer:
    """How one module's records leave the server as JSON."""

    module: Module
    convert: Mapping[str, Convert]
    children: Mapping[str, Serializer] = field(default_factory=dict)

    @property
    def links(self) -> tuple[str, ...]:
        """Fields holding a record or user id (they may get a `<field>__title` companion)."""
        return tuple(f.name for f in self.module.fields if f.type in ("link", "user"))

    def plan(self, names: Iterable[str]) -> Plan:
        """(name, converter) pairs for the stored fields among `names`, in the given order."""
        return [(n, self.convert[n]) for n in names if n in self.convert]

    @property
    def row_names(self) -> list[str]:
        """What a child row answers: its id and its own fields (not parent_id, idx or the stamps)."""
        return ["id", *(f.name for f in self.module.fields if not f.system and f.stored)]

    def dump(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """One record (as the records service returns it, readable fields only) as JSON, child rows included."""
        out = {n: fn(record[n]) for n, fn in self.plan(record)}
        for name, child in self.children.items():
            rows = record.get(name)
            if rows is not None:
                out[name] = child.dump_rows(rows, [n for n in child.row_names if not rows or n in rows[0]])
        return out

    def dump_rows(self, rows: Iterable[Mapping[str, Any]], names: Iterable[str]) -> list[dict[str, Any]]:
        """Many rows of the same columns: one dict comprehension per row."""
        plan = self.plan(names)
        return [{n: fn(r[n]) for n, fn in plan} for r in rows]


def build(spec: Spec, module: Module) -> Serializer:
    """The serializer of `module` (and of its child tables)."""
    convert = {f.name: converter(f) for f in module.fields if f.stored}
    children = {f.name: build(spec, spec.module(f.module or "")) for f in module.tables}
    return Serializer(module, convert, children)


@dataclass
class Serializers:
    """Serializers of one runtime, built on first use (a new runtime gets a new set)."""

    rt: Runtime
    built: dict[str, Serializer] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Serializer:
        found = self.built.get(name)
        if found is None:
            found = self.built[name] = build(self.rt.spec, self.rt.spec.module(name))
        return found


def serializers(state: Any, rt: Runtime) -> Serializers:
    """The serializers of `rt`, kept on `state` (app.state) and replaced when the runtime is."""
    cached: Serializers | None = getattr(state, "loom_serializers", None)
    if cached is None or cached.rt is not rt:
        cached = Serializers(rt)
        state.loom_serializers = cached
    return cached


def add_titles(items: list[dict[str, Any]], titles: Mapping[str, Mapping[int, str]], names: Iterable[str]) -> None:
    """Give each link value in `items` its `<field>__title` (None when absent or out of the reader's scope)."""
    for name in names:
        found = titles.get(name, {})
        key = name + TITLE_SUFFIX
        for item in items:
            item[key] = found.get(item[name]) if item.get(name) is not None else None


def record_body(data: Any) -> dict[str, Any]:
    """The JSON body of a create or update: an object, or a 422 saying what to send."""
    if not isinstance(data, dict):
        raise Invalid("send the record as a JSON object (Content-Type: application/json)")
    return dict(data)


def take_version(body: dict[str, Any]) -> int:
    """Remove and return the `version` an update was based on; a 422 when missing or not a whole number."""
    version = body.pop("version", None)
    if isinstance(version, str):
        version = int(version) if version.isascii() and version.strip().isdigit() and len(version) < 20 else None
    elif isinstance(version, float) and version.is_integer():
        version = int(version)  # JSON has one number type: 3.0 is the version 3
    if not isinstance(version, int) or isinstance(version, bool) or not 0 < version < 2**63:
        raise Invalid("version is required", {"version": "send the version you read (a whole number)"})
    return version
