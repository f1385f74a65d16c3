"""Mapping sheet columns to fields: by label (any locale) or field name, child columns as `table.field`."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.access import Access
from engine.errors import Invalid
from engine.spec import Field, Module, Spec

SEPARATORS = (".", " - ", "/", "：", ":", " ")


@dataclass(frozen=True)
class Target:
    """A field a column can fill: a field of the module, or of one of its child tables."""

    name: str
    field: Field
    table: Field | None = None

    def label(self, locale: str) -> str:
        """The column's heading in `locale` ("Lines.Product" for child columns)."""
        own = self.field.label(locale)
        return f"{self.table.label(locale)}.{own}" if self.table else own

    @property
    def computed(self) -> bool:
        """Whether nobody ever writes it (system, formula, autonumber): such columns are ignored."""
        return not self.field.writable and self.field.name not in ("owner", "id")


def normalize(text: Any) -> str:
    """A header as compared: NFKC, case-folded, spaces collapsed, a trailing required mark removed."""
    raw = unicodedata.normalize("NFKC", str(text or "")).casefold()
    return " ".join(raw.split()).rstrip("* ").strip()


def targets(spec: Spec, module: Module) -> dict[str, Target]:
    """Every field a sheet column may name, by target name."""
    out = {f.name: Target(f.name, f) for f in module.fields if f.stored and f.name not in ("parent_id", "idx")}
    for table in module.tables:
        child = spec.module(table.module or "")
        for f in child.fields:
            if f.stored and not f.system:
                out[f"{table.name}.{f.name}"] = Target(f"{table.name}.{f.name}", f, table)
    return out


def aliases(found: dict[str, Target]) -> dict[str, str]:
    """Normalized header text → target name: field names and labels in every locale (first wins)."""
    out: dict[str, str] = {}
    for name in found:
        out.setdefault(normalize(name), name)
    for name, t in found.items():
        for text in _labels(t):
            out.setdefault(normalize(text), name)
    return out


def _labels(t: Target) -> list[str]:
    own = [text for _, text in t.field.label.texts]
    if t.table is None:
        return own
    tables = [text for _, text in t.table.label.texts] + [t.table.name]
    return [f"{a}{sep}{b}" for a in tables for b in [*own, t.field.name] for sep in SEPARATORS]


def propose(headers: Sequence[Any], found: dict[str, Target], names_row: Sequence[Any] | None = None) -> list[str | None]:
    """The target of each column (None: not imported), from a names row when the template has one."""
    lookup = aliases(found)
    out: list[str | None] = []
    for i, header in enumerate(headers):
        exact = str(names_row[i]).strip() if names_row is not None and i < len(names_row) and names_row[i] else ""
        name = exact if exact in found else lookup.get(normalize(header))
        out.append(name if name not in out else None)
    return out


def settle(mapping: Sequence[str | None], found: dict[str, Target], key: str | None) -> list[str | None]:
    """Drop computed and system columns (export round trips carry them), except the key."""
    return [m if m is None or m == key or not (found[m].computed or m == "id") else None for m in mapping]


def score(cells: Sequence[Any], found: dict[str, Target]) -> int:
    """How many cells of a row name a field (to find the header row below any title rows)."""
    lookup = aliases(found)
    return sum(1 for c in cells if isinstance(c, str) and normalize(c) in lookup)


def is_names_row(cells: Sequence[Any], found: dict[str, Target]) -> bool:
    """Whether a row holds exact field names only (the template's hidden second header row)."""
    given = [str(c).strip() for c in cells if c not in (None, "")]
    return bool(given) and all(c in found for c in given)


def check(spec: Spec, module: Module, access: Access, headers: Sequence[Any], mapping: Sequence[str | None],
          found: dict[str, Target], key: str | None) -> None:
    """Refuse unknown, repeated, computed or not-writable targets, naming the column and how to fix it."""
    errors: dict[str, str] = {}
    seen: set[str] = set()
    for header, name in zip(headers, mapping, strict=False):
        if name is None:
            continue
        column = str(header or name)
        problem = _problem(spec, module, access, found.get(name), key)
        if name in seen:
            problem = f"mapped twice to '{name}'"
        seen.add(name)
        if problem:
            errors[column] = problem
    if errors:
        raise Invalid("some columns cannot be imported: map them to another field or to nothing", errors)


def _problem(spec: Spec, module: Module, access: Access, target: Target | None, key: str | None) -> str | None:
    if target is None:
        return "unknown field"
    if target.name == key and target.table is None:
        return None if target.name in access.readable(module) else "you may not read this field"
    if target.computed or target.name == "id":
        return "computed or system field: it cannot be imported"
    if target.table is None:
        return None if target.name in access.writable(module) else "you may not write this field"
    child = spec.module(target.table.module or "")
    if target.table.name not in access.writable(module) or target.field.name not in access.writable(child):
        return "you may not write this field"
    return None


def default_key(module: Module, mapping: Sequence[str | None]) -> str | None:
    """The key to match existing records: id, then a unique field, then the title field, when mapped."""
    mapped = [m for m in mapping if m and "." not in m]
    for name in mapped:
        if name == "id":
            return name
    for name in mapped:
        if module.field(name).unique:
            return name
    return module.title_field if module.title_field in mapped else None
