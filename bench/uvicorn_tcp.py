"""`python -m bench.uvicorn_tcp ARGS`: uvicorn's command line, with the listening TCP socket marked IPPROTO_TCP.

With `--workers N` uvicorn binds the socket itself and leaves `proto` at 0; accepted connections inherit it and asyncio
then skips TCP_NODELAY, so every keep-alive response after the first waits ~40 ms for the client's delayed ACK
(uvicorn issue #3149). All contenders are started through this wrapper, so 2-worker figures measure the apps.
"""

from __future__ import annotations

import socket
import sys

import uvicorn.config
from uvicorn.main import main

_bind = uvicorn.config.Config.bind_socket


def bind_socket(self: uvicorn.config.Config) -> socket.socket:
    """uvicorn's socket, re-wrapped with proto IPPROTO_TCP when it is a TCP socket."""
    sock = _bind(self)
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto == 0:
        return socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
    return sock


uvicorn.config.Config.bind_socket = bind_socket  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
