"""ASGI factory for uvicorn workers: settings from LOOM_METADATA and LOOM_DATABASE_URL."""

from __future__ import annotations

from starlette.applications import Starlette

from engine.runtime import Settings
from engine.web.app import create_app


def app() -> Starlette:
    """One app per worker process; the daily recompute runs in one of them per day."""
    import threading

    from engine.recompute import start_daily

    made = create_app(Settings())
    made.state.stop_jobs = threading.Event()
    start_daily(made.state.runtime, made.state.stop_jobs)
    return made
