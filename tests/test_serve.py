"""`loom serve --workers N`: each worker listens on a socket of its own (SO_REUSEPORT), so the kernel spreads a
client's connections over the workers; every listening socket is bound as TCP, so every accepted connection gets
TCP_NODELAY from asyncio (else keep-alive responses wait ~40 ms for a delayed ACK)."""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from engine.commands.serve import PortShare, worker_sockets

from .conftest import TEST_BUNDLE, stop

LINUX = sys.platform.startswith("linux")


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


def test_uvicorns_own_socket_gives_every_connection_tcp_nodelay() -> None:
    """Why Loom asks for uvicorn 0.55: before it, uvicorn bound its socket with protocol 0 (issue #3149)."""
    sock = uvicorn.Config("engine.web.asgi:app", factory=True, host="127.0.0.1", port=0).bind_socket()
    assert asyncio.run(_nodelay_of_a_served_connection(sock)) != 0


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="this platform has no SO_REUSEPORT: workers share one socket")
def test_a_port_share_arrives_in_a_worker_as_its_own_listening_tcp_socket() -> None:
    config = uvicorn.Config("engine.web.asgi:app", factory=True, host="127.0.0.1", port=0, workers=2)
    [share] = worker_sockets(config)
    assert isinstance(share, PortShare) and share.address[1] != 0  # port 0 resolved once, in the supervisor
    first, second = pickle.loads(pickle.dumps(share)), pickle.loads(pickle.dumps(share))  # as uvicorn's spawn hands it over
    assert first.fileno() != second.fileno() and first.getsockname() == second.getsockname() == share.address
    second.close()  # else the kernel may hand the test's connection to it, where nothing accepts
    try:
        assert first.proto == socket.IPPROTO_TCP
        assert asyncio.run(_nodelay_of_a_served_connection(first)) != 0
    finally:
        first.close()
        assert share.reserved is not None
        share.reserved.close()


def test_a_taken_port_is_refused_before_any_worker_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = uvicorn.Config("engine.web.asgi:app", factory=True, host="127.0.0.1", port=taken.getsockname()[1], workers=2)
        with pytest.raises(OSError):
            worker_sockets(config)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def _sockets(pid: int, port: int) -> tuple[set[str], set[str]]:
    """(listening, established) TCP socket inodes of process `pid` on local port `port`, read from /proc."""
    mine = {os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1] for fd in os.listdir(f"/proc/{pid}/fd")
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:[")}
    listening, established = set(), set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        cols = line.split()
        if int(cols[1].split(":")[1], 16) == port and cols[9] in mine:
            (listening if cols[3] == "0A" else established if cols[3] == "01" else set()).add(cols[9])
    return listening, established


@contextmanager
def _served(tmp_path: Path, workers: int) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--metadata", str(TEST_BUNDLE), "--db", f"sqlite:///{tmp_path}/w.db",
                             "--port", str(port), "--workers", str(workers)], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(300):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "loom serve died"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code == 200 and len(_children(proc.pid)) >= workers:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield proc, port
    finally:
        stop(proc)


@pytest.mark.skipif(not LINUX, reason="reads each worker's sockets from /proc, which only Linux has")
def test_two_workers_each_listen_and_share_a_burst_of_connections(tmp_path: Path) -> None:
    with _served(tmp_path, workers=2) as (proc, port):
        conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]  # opened together, before any is used
        try:
            for conn in conns:
                conn.sendall(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            for conn in conns:
                assert conn.recv(65536).startswith(b"HTTP/1.1 200")
            workers = [p for p in _children(proc.pid) if _sockets(p, port)[0]]
            seen = {pid: _sockets(pid, port) for pid in workers}
        finally:
            for conn in conns:
                conn.close()
        assert len(seen) == 2
        [first, second] = seen.values()
        assert first[0].isdisjoint(second[0])  # a listening socket each, not one shared
        assert not _sockets(proc.pid, port)[0]  # the supervisor listens on nothing: it would accept and never answer
        assert first[1] and second[1] and len(first[1]) + len(second[1]) == 16  # 2^-15 odds that 16 would all land on one
