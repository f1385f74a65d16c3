"""Shared fixtures: a database per test (SQLite always, PostgreSQL when LOOM_TEST_PG is set), apps, users."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from engine.auth import sessions
from engine.auth.users import add_user
from engine.runtime import Runtime, Settings, make_engine, open_runtime

HERE = Path(__file__).resolve().parent
TEST_BUNDLE = HERE / "bundle"
CRM_BUNDLE = HERE.parent / "metadata"
PG_URL = os.environ.get("LOOM_TEST_PG", "")
DATABASES = ["sqlite", "postgresql"]


def _pg_database() -> Iterator[str]:
    if not PG_URL:
        pytest.skip("LOOM_TEST_PG is not set: PostgreSQL variant skipped (set it to a postgresql+psycopg:// URL)")
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = "loom_t_" + uuid.uuid4().hex[:12]
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a throwaway PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'loom.db'}"
    else:
        yield from _pg_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file (for tests that need only one database)."""
    return f"sqlite:///{tmp_path / 'loom.db'}"


@pytest.fixture
def bundle_copy(tmp_path: Path) -> Path:
    """A writable copy of the small test bundle."""
    target = tmp_path / "bundle"
    shutil.copytree(TEST_BUNDLE, target)
    return target


@pytest.fixture
def runtime(db_url: str) -> Iterator[Runtime]:
    """A runtime on the test bundle with its schema created."""
    from engine.migrate import ensure_schema

    rt = open_runtime(Settings(metadata=TEST_BUNDLE, db_url=db_url, files=Path(tempfile.mkdtemp(prefix="loom-files-"))), db=make_engine(db_url))
    ensure_schema(rt)
    yield rt
    rt.db.dispose()


@pytest.fixture
def make_app(db_url: str) -> Iterator[Callable[..., Any]]:
    """Factory: an app on `bundle` (default: the test bundle) and the test database."""
    from engine.web.app import create_app

    made: list[Any] = []

    def build(bundle: Path = TEST_BUNDLE, **state: Any) -> Any:
        app = create_app(Settings(metadata=bundle, db_url=db_url, files=Path(tempfile.mkdtemp(prefix="loom-files-"))), **state)
        made.append(app)
        return app

    yield build
    for app in made:
        app.state.runtime.db.dispose()


def add_test_user(rt: Runtime, username: str, roles: tuple[str, ...], password: str = "pw", **extra: Any) -> int:
    """Create a user and return its id."""
    with rt.db.begin() as conn:
        return add_user(conn, username, password, roles, **extra).id


def login(app: Any, username: str, roles: tuple[str, ...] | None = None, password: str = "pw") -> TestClient:
    """A TestClient logged in as `username` (created with `roles` when given); CSRF header preset."""
    rt: Runtime = app.state.runtime
    if roles is not None:
        add_test_user(rt, username, roles, password)
    client = TestClient(app)
    page = client.get("/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    done = client.post("/login", data={"username": username, "password": password, "csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303, done.text
    cookie = client.cookies.get("loom_session")
    assert cookie
    with rt.db.connect() as conn:
        found = sessions.lookup(conn, cookie)
    assert found is not None
    client.headers["X-CSRF-Token"] = found.csrf
    return client


def stop(proc: subprocess.Popen[Any], seconds: float = 15) -> None:
    """End a server process the test started (SIGTERM, then SIGKILL if it lingers) and close its pipes."""
    proc.terminate()
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
