"""`loom serve`: run the web server (uvicorn) on the metadata and database given."""

from __future__ import annotations

import argparse
import os
import socket
from dataclasses import dataclass
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
    """Serve with several worker processes: each listens on a socket of its own where the platform allows it, else
    on one shared socket."""
    from uvicorn.supervisors import Multiprocess

    Multiprocess(config, sockets=worker_sockets(config)).run()


def worker_sockets(config: Any) -> list[Any]:
    """What each worker process listens on. With SO_REUSEPORT every worker binds the port itself (a `PortShare`,
    which uvicorn hands each worker it spawns) and the kernel spreads new connections over the workers. With one
    shared socket, the worker that wakes first accepts a whole burst: a client's keep-alive connections opened
    together all land on one worker while the others idle."""
    if not hasattr(socket, "SO_REUSEPORT") or config.uds or config.fd is not None:
        return [config.bind_socket()]
    family, _, _, _, address = socket.getaddrinfo(config.host, config.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)[0]
    probe = bind_port(family, address)  # a port taken, or asked as 0, shows here, before any worker starts
    return [PortShare(family, probe.getsockname()[:2], config.backlog, probe)]


@dataclass(frozen=True)
class PortShare:
    """A listening address that each worker process binds for itself (SO_REUSEPORT). It pickles as a call to
    `bind_port`, so in a spawned worker it arrives as that worker's own listening socket. The supervisor keeps
    `reserved`, bound but not listening, so the port stays Loom's while workers restart; the kernel hands new
    connections only to listening sockets."""

    family: int
    address: tuple[Any, ...]
    backlog: int
    reserved: socket.socket | None = None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return bind_port, (self.family, self.address, self.backlog)


def bind_port(family: int, address: tuple[Any, ...], backlog: int | None = None) -> socket.socket:
    """A TCP socket bound to `address` with SO_REUSEPORT; listening when a backlog is given. Bound as IPPROTO_TCP,
    as uvicorn binds its own (from 0.55): asyncio sets TCP_NODELAY only on connections accepted from such a socket, and
    without it every keep-alive response after the first waits ~40 ms for the client's delayed ACK."""
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        if backlog is not None:
            sock.listen(backlog)
    except OSError:
        sock.close()
        raise
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
