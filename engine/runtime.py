"""One runtime: the spec, its tables and the database engine, built once by `open_runtime`."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.loader import Loaded, load
from engine.spec import Spec
from engine.tables import Tables, build_tables

DEFAULT_DB = "sqlite:///loom.db"
IDLE_PING = 5.0  # seconds a pooled connection may sit unused before it is tested


@dataclass(frozen=True)
class Settings:
    """Where the metadata and the database are, and how the server behaves."""

    metadata: Path = field(default_factory=lambda: Path(os.environ.get("LOOM_METADATA", "metadata")))
    db_url: str = field(default_factory=lambda: os.environ.get("LOOM_DATABASE_URL", DEFAULT_DB))
    secret: str = field(default_factory=lambda: os.environ.get("LOOM_SECRET", ""))
    files: Path = field(default_factory=lambda: Path(os.environ.get("LOOM_FILES", "loom_files")))
    max_upload: int = 20_000_000
    auto_migrate: bool = True
    debug: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Runtime:
    """Everything a request needs, built from the settings; kept on app.state."""

    settings: Settings
    spec: Spec
    tables: Tables
    db: sa.Engine
    loaded: Loaded
    revision: int = 0

    @cached_property
    def reads(self) -> sa.Engine:
        """The engine for reads (and one-statement writes): on a server database each statement commits by itself. A
        page's SELECTs then need no BEGIN and ROLLBACK round trips around them (4 of a record page's 7 on PostgreSQL),
        and under READ COMMITTED each statement sees its own snapshot either way. Never for several writes that
        must stand or fall together: `db.begin()` is for those."""
        return self.db if self.db.dialect.name == "sqlite" else self.db.execution_options(isolation_level="AUTOCOMMIT")

    @contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """A connection of `reads`: within `shared_reads` (one request) the same one every time, else a new one. What
        it wrote (a session's touch) is committed when the block ends."""
        opened = _SHARED.get()
        found = opened.get(self.db) if opened is not None else None
        conn = found if found is not None else self.reads.connect()
        if opened is not None:
            opened[self.db] = conn  # closed by `shared_reads`
        try:
            yield conn
            if conn.in_transaction():
                conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            if opened is None:
                conn.close()

    @contextmanager
    def writing(self) -> Iterator[sa.Connection]:
        """A transaction for writes that stand or fall together. On SQLite, within `shared_reads`, it runs on the
        request's connection when that one is idle (one pool checkout per request, as for reads); a server
        database's request connection commits each statement, so the transaction takes a connection of its own."""
        opened = _SHARED.get()
        found = opened.get(self.db) if opened is not None and self.db.dialect.name == "sqlite" else None
        if found is None or found.in_transaction():
            with self.db.begin() as own:
                yield own
            return
        with found.begin():
            yield found

    @property
    def nulls_large(self) -> bool:
        """Whether the database sorts NULL after every value (PostgreSQL) or before (SQLite)."""
        return self.db.dialect.name != "sqlite"


_SHARED: ContextVar[dict[sa.Engine, sa.Connection] | None] = ContextVar("loom_shared_reads", default=None)


@contextmanager
def shared_reads() -> Iterator[None]:
    """Within this block (a request), `Runtime.reading` hands out one connection per database, closed at the end: a
    list page reads the session, the rows and the titles through one pool checkout instead of three."""
    token = _SHARED.set({})
    try:
        yield
    finally:
        opened = _SHARED.get() or {}
        _SHARED.reset(token)
        for conn in opened.values():
            conn.close()


def make_engine(url: str, idle_ping: float = IDLE_PING) -> sa.Engine:
    """A SQLAlchemy engine; SQLite gets WAL, foreign-key-free pragmas and a busy timeout; a server database's pooled
    connection is tested before use when it has been idle `idle_ping` seconds (see `_ping_idle`)."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if ":memory:" not in url and url not in ("sqlite://", "sqlite:///"):
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    engine = sa.create_engine(url, pool_size=10, max_overflow=10)
    _ping_idle(engine, idle_ping)
    return engine


def _ping_idle(engine: sa.Engine, seconds: float) -> None:
    """Test a pooled connection with a round trip before use only when it sat idle `seconds` or more: a server restart
    or a network timeout drops idle connections, while one back in the pool a moment ago is alive. (`pool_pre_ping`
    tests every checkout: a round trip per checkout, two per request, about 0.3 ms of a 2 ms page on PostgreSQL.)
    A dead one is replaced before use; one dropped within `seconds` fails its statement once and SQLAlchemy then
    renews the whole pool."""

    @sa.event.listens_for(engine, "connect")
    @sa.event.listens_for(engine, "checkin")
    def _idle_since(_dbapi: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _ping(dbapi: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("idle_since", -math.inf) < seconds:
            return
        try:
            engine.dialect.do_ping(dbapi)
        except Exception as exc:  # the pool makes a new connection (up to three tries)
            raise sa.exc.DisconnectionError(str(exc)) from exc


def open_runtime(settings: Settings, db: sa.Engine | None = None, customizations: dict[str, Any] | None = None,
                 revision: int = 0) -> Runtime:
    """Load the metadata and build the tables (the database schema is not touched here)."""
    engine = db or make_engine(settings.db_url)
    if customizations is None:
        from engine.customize import current_layer
        revision, customizations = current_layer(engine)
    loaded = load(settings.metadata, customizations or None, f"customizations (rev {revision})")
    return Runtime(settings, loaded.spec, build_tables(loaded.spec), engine, loaded, revision)
