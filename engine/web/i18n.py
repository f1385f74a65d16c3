"""The engine's own words (buttons, messages) in each locale; labels of modules come from metadata."""

from __future__ import annotations

from typing import Any

WORDS: dict[str, dict[str, str]] = {
    "login": {"en": "Log in", "zh": "登录"},
    "logout": {"en": "Log out", "zh": "退出"},
    "username": {"en": "User name", "zh": "用户名"},
    "password": {"en": "Password", "zh": "密码"},
    "bad_login": {"en": "Wrong user name or password.", "zh": "用户名或密码错误。"},
    "home": {"en": "Home", "zh": "首页"},
    "search": {"en": "Search", "zh": "搜索"},
    "new": {"en": "New", "zh": "新建"},
    "save": {"en": "Save", "zh": "保存"},
    "edit": {"en": "Edit", "zh": "编辑"},
    "delete": {"en": "Delete", "zh": "删除"},
    "cancel": {"en": "Cancel", "zh": "取消"},
    "saved": {"en": "Saved.", "zh": "已保存。"},
    "deleted": {"en": "Deleted.", "zh": "已删除。"},
    "not_found": {"en": "Not found.", "zh": "未找到。"},
    "forbidden": {"en": "You may not do this.", "zh": "您没有权限执行此操作。"},
    "conflict": {"en": "Someone else changed this record.", "zh": "其他人已修改此记录。"},
    "invalid": {"en": "Please correct the marked fields.", "zh": "请更正标记的字段。"},
}


def translate(key: str, locale: str, **values: Any) -> str:
    """The engine word `key` in `locale` (English, then the key itself, as fallbacks)."""
    entry = WORDS.get(key, {})
    text = entry.get(locale) or entry.get("en") or key
    return text.format(**values) if values else text
