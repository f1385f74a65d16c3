"""Hostile uploads: every file is refused with a clear 4xx within seconds, with little memory, and nothing is written
(the files are made by tests/io_files.py) — on SQLite and PostgreSQL."""

from __future__ import annotations

import functools
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from itertools import chain
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.io.limits import DEFAULT_LIMITS, FileRejected
from engine.io.readers import SheetRows, file_kind
from engine.runtime import Runtime

from . import io_files
from .conftest import TEST_BUNDLE, login

SECONDS = 10
CASES: dict[str, tuple[Callable[[], bytes], str, int, str]] = {
    "entity bomb": (io_files.entity_bomb, "in.xlsx", 422, "declares a DTD or entities"),
    "entity bomb in UTF-16": (functools.partial(io_files.entity_bomb, "utf-16"), "in.xlsx", 422, "declares a DTD or entities"),
    "zip bomb": (io_files.zip_bomb, "in.xlsx", 422, "compressed more than 200:1"),
    "thousands of parts": (io_files.many_parts, "in.xlsx", 422, "parts (at most 1000)"),
    "1,048,576 empty rows": (io_files.empty_rows, "in.xlsx", 422, "more than 500000 rows (empty rows count too)"),
    "one far cell": (io_files.far_cell, "in.xlsx", 422, "span too many rows and columns"),
    "16,384 columns": (io_files.wide_sheet, "in.xlsx", 422, "16384 columns (at most 500)"),
    "10 MB cell": (io_files.huge_cell, "in.xlsx", 422, "longer than 32767 characters"),
    "legacy xls renamed": (io_files.legacy_xls, "old.xlsx", 415, "legacy .xls workbook or a password-protected file"),
    "encrypted xlsx": (io_files.encrypted_xlsx, "secret.xlsx", 415, "password"),
    "encrypted zip parts": (io_files.zip_encrypted, "in.xlsx", 415, "encrypted"),
    "truncated": (io_files.truncated, "in.xlsx", 422, "damaged or incomplete"),
    "macro workbook": (io_files.macro_workbook, "macros.xlsx", 415, "macro-enabled workbook"),
    "10 MB csv cell": (io_files.huge_csv_cell, "in.csv", 422, "CSV cannot be read"),
    "csv of empty lines": (io_files.csv_empty_lines, "in.csv", 422, "more than 500000 rows"),
    "binary named csv": (io_files.binary_as_csv, "in.csv", 422, "not a spreadsheet"),
}


@functools.cache
def _data(case: str) -> bytes:
    return CASES[case][0]()


def _written(rt: Runtime) -> int:
    with rt.db.connect() as conn:
        return sum(int(conn.execute(sa.select(sa.func.count()).select_from(rt.tables.metadata.tables[t])).scalar() or 0)
                   for t in ("account", "loom_audit"))


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_upload_is_refused_quickly_and_writes_nothing(make_app: Any, case: str) -> None:
    _, name, status, message = CASES[case]
    data = _data(case)
    app = make_app()
    rt = app.state.runtime
    client = login(app, "boss", ("admin",))
    for url in ("/api/account/import", "/m/account/import"):
        start = time.monotonic()
        got = client.post(url, files={"file": (name, data, "application/octet-stream")}, data={"mode": "upsert"},
                          headers={"Accept": "application/json"})
        assert time.monotonic() - start < SECONDS, case
        assert got.status_code == status, (case, got.text[:300])
        assert message in got.json()["error"]["message"], (case, got.text[:300])
    assert _written(rt) == 0
    assert not any((Path(rt.settings.files) / "imports").glob("*")), "the refused upload was kept"


@pytest.mark.parametrize("case", [c for c, v in CASES.items() if v[1].endswith(".xlsx") and v[2] == 422])
def test_hostile_workbook_is_read_with_little_memory(tmp_path: Path, case: str) -> None:
    path = tmp_path / CASES[case][1]
    path.write_bytes(_data(case))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sheet = SheetRows(str(path), file_kind(str(path), path.name), DEFAULT_LIMITS)
    start = time.monotonic()
    with pytest.raises(FileRejected):
        for _ in chain(sheet.head(), sheet.rows()):
            pass
    sizes = sheet.sizes
    assert time.monotonic() - start < SECONDS
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB: the server process stays small
    assert sizes.get("worker_kb", 0) < 300_000  # the reader process too, when it lived to say so


def test_upload_larger_than_the_cap_is_refused_while_receiving(make_app: Any) -> None:
    app = make_app(import_max_bytes=1_000_000)
    client = login(app, "boss", ("admin",))
    big = b"Name\n" + b"x" * 3_000_000
    got = client.post("/api/account/import", files={"file": ("big.csv", big, "text/csv")})
    assert got.status_code == 413 and "larger than" in got.json()["error"]["message"]
    assert _written(app.state.runtime) == 0


def test_a_streamed_upload_without_a_length_is_counted_and_cut_off(make_app: Any) -> None:
    """No Content-Length to trust (chunked): the body is counted as it arrives and refused past the cap."""
    app = make_app(import_max_bytes=1_000_000)
    client = login(app, "boss", ("admin",))

    def body() -> Iterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\nContent-Type: text/csv\r\n\r\nName\n'
        yield from (b"x" * 100_000 for _ in range(30))
        yield b"\r\n--b--\r\n"

    got = client.post("/api/account/import", content=body(), headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert "content-length" not in {k.lower() for k in got.request.headers}
    assert got.status_code == 413 and "larger than" in got.json()["error"]["message"]
    assert _written(app.state.runtime) == 0 and not list(Path(app.state.runtime.settings.files).rglob("*.csv"))


def test_loom_refuses_to_start_without_defusedxml(tmp_path: Path) -> None:
    """Without defusedxml the standard library's XML parsers would expand entities: no app is built at all."""
    code = ("import sys; sys.modules['defusedxml'] = None\n"  # as if it were not installed
            "from engine.runtime import Settings\nfrom engine.web.app import create_app\n"
            f"create_app(Settings(metadata={str(TEST_BUNDLE)!r}, db_url={f'sqlite:///{tmp_path}/x.db'!r}))\nprint('started')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode != 0 and "started" not in done.stdout
    assert "defusedxml is required to read uploaded spreadsheets safely" in done.stderr
