"""The generated screens: every route, for every non-child module, with no code written for one module."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route

from engine.web import screens_form as form
from engine.web import screens_kanban as board
from engine.web import screens_list as lists
from engine.web import screens_lookup as lookup
from engine.web import screens_record as record
from engine.web import screens_shell as shell
from engine.web import screens_timeline as history
from engine.web import screens_views as views
from engine.web.context import handler
from engine.web.views import route_table

MODULE = "/m/{module}"
RECORD = "/m/{module}/{id:int}"


def routes() -> list[Route]:
    """The screen routes (literal paths before the record id, so /m/x/new is never read as an id)."""
    get, post = ["GET"], ["POST"]
    return [
        Route("/", handler(shell.home), methods=get, name="home"),
        Route("/search", handler(lookup.global_search), methods=get, name="search"),
        Route(MODULE, handler(lists.list_screen), methods=get, name="screen_list"),
        Route(MODULE + "/count", handler(lists.count_fragment), methods=get, name="list_count"),
        Route(MODULE + "/bulk", handler(lists.bulk), methods=post, name="list_bulk"),
        Route(MODULE + "/views", handler(views.views_page), methods=get, name="view_list"),
        Route(MODULE + "/views", handler(views.save_view), methods=post, name="view_save"),
        Route(MODULE + "/views/{view:int}/delete", handler(views.delete_view), methods=post, name="view_delete"),
        Route(MODULE + "/kanban", handler(board.kanban), methods=get, name="kanban"),
        Route(MODULE + "/autocomplete", handler(lookup.autocomplete), methods=get, name="autocomplete"),
        Route(MODULE + "/new", handler(form.new_form), methods=get, name="record_new"),
        Route(MODULE + "/new", handler(form.create), methods=post, name="record_create"),
        Route(MODULE + "/form-state", handler(form.form_state), methods=post, name="form_state"),
        Route(MODULE + "/form-row/{table}", handler(form.form_row), methods=get, name="form_row"),
        Route(RECORD, handler(record.record_page), methods=get, name="record"),
        Route(RECORD + "/edit", handler(form.edit_form), methods=get, name="record_edit"),
        Route(RECORD + "/edit", handler(form.update), methods=post, name="record_update"),
        Route(RECORD + "/timeline", handler(history.timeline), methods=get, name="timeline"),
        Route(RECORD + "/print", handler(record.print_page), methods=get, name="print"),
        Route(RECORD + "/delete", handler(record.delete_page), methods=get, name="record_delete_page"),
        Route(RECORD + "/delete", handler(record.delete_record), methods=post, name="record_delete"),
        Route(RECORD + "/move", handler(board.move), methods=post, name="kanban_move"),
        Route(RECORD + "/actions/{action}", handler(record.action_page), methods=get, name="action_confirm"),
    ]


def setup(app: Starlette) -> None:
    """Friendly error pages, and the route table links are built from."""
    app.state.error_page = shell.error_page
    app.state.paths = route_table(app.routes)
    app.state.walked_paths = {}
