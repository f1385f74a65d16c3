"""Read YAML or JSON metadata files safely, remembering the line of every path."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.errors import MetadataError, Problem

MAX_NODES = 200_000
MAX_BYTES = 5_000_000
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml parses 8x faster; same nodes and marks


@dataclass
class Document:
    """A parsed file: its data and the source line of each path ('fields[3].type')."""

    file: str
    data: Any
    lines: dict[str, int] = field(default_factory=dict)

    def line(self, path: str) -> int:
        """The line of `path`, or of its nearest parent known."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = _parent(path)
        return self.lines.get("", 1)


def _parent(path: str) -> str:
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else ""


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


class _Builder:
    """Turns a composed YAML node tree into plain data, counting nodes to stop alias bombs."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.count = 0
        self.lines: dict[str, int] = {}
        self.scalars = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: str) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise MetadataError([Problem(self.file, node.start_mark.line + 1, path or "(root)",
                                         f"document expands to more than {MAX_NODES} nodes (alias bomb?)")])
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.scalars.construct_object(key_node) if isinstance(key_node, yaml.ScalarNode) else None
                if key is None or isinstance(key, (list, dict)):
                    raise MetadataError([Problem(self.file, key_node.start_mark.line + 1, path or "(root)", "keys must be plain scalars")])
                self.lines.setdefault(_join(path, key), key_node.start_mark.line + 1)
                out[key] = self.build(value_node, _join(path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, _join(path, i)) for i, item in enumerate(node.value)]
        return self.scalars.construct_object(node)


def load_text(text: str, file: str) -> Document:
    """Parse YAML (JSON is YAML) text into a Document; errors name the file and line."""
    if len(text) > MAX_BYTES:
        raise MetadataError([Problem(file, 1, "(root)", f"file is larger than {MAX_BYTES} bytes")])
    if file.endswith(".json"):
        return _load_json(text, file)
    try:
        node = yaml.compose(text, Loader=LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise MetadataError([Problem(file, line, "(root)", f"YAML syntax: {getattr(exc, 'problem', exc)}")]) from None
    if node is None:
        return Document(file, None, {"": 1})
    builder = _Builder(file)
    data = builder.build(node, "")
    return Document(file, data, builder.lines)


def _load_json(text: str, file: str) -> Document:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise MetadataError([Problem(file, exc.lineno, "(root)", f"JSON syntax: {exc.msg}")]) from None
    doc = load_text(text, file + ".yaml")  # JSON is YAML 1.2; reuse the line tracking
    doc.file = file
    return doc


def load_file(path: Path, shown_as: str | None = None) -> Document:
    """Read and parse one metadata file."""
    return load_text(path.read_text(encoding="utf-8"), shown_as or str(path))
