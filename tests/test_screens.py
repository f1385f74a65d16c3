"""Generated screens, shell: navigation, home panels, global search, type-ahead, language, errors, CSP-clean HTML.

The helpers here are shared by the other tests/test_screens_*.py files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from engine import records
from engine.access import SystemAccess
from engine.runtime import Runtime

from .conftest import add_test_user, login

SYSTEM = SystemAccess()
STATIC = Path(__file__).resolve().parent.parent / "engine" / "web" / "static"
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_STYLE = re.compile(r"<style\b|\sstyle\s*=", re.I)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)


def rt_of(app: Any) -> Runtime:
    """The runtime of an app."""
    runtime: Runtime = app.state.runtime
    return runtime


def make(app: Any, module: str, **values: Any) -> dict[str, Any]:
    """Create a record as the system."""
    return records.create(rt_of(app), SYSTEM, module, values)


def admin(app: Any) -> TestClient:
    """A logged-in admin."""
    return login(app, "boss", ("admin",))


def user(app: Any, name: str, *roles: str) -> tuple[int, TestClient]:
    """A user of `roles`: (id, logged-in client)."""
    user_id = add_test_user(rt_of(app), name, roles)
    return user_id, login(app, name)


def text(html: str) -> str:
    """Visible-ish text of some HTML (tags removed, spaces squeezed)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def csp_clean(html: str) -> None:
    """No inline script, style or event handler (the CSP would block them)."""
    assert not INLINE_SCRIPT.search(html), INLINE_SCRIPT.search(html)
    assert not INLINE_STYLE.search(html), INLINE_STYLE.search(html)
    assert not INLINE_HANDLER.search(html), INLINE_HANDLER.search(html)


def test_navigation_groups_from_app_yaml_and_only_readable_modules(make_app: Any) -> None:
    app = make_app()
    page = admin(app).get("/")
    assert page.status_code == 200
    nav = page.text.split('<nav class="side"')[1].split("</nav>")[0]
    assert "Sales" in nav and nav.index("Accounts") < nav.index("Contacts") < nav.index("Deals")
    assert "Deal line" not in nav  # child modules have no screens
    _, nobody = user(app, "nobody")
    assert 'class="side"' not in nobody.get("/").text


def test_each_menu_shows_what_its_reader_may_read_in_their_language(make_app: Any, bundle_copy: Any) -> None:
    contact = bundle_copy / "modules" / "contact.yaml"
    contact.write_text(contact.read_text().replace("  rep: {read: self, create: true, write: self}\n", ""))
    app = make_app(bundle_copy)
    boss, (_, rep) = admin(app), user(app, "rita", "rep")

    def menu(client: Any, path: str) -> str:
        return str(client.get(path).text.split('<nav class="side"')[1].split("</nav>")[0])

    assert "Contacts" in menu(boss, "/") and "Contacts" not in menu(rep, "/") and "Accounts" in menu(rep, "/")
    assert "Contacts" in menu(boss, "/m/account")  # each reader's own menu, however they follow each other
    assert '<a href="/m/account" aria-current="page">Accounts</a>' in menu(rep, "/m/account")
    assert 'aria-current' not in menu(rep, "/")
    rep.get("/locale/zh?next=/")
    assert ">客户</a>" in menu(rep, "/m/account") and ">Accounts</a>" in menu(boss, "/m/account")


def test_home_panel_groups_my_deals_by_stage(make_app: Any) -> None:
    app = make_app()
    rep_id, rep = user(app, "rep", "rep")
    other = add_test_user(rt_of(app), "other", ("rep",))
    for stage in ("initial", "initial", "won"):
        make(app, "deal", title=f"Mine {stage}", stage=stage, owner=rep_id)
    make(app, "deal", title="Not mine", stage="won", owner=other)
    page = rep.get("/")
    assert "My deals" in page.text
    groups = re.findall(r'<a href="([^"]+)"><span class="badge[^"]*">([^<]+)</span><span class="n">(\d+)</span>', page.text)
    assert [(label, n) for _, label, n in groups] == [("Initial", "2"), ("Won", "1")]
    href = groups[0][0].replace("&amp;", "&")
    assert f"owner={rep_id}" in href and "stage=initial" in href
    listed = rep.get(href)
    assert listed.status_code == 200 and text(listed.text).count("Mine initial") == 2


def test_zh_locale_labels_and_language_switch(make_app: Any) -> None:
    app = make_app()
    client = admin(app)
    make(app, "account", name="Acme", category="key")
    switched = client.get("/locale/zh?next=/m/account", follow_redirects=False)
    assert switched.status_code == 303 and switched.headers["location"] == "/m/account"
    page = client.get("/m/account")
    assert '<html lang="zh-CN"' in page.text
    assert "<h1>客户</h1>" in page.text and "重要客户" in page.text and "新建" in page.text and "名称" in page.text
    client.get("/locale/en?next=/")
    assert "<h1>Accounts</h1>" in client.get("/m/account").text


def test_global_search_across_modules_in_scope(make_app: Any) -> None:
    app = make_app()
    rep_id, rep = user(app, "rep", "rep")
    make(app, "account", name="Zephyr Mine", owner=rep_id)
    make(app, "account", name="Zephyr Theirs", owner=add_test_user(rt_of(app), "x", ("rep",)))
    make(app, "contact", full_name="Zephyr Person", owner=rep_id)
    make(app, "deal", title="Zephyr Deal", owner=rep_id)
    page = rep.get("/search?q=zephyr")
    assert page.status_code == 200
    shown = text(page.text)
    assert "Zephyr Mine" in shown and "Zephyr Person" in shown and "Zephyr Deal" in shown
    assert "Zephyr Theirs" not in shown
    assert "/m/account?q=zephyr" in page.text
    fragment = rep.get("/search?q=person", headers={"HX-Request": "true", "HX-Target": "search-results"})
    assert fragment.text.lstrip().startswith('<div id="search-results"') and "<html" not in fragment.text
    assert "Zephyr Person" in fragment.text and "Zephyr Mine" not in fragment.text
    assert "Type a name" in rep.get("/search").text


