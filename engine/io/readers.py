"""Reading an uploaded sheet as numbered rows: xlsx in a capped child process, csv as a text stream.

Both readers count rows, columns and cell lengths themselves and stop at the first limit broken.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import dataclasses
import fcntl
import json
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Generator, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.io.limits import FileRejected, Limits, TooLarge, Unsupported
from engine.io.safety import sniff

if TYPE_CHECKING:  # the xlsx reader process imports the field types only once it has a plan
    from engine.io.cells import Record, RowPlan

Row = tuple[int, list[Any]]
ROOT = Path(__file__).resolve().parent.parent.parent
ERRORS = {413: TooLarge, 415: Unsupported}
READ_SECONDS = 300
PIPE_BYTES = 1 << 20


def file_kind(path: str, filename: str) -> str:
    """'xlsx' or 'csv', from the file's content (its name only breaks ties)."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head:
        raise FileRejected("the file is empty")
    return sniff(head, filename)


def read_rows(path: str, kind: str, limits: Limits) -> Iterator[Row]:
    """(sheet row number, cells) for every row of the first sheet, within the limits, cells as `tidy` leaves them."""
    sheet = SheetRows(path, kind, limits)
    try:
        yield from sheet.head()
        yield from sheet.rows()
    finally:
        sheet.close()


class SheetRows:
    """An uploaded sheet's rows, read once, front to back: the first `header_scan` rows (to find the header in), then
    the rest, as rows or, given a plan, as parsed records. An .xlsx is read (and parsed) in a capped child process on
    another core; `sizes['rows']` is the row count once known (for progress bars), `sizes['worker_kb']` the reader's
    peak memory."""

    def __init__(self, path: str, kind: str, limits: Limits) -> None:
        self.sizes: dict[str, int] = {}
        self._proc = _start(path, limits) if kind == "xlsx" else None
        batches = _messages(self._proc, self.sizes) if self._proc else _csv_batches(path, limits, self.sizes)
        self._batches: Generator[list[Any], None, None] = batches

    def head(self) -> list[Row]:
        """The first rows: the header is among them."""
        return next(self._batches, [])

    def rows(self) -> Iterator[Row]:
        """The rows after the head, cells as `tidy` leaves them."""
        self._plan(None)
        for batch in self._batches:
            yield from batch

    def records(self, plan: RowPlan) -> Iterator[Record]:
        """The records of the rows after the head, parsed by `plan` (blank rows left out)."""
        self._plan(plan)
        batches = self._batches if self._proc is not None else map(list, map(plan.records, self._batches))
        for batch in batches:
            yield from batch

    def close(self) -> None:
        """Stop reading (ends the reader process)."""
        self._batches.close()

    def _plan(self, plan: RowPlan | None) -> None:
        if self._proc is None:
            return
        assert self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # the reader has stopped: its message says why
            pickle.dump(plan, self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._proc.stdin.flush()


def tidy(cells: Iterable[Any], number: int, limits: Limits) -> list[Any]:
    """A row's cells as the importer reads them: text stripped (trailing spaces are common), empty text → None;
    a cell longer than the limit is refused."""
    out = []
    for col, value in enumerate(cells):
        if type(value) is str:
            if len(value) > limits.max_cell:
                raise FileRejected(f"the cell in row {number}, column {col + 1} is longer than {limits.max_cell} characters")
            value = value.strip() or None
        out.append(value)
    return out


def _start(path: str, limits: Limits) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), RUST_BACKTRACE="0")
    cmd = [sys.executable, "-m", "engine.io.xlsx_worker", path, json.dumps(dataclasses.asdict(limits))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.PIPE, env=env)
    _widen(proc)
    return proc


def _widen(proc: subprocess.Popen[bytes]) -> None:
    """A 1 MB pipe (Linux), so the reader process works a few batches ahead instead of waiting on a 64 KB one."""
    assert proc.stdout is not None
    with contextlib.suppress(AttributeError, OSError):  # another system, or a lower limit: the default pipe works, slower
        fcntl.fcntl(proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _messages(proc: subprocess.Popen[bytes], sizes: dict[str, int]) -> Generator[list[Any], None, None]:
    """The reader process's batches: rows (numbered here) or records (numbered there); ends the process when done."""
    assert proc.stdout is not None and proc.stdin is not None
    timer = threading.Timer(READ_SECONDS, proc.kill)
    timer.start()
    number = 1
    try:
        while True:
            try:
                message = pickle.load(proc.stdout)
            except (EOFError, pickle.UnpicklingError):
                proc.wait()
                raise FileRejected("the workbook could not be read within the limits: its cells span too many rows and columns "
                                   "(a stray cell far below or right of the data?), or reading took too long") from None
            kind = message[0]
            if kind == "done":
                sizes["worker_kb"] = message[1]
                return
            if kind == "error":
                sizes["worker_kb"] = message[3]
                raise ERRORS.get(message[1], FileRejected)(message[2])
            if kind == "start":
                number, sizes["rows"] = message[1], message[2]
            elif kind == "records":
                yield message[1]
            else:
                yield list(enumerate(message[1], start=number))
                number += len(message[1])
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()


def _csv_batches(path: str, limits: Limits, sizes: dict[str, int]) -> Generator[list[Any], None, None]:
    """The CSV's rows within the limits, tidied: the first `header_scan` as one batch, then batches of 1,000."""
    rows = _csv_rows(path, limits, sizes)
    size = limits.header_scan
    while batch := [(n, tidy(cells, n, limits)) for n, cells in islice(rows, size)]:
        yield batch
        size = 1_000


def detect_encoding(path: str) -> str:
    """utf-8-sig, utf-16, utf-8 or gb18030: the first that decodes the whole file."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for encoding in ("utf-8", "gb18030"):
        if _decodes(path, encoding):
            return encoding
    raise FileRejected("the text encoding of this CSV is not UTF-8 or GB18030: save it as 'CSV UTF-8'")


def _decodes(path: str, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _delimiter(sample: str) -> str:
    first = sample.split("\n", 1)[0]
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _lines(path: str) -> int:
    count = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            count += chunk.count(b"\n")
    return count


def _csv_rows(path: str, limits: Limits, sizes: dict[str, int]) -> Iterator[Row]:
    encoding = detect_encoding(path)
    sizes["rows"] = _lines(path)
    if sizes["rows"] > limits.max_rows + limits.header_scan + 1:
        raise FileRejected(f"the CSV has more than {limits.max_rows} rows (empty lines count too): split it into smaller files")
    with open(path, encoding=encoding, newline="") as f:
        delimiter = _delimiter(f.read(65_536))
        f.seek(0)
        try:
            for number, cells in enumerate(csv.reader(f, delimiter=delimiter), start=1):
                if number > limits.max_rows + limits.header_scan:
                    raise FileRejected(f"the sheet has more than {limits.max_rows} rows (empty rows count too): split it into smaller files")
                if len(cells) > limits.max_columns:
                    raise FileRejected(f"row {number} has {len(cells)} columns (at most {limits.max_columns})")
                yield number, [_unquote(c) for c in cells]
        except csv.Error as exc:
            raise FileRejected(f"the CSV cannot be read: {exc} (a cell longer than {limits.max_cell} characters?)") from None


def _unquote(text: str) -> str:
    """Undo the apostrophe Loom's CSV export puts before text that a spreadsheet would run as a formula."""
    if len(text) > 1 and text[0] == "'" and text[1] in "=+-@\t\r":
        return text[1:]
    return text
