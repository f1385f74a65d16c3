"""What an import will do and did: options, per-row problems, the summary with samples and diffs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.errors import Invalid

MODES = ("insert", "update", "upsert")
ON_ERROR = ("rollback", "skip")
SAMPLES = 200


@dataclass(frozen=True)
class Options:
    """How to import: insert/update/upsert by `key`, all-or-nothing or skip bad rows, dry run or apply."""

    mode: str = "insert"
    key: str | None = None
    on_error: str = "rollback"
    dry_run: bool = False
    bulk: bool = True
    mapping: tuple[str | None, ...] | None = None

    def checked(self) -> Options:
        """Itself, or a 422 naming the bad option."""
        if self.mode not in MODES:
            raise Invalid("unknown import mode", {"mode": f"use one of: {', '.join(MODES)}"})
        if self.on_error not in ON_ERROR:
            raise Invalid("unknown error handling", {"on_error": f"use one of: {', '.join(ON_ERROR)}"})
        return self


@dataclass(frozen=True)
class Problem:
    """Why one cell (or row) cannot be imported."""

    row: int
    column: str
    value: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"row": self.row, "column": self.column, "value": self.value, "reason": self.reason}


@dataclass
class Result:
    """The outcome of a dry run or an import."""

    header_row: int = 0
    headers: list[str] = field(default_factory=list)
    mapping: list[str | None] = field(default_factory=list)
    key: str | None = None
    records: int = 0
    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    problems: list[Problem] = field(default_factory=list)
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"insert": [], "update": [], "skip": []})
    created: list[int] = field(default_factory=list)
    changed: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)
    applied: bool = False
    reader_kb: int = 0

    def sample(self, kind: str, entry: dict[str, Any]) -> None:
        """Keep the first rows of each kind for the preview."""
        if len(self.samples[kind]) < SAMPLES:
            self.samples[kind].append(entry)

    def summary(self) -> dict[str, Any]:
        """Counts, mapping and samples (JSON-ready; the problems travel separately)."""
        return {"records": self.records, "inserted": self.inserted, "updated": self.updated, "skipped": self.skipped,
                "failed": self.failed, "errors": len(self.problems), "applied": self.applied, "header_row": self.header_row,
                "headers": self.headers, "mapping": self.mapping, "key": self.key, "samples": self.samples}
