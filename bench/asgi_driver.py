"""Drive an ASGI app in its own process, without a server: `bench.instructions` runs this under callgrind.

Reads one JSON job on stdin (standard library only, so it runs in every contender's environment):
  {"app": "module:attr", "factory": true, "toggle": "/path/libcgtoggle.so" or null, "prime": "/form/path",
   "csrf": "the token the requests hold", "csrf_pattern": "regex of the form's CSRF input (group 2: the token)",
   "scenarios": [{"name": "list", "requests": [...as for bench.loadgen...], "warm": 100, "count": 100, "ids": 100000,
                  "first_n": 1, "ok": [200]}]}
For each scenario: `warm` requests, then `count` requests with callgrind's instrumentation on (zeroed before, dumped
after, so each scenario is one dump), one at a time. Prints one JSON line: the statuses seen per scenario.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib
import json
import re
import sys
from typing import Any

from bench.loadgen import _fill

Scope = dict[str, Any]


def _app(spec: str, factory: bool) -> Any:
    module, _, attr = spec.partition(":")
    found = getattr(importlib.import_module(module), attr)
    return found() if factory else found


def _scope(req: dict[str, Any], n: int, ids: int) -> tuple[Scope, bytes]:
    path, _, query = _fill(str(req["path"]), n, ids).partition("?")
    body = _fill(str(req.get("body", "")), n, ids).encode()
    headers = [(b"host", b"127.0.0.1"), *((str(k).lower().encode(), str(v).encode()) for k, v in req.get("headers", {}).items())]
    if body or req.get("method", "GET") in ("POST", "PUT", "PATCH"):
        headers.append((b"content-length", str(len(body)).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": req.get("method", "GET"), "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80), "state": {}}
    return scope, body


async def _one(app: Any, req: dict[str, Any], n: int, ids: int, keep: dict[str, Any] | None = None) -> int:
    """One request through the app; its status (the headers and body are kept in `keep` when given, else dropped)."""
    scope, body = _scope(req, n, ids)
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        return {"type": "http.disconnect"}

    status: list[int] = []
    heads: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(int(message["status"]))
            heads.extend(message.get("headers", []))
        elif message["type"] == "http.response.body" and keep is not None:
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    if keep is not None:
        keep.update(headers=heads, body=b"".join(chunks))
    return status[0] if status else 0


async def prime(app: Any, job: dict[str, Any], scenarios: list[dict[str, Any]]) -> None:
    """Open the create form in this process, as `bench.contenders.prime` did over HTTP: the CSRF token and cookies a
    contender keeps per process (a per-process secret) replace those of the server the requests were made with."""
    seen: dict[str, Any] = {}
    first = scenarios[0]["requests"][0]
    await _one(app, {"method": "GET", "path": job["prime"], "headers": {"Cookie": first.get("headers", {}).get("Cookie", "")}}, 0, 1, seen)
    cookies = dict(c.decode("latin-1").split(";", 1)[0].split("=", 1) for k, c in seen["headers"] if k.lower() == b"set-cookie")
    found = re.search(job["csrf_pattern"], seen["body"].decode("utf-8", "replace"))
    token = found.group(2) if found else cookies.get("csrftoken", "")
    for s in scenarios:
        for req in s["requests"]:
            headers = req.setdefault("headers", {})
            sent = dict(part.strip().split("=", 1) for part in headers.get("Cookie", "").split(";") if "=" in part)
            if sent or cookies:
                headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in (sent | cookies).items())
            if job.get("csrf") and token and "body" in req:
                req["body"] = req["body"].replace(job["csrf"], token)


async def _lifespan(app: Any) -> asyncio.Task[Any] | None:
    """Start the app's lifespan (Starlette apps set their thread limits there); None when the app has none (Django)."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started = asyncio.Event()
    await inbox.put({"type": "lifespan.startup"})

    async def send(message: dict[str, Any]) -> None:
        if message["type"].startswith("lifespan.startup"):
            started.set()

    task = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, send))
    done, _ = await asyncio.wait([task, asyncio.ensure_future(started.wait())], return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        return None  # the app refused the lifespan scope
    return task


async def run(job: dict[str, Any]) -> dict[str, Any]:
    """Every scenario of the job; the statuses each answered with while measured."""
    app = _app(job["app"], bool(job.get("factory")))
    toggle = ctypes.CDLL(job["toggle"]) if job.get("toggle") else None
    await _lifespan(app)
    if job.get("prime"):
        await prime(app, job, job["scenarios"])
    out: dict[str, Any] = {}
    for s in job["scenarios"]:
        reqs, ids, n = s["requests"], int(s.get("ids", 1)), int(s.get("first_n", 1))
        for i in range(int(s["warm"])):
            await _one(app, reqs[i % len(reqs)], n + i, ids)
        n += int(s["warm"])
        statuses: dict[str, int] = {}
        if toggle is not None:
            toggle.cg_start()
        for i in range(int(s["count"])):
            code = await _one(app, reqs[i % len(reqs)], n + i, ids)
            statuses[str(code)] = statuses.get(str(code), 0) + 1
        if toggle is not None:
            toggle.cg_stop()
        out[s["name"]] = {"statuses": statuses, "ok": all(int(k) in s.get("ok", [200]) for k in statuses)}
    return out


def main() -> None:
    """Run the job on uvloop where the environment has it (as `loom serve` and the bench's servers run), else asyncio."""
    job = json.loads(sys.stdin.read())
    try:
        import uvloop
    except ImportError:
        print(json.dumps(asyncio.run(run(job))), flush=True)
        return
    print(json.dumps(uvloop.run(run(job))), flush=True)


if __name__ == "__main__":
    main()
