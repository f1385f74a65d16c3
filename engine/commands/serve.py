"""`loom serve`: run the web server (uvicorn) on the metadata and database given."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any


def add(subs: Any, common: argparse.ArgumentParser) -> None:
    """Register the command."""
    p = subs.add_parser("serve", parents=[common], help="run the web server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--demo", action="store_true", help="load the demo data and demo users first (only into an empty database)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Check the metadata, migrate, optionally load the demo, then serve."""
    import uvicorn

    from engine.loader import load
    from engine.migrate import ensure_schema
    from engine.runtime import Settings, open_runtime

    load(Path(args.metadata))  # invalid metadata: every problem listed, nothing starts
    settings = Settings(metadata=Path(args.metadata), db_url=args.db)
    rt = open_runtime(settings)
    ensure_schema(rt)
    if args.demo:
        from engine.demo import load_demo

        load_demo(rt, size="small", only_if_empty=True, echo=print)
    rt.db.dispose()
    os.environ["LOOM_METADATA"], os.environ["LOOM_DATABASE_URL"] = str(args.metadata), args.db
    print(f"Loom serving {args.metadata} on http://{args.host}:{args.port}/ (database {args.db})", flush=True)
    uvicorn.run("engine.web.asgi:app", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level="warning", proxy_headers=False)
    return 0
