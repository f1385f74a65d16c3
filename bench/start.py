"""From `loom serve` to the first page with the CRM bundle and its demo data: seconds and the worker's memory.

    python -m bench.start --db sqlite,postgresql [--starts 3]

The demo data is loaded once (`loom demo`: a SQLite file under bench/data/, or a throwaway PostgreSQL database);
then `loom serve` starts as a user starts it, once to warm up (compiled bytecode written, the schema checked) and
`--starts` times measured: the clock runs from the process start to the first list page a signed-in sales rep gets
(200, the rows the database holds). The worker's resident memory is read after that page. Targets (DEVELOPERS.md):
under 2 s, under 120 MB.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.data import DATA, RUN, pg_admin, session
from bench.servers import REPO, free_port, get

CRM = REPO / "metadata"
PAGE = "/m/customer"
USER = "sales_rep"


def _url(kind: str) -> str:
    if kind == "sqlite":
        return f"sqlite:///{DATA / 'crm_demo.db'}"
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/loom_bench_crm_{RUN}"


def demo(kind: str) -> str:
    """The CRM demo database (SQLite: kept between runs, remade when the bundle changed since)."""
    url = _url(kind)
    if kind == "sqlite":
        path = Path(url.removeprefix("sqlite:///"))
        newest = max(p.stat().st_mtime for p in CRM.rglob("*.yaml"))
        if path.exists() and path.stat().st_mtime > newest:
            return url
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        pg_admin(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        pg_admin(f'CREATE DATABASE "{url.rsplit("/", 1)[1]}"')
    subprocess.run([sys.executable, "-m", "engine.cli", "demo", "--metadata", str(CRM), "--db", url], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL, timeout=1800)
    return url


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one_start(url: str, cookie: str) -> tuple[float, float]:
    """(seconds from `loom serve` to the first list page, the server's resident MB after it)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--metadata", str(CRM), "--db", url, "--port", str(port)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"loom serve exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
            try:
                status, _, body = get(port, PAGE, {"Cookie": f"loom_session={cookie}"}, timeout=30)
                break
            except OSError:
                time.sleep(0.01)
        seconds = time.perf_counter() - started
        if status != 200 or b"<table" not in body:
            raise RuntimeError(f"{PAGE} answered {status}")
        return seconds, _rss_mb(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()


def measure(kind: str, starts: int) -> dict[str, Any]:
    """The median of `starts` measured starts after one warm-up."""
    url = demo(kind)
    try:
        cookie, _ = session(url, USER)
        one_start(url, cookie)
        runs = [one_start(url, cookie) for _ in range(starts)]
    finally:
        if kind == "postgresql":
            pg_admin(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    return {"kind": "batch", "db": kind, "rows": "-", "workers": 1, "scenario": "start_crm", "contender": "loom",
            "seconds": statistics.median(s for s, _ in runs), "peak_mb": max(m for _, m in runs), "runs": [round(s, 3) for s, _ in runs]}


def main(argv: list[str] | None = None) -> int:
    """Measure and print one line per database."""
    p = argparse.ArgumentParser(prog="python -m bench.start", description=__doc__.splitlines()[0])
    p.add_argument("--db", type=lambda s: s.split(","), default=["sqlite"])
    p.add_argument("--starts", type=int, default=3)
    args = p.parse_args(argv)
    for kind in args.db:
        found = measure(kind, args.starts)
        print(f"{kind}: first page {found['seconds']:.2f} s after start (runs {found['runs']}), worker RSS {found['peak_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
