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
    sa.Table("loom_schema", md,
             sa.Column("id", ID, primary_key=True),
             sa.Column("fingerprint", sa.String(64), nullable=False),
             sa.Column("at", sa.DateTime, nullable=False))
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
    _add_auth_tables(md)


def _add_auth_tables(md: sa.MetaData) -> None:
    """Tables of the permission gate: login history, managed departments, IP allowlist, Casbin policies."""
    sa.Table("loom_login", md,
             sa.Column("id", ID, primary_key=True, autoincrement=True),
             sa.Column("at", sa.DateTime, nullable=False),
             sa.Column("username", sa.String(64), nullable=False),
             sa.Column("user_id", sa.BigInteger),
             sa.Column("ip", sa.String(64)),
             sa.Column("user_agent", sa.String(255)),
             sa.Column("result", sa.String(16), nullable=False),
             sa.Index("ix_loom_login_username", "username", "at"),
             sa.Index("ix_loom_login_ip", "ip", "at"),
             sa.Index("ix_loom_login_at", "at"))
    sa.Table("loom_department_manager", md,
             sa.Column("id", ID, primary_key=True, autoincrement=True),
             sa.Column("user_id", sa.BigInteger, nullable=False),
             sa.Column("department_id", sa.BigInteger, nullable=False),
             sa.UniqueConstraint("user_id", "department_id", name="uq_loom_department_manager"))
    sa.Table("loom_ip_allow", md,
             sa.Column("id", ID, primary_key=True, autoincrement=True),
             sa.Column("user_id", sa.BigInteger),
             sa.Column("role", sa.String(64)),
             sa.Column("network", sa.String(64), nullable=False),
             sa.Column("created_at", sa.DateTime, nullable=False))
    sa.Table("loom_policy_rule", md,
             sa.Column("id", ID, primary_key=True, autoincrement=True),
             sa.Column("ptype", sa.String(8)),
             *(sa.Column(f"v{i}", sa.String(255)) for i in range(6)))
    sa.Table("loom_policy_version", md,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("version", sa.BigInteger, nullable=False),
             sa.Column("source_hash", sa.String(64), nullable=False),
             sa.Column("revision", sa.BigInteger, nullable=False, server_default="0"),
             sa.Column("updated_at", sa.DateTime, nullable=False))
    add_import_tables(md)


def add_import_tables(md: sa.MetaData) -> None:
    """The spreadsheet import log (one row per import) and what each import changed (for undo)."""
    sa.Table("loom_import", md,
             sa.Column("id", ID, primary_key=True, autoincrement=True),
             sa.Column("module", sa.String(64), nullable=False),
             sa.Column("user_id", sa.BigInteger),
             sa.Column("file_name", sa.String(255), nullable=False),
             sa.Column("file_kind", sa.String(8), nullable=False),
             sa.Column("stored", sa.String(255), nullable=False),
             sa.Column("mode", sa.String(8), nullable=False),
             sa.Column("key", sa.String(64)),
             sa.Column("on_error", sa.String(8), nullable=False, server_default="rollback"),
             sa.Column("mapping", sa.Text),
             sa.Column("status", sa.String(16), nullable=False),
             sa.Column("phase", sa.String(32)),
             sa.Column("total", sa.Integer, nullable=False, server_default="0"),
             sa.Column("done", sa.Integer, nullable=False, server_default="0"),
             sa.Column("summary", sa.Text),
             sa.Column("errors", sa.Text),
             sa.Column("created", sa.Text),
             sa.Column("message", sa.Text),
             sa.Column("created_at", sa.DateTime, nullable=False),
             sa.Column("heartbeat", sa.DateTime, nullable=False),
             sa.Column("finished_at", sa.DateTime),
             sa.Index("ix_loom_import_module", "module", "user_id", "id"))
    sa.Table("loom_import_item", md,
             sa.Column("id", ID, primary_key=True, autoincrement=True),
             sa.Column("import_id", sa.BigInteger, nullable=False),
             sa.Column("record_id", sa.BigInteger, nullable=False),
             sa.Column("version", sa.Integer, nullable=False),
             sa.Column("before", sa.Text, nullable=False),
             sa.Index("ix_loom_import_item_import", "import_id", "id"))
