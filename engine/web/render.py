"""Rendering templates: a full page, or just one named block for HTMX requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from engine.fieldtypes import show
from engine.web.context import Ctx

TEMPLATES = Path(__file__).resolve().parent.parent.parent / "ui_templates"


def environment(folder: Path = TEMPLATES) -> Environment:
    """The Jinja2 environment for screens (autoescape on, no user data marked safe)."""
    env = Environment(loader=FileSystemLoader(str(folder)), autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True, auto_reload=False)
    env.globals["show"] = show
    return env


def render(ctx: Ctx, template: str, values: dict[str, Any], status: int = 200, block: str | None = None,
           headers: dict[str, str] | None = None) -> HTMLResponse:
    """Render `template` (only `block` when given, e.g. for HTMX) with the shell's common values."""
    env: Environment = ctx.request.app.state.templates
    tpl = env.get_template(template)
    values = {"ctx": ctx, "rt": ctx.rt, "spec": ctx.rt.spec, "locale": ctx.locale, "user": ctx.user,
              "csrf_token": ctx.csrf, "url_for": ctx.request.url_for, "request": ctx.request, "t": _translator(ctx), **values}
    if block:
        context = tpl.new_context(values)
        html = "".join(tpl.blocks[block](context))
    else:
        html = tpl.render(values)
    response = HTMLResponse(html, status_code=status, headers=headers)
    response.headers["Vary"] = "HX-Request, Cookie"
    return response


def _translator(ctx: Ctx) -> Any:
    from engine.web.i18n import translate

    def t(key: str, **kw: Any) -> str:
        return translate(key, ctx.locale, **kw)

    return t
