"""Managing people and asking "who may do what": `loom user` and `loom explain` in their own processes, and the admin
pages (users, one user's sessions, explain) through HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

from starlette.testclient import TestClient

from engine.auth import sessions
from engine.auth.users import find_user

from .conftest import TEST_BUNDLE, login

PASSWORD = "long-enough-pass-1"


def loom(db_url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args, "--metadata", str(TEST_BUNDLE), "--db", db_url],
                          input=stdin, capture_output=True, text=True, timeout=120, check=False)


def test_loom_user_adds_changes_disables_and_issues_tokens(make_app: Callable[..., Any], db_url: str) -> None:
    app = make_app()  # creates the schema
    rt = app.state.runtime
    added = loom(db_url, "user", "add", "ann", "--roles", "rep", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0 and "added user ann" in added.stdout.lower(), added.stderr
    refused = loom(db_url, "user", "add", "bob", "--roles", "pilot", "--password-stdin", stdin=PASSWORD + "\n")
    assert refused.returncode != 0 and "pilot" in refused.stderr + refused.stdout
    assert loom(db_url, "user", "roles", "ann", "--add", "manager").stdout.strip() == "ann: rep, manager"
    token = loom(db_url, "user", "token", "ann").stdout.strip()
    client = TestClient(app)
    assert client.get("/api/account", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    web = login(app, "ann", password=PASSWORD)
    assert web.get("/api/account").status_code == 200
    disabled = loom(db_url, "user", "disable", "ann")
    assert disabled.returncode == 0, disabled.stderr
    assert client.get("/api/account", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert web.get("/api/account").status_code == 401  # the live web session ended too
    listed = loom(db_url, "user", "list").stdout
    assert "ann" in listed and "disabled" in listed
    with rt.db.connect() as conn:
        user = find_user(conn, "ann")
        assert user is not None and not user.active and user.roles == ("rep", "manager")


def test_loom_explain_names_the_deciding_rule_with_its_file_and_line(make_app: Callable[..., Any], db_url: str) -> None:
    make_app()
    loom(db_url, "user", "add", "ann", "--roles", "rep", "--password-stdin", stdin=PASSWORD + "\n")
    hidden = loom(db_url, "explain", "ann", "account.secret_score")
    assert hidden.returncode == 0, hidden.stderr
    read_line = next(line for line in hidden.stdout.splitlines() if line.startswith("read account.secret_score"))
    assert ": no" in read_line
    assert "account.yaml:" in hidden.stdout and "permissions.rep" in hidden.stdout
    readable = loom(db_url, "explain", "ann", "account.credit_limit").stdout
    assert "read account.credit_limit: yes" in readable and "write account.credit_limit: no" in readable
    unknown = loom(db_url, "explain", "ann", "nosuch")
    assert unknown.returncode != 0 and "unknown module 'nosuch'" in unknown.stderr + unknown.stdout


def test_admin_pages_add_a_user_explain_and_end_sessions(make_app: Callable[..., Any]) -> None:
    app = make_app()
    admin = login(app, "root", ("admin",))
    rep = login(app, "ann", ("rep",))
    assert rep.get("/admin/users").status_code == 403 and rep.get("/admin/explain").status_code == 403
    made = admin.post("/admin/users", data={"username": "cho", "password": PASSWORD, "roles": "manager"}, follow_redirects=False)
    assert made.status_code == 303 and "added%20cho" in made.headers["location"]
    users = admin.get("/admin/users").text
    assert "cho" in users and "ann" in users
    asked = admin.get("/admin/explain", params={"user": "ann", "target": "account.secret_score"})
    assert asked.status_code == 200 and "account.yaml:" in asked.text and "secret_score" in asked.text
    wrong = admin.get("/admin/explain", params={"user": "ann", "target": "account.nope"})
    assert wrong.status_code == 200 and "unknown field" in wrong.text
    with app.state.runtime.db.connect() as conn:
        ann = find_user(conn, "ann")
    assert ann is not None
    ended = admin.post(f"/admin/users/{ann.id}/sessions/end", follow_redirects=False)
    assert ended.status_code == 303 and "ended" in ended.headers["location"]
    assert rep.get("/api/account").status_code == 401
    with app.state.runtime.db.connect() as conn:
        assert not [s for s in sessions.live(conn, ann.id)]
