"""The parsed metadata: frozen dataclasses that the rest of the engine reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from engine.expr import Expr

SYSTEM_FIELDS = ("id", "created_at", "created_by", "updated_at", "updated_by", "owner", "version")
CHILD_SYSTEM_FIELDS = ("parent_id", "idx")
SCOPES = ("none", "self", "department", "department_tree", "all")
ACTIONS = ("read", "create", "write", "delete", "share", "assign", "import", "export", "print", "report")


@dataclass(frozen=True)
class Label:
    """A text per locale; calling it with a locale picks the best one."""

    texts: tuple[tuple[str, str], ...]

    def __call__(self, locale: str = "en") -> str:
        english = ""
        for key, text in self.texts:  # one or two pairs: a loop, not a dict per call (a list page asks ~100 labels)
            if key == locale and text:
                return text
            if key == "en":
                english = text
        return english or (self.texts[0][1] if self.texts else "")

    def has(self, locale: str) -> bool:
        """Whether a text for `locale` is given."""
        return any(k == locale and v for k, v in self.texts)

    @staticmethod
    def of(value: Any, fallback: str = "") -> Label:
        """Build a Label from metadata (a string or a locale map)."""
        if isinstance(value, Mapping):
            return Label(tuple(sorted((str(k), str(v)) for k, v in value.items())))
        if value:
            return Label((("*", str(value)),))
        return Label((("*", fallback.replace("_", " ").capitalize()),))


@dataclass(frozen=True)
class Option:
    """One choice of a select field."""

    value: str
    label: Label
    color: str | None = None
    probability: float | None = None


@dataclass(frozen=True)
class Rollup:
    """A formula summarising linked records: `measure` of `field` over the `module` rows whose `link` points here,
    counting only rows that match `filter` (list-filter syntax: field__op → value)."""

    module: str
    link: str
    measure: str
    field: str | None = None
    filter: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Field:
    """One field of a module."""

    name: str
    type: str
    label: Label
    required: bool = False
    unique: bool = False
    index: bool = False
    default: Any = None
    min: float | None = None
    max: float | None = None
    max_length: int | None = None
    min_length: int | None = None
    pattern: str | None = None
    precision: int | None = None
    scale: int | None = None
    options: tuple[Option, ...] = ()
    module: str | None = None
    expr: Expr | None = None
    format: str | None = None
    currency: str | None = None
    result: str | None = None
    renamed_from: str | None = None
    read_only: bool = False
    hidden: bool = False
    visible_if: Expr | None = None
    required_if: Expr | None = None
    read_only_if: Expr | None = None
    search: bool = False
    accept: str | None = None
    fetch: str | None = None
    help: Label | None = None
    system: bool = False
    rollup: Rollup | None = None
    on_change_of: str | None = None

    @property
    def stored(self) -> bool:
        """Whether the field has a column of its own (child tables do not)."""
        return self.type != "table"

    @property
    def writable(self) -> bool:
        """Whether users may ever set it through forms, the API or import."""
        return not (self.system or self.read_only or self.type in ("formula", "autonumber"))

    def option(self, value: Any) -> Option | None:
        """The option holding `value`, if any."""
        return next((o for o in self.options if o.value == value), None)


@dataclass(frozen=True)
class Section:
    """A block of fields in a form."""

    fields: tuple[str, ...]
    label: Label | None = None
    columns: int = 1
    visible_if: Expr | None = None


@dataclass(frozen=True)
class Tab:
    """A tab of the record form."""

    label: Label
    sections: tuple[Section, ...]


@dataclass(frozen=True)
class Related:
    """A related list on the record page."""

    module: str
    field: str
    label: Label | None = None
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class ListLayout:
    """The list screen."""

    columns: tuple[str, ...]
    filters: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    sort: str = "-id"
    kanban: str | None = None
    page_size: int = 25


@dataclass(frozen=True)
class Layout:
    """How a module's screens are laid out."""

    form: tuple[Tab, ...]
    list: ListLayout
    related: tuple[Related, ...] = ()


@dataclass(frozen=True)
class Permission:
    """What one role may do in one module."""

    scopes: tuple[tuple[str, str], ...]
    fields: tuple[tuple[str, str], ...] = ()
    transitions: tuple[str, ...] = ()
    unowned: bool = False

    def scope(self, action: str) -> str:
        """The data scope of `action` ('none' when not granted)."""
        return dict(self.scopes).get(action, "none")

    def field_access(self, name: str) -> str:
        """'none', 'read' or 'write' for one field (write unless restricted)."""
        return dict(self.fields).get(name, "write")


@dataclass(frozen=True)
class Validation:
    """A record rule checked on save."""

    expr: Expr
    message: Label
    field: str | None = None


