"""The JSON Schemas shipped with the engine, and validation of documents against them."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator

KINDS = ("app", "module", "workflow", "report")


@cache
def schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of one kind of metadata file."""
    text = resources.files("engine").joinpath("schemas", f"{kind}.schema.json").read_text(encoding="utf-8")
    result: dict[str, Any] = json.loads(text)
    return result


@cache
def _validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(schema(kind))


@cache
def _compiled(kind: str) -> jsonschema_rs.Draft202012Validator:
    return jsonschema_rs.Draft202012Validator(schema(kind))


def _valid(kind: str, data: Any) -> bool:
    """Whether the compiled (Rust) validator passes `data`: the same JSON Schema checked ~200x faster. A value it
    cannot take (a YAML date, say) counts as not passed, so the full check decides."""
    try:
        return bool(_compiled(kind).is_valid(data))
    except (ValueError, TypeError):
        return False


def _path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def schema_errors(kind: str, data: Any) -> list[tuple[str, str]]:
    """(path, message) for every schema violation in `data`, deepest cause first. A valid document (nearly every load)
    is passed by the compiled validator alone; jsonschema walks only a document it refuses, to word every problem."""
    if _valid(kind, data):
        return []
    found = []
    for err in sorted(_validator(kind).iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        leaf = _deepest(err)
        found.append((_path(leaf.absolute_path) or "(root)", _message(leaf)))
    return found


def _deepest(err: Any) -> Any:
    if err.validator == "oneOf" and err.context:
        best = max(err.context, key=lambda e: len(e.absolute_path))
        if len(best.absolute_path) > len(err.absolute_path):
            return _deepest(best)
    return err


def _message(err: Any) -> str:
    if err.validator == "additionalProperties":
        return f"{err.message} (allowed: {', '.join(sorted(err.schema.get('properties', {})))})"
    return str(err.message)