def test_autocomplete_options_and_json_respect_scope(make_app: Any) -> None:
    app = make_app()
    rep_id, rep = user(app, "rep", "rep")
    mine = make(app, "account", name="Acme Mine", owner=rep_id)
    make(app, "account", name="Acme Hidden", owner=add_test_user(rt_of(app), "x", ("rep",)))
    options = rep.get("/m/account/autocomplete?q=acme", headers={"HX-Request": "true"})
    assert options.text.strip() == f'<option value="Acme Mine · #{mine["id"]}"></option>'
    items = rep.get("/m/account/autocomplete?q=acme", headers={"Accept": "application/json"}).json()["items"]
    assert items == [{"id": mine["id"], "title": "Acme Mine"}]
    typed = rep.get("/m/account/autocomplete?parent__title=Mine", headers={"HX-Request": "true"})
    assert "Acme Mine" in typed.text


def test_error_pages_are_friendly_and_htmx_gets_a_toast(make_app: Any) -> None:
    app = make_app()
    client = admin(app)
    missing = client.get("/m/account/999")
    assert missing.status_code == 404 and "<html" in missing.text and "account 999 not found" in missing.text
    assert client.get("/m/nothing").status_code == 404
    assert client.get("/m/deal_line").status_code == 404
    toast = client.get("/m/account/999", headers={"HX-Request": "true"})
    assert toast.status_code == 404 and "toast" in toast.headers["hx-trigger"]
    _, rep = user(app, "rep", "rep")
    assert rep.post("/m/account/bulk", data={"ids": "1", "op": "delete", "confirm": "1"}).status_code == 403


def test_login_required_and_anonymous_redirect(make_app: Any) -> None:
    app = make_app()
    anonymous = TestClient(app)
    page = anonymous.get("/m/account?category=key", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
    login_page = anonymous.get("/login")
    for name in ("username", "password", "csrf_token", "next"):
        assert f'name="{name}"' in login_page.text


def test_every_screen_is_csp_clean_and_vendored(make_app: Any) -> None:
    app = make_app()
    client = admin(app)
    account = make(app, "account", name="Acme")
    deal = make(app, "deal", title="Big", account=account["id"], lines=[{"product": "P", "quantity": 1, "unit_price": 2}])
    pages = ["/", "/search?q=a", "/m/account", "/m/account/kanban", "/m/account/new", f"/m/account/{account['id']}",
             f"/m/account/{account['id']}/edit", f"/m/account/{account['id']}/timeline", f"/m/account/{account['id']}/print",
             f"/m/account/{account['id']}/delete", f"/m/deal/{deal['id']}/edit", "/m/account/999", "/login"]
    for path in pages:
        page = client.get(path)
        assert page.status_code in (200, 404), path
        csp_clean(page.text)
        assert "cdn" not in page.text.lower()
        assert "vendor/htmx.min.js" in page.text or path == "/login" or path.endswith("/print")
    script = client.get("/static/vendor/htmx.min.js")
    assert script.status_code == 200 and "htmx" in script.text[:2000]
    note = (STATIC / "vendor" / "VERSIONS.md").read_text()
    assert "htmx.org 2." in note and "0BSD" in note and (STATIC / "vendor" / "LICENSE-htmx.txt").exists()
    body = client.get("/").text
    assert '"X-CSRF-Token"' in body.split("<body")[1].split(">")[0]
    assert '"includeIndicatorStyles": false' in body


def test_static_paths_are_looked_up_once_per_app(make_app: Any) -> None:
    app = make_app()
    client = admin(app)
    for path in ("/m/account", "/", "/m/account"):
        page = client.get(path).text
        assert 'href="/static/loom.css"' in page and 'src="/static/vendor/htmx.min.js"' in page
    assert sorted(app.state.walked_paths) == [("static", ("path", p)) for p in ("loom.css", "loom.js", "vendor/htmx.min.js")]
    assert sorted(app.state.walked_paths.values()) == ["/static/loom.css", "/static/loom.js", "/static/vendor/htmx.min.js"]


@pytest.mark.parametrize("path", ["/m/account", "/m/account/new", "/"])
def test_pages_vary_on_htmx(make_app: Any, path: str) -> None:
    response = admin(make_app()).get(path)
    assert "HX-Request" in response.headers["vary"]


def test_every_module_of_the_crm_bundle_has_working_screens(make_app: Any) -> None:
    from .conftest import CRM_BUNDLE

    app = make_app(CRM_BUNDLE)
    client = admin(app)
    _, rep = user(app, "rep", "sales_rep")
    checked = 0
    for name, module in rt_of(app).spec.modules.items():
        if module.child:
            continue
        paths = [f"/m/{name}", f"/m/{name}/new"] + ([f"/m/{name}/kanban"] if module.layout.list.kanban else [])
        for path in paths:
            page = client.get(path)
            assert page.status_code == 200, (path, page.text[:500])
            checked += 1
        assert rep.get(f"/m/{name}").status_code in (200, 403)
    assert checked >= 50
    home = rep.get("/")
    assert home.status_code == 200 and "My open opportunities by stage" in home.text
    assert client.get("/search?q=a").status_code == 200
