"""A generated bundle of 300 modules (deterministic), for the metadata load, validation and table build at scale."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

MODULES = 300
KINDS = ("text", "select", "integer", "currency", "date", "boolean", "email", "decimal", "textarea", "phone", "percent", "datetime")


def _field(m: int, i: int) -> dict[str, object]:
    kind = KINDS[(m + i) % len(KINDS)]
    field: dict[str, object] = {"name": f"f{i:02d}", "type": kind, "label": {"en": f"Field {i}", "zh": f"字段 {i}"}}
    if kind == "select":
        field["options"] = ["new", "open", "won", "lost"]
    if kind in ("integer", "currency", "decimal"):
        field["min"] = 0
    return field


def module(m: int) -> dict[str, object]:
    """Module number m: a title, 14 typed fields, a link to the module before it, layouts and two roles' rules."""
    fields = [{"name": "title", "type": "text", "label": {"en": "Title", "zh": "标题"}, "required": True, "max_length": 140, "search": True},
              *(_field(m, i) for i in range(1, 15))]
    if m > 1:
        fields.append({"name": "parent", "type": "link", "module": f"m{m - 1:03d}", "label": {"en": "Parent", "zh": "上级"}})
    names = [str(f["name"]) for f in fields]
    return {
        "name": f"m{m:03d}", "label": {"en": f"Module {m}", "zh": f"模块 {m}"}, "title_field": "title", "fields": fields,
        "layout": {"form": [{"tab": {"en": "Main", "zh": "主要"}, "sections": [{"columns": 2, "fields": names[:8]}, {"fields": names[8:]}]}],
                   "list": {"columns": names[:6], "filters": [n for n in names[1:6] if n != "title"][:2], "search": ["title"], "sort": "-id"}},
        "permissions": {"user": {"read": "all", "create": True, "write": "self", "fields": {"f01": "read", "f02": "none"}},
                        "manager": {"read": "all", "create": True, "write": "all", "delete": "all"}},
    }


def app() -> dict[str, object]:
    """The manifest: two roles and a menu of 30 groups."""
    groups = [{"group": f"g{g:02d}", "label": {"en": f"Group {g}", "zh": f"组 {g}"},
               "items": [f"m{m:03d}" for m in range(g * 10 + 1, g * 10 + 11)]} for g in range(MODULES // 10)]
    return {"name": "bench300", "version": "1", "label": {"en": "300 modules", "zh": "300 个模块"}, "locales": ["en", "zh"],
            "default_locale": "en", "roles": [{"name": "admin", "admin": True, "label": {"en": "Admin", "zh": "管理员"}},
                                              {"name": "user", "label": {"en": "User", "zh": "用户"}},
                                              {"name": "manager", "label": {"en": "Manager", "zh": "经理"}}],
            "navigation": groups}


def write(folder: Path) -> Path:
    """Write the bundle into `folder` (replacing what is there); returns it."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "modules").mkdir(parents=True)
    (folder / "app.yaml").write_text(yaml.safe_dump(app(), allow_unicode=True, sort_keys=False))
    for m in range(1, MODULES + 1):
        (folder / "modules" / f"m{m:03d}.yaml").write_text(yaml.safe_dump(module(m), allow_unicode=True, sort_keys=False))
    return folder
