"""Schema evolution: plan (typed operations) → show → apply. (Planner to come; create_all for now.)"""

from __future__ import annotations

from engine.runtime import Runtime


def ensure_schema(rt: Runtime) -> None:
    """Create missing tables (first run)."""
    rt.tables.metadata.create_all(rt.db)
