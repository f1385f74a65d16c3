"""The connection pool: a server database's connection that sat idle is tested before use and replaced when the
server dropped it, one just returned is used as it is (no round trip); a request reads through one connection."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from engine.runtime import make_engine
from tests.conftest import _pg_database, login


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from _pg_database()


def _backend(conn: sa.Connection) -> int:
    return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_the_server_dropped_while_idle_is_replaced_before_use(pg_url: str) -> None:
    engine = make_engine(pg_url, idle_ping=0.0)  # every checkout counts as idle
    try:
        with engine.connect() as conn:
            first = _backend(conn)
        with engine.connect() as conn:
            assert _backend(conn) == first  # pooled: the same server process
        admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first}).scalar_one() is True
        admin.dispose()
        with engine.connect() as conn:  # no error: the dead connection was found and replaced
            assert _backend(conn) != first
            assert conn.execute(sa.text("SELECT 41 + 1")).scalar_one() == 42
    finally:
        engine.dispose()


def test_only_a_connection_idle_for_the_set_time_is_pinged(pg_url: str) -> None:
    engine = make_engine(pg_url, idle_ping=1.0)
    pings = 0
    ping = engine.dialect.do_ping

    def counted(dbapi: object) -> bool:
        nonlocal pings
        pings += 1
        return ping(dbapi)

    engine.dialect.do_ping = counted  # type: ignore[method-assign]
    try:
        with engine.connect() as conn:
            first = _backend(conn)
        for _ in range(3):
            with engine.connect() as conn:
                assert _backend(conn) == first
        assert pings == 0  # new, then back in the pool a moment ago: no round trip
        time.sleep(1.1)
        with engine.connect() as conn:
            assert _backend(conn) == first
        assert pings == 1
    finally:
        engine.dispose()


def test_a_request_reads_through_one_pooled_connection(make_app: Callable[..., Any]) -> None:
    """The session lookup, the rows, link titles and the record read share the request's connection; a session's
    touch (written through it) is committed."""
    from engine import records
    from engine.access import SystemAccess
    from engine.auth import sessions

    app = make_app()
    rt = app.state.runtime
    client = login(app, "ada", ("admin",))
    parent = records.create(rt, SystemAccess(), "account", {"name": "Parent"})
    child = records.create(rt, SystemAccess(), "account", {"name": "Child", "parent": parent["id"]})
    checkouts: list[int] = []
    sa.event.listen(rt.db, "checkout", lambda *_: checkouts.append(1))
    for path in ("/m/account?sort=name", f"/m/account/{child['id']}", "/api/account?sort=name", f"/api/account/{child['id']}"):
        checkouts.clear()
        assert client.get(path).status_code == 200
        assert len(checkouts) == 1, path
    users = sessions.SESSIONS
    with rt.db.begin() as conn:  # an old touch: the next request writes a new one through the shared connection
        conn.execute(sa.update(users).values(last_seen=sessions._now() - sessions.TOUCH_EVERY * 2))
    assert client.get("/m/account").status_code == 200
    with rt.db.connect() as conn:
        seen = conn.execute(sa.select(sa.func.max(users.c.last_seen))).scalar_one()
    assert seen > sessions._now() - sessions.TOUCH_EVERY


def test_a_create_writes_through_the_request_connection_on_sqlite(make_app: Callable[..., Any]) -> None:
    """On SQLite the form's create (session lookup, insert, audit) takes one pooled connection; a server database's
    request connection commits each statement, so the write transaction takes a second. A create the unique index
    refuses rolls back on it and the next one works."""
    app = make_app()
    rt = app.state.runtime
    client = login(app, "ada", ("admin",))
    checkouts: list[int] = []
    sa.event.listen(rt.db, "checkout", lambda *_: checkouts.append(1))
    done = client.post("/m/account/new", data={"name": "Acme"}, follow_redirects=False)
    assert done.status_code == 303
    assert len(checkouts) == (1 if rt.db.dialect.name == "sqlite" else 2)
    taken = client.post("/m/account/new", data={"name": "Acme"}, follow_redirects=False)
    assert taken.status_code == 422 and "already" in taken.text
    assert client.post("/m/account/new", data={"name": "Beta"}, follow_redirects=False).status_code == 303
    with rt.db.connect() as conn:
        stored = conn.execute(sa.text("SELECT name FROM account ORDER BY name")).scalars().all()
    assert stored == ["Acme", "Beta"]
