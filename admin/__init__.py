"""Loom's no-code admin app (module, field, layout and role editors)."""
