"""Loom's own tables: audit trail, recycle bin, customization revisions, counters, users."""

from __future__ import annotations

import sqlalchemy as sa

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def add_system_tables(md: sa.MetaData) -> None:
    """Add every system table to `md` (once)."""
    if "loom_audit" in md.tables:
        return
    sa.Table("loom_audit", md,
             sa.Column("id", ID, primary_key=True, autoincrement=True),
             sa.Column("module", sa.String(64), nullable=False),
             sa.Column("record_id", sa.BigInteger, nullable=False),
             sa.Column("change", sa.String(16), nullable=False),
             sa.Column("field", sa.String(64)),
             sa.Column("old", sa.Text),
             sa.Column("new", sa.Text),
             sa.Column("version", sa.Integer),
             sa.Column("user_id", sa.BigInteger),
             sa.Column("at", sa.DateTime, nullable=False),
             sa.Index("ix_loom_audit_record", "module", "record_id", "id"))
    sa.Table("loom_recycle", md,
             sa.Column("id", ID, primary_key=True, autoincrement=True),
             sa.Column("module", sa.String(64), nullable=False),
             sa.Column("record_id", sa.BigInteger, nullable=False),
             sa.Column("title", sa.String(255)),
             sa.Column("data", sa.Text, nullable=False),
             sa.Column("deleted_by", sa.BigInteger),
             sa.Column("deleted_at", sa.DateTime, nullable=False),
             sa.Index("ix_loom_recycle_record", "module", "record_id"))
    sa.Table("loom_counter", md,
             sa.Column("series", sa.String(128), primary_key=True),
             sa.Column("value", sa.BigInteger, nullable=False))
    sa.Table("loom_revision", md,
             sa.Column("id", ID, primary_key=True, autoincrement=True),
             sa.Column("author", sa.String(128), nullable=False),
             sa.Column("at", sa.DateTime, nullable=False),
             sa.Column("message", sa.String(500)),
             sa.Column("layer", sa.Text, nullable=False),
             sa.Column("diff", sa.Text, nullable=False),
             sa.Column("rolled_back_from", sa.BigInteger))
    sa.Table("loom_user", md,
             sa.Column("id", ID, primary_key=True, autoincrement=True),
             sa.Column("username", sa.String(64), nullable=False, unique=True),
             sa.Column("full_name", sa.String(128)),
             sa.Column("email", sa.String(254)),
             sa.Column("password_hash", sa.String(255)),
             sa.Column("roles", sa.String(500), nullable=False, server_default=""),
             sa.Column("department_id", sa.BigInteger),
             sa.Column("locale", sa.String(8)),
             sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
             sa.Column("created_at", sa.DateTime, nullable=False))
    sa.Table("loom_session", md,
             sa.Column("id", ID, primary_key=True, autoincrement=True),
             sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
             sa.Column("user_id", sa.BigInteger, nullable=False),
             sa.Column("csrf", sa.String(64), nullable=False),
             sa.Column("kind", sa.String(8), nullable=False, server_default="web"),
             sa.Column("created_at", sa.DateTime, nullable=False),
             sa.Column("last_seen", sa.DateTime, nullable=False),
             sa.Column("expires_at", sa.DateTime),
             sa.Column("ended_at", sa.DateTime),
             sa.Column("ip", sa.String(64)),
             sa.Index("ix_loom_session_user", "user_id"))
    sa.Table("loom_share", md,
             sa.Column("id", ID, primary_key=True, autoincrement=True),
             sa.Column("module", sa.String(64), nullable=False),
             sa.Column("record_id", sa.BigInteger, nullable=False),
             sa.Column("user_id", sa.BigInteger),
             sa.Column("department_id", sa.BigInteger),
             sa.Column("access", sa.String(8), nullable=False, server_default="read"),
             sa.Index("ix_loom_share_record", "module", "record_id"),
             sa.Index("ix_loom_share_user", "user_id", "module"))
    sa.Table("loom_file", md,
             sa.Column("id", ID, primary_key=True, autoincrement=True),
             sa.Column("name", sa.String(255), nullable=False),
             sa.Column("content_type", sa.String(128), nullable=False),
             sa.Column("size", sa.BigInteger, nullable=False),
             sa.Column("sha256", sa.String(64), nullable=False),
             sa.Column("created_by", sa.BigInteger),
             sa.Column("created_at", sa.DateTime, nullable=False))
    sa.Table("loom_saved_view", md,
             sa.Column("id", ID, primary_key=True, autoincrement=True),
             sa.Column("user_id", sa.BigInteger, nullable=False),
             sa.Column("module", sa.String(64), nullable=False),
             sa.Column("name", sa.String(128), nullable=False),
             sa.Column("query", sa.Text, nullable=False),
             sa.Index("ix_loom_saved_view_user", "user_id", "module"))
