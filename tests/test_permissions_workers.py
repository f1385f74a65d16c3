"""Two (and three) uvicorn worker processes on one PostgreSQL database: a session ended, a token revoked, an
allowlist rule or a policy changed through one worker is enforced by the others at their next request."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine import records
from engine.access import SystemAccess
from engine.auth import sessions
from engine.auth.users import add_user
from engine.migrate import ensure_schema
from engine.runtime import Settings, make_engine, open_runtime

from .conftest import PG_URL, TEST_BUNDLE, _pg_database, stop

pytestmark = pytest.mark.skipif(not PG_URL, reason="LOOM_TEST_PG is not set: the multi-worker test needs PostgreSQL")


OPEN: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Close every HTTP client a test opened (an open socket left behind is a ResourceWarning, an error here)."""
    yield
    while OPEN:
        OPEN.pop().close()


def _client(base: str, **options: Any) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=10, **options)
    OPEN.append(client)
    return client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def worker(bundle: Path, db_url: str, files: Path) -> Iterator[str]:
    """A uvicorn process serving `bundle` on the database; yields its base URL."""
    port = _free_port()
    env = os.environ | {"LOOM_METADATA": str(bundle), "LOOM_DATABASE_URL": db_url, "LOOM_FILES": str(files)}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "engine.web.asgi:app", "--factory", "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "warning"], env=env, cwd=Path(__file__).resolve().parent.parent,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "worker died")
            try:
                if httpx.get(base + "/login", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base
    finally:
        stop(proc, 10)


def _login(base: str, username: str, password: str = "long-password") -> httpx.Client:
    client = _client(base)
    page = client.get("/login").text
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    done = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    assert done.status_code == 303, done.text
    return client


def _csrf(client: httpx.Client, db_url: str) -> str:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            found = sessions.lookup(conn, client.cookies["loom_session"])
        assert found is not None
        return found.csrf
    finally:
        engine.dispose()


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    """A throwaway PostgreSQL database with the test bundle's schema, an admin, a rep and an account of the rep."""
    for url in _pg_database():
        rt = open_runtime(Settings(metadata=TEST_BUNDLE, db_url=url, files=tmp_path / "files"), db=make_engine(url))
        ensure_schema(rt)
        with rt.db.begin() as conn:
            add_user(conn, "boss", "long-password", ("admin",))
            ann = add_user(conn, "ann", "long-password", ("rep",))
        records.create(rt, SystemAccess(), "account", {"name": "Ann's", "owner": ann.id})
        rt.db.dispose()
        yield url


def _other(base: str, client: httpx.Client) -> httpx.Client:
    """The same session sent to another worker."""
    return _client(base, cookies=client.cookies)


def test_ending_sessions_and_revoking_tokens_on_one_worker_denies_on_the_other(database: str, tmp_path: Path) -> None:
    with worker(TEST_BUNDLE, database, tmp_path / "f") as one, worker(TEST_BUNDLE, database, tmp_path / "f") as two:
        admin = _login(one, "boss")
        ann = _login(one, "ann")
        ann_there = _other(two, ann)
        assert ann_there.get("/api/account").status_code == 200
        ann_id = ann.get("/api/account").json()["items"][0]["owner"]
        token = admin.post(f"/admin/users/{ann_id}/tokens", headers={"X-CSRF-Token": _csrf(admin, database)}).text
        bearer = token.split('class="token" value="')[1].split('"')[0]
        api_there = _client(two, headers={"Authorization": f"Bearer {bearer}"})
        assert api_there.get("/api/account").status_code == 200
        ended = admin.post(f"/admin/users/{ann_id}/sessions/end", headers={"X-CSRF-Token": _csrf(admin, database)})
        assert ended.status_code == 303
        assert ann_there.get("/api/account").status_code == 401
        assert api_there.get("/api/account").status_code == 401
        assert _other(two, admin).get("/api/account").status_code == 200


def test_logout_on_one_worker_denies_the_cookie_on_the_other(database: str, tmp_path: Path) -> None:
    with worker(TEST_BUNDLE, database, tmp_path / "f") as one, worker(TEST_BUNDLE, database, tmp_path / "f") as two:
        ann = _login(one, "ann")
        there = _other(two, ann)
        assert there.get("/api/account").status_code == 200
        assert ann.post("/logout", headers={"X-CSRF-Token": _csrf(ann, database)}).status_code == 303
        assert there.get("/api/account").status_code == 401


def test_an_allowlist_rule_added_on_one_worker_applies_on_the_other(database: str, tmp_path: Path) -> None:
    with worker(TEST_BUNDLE, database, tmp_path / "f") as one, worker(TEST_BUNDLE, database, tmp_path / "f") as two:
        admin, ann = _login(one, "boss"), _login(one, "ann")
        there = _other(two, ann)
        assert there.get("/api/account").status_code == 200
        added = admin.post("/admin/allowlist", data={"network": "10.0.0.0/8", "role": "rep"}, headers={"X-CSRF-Token": _csrf(admin, database)})
        assert added.status_code == 303
        assert there.get("/api/account").status_code == 403


def test_a_policy_change_published_by_one_worker_applies_on_the_others_at_once(database: str, tmp_path: Path) -> None:
    changed = tmp_path / "changed"
    shutil.copytree(TEST_BUNDLE, changed)
    account = changed / "modules" / "account.yaml"
    account.write_text(account.read_text().replace("rep: {read: self, create: true, write: self, unowned: true,",
                                                   "rep: {read: none, create: true, write: self, unowned: true,"))
    with worker(TEST_BUNDLE, database, tmp_path / "f") as one, worker(TEST_BUNDLE, database, tmp_path / "f") as two:
        ann_one = _login(one, "ann")
        ann_two = _other(two, ann_one)
        assert ann_one.get("/api/account").status_code == 200
        assert ann_two.get("/api/account").status_code == 200
        with worker(changed, database, tmp_path / "f") as three:
            assert _other(three, ann_one).get("/api/account").status_code == 403
            assert ann_two.get("/api/account").status_code == 403
            assert ann_one.get("/api/account").status_code == 403
