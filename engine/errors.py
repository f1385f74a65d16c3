"""One small exception hierarchy, mapped to HTTP status codes in one place."""

from __future__ import annotations

from dataclasses import dataclass


class LoomError(Exception):
    """Base of every error Loom raises on purpose."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class NotFound(LoomError):
    """The record or module does not exist (or the user may not see it)."""

    status = 404
    code = "not_found"


class Forbidden(LoomError):
    """The user may not do this."""

    status = 403
    code = "forbidden"


class Conflict(LoomError):
    """The record changed since the client read it."""

    status = 409
    code = "conflict"


class Invalid(LoomError):
    """Input values are wrong; `fields` says which and why."""

    status = 422
    code = "invalid"


class Unauthorized(LoomError):
    """No valid session or token."""

    status = 401
    code = "unauthorized"


class MigrationRefused(LoomError):
    """A migration would lose or corrupt data; nothing was run."""

    status = 409
    code = "migration_refused"


@dataclass(frozen=True)
class Problem:
    """One metadata problem: where it is and what is wrong."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.path}: {self.message}"


class MetadataError(LoomError):
    """The metadata is invalid; `problems` lists every problem found."""

    status = 422
    code = "invalid_metadata"

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems
