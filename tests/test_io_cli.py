"""`loom import` and `loom export` from the command line: dry run, insert, upsert by a key twice, undo, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from engine import records
from engine.access import SystemAccess
from engine.migrate import ensure_schema
from engine.runtime import Runtime, Settings, open_runtime

from .conftest import TEST_BUNDLE
from .io_files import csv_bytes, xlsx


def _loom(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "engine.cli", *args, "--metadata", str(TEST_BUNDLE), "--db", db]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _names(rt: Runtime) -> dict[str, int | None]:
    table = rt.tables["account"]
    with rt.db.connect() as conn:
        return {name: employees for name, employees in conn.execute(sa.select(table.c.name, table.c.employees))}


def _import_id(out: str) -> str:
    return out.split(":", 1)[0].removeprefix("import ")


def test_dry_run_upsert_twice_and_undo(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    rt = open_runtime(Settings(metadata=TEST_BUNDLE, db_url=db))
    ensure_schema(rt)
    records.create(rt, SystemAccess(), "account", {"name": "Acme", "employees": 5})
    path = tmp_path / "in.xlsx"
    path.write_bytes(xlsx([["Name", "Employees"], ["Acme", 50], ["New Co", "1,200"]]))
    try:
        dry = _loom(db, "import", "account", str(path), "--mode", "upsert", "--key", "name", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "would insert 1, updated 1, unchanged 0" in dry.stdout and "nothing was written" in dry.stdout
        assert "Employees: 5 → 50" in dry.stdout and _names(rt) == {"Acme": 5}
        first = _loom(db, "import", "account", str(path), "--mode", "upsert", "--key", "name")
        assert first.returncode == 0 and "inserted 1, updated 1" in first.stdout, first.stderr
        assert _names(rt) == {"Acme": 50, "New Co": 1200}
        again = _loom(db, "import", "account", str(path), "--mode", "upsert", "--key", "name")
        assert "inserted 0, updated 0, unchanged 2" in again.stdout and _names(rt) == {"Acme": 50, "New Co": 1200}
        undo = _loom(db, "import", "account", "--undo", _import_id(first.stdout))
        assert undo.returncode == 0 and "1 deleted, 1 restored" in undo.stdout, undo.stderr
        assert _names(rt) == {"Acme": 5}
        twice = _loom(db, "import", "account", "--undo", _import_id(first.stdout))
        assert twice.returncode == 1 and "only a finished, applied import can be undone" in twice.stderr
    finally:
        rt.db.dispose()


def test_rows_with_errors_write_nothing_unless_skipped_and_bad_calls_say_why(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    rt = open_runtime(Settings(metadata=TEST_BUNDLE, db_url=db))
    ensure_schema(rt)
    path = tmp_path / "in.csv"
    path.write_bytes(csv_bytes([["名称", "员工数"], ["北京公司", "12"], ["上海公司", "很多"]], "gb18030"))
    report = tmp_path / "errors.xlsx"
    try:
        failed = _loom(db, "import", "account", str(path), "--error-report", str(report))
        assert failed.returncode == 1 and "nothing was written" in failed.stdout and _names(rt) == {}
        assert "row 3, 员工数:" in failed.stderr and "很多" in failed.stderr and report.stat().st_size > 0
        skipped = _loom(db, "import", "account", str(path), "--skip-errors")
        assert skipped.returncode == 0 and _names(rt) == {"北京公司": 12}
        for args, message in ((("import", "account"), "name the file to import"),
                              (("import", "account", str(tmp_path / "missing.xlsx")), "missing.xlsx: no such file"),
                              (("import", "nope", str(path)), "unknown module 'nope'"),
                              (("import", "account", "--undo", "999"), "import 999 not found")):
            done = _loom(db, *args)
            assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
    finally:
        rt.db.dispose()
