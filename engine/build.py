"""Turn validated, merged metadata documents into the frozen Spec."""

from __future__ import annotations

from typing import Any

from engine.expr import Expr, compile_expr
from engine.spec import (
    ACTIONS,
    Action,
    App,
    Field,
    Label,
    Layout,
    ListLayout,
    Module,
    NavGroup,
    Option,
    Panel,
    Permission,
    Related,
    Role,
    Rollup,
    Schedule,
    Section,
    Spec,
    Tab,
    Validation,
)

SYSTEM_LABELS = {
    "id": ("ID", "编号"), "created_at": ("Created", "创建时间"), "created_by": ("Created by", "创建人"),
    "updated_at": ("Updated", "更新时间"), "updated_by": ("Updated by", "更新人"), "owner": ("Owner", "负责人"),
    "version": ("Version", "版本"), "parent_id": ("Parent", "上级记录"), "idx": ("Row", "行号"),
}
SYSTEM_TYPES = {"id": "integer", "created_at": "datetime", "created_by": "user", "updated_at": "datetime",
                "updated_by": "user", "owner": "user", "version": "integer", "parent_id": "integer", "idx": "integer"}


def _label(names: tuple[str, str]) -> Label:
    return Label((("en", names[0]), ("zh", names[1])))


def system_field(name: str) -> Field:
    """The Field of one system column."""
    return Field(name=name, type=SYSTEM_TYPES[name], label=_label(SYSTEM_LABELS[name]), system=True,
                 index=name in ("owner", "updated_at", "created_at", "parent_id"))


def _expr(source: Any) -> Expr | None:
    return compile_expr(source) if isinstance(source, str) else None


def _option(raw: Any) -> Option:
    if isinstance(raw, dict):
        return Option(str(raw["value"]), Label.of(raw.get("label"), str(raw["value"])), raw.get("color"), raw.get("probability"))
    return Option(str(raw), Label.of(None, str(raw)))


def build_field(raw: dict[str, Any]) -> Field:
    """One Field from its metadata."""
    simple = {k: raw[k] for k in ("required", "unique", "index", "default", "min", "max", "max_length", "min_length",
                                  "pattern", "precision", "scale", "module", "format", "currency", "result",
                                  "renamed_from", "read_only", "hidden", "search", "accept", "fetch", "on_change_of") if k in raw}
    return Field(
        name=raw["name"], type=raw["type"], label=Label.of(raw.get("label"), raw["name"]),
        options=tuple(_option(o) for o in raw.get("options", ())), expr=_expr(raw.get("expr")),
        visible_if=_expr(raw.get("visible_if")), required_if=_expr(raw.get("required_if")),
        read_only_if=_expr(raw.get("read_only_if")), help=Label.of(raw["help"]) if "help" in raw else None,
        rollup=_rollup(raw["rollup"]) if "rollup" in raw else None, **simple,
    )


