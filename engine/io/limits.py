"""What an uploaded spreadsheet may be, and the errors for files that are not."""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import LoomError


@dataclass(frozen=True)
class Limits:
    """Caps applied to every uploaded file before and while it is read."""

    max_bytes: int = 50_000_000
    max_rows: int = 500_000
    max_columns: int = 500
    max_cell: int = 32_767
    max_entries: int = 1_000
    max_unzipped: int = 800_000_000
    max_entry: int = 600_000_000
    max_ratio: int = 200
    header_scan: int = 10


DEFAULT_LIMITS = Limits()


class FileRejected(LoomError):
    """The file is not a readable spreadsheet or breaks a limit; nothing was written."""

    status = 422
    code = "file_rejected"


class TooLarge(FileRejected):
    """The upload is larger than allowed."""

    status = 413
    code = "too_large"


class Unsupported(FileRejected):
    """The file is of a kind Loom does not read (legacy .xls, encrypted, macro workbook)."""

    status = 415
    code = "unsupported_file"
