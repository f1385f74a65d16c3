"""`python -m bench.uvicorn_workers ARGS`: uvicorn's command line, where `--workers N` listens as `loom serve` does.

Each worker binds the port itself with SO_REUSEPORT (`engine.commands.serve.worker_sockets`), so the kernel spreads
the load generator's keep-alive connections over the workers. With uvicorn's one shared socket, the worker that wakes
first accepts the whole burst and 2-worker runs measured one worker as often as two. Every contender starts through
this wrapper (it imports only the standard library and uvicorn from Loom's code), so 2-worker figures compare the apps.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

import uvicorn.config
from uvicorn.main import main

from engine.commands.serve import worker_sockets


def bind_socket(self: uvicorn.config.Config) -> Any:
    """What uvicorn's supervisor hands its workers: the per-worker port share (uvicorn calls this only with workers)."""
    [share] = worker_sockets(self)
    return share


if hasattr(socket, "SO_REUSEPORT"):
    uvicorn.config.Config.bind_socket = bind_socket  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
