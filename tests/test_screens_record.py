"""Record page: tabs and sections, child tables, related lists, actions, timeline, print, delete."""

from __future__ import annotations

import re
from typing import Any

from engine import records

from .test_screens import SYSTEM, admin, make, rt_of, text, user


def test_record_page_sections_values_and_links(make_app: Any) -> None:
    app = make_app()
    parent = make(app, "account", name="Parent Co")
    account = make(app, "account", name="Acme", category="key", tags="vip,partner", credit_limit=1200, parent=parent["id"],
                   founded="2020-02-03", website="https://acme.example", notes="Line one\nLine two")
    page = admin(app).get(f"/m/account/{account['id']}")
    assert page.status_code == 200
    shown = text(page.text)
    assert "<h1>Acme</h1>" in page.text
    assert "<h3>More</h3>" in page.text  # the layout's section label (a single tab needs no tab bar)
    assert '<span class="badge">Key</span>' in page.text and "Vip, Partner" in shown and "¥1,200.00" in shown
    assert f'<a href="/m/account/{parent["id"]}">Parent Co</a>' in page.text
    assert "2020-02-03" in shown and "ACC-" in shown
    assert f'href="/m/account/{account["id"]}/edit"' in page.text
    assert f'hx-get="/m/account/{account["id"]}/timeline"' in page.text


def test_record_page_in_chinese_formats_dates_per_locale(make_app: Any) -> None:
    app = make_app()
    account = make(app, "account", name="Acme", founded="2020-02-03", category="new")
    client = admin(app)
    client.cookies.set("loom_locale", "zh")
    page = client.get(f"/m/account/{account['id']}")
    assert "2020年2月3日" in page.text and "新客户" in page.text and "成立日期" in page.text and "编辑" in page.text


def test_child_table_and_formulas_on_record_page(make_app: Any) -> None:
    app = make_app()
    deal = make(app, "deal", title="Big", stage="won", lines=[{"product": "Bolt", "quantity": 3, "unit_price": 2, "cost": 1},
                                                               {"product": "Nut", "quantity": 1, "unit_price": 5}])
    page = admin(app).get(f"/m/deal/{deal['id']}")
    table = page.text.split("<dt>Lines</dt>")[1].split("</table>")[0]
    assert re.findall(r'data-label="Product">([^<]+)<', table) == ["Bolt", "Nut"]
    assert "¥6.00" in table and "Cost" in table
    assert "¥11.00" in page.text  # total = sum of line amounts
    rep_id, rep = user(app, "rep", "rep")
    mine = make(app, "deal", title="Mine", owner=rep_id, lines=[{"product": "Gear", "cost": 77}])
    rep_page = rep.get(f"/m/deal/{mine['id']}")
    assert "Gear" in rep_page.text and "Cost" not in rep_page.text and "77" not in text(rep_page.text)


def test_related_lists_with_prefilled_new(make_app: Any) -> None:
    app = make_app()
    account = make(app, "account", name="Acme")
    for i in range(12):
        make(app, "contact", full_name=f"Person {i:02d}", account=account["id"], phone="123456")
    make(app, "deal", title="Deal A", account=account["id"])
    make(app, "contact", full_name="Elsewhere")
    page = admin(app).get(f"/m/account/{account['id']}")
    contacts = page.text.split("<h2>Contacts</h2>")[1].split("</section>")[0]
    assert len(re.findall(r'<a href="/m/contact/\d+">Person', contacts)) == 10 and "Elsewhere" not in contacts
    assert f'href="/m/contact?account={account["id"]}"' in contacts and "View all ›" in contacts
    assert f'href="/m/contact/new?account={account["id"]}"' in contacts
    assert "Deal A" in page.text.split("<h2>Deals</h2>")[1]
    new = admin_client_get(app, f"/m/contact/new?account={account['id']}")
    assert f'value="{account["id"]}"' in new and 'value="Acme"' in new


def admin_client_get(app: Any, path: str) -> str:
    from .test_screens import login

    return str(login(app, "boss").get(path).text)


