"""`loom serve --workers N`: the shared listening socket is bound as TCP, so every accepted connection gets
TCP_NODELAY from asyncio (uvicorn leaves protocol 0, and keep-alive responses then wait ~40 ms for a delayed ACK)."""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from engine.commands.serve import listening_socket


async def _nodelay_of_a_served_connection(sock: socket.socket) -> int:
    seen: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(handle, sock=sock)
    async with server:
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        for _ in range(200):
            if seen:
                break
            await asyncio.sleep(0.01)
        writer.close()
    return seen[0]


def test_the_workers_socket_gives_every_connection_tcp_nodelay() -> None:
    config = uvicorn.Config("engine.web.asgi:app", factory=True, host="127.0.0.1", port=0, workers=2)
    sock = listening_socket(config)
    assert sock.proto == socket.IPPROTO_TCP and sock.family == socket.AF_INET
    assert asyncio.run(_nodelay_of_a_served_connection(sock)) != 0


def test_uvicorns_own_socket_would_not() -> None:
    """The cause, kept visible: if uvicorn starts binding as TCP itself, listening_socket can go."""
    sock = uvicorn.Config("engine.web.asgi:app", factory=True, host="127.0.0.1", port=0).bind_socket()
    assert asyncio.run(_nodelay_of_a_served_connection(sock)) == 0
