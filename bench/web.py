"""Web scenarios over HTTP: the load generator in its own process against a running server, runs folded into medians."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOADGEN = Path(__file__).resolve().parent / "loadgen.py"


@dataclass(frozen=True)
class Load:
    """How hard and how long each scenario is driven."""

    concurrency: int = 8
    seconds: float = 3.0
    runs: int = 3
    warm: float = 1.0
    serial: int = 20  # requests one at a time, for the latency a single user sees
    serial_seconds: float = 3.0


QUICK = Load(concurrency=8, seconds=1.5, runs=2, warm=0.5, serial=10, serial_seconds=1.5)


def drive(port: int, requests: list[dict[str, Any]], count: int, concurrency: int, seconds: float, ids: int, first: int) -> dict[str, Any]:
    """One job of the load generator (a separate process); its summary."""
    job = {"port": port, "requests": requests, "count": count, "concurrency": concurrency, "max_seconds": seconds,
           "ok": requests[0].get("ok", [200]), "ids": ids, "first_n": first, "timeout": 60}
    done = subprocess.run([sys.executable, str(LOADGEN)], input=json.dumps(job), capture_output=True, text=True, timeout=seconds + 120)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


class Scenario:
    """The runs of one scenario against one server, kept until they are folded into medians."""

    def __init__(self, port: int, requests: list[dict[str, Any]], ids: int, load: Load) -> None:
        self.port, self.requests, self.ids, self.load = port, requests, ids, load
        self.next = 1
        self.runs: list[dict[str, Any]] = []
        self.serial: list[dict[str, Any]] = []

    def _job(self, count: int, concurrency: int, seconds: float) -> dict[str, Any]:
        result = drive(self.port, self.requests, count, concurrency, seconds, self.ids, self.next)
        self.next += result["count"] + 1
        return result

    def warm(self) -> None:
        """Warm-up requests whose figures are dropped."""
        self._job(100_000, self.load.concurrency, self.load.warm)

    def run(self) -> None:
        """One measured run under load, and one of single requests."""
        self.runs.append(self._job(1_000_000, self.load.concurrency, self.load.seconds))
        self.serial.append(self._job(self.load.serial, 1, self.load.serial_seconds))

    def summary(self) -> dict[str, Any]:
        """Medians over the runs: throughput, latency under load (median, p99) and single-request latency."""
        bad = sum(r["count"] - r["good"] + r["errors"] for r in self.runs + self.serial)
        samples = [s for r in self.runs + self.serial for s in r["error_samples"]]
        statuses: dict[str, int] = {}
        for r in self.runs:
            for k, v in r["statuses"].items():
                statuses[k] = statuses.get(k, 0) + v
        return {"rps": _median(r["rps"] for r in self.runs), "median_ms": _median(r["median_ms"] for r in self.runs),
                "p99_ms": _median(r["p99_ms"] for r in self.runs), "single_ms": _median(r["median_ms"] for r in self.serial),
                "requests": sum(r["count"] for r in self.runs), "failed": bad, "statuses": statuses, "error_samples": samples[:3],
                "runs": [round(r["rps"], 1) for r in self.runs]}


def _median(values: Any) -> float:
    found = [v for v in values if v == v]
    return float(statistics.median(found)) if found else float("nan")
