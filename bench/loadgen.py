"""A small HTTP/1.1 load generator (standard library only), run as its own process.

Reads one JSON job on stdin, prints one JSON result on stdout:
  job = {"port": 8123, "requests": [{"method": "GET", "path": "/x", "headers": {...}, "body": "a={n}"}, ...],
         "count": 400, "concurrency": 8, "max_seconds": 20, "ok": [200], "first_n": 0}
Requests are taken round-robin from the list; `{n}` in a path or body becomes a number unique within the job
(first_n + request index), `{id}` a record id spread over 1..ids (job key "ids").
Keep-alive connections to 127.0.0.1 only; bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from typing import Any

HOST = "127.0.0.1"


def _fill(text: str, n: int, ids: int) -> str:
    return text.replace("{n}", str(n)).replace("{id}", str(1 + (n * 7919) % ids))


def _encode(req: dict[str, Any], n: int, port: int, ids: int = 1) -> bytes:
    path = _fill(req["path"], n, ids)
    body = _fill(req.get("body", ""), n, ids).encode()
    lines = [f"{req.get('method', 'GET')} {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in req.get("headers", {}).items()]
    if body or req.get("method", "GET") in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, int, bool]:
    """Status, body size, and whether the server will close the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    size = 0
    if "content-length" in headers:
        size = int(headers["content-length"])
        await reader.readexactly(size)
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            chunk = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(chunk + 2)
            size += chunk
            if chunk == 0:
                break
    elif status not in (204, 304) and headers.get("connection", "").lower() == "close":
        size = len(await reader.read())
    return status, size, headers.get("connection", "").lower() == "close"


class Run:
    """Shared state of one job: the next request index, the results."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        self.next = 0
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.errors: list[str] = []
        self.bytes = 0
        self.deadline = time.perf_counter() + float(job.get("max_seconds", 30))

    def take(self) -> int | None:
        if self.next >= self.job["count"] or time.perf_counter() > self.deadline:
            return None
        self.next += 1
        return self.next - 1


async def _worker(run: Run) -> None:
    port, reqs, first = run.job["port"], run.job["requests"], int(run.job.get("first_n", 0))
    reader = writer = None
    while (i := run.take()) is not None:
        data = _encode(reqs[i % len(reqs)], first + i, port, int(run.job.get("ids", 1)))
        start = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(HOST, port)
            assert reader is not None
            writer.write(data)
            status, size, close = await asyncio.wait_for(_read_response(reader), timeout=float(run.job.get("timeout", 30)))
        except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            run.errors.append(f"{type(exc).__name__}: {exc}"[:200])
            if writer is not None:
                writer.close()
            reader = writer = None
            continue
        run.latencies.append(time.perf_counter() - start)
        run.statuses[status] = run.statuses.get(status, 0) + 1
        run.bytes += size
        if close:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def main(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job and summarise it."""
    run = Run(job)
    started = time.perf_counter()
    await asyncio.gather(*(_worker(run) for _ in range(int(job.get("concurrency", 8)))))
    elapsed = time.perf_counter() - started
    ok = set(job.get("ok", [200]))
    good = sum(c for s, c in run.statuses.items() if s in ok)
    lat = run.latencies or [float("nan")]
    return {"count": len(run.latencies), "good": good, "errors": len(run.errors), "error_samples": run.errors[:3],
            "statuses": {str(k): v for k, v in run.statuses.items()}, "seconds": elapsed,
            "rps": good / elapsed if elapsed > 0 else 0.0, "median_ms": statistics.median(lat) * 1000,
            "p99_ms": _percentile(lat, 0.99) * 1000, "bytes": run.bytes}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.stdin.read())))))
