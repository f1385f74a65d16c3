"""Running a dry run, an import or an undo in a background thread; progress goes to the import log
(and to an in-memory board, since SQLite cannot take a second writer while the import holds the lock)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import MutableMapping
from typing import Any

from engine.access import Access
from engine.errors import LoomError
from engine.io import log
from engine.io.plan import Options, Result
from engine.io.run import Progress, execute
from engine.io.undo import undo
from engine.runtime import Runtime

Board = MutableMapping[int, tuple[int, int]]
logger = logging.getLogger("loom.io")


def start(rt: Runtime, access: Access, entry: log.Entry, action: str, board: Board | None = None) -> threading.Thread:
    """Start `action` ('preview', 'apply' or 'undo') of a logged import in a daemon thread."""
    log.mark(rt, entry.id, status="queued", phase=action, done=0)
    thread = threading.Thread(target=work, args=(rt, access, entry, action, board), name=f"loom-import-{entry.id}", daemon=True)
    thread.start()
    return thread


def work(rt: Runtime, access: Access, entry: log.Entry, action: str, board: Board | None = None) -> None:
    """Do `action` now, logging its outcome (never raises)."""
    log.mark(rt, entry.id, status="running", phase=action)
    try:
        if action == "undo":
            counts = undo(rt, access, entry)
            log.mark(rt, entry.id, message=f"undone: {counts['deleted']} deleted, {counts['restored']} restored")
            return
        options = Options(entry.options.mode, entry.options.key, entry.options.on_error, dry_run=action == "preview",
                          mapping=entry.options.mapping)
        logged(rt, access, entry.id, entry.module, entry.stored, entry.file_kind, options, _progress(rt, entry.id, board))
    except LoomError as exc:
        _failed(rt, entry, action, exc.message, exc.fields)
    except Exception:
        logger.exception("import %s failed", entry.id)
        _failed(rt, entry, action, "the import stopped on an unexpected error (it was logged); nothing was written", {})
    finally:
        if board is not None:
            board.pop(entry.id, None)


def logged(rt: Runtime, access: Access, import_id: int, module: str, path: str, kind: str, options: Options,
           progress: Progress | None = None) -> tuple[str, Result]:
    """Run a logged import (or its dry run) and log its outcome; the status it ended in, and what it did. The ids it
    created and each updated record's old values are logged in the import's own transaction, for its undo."""
    result = execute(rt, access, module, path, kind, options, progress=progress, finish=lambda conn, r: log.record_changes(conn, rt, import_id, r))
    status = "previewed" if options.dry_run else "done" if result.applied else "failed"
    log.finish(rt, import_id, status, result)
    return status, result


def _failed(rt: Runtime, entry: log.Entry, action: str, message: str, fields: dict[str, str]) -> None:
    detail = "; ".join(f"{k}: {v}" for k, v in fields.items())
    status = "done" if action == "undo" else "failed"
    log.mark(rt, entry.id, status=status, phase=None, message=message + (f" ({detail})" if detail else ""))


def _progress(rt: Runtime, import_id: int, board: Board | None) -> Any:
    last = [0.0]

    def report(done: int, total: int) -> None:
        if board is not None:
            board[import_id] = (done, total)
        if rt.db.dialect.name != "sqlite" and time.monotonic() - last[0] > 1:
            last[0] = time.monotonic()
            log.mark(rt, import_id, done=done, total=total)

    return report
