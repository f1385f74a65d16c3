"""Spreadsheet import and export: safe readers, templates, the import pipeline, exports."""
