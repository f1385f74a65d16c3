"""Server processes: uvicorn on a free 127.0.0.1 port, readiness and cold start, resident memory, clean stop."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
LOGS = Path(__file__).resolve().parent / "data" / "logs"


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def get(port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    """One plain GET to the server (status, headers, body); every Set-Cookie is kept under `set-cookie-all`."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        found = {k.lower(): v for k, v in resp.getheaders()}
        found["set-cookie-all"] = "\n".join(v for k, v in resp.getheaders() if k.lower() == "set-cookie")
        return resp.status, found, resp.read()
    finally:
        conn.close()


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


@dataclass
class Server:
    """One uvicorn server process (and its workers)."""

    name: str
    python: Path
    target: str
    env: dict[str, str]
    workers: int = 1
    factory: bool = True
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    log: Path = field(default_factory=lambda: LOGS / "server.log")

    def start(self) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = LOGS / f"{self.name}-w{self.workers}.log"
        args = [str(self.python), "-m", "bench.uvicorn_workers", self.target, "--host", HOST, "--port", str(self.port),
                "--workers", str(self.workers),
                "--no-access-log", "--log-level", "warning", "--loop", "uvloop", "--http", "httptools"]
        if self.factory:
            args.append("--factory")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update(self.env)
        self.started = time.perf_counter()
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self, path: str, headers: dict[str, str] | None = None, ok: tuple[int, ...] = (200,), limit: float = 180) -> float:
        """Seconds from start to the first answer in `ok` on `path` (the cold start to first page)."""
        deadline, last = self.started + limit, "no answer"
        while time.perf_counter() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log}:\n{self.log.read_text()[-3000:]}")
            try:
                status, _, _ = get(self.port, path, headers, timeout=30)
                if status in ok:
                    return time.perf_counter() - self.started
                last = f"status {status}"
                if status >= 400:
                    break
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not answer {path} with {ok} ({last}); see {self.log}")

    def pids(self) -> list[int]:
        """The server process and its descendants (uvicorn's workers)."""
        assert self.proc is not None
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            for task in Path(f"/proc/{pid}/task").glob("*/children") if Path(f"/proc/{pid}/task").exists() else []:
                todo += [int(c) for c in task.read_text().split()]
        return found

    def rss_mb(self) -> float:
        """Resident memory of the whole server (all its processes), in MB."""
        return sum(_rss_kb(pid) for pid in self.pids()) / 1024

    def worker_rss_mb(self) -> float:
        """Resident memory of the largest worker process, in MB (uvicorn's supervisor left out when it has workers)."""
        pids = self.pids()
        workers = pids[1:] if self.workers > 1 and len(pids) > 1 else pids[:1]
        return max((_rss_kb(pid) for pid in workers), default=0) / 1024

    def stop(self) -> None:
        """SIGTERM the process group this server started in (its own), then SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)
