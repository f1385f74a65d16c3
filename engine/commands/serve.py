"""`loom serve`: run the web server (uvicorn) on the metadata and database given."""

from __future__ import annotations

import argparse
import os
import socket
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

    from engine.auth.config import from_environ
    from engine.migrate import ensure_schema
    from engine.runtime import Settings, open_runtime
    from engine.tables import refresh_statistics

    from_environ(os.environ)  # a malformed setting stops here, naming the variable, before anything is written

    # invalid metadata: every problem listed, nothing starts; migrated here, once (the app then need not compare again)
    rt = open_runtime(Settings(metadata=Path(args.metadata), db_url=args.db, auto_migrate=False))
    ensure_schema(rt)
    if args.demo:
        from engine.demo import load_demo

        load_demo(rt, size="small", only_if_empty=True, echo=print)
    refresh_statistics(rt.db, rt.tables)
    os.environ["LOOM_METADATA"], os.environ["LOOM_DATABASE_URL"] = str(args.metadata), args.db
    print(f"Loom serving {args.metadata} on http://{args.host}:{args.port}/ (database {args.db})", flush=True)
    options: dict[str, Any] = {"host": args.host, "port": args.port, "log_level": "warning", "proxy_headers": False}
    if args.workers == 1:
        uvicorn.run(in_process(rt), **options)  # the runtime just opened serves: metadata is not loaded twice
        return 0
    rt.db.dispose()
    workers(uvicorn.Config("engine.web.asgi:app", factory=True, workers=args.workers, **options))
    return 0


def workers(config: Any) -> None:
    """Serve with several worker processes sharing one listening socket."""
    from uvicorn.supervisors import Multiprocess

    Multiprocess(config, sockets=[listening_socket(config)]).run()


def listening_socket(config: Any) -> socket.socket:
    """uvicorn's listening socket, bound as TCP. uvicorn binds it with protocol 0 for several workers, so asyncio never
    sets TCP_NODELAY on the accepted connections and every keep-alive response after the first waits ~40 ms for the
    client's delayed ACK (uvicorn issue #3149)."""
    sock: socket.socket = config.bind_socket()
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto == 0:
        sock = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
    return sock


def in_process(rt: Any) -> Any:
    """The app of one worker on an open runtime, with the daily recompute running beside it."""
    import threading

    from engine.recompute import start_daily
    from engine.web.app import create_app

    made = create_app(runtime=rt)
    made.state.stop_jobs = threading.Event()
    start_daily(rt, made.state.stop_jobs)
    return made
