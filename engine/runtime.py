"""One runtime: the spec, its tables and the database engine, built once by `open_runtime`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.loader import Loaded, load
from engine.spec import Spec
from engine.tables import Tables, build_tables

DEFAULT_DB = "sqlite:///loom.db"


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

    @property
    def nulls_large(self) -> bool:
        """Whether the database sorts NULL after every value (PostgreSQL) or before (SQLite)."""
        return self.db.dialect.name != "sqlite"


def make_engine(url: str) -> sa.Engine:
    """A SQLAlchemy engine; SQLite gets WAL, foreign-key-free pragmas and a busy timeout."""
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
    return sa.create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def open_runtime(settings: Settings, db: sa.Engine | None = None, customizations: dict[str, Any] | None = None,
                 revision: int = 0) -> Runtime:
    """Load the metadata and build the tables (the database schema is not touched here)."""
    engine = db or make_engine(settings.db_url)
    if customizations is None:
        from engine.customize import current_layer
        revision, customizations = current_layer(engine)
    loaded = load(settings.metadata, customizations or None, f"customizations (rev {revision})")
    return Runtime(settings, loaded.spec, build_tables(loaded.spec), engine, loaded, revision)
