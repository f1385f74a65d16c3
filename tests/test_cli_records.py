"""`loom records`: recycle bin listing, restore, revert and history from the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine import records
from engine.access import SystemAccess
from engine.migrate import ensure_schema
from engine.runtime import Settings, open_runtime

from .conftest import TEST_BUNDLE


def _loom(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "engine.cli", "records", *args, "--metadata", str(TEST_BUNDLE), "--db", db]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_bin_restore_revert_history(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    rt = open_runtime(Settings(metadata=TEST_BUNDLE, db_url=db))
    ensure_schema(rt)
    acc = records.create(rt, SystemAccess(), "account", {"name": "Acme", "employees": 1})
    records.update(rt, SystemAccess(), "account", acc["id"], {"employees": 2}, 1)
    records.delete(rt, SystemAccess(), "account", acc["id"])
    listed = _loom(db, "bin")
    assert f"account #{acc['id']}  Acme" in listed.stdout
    assert _loom(db, "restore", "account", str(acc["id"])).returncode == 0
    reverted = _loom(db, "revert", "account", str(acc["id"]), "--version", "1")
    assert reverted.returncode == 0, reverted.stderr
    assert records.get(rt, SystemAccess(), "account", acc["id"])["employees"] == 1
    history = _loom(db, "history", "account", str(acc["id"])).stdout
    assert "delete" in history and "restore" in history and "employees" in history
    missing = _loom(db, "restore", "account", "999")
    assert missing.returncode == 1 and "not in the recycle bin" in missing.stderr and "Traceback" not in missing.stderr
    rt.db.dispose()