def filter_pairs(raw: dict[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """A metadata filter map as list query parameters."""
    return tuple((str(k), _text(v)) for k, v in (raw or {}).items())


def _text(value: Any) -> str:
    """A filter value as the list query parameter reads it (YAML booleans as true/false)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _rollup(raw: dict[str, Any]) -> Rollup:
    return Rollup(raw["module"], raw["link"], raw.get("measure", "count"), raw.get("field"), filter_pairs(raw.get("filter")))


def _fields(raw: dict[str, Any]) -> tuple[Field, ...]:
    own = [build_field(f) for f in raw.get("fields", [])]
    if raw.get("naming"):
        own.insert(0, Field(name="code", type="autonumber", label=_label(("Code", "编码")), format=raw["naming"],
                            unique=True, read_only=True))
    system = ["id", *(("parent_id", "idx") if raw.get("child") else ()), "owner", "created_at", "created_by",
              "updated_at", "updated_by", "version"]
    return tuple(own) + tuple(system_field(n) for n in system)


def _form(raw: list[dict[str, Any]] | None, fields: tuple[Field, ...]) -> tuple[Tab, ...]:
    if not raw:
        names = tuple(f.name for f in fields if not f.system and not f.hidden)
        return (Tab(_label(("Details", "详情")), (Section(names, None, 2),)),)
    return tuple(
        Tab(Label.of(t["tab"]), tuple(Section(tuple(s["fields"]), Label.of(s["label"]) if "label" in s else None,
                                              s.get("columns", 1), _expr(s.get("visible_if")))
                                      for s in t["sections"]))
        for t in raw)


def _list(raw: dict[str, Any], fields: tuple[Field, ...], title: str) -> ListLayout:
    visible = [f.name for f in fields if not f.system and f.stored and not f.hidden]
    columns = tuple(raw.get("columns") or ([title] if title != "id" else []) + [n for n in visible if n != title][:5])
    search = tuple(raw.get("search", ()) or ((title,) if title != "id" else ()))
    return ListLayout(columns=columns, filters=tuple(raw.get("filters", ())), search=search,
                      sort=raw.get("sort", "-id"), kanban=raw.get("kanban"), page_size=raw.get("page_size", 25))


def _permission(raw: dict[str, Any]) -> Permission:
    scopes = []
    for action in ACTIONS:
        if action in raw:
            value = raw[action]
            scopes.append((action, "all" if value is True else "none" if value is False else str(value)))
    return Permission(tuple(scopes), tuple(sorted(raw.get("fields", {}).items())), tuple(raw.get("transitions", ())),
                      bool(raw.get("unowned", False)))


def _sets(raw: dict[str, str]) -> tuple[tuple[str, Expr], ...]:
    return tuple((k, compile_expr(v)) for k, v in raw.items())


def _action(raw: dict[str, Any]) -> Action:
    log = raw.get("log") or {}
    return Action(
        name=raw["name"], kind=raw["kind"], label=Label.of(raw.get("label"), raw["name"]), set=_sets(raw.get("set", {})),
        condition=_expr(raw.get("condition")), permission=raw.get("permission", "write"),
        log_module=log.get("module"), log_set=_sets(log.get("set", {})),
        create=tuple((c["module"], _sets(c["set"])) for c in raw.get("create", ())),
        confirm=Label.of(raw["confirm"]) if "confirm" in raw else None, scheduled=bool(raw.get("scheduled")),
    )


def build_module(raw: dict[str, Any]) -> Module:
    """One Module from its (validated) metadata."""
    fields = _fields(raw)
    title = raw.get("title_field") or next((f.name for f in fields if f.type == "text"), "id")
    layout = raw.get("layout", {})
    return Module(
        name=raw["name"], label=Label.of(raw.get("label"), raw["name"]),
        plural=Label.of(raw.get("plural") or raw.get("label"), raw["name"]), fields=fields,
        layout=Layout(_form(layout.get("form"), fields), _list(layout.get("list", {}), fields, title),
                      tuple(Related(r["module"], r["field"], Label.of(r["label"]) if "label" in r else None,
                                    tuple(r.get("columns", ()))) for r in layout.get("related", ()))),
        title_field=title, child=bool(raw.get("child")), tree=bool(raw.get("tree")),
        permissions=tuple((role, _permission(rule)) for role, rule in raw.get("permissions", {}).items()),
        validations=tuple(Validation(compile_expr(v["expr"]), Label.of(v["message"]), v.get("field"))
                          for v in raw.get("validations", ())),
        actions=tuple(_action(a) for a in raw.get("actions", ())),
        schedules=tuple(Schedule(s["name"], Label.of(s.get("label"), s["name"]), s["action"], filter_pairs(s.get("filter")))
                        for s in raw.get("schedules", ())),
        by_name={f.name: f for f in fields},
    )


def build_app(raw: dict[str, Any]) -> App:
    """The App manifest from app.yaml."""
    return App(
        name=raw["name"], label=Label.of(raw.get("label"), raw["name"]), version=str(raw.get("version", "0")),
        locales=tuple(raw.get("locales", ("en", "zh"))), default_locale=raw.get("default_locale", "en"),
        currency=raw.get("currency", "CNY"),
        roles=tuple(Role(r["name"], Label.of(r.get("label"), r["name"]), bool(r.get("admin"))) for r in raw.get("roles", ())),
        navigation=tuple(NavGroup(g["group"], Label.of(g.get("label"), g["group"]), tuple(g["items"]))
                         for g in raw.get("navigation", ())),
        panels=tuple(Panel(p["module"], Label.of(p.get("label"), p["module"]),
                           tuple((k, str(v)) for k, v in p.get("filter", {}).items()), p.get("group_by"),
                           p.get("sort"), p.get("limit", 10)) for p in raw.get("home", {}).get("panels", ())),
        departments=raw.get("departments"),
    )


def build_spec(bundle: Any) -> Spec:
    """The Spec of a merged, validated bundle."""
    modules = {name: build_module(doc.data) for name, doc in sorted(bundle.docs["modules"].items())}
    return Spec(
        app=build_app(bundle.app.data), modules=modules,
        workflows={n: d.data for n, d in bundle.docs["workflows"].items()},
        reports={n: d.data for n, d in bundle.docs["reports"].items()},
    )
