"""Sub-commands of `loom`; each module has `add(subparsers, common)` setting `run`."""
