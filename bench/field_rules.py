"""What field-level rules cost (issue 4): a 50-row list of the 40-field `wide` module, as a role with field rules and
as a role without, producing the same output (`fields=` names the 30 fields both may read).

    python -m bench.field_rules [--db sqlite|postgresql] [--rows 10000] [--blocks 30] [--per-block 40]

The app runs in this process and requests go straight to its ASGI entry (no HTTP server, no thread hop), so the
figure is the CPU the app spends per request. The two roles alternate block by block; the median of the blocks is
compared, which keeps a shared machine's noise out of the ratio. Also run for the screen (`/m/wide?limit=50`), where the
ruled role shows fewer columns (the rules hide three of the layout's twelve). Results under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.data import BUNDLE, generate, pg_database, session, target

RESULTS = Path(__file__).resolve().parent / "results"
TARGET = 1.10  # the ruled role may cost at most 10 % more


def _app(url: str) -> Any:
    import engine.web.context as context
    from engine.runtime import Settings
    from engine.web.app import create_app

    async def inline(run: Any, _request: Any) -> Any:
        return run()

    context.in_thread = inline  # one thread: the CPU measured is the app's own
    return create_app(Settings(metadata=BUNDLE, db_url=url, files=Path(tempfile.mkdtemp(prefix="loom-bench-"))))


def _caller(app: Any, cookie: str, path: str) -> Any:
    raw, _, query = path.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http", "path": raw,
             "raw_path": raw.encode(), "query_string": query.encode(), "root_path": "", "client": ("127.0.0.1", 1),
             "server": ("bench", 80), "headers": [(b"host", b"bench"), (b"cookie", f"loom_session={cookie}".encode())]}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def call(times: int) -> None:
        for _ in range(times):
            sent: list[dict[str, Any]] = []

            async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
                sent.append(message)

            await app(dict(scope), receive, send)
            if sent[0]["status"] != 200:
                raise SystemExit(f"{path}: status {sent[0]['status']}: {sent[-1].get('body', b'')[:300]!r}")

    return call


def measure(url: str, blocks: int, per_block: int) -> dict[str, Any]:
    """Median CPU ms per request of each (scenario, role), blocks alternating between the roles."""
    app = _app(url)
    module = app.state.runtime.spec.module("wide")
    hidden = {"f02", "f06", "f10", "f14", "f18", "f22", "f26", "f30", "f34", "f38"}
    shared = ",".join(f.name for f in module.fields if f.name.startswith("f") and f.name not in hidden)
    paths = {"api": f"/api/wide?limit=50&fields={shared}", "screen": "/m/wide?limit=50"}
    cookies = {role: session(url, role)[0] for role in ("ruled", "plain")}
    loop = asyncio.new_event_loop()
    out: dict[str, Any] = {}
    for scenario, path in paths.items():
        calls = {role: _caller(app, cookie, path) for role, cookie in cookies.items()}
        for call in calls.values():
            loop.run_until_complete(call(per_block))  # warm: caches, statements, templates
        times: dict[str, list[float]] = {role: [] for role in calls}
        for _ in range(blocks):
            for role, call in calls.items():
                started = time.process_time()
                loop.run_until_complete(call(per_block))
                times[role].append((time.process_time() - started) / per_block * 1000)
        ruled, plain = statistics.median(times["ruled"]), statistics.median(times["plain"])
        out[scenario] = {"ruled_ms": ruled, "plain_ms": plain, "ratio": ruled / plain, "path": path}
    loop.close()
    app.state.runtime.db.dispose()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.field_rules", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rows", type=int, default=10_000, help="data set size (the wide module has 10,000 rows at every size)")
    parser.add_argument("--blocks", type=int, default=30)
    parser.add_argument("--per-block", type=int, default=40)
    args = parser.parse_args(argv)
    with pg_database(target(args.db, args.rows)) as t:  # a throwaway PostgreSQL database, dropped on the way out
        generate(t)
        found = measure(t.url, args.blocks, args.per_block)
    print(f"field rules on a 50-row list of a 40-field module ({args.db}), CPU ms per request, median of {args.blocks} blocks")
    print(f"{'scenario':<8} {'ruled':>8} {'plain':>8} {'ratio':>7}  target <= {TARGET:.2f}")
    for scenario, r in found.items():
        verdict = "met" if r["ratio"] <= TARGET else "MISSED"
        same = " (same output)" if scenario == "api" else " (ruled shows 9 of 12 columns)"
        print(f"{scenario:<8} {r['ruled_ms']:8.2f} {r['plain_ms']:8.2f} {r['ratio']:7.2f}  {verdict}{same}")
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"field-rules-{args.db}-{stamp}.json").write_text(json.dumps({"db": args.db, "results": found}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