def test_actions_as_buttons_and_confirmation(make_app: Any) -> None:
    app = make_app()
    rep_id, rep = user(app, "rep", "rep")
    pool = make(app, "account", name="Pooled", owner=None)
    page = rep.get(f"/m/account/{pool['id']}")
    assert f'action="/m/account/{pool["id"]}/actions/claim"' in page.text and ">Claim</button>" in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    done = rep.post(f"/m/account/{pool['id']}/actions/claim", data={"csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303
    assert records.get(rt_of(app), SYSTEM, "account", pool["id"])["owner"] == rep_id
    assert "Claim</button>" not in rep.get(f"/m/account/{pool['id']}").text
    client = admin(app)
    keep, dup = make(app, "account", name="Keep Ltd"), make(app, "account", name="Dup Ltd")
    merge_page = client.get(f"/m/account/{keep['id']}")
    assert f'action="/m/account/{keep["id"]}/actions/merge"' in merge_page.text and 'name="duplicate__title"' in merge_page.text
    confirm = client.get(f"/m/account/{keep['id']}/actions/merge?duplicate__title=Dup Ltd")
    assert confirm.status_code == 200 and f'name="duplicate" value="{dup["id"]}"' in confirm.text
    assert client.get(f"/m/account/{keep['id']}/actions/merge?duplicate__title=nobody").status_code == 422


def test_timeline_shows_old_to_new_for_readable_fields_only(make_app: Any) -> None:
    app = make_app()
    rep_id, rep = user(app, "rep", "rep")
    account = make(app, "account", name="Acme", category="new", secret_score=1, owner=rep_id)
    records.update(rt_of(app), SYSTEM, "account", account["id"], {"category": "key", "secret_score": 9999, "name": "Acme Two"}, 1)
    page = admin(app).get(f"/m/account/{account['id']}/timeline")
    assert page.status_code == 200 and "<html" in page.text
    assert re.search(r"Category</span> <del>New</del> → <ins>Key</ins>", page.text)
    assert re.search(r"Name</span> <del>Acme</del> → <ins>Acme Two</ins>", page.text)
    assert "<del>1</del> → <ins>9,999</ins>" in page.text
    fragment = rep.get(f"/m/account/{account['id']}/timeline", headers={"HX-Request": "true", "HX-Target": "timeline"})
    assert fragment.text.lstrip().startswith('<div id="timeline"') and "<html" not in fragment.text
    assert "9,999" not in fragment.text and "9999" not in fragment.text and "Secret score" not in fragment.text and "Acme Two" in fragment.text


def test_print_view(make_app: Any) -> None:
    app = make_app()
    deal = make(app, "deal", title="Printable", lines=[{"product": "Bolt", "quantity": 2, "unit_price": 3}])
    page = admin(app).get(f"/m/deal/{deal['id']}/print")
    assert page.status_code == 200 and "<h1>Printable</h1>" in page.text and "Bolt" in page.text and 'class="side"' not in page.text
    rep_id, rep = user(app, "rep", "rep")
    mine = make(app, "deal", title="Mine", owner=rep_id)
    assert rep.get(f"/m/deal/{mine['id']}/print").status_code == 403  # the rep role has no print permission


def test_delete_with_confirmation_page_then_post(make_app: Any) -> None:
    app = make_app()
    account = make(app, "account", name="Doomed")
    client = admin(app)
    record_page = client.get(f"/m/account/{account['id']}").text
    assert f'hx-post="/m/account/{account["id"]}/delete" hx-confirm=' in record_page
    confirm = client.get(f"/m/account/{account['id']}/delete")
    assert "Delete this record?" in confirm.text and "Doomed" in confirm.text
    gone = client.post(f"/m/account/{account['id']}/delete", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/m/account"
    assert "Deleted." in client.get("/m/account").text
    assert client.get(f"/m/account/{account['id']}").status_code == 404
    rep_id, rep = user(app, "rep", "rep")
    mine = make(app, "account", name="Mine", owner=rep_id)
    assert "/delete" not in rep.get(f"/m/account/{mine['id']}").text
    assert rep.post(f"/m/account/{mine['id']}/delete").status_code == 403


def test_out_of_scope_records_are_not_found(make_app: Any) -> None:
    app = make_app()
    _, rep = user(app, "rep", "rep")
    other = make(app, "account", name="Theirs", owner=add_other(app))
    for path in ("", "/edit", "/timeline"):
        assert rep.get(f"/m/account/{other['id']}{path}").status_code == 404


def add_other(app: Any) -> int:
    from .conftest import add_test_user

    return add_test_user(rt_of(app), "someone", ("rep",))


def test_record_page_names_active_and_deactivated_owners(make_app: Any) -> None:
    import sqlalchemy as sa

    from .conftest import add_test_user

    app = make_app()
    rt = rt_of(app)
    active = add_test_user(rt, "ada", ("rep",), full_name="Ada Active")
    gone = add_test_user(rt, "olga", ("rep",), full_name="Olga Old")
    client = admin(app)
    assert "Ada Active" in text(client.get(f"/m/account/{make(app, 'account', name='A', owner=active)['id']}").text)
    users = rt.tables.metadata.tables["loom_user"]
    with rt.db.begin() as conn:  # not among the active users kept for choices and titles: looked up by id
        conn.execute(sa.update(users).where(users.c.id == gone).values(active=False))
    shown = text(client.get(f"/m/account/{make(app, 'account', name='B', owner=gone)['id']}").text)
    assert "Olga Old" in shown and f"#{gone}" not in shown
