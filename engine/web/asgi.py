"""ASGI factory for uvicorn workers: settings from LOOM_METADATA and LOOM_DATABASE_URL."""

from __future__ import annotations

from starlette.applications import Starlette

from engine.runtime import Settings
from engine.web.app import create_app


def app() -> Starlette:
    """One app per worker process."""
    return create_app(Settings())
