"""CPU work per request as instructions counted by callgrind: the same figure however busy the machine is.

    python -m bench.instructions create record --rows 100000 --db sqlite [--contenders loom,limit,sqladmin] [--requests 100]

Throughput on a shared 2-core machine moves 15 % or more from run to run, and with it every ratio. Callgrind counts
the instructions a contender's process executes for a request (its Python, its libraries, SQLite's C), which repeat to
a fraction of a percent. Each contender's app runs in its own environment without a server (`bench.asgi_driver`: the
same requests as the web scenarios, one at a time, after a warm-up), so the count leaves out the HTTP server's share
(uvicorn with httptools, the same for all, about 1M instructions a request here) and the kernel's (SQLite's file
writes, the socket); on PostgreSQL the database server's work is not counted either. Lower is better; ratios are
speed ratios as in `python -m bench` (peer / loom below 0.5: Loom does less than half the peer's work).
Needs valgrind (Debian's valgrind package, which carries callgrind.h) and a C compiler.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.contenders import ALL, CSRF_INPUT, Contender, server_env
from bench.data import generate, pg_database, target
from bench.report import RESULTS
from bench.rounds import _forget_created, _start, positions
from bench.servers import REPO

TOOLS = REPO / "bench" / ".venvs" / "tools"
TOGGLE_C = """#include <valgrind/callgrind.h>
void cg_start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void cg_stop(void) { CALLGRIND_STOP_INSTRUMENTATION; CALLGRIND_DUMP_STATS; }
"""
SCENARIOS = ("list", "list_deep", "record", "create", "api_list", "api_get")


def toggle() -> Path:
    """The small library the driver calls to count only the measured requests (built on first use)."""
    lib = TOOLS / "libcgtoggle.so"
    if not lib.exists():
        if shutil.which("valgrind") is None or not Path("/usr/include/valgrind/callgrind.h").exists():
            raise SystemExit("bench.instructions needs valgrind with its headers: apt-get install valgrind")
        TOOLS.mkdir(parents=True, exist_ok=True)
        source = TOOLS / "cgtoggle.c"
        source.write_text(TOGGLE_C)
        subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", str(lib), str(source)], check=True)
    return lib


def _totals(dump: Path) -> int:
    """The instruction count of one callgrind dump."""
    return max((int(line.split()[1]) for line in dump.read_text(errors="replace").splitlines() if line.startswith("totals:")), default=0)


def count(c: Contender, env: dict[str, str], scenarios: dict[str, list[dict[str, Any]]], ids: int, requests: int,
          warm: int, csrf: str) -> dict[str, float]:
    """Instructions per request of each scenario, from one callgrind run of the contender's app."""
    job = {"app": c.app, "factory": c.factory, "toggle": str(toggle()), "prime": c.form_path, "csrf": csrf, "csrf_pattern": CSRF_INPUT.pattern,
           "scenarios": [{"name": name, "requests": reqs, "warm": warm, "count": requests, "ids": ids, "first_n": 1 + 10 * i * (warm + requests),
                          "ok": reqs[0].get("ok", [200])} for i, (name, reqs) in enumerate(scenarios.items())]}
    with tempfile.TemporaryDirectory(prefix="loom-cg-") as tmp:
        out = Path(tmp) / "callgrind.out"
        done = subprocess.run(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                               str(c.python()), "-m", "bench.asgi_driver"], input=json.dumps(job), cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            raise RuntimeError(f"{c.name}: the driver failed under callgrind:\n{done.stderr[-3000:]}")
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        bad = {name: s["statuses"] for name, s in seen.items() if not s["ok"]}
        if bad:
            raise RuntimeError(f"{c.name}: unexpected statuses {bad}")
        dumps = sorted(Path(tmp).glob("callgrind.out.*"), key=lambda p: int(p.suffix[1:]))
        return {name: _totals(dump) / requests for name, dump in zip(scenarios, dumps, strict=True)}


def _env(url: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | server_env(url)


def measure(kind: str, rows: int, names: list[str], scenarios: list[str], requests: int, warm: int) -> dict[str, dict[str, float]]:
    """{contender: {scenario: instructions per request}} on one data set."""
    found: dict[str, dict[str, float]] = {}
    with pg_database(target(kind, rows)) as t:
        generate(t, print)
        pos = positions(t.url)
        for c in (c for c in ALL if c.name in names):
            up = _start(c, t, 1, pos, lambda m: print(m, file=sys.stderr))  # sign in, CSRF, deep cursor: as the web rounds
            up.server.stop()
            wanted = {s: c.scenarios[s](up.ctx) for s in scenarios if s in c.scenarios}
            try:
                found[c.name] = count(c, _env(t.url), wanted, t.rows, requests, warm, up.ctx.csrf)
            finally:
                _forget_created(t)
            print(f"  {c.name}: " + ", ".join(f"{s} {v / 1e6:.2f}M" for s, v in found[c.name].items()), file=sys.stderr)
    return found


def table(found: dict[str, dict[str, float]], scenarios: list[str]) -> list[str]:
    """Millions of instructions per request, and speed ratios (peer / loom, loom / limit) as in `python -m bench`."""
    others = [n for n in found if n != "loom"]
    head = ["scenario", *found, *(["loom/limit"] if "limit" in found else []), *(f"{p}/loom" for p in others if p != "limit")]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in scenarios:
        per = {n: found[n].get(s) for n in found}
        loom = per.get("loom")
        cells = [s, *(f"{v / 1e6:.2f}M" if v else "-" for v in per.values())]
        if "limit" in found:
            cells.append(f"{per['limit'] / loom:.2f}" if loom and per.get("limit") else "-")
        cells += [f"{loom / per[p]:.2f}" if loom and per.get(p) else "-" for p in others if p != "limit"]
        out.append("| " + " | ".join(cells) + " |")
    return out


def main(argv: list[str] | None = None) -> int:
    """Count, print the table, write the JSON under bench/results/."""
    p = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.splitlines()[0])
    p.add_argument("scenarios", nargs="*", help=f"of {', '.join(SCENARIOS)} (default: all)")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"])
    p.add_argument("--contenders", default="loom,limit,sqladmin,starlette_admin,django")
    p.add_argument("--requests", type=int, default=100, help="measured requests per scenario")
    p.add_argument("--warm", type=int, default=100, help="warm-up requests per scenario")
    args = p.parse_args(argv)
    scenarios = args.scenarios or list(SCENARIOS)
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenario {', '.join(sorted(unknown))} (known: {', '.join(SCENARIOS)})")
    found = measure(args.db, args.rows, args.contenders.split(","), scenarios, args.requests, args.warm)
    lines = table(found, scenarios)
    print("\n".join(lines))
    out = RESULTS / f"instructions-{args.db}-{args.rows}-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps({"db": args.db, "rows": args.rows, "requests": args.requests, "warm": args.warm,
                               "instructions": found, "table": lines}, indent=1))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
