"""Attachments: uploaded files stored by content hash, referenced from attachment fields as 'file:<id>'."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import sqlalchemy as sa

from engine.access import Access
from engine.errors import Invalid, NotFound
from engine.runtime import Runtime

REF = re.compile(r"^file:(\d{1,18})$")
CHUNK = 1 << 16
SAFE_NAME = re.compile(r"[^\w.\- ()\u4e00-\u9fff]+")


@dataclass(frozen=True)
class StoredFile:
    """A stored upload."""

    id: int
    name: str
    content_type: str
    size: int
    sha256: str

    @property
    def ref(self) -> str:
        """The value an attachment field holds."""
        return f"file:{self.id}"


def _table(rt: Runtime) -> sa.Table:
    return rt.tables.metadata.tables["loom_file"]


def _path(rt: Runtime, digest: str) -> Path:
    return rt.settings.files / digest[:2] / digest


def store(rt: Runtime, stream: IO[bytes], name: str, content_type: str | None, user_id: int | None) -> StoredFile:
    """Copy an upload into the store (size-capped while reading) and record it."""
    rt.settings.files.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with tempfile.NamedTemporaryFile(dir=rt.settings.files, delete=False) as tmp:
        while chunk := stream.read(CHUNK):
            size += len(chunk)
            if size > rt.settings.max_upload:
                Path(tmp.name).unlink(missing_ok=True)
                raise Invalid(f"file larger than {rt.settings.max_upload // 1_000_000} MB", {"file": "too large"})
            digest.update(chunk)
            tmp.write(chunk)
    target = _path(rt, digest.hexdigest())
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(tmp.name, target)
    clean = SAFE_NAME.sub("_", Path(name or "file").name)[:200] or "file"
    with rt.db.begin() as conn:
        key = conn.execute(sa.insert(_table(rt)).values(
            name=clean, content_type=(content_type or "application/octet-stream")[:128], size=size, sha256=digest.hexdigest(),
            created_by=user_id, created_at=dt.datetime.now(dt.UTC).replace(tzinfo=None))).inserted_primary_key
    assert key is not None
    new_id = int(key[0])
    return StoredFile(new_id, clean, content_type or "application/octet-stream", size, digest.hexdigest())


def find(rt: Runtime, ref: str) -> StoredFile:
    """The stored file of a reference ('file:12'); 404 when unknown."""
    match = REF.match(ref or "")
    if not match:
        raise NotFound("no such file")
    with rt.db.connect() as conn:
        row = conn.execute(sa.select(_table(rt)).where(_table(rt).c.id == int(match.group(1)))).first()
    if row is None:
        raise NotFound("no such file")
    return StoredFile(row.id, row.name, row.content_type, row.size, row.sha256)


def readable(rt: Runtime, access: Access, ref: str) -> bool:
    """Whether some record the actor may read holds `ref` in an attachment field the actor may read."""
    with rt.db.connect() as conn:
        for module in rt.spec.modules.values():
            table = rt.tables[module.name]
            for f in module.fields:
                if f.type != "attachment" or f.name not in access.readable(module) or not access.can(module, "read"):
                    continue
                scope = access.row_filter(module, table, "read")
                stmt = sa.select(table.c.id).where(table.c[f.name] == ref, *([scope] if scope is not None else [])).limit(1)
                if conn.execute(stmt).first() is not None:
                    return True
    return False


def content(rt: Runtime, stored: StoredFile) -> Path:
    """Where the bytes are on disk."""
    return _path(rt, stored.sha256)
