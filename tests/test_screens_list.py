"""List screen: columns, filters, sort, quick search, keyset paging, counts, HTMX fragments, bulk actions, saved views, kanban."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .test_screens import admin, make, rt_of, text, user


def names_in(html: str) -> list[str]:
    """The record titles (first column links) of a list page, in order."""
    return re.findall(r'<a class="row-link" href="/m/\w+/\d+">([^<]*)</a>', html)


def link(html: str, rel: str) -> str:
    """The href of a pager link."""
    found = re.search(rf'<a href="([^"]+)" rel="{rel}">', html)
    assert found, f"no {rel} link"
    return found.group(1).replace("&amp;", "&")


def seed_accounts(app: Any) -> dict[str, int]:
    rows = [("Alpha", "key", 500, "2020-01-05"), ("Bravo", "general", 1500, "2021-06-01"), ("Charlie", "key", 2500, "2022-03-10"),
            ("Delta", "new", None, None), ("Echo", "key", 800, "2023-11-30")]
    return {n: make(app, "account", name=n, category=c, credit_limit=cl, founded=f)["id"] for n, c, cl, f in rows}


def test_list_shows_layout_columns_sorted_by_default(make_app: Any) -> None:
    app = make_app()
    seed_accounts(app)
    client = admin(app)
    page = client.get("/m/account")
    assert page.status_code == 200
    head = page.text.split("<thead")[1].split("</thead>")[0]
    assert [h for h in re.findall(r'<a href="[^"]*">([^<]+)<', head)] == ["Code", "Name", "Category", "Credit limit", "Owner", "Updated"]
    assert len(names_in(page.text)) == 5  # the first column (code) links to the record
    assert "¥2,500.00" in page.text and '<span class="badge">Key</span>' in page.text
    assert '<span class="count" id="count" hx-get="/m/account/count" hx-trigger="load"' in page.text  # counted lazily
    assert admin_count(page, client) == "5 records"


def admin_count(page: Any, client: Any) -> str:
    """The count a list page loads lazily (what HTMX fetches on load)."""
    found = re.search(r'id="count" hx-get="([^"]+)"', page.text)
    assert found
    fragment = client.get(found.group(1).replace("&amp;", "&"), headers={"HX-Request": "true", "HX-Target": "count"})
    return re.sub(r"<[^>]+>", "", fragment.text).strip()


def test_count_inline_without_javascript_and_capped(make_app: Any) -> None:
    app = make_app()
    seed_accounts(app)
    client = admin(app)
    page = client.get("/m/account?category=key")
    assert 'class="nojs-only" href="/m/account?category=key&amp;count=1"' in page.text
    inline = client.get("/m/account?category=key&count=1")
    assert '<span class="count" id="count">3 records</span>' in inline.text
    assert admin_count(client.get("/m/account?q=Delta"), client) == "1 record"


def test_filters_combine_with_and(make_app: Any) -> None:
    app = make_app()
    seed_accounts(app)
    client = admin(app)
    shown = lambda url: sorted(re.findall(r'<td data-label="Name">([^<]+)</td>', client.get(url).text))  # noqa: E731
    assert shown("/m/account?category=key") == ["Alpha", "Charlie", "Echo"]
    assert shown("/m/account?category=key&credit_limit__gte=600") == ["Charlie", "Echo"]
    assert shown("/m/account?category=key&credit_limit__gte=600&credit_limit__lte=1000") == ["Echo"]
    assert shown("/m/account?founded__gte=2021-01-01&founded__lte=2022-12-31") == ["Bravo", "Charlie"]
    assert shown("/m/account?q=ha") == ["Alpha", "Charlie"]
    assert shown("/m/account?q=ha&category=key&credit_limit__gte=1000") == ["Charlie"]
    assert shown("/m/account?category=&credit_limit__gte=") == ["Alpha", "Bravo", "Charlie", "Delta", "Echo"]


def test_filter_widgets_from_layout(make_app: Any) -> None:
    app = make_app()
    page = admin(app).get("/m/account?category=key&credit_limit__gte=10")
    form = page.text.split('<form id="filters"')[1].split("</form>")[0]
    assert '<select name="category">' in form and '<option value="key" selected>Key</option>' in form
    assert 'name="credit_limit__gte" value="10"' in form and 'name="credit_limit__lte"' in form
    assert 'type="date" name="founded__gte"' in form
    assert 'name="parent__title"' in form and 'hx-get="/m/account/autocomplete"' in form
    assert '<select name="owner">' in form and ">Me</option>" in form
    assert '<label for="filters-toggle" class="button ghost filters-button">Filters (2)</label>' in form  # phones fold the rest away


def test_link_filter_by_typed_title_and_by_id(make_app: Any) -> None:
    app = make_app()
    ids = seed_accounts(app)
    for name in ("Jane", "John"):
        make(app, "contact", full_name=name, account=ids["Alpha"] if name == "Jane" else ids["Bravo"])
    client = admin(app)
    typed = client.get("/m/contact?account__title=alph")
    assert names_in(typed.text) == ["Jane"]
    picked = client.get(f"/m/contact?account__title=Bravo · %23{ids['Bravo']}")
    assert names_in(picked.text) == ["John"]
    by_id = client.get(f"/m/contact?account={ids['Alpha']}")
    assert names_in(by_id.text) == ["Jane"] and f'value="Alpha · #{ids["Alpha"]}"' in by_id.text
    missing = client.get("/m/contact?account__title=nobody")
    assert missing.status_code == 422 and "no Account matches" in missing.text


def test_sort_by_clicking_headers(make_app: Any) -> None:
    app = make_app()
    seed_accounts(app)
    client = admin(app)
    page = client.get("/m/account?sort=name")
    assert names_in(page.text) == sorted(names_in(page.text))
    header = re.search(r'<th class=""[^>]*aria-sort="ascending"><a href="([^"]+)">Name', page.text)
    assert header, "the sorted header says so"
    flipped = client.get(header.group(1).replace("&amp;", "&"))
    assert "sort=-name" in header.group(1)
    limits = re.findall(r'data-label="Credit limit">([^<]*)<', client.get("/m/account?sort=-credit_limit").text)
    values = [float(v.strip("¥").replace(",", "")) for v in limits if v]
    assert values == sorted(values, reverse=True)
    assert names_in(flipped.text) == sorted(names_in(page.text), reverse=True) or len(names_in(flipped.text)) == 5


def test_links_keep_every_filter_encoded_as_urlencode_does() -> None:
    from urllib.parse import urlencode

    from engine.web.views import with_query

    cases = [[], [("q", "a b&c=d")], [("industry", "retail"), ("sort", "-amount")], [("q", "客户 #1/2?"), ("n", 5)],
             [("cursor", "W" * 200), ("q", "+%20")], [("a", ""), ("b", "é" * 70)]]
    for params in cases:
        made = with_query("/m/account", params)
        assert made == ("/m/account?" + urlencode(params) if params else "/m/account"), params
        assert parse_qsl(urlsplit(made).query, keep_blank_values=True) == [(k, str(v)) for k, v in params]


def test_header_links_keep_a_filter_with_reserved_characters(make_app: Any) -> None:
    app = make_app()
    seed_accounts(app)
    page = admin(app).get("/m/account", params={"q": "Al & co=1", "sort": "name"})
    header = re.search(r'aria-sort="ascending"><a href="([^"]+)">Name', page.text)
    assert header
    assert dict(parse_qsl(urlsplit(header.group(1).replace("&amp;", "&")).query)) == {"q": "Al & co=1", "sort": "-name"}


def test_keyset_paging_next_and_previous(make_app: Any) -> None:
    app = make_app()
    for i in range(60):
        make(app, "contact", full_name=f"Person {i:02d}")
    client = admin(app)
    first = client.get("/m/contact?sort=full_name")
    assert names_in(first.text) == [f"Person {i:02d}" for i in range(25)] and admin_count(first, client) == "60 records"
    assert 'rel="prev"' not in first.text
    second = client.get(link(first.text, "next"))
    assert names_in(second.text) == [f"Person {i:02d}" for i in range(25, 50)]
    assert 'id="count" hx-get="/m/contact/count?' in second.text  # deeper pages count lazily
    third = client.get(link(second.text, "next"))
    assert names_in(third.text) == [f"Person {i:02d}" for i in range(50, 60)] and 'rel="next"' not in third.text
    back = client.get(link(third.text, "prev"))
    assert names_in(back.text) == names_in(second.text)
    back_again = client.get(link(back.text, "prev"))
    assert names_in(back_again.text) == names_in(first.text) and 'rel="prev"' not in back_again.text
    assert names_in(client.get(link(back_again.text, "next")).text) == names_in(second.text)
    assert "sort=full_name" in link(second.text, "first")
    count = client.get(re.search(r'hx-get="(/m/contact/count\?[^"]*)"', second.text).group(1).replace("&amp;", "&"))
    assert count.text.strip() == '<span class="count" id="count">60 records</span>'


def test_bad_parameters_are_shown_inline_with_422(make_app: Any) -> None:
    client = admin(make_app())
    for query, key in [("credit_limit__gte=lots", "credit_limit__gte"), ("sort=nothing", "sort"), ("cursor=%%%", "cursor"),
                       ("bogus=1", "bogus"), ("founded__contains=x", "founded__contains")]:
        page = client.get(f"/m/account?{query}")
        assert page.status_code == 422, query
        assert "Some filters are not valid" in page.text and f"<code>{key}</code>" in page.text
        assert '<form id="filters"' in page.text


def test_htmx_gets_only_the_results_and_the_canonical_url(make_app: Any) -> None:
    app = make_app()
    seed_accounts(app)
    client = admin(app)
    fragment = client.get("/m/account?category=key&credit_limit__gte=&q=&sort=name",
                              headers={"HX-Request": "true", "HX-Target": "results"})
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<section id="results"') and "<html" not in fragment.text
    assert fragment.headers["hx-push-url"] == "/m/account?category=key&sort=name"
    assert "HX-Target" in fragment.headers["vary"]
    assert names_in(fragment.text) and 'name="sort" value="name" form="filters"' in fragment.text
    restore = client.get("/m/account", headers={"HX-Request": "true", "HX-Target": "results", "HX-History-Restore-Request": "true"})
    assert "<html" in restore.text


def test_chosen_columns(make_app: Any) -> None:
    app = make_app()
    seed_accounts(app)
    page = admin(app).get("/m/account?columns=name,founded,employees")
    head = page.text.split("<thead")[1].split("</thead>")[0]
    assert re.findall(r'<a href="[^"]*">([^<]+)<', head) == ["Name", "Founded", "Employees"]
    assert "columns=name%2Cfounded%2Cemployees" in page.text  # kept in sort links, views and paging


def test_bulk_delete_confirms_without_js_and_deletes(make_app: Any) -> None:
    app = make_app()
    ids = seed_accounts(app)
    client = admin(app)
    chosen = {"ids": [str(ids["Alpha"]), str(ids["Bravo"])], "op": "delete", "back": "/m/account?category=key"}
    confirm = client.post("/m/account/bulk", data=chosen)
    assert confirm.status_code == 200 and "Delete these 2 records?" in confirm.text
    assert "Alpha" in text(confirm.text) and 'name="confirm" value="1"' in confirm.text
    done = client.post("/m/account/bulk", data=chosen | {"confirm": "1"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/m/account?category=key"
    after = client.get("/m/account")
    assert "Deleted 2 records." in after.text and sorted(names_in(after.text)) != [] and "Alpha" not in text(after.text)
    htmx = client.post("/m/account/bulk", data={"ids": str(ids["Echo"]), "op": "delete", "confirm": "1"}, headers={"HX-Request": "true"})
    assert htmx.headers["hx-redirect"] == "/m/account"
    nothing = client.post("/m/account/bulk", data={"op": "delete"}, follow_redirects=False)
    assert nothing.status_code == 303 and "Select at least one record." in client.get("/m/account").text


def test_bulk_and_list_export_links(make_app: Any) -> None:
    app = make_app()
    ids = seed_accounts(app)
    client = admin(app)
    out = client.post("/m/account/bulk", data={"ids": [str(ids["Alpha"]), str(ids["Echo"])], "op": "export_xlsx"},
                      follow_redirects=False)
    target = urlsplit(out.headers["location"])
    assert target.path == "/m/account/export" and dict(parse_qsl(target.query)) == {"format": "xlsx", "id__in": f"{ids['Alpha']},{ids['Echo']}"}
    page = client.get("/m/account?category=key&founded__lte=2022-01-01")
    assert 'href="/m/account/export?format=csv&amp;category=key&amp;founded__lte=2022-01-01"' in page.text
    _, rep = user(app, "rep", "rep")
    assert "/export?" not in rep.get("/m/account").text  # no export permission, no link


def test_saved_views(make_app: Any) -> None:
    app = make_app()
    seed_accounts(app)
    client = admin(app)
    saved = client.post("/m/account/views", data={"name": "Key accounts", "query": "category=key&sort=name&cursor=abc&toast=x"},
                        follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == "/m/account?category=key&sort=name"
    page = client.get("/m/account?category=key")
    assert "View saved." in page.text
    assert 'hx-get="/m/account/views?category=key" hx-trigger="toggle once"' in page.text  # the menu loads when opened
    menu = client.get("/m/account/views?category=key", headers={"HX-Request": "true", "HX-Target": "views-menu"})
    assert "<html" not in menu.text and 'name="query" value="category=key"' in menu.text
    found = re.search(r'<div class="view-row"><a href="([^"]+)">Key accounts</a>', menu.text)
    assert found and found.group(1).replace("&amp;", "&") == "/m/account?category=key&sort=name"
    client.post("/m/account/views", data={"name": "Key accounts", "query": "category=general"})
    full = client.get("/m/account/views")
    assert "<html" in full.text and len(re.findall(">Key accounts</a>", full.text)) == 1  # same name replaces
    _, other = user(app, "other", "manager")
    assert "Key accounts" not in other.get("/m/account/views").text
    view_id = re.search(r'action="/m/account/views/(\d+)/delete"', full.text).group(1)
    assert other.post(f"/m/account/views/{view_id}/delete").status_code == 404  # not theirs
    assert client.post(f"/m/account/views/{view_id}/delete", follow_redirects=False).status_code == 303
    assert "Key accounts" not in client.get("/m/account/views").text
    assert client.post("/m/account/views", data={"name": "", "query": ""}).status_code == 422


def test_kanban_lanes_and_moving_cards(make_app: Any) -> None:
    app = make_app()
    first = make(app, "deal", title="First", stage="initial", amount=10)
    make(app, "deal", title="Second", stage="won", amount=20)
    client = admin(app)
    board = client.get("/m/deal/kanban")
    assert board.status_code == 200
    lanes = re.findall(r'<section class="lane" data-lane="(\w*)">', board.text)
    assert lanes == ["initial", "proposal", "won", "lost"]
    assert board.text.index("First") < board.text.index('data-lane="proposal"') < board.text.index("Second")
    assert 'draggable="true"' in board.text and 'class="kmove"' in board.text
    moved = client.post(f"/m/deal/{first['id']}/move", data={"value": "won", "version": "1", "back": "/m/deal/kanban?q=F"},
                        follow_redirects=False)
    assert moved.status_code == 303 and moved.headers["location"] == "/m/deal/kanban?q=F"
    assert records_stage(app, first["id"]) == "won"
    by_js = client.post(f"/m/deal/{first['id']}/move", data={"value": "lost", "version": "2"}, headers={"Accept": "application/json"})
    assert by_js.status_code == 422 and "lost_reason" in by_js.json()["error"]["fields"]
    stale = client.post(f"/m/deal/{first['id']}/move", data={"value": "initial", "version": "1"}, headers={"Accept": "application/json"})
    assert stale.status_code == 409
    ok = client.post(f"/m/deal/{first['id']}/move", data={"value": "proposal", "version": "2", }, headers={"Accept": "application/json"})
    assert ok.status_code == 422  # proposal needs a close date: the board obeys the same rules as the form
    assert client.get("/m/contact/kanban").status_code == 404  # no board in the layout


def records_stage(app: Any, deal_id: int) -> str:
    from engine import records

    from .test_screens import SYSTEM

    return str(records.get(rt_of(app), SYSTEM, "deal", deal_id)["stage"])


def test_rep_list_never_shows_unreadable_fields(make_app: Any) -> None:
    app = make_app()
    rep_id, rep = user(app, "rep", "rep")
    make(app, "account", name="Secretive", secret_score=4242, owner=rep_id)
    for url in ["/m/account", "/m/account?columns=name,secret_score"]:
        page = rep.get(url)
        assert "Secretive" in page.text and "4242" not in page.text and "Secret score" not in page.text
    assert names_in(rep.get("/m/account?q=4242").text) == []
    assert rep.get("/m/account?sort=secret_score").status_code == 422
    assert rep.get("/m/account?secret_score=4242").status_code == 422
