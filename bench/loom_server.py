"""ASGI factory for uvicorn: Loom serving the bench bundle on BENCH_DB_URL (`uvicorn --factory bench.loom_server:app`)."""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette

from engine.runtime import Settings
from engine.web.app import create_app

BUNDLE = Path(__file__).resolve().parent / "bundle"


def app() -> Starlette:
    """One Loom app per worker process, as `loom serve` builds it."""
    return create_app(Settings(metadata=BUNDLE, db_url=os.environ["BENCH_DB_URL"], files=Path(os.environ.get("BENCH_FILES", "bench/data/files"))))
