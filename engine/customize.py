"""The admins' customization layer: versioned revisions stored in the database."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from engine.systables import add_system_tables


def _table() -> sa.Table:
    md = sa.MetaData()
    add_system_tables(md)
    return md.tables["loom_revision"]


def current_layer(db: sa.Engine) -> tuple[int, dict[str, Any]]:
    """(revision id, layer) of the newest revision; (0, {}) on a database without one."""
    if not sa.inspect(db).has_table("loom_revision"):
        return 0, {}
    table = _table()
    with db.connect() as conn:
        row = conn.execute(sa.select(table.c.id, table.c.layer).order_by(table.c.id.desc()).limit(1)).first()
    return (0, {}) if row is None else (int(row.id), json.loads(row.layer))
