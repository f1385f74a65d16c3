"""The web layer: generated screens (HTMX) and the REST API."""
