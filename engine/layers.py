"""Deterministic merge of metadata layers (base ⊕ overlay ⊕ customizations), with provenance."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

NAMED_KEYS = ("name", "group", "tab")


@dataclass
class Merged:
    """A merged document: data, and for each path the (file, line, layer) that set it."""

    data: Any
    origin: dict[str, tuple[str, int, str]] = field(default_factory=dict)

    def where(self, path: str) -> tuple[str, int, str]:
        """The origin of `path` or of its nearest parent."""
        while True:
            if path in self.origin:
                return self.origin[path]
            if not path:
                return ("?", 1, "?")
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""


def _key_of(item: Any) -> tuple[str, Any] | None:
    if isinstance(item, dict):
        for key in NAMED_KEYS:
            if key in item and not isinstance(item[key], (dict, list)):
                return (key, item[key])
    return None


def _join(path: str, key: Any) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))


def stamp(data: Any, lines: dict[str, int], file: str, layer: str) -> Merged:
    """Wrap one layer's document as a Merged with every path's origin."""
    merged = Merged(copy.deepcopy(data))
    _stamp(merged, data, "", lines, file, layer)
    return merged


def _stamp(merged: Merged, data: Any, path: str, lines: dict[str, int], file: str, layer: str) -> None:
    merged.origin[path] = (file, _line(lines, path), layer)
    if isinstance(data, dict):
        for k, v in data.items():
            _stamp(merged, v, _join(path, k), lines, file, layer)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            _stamp(merged, v, _join(path, i), lines, file, layer)


def _line(lines: dict[str, int], path: str) -> int:
    while path and path not in lines:
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return lines.get(path, 1)


def overlay(base: Merged, top: Merged) -> Merged:
    """Merge `top` over `base`: maps recursively, named lists by name, other values replaced."""
    out = Merged(None, {})
    out.data = _merge(base, top, "", "", "", out)
    return out


def _copy_origin(src: Merged, src_path: str, dst: Merged, dst_path: str) -> None:
    prefix = src_path
    for p, o in src.origin.items():
        if p == prefix or p.startswith(prefix + ".") or p.startswith(prefix + "[") or not prefix:
            dst.origin[dst_path + p[len(prefix):]] = o


def _merge(base: Merged, top: Merged, bpath: str, tpath: str, opath: str, out: Merged) -> Any:
    b, t = _at(base.data, bpath), _at(top.data, tpath)
    if isinstance(b, dict) and isinstance(t, dict):
        out.origin[opath] = base.where(bpath)
        result: dict[str, Any] = {}
        for k in list(b) + [k for k in t if k not in b]:
            sub = _join(opath, k)
            if k in t and k in b:
                result[k] = _merge(base, top, _join(bpath, k), _join(tpath, k), sub, out)
            elif k in t:
                result[k] = copy.deepcopy(t[k])
                _copy_origin(top, _join(tpath, k), out, sub)
            else:
                result[k] = copy.deepcopy(b[k])
                _copy_origin(base, _join(bpath, k), out, sub)
        return result
    if isinstance(b, list) and isinstance(t, list) and all(_key_of(x) for x in b + t):
        return _merge_named(base, top, bpath, tpath, opath, out, b, t)
    _copy_origin(top, tpath, out, opath)
    return copy.deepcopy(t)


def _merge_named(base: Merged, top: Merged, bpath: str, tpath: str, opath: str, out: Merged,
                 b: list[Any], t: list[Any]) -> list[Any]:
    out.origin[opath] = top.where(tpath)
    top_index = {_key_of(x): i for i, x in enumerate(t)}
    result: list[Any] = []
    for i, item in enumerate(b):
        j = top_index.get(_key_of(item))
        sub = _join(opath, len(result))
        if j is None:
            result.append(copy.deepcopy(item))
            _copy_origin(base, _join(bpath, i), out, sub)
        else:
            result.append(_merge(base, top, _join(bpath, i), _join(tpath, j), sub, out))
    base_keys = {_key_of(x) for x in b}
    for j, item in enumerate(t):
        if _key_of(item) not in base_keys:
            sub = _join(opath, len(result))
            result.append(copy.deepcopy(item))
            _copy_origin(top, _join(tpath, j), out, sub)
    return result


def _at(data: Any, path: str) -> Any:
    if not path:
        return data
    node = data
    for part in _split(path):
        node = node[part]
    return node


def _split(path: str) -> list[Any]:
    parts: list[Any] = []
    for chunk in path.replace("[", ".[").split("."):
        if not chunk:
            continue
        parts.append(int(chunk[1:-1]) if chunk.startswith("[") else chunk)
    return parts