@dataclass(frozen=True)
class Action:
    """A record action (claim, release, merge, convert)."""

    name: str
    kind: str
    label: Label
    set: tuple[tuple[str, Expr], ...] = ()
    condition: Expr | None = None
    permission: str = "write"
    log_module: str | None = None
    log_set: tuple[tuple[str, Expr], ...] = ()
    create: tuple[tuple[str, tuple[tuple[str, Expr], ...]], ...] = ()
    confirm: Label | None = None
    scheduled: bool = False


@dataclass(frozen=True)
class Schedule:
    """A record action the engine takes by itself once a day on every record matching `filter`."""

    name: str
    label: Label
    action: str
    filter: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Module:
    """One module: its fields, layout, permissions and actions."""

    name: str
    label: Label
    plural: Label
    fields: tuple[Field, ...]
    layout: Layout
    title_field: str = "id"
    child: bool = False
    tree: bool = False
    permissions: tuple[tuple[str, Permission], ...] = ()
    validations: tuple[Validation, ...] = ()
    actions: tuple[Action, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    by_name: Mapping[str, Field] = field(default_factory=dict, compare=False, repr=False)

    def field(self, name: str) -> Field:
        """The field called `name` (KeyError when unknown)."""
        return self.by_name[name]

    def permission(self, role: str) -> Permission | None:
        """The role's rule in this module, if it has one."""
        return dict(self.permissions).get(role)

    @cached_property
    def stored_fields(self) -> tuple[Field, ...]:
        """Fields with a column."""
        return tuple(f for f in self.fields if f.stored)

    @cached_property
    def tables(self) -> tuple[Field, ...]:
        """Child-table fields."""
        return tuple(f for f in self.fields if f.type == "table")

    @cached_property
    def formula_fields(self) -> tuple[Field, ...]:
        """Formula fields with their expressions, in declaration order."""
        return tuple(f for f in self.fields if f.type == "formula" and f.expr is not None)

    @cached_property
    def conditional_fields(self) -> tuple[Field, ...]:
        """Fields whose visibility, requiredness or read-only state depends on the record's values."""
        return tuple(f for f in self.fields if f.visible_if or f.required_if or f.read_only_if)

    @cached_property
    def defaulted_fields(self) -> tuple[Field, ...]:
        """Fields a new record takes a default for."""
        return tuple(f for f in self.fields if f.default is not None and f.writable)

    @cached_property
    def given_fields(self) -> tuple[Field, ...]:
        """Fields whose values users give (the record rules check them): not system, computed, hidden or child tables."""
        return tuple(f for f in self.fields if not (f.system or f.type in ("formula", "autonumber", "table") or f.hidden))

    def action(self, name: str) -> Action | None:
        """The record action called `name`, if any."""
        return next((a for a in self.actions if a.name == name), None)


@dataclass(frozen=True)
class Role:
    """A role of the application."""

    name: str
    label: Label
    admin: bool = False


@dataclass(frozen=True)
class NavGroup:
    """One menu group."""

    group: str
    label: Label
    items: tuple[str, ...]


@dataclass(frozen=True)
class Panel:
    """A home-page panel: a filtered list of one module."""

    module: str
    label: Label
    filter: tuple[tuple[str, str], ...] = ()
    group_by: str | None = None
    sort: str | None = None
    limit: int = 10


@dataclass(frozen=True)
class App:
    """The bundle manifest."""

    name: str
    label: Label
    version: str = "0"
    locales: tuple[str, ...] = ("en", "zh")
    default_locale: str = "en"
    currency: str = "CNY"
    roles: tuple[Role, ...] = ()
    navigation: tuple[NavGroup, ...] = ()
    panels: tuple[Panel, ...] = ()
    departments: str | None = None


@dataclass(frozen=True)
class Spec:
    """The whole effective metadata, parsed once."""

    app: App
    modules: Mapping[str, Module]
    workflows: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    reports: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def module(self, name: str) -> Module:
        """The module called `name` (KeyError when unknown)."""
        return self.modules[name]

    @cached_property
    def rollup_targets(self) -> Mapping[str, tuple[Module, ...]]:
        """Source module name → the modules holding a rollup over its records (a write looks them up every time)."""
        found: dict[str, list[Module]] = {}
        for m in self.modules.values():
            for source in dict.fromkeys(f.rollup.module for f in m.fields if f.rollup):
                found.setdefault(source, []).append(m)
        return {k: tuple(v) for k, v in found.items()}

    def links_to(self, target: str) -> tuple[tuple[Module, Field], ...]:
        """Every (module, link field) pointing at `target`."""
        return tuple((m, f) for m in self.modules.values() for f in m.fields
                     if f.type == "link" and f.module == target)
