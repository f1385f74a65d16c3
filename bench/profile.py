"""Where Loom's server spends a web scenario's time: py-spy samples a real uvicorn worker under load.

    python -m bench.profile record api_list --rows 10000 --db sqlite [--seconds 10] [--top 25]

py-spy is installed on first use into bench/.venvs/tools. For each scenario Loom is started as `python -m bench`
starts it, the load generator drives the scenario, and py-spy records the server's stacks (only while holding the
GIL, so waits do not count). Printed: the functions by own samples and by inclusive samples, as shares of the total.
Raw stacks are kept under bench/data/ (collapsed format; feed them to a flame graph tool).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from bench.contenders import LOOM
from bench.data import DATA, generate, pg_database, target
from bench.rounds import _forget_created, _start, positions
from bench.servers import REPO
from bench.web import drive

TOOLS = REPO / "bench" / ".venvs" / "tools"


def py_spy() -> Path:
    """The py-spy binary (installed into its own environment on first use)."""
    binary = TOOLS / "bin" / "py-spy"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TOOLS)], check=True)
        subprocess.run([str(TOOLS / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "py-spy"], check=True)
    return binary


def _frame(frame: str) -> str:
    """`name (path:line)` without the line number and with the path made short."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for cut in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if cut in path:
            path = path.split(cut, 1)[1]
    return f"{name} ({path})"


def fold(raw: Path) -> tuple[Counter[str], Counter[str], int]:
    """Own and inclusive sample counts per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    pending = ""
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = (pending + line).rpartition(" ")
        if not count.isdigit():  # a frame's text held a line break: the stack goes on in the next line
            pending += line + " "
            continue
        pending = ""
        frames = [_frame(f) for f in stack.split(";")[1:]]  # the first frame is the thread
        n = int(count)
        total += n
        if frames:
            own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    return own, inclusive, total


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """Start py-spy on the server's worker for `seconds`."""
    args = [str(py_spy()), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "250", "--gil",
            "--subprocesses", "--format", "raw", "--output", str(out), "--nonblocking"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def one(up: object, scenario: str, seconds: float, top: int) -> None:
    """Drive one scenario under py-spy; print where the time goes."""
    server, ctx = up.server, up.ctx  # type: ignore[attr-defined]
    out = DATA / f"profile-{scenario}.txt"
    drive(server.port, LOOM.scenarios[scenario](ctx), 10**7, 4, 1.0, ctx.rows, 10**6)  # warm-up: templates compiled, caches filled
    spy = record(server.proc.pid, seconds, out)
    result: dict[str, object] = {}
    driver = threading.Thread(target=lambda: result.update(drive(server.port, LOOM.scenarios[scenario](ctx), 10**7, 4, seconds, ctx.rows, 1)))
    driver.start()
    driver.join()
    spy.wait(timeout=seconds + 60)
    own, inclusive, total = fold(out)
    print(f"\n== {scenario}: {result.get('rps', 0):.0f} req/s under py-spy, {total} samples (GIL held), stacks in {out} ==")
    print("own time:")
    for name, n in own.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("inclusive (engine and templates):")
    shown = [(k, v) for k, v in inclusive.most_common() if "engine/" in k or "jinja" in k.lower() or "template" in k][:top]
    for name, n in shown:
        print(f"  {100 * n / total:5.1f}%  {name}")


def main() -> None:
    """Profile each scenario named on the command line."""
    p = argparse.ArgumentParser(prog="python -m bench.profile")
    p.add_argument("scenarios", nargs="+", choices=list(LOOM.scenarios))
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--db", default="sqlite")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    with pg_database(target(args.db, args.rows)) as t:
        generate(t)
        up = _start(LOOM, t, 1, positions(t.url), print)
        try:
            for scenario in args.scenarios:
                one(up, scenario, args.seconds, args.top)
        finally:
            up.server.stop()
            _forget_created(t)


if __name__ == "__main__":
    main()
