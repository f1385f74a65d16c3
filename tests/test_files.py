"""Attachments: upload, reference from a record, download only by readers of that record."""

from __future__ import annotations

from typing import Any

from engine import records
from engine.access import SystemAccess
from engine.runtime import Runtime

from .conftest import add_test_user, login


def test_upload_attach_and_download_with_permissions(make_app: Any) -> None:
    app = make_app()
    rt: Runtime = app.state.runtime
    boss = login(app, "boss", ("admin",))
    add_test_user(rt, "rep", ("rep",))
    rep = login(app, "rep")
    sent = boss.post("/api/files", files={"file": ("合同.pdf", b"%PDF-1.4 contract", "application/pdf")})
    assert sent.status_code == 201, sent.text
    ref = sent.json()["ref"]
    assert boss.get(f"/files/{ref[5:]}").status_code == 404  # not attached to anything yet
    records.create(rt, SystemAccess(), "account", {"name": "Acme", "scan": ref, "owner": None})
    got = boss.get(f"/files/{ref[5:]}")
    assert got.status_code == 200 and got.content == b"%PDF-1.4 contract"
    assert "attachment" in got.headers["content-disposition"]
    assert rep.get(f"/files/{ref[5:]}").status_code == 200  # unowned: in the rep's pool scope
    assert rep.get("/files/999999").status_code == 404


def test_attachment_values_must_be_stored_files(runtime: Runtime) -> None:
    import pytest

    from engine.errors import Invalid

    with pytest.raises(Invalid) as caught:
        records.create(runtime, SystemAccess(), "account", {"name": "X", "scan": "/etc/passwd"})
    assert "scan" in caught.value.fields


def test_scope_hides_files_of_records_out_of_reach(make_app: Any) -> None:
    app = make_app()
    rt: Runtime = app.state.runtime
    boss_id = add_test_user(rt, "boss", ("admin",))
    rep = login(app, "rep", ("rep",))
    boss = login(app, "boss")
    ref = boss.post("/api/files", files={"file": ("a.txt", b"secret", "text/plain")}).json()["ref"]
    records.create(rt, SystemAccess(), "account", {"name": "Boss's", "scan": ref, "owner": boss_id})
    assert boss.get(f"/files/{ref[5:]}").status_code == 200
    assert rep.get(f"/files/{ref[5:]}").status_code == 404
