"""Forms: widgets per field type, inline 422 errors, the no-JS post flow, HTMX fragments, live field state, child rows,
optimistic-lock conflicts, link fields typed by title, attachments, field permissions and escaping."""

from __future__ import annotations

import re
from typing import Any

import pytest

from engine import records

from .test_screens import SYSTEM, admin, make, rt_of, text, user


def field_html(page: str, name: str) -> str:
    """The HTML of one field block of a form (from its opening tag to the next field)."""
    start = page.rindex("<div", 0, page.index(f'id="w-f-{name}"'))
    end = page.find('<div class="field', start + 10)
    return page[start: end if end > 0 else None]


def test_widgets_follow_the_field_registry(make_app: Any) -> None:
    client = admin(make_app())
    page = client.get("/m/account/new").text
    assert 'type="text" id="f-name" name="name" value="" maxlength="140" required' in page
    assert '<select id="f-category" name="category"' in page and '<option value="new" selected>New</option>' in page  # default
    assert 'type="checkbox" name="tags" value="vip"' in page  # multiselect as checkboxes
    limit = field_html(page, "credit_limit")
    assert 'type="number"' in limit and 'step="0.01"' in limit and 'min="0"' in limit and '<span class="unit">CNY</span>' in limit
    assert 'type="number" id="f-employees" name="employees" value="" step="1"' in page
    assert 'type="email" id="f-email"' in page and 'type="url" id="f-website"' in page and 'type="date" id="f-founded"' in page
    assert 'type="checkbox" id="f-active" name="active" value="true" checked' in page  # default true
    assert '<textarea id="f-notes" name="notes"' in page
    parent = field_html(page, "parent")
    assert 'name="parent__title"' in parent and 'list="dl-f-parent"' in parent and 'hx-get="/m/account/autocomplete"' in parent
    assert '<input type="hidden" name="parent" value="">' in parent
    assert '<output class="readonly" id="f-overdue">' in page and '<output class="readonly" id="f-code">' in page
    assert "novalidate" in page and 'name="csrf_token"' in page
    deal = client.get("/m/deal/new").text
    assert 'type="text" id="f-lines-0-product" name="lines-0-product"' in deal and 'id="f-lines-1-product"' in deal  # blank rows
    assert 'hx-get="/m/deal/form-row/lines?i=2"' in deal


def test_inline_errors_with_422_keep_what_was_typed(make_app: Any) -> None:
    client = admin(make_app())
    page = client.post("/m/account/new", data={"name": "", "email": "not-an-email", "employees": "many", "credit_limit": "-5",
                                                "notes": "keep me"})
    assert page.status_code == 422
    assert "Please correct the marked fields." in page.text
    assert re.search(r'id="w-f-name">.*?<p class="error" id="f-name-error">required</p>', page.text, re.S)
    assert '<p class="error" id="f-email-error">not a valid email address</p>' in page.text
    assert '<p class="error" id="f-employees-error">expected a whole number</p>' in page.text
    assert '<p class="error" id="f-credit_limit-error">must be at least 0</p>' in page.text
    assert 'value="not-an-email"' in page.text and 'value="many"' in page.text and ">keep me</textarea>" in page.text
    assert 'aria-invalid="true" aria-describedby="f-email-error"' in page.text
    assert "<html" in page.text  # without JS: the whole page again


def test_no_js_create_then_edit_flow(make_app: Any) -> None:
    app = make_app()
    client = admin(app)
    created = client.post("/m/account/new", data={"name": "Acme", "category": "key", "tags": ["vip", "risky"], "tags__present": "1",
                                                   "credit_limit": "1000", "active__present": "1", "founded": "2021-04-05"},
                          follow_redirects=False)
    assert created.status_code == 303
    page = client.get(created.headers["location"])
    assert "Created." in page.text and "Vip, Risky" in page.text and "¥1,000.00" in page.text
    record_id = int(created.headers["location"].rsplit("/", 1)[1])
    stored = records.get(rt_of(app), SYSTEM, "account", record_id)
    assert stored["active"] is False and stored["founded"].isoformat() == "2021-04-05"  # unticked box means no
    edit = client.get(f"/m/account/{record_id}/edit").text
    assert 'name="version" value="1"' in edit and 'value="Acme"' in edit and 'value="vip" checked' in edit
    saved = client.post(f"/m/account/{record_id}/edit", data={"name": "Acme Group", "category": "key", "version": "1",
                                                              "tags": "vip", "tags__present": "1", "credit_limit": "1000"},
                        follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == f"/m/account/{record_id}"
    assert "Saved." in client.get(saved.headers["location"]).text
    after = records.get(rt_of(app), SYSTEM, "account", record_id)
    assert after["name"] == "Acme Group" and after["tags"] == "vip" and after["version"] == 2 and after["founded"] is not None


def test_htmx_form_post_gets_the_form_block_or_a_redirect(make_app: Any) -> None:
    client = admin(make_app())
    htmx = {"HX-Request": "true", "HX-Target": "record-form"}
    bad = client.post("/m/account/new", data={"name": ""}, headers=htmx)
    assert bad.status_code == 422 and bad.text.lstrip().startswith('<form id="record-form"') and "<html" not in bad.text
    good = client.post("/m/account/new", data={"name": "Quick"}, headers=htmx)
    assert good.status_code == 200 and re.fullmatch(r"/m/account/\d+", good.headers["hx-redirect"])
    assert "loom_flash" in good.headers.get("set-cookie", "")


def test_optimistic_lock_conflict_shows_the_other_change(make_app: Any) -> None:
    app = make_app()
    account = make(app, "account", name="Acme", category="new", credit_limit=100)
    client = admin(app)
    records.update(rt_of(app), SYSTEM, "account", account["id"], {"category": "key", "credit_limit": 900}, 1)
    page = client.post(f"/m/account/{account['id']}/edit", data={"name": "Acme mine", "category": "general", "version": "1"})
    assert page.status_code == 409
    assert "Someone else changed this record." in page.text
    assert "<strong>Category</strong>: <del>New</del> → <ins>Key</ins>" in page.text
    assert "<del>¥100.00</del> → <ins>¥900.00</ins>" in page.text
    assert 'value="Acme mine"' in page.text  # the user's input is kept
    assert 'name="version_override" value="2"' in page.text
    assert records.get(rt_of(app), SYSTEM, "account", account["id"])["name"] == "Acme"
    forced = client.post(f"/m/account/{account['id']}/edit", data={"name": "Acme mine", "category": "general", "version": "1",
                                                                   "version_override": "2"}, follow_redirects=False)
    assert forced.status_code == 303
    assert records.get(rt_of(app), SYSTEM, "account", account["id"])["name"] == "Acme mine"


def test_conflict_message_hides_fields_the_user_cannot_read(make_app: Any) -> None:
    app = make_app()
    rep_id, rep = user(app, "rep", "rep")
    account = make(app, "account", name="Acme", owner=rep_id, secret_score=1)
    records.update(rt_of(app), SYSTEM, "account", account["id"], {"secret_score": 777777, "name": "Acme B"}, 1)
    page = rep.post(f"/m/account/{account['id']}/edit", data={"name": "Mine", "version": "1"})
    assert page.status_code == 409 and "Acme B" in page.text
    assert "777777" not in page.text and "777,777" not in page.text and "Secret score" not in page.text


def test_live_state_visible_and_required_if(make_app: Any) -> None:
    client = admin(make_app())
    lost = client.post("/m/deal/form-state", data={"title": "T", "stage": "lost", "amount": "100"}, headers={"HX-Request": "true"})
    assert lost.status_code == 200 and "<html" not in lost.text
    reason = field_html(lost.text, "lost_reason")
    assert 'hx-swap-oob="true"' in reason and " hidden" not in reason.split(">")[0] and "is-required" in reason
    assert 'id="w-f-probability"' in lost.text and ">0%</output>" in lost.text
    assert 'id="w-f-title"' not in lost.text  # only fields that can change are sent back
    proposal = client.post("/m/deal/form-state", data={"title": "T", "stage": "proposal", "amount": "100"}, headers={"HX-Request": "true"})
    assert field_html(proposal.text, "lost_reason").split(">")[0].endswith('" hidden hx-swap-oob="true"')
    assert "is-required" in field_html(proposal.text, "close_date") and ">40%</output>" in proposal.text
    assert ">¥40.00</output>" in proposal.text  # present value = amount × probability, previewed as the user types
    missing = client.post("/m/deal/new", data={"title": "T", "stage": "lost"})
    assert missing.status_code == 422 and '<p class="error" id="f-lost_reason-error">required</p>' in missing.text


def test_form_page_hides_fields_by_visible_if(make_app: Any) -> None:
    client = admin(make_app())
    page = client.get("/m/deal/new").text
    assert field_html(page, "lost_reason").split(">")[0].endswith(" hidden")
    assert 'hx-post="/m/deal/form-state" hx-trigger="input delay:400ms, change" hx-sync="this:replace" hx-swap="none"' in page


def test_child_rows_added_and_removed(make_app: Any) -> None:
    app = make_app()
    client = admin(app)
    created = client.post("/m/deal/new", data={
        "title": "With lines", "stage": "initial",
        "lines-0-product": "Bolt", "lines-0-quantity": "2", "lines-0-unit_price": "3", "lines-0-id": "",
        "lines-1-product": "", "lines-1-quantity": "", "lines-1-id": "",  # a blank row: ignored
        "lines-7-product": "Nut", "lines-7-quantity": "1", "lines-7-unit_price": "5", "lines-7-id": ""}, follow_redirects=False)
    assert created.status_code == 303
    deal_id = int(created.headers["location"].rsplit("/", 1)[1])
    deal = records.get(rt_of(app), SYSTEM, "deal", deal_id)
    assert [r["product"] for r in deal["lines"]] == ["Bolt", "Nut"] and deal["total"] == 11
    edit = client.get(f"/m/deal/{deal_id}/edit").text
    first, second = (r["id"] for r in deal["lines"])
    assert f'name="lines-0-id" value="{first}"' in edit and 'name="lines-1-_delete"' in edit
    changed = client.post(f"/m/deal/{deal_id}/edit", data={
        "title": "With lines", "stage": "initial", "version": "1",
        "lines-0-id": str(first), "lines-0-product": "Bolt", "lines-0-quantity": "4", "lines-0-unit_price": "3",
        "lines-1-id": str(second), "lines-1-product": "Nut", "lines-1-_delete": "1",
        "lines-2-id": "", "lines-2-product": "Washer", "lines-2-quantity": "10", "lines-2-unit_price": "0.5"}, follow_redirects=False)
    assert changed.status_code == 303
    after = records.get(rt_of(app), SYSTEM, "deal", deal_id)
    assert [(r["product"], r["id"] == first) for r in after["lines"]] == [("Bolt", True), ("Washer", False)] and after["total"] == 17
    row = client.get("/m/deal/form-row/lines?i=9", headers={"HX-Request": "true"})
    assert row.text.lstrip().startswith('<tr id="row-lines-9">') and 'name="lines-9-product"' in row.text
    assert 'hx-get="/m/deal/form-row/lines?i=10"' in row.text and 'hx-swap-oob="true"' in row.text
    assert client.get("/m/deal/form-row/title").status_code == 404


def test_child_row_errors_point_at_the_row(make_app: Any) -> None:
    client = admin(make_app())
    page = client.post("/m/deal/new", data={"title": "T", "stage": "initial", "lines-3-product": "", "lines-3-quantity": "-1",
                                             "lines-3-id": ""})
    assert page.status_code == 422
    assert '<p class="error" id="f-lines-3-product-error">required</p>' in page.text
    assert '<p class="error" id="f-lines-3-quantity-error">must be at least 0</p>' in page.text


def test_link_fields_by_title_without_js(make_app: Any) -> None:
    app = make_app()
    acme = make(app, "account", name="Acme")
    make(app, "account", name="Acme Two")
    make(app, "account", name="Globex")
    client = admin(app)
    exact = client.post("/m/contact/new", data={"full_name": "A", "account__title": "acme"}, follow_redirects=False)
    assert exact.status_code == 303
    unique = client.post("/m/contact/new", data={"full_name": "B", "account__title": "glob"}, follow_redirects=False)
    picked = client.post("/m/contact/new", data={"full_name": "C", "account__title": f"Acme · #{acme['id']}"}, follow_redirects=False)
    assert unique.status_code == 303 and picked.status_code == 303
    ambiguous = client.post("/m/contact/new", data={"full_name": "D", "account__title": "acm", "phone": "x"})
    assert ambiguous.status_code == 422 and "several Account records match" in ambiguous.text
    assert '<p class="error" id="f-phone-error">not a valid phone number</p>' in ambiguous.text  # every problem at once
    nothing = client.post("/m/contact/new", data={"full_name": "E", "account__title": "Initech"})
    assert nothing.status_code == 422 and "no Account matches “Initech”" in nothing.text
    contact_id = int(picked.headers["location"].rsplit("/", 1)[1])
    assert records.get(rt_of(app), SYSTEM, "contact", contact_id)["account"] == acme["id"]
    kept = client.post(f"/m/contact/{contact_id}/edit", data={"full_name": "C2", "account": str(acme["id"]), "account__title": "Acme",
                                                              "version": "1"}, follow_redirects=False)
    assert kept.status_code == 303 and records.get(rt_of(app), SYSTEM, "contact", contact_id)["account"] == acme["id"]
    cleared = client.post(f"/m/contact/{contact_id}/edit", data={"full_name": "C2", "account": str(acme["id"]), "account__title": "",
                                                                 "version": "2"}, follow_redirects=False)
    assert cleared.status_code == 303 and records.get(rt_of(app), SYSTEM, "contact", contact_id)["account"] is None


def test_prefilled_new_form_from_related_list(make_app: Any) -> None:
    app = make_app()
    acme = make(app, "account", name="Acme")
    page = admin(app).get(f"/m/deal/new?account={acme['id']}&stage=won&bogus=1&amount=oops").text
    assert f'name="account" value="{acme["id"]}"' in page and 'name="account__title" value="Acme"' in page
    assert '<option value="won" selected>' in page and 'name="amount" value=""' in page


def test_rep_cannot_read_or_write_restricted_fields(make_app: Any) -> None:
    app = make_app()
    rep_id, rep = user(app, "rep", "rep")
    account = make(app, "account", name="Mine", owner=rep_id, secret_score=4242, credit_limit=500)
    edit = rep.get(f"/m/account/{account['id']}/edit").text
    assert "4242" not in edit and "secret_score" not in edit and "Secret score" not in edit
    limit = field_html(edit, "credit_limit")
    assert "<output" in limit and "¥500.00" in limit and "<input" not in limit  # readable, not writable
    forged = rep.post(f"/m/account/{account['id']}/edit", data={"name": "Mine 2", "credit_limit": "999999", "secret_score": "1",
                                                                "version": "1"}, follow_redirects=False)
    assert forged.status_code == 422 and "4242" not in forged.text
    assert records.get(rt_of(app), SYSTEM, "account", account["id"])["name"] == "Mine"
    saved = rep.post(f"/m/account/{account['id']}/edit", data={"name": "Mine 2", "version": "1"}, follow_redirects=False)
    assert saved.status_code == 303
    after = records.get(rt_of(app), SYSTEM, "account", account["id"])
    assert after["name"] == "Mine 2" and after["credit_limit"] == 500 and after["secret_score"] == 4242
    again = rep.post(f"/m/account/{account['id']}/edit", data={"name": "", "version": "2"})
    assert again.status_code == 422 and "¥500.00" in field_html(again.text, "credit_limit") and "4242" not in again.text
    assert "4242" not in rep.get(f"/m/account/{account['id']}").text
    assert "4242" not in rep.get(f"/m/account/{account['id']}/timeline").text
    assert "4242" not in rep.get("/search?q=Mine").text
    state = rep.post("/m/account/form-state", data={"_id": str(account["id"]), "name": "x"}, headers={"HX-Request": "true"})
    assert state.status_code == 200 and "4242" not in state.text


def test_user_data_is_escaped_everywhere(make_app: Any) -> None:
    app = make_app()
    evil = '<script>alert(1)</script>"><img src=x>'
    account = make(app, "account", name=evil, notes=evil)
    make(app, "contact", full_name=evil, account=account["id"])
    client = admin(app)
    for path in ["/m/account", f"/m/account/{account['id']}", f"/m/account/{account['id']}/edit", "/search?q=script",
                 f"/m/account/{account['id']}/timeline", "/m/contact", "/m/account/kanban", f"/m/account/{account['id']}/print"]:
        page = client.get(path).text
        assert "<script>alert" not in page and "<img src=x>" not in page, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, path
    options = client.get("/m/account/autocomplete?q=script", headers={"HX-Request": "true"}).text
    assert "<script>" not in options and "&lt;script&gt;" in options
    bad = client.post("/m/account/new", data={"name": evil})
    assert bad.status_code == 422 and "<script>alert" not in bad.text  # unique name taken, input re-rendered escaped


def test_attachment_upload_through_the_form(make_app: Any, bundle_copy: Any) -> None:
    spec = bundle_copy / "modules" / "account.yaml"
    spec.write_text(spec.read_text().replace("fields: [email, website,", "fields: [scan, email, website,"))
    app = make_app(bundle_copy)
    client = admin(app)
    form_page = client.get("/m/account/new").text
    assert 'enctype="multipart/form-data"' in form_page and 'type="file" id="f-scan" name="scan"' in form_page
    assert 'hx-params="not scan"' in form_page  # live state never re-uploads the file
    created = client.post("/m/account/new", data={"name": "Files"}, files={"scan": ("contract.pdf", b"%PDF-1.4 test", "application/pdf")},
                          follow_redirects=False)
    assert created.status_code == 303
    page = client.get(created.headers["location"]).text
    link = re.search(r'<a href="(/files/\d+)">contract.pdf</a>', page)
    assert link and client.get(link.group(1)).content == b"%PDF-1.4 test"
    record_id = int(created.headers["location"].rsplit("/", 1)[1])
    edit = client.get(f"/m/account/{record_id}/edit").text
    assert "contract.pdf" in edit and 'name="scan__clear"' in edit
    kept = client.post(f"/m/account/{record_id}/edit", data={"name": "Files 2", "version": "1"}, follow_redirects=False)
    assert kept.status_code == 303 and records.get(rt_of(app), SYSTEM, "account", record_id)["scan"] is not None
    cleared = client.post(f"/m/account/{record_id}/edit", data={"name": "Files 2", "version": "2", "scan__clear": "true"},
                          follow_redirects=False)
    assert cleared.status_code == 303 and records.get(rt_of(app), SYSTEM, "account", record_id)["scan"] is None


def test_delete_rights_and_forms_need_permissions(make_app: Any) -> None:
    app = make_app()
    _, nobody = user(app, "nobody")
    assert nobody.get("/m/account/new").status_code == 403
    assert nobody.post("/m/account/new", data={"name": "x"}).status_code == 403
    assert nobody.post("/m/account/form-state", data={"name": "x"}).status_code == 403
    assert text(nobody.get("/m/account").text).count("You may not") <= 1


def test_a_field_read_only_by_the_posted_values_is_not_written(make_app: Any, bundle_copy: Any) -> None:
    """`read_only_if` is decided on the values the form posts: a won deal's amount is not taken, a proposal's is."""
    deal = bundle_copy / "modules" / "deal.yaml"
    deal.write_text(deal.read_text().replace("label: {en: Amount, zh: 金额}, min: 0}",
                                             "label: {en: Amount, zh: 金额}, min: 0, read_only_if: \"stage == 'won'\"}"))
    client = admin(make_app(bundle_copy))
    for title, stage, stored in (("Won one", "won", None), ("Open one", "initial", 12.5)):
        done = client.post("/m/deal/new", data={"title": title, "stage": stage, "amount": "12.50"}, follow_redirects=False)
        assert done.status_code == 303, done.text
        record = client.get(done.headers["location"].replace("/m/", "/api/", 1)).json()
        assert (record["stage"], record["amount"]) == (stage, stored)


URLENCODED = [b"a=1&b=%E4%B8%AD+x&c=&d", b"a=1;b=2", b"x=%2B86+10&x=2", b"name=caf\xc3\xa9", b"", b"&&a=1&", b"a=%zz", b"=v",
              b"csrf_token=abc&name=Bench+x+1&amount=1234.50&email=new%40example.com"]


@pytest.mark.parametrize("body", URLENCODED)
def test_a_urlencoded_form_reads_as_starlettes_parser_reads_it(body: bytes) -> None:
    """Loom reads url-encoded bodies with the standard library's parser (faster); the fields come out the same."""
    import asyncio

    from starlette.datastructures import Headers
    from starlette.formparsers import FormParser

    from engine.web.context import urlencoded

    async def starlettes() -> list[tuple[str, Any]]:
        async def stream() -> Any:
            yield body

        return list((await FormParser(Headers({"content-type": "application/x-www-form-urlencoded"}), stream()).parse()).multi_items())

    assert list(urlencoded(body).multi_items()) == asyncio.run(starlettes())


def test_a_form_of_too_many_fields_is_refused_and_nothing_is_written(make_app: Any) -> None:
    app = make_app()
    client = admin(app)
    body = "name=Crowd&" + "&".join(f"x{i}=1" for i in range(2001))
    done = client.post("/m/account/new", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}, follow_redirects=False)
    assert done.status_code == 422 and "more than 2000 fields" in done.text
    assert client.get("/api/account?name=Crowd").json()["items"] == []
