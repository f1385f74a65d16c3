"""Resolving link and user cells (a title, a key or an id) to record ids, many at a time, within the reader's scope."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from engine.access import Access
from engine.runtime import Runtime
from engine.spec import Field

CHUNK = 500


@dataclass
class Resolver:
    """Looks up the records that link cells name; remembers what it found."""

    conn: sa.Connection
    rt: Runtime
    access: Access
    known: dict[tuple[str, str], int | str] = field(default_factory=dict)

    def resolve(self, f: Field, texts: Iterable[str]) -> dict[str, int | str]:
        """text → record id, or text → an error message (missing or ambiguous)."""
        key = f.module or "user"
        wanted = {t for t in texts if (key, t) not in self.known}
        for start in range(0, len(wanted), CHUNK):
            chunk = sorted(wanted)[start:start + CHUNK]
            found = self._users(chunk) if f.type == "user" else self._records(f.module or "", chunk)
            for text in chunk:
                self.known[(key, text)] = found.get(text) or _missing(f, text)
        return {t: self.known[(key, t)] for t in texts}

    def forget_missing(self, module: str) -> None:
        """Drop remembered misses of `module` (records created since may now match)."""
        self.known = {k: v for k, v in self.known.items() if k[0] != module or isinstance(v, int)}

    def _records(self, module: str, texts: list[str]) -> dict[str, int | str]:
        target = self.rt.spec.module(module)
        table = self.rt.tables[module]
        readable = self.access.readable(target)
        keys = [f.name for f in target.stored_fields if f.unique and f.name in readable and f.name != target.title_field]
        title = target.title_field if target.title_field in readable else None
        cols = [table.c[n] for n in ([title] if title else []) + keys]
        ids = [int(t.lstrip("#")) for t in texts if t.lstrip("#").isdigit() and len(t) < 19]
        where = [(c if isinstance(c.type, sa.String) else sa.cast(c, sa.String)).in_(texts) for c in cols] + ([table.c.id.in_(ids)] if ids else [])
        if not where:
            return {}
        stmt = sa.select(table.c.id, *cols).where(sa.or_(*where))
        scope = self.access.row_filter(target, table, "read")
        if scope is not None:
            stmt = stmt.where(scope)
        return _match(texts, [tuple(r) for r in self.conn.execute(stmt)], target.label("en").lower(), bool(title))

    def _users(self, texts: list[str]) -> dict[str, int | str]:
        users = self.rt.tables.metadata.tables["loom_user"]
        ids = [int(t.lstrip("#")) for t in texts if t.lstrip("#").isdigit() and len(t) < 19]
        stmt = sa.select(users.c.id, users.c.username, users.c.full_name, users.c.email).where(sa.or_(
            users.c.username.in_(texts), users.c.full_name.in_(texts), users.c.email.in_(texts), users.c.id.in_(ids)))
        rows = [(r[0], r[1], r[2], r[3]) for r in self.conn.execute(stmt)]
        by_name = {r[1]: r[0] for r in rows}
        by_other: dict[str, set[int]] = {}
        for r in rows:
            for text in (r[2], r[3]):
                if text:
                    by_other.setdefault(text, set()).add(r[0])
        out: dict[str, int | str] = {}
        for text in texts:
            other = by_other.get(text, set())
            hit = by_name.get(text) or (next(iter(other)) if len(other) == 1 else None) or _by_id(rows, text)
            out[text] = hit if hit else (f"{len(other)} users match '{text}': use the user name" if other else "")
        return {k: v for k, v in out.items() if v}


def _by_id(rows: list[tuple[Any, ...]], text: str) -> int | None:
    digits = text.lstrip("#")
    return next((r[0] for r in rows if digits.isdigit() and r[0] == int(digits)), None)


def _match(texts: list[str], rows: list[tuple[Any, ...]], what: str, has_title: bool) -> dict[str, int | str]:
    by_title: dict[str, list[int]] = {}
    by_key: dict[str, int] = {}
    for r in rows:
        if has_title and r[1] is not None:
            by_title.setdefault(str(r[1]), []).append(r[0])
        for value in r[1 + has_title:]:
            if value is not None:
                by_key.setdefault(str(value), r[0])
    out: dict[str, int | str] = {}
    for text in texts:
        titled = by_title.get(text, [])
        if len(titled) == 1:
            out[text] = titled[0]
        elif len(titled) > 1:
            out[text] = f"ambiguous: {len(titled)} {what} records are called '{text}' (use its code or #id)"
        elif text in by_key:
            out[text] = by_key[text]
        else:
            hit = _by_id(rows, text)
            if hit:
                out[text] = hit
    return out


def _missing(f: Field, text: str) -> str:
    return f"no {f.module or 'user'} '{text}' (or you may not see it)"
