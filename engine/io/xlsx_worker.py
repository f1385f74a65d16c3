"""Reads one workbook's first sheet in a child process with a memory cap and sends its rows on stdout.

A hostile sheet can make a reader allocate rows × columns cells at once (one stray cell far away is enough); in a
child process whose address space is capped in proportion to the unpacked workbook, that allocation fails at once
and ends the child, never the server. The first rows go out alone; once the importer has found the header among them
it sends a plan on stdin (or None), and the rest are parsed here, on this process's core, into records. Run as
`python -m engine.io.xlsx_worker PATH LIMITS_JSON`.
"""

from __future__ import annotations

import json
import pickle
import resource
import sys
from collections.abc import Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any, BinaryIO

from engine.io.limits import FileRejected, Limits
from engine.io.readers import tidy
from engine.io.safety import check_zip

if TYPE_CHECKING:
    pass

BATCH = 2_000
MEMORY_CAP = 2_000_000_000
BASE_MEMORY = 256_000_000
PER_BYTE = 16  # a legitimate sheet needs about 3 bytes of memory per byte of XML; a stray far cell needs gigabytes


def _send(out: BinaryIO, message: tuple[Any, ...]) -> None:
    pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)


def _read(path: str, limits: Limits, out: BinaryIO) -> None:
    from python_calamine import CalamineWorkbook

    unpacked = check_zip(path, limits)
    cap = min(MEMORY_CAP, BASE_MEMORY + PER_BYTE * unpacked)
    resource.setrlimit(resource.RLIMIT_AS, (cap, MEMORY_CAP))
    sheet = CalamineWorkbook.from_path(path).get_sheet_by_index(0)
    if sheet.width > limits.max_columns:
        raise FileRejected(f"the sheet has {sheet.width} columns (at most {limits.max_columns})")
    if sheet.height > limits.max_rows + limits.header_scan:
        raise FileRejected(f"the sheet has {sheet.height} rows (at most {limits.max_rows})")
    first = (sheet.start or (0, 0))[0] + 1
    _send(out, ("start", first, sheet.height))
    rows = enumerate(sheet.iter_rows(), start=first)
    _send(out, ("rows", [tidy(row, number, limits) for number, row in islice(rows, limits.header_scan)]))
    out.flush()
    plan = pickle.load(sys.stdin.buffer)  # after the importer has found the header: what to parse the rest for
    tidied = ((number, tidy(row, number, limits)) for number, row in rows)
    if plan is None:
        _send_batches("rows", (cells for _, cells in tidied), out)
    else:  # parsed here, on this process's core (blank rows left out)
        _send_batches("records", plan.records(tidied), out)
    _send(out, ("done", peak_kb()))


def _send_batches(kind: str, items: Iterator[Any], out: BinaryIO) -> None:
    """`items` in messages of `BATCH` (the last one may be empty)."""
    while True:
        batch = list(islice(items, BATCH))
        _send(out, (kind, batch))
        if len(batch) < BATCH:
            return


def peak_kb() -> int:
    """This process's peak resident memory in KiB since it started (VmHWM: getrusage would count the
    parent's memory at fork time)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv: list[str]) -> int:
    """Check and read the workbook at argv[0]; every outcome is one message on stdout."""
    path, raw_limits = argv
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    limits = Limits(**json.loads(raw_limits))
    out = sys.stdout.buffer
    try:
        _read(path, limits, out)
    except FileRejected as exc:
        _send(out, ("error", exc.status, exc.message, peak_kb()))
    except MemoryError:
        _send(out, ("error", 422, "the sheet is too large to read (too many cells)", peak_kb()))
    except Exception as exc:  # calamine's own errors: damaged or unreadable parts
        _send(out, ("error", 422, f"the workbook could not be read: {type(exc).__name__}: {str(exc)[:200]}", peak_kb()))
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
