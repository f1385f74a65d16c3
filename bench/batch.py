"""Batch scenarios, each in a fresh process: wall time and peak memory.

`python -m bench.batch metadata PATH`    load + validate + build the tables of a bundle (first call, then warm repeats)
`python -m bench.batch add_field URL`    an admin adds a field to `customer` (Loom's customization layer + migration)
`python -m bench.batch alter URL`        the limit: one hand-written ALTER TABLE ADD COLUMN
Each prints one JSON line.
"""

from __future__ import annotations

import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.data import BUNDLE, Target, pg_admin
from bench.servers import REPO

TIER = {"name": "tier", "type": "select", "options": ["gold", "silver", "bronze"], "label": {"en": "Tier", "zh": "等级"}}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def metadata(path: str, repeats: int = 3) -> dict[str, Any]:
    """Seconds to load, validate and build the tables of the bundle at `path`: the process's first time, then warm."""
    started = time.perf_counter()
    from engine.loader import load
    from engine.tables import build_tables

    imported = time.perf_counter()
    times = []
    for _ in range(1 + repeats):
        t0 = time.perf_counter()
        build_tables(load(Path(path)).spec)
        times.append(time.perf_counter() - t0)
    return {"seconds": times[0], "warm_s": statistics.median(times[1:]), "import_s": imported - started,
            "modules": len(list((Path(path) / "modules").glob("*.yaml"))), "peak_mb": _peak_mb()}


def add_field(url: str) -> dict[str, Any]:
    """Seconds for Loom to add a select field to `customer` through an admin's customization layer."""
    from engine.customize import apply_layer
    from engine.runtime import Settings

    t0 = time.perf_counter()
    apply_layer(Settings(metadata=BUNDLE, db_url=url), {"modules": {"customer": {"fields": [TIER]}}}, "bench", "add a field")
    return {"seconds": time.perf_counter() - t0, "peak_mb": _peak_mb()}


def alter(url: str) -> dict[str, Any]:
    """Seconds for the hand-written equivalent: one ALTER TABLE ADD COLUMN."""
    db = sa.create_engine(url)
    t0 = time.perf_counter()
    with db.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE customer ADD COLUMN tier_raw VARCHAR(48)")
    seconds = time.perf_counter() - t0
    db.dispose()
    return {"seconds": seconds, "peak_mb": _peak_mb()}


def run(kind: str, arg: str) -> dict[str, Any]:
    """Run one batch scenario in a fresh process; its JSON, with the process's wall time."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench.batch", kind, arg], cwd=REPO, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"bench.batch {kind} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - t0
    return result


def copy_of(t: Target) -> Target:
    """A copy of the data set to change (a file copy on SQLite, a template copy on PostgreSQL)."""
    if t.kind == "sqlite":
        source = Path(t.url.removeprefix("sqlite:///"))
        target = source.with_name(source.stem + "_copy.db")
        for suffix in ("-wal", "-shm"):
            Path(str(target) + suffix).unlink(missing_ok=True)
        shutil.copyfile(source, target)
        return Target(t.kind, f"sqlite:///{target}", t.rows)
    name = t.url.rsplit("/", 1)[1] + "_copy"
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{t.url.rsplit("/", 1)[1]}"')
    return Target(t.kind, t.url.rsplit("/", 1)[0] + "/" + name, t.rows)


def drop_copy(t: Target) -> None:
    """Remove a copy made by `copy_of`."""
    if t.kind == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(t.url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
        return
    pg_admin(f'DROP DATABASE IF EXISTS "{t.url.rsplit("/", 1)[1]}" WITH (FORCE)')


if __name__ == "__main__":
    what, argument = sys.argv[1], sys.argv[2]
    print(json.dumps({"metadata": metadata, "add_field": add_field, "alter": alter}[what](argument)))
